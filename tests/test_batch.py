import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from promptzip.batch import REPORT_NAME, SUMMARY_NAME
from promptzip.cli import app
from tests.conftest import DEMO, SHARED, needs_shared

runner = CliRunner()


def make_tree(root: Path, n: int = 6) -> Path:
    text = DEMO.read_text()
    paras = text.split("\n\n")
    for i in range(n):
        sub = root / f"part{i % 3}"
        sub.mkdir(parents=True, exist_ok=True)
        (sub / f"doc{i}.md").write_text("\n\n".join(paras[i % 4:]) + f"\n\nDocument {i}.\n")
    return root


def outputs(out: Path) -> dict[str, bytes]:
    return {p.relative_to(out).as_posix(): p.read_bytes() for p in sorted(out.rglob("*"))
            if p.is_file() and p.name not in (REPORT_NAME, SUMMARY_NAME)}


def test_batch_mirrors_tree_and_resumes(tmp_path):
    src = make_tree(tmp_path / "in")
    out = tmp_path / "out"
    res = runner.invoke(app, ["batch", str(src), "-o", str(out), "-r", "0.4", "--glob", "**/*.md"])
    assert res.exit_code == 0, res.output
    got = outputs(out)
    assert sorted(got) == sorted(p.relative_to(src).as_posix() for p in src.rglob("*.md"))
    lines = [json.loads(x) for x in (out / REPORT_NAME).read_text().splitlines()]
    assert {r["status"] for r in lines} == {"ok"} and len(lines) == 6
    summary = json.loads((out / SUMMARY_NAME).read_text())
    assert summary["compressed"] == 6 and summary["failed"] == 0
    assert 0.35 < summary["ratio"] < 0.45

    # a re-run skips everything; a changed input or changed settings redo what they touch
    res = runner.invoke(app, ["batch", str(src), "-o", str(out), "-r", "0.4", "--glob", "**/*.md"])
    assert json.loads((out / SUMMARY_NAME).read_text())["up_to_date"] == 6
    (src / "part0" / "doc0.md").write_text("Changed. Entirely new text here.\n")
    runner.invoke(app, ["batch", str(src), "-o", str(out), "-r", "0.4", "--glob", "**/*.md"])
    s = json.loads((out / SUMMARY_NAME).read_text())
    assert (s["compressed"], s["up_to_date"]) == (1, 5)
    runner.invoke(app, ["batch", str(src), "-o", str(out), "-r", "0.3", "--glob", "**/*.md"])
    assert json.loads((out / SUMMARY_NAME).read_text())["compressed"] == 6
    # a tampered output is redone
    (out / "part1" / "doc1.md").write_text("tampered")
    runner.invoke(app, ["batch", str(src), "-o", str(out), "-r", "0.3", "--glob", "**/*.md"])
    assert json.loads((out / SUMMARY_NAME).read_text())["compressed"] == 1


def test_bad_files_are_recorded_and_exit_4(tmp_path):
    src = make_tree(tmp_path / "in", 3)
    (src / "bad.md").write_bytes(b"\xff\xfe bad bytes\n")
    (src / "dangling.md").symlink_to(src / "missing.md")
    out = tmp_path / "out"
    res = subprocess.run([sys.executable, "-m", "promptzip", "batch", str(src), "-o", str(out), "-j", "2"],
                         capture_output=True, timeout=300)
    assert res.returncode == 4, res.stderr
    err = res.stderr.decode()
    assert "bad.md" in err and "dangling.md" in err and "not valid UTF-8" in err
    summary = json.loads((out / SUMMARY_NAME).read_text())
    assert summary["failed"] == 2 and summary["compressed"] == 3
    assert not (out / "bad.md").exists()


@pytest.mark.parametrize("inside", ["out_in_src", "src_in_out", "same"])
def test_refuses_overlapping_trees(tmp_path, inside):
    src = make_tree(tmp_path / "in", 2)
    out = {"out_in_src": src / "out", "src_in_out": tmp_path, "same": src}[inside]
    res = runner.invoke(app, ["batch", str(src), "-o", str(out)])
    assert res.exit_code == 2
    assert "Error:" in res.stderr
    assert not (src / "out").exists()


def _build_corpus(root: Path, n: int) -> Path:
    """n documents from the shared corpora (chapters, articles, QA contexts)."""
    root.mkdir(parents=True)
    docs: list[str] = []
    for name in ("text/kjv_chapters.jsonl", "text/pride_and_prejudice_chapters.jsonl",
                 "text/wikitext2_valid_articles.jsonl"):
        with open(SHARED / name, encoding="utf-8") as f:
            docs.extend(json.loads(line)["text"] for line in f)
    docs = docs[: n]
    for i, text in enumerate(docs):
        sub = root / f"d{i % 10}"
        sub.mkdir(exist_ok=True)
        (sub / f"{i:04d}.txt").write_text(text, encoding="utf-8")
    return root


@needs_shared
def test_sigkill_then_resume_is_byte_identical(tmp_path):
    src = _build_corpus(tmp_path / "in", 520)
    args = ["-r", "0.33", "-m", "lexical", "-j", "2", "-q"]
    ref = tmp_path / "ref"
    subprocess.run([sys.executable, "-m", "promptzip", "batch", str(src), "-o", str(ref), *args],
                   check=True, timeout=600)

    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-m", "promptzip", "batch", str(src), "-o", str(out), *args],
                            start_new_session=True)
    journal = out / REPORT_NAME
    deadline = time.time() + 300
    while time.time() < deadline:  # kill once a fair share, but not all, is done
        if journal.exists() and journal.read_bytes().count(b"\n") >= 150:
            break
        time.sleep(0.05)
    import os

    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    done_before = journal.read_bytes().count(b"\n")
    assert 0 < done_before < 520, "the kill must land mid-run"

    res = subprocess.run([sys.executable, "-m", "promptzip", "batch", str(src), "-o", str(out), *args[:-1]],
                         capture_output=True, timeout=600)
    assert res.returncode == 0, res.stderr
    summary = json.loads((out / SUMMARY_NAME).read_text())
    assert summary["up_to_date"] >= done_before - 2 and summary["compressed"] >= 520 - done_before
    assert summary["total"] == 520 and summary["failed"] == 0
    assert outputs(out) == outputs(ref)
    leftovers = [p for p in out.rglob("*") if ".pztmp-" in p.name]
    assert leftovers == []


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_ctrl_c_leaves_valid_outputs_and_resumes(tmp_path, jobs):
    src = make_tree(tmp_path / "in", 240)
    ref = tmp_path / "ref"
    args = ["-r", "0.3", "-m", "lexical", "-j", jobs, "-q"]  # the subject is interruption, not the method
    subprocess.run([sys.executable, "-m", "promptzip", "batch", str(src), "-o", str(ref), *args],
                   check=True, timeout=600)
    expected = outputs(ref)

    out = tmp_path / "out"
    # a test run started in the background by a non-interactive shell inherits SIGINT ignored
    # (and Python then installs no Ctrl-C handler): give the child the default disposition
    proc = subprocess.Popen([sys.executable, "-m", "promptzip", "batch", str(src), "-o", str(out), *args],
                            stderr=subprocess.PIPE, start_new_session=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    journal = out / REPORT_NAME
    deadline = time.time() + 300
    while time.time() < deadline and not (journal.exists() and journal.read_bytes().count(b"\n") >= 40):
        time.sleep(0.02)
    import os

    os.killpg(proc.pid, signal.SIGINT)  # what a terminal's Ctrl-C sends
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    summary = json.loads((out / SUMMARY_NAME).read_text())
    assert summary["interrupted"] is True
    partial = outputs(out)
    assert 0 < len(partial) < len(expected)
    assert all(expected[k] == v for k, v in partial.items())  # every finished output is whole

    subprocess.run([sys.executable, "-m", "promptzip", "batch", str(src), "-o", str(out), *args],
                   check=True, timeout=600)
    assert outputs(out) == expected


def test_ray_engine_errors_are_clear(tmp_path, monkeypatch):
    """An unreachable --address fails at once (exit 2), and without Ray the extra is named."""
    import sys

    from typer.testing import CliRunner

    from promptzip.cli import app

    src = tmp_path / "src"
    src.mkdir()
    (src / "a.txt").write_text("The pool shrank from 64 to 32 connections at 18:02.", encoding="utf-8")
    res = CliRunner().invoke(app, ["batch", str(src), "-o", str(tmp_path / "out"), "--engine", "ray",
                                   "--address", "127.0.0.1:1"])
    assert res.exit_code == 2 and "cannot reach a Ray cluster at 127.0.0.1:1" in res.output
    res = CliRunner().invoke(app, ["batch", str(src), "-o", str(tmp_path / "out"), "--address", "127.0.0.1:1"])
    assert res.exit_code == 2 and "--engine ray" in res.output
    monkeypatch.setitem(sys.modules, "ray", None)  # as if it were not installed
    res = CliRunner().invoke(app, ["batch", str(src), "-o", str(tmp_path / "out"), "--engine", "ray"])
    assert res.exit_code == 2 and "promptzip-cli[ray]" in res.output
