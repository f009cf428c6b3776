"""Where the shipped models are: one resolver for every compressor, the embedder and the latent runtime.

The four small models promptzip ships (int8 ONNX or an adapter, tokenizer, manifest, model card) live
in `models/` at the root of a source checkout. A built wheel carries the same folders inside the
package, as `promptzip/_models/<name>` (setup.py's `build_py` copies them at build time). A model is
looked for, first match wins:

1. an explicit override: the caller's folder (`-p model=DIR`), else the model's environment variable
   (`PROMPTZIP_EXTRACT_MODEL`, `PROMPTZIP_MULTILINGUAL_MODEL`, `PROMPTZIP_EMBED_MODEL`,
   `PROMPTZIP_LATENT_MODEL`);
2. the folder shipped inside the installed package (`promptzip/_models/<name>`);
3. the source checkout's `models/<name>` (an editable install, or running from a clone);
4. the user's store, `$PROMPTZIP_MODELS` or `$PROMPTZIP_HOME/models` (`<name>` there).

Floor: the base (imports `config`, `errors` and `verify` only).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from .config import home
from .errors import ModelError
from .verify import check_folder

PACKAGE = Path(__file__).resolve().parent
IN_PACKAGE = PACKAGE / "_models"
CHECKOUT = PACKAGE.parent / "models"
# name -> (environment variable, files that must be there, what it is)
SHIPPED: dict[str, tuple[str, tuple[str, ...], str]] = {
    # an extract folder needs only its tokenizer here: `-p precision=fp32` reads model.onnx instead
    "extract-minilm": ("PROMPTZIP_EXTRACT_MODEL", ("tokenizer.json",), "the English extract model"),
    "extract-multilingual": ("PROMPTZIP_MULTILINGUAL_MODEL", ("tokenizer.json",),
                             "the multilingual extract model"),
    "embed-minilm": ("PROMPTZIP_EMBED_MODEL", ("model.int8.onnx", "tokenizer.json"), "the rag embedder"),
    "latent-smollm2": ("PROMPTZIP_LATENT_MODEL", ("adapter.safetensors", "config.json"), "the latent encoder"),
}


def store_dir() -> Path:
    """The user's model store: `$PROMPTZIP_MODELS`, else `$PROMPTZIP_HOME/models`."""
    env = os.environ.get("PROMPTZIP_MODELS")
    return Path(env).expanduser() if env else home() / "models"


@dataclass(frozen=True)
class Found:
    name: str
    path: Path
    where: str  # "option", "environment", "package", "checkout" or "store"


def candidates(name: str, explicit: str | Path | None = None) -> list[Found]:
    """Every place a shipped model is looked for, in order (present or not)."""
    env, _, _ = _spec(name)
    out = []
    if explicit:
        out.append(Found(name, Path(explicit).expanduser(), "option"))
    if os.environ.get(env):
        out.append(Found(name, Path(os.environ[env]).expanduser(), "environment"))
    out += [Found(name, IN_PACKAGE / name, "package"), Found(name, CHECKOUT / name, "checkout"),
            Found(name, store_dir() / name, "store")]
    return out


def _spec(name: str) -> tuple[str, tuple[str, ...], str]:
    if name not in SHIPPED:
        raise ModelError(f"unknown shipped model {name!r}", f"Shipped models: {', '.join(SHIPPED)}.")
    return SHIPPED[name]


def _complete(path: Path, files: tuple[str, ...]) -> bool:
    return all((path / f).is_file() for f in files)


def find(name: str, explicit: str | Path | None = None) -> Found | None:
    """The first complete folder for a shipped model, or None. An explicit folder or a set
    environment variable is the only place looked at: a wrong override is an error, not a
    silent fallback to the shipped model."""
    _, files, _ = _spec(name)
    places = candidates(name, explicit)
    if places[0].where in ("option", "environment"):
        places = places[:1]
    return next((f for f in places if _complete(f.path, files)), None)


def default(name: str) -> Path:
    """The shipped folder of a model, overrides aside (the package's, the checkout's or the store's,
    first complete one; the package's path when there is none, for messages)."""
    _, files, _ = _spec(name)
    return next((f.path for f in candidates(name)[-3:] if _complete(f.path, files)), IN_PACKAGE / name)


def resolve(name: str, explicit: str | Path | None = None) -> Path:
    """The folder of a shipped model; ModelError (exit 3) naming every place looked at."""
    found = find(name, explicit)
    if found is not None:
        return found.path
    env, files, what = _spec(name)
    places = candidates(name, explicit)
    if places[0].where in ("option", "environment"):
        raise ModelError(f"{what} is missing at {places[0].path} (set by {_by(places[0], env)})",
                         f"Point it at a folder with {' and '.join(files)}, or unset it to use the shipped one.")
    raise ModelError(f"{what} ({name}) is missing: looked in " + ", ".join(str(p.path) for p in places),
                     f"Reinstall promptzip (the wheel carries it), run `make models` in a checkout, or set "
                     f"{env} to a folder with {' and '.join(files)}.")


def _by(found: Found, env: str) -> str:
    return "-p model=" if found.where == "option" else env


def describe(name: str, verify: bool = True) -> dict:
    """For `promptzip models list` and `--version`: where the model was found, the sha256 of its main
    file (from the manifest) and whether every file listed in the manifest verified (`verify`)."""


    env, files, what = _spec(name)
    found = find(name)
    row = {"name": name, "what": what, "shipped": True, "present": found is not None,
           "where": found.where if found else None, "path": str(found.path) if found else None,
           "sha256": None, "verified": False, "bytes": 0}
    if found is None:
        return row
    try:
        manifest = json.loads((found.path / "manifest.json").read_text(encoding="utf-8"))
        listed = manifest.get("files", {})
    except (OSError, ValueError):
        return row
    main = listed.get("model.int8.onnx") or listed.get("adapter.safetensors") or {}
    row["sha256"] = main.get("sha256")
    row["bytes"] = sum(p.stat().st_size for p in found.path.iterdir() if p.is_file())
    if not verify:
        row["verified"] = None
        return row
    try:
        check_folder(found.path, list(listed))
        row["verified"] = bool(listed)
    except ModelError as exc:
        row["problem"] = str(exc)
    return row
