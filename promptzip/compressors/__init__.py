"""Registry of compression methods.

Built-in methods are listed in `_builtin()`; a new method is one module here plus one line
there. Other packages add methods through the `promptzip.compressors` entry-point group: each
entry point names a `register(add)` function that calls `add(CompressorClass)`.
"""

from __future__ import annotations

from functools import lru_cache

from ..errors import UsageError
from .base import Compressor, Param
from .extract import Extract
from .latent import Latent
from .lexical import Lexical
from .rewrite import Rewrite
from .selfinfo import SelfInfo
from .truncate import Truncate

__all__ = ["Compressor", "Param", "get_method", "methods"]


def _builtin() -> list[type[Compressor]]:
    return [Extract, Truncate, Lexical, SelfInfo, Rewrite, Latent]


@lru_cache(maxsize=1)
def methods() -> dict[str, type[Compressor]]:
    found: dict[str, type[Compressor]] = {}

    def add(cls: type[Compressor]) -> None:
        if cls.name in found:
            raise ValueError(f"compression method {cls.name!r} registered twice")
        found[cls.name] = cls

    for cls in _builtin():
        add(cls)
    from importlib.metadata import entry_points

    for ep in entry_points(group="promptzip.compressors"):
        ep.load()(add)
    return found


def get_method(name: str) -> type[Compressor]:
    table = methods()
    if name not in table:
        raise UsageError(f"unknown method {name!r}", f"Available: {', '.join(table)}.")
    return table[name]
