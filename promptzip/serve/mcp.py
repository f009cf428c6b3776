"""`promptzip mcp`: a stdio MCP server (the official `mcp` SDK) with three tools that take the
CLI's parameters: `compress` (text -> compressed text and the report's numbers), `rag`
(question + retrieved passages -> the kept passages, compressed) and `count_tokens`.

Tools run in worker threads, so a long compression does not stall the session; models load
on first use and stay loaded for the life of the process. Bad arguments come back as tool
errors with the CLI's message.
"""

from __future__ import annotations

from typing import Any

import anyio

from .._version import __version__
from ..api import compress as run
from ..errors import PromptzipError
from ..rag import compress_passages
from ..tokens import load_tokenizer

SUMMARY = ("method", "input_tokens", "output_tokens", "ratio", "requested_ratio", "target_tokens",
           "numbers_kept", "names_kept", "input_format", "model", "tokenizer", "elapsed_ms", "warnings")


async def _run(fn) -> Any:
    """`fn` in a worker thread; promptzip's own errors become tool errors with the CLI's message."""
    from mcp.server.mcpserver.exceptions import ToolError

    try:
        return await anyio.to_thread.run_sync(fn)
    except PromptzipError as exc:
        raise ToolError(exc.render()) from None


def build_server():
    from mcp.server.mcpserver import MCPServer

    server = MCPServer("promptzip", version=__version__,
                       instructions="Compress prompts, documents and retrieved passages before they go to an LLM.")

    @server.tool(description="Compress a text (a prompt, a document, a tool output: JSON, logs, HTML, code, "
                 "tables and LaTeX keep their structure). Give ratio (fraction of tokens kept) or "
                 "target_tokens; a query makes query-aware methods keep what answers it.")
    async def compress(text: str, method: str = "extract", ratio: float | None = None,
                       target_tokens: int | None = None, query: str | None = None,
                       force: list[str] | None = None, tokenizer: str = "cl100k_base",
                       input_format: str = "auto") -> dict[str, Any]:

        res = await _run(lambda: run(
            text, method=method, ratio=ratio, target_tokens=target_tokens, query=query, force=force or (),
            tokenizer=tokenizer, input_format=input_format))
        report = res.report.to_dict()
        return {"text": res.text, "report": {k: report.get(k) for k in SUMMARY}}

    @server.tool(description="Compress the passages retrieved for a question: passages ranked by the "
                 "extract model's relevance (with a second hop for names in the best ones), the kept "
                 "ones thinned to the budget (ratio or target_tokens, default half).")
    async def rag(query: str, passages: list[str], ratio: float | None = None, target_tokens: int | None = None,
                  top_k: int | None = None, order: str = "ends", relevance: str = "model",
                  tokenizer: str = "cl100k_base") -> dict[str, Any]:

        res = await _run(lambda: compress_passages(
            query, passages, ratio=ratio, target_tokens=target_tokens, top_k=top_k, order=order,
            relevance_mode=relevance, tokenizer=tokenizer))
        return {"passages": res.texts, "report": res.report()}

    @server.tool(description="Count the tokens of a text in a tokenizer (cl100k_base, o200k_base, or a "
                 "tokenizer.json path).")
    async def count_tokens(text: str, tokenizer: str = "cl100k_base") -> dict[str, Any]:
        counter = await _run(lambda: load_tokenizer(tokenizer))
        return {"tokens": counter.count(text), "tokenizer": counter.name}

    return server


def main() -> None:
    build_server().run("stdio")
