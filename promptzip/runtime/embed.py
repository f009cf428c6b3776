"""Sentence embeddings on onnxruntime: all-MiniLM-L6-v2 exported as is (mean pooling and unit
length inside the graph, int8), shipped in models/embed-minilm. The fast-path twin of the torch
`promptzip.eval.embed.Embedder`; no torch import."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np

from .. import shipped
from ..verify import check_folder
from .onnx import session, wordpiece

DEFAULT_EMBED_MODEL = shipped.default("embed-minilm")  # overrides aside


class OnnxEmbedder:
    def __init__(self, folder: Path | None = None, max_tokens: int = 256, batch_size: int = 16) -> None:
        folder = shipped.resolve("embed-minilm", explicit=folder)
        self.tok = wordpiece(str(folder / "tokenizer.json"))

        check_folder(folder, ("model.int8.onnx", "tokenizer.json"))
        self.sess, self.device, self.warning = session(str(folder / "model.int8.onnx"))
        self.max_tokens = max_tokens
        self.batch_size = batch_size

    def embed(self, texts: list[str]) -> np.ndarray:
        """(len(texts), 384) unit vectors; texts beyond `max_tokens` subwords are cut."""
        out = np.zeros((len(texts), 384), dtype=np.float32)
        if not texts:
            return out
        encs = self.tok.encode_batch(texts)
        rows = [e.ids[:self.max_tokens - 1] + ([e.ids[-1]] if len(e.ids) >= self.max_tokens else [])
                for e in encs]
        order = sorted(range(len(rows)), key=lambda i: len(rows[i]))
        for k in range(0, len(order), self.batch_size):
            idx = order[k:k + self.batch_size]
            width = max(len(rows[i]) for i in idx)
            ids = np.zeros((len(idx), width), dtype=np.int64)
            mask = np.zeros_like(ids)
            for r, i in enumerate(idx):
                ids[r, :len(rows[i])] = rows[i]
                mask[r, :len(rows[i])] = 1
            vec = self.sess.run(["embeddings"], {"input_ids": ids, "attention_mask": mask,
                                                 "token_type_ids": np.zeros_like(ids)})[0]
            out[idx] = vec
        return out


@lru_cache(maxsize=2)
def embedder(folder: str = "") -> OnnxEmbedder:
    return OnnxEmbedder(Path(folder) if folder else None)
