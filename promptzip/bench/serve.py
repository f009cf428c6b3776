"""`make bench BENCH_SECTIONS=serve`: the compression proxy under load.

A stub upstream (a starlette app in its own process that answers every chat request at once
with a fixed completion) isolates the proxy's own cost. `promptzip serve` runs in a second
process in front of it with its defaults (extract at 0.5; long user and tool messages; the
last user turn kept and used as the query). The load is RAG-style conversations: a system
prompt, a user message holding five retrieved passages (SQuAD v2 half-dev contexts, or the
demo document's paragraphs without ../shared), and the question as the last turn; every
request differs, so the extract memo never answers for the model.

Phases, same clients (`CLIENTS` concurrent, httpx, one event loop in this process):
1. direct: the stub alone for `DIRECT_S` seconds (the baseline latency);
2. proxy: through `promptzip serve` for `LOAD_S` seconds;
3. one client, direct and through the proxy, `SINGLE_S` seconds each (the added latency of a
   request that does not wait in a queue).
Reported: requests/s, p50/p99 latency of both and the difference (the proxy's added
latency), errors, the proxy's RSS at the start, middle and end of the load, and the tokens
the upstream was spared (from the proxy's `x-promptzip-*` headers). The load generator shares
the 2 cores with the proxy, so the throughput is a floor.
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from ..runtime.llama_server import free_port
from .common import DEMO, SHARED

CLIENTS, DIRECT_S, LOAD_S, SINGLE_S = 32, 15.0, 60.0, 15.0
SYSTEM = "You are a helpful assistant. Answer from the retrieved passages only, and cite them."

STUB = '''
import json, sys, uvicorn
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route
ANSWER = {"id": "stub", "object": "chat.completion", "created": 0, "model": "stub",
          "choices": [{"index": 0, "message": {"role": "assistant", "content": "An answer."},
                       "finish_reason": "stop"}],
          "usage": {"prompt_tokens": 0, "completion_tokens": 3, "total_tokens": 3}}
async def chat(request):
    body = await request.json()
    n = sum(len(str(m.get("content", ""))) for m in body.get("messages", []))
    return JSONResponse({**ANSWER, "usage": {**ANSWER["usage"], "prompt_tokens": n}})
app = Starlette(routes=[Route("/v1/chat/completions", chat, methods=["POST"]),
                        Route("/v1/models", lambda r: JSONResponse({"data": []}), methods=["GET"])])
uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning")
'''


def conversations(n: int = 1000) -> list[list[dict]]:
    """`n` distinct RAG-style conversations."""
    rows = []
    squad = SHARED / "qa" / "squad_v2_half_dev.jsonl"
    if squad.is_file():
        with open(squad, encoding="utf-8") as f:
            for line in f:
                row = json.loads(line)
                rows.append((row["context"], row["question"]))
                if len(rows) >= n + 5:
                    break
    else:
        paras = [p for p in DEMO.read_text(encoding="utf-8").split("\n\n") if len(p) > 200]
        rows = [(paras[i % len(paras)] + f" (copy {i})", "What went wrong?") for i in range(n + 5)]
    out = []
    for i in range(n):
        passages = "\n\n".join(f"[{k + 1}] {rows[i + k][0]}" for k in range(5))
        out.append([{"role": "system", "content": SYSTEM},
                    {"role": "user", "content": f"Retrieved passages:\n\n{passages}"},
                    {"role": "user", "content": rows[i][1]}])
    return out


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _wait(url: str, proc: subprocess.Popen, timeout: float = 120) -> None:
    import httpx  # optional (the serve extra), loaded only when this section runs

    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{url} exited before answering")
        try:
            if httpx.get(url, timeout=2).status_code < 500:
                return
        except httpx.HTTPError:
            time.sleep(0.3)
    raise RuntimeError(f"{url} did not answer within {timeout:.0f} s")


async def _load(url: str, convs: list[list[dict]], seconds: float, proxy_pid: int | None,
                clients: int = CLIENTS) -> dict:
    import httpx  # optional (the serve extra), loaded only when this section runs

    latencies: list[float] = []
    errors, tokens_in, tokens_out, rss = 0, 0, 0, []
    next_conv = 0
    stop = time.perf_counter() + seconds

    async def client(http: httpx.AsyncClient) -> None:
        nonlocal next_conv, errors, tokens_in, tokens_out
        while time.perf_counter() < stop:
            conv = convs[next_conv % len(convs)]
            next_conv += 1
            t0 = time.perf_counter()
            try:
                resp = await http.post(url, json={"model": "stub", "messages": conv, "max_tokens": 16})
                ok = resp.status_code == 200 and resp.json()["choices"][0]["message"]["content"]
            except (httpx.HTTPError, ValueError, KeyError):
                ok = False
                resp = None
            if not ok:
                errors += 1
                continue
            latencies.append(time.perf_counter() - t0)
            tokens_in += int(resp.headers.get("x-promptzip-input-tokens", 0))
            tokens_out += int(resp.headers.get("x-promptzip-output-tokens", 0))

    async def sample_rss() -> None:
        for frac in (0.02, 0.5, 0.98):
            await asyncio.sleep(max(0.0, stop - seconds * (1 - frac) - time.perf_counter()))
            rss.append(_rss_mb(proxy_pid))

    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(timeout=300, limits=limits) as http:
        tasks = [client(http) for _ in range(clients)]
        if proxy_pid:
            tasks.append(sample_rss())
        t0 = time.perf_counter()
        await asyncio.gather(*tasks)
        wall = time.perf_counter() - t0
    q = statistics.quantiles(latencies, n=100) if len(latencies) > 1 else [float("nan")] * 99
    return {"requests": len(latencies), "errors": errors, "rps": len(latencies) / wall, "p50": q[49],
            "p99": q[98], "tokens_in": tokens_in, "tokens_out": tokens_out, "rss": rss}


def bench_serve() -> str:
    convs = conversations()
    loaded, single = convs[:800], convs[800:]  # the one-client phase reads conversations the memo never saw
    stub_port, proxy_port = free_port(), free_port()
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    stub = subprocess.Popen([sys.executable, "-c", STUB, str(stub_port)], env=env)
    proxy = subprocess.Popen([sys.executable, "-m", "promptzip", "serve", "--upstream",
                              f"http://127.0.0.1:{stub_port}/v1", "--port", str(proxy_port), "--log-level", "warning"],
                             env=env, stderr=subprocess.DEVNULL)
    try:
        _wait(f"http://127.0.0.1:{stub_port}/v1/models", stub)
        _wait(f"http://127.0.0.1:{proxy_port}/health", proxy)
        direct = asyncio.run(_load(f"http://127.0.0.1:{stub_port}/v1/chat/completions", loaded, DIRECT_S, None))
        load = asyncio.run(_load(f"http://127.0.0.1:{proxy_port}/v1/chat/completions", loaded, LOAD_S, proxy.pid))
        one_direct = asyncio.run(_load(f"http://127.0.0.1:{stub_port}/v1/chat/completions", single, SINGLE_S,
                                       None, clients=1))
        one = asyncio.run(_load(f"http://127.0.0.1:{proxy_port}/v1/chat/completions", single, SINGLE_S, None,
                                clients=1))
    finally:
        for p in (proxy, stub):
            p.terminate()
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
    source = ("SQuAD v2 half-dev contexts" if (SHARED / "qa").is_dir() else "the demo document's paragraphs")
    saved = 1 - load["tokens_out"] / load["tokens_in"] if load["tokens_in"] else 0.0
    rss = " / ".join(f"{x:.0f}" for x in load["rss"])
    lines = [
        f"{CLIENTS} concurrent clients (httpx, one event loop in the benchmark process) against a stub upstream "
        f"that answers at once; requests are {len(loaded)} distinct RAG-style conversations (system prompt, five "
        f"retrieved passages from {source} in one user message, the question as the last turn), sent in "
        "rotation. `promptzip serve` with its defaults: extract at 0.5 on long user and tool messages, the "
        f"last turn kept and used as the query; `--workers 2`. The one-client rows read {len(single)} other "
        "conversations.",
        "",
        "| path | seconds | requests | errors | requests/s | p50 latency (s) | p99 latency (s) |",
        "|---|---:|---:|---:|---:|---:|---:|",
        f"| direct to the stub | {DIRECT_S:.0f} | {direct['requests']} | {direct['errors']} | {direct['rps']:.1f} | "
        f"{direct['p50']:.3f} | {direct['p99']:.3f} |",
        f"| through `promptzip serve` | {LOAD_S:.0f} | {load['requests']} | {load['errors']} | {load['rps']:.1f} | "
        f"{load['p50']:.3f} | {load['p99']:.3f} |",
        f"| one client, direct | {SINGLE_S:.0f} | {one_direct['requests']} | {one_direct['errors']} | "
        f"{one_direct['rps']:.1f} | {one_direct['p50']:.3f} | {one_direct['p99']:.3f} |",
        f"| one client, through the proxy | {SINGLE_S:.0f} | {one['requests']} | {one['errors']} | {one['rps']:.1f} | "
        f"{one['p50']:.3f} | {one['p99']:.3f} |",
        "",
        f"Added latency of the proxy with one client (the compression itself): p50 "
        f"{one['p50'] - one_direct['p50']:.3f} s, p99 {one['p99'] - one_direct['p99']:.3f} s. With {CLIENTS} "
        f"clients: p50 {load['p50'] - direct['p50']:.3f} s, p99 {load['p99'] - direct['p99']:.3f} s "
        "(queued on 2 cores, mostly waiting for a compression worker). Proxy RSS at the "
        f"start / middle / end of the load: {rss} MB. Tokens in the conversations' messages: "
        f"{load['tokens_in']:,} in, {load['tokens_out']:,} sent upstream ({saved:.0%} saved).",
    ]
    return "\n".join(lines)
