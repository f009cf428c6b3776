"""The `.safetensors` latent file: what `promptzip compress -m latent -o FILE` writes and
`promptzip decode` / `promptzip ask` read.

Tensors: `latents.{i}` (K x 576 float32) per chunk. Header (safetensors `__metadata__`, all
strings): `format` ("promptzip-latent"), `version` ("1"), `encoder` and `encoder_sha256` (the
adapter file), `decoder` and `decoder_sha256` (SmolLM2's weights), `k`, `chunk_tokens`,
`chunks` (JSON list of [start, end] character offsets of each chunk in the source),
`original_tokens` (decoder tokens of the source), `ratio` (original tokens / latent vectors),
`init` and `refine_steps` (how the latents were made) and `refine_loss` (JSON list: each chunk's
teacher-forced loss after refinement, empty without it).

Reading checks the header against the installed models before anything is decoded: another
encoder or decoder, a missing field or another format version is a `ModelError` (exit 3), never
silent garbage.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import InputError, ModelError
from ..fileutil import atomic_write

FORMAT = "promptzip-latent"
VERSION = "1"
# encoders whose files this promptzip no longer reads, and what they were
RETIRED = {"latent-minilm": "the MiniLM latent encoder, whose latents only carried the text after minutes of "
                            "refinement; it was replaced by the one-pass SmolLM2 encoder"}


@dataclass
class LatentFile:
    path: Path
    latents: list[np.ndarray]  # per chunk, (k, 576)
    header: dict[str, str]

    def check(self, expect: dict[str, str]) -> LatentFile:
        """Itself, once its header names the installed models (`ModelError` otherwise)."""
        check(self.path, self.header, expect)
        return self

    @property
    def chunks(self) -> list[tuple[int, int]]:
        return [tuple(c) for c in json.loads(self.header["chunks"])]


def write(path: Path, latents: list[np.ndarray], header: dict[str, object]) -> None:
    with atomic_write(Path(path)) as f:
        f.write(dumps(latents, header))


def dumps(latents: list[np.ndarray], header: dict[str, object]) -> bytes:
    from safetensors.numpy import save

    meta = {"format": FORMAT, "version": VERSION, **{k: v if isinstance(v, str) else json.dumps(v)
                                                      for k, v in header.items()}}
    tensors = {f"latents.{i}": np.ascontiguousarray(x, dtype=np.float32) for i, x in enumerate(latents)}
    return save(tensors or {"empty": np.zeros(0, np.float32)}, metadata=meta)


def check(path: Path, meta: dict[str, str], expect: dict[str, str]) -> None:
    """A `ModelError` when the header names other models than `expect` (field -> installed value)."""
    for key, want in expect.items():
        got = meta.get(key)
        if got != want:
            raise ModelError(f"{path} was written with {key} {got!r}, but the installed one is {want!r}",
                             "Decode it with the models that wrote it, or re-compress the source.")


def read(path: Path, expect: dict[str, str] | None = None) -> LatentFile:
    """Load and check a latent file; `expect` maps header fields to the installed values."""
    from safetensors import SafetensorError
    from safetensors.numpy import load

    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path} does not exist")
    raw = path.read_bytes()
    try:
        tensors = load(raw)
        n = int.from_bytes(raw[:8], "little")
        meta = json.loads(raw[8:8 + n]).get("__metadata__", {})
    except (SafetensorError, ValueError, UnicodeDecodeError) as exc:
        raise InputError(f"{path} is not a safetensors file ({exc})",
                         "Give a file written by `promptzip compress -m latent -o FILE`.") from None
    if meta.get("format") != FORMAT:
        raise InputError(f"{path} is not a promptzip latent file",
                         "Give a file written by `promptzip compress -m latent -o FILE`.")
    if meta.get("version") != VERSION:
        raise ModelError(f"{path} has latent format version {meta.get('version')}, this promptzip reads {VERSION}",
                         "Re-compress the source with this promptzip.")
    if meta.get("encoder") in RETIRED:
        raise ModelError(f"{path} was written by {RETIRED[meta['encoder']]} ({meta['encoder']!r}); "
                         "this promptzip cannot read it",
                         "Re-compress the source: `promptzip compress SOURCE -m latent -o FILE`.")
    check(path, meta, expect or {})
    count = len(json.loads(meta.get("chunks", "[]")))
    latents = [tensors[f"latents.{i}"] for i in range(count)]
    return LatentFile(path, latents, meta)
