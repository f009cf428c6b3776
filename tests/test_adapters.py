"""LangChain and LlamaIndex adapters against the real libraries from PyPI (`make test-adapters`
installs the `adapters` extra and runs this tier: `pytest -m adapters`)."""

from __future__ import annotations

import json

import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.adapters
RECORD = json.loads((ROOT / "corpora" / "rag" / "sample.jsonl").read_text(encoding="utf-8").splitlines()[0])


def test_langchain_compressor_in_a_contextual_compression_retriever():
    pytest.importorskip("langchain_core")
    classic = pytest.importorskip("langchain_classic.retrievers")
    from langchain_core.documents import Document
    from langchain_core.retrievers import BaseRetriever

    from promptzip.adapters.langchain import PromptzipCompressor

    docs = [Document(page_content=p["text"], metadata=p["metadata"], id=p["id"]) for p in RECORD["ctxs"]]

    class Fixed(BaseRetriever):
        def _get_relevant_documents(self, query, *, run_manager=None):
            return docs

    retriever = classic.ContextualCompressionRetriever(base_compressor=PromptzipCompressor(ratio=0.3),
                                                       base_retriever=Fixed())
    out = retriever.invoke(RECORD["question"])
    assert 1 <= len(out) < len(docs)
    assert "River Tarrow" in " ".join(d.page_content for d in out)
    first = out[0]
    assert first.id == "a1" and first.metadata["source"] == "gazetteer" and first.metadata["promptzip_score"] == 1.0
    before, after = first.metadata["promptzip_tokens"]
    assert after <= before
    assert docs[0].metadata == RECORD["ctxs"][0]["metadata"]  # inputs untouched


def test_llama_index_postprocessor():
    pytest.importorskip("llama_index.core")
    from llama_index.core.schema import NodeWithScore, QueryBundle, TextNode

    from promptzip.adapters.llama_index import PromptzipPostprocessor

    nodes = [NodeWithScore(node=TextNode(text=p["text"], metadata=dict(p["metadata"]), id_=p["id"]), score=p["score"])
             for p in RECORD["ctxs"]]
    post = PromptzipPostprocessor(ratio=0.3, order="relevance")
    out = post.postprocess_nodes(nodes, query_bundle=QueryBundle(RECORD["question"]))
    assert 1 <= len(out) < len(nodes)
    assert out[0].node.node_id == "a1" and out[0].score == 1.0
    assert "River Tarrow" in out[0].node.get_content()
    assert out[0].node.metadata["source"] == "gazetteer"
    assert nodes[0].node.get_content() == RECORD["ctxs"][0]["text"]  # inputs untouched
    with pytest.raises(ValueError, match="query"):
        post.postprocess_nodes(nodes)


def _engine_keeps_question(messages: list[dict], question: str) -> str:
    from promptzip.serve.app import Engine
    from promptzip.serve.policy import Policy

    res = Engine().chat({"model": "m", "messages": messages}, Policy(min_tokens=50))
    assert res.compressed == 1 and res.tokens_out < 0.7 * res.tokens_in, (res.tokens_in, res.tokens_out)
    out = res.body["messages"][-1]["content"]
    assert question in out and "River Tarrow" in out
    return out


def _context() -> str:
    return "\n\n".join(p["text"] for p in RECORD["ctxs"])


def test_serve_splits_langchain_stuff_prompts_as_they_ship():
    stuff = pytest.importorskip("langchain_classic.chains.question_answering.stuff_prompt")
    q = RECORD["question"]
    text = stuff.PROMPT.format(context=_context(), question=q)
    out = _engine_keeps_question([{"role": "user", "content": text}], q)
    head, tail = stuff.prompt_template.split("{context}")
    assert out.startswith(head.strip()) and out.rstrip().endswith(tail.format(question=q).strip())


def test_serve_splits_llamaindex_qa_prompts_as_they_ship():
    prompts = pytest.importorskip("llama_index.core.prompts.default_prompts")
    chat_prompts = pytest.importorskip("llama_index.core.prompts.chat_prompts")
    q = RECORD["question"]
    text = prompts.DEFAULT_TEXT_QA_PROMPT.format(context_str=_context(), query_str=q)
    out = _engine_keeps_question([{"role": "user", "content": text}], q)
    assert out.startswith(prompts.DEFAULT_TEXT_QA_PROMPT_TMPL.split("{context_str}")[0].strip())
    msgs = chat_prompts.CHAT_TEXT_QA_PROMPT.format_messages(context_str=_context(), query_str=q)
    messages = [{"role": m.role.value, "content": m.content} for m in msgs]
    out = _engine_keeps_question(messages, q)
    assert messages[0]["role"] == "system"
