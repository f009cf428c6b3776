"""MiniLM (all-MiniLM-L6-v2) sentence embeddings: mean pooling, unit length (torch, CPU)."""

from __future__ import annotations

from pathlib import Path

from ..runtime.store import model_path

MODEL = "minilm-l6-v2"


class Embedder:
    def __init__(self, path: Path | None = None, max_tokens: int = 256) -> None:
        import torch
        from transformers import AutoModel, AutoTokenizer

        folder = path or model_path(MODEL)
        self.name = MODEL
        self._torch = torch
        self.tok = AutoTokenizer.from_pretrained(str(folder))
        self.model = AutoModel.from_pretrained(str(folder)).eval()
        self.max_tokens = max_tokens

    def embed(self, texts: list[str]):
        torch = self._torch
        enc = self.tok(texts, padding=True, truncation=True, max_length=self.max_tokens,
                       return_tensors="pt")
        with torch.inference_mode():
            hidden = self.model(**enc).last_hidden_state
        mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)
        return torch.nn.functional.normalize(pooled, dim=-1)

    def similarity(self, a: str, b: str) -> float:
        if not a.strip() or not b.strip():
            return 0.0
        va, vb = self.embed([a, b])
        return float((va * vb).sum())
