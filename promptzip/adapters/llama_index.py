"""A LlamaIndex node postprocessor: `PromptzipPostprocessor(ratio=0.3)` in a query engine's
`node_postprocessors`, or `.postprocess_nodes(nodes, query_str=...)` directly.

Each node's text is compressed by `promptzip.compress_passages` (the query comes from the
query bundle); nodes that end up empty are dropped; a kept node is a copy with the compressed
text, its score replaced by the promptzip relevance (1 = best) and its metadata extended with
`promptzip_tokens` (before, after)."""

from __future__ import annotations

try:
    from llama_index.core.postprocessor.types import BaseNodePostprocessor
    from llama_index.core.schema import NodeWithScore, QueryBundle
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError("promptzip.adapters.llama_index needs llama-index-core: "
                      "pip install 'promptzip[adapters]'") from exc

from ._options import PromptzipOptions


class PromptzipPostprocessor(PromptzipOptions, BaseNodePostprocessor):

    @classmethod
    def class_name(cls) -> str:
        return "PromptzipPostprocessor"

    def _postprocess_nodes(self, nodes: list[NodeWithScore],
                           query_bundle: QueryBundle | None = None) -> list[NodeWithScore]:
        if not nodes:
            return []
        if query_bundle is None or not query_bundle.query_str.strip():
            raise ValueError("PromptzipPostprocessor needs the query: pass query_str or a query bundle")
        res = self.compress_texts(query_bundle.query_str, [n.node.get_content() for n in nodes])
        out = []
        for p in res.passages:
            node = nodes[p.index].node.model_copy(deep=True)
            node.set_content(p.text)
            node.metadata["promptzip_tokens"] = (p.tokens_before, p.tokens_after)
            out.append(NodeWithScore(node=node, score=p.score))
        return out
