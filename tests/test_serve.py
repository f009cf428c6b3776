"""`promptzip serve` (the compression proxy) end to end: the real `openai` client -> the proxy
(uvicorn on loopback) -> llama.cpp's real server; bad input; `/v1/compress`; `/metrics`; and
`promptzip mcp` through the MCP SDK's own stdio client."""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from promptzip.errors import UsageError
from promptzip.runtime.llama_server import free_port
from promptzip.serve.policy import Policy, load_policy, plan
from tests.conftest import DEMO, needs_models

pytest.importorskip("starlette", reason="the serve extra is not installed (`make test` installs it)")
httpx = pytest.importorskip("httpx", reason="the serve extra is not installed (`make test` installs it)")

QUESTION = "Who owns the checklist of library defaults?"


def _count(text: str) -> int:
    return len(text.split())


# -- policy -----------------------------------------------------------------------------------
def test_the_default_policy_compresses_long_user_and_tool_messages_but_not_system_or_the_last_turn():
    long = "word " * 300
    msgs = [{"role": "system", "content": long}, {"role": "user", "content": long},
            {"role": "assistant", "content": long}, {"role": "tool", "content": long, "tool_call_id": "1"},
            {"role": "user", "content": [{"type": "text", "text": "short"}, {"type": "text", "text": long}]},
            {"role": "user", "content": "What now? " + long}]
    p = plan(msgs, Policy(min_tokens=200), _count)
    assert [(i, part) for i, part, _ in p.pieces] == [(1, None), (3, None), (4, 1)]
    assert p.query.startswith("What now?")
    p = plan(msgs, Policy(min_tokens=200, roles=("user",), keep_last_user=False), _count)
    assert [(i, part) for i, part, _ in p.pieces] == [(1, None), (4, 1), (5, None)]
    assert plan(msgs, Policy(enabled=False), _count).pieces == []


RAG_RECORD = json.loads((DEMO.parent.parent / "rag" / "sample.jsonl").read_text(encoding="utf-8").splitlines()[0])
RAG_CONTEXT = "\n\n".join(p["text"] for p in RAG_RECORD["ctxs"])


def _one_turn(template: str) -> list[dict]:
    return [{"role": "system", "content": "You answer briefly."},
            {"role": "user", "content": template.format(context=RAG_CONTEXT, question=RAG_RECORD["question"])}]


# three shapes of the single-message RAG prompt, in our own words: context then a marked question;
# rule lines around the context and a `Query:` line; the question first, then a `Context:` marker
ONE_TURN = ("Read the passages below and answer the question at the end; say so if they do not tell.\n\n"
            "{context}\n\nQuestion: {question}\nAnswer:",
            "The material follows.\n=====\n{context}\n=====\nUse only the material above.\nQuery: {question}\n"
            "Answer: ",
            "Answer in one sentence.\nQuestion: {question}\nContext: {context}\nAnswer:")


@pytest.mark.parametrize("template", ONE_TURN)
def test_a_long_last_user_turn_is_split_around_its_question(template):
    msgs = _one_turn(template)
    p = plan(msgs, Policy(min_tokens=50), _count)
    assert p.query == RAG_RECORD["question"]
    ((i, part, context),) = p.pieces
    before, after = p.frames[(i, part)]
    assert i == 1 and before + context + after == msgs[1]["content"]
    assert context.strip().startswith("Aldermoor is a market town") and context.strip().endswith(
        RAG_RECORD["ctxs"][-1]["text"])
    assert RAG_RECORD["question"] in before + after and "Question" not in context and "Query" not in context
    assert plan(msgs, Policy(min_tokens=50, split_last_user=False), _count).pieces == []
    assert plan(msgs, Policy(min_tokens=5000), _count).pieces == []  # short: untouched


def test_a_last_user_turn_without_a_question_or_with_a_short_last_part():
    long = "word " * 300
    assert plan([{"role": "user", "content": long}], Policy(min_tokens=50), _count).pieces == []
    parts = [{"type": "text", "text": RAG_CONTEXT}, {"type": "text", "text": RAG_RECORD["question"]}]
    p = plan([{"role": "user", "content": parts}], Policy(min_tokens=50), _count)
    assert p.query == RAG_RECORD["question"] and [(i, part) for i, part, _ in p.pieces] == [(0, 0)]


@needs_models
@pytest.mark.parametrize("template", ONE_TURN)
def test_the_engine_compresses_the_context_and_keeps_the_question_verbatim(template):
    from promptzip.serve.app import Engine

    msgs = _one_turn(template)
    res = Engine().chat({"model": "m", "messages": msgs}, Policy(min_tokens=50))
    out = res.body["messages"][1]["content"]
    assert res.compressed == 1 and res.tokens_out < 0.7 * res.tokens_in
    assert RAG_RECORD["question"] in out and "River Tarrow" in out  # the answer, kept for the question
    head, tail = template.split("{context}")
    assert out.startswith(head.format(question=RAG_RECORD["question"]).rstrip())
    assert out.rstrip().endswith(tail.format(question=RAG_RECORD["question"]).strip())


def test_overrides_come_as_header_strings_or_json_and_bad_ones_are_refused():
    p = Policy().with_overrides({"Ratio": "0.3", "roles": "user", "keep-last-user": "false", "force": "A,B"})
    assert (p.ratio, p.roles, p.keep_last_user, p.force) == (0.3, ("user",), False, ("A", "B"))
    p = Policy().with_overrides({"target_tokens": 500})
    assert p.ratio is None and p.target_tokens == 500  # a budget replaces the server's ratio
    for bad in ({"colour": "red"}, {"ratio": "1.5"}, {"ratio": "x"}, {"method": "zip"}, {"enabled": "maybe"},
                {"on_error": "explode"}, {"min_tokens": 2.5}):
        with pytest.raises(UsageError):
            Policy().with_overrides(bad)


def test_a_policy_file_is_read_and_flags_win(tmp_path):
    path = tmp_path / "policy.toml"
    path.write_text('[serve]\nmethod = "lexical"\nratio = 0.4\nroles = ["tool"]\n')
    p = load_policy(path, ratio=0.25, method=None)
    assert (p.method, p.ratio, p.roles) == ("lexical", 0.25, ("tool",))
    path.write_text("ratio = [")
    with pytest.raises(UsageError, match="cannot read the policy file"):
        load_policy(path)


# -- the proxy on loopback ----------------------------------------------------------------------
class _Uvicorn:
    def __init__(self, app) -> None:
        import uvicorn

        self.port = free_port()
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> str:
        self.thread.start()
        deadline = time.time() + 30
        while not self.server.started and time.time() < deadline:
            time.sleep(0.05)
        assert self.server.started, "the proxy did not start"
        return f"http://127.0.0.1:{self.port}"

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(10)


@pytest.fixture(scope="module")
def proxy(llama_server):
    from promptzip.serve.app import create_app

    app = create_app(llama_server, Policy(ratio=0.33, min_tokens=100), max_body=200_000)
    with _Uvicorn(app) as url:
        yield url


def _messages() -> list[dict]:
    return [{"role": "system", "content": "Answer from the report."},
            {"role": "user", "content": DEMO.read_text()},
            {"role": "user", "content": QUESTION}]


@needs_models
def test_the_openai_client_gets_a_completion_of_the_compressed_request(proxy, llama_server):
    import openai

    direct = openai.OpenAI(base_url=llama_server, api_key="unused")
    through = openai.OpenAI(base_url=proxy + "/v1", api_key="unused")
    full = direct.chat.completions.create(model="smollm2", messages=_messages(), max_tokens=8, temperature=0)
    raw = through.chat.completions.with_raw_response.create(model="smollm2", messages=_messages(), max_tokens=8,
                                                            temperature=0)
    reply = raw.parse()
    assert reply.choices[0].message.content is not None and reply.object == "chat.completion"
    # the upstream counted the prompt it received: a third of the long message, the rest as it was
    assert reply.usage.prompt_tokens < 0.6 * full.usage.prompt_tokens, (reply.usage, full.usage)
    h = raw.headers
    assert h["x-promptzip-method"] == "extract" and h["x-promptzip-compressed-messages"] == "1"
    assert int(h["x-promptzip-output-tokens"]) < 0.5 * int(h["x-promptzip-input-tokens"])
    assert "x-promptzip-error" not in h


@needs_models
def test_streaming_is_relayed_as_server_sent_events(proxy):
    import openai

    client = openai.OpenAI(base_url=proxy + "/v1", api_key="unused")
    chunks = list(client.chat.completions.create(model="smollm2", messages=_messages(), max_tokens=8,
                                                 temperature=0, stream=True))
    assert len(chunks) >= 2 and all(c.object == "chat.completion.chunk" for c in chunks)
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices).strip()
    with httpx.stream("POST", proxy + "/v1/chat/completions", json={
            "model": "smollm2", "messages": _messages(), "max_tokens": 4, "stream": True}) as resp:
        assert resp.headers["content-type"].startswith("text/event-stream")
        assert resp.headers["x-promptzip-compressed-messages"] == "1"
        assert any(line.startswith("data: ") for line in resp.iter_lines())


@needs_models
def test_per_request_settings_and_short_requests(proxy):
    body = {"model": "smollm2", "messages": _messages(), "max_tokens": 2, "promptzip": {"enabled": False}}
    resp = httpx.post(proxy + "/v1/chat/completions", json=body, timeout=120)
    assert resp.status_code == 200 and resp.headers["x-promptzip-compressed-messages"] == "0"
    assert resp.headers["x-promptzip-input-tokens"] == resp.headers["x-promptzip-output-tokens"]
    resp = httpx.post(proxy + "/v1/chat/completions", headers={"x-promptzip-ratio": "0.2"}, timeout=120,
                      json={"model": "smollm2", "messages": _messages(), "max_tokens": 2})
    assert int(resp.headers["x-promptzip-output-tokens"]) < 0.35 * int(resp.headers["x-promptzip-input-tokens"])
    short = [{"role": "user", "content": "Say hi."}]
    resp = httpx.post(proxy + "/v1/chat/completions", json={"model": "smollm2", "messages": short, "max_tokens": 2},
                      timeout=120)
    assert resp.status_code == 200 and resp.headers["x-promptzip-compressed-messages"] == "0"
    models = httpx.get(proxy + "/v1/models", timeout=30)
    assert models.status_code == 200 and models.json()["data"]


@needs_models
def test_bad_requests_get_openai_style_errors_and_the_server_keeps_serving(proxy):
    cases = [
        (httpx.post(proxy + "/v1/chat/completions", content=b"{not json", timeout=30), 400, "invalid_json"),
        (httpx.post(proxy + "/v1/chat/completions", json=[1, 2], timeout=30), 400, "invalid_request"),
        (httpx.post(proxy + "/v1/chat/completions", json={"model": "m", "messages": "hi"}, timeout=30), 400,
         "invalid_messages"),
        (httpx.post(proxy + "/v1/chat/completions", json={"model": "m", "messages": [], "promptzip": {"colour": 1}},
                    timeout=30), 400, "invalid_promptzip_setting"),
        (httpx.post(proxy + "/v1/chat/completions", headers={"x-promptzip-ratio": "7"},
                    json={"model": "m", "messages": []}, timeout=30), 400, "invalid_promptzip_setting"),
        (httpx.post(proxy + "/v1/chat/completions", content=b"x" * 300_000, timeout=30), 413, "request_too_large"),
        (httpx.post(proxy + "/v1/compress", json={"txt": "a"}, timeout=30), 400, "invalid_request"),
    ]
    for resp, status, code in cases:
        assert resp.status_code == status, resp.text
        err = resp.json()["error"]
        assert err["code"] == code and err["message"] and err["type"] == "invalid_request_error"
    assert httpx.get(proxy + "/health", timeout=30).json()["status"] == "ok"


@needs_models
def test_an_unreachable_upstream_is_a_502_and_a_counted_error():
    from promptzip.serve.app import create_app

    app = create_app(f"http://127.0.0.1:{free_port()}/v1", Policy(min_tokens=100))
    with _Uvicorn(app) as url:
        resp = httpx.post(url + "/v1/chat/completions", json={"model": "m", "messages": _messages()}, timeout=60)
        assert resp.status_code == 502
        assert resp.json()["error"]["code"] == "upstream_unreachable"
        assert resp.headers["x-promptzip-compressed-messages"] == "1"  # it compressed, then could not forward
        again = httpx.post(url + "/v1/compress", json={"text": DEMO.read_text(), "ratio": 0.3}, timeout=60)
        assert again.status_code == 200  # still serving
        metrics = httpx.get(url + "/metrics", timeout=30).text
        assert 'promptzip_upstream_errors_total{kind="unreachable"} 1.0' in metrics


@needs_models
def test_compress_over_http_and_the_metrics(proxy):
    text = DEMO.read_text()
    resp = httpx.post(proxy + "/v1/compress", json={"text": text, "ratio": 0.3, "query": QUESTION}, timeout=60)
    assert resp.status_code == 200, resp.text
    data = resp.json()
    assert data["report"]["output_tokens"] < 0.4 * data["report"]["input_tokens"] and "Jonas Weber" in data["text"]
    rag = httpx.post(proxy + "/v1/compress", timeout=60, json={
        "query": QUESTION, "ratio": 0.5, "passages": ["Jonas Weber owns the checklist of library defaults.",
                                                      "The weather in Lisbon was mild all week."]})
    assert rag.status_code == 200 and "Jonas Weber" in json.dumps(rag.json())
    metrics = httpx.get(proxy + "/metrics", timeout=30)
    assert metrics.status_code == 200 and metrics.headers["content-type"].startswith("text/plain")
    text = metrics.text
    assert 'promptzip_requests_total{route="compress",status="200"}' in text
    tokens_in = float(next(ln.split()[-1] for ln in text.splitlines() if ln.startswith("promptzip_tokens_in_total")))
    tokens_out = float(next(ln.split()[-1] for ln in text.splitlines() if ln.startswith("promptzip_tokens_out_total")))
    assert tokens_in > tokens_out > 0
    assert "promptzip_compression_seconds_count" in text


# -- MCP ----------------------------------------------------------------------------------------
@needs_models
def test_the_mcp_server_answers_the_sdks_own_stdio_client():
    pytest.importorskip("mcp", reason="the serve extra is not installed (`make test` installs it)")
    import anyio
    from mcp import ClientSession
    from mcp.client.stdio import StdioServerParameters, stdio_client

    params = StdioServerParameters(command=sys.executable, args=["-m", "promptzip", "mcp"],
                                   env={k: v for k, v in os.environ.items() if k.startswith(("PROMPTZIP", "TIKTOKEN"))})

    async def session_calls():
        async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
            await session.initialize()
            tools = {t.name: t for t in (await session.list_tools()).tools}
            counted = await session.call_tool("count_tokens", {"text": "hello world"})
            squeezed = await session.call_tool("compress", {"text": DEMO.read_text(), "ratio": 0.3,
                                                            "query": QUESTION})
            bad = await session.call_tool("compress", {"text": "x", "ratio": 3})
            return tools, counted, squeezed, bad

    tools, counted, squeezed, bad = anyio.run(session_calls)
    assert set(tools) == {"compress", "rag", "count_tokens"}
    assert set(tools["compress"].input_schema["properties"]) >= {"text", "method", "ratio", "target_tokens",
                                                                 "query", "force", "tokenizer"}
    assert counted.structured_content["tokens"] == 2
    report = squeezed.structured_content["report"]
    assert report["output_tokens"] < 0.4 * report["input_tokens"]
    assert "Jonas Weber" in squeezed.structured_content["text"]
    assert bad.is_error and "ratio" in bad.content[0].text


class _Broken:
    """An engine whose compression fails (a stand-in for a model that crashed mid-request)."""

    def chat(self, body, policy):
        raise RuntimeError("the model fell over")

    completion = compress_call = chat


@needs_models
def test_a_compression_failure_forwards_the_original_or_fails_as_configured(llama_server):
    from promptzip.serve.app import create_app

    app = create_app(llama_server, Policy(min_tokens=100), engine=_Broken())
    with _Uvicorn(app) as url:
        resp = httpx.post(url + "/v1/chat/completions", timeout=120,
                          json={"model": "smollm2", "messages": _messages(), "max_tokens": 2})
        assert resp.status_code == 200 and resp.json()["choices"]
        assert resp.headers["x-promptzip-error"] == "RuntimeError: the model fell over"
        assert resp.headers["x-promptzip-compressed-messages"] == "0" and "x-promptzip-input-tokens" not in resp.headers
        resp = httpx.post(url + "/v1/chat/completions", headers={"x-promptzip-on-error": "fail"}, timeout=120,
                          json={"model": "smollm2", "messages": _messages(), "max_tokens": 2})
        assert resp.status_code == 500 and resp.json()["error"]["code"] == "compression_failed"
        metrics = httpx.get(url + "/metrics", timeout=30).text
        assert "promptzip_compression_failures_total 2.0" in metrics


class _Overloaded(BaseHTTPRequestHandler):
    """An upstream that fails every request with its own OpenAI-style error."""

    def _fail(self):
        self.rfile.read(int(self.headers.get("Content-Length", 0) or 0))
        body = json.dumps({"error": {"message": "model overloaded", "type": "server_error", "code": 503}}).encode()
        self.send_response(503)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_POST = do_GET = _fail  # noqa: N815 - the stdlib's names

    def log_message(self, *args):
        pass


def test_a_failing_upstreams_error_comes_back_as_it_sent_it():
    from promptzip.serve.app import create_app

    upstream = ThreadingHTTPServer(("127.0.0.1", 0), _Overloaded)
    threading.Thread(target=upstream.serve_forever, daemon=True).start()
    try:
        app = create_app(f"http://127.0.0.1:{upstream.server_port}/v1", Policy(method="truncate"))
        with _Uvicorn(app) as url:
            resp = httpx.post(url + "/v1/chat/completions", timeout=30,
                              json={"model": "m", "messages": [{"role": "user", "content": "hi"}]})
            assert resp.status_code == 503 and resp.json()["error"]["message"] == "model overloaded"
            assert resp.headers["x-promptzip-compressed-messages"] == "0"
            assert httpx.get(url + "/v1/models", timeout=30).status_code == 503
            assert httpx.get(url + "/health", timeout=30).status_code == 200  # still serving
            metrics = httpx.get(url + "/metrics", timeout=30).text
            assert 'promptzip_upstream_errors_total{kind="http_503"} 2.0' in metrics
    finally:
        upstream.shutdown()
