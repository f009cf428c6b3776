"""`-m rewrite`: the guard's paths with a scripted backend, the real local llama.cpp server (SmolLM2's
GGUF, which `make models` prepares; the Qwen models when prepared), the completion cache, the CLI's
endpoint options, and a real llama.cpp server on loopback as an endpoint."""

from __future__ import annotations

import json
import os
import re

import pytest
from typer.testing import CliRunner

from promptzip import compress
from promptzip.cli import app
from promptzip.compressors.rewrite import Rewrite
from promptzip.fidelity import numbers_in
from promptzip.runtime.llama_server import free_port

from .conftest import needs_models

TEXT = (
    "The checkout service slowed down on 14 March. Requests that normally took 120 ms took 390 ms, "
    "and some failed after 30 seconds. Priya Raman, who was on call, paged the payments team.\n\n"
    "The cause was a configuration change. Release 4.12.0 of the client library read its pool size "
    "from a new key, so the pool fell from 64 to 32 connections. Rolling back fixed it in 47 minutes.\n"
)


class Scripted:
    """A backend that answers from a script: each call gets the next function of the source."""

    concurrency = 1
    sha256 = None

    def __init__(self, *answers):
        self.answers = list(answers)
        self.calls = 0
        self.id = "scripted:" + ",".join(a.__name__ for a in answers)

    def complete(self, messages, max_tokens, source=None, extra=None):
        answer = self.answers[min(self.calls, len(self.answers) - 1)]
        self.calls += 1
        self.extra = extra
        return answer(source)


def first_sentence(src):  # faithful only when the chunk is one sentence long
    return src.split(". ")[0]


def keep_facts(src):  # every number and name of the source, and one other word of it, in a shorter text
    from promptzip.guard import facts_of

    items = [item for _, item in facts_of(src).items()]
    other = next(w for w in re.findall(r"[a-z]{5,}", src) if not any(w in i for i in items))
    return " and ".join(items) + f", {other}"


def pile_facts(src):  # the same, set side by side: faithful to the letter, not sentences
    from promptzip.guard import facts_of

    return " ".join(item for _, item in facts_of(src).items())


def invent(src):
    return keep_facts(src) + " and 999 more"


def item_list(src):  # the required items as a comma list: faithful to the letter, not a rewrite
    from promptzip.guard import facts_of

    return ", ".join(item for _, item in facts_of(src).items())


def test_a_list_of_the_items_is_not_a_rewrite(monkeypatch):
    res = run(monkeypatch, Scripted(item_list))
    asked = [c for c in res.report.chunks if c["path"] in ("rewrite", "retry", "extract")]
    assert asked and all(c["path"] == "extract" for c in asked)
    assert any("a list of its required items" in c["reason"] for c in asked), asked


@needs_models
def test_words_set_side_by_side_are_not_a_rewrite(monkeypatch):
    from promptzip.compressors.rewrite import _not_prose

    res = run(monkeypatch, Scripted(pile_facts))
    asked = [c for c in res.report.chunks if c["path"] in ("rewrite", "retry", "extract")]
    assert asked and all(c["path"] == "extract" for c in asked)
    assert any("names in a row" in c["reason"] for c in asked), asked
    source = ("The Normans adopted the Gallo-Romance language of the Frankish land. Rollo came from Denmark, "
              "Iceland and Norway under King Charles III, and Catholic orthodoxy followed.")
    assert _not_prose("Normans Catholic Gallo-Romance Frankish Rollo, and more.", source)
    assert _not_prose("Norse, Denmark, Rollo, King, Charles III, Francia.", source) == "a list of words, not sentences"
    assert _not_prose("Rollo came from Denmark, Iceland and Norway; the Normans took Gallo-Romance.", source) is None
    assert _not_prose("Under King Charles III Rollo settled.", source) is None  # one new pair only


def run(monkeypatch, backend, ratio=0.5, **params):
    monkeypatch.setattr(Rewrite, "backend", lambda self: backend)
    return compress(TEXT, method="rewrite", ratio=ratio, **params)


@needs_models
def test_faithful_rewrites_are_kept(monkeypatch):
    res = run(monkeypatch, Scripted(keep_facts))
    paths = {c["path"] for c in res.report.chunks}
    assert "rewrite" in paths, res.report.chunks
    for n in numbers_in(TEXT):
        assert n in numbers_in(res.text)


@needs_models
def test_an_invented_number_triggers_a_retry_then_extraction(monkeypatch):
    res = run(monkeypatch, Scripted(invent, keep_facts))
    first = next(c for c in res.report.chunks if c["path"] not in ("copy", "drop", "block"))
    assert first["path"] == "retry" and "invented 999" in first["reason"]

    res = run(monkeypatch, Scripted(invent))
    rewritten = [c for c in res.report.chunks if c["path"] not in ("copy", "drop", "block")]
    assert rewritten and all(c["path"] == "extract" for c in rewritten)
    assert all("invented 999" in c["reason"] or "required items" in c["reason"] for c in rewritten)
    assert "999" not in res.text
    assert set(numbers_in(res.text)) <= set(numbers_in(TEXT))



class SampledOnly(Scripted):
    """Invents a number when greedy; the sampled answers (temperature set) are faithful from the `good`-th on."""

    def __init__(self, good=1):
        super().__init__(invent)
        self.good, self.seeds = good, []
        self.id = f"sampled-only:{good}"  # its own completions in the cache

    def complete(self, messages, max_tokens, source=None, extra=None):
        self.calls += 1
        if not (extra or {}).get("temperature"):
            return invent(source)
        self.seeds.append(extra["seed"])
        return keep_facts(source) if extra["seed"] - 99 >= self.good else invent(source)


@needs_models
def test_sampled_answers_are_tried_after_the_retry_and_seeded(monkeypatch):
    backend = SampledOnly(good=2)
    res = run(monkeypatch, backend)
    asked = [c for c in res.report.chunks if c["path"] not in ("copy", "drop", "block")]
    assert asked and all(c["path"] == "retry" and "passed on sampled answer 2 of 6" in c["reason"] for c in asked), asked
    assert backend.seeds == [100, 101] * len(asked)

    backend = SampledOnly(good=1)
    res = run(monkeypatch, backend, samples=0)
    asked = [c for c in res.report.chunks if c["path"] not in ("copy", "drop", "block")]
    assert asked and all(c["path"] == "extract" and "the last of 2 tries" in c["reason"] for c in asked), asked
    assert backend.calls == 2 * len(asked) and not backend.seeds

@needs_models
def test_extracted_chunks_keep_names_past_their_share_only_without_a_question(monkeypatch):
    names = ("Raman", "March")  # the guard's names: capitalized mid-sentence
    plain = run(monkeypatch, Scripted(invent), ratio=0.2)
    asked = run(monkeypatch, Scripted(invent), ratio=0.2, query="How long did the rollback take?")
    for res in (plain, asked):
        assert [c for c in res.report.chunks if c["path"] == "extract"], res.report.chunks
    assert all(n in plain.text for n in names), plain.text  # auto: on without a question
    # with one, the extracted chunks hold their shares: the names give way to what the question asks
    assert asked.report.ratio <= 0.2 + 0.03 < plain.report.ratio, (asked.report.ratio, plain.report.ratio)
    assert "47 minutes" in asked.text and not any(n in asked.text for n in names), asked.text
    forced = run(monkeypatch, Scripted(invent), ratio=0.2, query="How long did the rollback take?", keep_names="on")
    assert all(n in forced.text for n in names) and "47 minutes" not in forced.text, forced.text


def nothing(src):
    return "Nothing."


@needs_models
def test_a_rewrite_that_says_nothing_of_its_chunk_is_refused(monkeypatch):
    from promptzip.compressors.rewrite import _shared_content

    plain = ("the walk along the river was pleasant and everyone enjoyed it, although the path was muddy "
             "after the rain of the night before and the children complained about their boots. " * 3)
    monkeypatch.setattr(Rewrite, "backend", lambda self: Scripted(nothing))
    res = compress(plain, method="rewrite", ratio=0.3)
    asked = [c for c in res.report.chunks if c["path"] in ("rewrite", "retry", "extract")]
    assert asked and all(c["path"] == "extract" and "says nothing" in c["reason"] for c in asked), asked
    assert "Nothing" not in res.text
    assert _shared_content("Everyone enjoyed a pleasant riverside walk.", plain)
    assert not _shared_content("I cannot summarize this text.", plain)
    assert _shared_content("大家在河边散步。", "天气很好，大家在河边散步。")



def test_the_prompt_lists_a_name_with_the_capitalized_words_beside_it():
    from promptzip.compressors.rewrite import written_items
    from promptzip.guard import facts_of

    text = ("Project Manager: {vocalsound}\nUser Interface: We met the Free Software Foundation in 2019.\n"
            "Then Dropbox grew, and Rollo's Vikings too.")
    assert written_items(text, facts_of(text)) == ["Project Manager", "User Interface", "Free Software Foundation",
                                                   "2019", "Dropbox", "Rollo's Vikings"]



def test_a_rewrite_in_another_language_than_its_chunk_fails_the_guard():
    from promptzip.compressors.rewrite import _judge
    from promptzip.guard import facts_of
    from promptzip.tokens import load_tokenizer

    count = load_tokenizer().count
    source = ("Причиной стало изменение конфигурации. Версия 4.12.0 клиентской библиотеки читала размер пула из "
              "нового ключа, поэтому пул сократился с 64 до 32 соединений, и Иван Петров откатил её.")
    facts = facts_of(source)
    english = "Иван Петров found version 4.12.0 read a new key, so the pool fell from 64 to 32 connections."
    russian = "Версия 4.12.0 читала новый ключ, и пул сократился с 64 до 32 соединений; Иван Петров откатил её."
    assert "another language (en) than the text (ru)" in _judge(facts, english, 40, count, source)[0]
    assert _judge(facts, russian, 40, count, source) is None

def test_a_rewrite_of_nothing_but_its_items_fails_the_guard():
    from promptzip.compressors.rewrite import _judge
    from promptzip.guard import facts_of
    from promptzip.tokens import load_tokenizer

    count = load_tokenizer().count
    source = "Later the Commission said it would stay careful about the surveillance law until the vote."
    facts = facts_of(source)
    assert _judge(facts, "The Commission.", 20, count, source)[0] == "its required items and nothing more"
    assert _judge(facts, "The Commission stays careful about the law.", 20, count, source) is None



def test_grammar_orders_the_required_items_and_limits_the_words():
    from promptzip.compressors.rewrite import grammar, ordered_items
    from promptzip.guard import facts_of

    text = ('On 14 March 2026 Priya Raman said "pool size 64" was wrong; Release 4.12.0 read it from '
            "https://example.com/cfg and 64 became 32.")
    facts = facts_of(text)
    items = ordered_items(text, facts)
    # in the text's order; the quote holds 64 and the date holds 14, so neither comes again on its own
    assert items == ["14 March 2026", "Priya", "Raman", "pool size 64", "4.12.0", "https://example.com/cfg", "32"]
    g = grammar(text, facts, 20, items)
    root = g.splitlines()[0]
    assert root.startswith("root ::= ")
    positions = [root.index(json.dumps(i)) for i in items]
    assert positions == sorted(positions)
    vocab = next(line for line in g.splitlines() if line.startswith("w ::= "))
    assert '"Priya"' not in vocab and '"32"' not in vocab  # an item comes once, where the root puts it
    assert not re.search(r'"[^"]*\d[^"]*"', vocab)  # a free word is never a number
    assert '"wrong"' in vocab and '"release"' in vocab and '"and"' in vocab
    free = grammar(text, facts, 10, [])  # vocab only: the items may be written freely, none is forced
    assert free.startswith('root ::= w (sep w){0,9}') and '"32"' in free


def test_items_are_written_as_the_text_writes_them_and_the_grammar_bounds_the_length():
    from promptzip.compressors.rewrite import free_words, grammar, ordered_items
    from promptzip.guard import check, facts_of
    from promptzip.tokens import load_tokenizer

    text = ("In 1081 he led an army of 30,000 men. They adopted the Gallo-Romance language of the land, and "
            "Romance poetry followed.")
    facts = facts_of(text)
    items = ordered_items(text, facts)
    # the guard's 30000 is written "30,000" in the text (a grammar with "30000" could never copy it), and
    # Romance stands alone too, where the guard's name reader would not find it inside Gallo-Romance
    assert items == ["1081", "30,000", "Gallo-Romance", "Romance"]
    assert check(facts, " and ".join(items)).ok
    count = load_tokenizer("cl100k").count
    room = free_words(text, items, 20, count)
    assert 0 < room < free_words(text, items, 40, count)
    assert free_words(text, items, 3, count) == 0  # the items alone overflow a tiny budget
    root = grammar(text, facts, room, items).splitlines()[0]
    bounds = [int(b) for b in re.findall(r"\{0,(\d+)\}", root)]
    assert len(bounds) == len(items) + 1 and sum(bounds) <= max(room, len(items) + 1)


def test_a_chunk_short_of_what_its_items_need_is_raised_to_it():
    import numpy as np

    from promptzip.compressors.rewrite import _floored_shares

    tokens, weight = np.array([30, 120, 100]), np.array([5.0, 200.0, 100.0])
    floors = np.array([20, 40, 30])
    plain = _floored_shares(100, tokens, weight, np.zeros(3, dtype=int))
    assert plain[0] < 20  # by weight alone the light chunk gets less than its items need
    shares = _floored_shares(100, tokens, weight, floors)
    assert shares[0] == 20 and shares.sum() <= 100 and (shares >= np.minimum(floors, plain)).all()
    # floors that would take more than FLOORED of the budget are not all granted
    assert _floored_shares(60, tokens, weight, np.array([25, 60, 30])).sum() <= 60


@needs_models
def test_items_grammar_is_sent_and_dense_chunks_are_extracted(monkeypatch):
    backend = Scripted(keep_facts)
    res = run(monkeypatch, backend, ratio=0.5, constrain="items")
    asked = [c for c in res.report.chunks if c["path"] in ("rewrite", "retry", "extract")]
    assert asked and backend.calls
    assert "Priya" in backend.extra["grammar"]
    backend = Scripted(keep_facts)
    res = run(monkeypatch, backend, ratio=0.2, constrain="items")  # items fill most of a 0.2 budget
    dense = [c for c in res.report.chunks if "too dense to rewrite" in c["reason"]]
    assert dense and all(c["path"] == "extract" for c in dense)


@needs_models
def test_completions_are_cached(monkeypatch):
    first = Scripted(keep_facts)
    a = run(monkeypatch, first)
    assert first.calls > 0
    again = Scripted(keep_facts)
    b = run(monkeypatch, again)
    assert again.calls == 0
    assert a.text == b.text
    assert all(c["cached"] for c in b.report.chunks if c["path"] in ("rewrite", "retry"))


@needs_models
def test_the_local_llama_cpp_server_rewrites_and_falls_back():
    pytest.importorskip("xllamacpp", reason="xllamacpp is not installed (`make test` installs it)")
    res = compress(TEXT, method="rewrite", ratio=0.5, local="smollm2-135m-instruct")
    r = res.report
    assert r.model.startswith("local:smollm2-135m-instruct:")
    assert r.model_sha256 and len(r.model_sha256) == 64
    assert abs(r.ratio - 0.5) <= 0.15 * 0.5 + 0.05, (r.ratio, r.chunks)
    paths = {c["path"] for c in r.chunks}
    assert paths <= {"copy", "rewrite", "retry", "extract", "block", "drop"}
    assert "extract" in paths  # the 135M model fails the guard on some chunk: extracted instead
    assert all(c["reason"].startswith(("guard:", "its ")) for c in r.chunks if c["path"] == "extract")
    assert set(numbers_in(res.text)) <= set(numbers_in(TEXT))  # nothing invented reaches the output
    assert sum(c["budget"] for c in r.chunks) <= r.budget_tokens
    again = compress(TEXT, method="rewrite", ratio=0.5, local="smollm2-135m-instruct")  # same server, cached
    assert again.text == res.text


@needs_models
def test_the_items_grammar_makes_the_local_model_keep_every_item():
    pytest.importorskip("xllamacpp", reason="xllamacpp is not installed (`make test` installs it)")
    from promptzip.compressors.rewrite import _messages, free_words, grammar, ordered_items
    from promptzip.guard import check, facts_of
    from promptzip.tokens import load_tokenizer

    # llama.cpp's server takes the grammar and the model writes every item, in the text's order
    chunk = TEXT.split("\n\n")[1]
    facts = facts_of(chunk)
    items = ordered_items(chunk, facts)
    room = free_words(chunk, items, 40, load_tokenizer("cl100k").count)
    gen = Rewrite(local="smollm2-135m-instruct", constrain="items").backend()
    out = gen.complete(_messages(chunk, 30, None, facts), 90, chunk, {"grammar": grammar(chunk, facts, room, items)})
    assert check(facts, out).missing == [], out
    assert [out.index(i) for i in items] == sorted(out.index(i) for i in items)
    assert set(numbers_in(out)) <= set(numbers_in(chunk))
    # end to end, the 135M model's forced sentences are mostly words side by side: the guard extracts those
    res = compress(TEXT, method="rewrite", ratio=0.6, local="smollm2-135m-instruct", constrain="items")
    asked = [c for c in res.report.chunks if c["path"] in ("rewrite", "retry", "extract")]
    assert asked and all(c["path"] != "extract" or c["reason"].startswith(("guard:", "its ")) for c in asked)
    assert set(numbers_in(res.text)) <= set(numbers_in(TEXT))


@needs_models
def test_a_chinese_chunk_keeps_its_numbers_and_quotes():
    pytest.importorskip("xllamacpp", reason="xllamacpp is not installed (`make test` installs it)")
    text = ("长江是亚洲第一长河，全长约6300公里，流域面积约180万平方公里。《长江志》记载，1998年长江发生特大洪水，"
            "受灾人口超过2000万。专家指出，上游森林砍伐和中游湖泊面积减少是洪水加重的重要原因。此后国家实施了退耕还林"
            "和退田还湖工程，长江中下游的防洪能力明显提高。\n")
    res = compress(text, method="rewrite", ratio=0.5, local="smollm2-135m-instruct")
    assert res.report.language == "zh" or res.report.model.startswith("local:")
    out = res.text
    assert set(numbers_in(out)) <= set(numbers_in(text))
    assert res.report.output_tokens < 0.75 * res.report.input_tokens
    for c in res.report.chunks:
        assert c["path"] in ("copy", "rewrite", "retry", "extract", "block", "drop")


def test_cli_endpoint_options_are_checked():
    runner = CliRunner()
    res = runner.invoke(app, ["compress", "-", "-m", "rewrite", "--endpoint", "http://127.0.0.1:9/v1"],
                        input="Some text.")
    assert res.exit_code == 2 and "--model" in res.output
    res = runner.invoke(app, ["compress", "-", "-m", "extract", "--endpoint", "http://x/v1", "--model", "m"],
                        input="Some text.")
    assert res.exit_code == 2 and "rewrite" in res.output
    res = runner.invoke(app, ["compress", "-", "-m", "rewrite", "--endpoint", "ftp://x", "--model", "m"],
                        input="Some text.")
    assert res.exit_code == 2 and "http" in res.output


@needs_models
def test_unreachable_endpoint_is_a_clear_error():
    port = free_port()  # nothing listens there
    runner = CliRunner()
    res = runner.invoke(app, ["compress", "-", "-m", "rewrite", "-r", "0.7", "--endpoint",
                              f"http://127.0.0.1:{port}/v1", "--model", "m", "-p", "retries=1"],
                        input=TEXT)
    assert res.exit_code == 1, res.output
    assert "cannot reach" in res.output and "2 tries" in res.output


# -- a real OpenAI-compatible server: llama.cpp's, from the prebuilt xllamacpp wheel (`llama_server` in conftest) --
@needs_models
def test_rewrite_through_a_real_llama_cpp_server(llama_server, tmp_path):
    report = tmp_path / "report.json"
    runner = CliRunner()
    res = runner.invoke(app, ["compress", "-", "-m", "rewrite", "-r", "0.5", "--endpoint", llama_server,
                              "--model", "smollm2", "--report", str(report), "-p", "concurrency=2"],
                        input=TEXT)
    assert res.exit_code == 0, res.output
    data = json.loads(report.read_text())
    assert data["model"] == f"endpoint:{llama_server}/chat/completions:smollm2"
    asked = [c for c in data["chunks"] if c["path"] in ("rewrite", "retry", "extract")]
    assert asked, data["chunks"]
    assert not any(c["reason"].startswith("endpoint:") for c in asked)  # every request was answered
    out = res.stdout if hasattr(res, "stdout") else res.output
    assert set(numbers_in(out)) <= set(numbers_in(TEXT))
    assert re.search(r"ratio 0\.\d+", res.output)


def test_endpoint_client_retries_429_and_fails_fast_on_404():
    """The retry policy, against a loopback HTTP server scripted to refuse first."""
    import http.server
    import threading

    from promptzip.runtime.endpoint import EndpointError, EndpointGenerator

    answers = [(429, {"error": "slow down"}), (200, {"choices": [{"message": {"content": " short "}}],
                                                     "usage": {"completion_tokens": 1}}), (404, {"error": "no model"})]
    seen = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            seen.append((self.path, body["model"], self.headers.get("Authorization")))
            code, data = answers.pop(0)
            payload = json.dumps(data).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Retry-After", "0")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        os.environ["PZ_TEST_KEY"] = "sekrit"
        gen = EndpointGenerator(f"http://127.0.0.1:{server.server_port}", "m1", "PZ_TEST_KEY", backoff=0.01)
        assert gen.complete([{"role": "user", "content": "x"}], 8) == "short"
        assert gen.retried == 1 and gen.requests == 1
        assert seen[0] == ("/v1/chat/completions", "m1", "Bearer sekrit")
        with pytest.raises(EndpointError, match="HTTP 404"):
            gen.complete([{"role": "user", "content": "x"}], 8)
        assert len(seen) == 3  # the 404 was not retried
    finally:
        os.environ.pop("PZ_TEST_KEY", None)
        server.shutdown()


@needs_models
def test_the_shared_local_server_does_not_outlive_a_killed_process():
    pytest.importorskip("xllamacpp", reason="xllamacpp is not installed (`make test` installs it)")
    import signal
    import subprocess
    import sys
    import time
    import urllib.request

    code = ("from promptzip.runtime.llama_server import shared_server; import time; "
            "print(shared_server('smollm2-135m-instruct'), flush=True); time.sleep(600)")
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    url = proc.stdout.readline().strip()
    with urllib.request.urlopen(url + "/models", timeout=5) as resp:
        assert resp.status == 200
    proc.send_signal(signal.SIGKILL)  # no atexit, no cleanup
    proc.wait()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url + "/models", timeout=1)
        except OSError:
            return
        time.sleep(0.5)
    pytest.fail(f"the server at {url} outlived its killed parent")


def test_the_rewrite_bench_measures_the_runs_it_is_told(monkeypatch):
    from promptzip.bench.rewrite import RUNS, chosen_runs

    monkeypatch.delenv("PROMPTZIP_BENCH_REWRITE_RUNS", raising=False)
    assert chosen_runs() == RUNS
    monkeypatch.setenv("PROMPTZIP_BENCH_REWRITE_RUNS", "qwen2.5-coder-0.5b-instruct:off")
    assert chosen_runs() == (("qwen2.5-coder-0.5b-instruct", "off"),)
    monkeypatch.setenv("PROMPTZIP_BENCH_REWRITE_RUNS", "qwen2.5-coder-0.5b-instruct:free")
    with pytest.raises(SystemExit, match="unknown runs"):
        chosen_runs()


@needs_models
def test_the_report_counts_the_protected_spans_the_output_writes(monkeypatch):
    from promptzip.compressors.rewrite import spans_written

    res = run(monkeypatch, Scripted(invent))  # every chunk extracted: the spans kept whole
    assert 0 < res.report.protected_spans_kept <= res.report.protected_spans
    assert spans_written(["Took 120 ms, then 390 ms.", "x = 1", "plain"], [2, 1, 0], "took 120 ms\nx = 1") == 2
    assert spans_written(["Took 120 ms, then 390 ms."], [2], "took 120 and 390") == 0
