"""Installed as a user installs it: the built wheel into a fresh virtual environment outside the
checkout, and `pipx install <checkout>`; then the default method from stdin, `rag` on a small JSONL,
`methods` and `--version`, run from another folder so nothing of the checkout can be found.

Needs the package registry (or pip's cache) for the dependencies; skipped when pip cannot reach it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TEXT = ("The pool shrank from 64 to 32 connections at 18:02 after the deploy, and the error rate rose to "
        "4.1% until the rollback at 18:40. Nobody was paged because the alert threshold was still 5%.\n")
RECORD = {"query": "When was the rollback?",
          "passages": ["The rollback finished at 18:40 and the error rate fell back to 0.2%.",
                       "The weather in the city was mild all week, with light rain on Thursday."]}


def _run(cmd: list[str], cwd: Path, env: dict, stdin: str | None = None, timeout: int = 600):
    return subprocess.run(cmd, cwd=cwd, env=env, input=stdin, capture_output=True, text=True, timeout=timeout)


def _clean_env(tmp: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PROMPTZIP_", "VIRTUAL_ENV", "PYTHON"))}
    env["PROMPTZIP_HOME"] = str(tmp / "home")  # an empty store: only what the package carries
    return env


def _check_tool(exe: Path, cwd: Path, env: dict) -> None:
    res = _run([str(exe), "compress", "-r", "0.5"], cwd, env, stdin=TEXT)
    assert res.returncode == 0, res.stderr
    out = res.stdout.strip()
    assert out and len(out) < len(TEXT) and "18:40" in out, (out, res.stderr)
    assert "model extract-minilm" in res.stderr
    (cwd / "r.jsonl").write_text(json.dumps(RECORD) + "\n", encoding="utf-8")
    res = _run([str(exe), "rag", "r.jsonl", "-r", "0.6"], cwd, env)
    assert res.returncode == 0, res.stderr
    kept = json.loads(res.stdout)["passages"]
    assert kept and "18:40" in kept[0], res.stdout
    res = _run([str(exe), "methods"], cwd, env)
    assert res.returncode == 0 and "extract" in res.stdout and "lexical" in res.stdout, res.stderr
    res = _run([str(exe), "--version"], cwd, env)
    assert res.returncode == 0, res.stderr
    manifest = json.loads((ROOT / "models" / "extract-minilm" / "manifest.json").read_text())
    assert manifest["files"]["model.int8.onnx"]["sha256"][:16] in res.stdout
    assert "(package: " in res.stdout and str(ROOT) not in res.stdout, res.stdout


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    res = _run([sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps", "--no-build-isolation",
                "--disable-pip-version-check", "-q", "-w", str(out)], out, dict(os.environ))
    assert res.returncode == 0, res.stderr
    (path,) = out.glob("promptzip_cli-*.whl")
    return path


def test_wheel_carries_models_and_nothing_too_big(wheel):
    import zipfile

    with zipfile.ZipFile(wheel) as zf:
        infos = {i.filename: i.file_size for i in zf.infolist()}
    for name in ("extract-minilm", "extract-multilingual", "embed-minilm", "latent-smollm2"):
        assert f"promptzip/_models/{name}/manifest.json" in infos
    assert "promptzip/_models/extract-minilm/model.int8.onnx" in infos
    assert max(infos.values()) < 95 * 2**20
    assert wheel.stat().st_size < 95 * 2**20


def test_pip_install_wheel_outside_checkout(wheel, tmp_path):
    env = _clean_env(tmp_path)
    venv.create(tmp_path / "venv", with_pip=True)
    py = tmp_path / "venv" / "bin" / "python"
    res = _run([str(py), "-m", "pip", "install", "-q", "--disable-pip-version-check", str(wheel)], tmp_path, env)
    if res.returncode != 0 and ("Could not find a version" in res.stderr or "NewConnectionError" in res.stderr):
        pytest.skip(f"the package registry is not reachable: {res.stderr.strip().splitlines()[-1]}")
    assert res.returncode == 0, res.stderr
    work = tmp_path / "elsewhere"
    work.mkdir()
    _check_tool(tmp_path / "venv" / "bin" / "promptzip", work, env)


@pytest.mark.skipif(shutil.which("pipx") is None and not (Path(sys.executable).parent / "pipx").is_file(),
                    reason="pipx is not installed (the dev extra installs it)")
def test_pipx_install_checkout(tmp_path):
    env = _clean_env(tmp_path)
    env.update(PIPX_HOME=str(tmp_path / "pipx"), PIPX_BIN_DIR=str(tmp_path / "bin"),
               PIPX_MAN_DIR=str(tmp_path / "man"))
    pipx = shutil.which("pipx") or str(Path(sys.executable).parent / "pipx")
    res = _run([pipx, "install", "--python", sys.executable, str(ROOT)], tmp_path, env)
    assert res.returncode == 0, res.stderr + res.stdout
    work = tmp_path / "elsewhere"
    work.mkdir()
    _check_tool(tmp_path / "bin" / "promptzip", work, env)
