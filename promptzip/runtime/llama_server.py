"""llama.cpp's own server from the prebuilt `xllamacpp` wheel: a GGUF model behind
OpenAI-compatible endpoints (`/v1/chat/completions`, `/v1/completions`, `/v1/models`) on a
local port, with no compiler involved.

    python -m promptzip.runtime.llama_server --model FILE.gguf [--port 8080] [--alias NAME]

prints `listening on http://HOST:PORT` once the model is loaded and serves until interrupted
(SIGINT or SIGTERM). It binds to loopback unless `--host` says otherwise. `-m rewrite
--endpoint http://HOST:PORT/v1` and the tests use it; llama.cpp's own log goes to stderr.

`LocalServer` runs that command as a child process on a free loopback port and waits until it
answers (the eval reader and the tests use it); its log goes to a file, since a pipe nobody
reads would fill and stall the server.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

from ..errors import ModelError


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LocalServer:
    """`with LocalServer(gguf, alias="qwen") as url:` an OpenAI-compatible server of `gguf` at
    `url` (`http://127.0.0.1:PORT/v1`) for the block's duration."""

    def __init__(self, model: str | Path, alias: str, ctx: int = 4096, threads: int | None = None,
                 parallel: int = 1, start_timeout: float = 180.0) -> None:
        self.model, self.alias, self.ctx, self.parallel = str(model), alias, ctx, parallel
        self.threads = threads or min(4, os.cpu_count() or 2)
        self.start_timeout = start_timeout
        self.proc: subprocess.Popen | None = None
        self.url = ""

    def __enter__(self) -> str:
        try:
            import xllamacpp  # noqa: F401
        except ImportError:
            raise ModelError("xllamacpp is not installed", "pip install 'promptzip[eval]' (a prebuilt CPU "
                             "wheel of llama.cpp's server), or `make test`, which installs it.") from None
        port = free_port()
        self.log = tempfile.TemporaryFile("w+")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "promptzip.runtime.llama_server", "--model", self.model, "--port", str(port),
             "--ctx", str(self.ctx * self.parallel), "--threads", str(self.threads), "--parallel", str(self.parallel),
             "--alias", self.alias], stdout=self.log, stderr=subprocess.STDOUT, text=True)
        self.url = f"http://127.0.0.1:{port}/v1"
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                self.log.seek(0)
                tail = self.log.read()[-400:]
                self.close()
                raise ModelError(f"llama.cpp server for {self.model} exited: {tail}",
                                 "Check the model file with `promptzip models verify`.")
            try:
                with urllib.request.urlopen(self.url + "/models", timeout=2) as resp:
                    if resp.status == 200:
                        return self.url
            except OSError:
                time.sleep(0.3)
        self.close()
        raise ModelError(f"llama.cpp server for {self.model} did not answer within {self.start_timeout:.0f} s")

    def close(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self.proc = None
            self.log.close()

    def __exit__(self, *exc) -> None:
        self.close()


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
        params.model_alias = {alias}  # a set of names: a bare string would be iterated as its letters
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
