"""`promptzip serve` (the OpenAI-compatible compression proxy) and `promptzip mcp`."""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Annotated

import typer

from ..errors import PromptzipError
from .common import ForceOpt, err, handle_errors


def _need_extra() -> None:
    missing = []
    for module in ("starlette", "uvicorn", "httpx", "prometheus_client"):
        try:
            __import__(module)
        except ImportError:
            missing.append(module)
    if missing:
        raise PromptzipError(f"the serve extra is not installed (missing: {', '.join(missing)})",
                             "Install it: pip install 'promptzip[serve]'.")


def register(app: typer.Typer) -> None:
    @app.command("serve", epilog="Point any OpenAI client at it: base_url=http://127.0.0.1:8088/v1. "
                 "Per request, override the policy with `x-promptzip-KEY: VALUE` headers or a "
                 "`promptzip` object in the body (KEY: method, ratio, target_tokens, roles, "
                 "min_tokens, keep_last_user, split_last_user, query, force, tokenizer, on_error, enabled). "
                 "Routes: /v1/chat/completions, /v1/completions, /v1/models (passed through), "
                 "/v1/compress, /metrics (Prometheus), /health.")
    @handle_errors
    def serve(
        upstream: Annotated[str, typer.Option("--upstream", metavar="URL", help="The OpenAI-compatible "
                                              "server requests go to (e.g. http://127.0.0.1:8080/v1).")],
        host: Annotated[str, typer.Option("--host", help="Address to bind; loopback unless you mean it.")] = "127.0.0.1",
        port: Annotated[int, typer.Option("--port", min=1, max=65535)] = 8088,
        config: Annotated[Path | None, typer.Option("--config", metavar="FILE", help="TOML file of policy "
                                                    "keys (the same names as below); flags win.")] = None,
        method: Annotated[str | None, typer.Option("--method", "-m", help="Compression method "
                                                   "[default: extract].")] = None,
        ratio: Annotated[float | None, typer.Option("--ratio", "-r", help="Fraction of each compressed "
                                                    "message's tokens kept [default: 0.5].")] = None,
        target_tokens: Annotated[int | None, typer.Option("--target-tokens", "-t", help="Token budget for "
                                                          "all compressed messages of a request together.")] = None,
        roles: Annotated[str | None, typer.Option("--roles", help="Comma-separated roles whose messages "
                                                  "are compressed [default: user,tool].")] = None,
        min_tokens: Annotated[int | None, typer.Option("--min-tokens", help="Messages shorter than this pass "
                                                       "untouched [default: 200].")] = None,
        keep_last_user: Annotated[bool | None, typer.Option("--keep-last-user/--compress-last-user",
                                                            help="Keep the last user turn's question "
                                                            "verbatim (--compress-last-user: compress the "
                                                            "whole turn like any other) [default: keep].")] = None,
        split_last_user: Annotated[bool | None, typer.Option("--split-last-user/--no-split-last-user",
                                                             help="A long last user turn holding context and "
                                                             "a question (a RAG prompt): compress the context "
                                                             "around the question; off: pass the turn as it "
                                                             "is [default: split].")] = None,
        query: Annotated[bool | None, typer.Option("--query/--no-query", help="The last user turn is the "
                                                   "query of query-aware methods [default: on].")] = None,
        force: ForceOpt = None,
        tokenizer: Annotated[str | None, typer.Option("--tokenizer", help="Counting tokenizer "
                                                      "[default: cl100k_base].")] = None,
        on_error: Annotated[str | None, typer.Option("--on-error", help="forward (the original request, "
                                                     "with an x-promptzip-error header) or fail (HTTP "
                                                     "500) when compression fails [default: forward].")] = None,
        key_env: Annotated[str, typer.Option("--key-env", metavar="VAR", help="Environment variable with "
                                             "the upstream's API key, used when a client sends no "
                                             "Authorization header.")] = "PROMPTZIP_UPSTREAM_KEY",
        max_body_mb: Annotated[float, typer.Option("--max-body-mb", min=0.001, help="Largest request "
                                                   "body accepted (HTTP 413 above).")] = 32.0,
        workers: Annotated[int, typer.Option("--workers", min=1, max=64, help="Requests compressed at "
                                             "once (threads; the rest wait).")] = 2,
        timeout: Annotated[float, typer.Option("--timeout", min=1.0, help="Seconds to wait for the "
                                               "upstream.")] = 600.0,
        log_level: Annotated[str, typer.Option("--log-level", help="uvicorn's log level (access lines "
                                               "carry no headers or bodies).")] = "info",
    ) -> None:
        """Run an OpenAI-compatible proxy that compresses requests on their way to --upstream."""
        _need_extra()
        import uvicorn

        from ..runtime.endpoint import api_url
        from ..serve.app import create_app
        from ..serve.policy import load_policy

        api_url(upstream, "models")  # a bad URL is a usage error now, not on the first request
        policy = load_policy(config, method=method, ratio=ratio, target_tokens=target_tokens, roles=roles,
                             min_tokens=min_tokens, keep_last_user=keep_last_user,
                             split_last_user=split_last_user, query=query,
                             force=list(force) if force else None, tokenizer=tokenizer, on_error=on_error)
        try:
            loopback = ipaddress.ip_address(host).is_loopback
        except ValueError:
            loopback = host == "localhost"
        if not loopback:
            err(f"serve: warning: binding {host}: anyone who can reach this address can use the upstream "
                "through it with the key from ${key_env}")
        from ..api import compress

        compress("Loading the models before the first request.", method=policy.method, ratio=0.5,
                 tokenizer=policy.tokenizer)
        app_ = create_app(upstream, policy, key_env=key_env, max_body=int(max_body_mb * (1 << 20)),
                          workers=workers, timeout=timeout)
        target = policy.ratio if policy.target_tokens is None else f"{policy.target_tokens} tokens"
        err(f"serve: http://{host}:{port}/v1 -> {upstream} ({policy.method} at {target}; roles "
            f"{','.join(policy.roles)} of at least {policy.min_tokens} tokens)")
        uvicorn.run(app_, host=host, port=port, log_level=log_level, server_header=False)

    @app.command("mcp")
    @handle_errors
    def mcp_() -> None:
        """Run a stdio MCP server with the tools compress, rag and count_tokens."""
        try:
            import mcp  # noqa: F401
        except ImportError:
            raise PromptzipError("the mcp package is not installed",
                                 "Install it: pip install 'promptzip[serve]'.") from None
        from ..serve.mcp import main

        main()
