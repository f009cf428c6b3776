import json
import os
import pty
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from promptzip.cli import app
from tests.conftest import DEMO

runner = CliRunner()


def run(*args, input=None, **kw):
    return subprocess.run([sys.executable, "-m", "promptzip", *args], input=input,
                           capture_output=True, timeout=120, **kw)


def test_pipe_stdin_to_stdout():
    data = DEMO.read_bytes()
    res = run("compress", "--ratio", "0.33", input=data)
    assert res.returncode == 0, res.stderr
    out = res.stdout.decode()
    assert 0 < len(out) < len(data)
    summary = res.stderr.decode().strip().splitlines()[-1]
    assert summary.startswith("extract:") and "ratio 0.3" in summary
    quiet = run("compress", "-", "-r", "0.33", "-q", input=data)
    assert quiet.stderr == b"" and quiet.stdout == res.stdout


def test_tokens_matches_report():
    res = run("tokens", str(DEMO))
    assert res.returncode == 0
    n = int(res.stdout)
    rep = json.loads(run("compress", str(DEMO), "--format", "json", "-r", "0.5").stdout)["report"]
    assert rep["input_tokens"] == n
    again = run("tokens", "-", input=json.loads(
        run("compress", str(DEMO), "--format", "json", "-r", "0.5").stdout)["compressed"].encode())
    assert int(again.stdout) == rep["output_tokens"]


def test_json_format_and_report_file(tmp_path):
    report = tmp_path / "r.json"
    res = runner.invoke(app, ["compress", str(DEMO), "-m", "truncate", "-r", "0.2", "--format", "json",
                              "--report", str(report), "-p", "side=tail"])
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    assert set(data) == {"compressed", "report"}
    assert data["report"]["params"]["side"] == "tail"
    assert json.loads(report.read_text())["output_tokens"] == data["report"]["output_tokens"]


def test_output_file_atomic(tmp_path):
    out = tmp_path / "sub" / "out.md"
    res = runner.invoke(app, ["compress", str(DEMO), "-o", str(out), "-q"])
    assert res.exit_code == 0 and res.stdout == ""
    assert out.read_text().startswith("# Incident report")
    assert [p.name for p in out.parent.iterdir()] == ["out.md"]


@pytest.mark.parametrize("args, code, needle", [
    (["--ratio", "1.5"], 2, "--ratio must be in (0, 1]"),
    (["--ratio", "0.5", "--target-tokens", "10"], 2, "exclusive"),
    (["--ratio", "0"], 2, "--ratio must be in"),
    (["-m", "nope"], 2, "unknown method 'nope'"),
    (["--tokenizer", "nope_base"], 2, "cannot load tokenizer"),
    (["-p", "side"], 2, "KEY=VALUE"),
    (["--errors", "ignore"], 2, "--errors must be strict or replace"),
    (["-p", "batch=0"], 2, "parameter batch must be at least 1, not '0'"),
    (["-p", "max_len=4096"], 2, "parameter max_len must be between 8 and 512"),
    (["-m", "truncate", "-p", "side=both", "-p", "head_share=1.5"], 2, "head_share must be between 0 and 1"),
])
def test_usage_errors(args, code, needle):
    res = run("compress", str(DEMO), *args)
    assert res.returncode == code
    err = res.stderr.decode()
    assert err.startswith("Error: ") and needle in err
    assert "Traceback" not in err


def test_bad_input_files(tmp_path):
    binary = tmp_path / "b.bin"
    binary.write_bytes(b"\x00\x01\x02hello")
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"caf\xe9 ok\n")
    empty = tmp_path / "empty.txt"
    empty.write_bytes(b"")
    link = tmp_path / "dangling"
    link.symlink_to(tmp_path / "missing")

    res = run("compress", str(binary))
    assert res.returncode == 1 and b"looks binary" in res.stderr
    res = run("compress", str(bad))
    assert res.returncode == 1 and b"not valid UTF-8 (byte 3)" in res.stderr and b"--errors replace" in res.stderr
    res = run("compress", str(bad), "--errors", "replace", "-r", "1")
    assert res.returncode == 0 and res.stdout.decode() == "caf\ufffd ok\n"
    res = run("compress", str(empty))
    assert res.returncode == 0 and res.stdout == b""
    res = run("compress", str(tmp_path / "missing.txt"))
    assert res.returncode == 1 and b"does not exist" in res.stderr
    res = run("compress", str(link))
    assert res.returncode == 1 and b"broken symbolic link" in res.stderr
    res = run("compress", str(tmp_path))
    assert res.returncode == 2 and b"promptzip batch" in res.stderr


def test_stdin_terminal_is_a_usage_error():
    primary, secondary = pty.openpty()
    try:
        res = subprocess.run([sys.executable, "-m", "promptzip", "compress"], stdin=secondary,
                             capture_output=True, timeout=60)
    finally:
        os.close(primary)
        os.close(secondary)
    assert res.returncode == 2 and b"stdin is a terminal" in res.stderr


def test_methods_and_help():
    res = runner.invoke(app, ["methods", "--format", "json"])
    names = [m["name"] for m in json.loads(res.stdout)]
    assert names[:3] == ["extract", "truncate", "lexical"]
    text = runner.invoke(app, ["methods"]).stdout
    assert "-p side=head" in text
    help_text = runner.invoke(app, ["--help"]).stdout
    assert "Exit codes" in help_text and "4 batch finished" in help_text


def test_env_and_config_precedence(tmp_path, monkeypatch):
    home = tmp_path / "home"
    home.mkdir()
    (home / "config.toml").write_text('method = "truncate"\n')
    monkeypatch.setenv("PROMPTZIP_HOME", str(home))
    rep = lambda *a: json.loads(runner.invoke(app, ["compress", str(DEMO), "--format", "json", *a]).stdout)["report"]  # noqa: E731
    assert rep()["method"] == "truncate"  # config file
    monkeypatch.setenv("PROMPTZIP_METHOD", "lexical")
    assert rep()["method"] == "lexical"  # env beats config
    assert rep("-m", "truncate")["method"] == "truncate"  # flag beats env
    (home / "config.toml").write_text('colour = "red"\n')
    res = runner.invoke(app, ["compress", str(DEMO)])
    assert res.exit_code == 2
