"""Model files are checked against their folder's `manifest.json` before they are used.

A file whose size or sha256 differs from its manifest entry raises `ModelError` (exit 3) naming
it. Hashing a 23 MB model costs ~40 ms, so a passed check is remembered by the file's path,
size and modification time, in this process and in `$PROMPTZIP_HOME/cache/verified.json`
(written atomically): a changed file has a new mtime or size and is hashed again.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

from .config import home
from .errors import ModelError
from .fileutil import atomic_write, sha256_file

_passed: set[tuple[str, int, int, str]] = set()


def _cache_path() -> Path:
    return home() / "cache" / "verified.json"


def _load() -> dict:
    try:
        return json.loads(_cache_path().read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def check_file(path: Path, sha256: str, size: int | None = None) -> None:
    """Raise ModelError unless `path` has this sha256 (and size)."""
    try:
        st = path.stat()
    except OSError:
        raise ModelError(f"{path} is missing", "Run `make models` in a promptzip checkout.") from None
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns, sha256)
    if key in _passed:
        return
    hint = (f"The file was changed or damaged: restore it (`git checkout -- {path}` in a checkout, or "
            "`make models`), or point the model option at a folder whose manifest matches.")
    if size is not None and st.st_size != size:
        raise ModelError(f"{path} does not match its manifest ({st.st_size:,} bytes, expected {size:,})", hint)
    cache = _load()
    if cache.get(key[0]) == [key[1], key[2], sha256]:
        _passed.add(key)
        return
    actual = sha256_file(path)
    if actual != sha256:
        raise ModelError(f"{path} does not match its manifest (sha256 {actual[:12]}…, expected {sha256[:12]}…)",
                         hint)
    _passed.add(key)
    cache[key[0]] = [key[1], key[2], sha256]
    try:
        with atomic_write(_cache_path()) as f:
            f.write(json.dumps(cache, indent=1).encode("utf-8"))
    except OSError:  # a read-only home: the check still ran
        pass


def check_folder(folder: Path, names: Iterable[str]) -> None:
    """Check the named files of a model folder against its manifest (a folder without a
    manifest, or a file it does not list, is not checked)."""
    manifest = folder / "manifest.json"
    if not manifest.is_file():
        return
    try:
        files = json.loads(manifest.read_text(encoding="utf-8")).get("files", {})
    except ValueError:
        raise ModelError(f"{manifest} is not valid JSON", "Restore it, or run `make models`.") from None
    for name in names:
        entry = files.get(name)
        if isinstance(entry, dict) and entry.get("sha256"):
            check_file(folder / name, entry["sha256"], entry.get("bytes"))
