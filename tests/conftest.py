from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "corpora"
DEMO = ROOT / "corpora" / "demo" / "incident-report.md"

needs_shared = pytest.mark.skipif(
    not SHARED.is_dir(),
    reason="../shared/corpora is not beside this checkout (CI has it; a user's clone does not)",
)

# Base models are read from where `make models` put them (before PROMPTZIP_HOME is moved).
_MODELS = Path(
    os.environ.get("PROMPTZIP_MODELS")
    or Path(os.environ.get("PROMPTZIP_HOME") or Path.home() / ".promptzip").expanduser() / "models"
)
os.environ["PROMPTZIP_MODELS"] = str(_MODELS)
needs_models = pytest.mark.skipif(
    not all((_MODELS / name / "manifest.json").is_file()
            for name in ("minilm-l6-v2", "smollm2-135m-instruct")),
    reason=f"base models are not prepared in {_MODELS}: run `make models`",
)

# Keep every cache of the test session away from the user's: tiktoken's BPE cache and
# PROMPTZIP_HOME (set per test below).
_SESSION_TMP = Path(tempfile.mkdtemp(prefix="promptzip-tests-"))
os.environ["TIKTOKEN_CACHE_DIR"] = str(_SESSION_TMP / "tiktoken")
atexit.register(shutil.rmtree, _SESSION_TMP, True)  # not left behind in /tmp after the session


@pytest.fixture(autouse=True)
def _home(tmp_path, monkeypatch):
    monkeypatch.setenv("PROMPTZIP_HOME", str(tmp_path / "home"))
    for var in ("PROMPTZIP_METHOD", "PROMPTZIP_TOKENIZER", "PROMPTZIP_ERRORS", "PROMPTZIP_DEBUG"):
        monkeypatch.delenv(var, raising=False)


@pytest.fixture(scope="session")
def demo_text() -> str:
    return DEMO.read_text(encoding="utf-8")


@pytest.fixture(scope="session")
def llama_server():
    """A real OpenAI-compatible server: llama.cpp's (prebuilt xllamacpp wheel) serving the
    SmolLM2 GGUF as `smollm2` on a loopback port; its `/v1` URL."""
    pytest.importorskip("xllamacpp", reason="xllamacpp is not installed (`make test` installs it)")
    found = sorted((_MODELS / "smollm2-135m-instruct").glob("*.gguf"))
    if not found:
        pytest.skip("SmolLM2 GGUF not prepared: run `make models`")
    from promptzip.runtime.llama_server import LocalServer

    with LocalServer(found[0], alias="smollm2", ctx=2048, threads=2, parallel=2) as url:
        yield url
