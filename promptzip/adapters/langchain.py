"""A LangChain document compressor: `PromptzipCompressor(ratio=0.3)` in a
`ContextualCompressionRetriever`, or `.compress_documents(docs, query)` directly.

Each document's `page_content` is compressed by `promptzip.compress_passages`; documents
that end up empty are dropped; metadata passes through with `promptzip_score` (relevance,
1 = best) and `promptzip_tokens` (before, after) added."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

try:
    from langchain_core.documents import Document
    from langchain_core.documents.compressor import BaseDocumentCompressor
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError("promptzip.adapters.langchain needs langchain-core: "
                      "pip install 'promptzip[adapters]'") from exc

from ._options import PromptzipOptions


class PromptzipCompressor(PromptzipOptions, BaseDocumentCompressor):

    def compress_documents(self, documents: Sequence[Document], query: str,
                           callbacks: Any = None) -> Sequence[Document]:
        if not documents:
            return []
        res = self.compress_texts(query, [d.page_content for d in documents])
        out = []
        for p in res.passages:
            doc = documents[p.index]
            meta = {**doc.metadata, "promptzip_score": p.score,
                    "promptzip_tokens": (p.tokens_before, p.tokens_after)}
            out.append(Document(page_content=p.text, metadata=meta, id=getattr(doc, "id", None)))
        return out
