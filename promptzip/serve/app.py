"""The proxy: an ASGI app (starlette) that compresses OpenAI-style requests on their way to an
upstream OpenAI-compatible server and relays the upstream's answer unchanged.

Routes:
* `POST /v1/chat/completions`: messages compressed under the policy (`policy.py`), then
  forwarded; the answer (JSON or server-sent events when `"stream": true`) is relayed byte for
  byte with the upstream's status, plus `x-promptzip-*` headers (tokens in and out, method,
  messages compressed, seconds, and `x-promptzip-error` when compression failed and the
  original was forwarded).
* `POST /v1/completions`: a long string `prompt` compressed (no query), then forwarded.
* `GET /v1/models`: passed through.
* `POST /v1/compress`: the `compress` command over HTTP (`text`, or `passages` + `query` for
  `rag`); compressed text and the report come back; nothing goes upstream.
* `GET /metrics` (Prometheus text format) and `GET /health`.

Models load once per process (the compressors keep their sessions) and compression runs in
worker threads (`workers` at a time), off the event loop, so other requests proceed while one
is compressed. The client's `Authorization` header is passed upstream (or the key from
`key_env` when the client sends none); neither is logged or stored. Errors are OpenAI-style
objects: 400 malformed or invalid requests, 413 bodies over `max_body` bytes, 502 upstream
unreachable, 504 upstream timeout; the upstream's own errors come back as it sent them.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..api import compress
from ..compressors import get_method
from ..errors import PromptzipError, UsageError
from ..rag import compress_passages
from ..runtime.endpoint import api_url
from ..tokens import load_tokenizer
from .policy import Policy, apply, message_texts, plan

HOP_BY_HOP = {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer",
              "transfer-encoding", "upgrade", "host", "content-length"}
PREFIX = "x-promptzip-"


@dataclass
class Outcome:
    body: dict
    tokens_in: int = 0
    tokens_out: int = 0
    compressed: int = 0
    seconds: float = 0.0
    error: str | None = None


class Engine:
    """Compression of request bodies (synchronous; the app calls it in worker threads)."""

    def chat(self, body: dict, policy: Policy) -> Outcome:
        t0 = time.perf_counter()
        counter = load_tokenizer(policy.tokenizer)
        count = functools.lru_cache(maxsize=None)(counter.count)  # each message's text is counted once
        messages = body.get("messages")
        todo = plan(messages, policy, count)  # checks that messages are objects
        total = sum(count(t) for m in messages for _, t in message_texts(m))
        if not todo.pieces:
            return Outcome(body, total, total, 0, time.perf_counter() - t0)
        query = todo.query if get_method(policy.method).query_aware else None
        sizes = [count(t) for _, _, t in todo.pieces]
        replaced: dict[tuple[int, int | None], str] = {}
        saved = 0
        for (i, part, text), n in zip(todo.pieces, sizes, strict=True):
            target = None
            if policy.target_tokens is not None:
                target = max(1, round(policy.target_tokens * n / sum(sizes)))
            res = compress(text, method=policy.method, ratio=policy.ratio if target is None else None,
                           target_tokens=target, query=query, force=policy.force, tokenizer=counter)
            if res.report.output_tokens < n:
                before, after = todo.frames.get((i, part), ("", ""))
                replaced[(i, part)] = before + res.text + after
                saved += n - res.report.output_tokens
        out = {**body, "messages": apply(messages, replaced)}
        return Outcome(out, total, total - saved, len(replaced), time.perf_counter() - t0)

    def completion(self, body: dict, policy: Policy) -> Outcome:
        t0 = time.perf_counter()
        counter = load_tokenizer(policy.tokenizer)
        prompt = body.get("prompt")
        if not isinstance(prompt, str):
            n = sum(counter.count(p) for p in prompt if isinstance(p, str)) if isinstance(prompt, list) else 0
            return Outcome(body, n, n)
        n = counter.count(prompt)
        if not policy.enabled or n < max(policy.min_tokens, 1):
            return Outcome(body, n, n, 0, time.perf_counter() - t0)
        res = compress(prompt, method=policy.method, ratio=policy.ratio, target_tokens=policy.target_tokens,
                       force=policy.force, tokenizer=counter)
        if res.report.output_tokens >= n:
            return Outcome(body, n, n, 0, time.perf_counter() - t0)
        return Outcome({**body, "prompt": res.text}, n, res.report.output_tokens, 1, time.perf_counter() - t0)

    def compress_call(self, body: dict, policy: Policy) -> dict:
        """`/v1/compress`: `text` (compress) or `passages` + `query` (rag)."""

        allowed = {"text", "passages", "query", "method", "ratio", "target_tokens", "force", "tokenizer",
                   "input_format", "top_k", "order", "relevance"}
        unknown = sorted(set(body) - allowed)
        if unknown:
            raise UsageError(f"unknown fields: {', '.join(unknown)}", f"Known: {', '.join(sorted(allowed))}.")
        settings = {k: body[k] for k in ("method", "ratio", "target_tokens", "force", "tokenizer") if k in body}
        pol = policy.with_overrides(settings)
        if "passages" in body:
            passages = body["passages"]
            if not isinstance(passages, list) or not body.get("query"):
                raise UsageError("passages must be a list and come with a query")
            res = compress_passages(str(body["query"]), passages, ratio=pol.ratio, target_tokens=pol.target_tokens,
                                    top_k=body.get("top_k"), order=body.get("order", "ends"),
                                    relevance_mode=body.get("relevance", "model"), tokenizer=pol.tokenizer,
                                    force=pol.force)
            return {"passages": res.texts, "report": res.report()}
        text = body.get("text")
        if not isinstance(text, str):
            raise UsageError("give `text` (a string) or `passages` (a list) with a `query`")
        res = compress(text, method=pol.method, ratio=pol.ratio, target_tokens=pol.target_tokens,
                       query=body.get("query"), force=pol.force, tokenizer=pol.tokenizer,
                       input_format=str(body.get("input_format", "auto")))
        return {"text": res.text, "report": res.report.to_dict()}


def error_body(message: str, kind: str, code: str | None = None) -> dict:
    return {"error": {"message": message, "type": kind, "param": None, "code": code}}


def create_app(upstream: str, policy: Policy | None = None, *, key_env: str = "PROMPTZIP_UPSTREAM_KEY",
               max_body: int = 32 << 20, workers: int = 2, timeout: float = 600.0, engine: Engine | None = None):
    """The ASGI app (needs the `serve` extra: starlette, httpx, prometheus-client)."""
    import anyio
    import httpx
    from prometheus_client import (
        CONTENT_TYPE_LATEST,
        CollectorRegistry,
        Counter,
        Histogram,
        generate_latest,
    )
    from starlette.applications import Starlette
    from starlette.background import BackgroundTask
    from starlette.requests import Request
    from starlette.responses import JSONResponse, Response, StreamingResponse
    from starlette.routing import Route


    policy = (policy or Policy()).check()
    engine = engine or Engine()
    limiter = anyio.CapacityLimiter(max(1, workers))
    key = os.environ.get(key_env) or None
    base = api_url(upstream, "").rstrip("/")
    registry = CollectorRegistry()
    m_requests = Counter("promptzip_requests", "Requests by route and status", ["route", "status"], registry=registry)
    m_in = Counter("promptzip_tokens_in", "Message tokens before compression", registry=registry)
    m_out = Counter("promptzip_tokens_out", "Message tokens after compression", registry=registry)
    m_seconds = Histogram("promptzip_compression_seconds", "Seconds spent compressing a request", registry=registry,
                          buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30))
    m_upstream = Counter("promptzip_upstream_errors", "Upstream failures by kind", ["kind"], registry=registry)
    m_failed = Counter("promptzip_compression_failures", "Requests forwarded uncompressed after a failure",
                       registry=registry)
    state: dict[str, Any] = {}

    @contextlib.asynccontextmanager
    async def lifespan(app):
        async with httpx.AsyncClient(timeout=httpx.Timeout(timeout, connect=10.0)) as client:
            state["client"] = client
            yield

    def reply(route: str, status: int, body: dict, headers: Mapping[str, str] | None = None) -> JSONResponse:
        m_requests.labels(route, str(status)).inc()
        return JSONResponse(body, status_code=status, headers=dict(headers or {}))

    async def read_json(request: Request) -> dict:
        declared = request.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > max_body:
            raise _Reject(413, f"request body over {max_body} bytes", "request_too_large")
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > max_body:
                raise _Reject(413, f"request body over {max_body} bytes", "request_too_large")
            chunks.append(chunk)
        try:
            body = json.loads(b"".join(chunks))
        except ValueError as exc:
            raise _Reject(400, f"the body is not valid JSON: {exc}", "invalid_json") from None
        if not isinstance(body, dict):
            raise _Reject(400, "the body must be a JSON object", "invalid_request")
        return body

    def request_policy(request: Request, body: dict) -> Policy:
        overrides = {k[len(PREFIX):]: v for k, v in request.headers.items() if k.lower().startswith(PREFIX)}
        field = body.pop("promptzip", None)
        if field is not None:
            if not isinstance(field, dict):
                raise UsageError("the promptzip field must be an object")
            overrides.update(field)
        return policy.with_overrides(overrides) if overrides else policy

    def upstream_headers(request: Request) -> dict[str, str]:
        out = {k.lower(): v for k, v in request.headers.items()
               if k.lower() not in HOP_BY_HOP and not k.lower().startswith(PREFIX)}
        if "authorization" not in out and key:
            out["authorization"] = f"Bearer {key}"
        out.setdefault("accept-encoding", "identity")  # relayed as sent: no encoding the client did not ask for
        out["content-type"] = "application/json"
        return out

    async def forward(route: str, request: Request, method: str, path: str, body: dict | None,
                      extra: Mapping[str, str]) -> Response:
        client: httpx.AsyncClient = state["client"]
        content = json.dumps(body).encode("utf-8") if body is not None else None
        req = client.build_request(method, base + path, headers=upstream_headers(request), content=content)
        try:
            resp = await client.send(req, stream=True)
        except httpx.TimeoutException as exc:
            m_upstream.labels("timeout").inc()
            return reply(route, 504, error_body(f"upstream {base} timed out: {exc}", "upstream_error",
                                                "upstream_timeout"), extra)
        except httpx.HTTPError as exc:
            m_upstream.labels("unreachable").inc()
            return reply(route, 502, error_body(f"cannot reach upstream {base}: {exc}", "upstream_error",
                                                "upstream_unreachable"), extra)
        if resp.status_code >= 400:
            m_upstream.labels(f"http_{resp.status_code}").inc()
        m_requests.labels(route, str(resp.status_code)).inc()
        headers = {k: v for k, v in resp.headers.items() if k.lower() not in HOP_BY_HOP}
        headers.update(extra)
        return StreamingResponse(resp.aiter_raw(), status_code=resp.status_code, headers=headers,
                                 background=BackgroundTask(resp.aclose))

    async def compressed(route: str, request: Request, fn) -> Response:
        try:
            body = await read_json(request)
            pol = request_policy(request, body)
        except _Reject as exc:
            return reply(route, exc.status, error_body(exc.message, "invalid_request_error", exc.code))
        except PromptzipError as exc:
            return reply(route, 400, error_body(str(exc) + (f" {exc.hint}" if exc.hint else ""),
                                                "invalid_request_error", "invalid_promptzip_setting"))
        if route == "chat" and not isinstance(body.get("messages"), list):
            return reply(route, 400, error_body("`messages` must be a list of message objects",
                                                "invalid_request_error", "invalid_messages"))
        try:
            out: Outcome = await anyio.to_thread.run_sync(fn, body, pol, limiter=limiter)
        except UsageError as exc:
            return reply(route, 400, error_body(str(exc), "invalid_request_error", "invalid_request"))
        except Exception as exc:  # noqa: BLE001 - any compression failure is the proxy's, not the client's
            m_failed.inc()
            if pol.on_error == "fail":
                return reply(route, 500, error_body(f"compression failed: {exc}", "promptzip_error",
                                                    "compression_failed"))
            out = Outcome(body, error=f"{type(exc).__name__}: {exc}"[:200])
        m_seconds.observe(out.seconds)
        m_in.inc(out.tokens_in)
        m_out.inc(out.tokens_out)
        extra = {PREFIX + "method": pol.method, PREFIX + "compressed-messages": str(out.compressed),
                 PREFIX + "seconds": f"{out.seconds:.4f}"}
        if out.error:  # forwarded as it came: no token counts were made
            extra[PREFIX + "error"] = out.error.replace("\n", " ").encode("ascii", "replace").decode()
        else:
            extra[PREFIX + "input-tokens"] = str(out.tokens_in)
            extra[PREFIX + "output-tokens"] = str(out.tokens_out)
        path = "/chat/completions" if route == "chat" else "/completions"
        return await forward(route, request, "POST", path, out.body, extra)

    async def chat(request: Request) -> Response:
        return await compressed("chat", request, engine.chat)

    async def completions(request: Request) -> Response:
        return await compressed("completions", request, engine.completion)

    async def models(request: Request) -> Response:
        return await forward("models", request, "GET", "/models", None, {})

    async def compress_route(request: Request) -> Response:
        try:
            body = await read_json(request)
        except _Reject as exc:
            return reply("compress", exc.status, error_body(exc.message, "invalid_request_error", exc.code))
        try:
            result = await anyio.to_thread.run_sync(engine.compress_call, body, policy, limiter=limiter)
        except PromptzipError as exc:
            return reply("compress", 400, error_body(str(exc) + (f" {exc.hint}" if exc.hint else ""),
                                                     "invalid_request_error", "invalid_request"))
        return reply("compress", 200, result)

    async def metrics(request: Request) -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    async def health(request: Request) -> Response:
        return JSONResponse({"status": "ok", "upstream": base, "method": policy.method})

    routes = [Route("/v1/chat/completions", chat, methods=["POST"]),
              Route("/v1/completions", completions, methods=["POST"]),
              Route("/v1/models", models, methods=["GET"]),
              Route("/v1/compress", compress_route, methods=["POST"]),
              Route("/metrics", metrics, methods=["GET"]),
              Route("/health", health, methods=["GET"])]
    return Starlette(routes=routes, lifespan=lifespan)


class _Reject(Exception):
    def __init__(self, status: int, message: str, code: str) -> None:
        super().__init__(message)
        self.status, self.message, self.code = status, message, code
