"""The settings both adapters take, and the call they make."""

from __future__ import annotations

from pydantic import BaseModel

from ..rag import PassagesResult, compress_passages


class PromptzipOptions(BaseModel):
    ratio: float | None = 0.5
    target_tokens: int | None = None
    top_k: int | None = None
    threshold: float | None = None
    order: str = "ends"
    relevance: str = "model"
    extract: bool = True
    tokenizer: str = "cl100k_base"

    def compress_texts(self, query: str, texts: list[str]) -> PassagesResult:
        ratio = None if self.target_tokens is not None else self.ratio
        return compress_passages(query, texts, ratio=ratio, target_tokens=self.target_tokens, top_k=self.top_k,
                                 threshold=self.threshold, order=self.order, relevance_mode=self.relevance,
                                 extract=self.extract, tokenizer=self.tokenizer)
