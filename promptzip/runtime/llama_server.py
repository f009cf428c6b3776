"""llama.cpp's own server from the prebuilt `xllamacpp` wheel: a GGUF model behind
OpenAI-compatible endpoints (`/v1/chat/completions`, `/v1/completions`, `/v1/models`) on a
local port, with no compiler involved.

    python -m promptzip.runtime.llama_server --model FILE.gguf [--port 8080] [--alias NAME]

prints `listening on http://HOST:PORT` once the model is loaded and serves until interrupted
(SIGINT or SIGTERM). It binds to loopback unless `--host` says otherwise. `-m rewrite
--endpoint http://HOST:PORT/v1` and the tests use it; llama.cpp's own log goes to stderr.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading


def serve(model: str, host: str = "127.0.0.1", port: int = 8080, ctx: int = 2048, threads: int = 2,
          alias: str | None = None, parallel: int = 1):
    """A started xllamacpp Server (its HTTP endpoints live as long as the object)."""
    try:
        import xllamacpp as xlc
    except ImportError:
        raise SystemExit("xllamacpp is not installed: pip install xllamacpp (a prebuilt CPU wheel), "
                         "or `make test`, which installs it") from None
    params = xlc.CommonParams()
    params.model.path = model
    params.n_ctx = ctx
    params.n_parallel = parallel
    params.cpuparams.n_threads = threads
    params.cpuparams_batch.n_threads = threads
    params.hostnames = [host]
    params.port = port
    if alias:
        params.model_alias = alias
    return xlc.Server(params)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m promptzip.runtime.llama_server", description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True, help="a GGUF file")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=8080)
    ap.add_argument("--ctx", type=int, default=2048, help="context tokens per slot")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--parallel", type=int, default=1, help="requests decoded together (slots)")
    ap.add_argument("--alias", default=None, help="the model name the server reports and accepts")
    args = ap.parse_args(argv)
    server = serve(args.model, args.host, args.port, args.ctx, args.threads, args.alias, args.parallel)
    print(f"listening on {server.listening_address}", flush=True)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    stop.wait()
    del server
    sys.exit(0)


if __name__ == "__main__":
    main()
