"""Readers for `promptzip eval`: any OpenAI-compatible endpoint (tested against llama.cpp's real
server), the local llama.cpp reader, and what a failing reader does to a run."""

from __future__ import annotations

import json
import threading
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from typer.testing import CliRunner

from promptzip.cli import app
from promptzip.eval import chat_reader
from promptzip.eval.chat_reader import _answer_logprob, first_line, messages
from promptzip.eval.run import Row, aggregate
from promptzip.runtime.llama_server import free_port
from tests.conftest import DEMO, needs_models

runner = CliRunner()


def _dataset(tmp_path):
    text = DEMO.read_text()
    rows = [{"id": "q1", "context": text, "question": "Who owns the checklist of library defaults?",
             "answers": ["Jonas Weber"]},
            {"id": "q2", "context": "The bridge opened in 1932 and was designed by Ada Forsyth.",
             "question": "When did the bridge open?", "answers": ["1932"]}]
    path = tmp_path / "tiny.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return path


def test_echoed_log_probabilities_are_read_from_where_the_answer_starts():
    # OpenAI's legacy completions shape: prompt tokens echoed, then the one generated token
    data = {"choices": [{"logprobs": {"tokens": ["Q", ":", " Paris", " is", "."],
                                      "token_logprobs": [None, -0.5, -1.0, -3.0, -9.0],
                                      "text_offset": [0, 1, 2, 8, 11]}}]}
    assert _answer_logprob(data, 2) == pytest.approx(-2.0)  # " Paris is"; the generated "." left out
    assert _answer_logprob({"choices": [{"logprobs": None}]}, 2) is None
    assert _answer_logprob({"choices": [{"text": "x"}]}, 2) is None


def test_the_prompt_asks_for_a_span_and_the_first_line_is_the_answer():
    msgs = messages("Some text.", "What?")
    assert msgs[0]["role"] == "system" and "shortest span" in msgs[0]["content"]
    assert msgs[-1] == {"role": "user", "content": "Text:\nSome text.\n\nQuestion: What?"}
    assert first_line("\n  Ada Forsyth\nbecause ...") == "Ada Forsyth"
    assert first_line("") == ""


def test_em_kept_is_the_methods_em_over_the_originals_on_the_same_rows():
    def row(item, method, em):
        return Row(item, method, 1.0 if method == "original" else 0.5, 0.5, 10, 5, 0.0, 0.0, em=em)

    rows = [row(i, "original", e) for i, e in zip("abcd", (1, 1, 0, 1), strict=True)]
    rows += [row(i, "m", e) for i, e in zip("abcd", (1, 0, 1, 1), strict=True)]
    entry = next(e for e in aggregate(rows) if e["method"] == "m")
    assert entry["em_kept"]["mean"] == pytest.approx(1.0)  # 3 of the original's 3 correct answers' worth
    assert entry["em_kept"]["lo"] <= 1.0 <= entry["em_kept"]["hi"]
    rows[-1].em = 0
    entry = next(e for e in aggregate(rows) if e["method"] == "m")
    assert entry["em_kept"]["mean"] == pytest.approx(2 / 3)
    assert "em_kept" not in next(e for e in aggregate(rows) if e["method"] == "original")


@needs_models
def test_eval_reads_through_a_real_llama_cpp_server(llama_server, tmp_path):
    out = tmp_path / "out"
    args = ["eval", str(_dataset(tmp_path)), "--methods", "truncate", "--ratios", "0.5", "--no-embed",
            "--out", str(out), "--reader-endpoint", llama_server, "--reader-model", "smollm2"]
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    data = json.loads((out / "results.json").read_text())
    assert data["meta"]["reader"] == f"smollm2 (at {llama_server}, reader prompt v{chat_reader.PROMPT_VERSION})"
    assert f"Reader: {data['meta']['reader']}" in (out / "results.md").read_text()
    rows = data["rows"]
    assert len(rows) == 4 and all(r["em"] in (0.0, 1.0) and r["f1"] is not None for r in rows)
    # llama.cpp's server refuses `echo`, so it cannot score the gold answer: empty, never zero
    assert all(r["ll_answer"] is None and r["ll_delta"] is None for r in rows)
    assert "cannot score given text" in res.output
    again = runner.invoke(app, args)  # checkpointed rows: nothing measured twice
    assert again.exit_code == 0 and "reusing 4 of 4 rows" in again.output


def test_an_unreachable_reader_is_a_clear_error_and_no_table(tmp_path):
    out = tmp_path / "out"
    res = runner.invoke(app, ["eval", str(_dataset(tmp_path)), "--methods", "truncate", "--ratios", "0.5",
                              "--no-embed", "--out", str(out), "--reader-endpoint",
                              f"http://127.0.0.1:{free_port()}/v1", "--reader-model", "m"])
    assert res.exit_code == 1, res.output
    assert "cannot reach" in res.output and "Traceback" not in res.output
    assert not (out / "results.md").exists() and not (out / "results.json").exists()


class _Refusing(BaseHTTPRequestHandler):
    def do_POST(self):  # noqa: N802 - the stdlib's name
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        body = json.dumps({"error": {"message": "invalid api key", "type": "auth"}}).encode()
        self.send_response(401)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def test_a_failing_reader_endpoint_stops_the_run_with_its_message(tmp_path):
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Refusing)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        out = tmp_path / "out"
        res = runner.invoke(app, ["eval", str(_dataset(tmp_path)), "--methods", "truncate", "--ratios", "0.5",
                                  "--no-embed", "--out", str(out), "--reader-endpoint",
                                  f"http://127.0.0.1:{server.server_port}", "--reader-model", "m"])
    finally:
        server.shutdown()
    assert res.exit_code == 1, res.output
    assert "HTTP 401" in res.output and "invalid api key" in res.output
    assert not (out / "results.md").exists()


def test_reader_options_are_checked_before_any_work(tmp_path):
    data = str(_dataset(tmp_path))
    res = runner.invoke(app, ["eval", data, "--reader-model", "gpt-9"])
    assert res.exit_code == 2 and "unknown local reader" in res.output
    res = runner.invoke(app, ["eval", data, "--reader-endpoint", "http://127.0.0.1:1/v1"])
    assert res.exit_code == 2 and "needs --reader-model" in res.output
    res = runner.invoke(app, ["eval", data, "--reader-model", "qwen2.5-coder-0.5b-instruct", "--no-embed",
                              "--out", str(tmp_path / "out")])
    if res.exit_code == 3:  # a user's machine without the 491 MB reader
        assert "not prepared" in res.output and "models prepare qwen2.5-coder-0.5b-instruct" in res.output


@needs_models
def test_the_local_reader_serves_a_gguf_for_its_lifetime(monkeypatch):
    pytest.importorskip("xllamacpp", reason="xllamacpp is not installed (`make test` installs it)")
    from promptzip.runtime.store import models_dir

    gguf = sorted((models_dir() / "smollm2-135m-instruct").glob("*.gguf"))[0]
    monkeypatch.setitem(chat_reader.LOCAL, "smollm2-135m-instruct", gguf.name)
    with chat_reader.local_reader("smollm2-135m-instruct", parallel=1) as rd:
        answers = rd.generate_many(["The bridge opened in 1932."], "When did the bridge open?")
        url = rd.gen.url
    assert len(answers) == 1 and isinstance(answers[0], str)
    assert rd.name == f"smollm2-135m-instruct (local llama.cpp, reader prompt v{chat_reader.PROMPT_VERSION})"
    with pytest.raises(OSError):  # the server is gone with the block
        urllib.request.urlopen(url.replace("/chat/completions", "/models"), timeout=2)


def test_worked_answers_end_on_their_number():
    from promptzip.eval.chat_reader import final_number

    assert final_number("48 / 2 = 24 in May.\n48 + 24 = 72 in all.\nThe answer is 72.") == "72"
    assert final_number("So she pays $1,250.0 in total") == "1250"
    assert final_number("The answer is -3, not 4.") == "-3"
    assert final_number("no idea") == ""
    msgs = messages("Question: 1+1?\nLet's think step by step\nThe answer is 2.", "What is 2+3?", "cot")
    assert "The answer is N" in msgs[0]["content"] and msgs[-1]["content"].endswith("Let's think step by step")
    assert msgs[-1]["content"].startswith("Question: 1+1?")  # the worked examples first: a shared prefix


def test_cot_rows_load_and_unknown_styles_are_refused(tmp_path):
    from promptzip.errors import UsageError
    from promptzip.eval.data import load_items

    path = tmp_path / "cot.jsonl"
    path.write_text(json.dumps({"context": "demos", "question": "q", "answers": ["7"], "style": "cot"}) + "\n")
    assert load_items(path)[0].style == "cot"
    path.write_text(json.dumps({"context": "demos", "question": "q", "answers": ["7"], "style": "poem"}) + "\n")
    with pytest.raises(UsageError, match="unknown style"):
        load_items(path)


def test_the_server_answers_to_its_alias_alone(llama_server):
    """`--alias smollm2` names one model, not the letters s, m, o, l, 2 (issue 39, item 9)."""
    import json
    import urllib.request

    with urllib.request.urlopen(llama_server + "/models", timeout=10) as resp:
        ids = [m["id"] for m in json.load(resp)["data"]]
    assert ids == ["smollm2"]
