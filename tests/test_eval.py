import json
import math

import pytest
from typer.testing import CliRunner

from promptzip.cli import app
from promptzip.errors import UsageError
from promptzip.eval.baselines import random_drop
from promptzip.eval.data import load_items
from promptzip.metrics import answer_retained, bootstrap_ci, exact_match, f1, normalize
from promptzip.tokens import load_tokenizer
from tests.conftest import DEMO, needs_models

runner = CliRunner()


def test_squad_style_metrics():
    assert normalize("The  Quick, brown fox!") == "quick brown fox"
    assert exact_match("the Denver Broncos", ["Denver Broncos"]) == 1.0
    assert f1("Denver Broncos won", ["Denver Broncos"]) == pytest.approx(0.8)
    assert f1("nothing", ["Denver Broncos"]) == 0.0
    assert answer_retained("... the Denver Broncos beat ...", ["denver broncos"])
    assert not answer_retained("Denverbroncos", ["Denver Broncos"])
    # punctuation parts words: an elision, a possessive, a full-width bracket, a number before 。
    assert answer_retained("située à l'université normale de Shanghai", ["université normale"])
    assert answer_retained("Rollo's men", ["Rollo"])
    assert answer_retained("代替ルートとして、ARAE（Architects", ["ARAE"])
    assert answer_retained("佔世界機車數量的約58%。", ["58%"])
    assert not answer_retained("à l'université", ["luniversité normale"])
    assert answer_retained("北京大学", ["北京 大学"]) and not answer_retained("北京的大学", ["北京大学"])
    lo, hi = bootstrap_ci([0, 1, 1, 0, 1, 1, 1, 0])
    assert lo <= 0.625 <= hi and 0 <= lo < hi <= 1


def test_random_floor_hits_its_ratio(demo_text):
    counter = load_tokenizer()
    out = random_drop(demo_text, 0.33, counter, "demo")
    assert abs(counter.count(out) / counter.count(demo_text) - 0.33) < 0.03
    assert out == random_drop(demo_text, 0.33, counter, "demo")  # seeded


def _dataset(tmp_path, short=False):
    text = DEMO.read_text()
    if short:  # the paragraphs that hold the answers: the SmolLM2 reader costs a few seconds a row
        paras = text.split("\n\n")
        text = "\n\n".join(p for i, p in enumerate(paras) if i < 5 or "Jonas Weber" in p)
    rows = [
        {"id": "q1", "context": text, "question": "Who owns the checklist of library defaults?",
         "answers": ["Jonas Weber"]},
        {"id": "q2", "context": text, "question": "What was the p99 latency during the incident?",
         "answers": ["2.4 s"]},
        {"id": "q3", "context": text, "question": "Unanswerable?", "answers": []},
    ]
    path = tmp_path / "tiny.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return path


def test_dataset_shapes(tmp_path):
    items = load_items(_dataset(tmp_path))
    assert [i.id for i in items] == ["q1", "q2"]  # the unanswerable row is skipped
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"foo": 1}\n')
    with pytest.raises(UsageError):
        load_items(bad)


@needs_models
def test_eval_end_to_end_with_real_models(tmp_path):
    out = tmp_path / "out"
    res = runner.invoke(app, ["eval", str(_dataset(tmp_path, short=True)), "--methods", "lexical,truncate,random",
                              "--ratios", "0.3", "--out", str(out)])
    assert res.exit_code == 0, res.output
    data = json.loads((out / "results.json").read_text())
    rows = data["rows"]
    assert len(rows) == 2 * (1 + 3)
    for r in rows:
        assert math.isfinite(r["ll_answer"]) and r["ll_answer"] < 0
        assert r["answer_retained"] in (0.0, 1.0)
        assert 0.0 <= r["f1"] <= 1.0 and -1.0 <= r["embed_sim"] <= 1.0001
    lexical_q1 = [r for r in rows if r["method"] == "lexical" and r["item"] == "q1"]
    assert all(r["answer_retained"] == 1.0 for r in lexical_q1)  # query-aware keeps the answer
    for entry in data["summary"]:
        for metric in ("ll_delta", "achieved_ratio"):
            v = entry[metric]
            assert v["lo"] <= v["mean"] + 1e-9 and v["mean"] <= v["hi"] + 1e-9
    assert (out / "ll_delta_vs_ratio.png").stat().st_size > 1000
    assert "| lexical | 0.3 |" in res.stdout


def test_structure_metric():
    from promptzip.metrics import structure_kept

    prompt = "Question: 2+2?\nLet's think step by step\n2+2=4.\nThe answer is 4.\n\nQuestion: 3+3?\n"
    assert structure_kept(prompt, prompt) == 1.0
    assert structure_kept(prompt, "Question: 2+2?\nThe answer is 4.") == 0.5
    assert structure_kept("no structure here", "x") is None
    # a labelled line counts by its label: thinning the question keeps the structure
    assert structure_kept(prompt, "Question: 2+?\nLet's think step by step\nThe answer is 4.\nQuestion: 3?") == 1.0
    # separators and answer lines count verbatim: a thinned answer line is lost
    assert structure_kept(prompt, "Question: 2+?\nLet's think step by step\nanswer 4.\nQuestion: 3?") == 0.75
    bbh = "-----\nQ: Is it?\nOptions:\n(A) yes\nA: Let's think step by step.\nSo the answer is (A).\n"
    assert structure_kept(bbh, "-----\nQ: it?\nOptions:\n(A) yes\nA: Let's think step.\nSo the answer is (A).") == 0.8
    # BBH states the answer after the last reasoning step on the same line: the statement counts
    step = "Q: Does Ann lie?\nA: Let's think step by step.\nAnn says 3. Bob lies. So the answer is No.\n"
    assert structure_kept(step, "Q: Ann lie?\nA: Let's think step by step.\nAnn 3. So the answer is No.") == 1.0
    assert structure_kept(step, "Q: Ann lie?\nA: Let's think step by step.\nAnn 3. the answer No.") == 2 / 3


def test_eval_checkpoint_reuses_rows(tmp_path):
    data = _dataset(tmp_path)
    out = tmp_path / "out"
    args = ["eval", str(data), "--methods", "truncate", "--ratios", "0.5", "--out", str(out),
            "--no-reader", "--no-embed"]
    first = runner.invoke(app, args)
    assert first.exit_code == 0, first.output
    assert len((out / "rows.jsonl").read_text().splitlines()) == 4
    second = runner.invoke(app, [*args[:3], "truncate,random", *args[4:]])
    assert "reusing 4 of 4 rows" in second.stderr
    assert len((out / "rows.jsonl").read_text().splitlines()) == 6  # only random's rows are new
    rows = json.loads((out / "results.json").read_text())["rows"]
    assert {r["method"] for r in rows} == {"original", "truncate", "random"}
    only = runner.invoke(app, [*args[:3], "truncate,random,lexical", *args[4:], "--measured-only"])
    assert only.exit_code == 0, only.output
    rows = json.loads((out / "results.json").read_text())["rows"]
    assert {r["method"] for r in rows} == {"original", "truncate", "random"}  # lexical was never measured
    assert len((out / "rows.jsonl").read_text().splitlines()) == 6
    fresh = runner.invoke(app, [*args, "--fresh"])
    assert "reusing" not in fresh.stderr


def _checkpointed_truncate_run(tmp_path):
    """(eval arguments, out folder, rows.jsonl, its records) of one truncate run at 0.5."""
    data = _dataset(tmp_path)
    out = tmp_path / "out"
    args = ["eval", str(data), "--methods", "truncate", "--ratios", "0.5", "--out", str(out),
            "--no-reader", "--no-embed"]
    assert runner.invoke(app, args).exit_code == 0
    path = out / "rows.jsonl"
    return args, out, path, [json.loads(line) for line in path.read_text().splitlines()]


def test_eval_checkpoint_measures_again_what_other_weights_made(tmp_path):
    args, out, path, recs = _checkpointed_truncate_run(tmp_path)
    made = [r for r in recs if r["method"] == "truncate"]
    assert made and all(r["method_id"] == "truncate v2" for r in made)
    for r in recs:  # as if an older model had made one row, and an older run (no id) the other
        if r["method"] == "truncate":
            r["method_id"] = "truncate v0" if r is made[0] else None
            r["achieved_ratio"] = 0.123
    path.write_text("".join(json.dumps(r) + "\n" for r in recs))
    again = runner.invoke(app, args)
    assert again.exit_code == 0, again.output
    assert "reusing 3 of 4 rows" in again.stderr  # the two originals and the older run's row
    rows = [r for r in json.loads((out / "results.json").read_text())["rows"] if r["method"] == "truncate"]
    assert sorted(r["achieved_ratio"] == 0.123 for r in rows) == [False, True]  # only the v0 row was redone
    assert {r["method_id"] for r in rows} == {"truncate v2", None}


def test_eval_checkpoint_measures_again_what_older_metrics_computed(tmp_path):
    from promptzip.metrics import VERSION

    args, out, path, recs = _checkpointed_truncate_run(tmp_path)
    assert {r["metrics"] for r in recs} == {VERSION}
    recs[0]["metrics"] = None  # the first item's original, computed before answer_retained changed
    recs[0]["answer_retained"] = 0.0
    path.write_text("".join(json.dumps(r) + "\n" for r in recs))
    again = runner.invoke(app, args)
    assert "reusing 3 of 4 rows" in again.stderr
    rows = json.loads((out / "results.json").read_text())["rows"]
    assert all(r["answer_retained"] == 1.0 for r in rows if r["method"] == "original")


def test_noquery_mode_withholds_the_question(tmp_path):
    from promptzip.eval.data import EvalItem
    from promptzip.eval.run import compress_with
    from promptzip.tokens import load_tokenizer

    counter = load_tokenizer("cl100k_base")
    text = ("Apples grow on trees in orchards. The capital of France is Paris. Bananas are yellow "
            "and grow in warm places. Rivers flow to the sea.")
    item = EvalItem("x", text, "What is the capital of France?", ["Paris"])
    with_q, _ = compress_with("lexical", item, 0.3, counter)
    without, _ = compress_with("lexical:noquery", item, 0.3, counter)
    assert "Paris" in with_q and with_q != without
    bad = runner.invoke(app, ["eval", str(_dataset(tmp_path)), "--methods", "lexical:sideways", "--no-reader",
                              "--no-embed", "--out", str(tmp_path / "o")])
    assert bad.exit_code == 2


def test_method_parameters_in_eval(tmp_path):
    """`NAME:KEY=VALUE` measures a setting beside the defaults, under its own rows."""
    from promptzip.eval.data import EvalItem
    from promptzip.eval.run import compress_with, parse_method

    assert parse_method("extract:noquery:cost_power=0") == ("extract", True, {"cost_power": "0"})
    assert parse_method("truncate:side=tail") == ("truncate", False, {"side": "tail"})
    counter = load_tokenizer("cl100k_base")
    text = "First words come here. " + "Middle filler text. " * 20 + "Last words end it."
    item = EvalItem("x", text, None, ["words"])
    head, _ = compress_with("truncate", item, 0.2, counter)
    tail, _ = compress_with("truncate:side=tail", item, 0.2, counter)
    assert head.startswith("First") and tail.rstrip().endswith("end it.")
    for bad_method in ("truncate:side=middle", "truncate:colour=red", "truncate:noquery:noquery"):
        bad = runner.invoke(app, ["eval", str(_dataset(tmp_path)), "--methods", bad_method, "--no-reader",
                                  "--no-embed", "--out", str(tmp_path / "o")])
        assert bad.exit_code == 2, bad_method
    rows = runner.invoke(app, ["eval", str(_dataset(tmp_path)), "--methods", "truncate,truncate:side=tail",
                               "--ratios", "0.5", "--no-reader", "--no-embed", "--out", str(tmp_path / "ok")])
    assert rows.exit_code == 0, rows.output
    measured = [json.loads(line) for line in (tmp_path / "ok" / "rows.jsonl").read_text().splitlines()]
    assert {r["method"] for r in measured} == {"original", "truncate", "truncate:side=tail"}


def test_bench_headline_says_how_much_em_each_method_keeps(tmp_path):
    from promptzip.bench.reader import _em_kept_headline

    def row(method, target, got, kept):
        ci = {"mean": kept, "lo": kept - 0.1, "hi": kept + 0.1, "sd": None}
        return {"method": method, "target_ratio": target, "achieved_ratio": {"mean": got}, "n": 200,
                "em": {"mean": 0.4}, "em_kept": None if method == "original" else ci}

    summary = [row("original", 1.0, 1.0, 1.0), row("a", 0.5, 0.5, 0.9), row("a", 0.2, 0.21, 0.5),
               row("b", 0.2, 0.87, 0.8)]
    assert _em_kept_headline(tmp_path) == []  # nothing measured yet
    (tmp_path / "results.json").write_text(json.dumps({"summary": summary}), encoding="utf-8")
    lines = _em_kept_headline(tmp_path)
    assert "(0.400)" in lines[1]
    a = next(x for x in lines if x.startswith("| a |"))
    assert a == "| a | 0.90 [0.80, 1.00] | - | 0.50 [0.40, 0.60] |"
    b = next(x for x in lines if x.startswith("| b |"))
    assert "(kept 0.87 of the text)" in b  # a method off its target says what it kept
    summary[0]["n"], summary[0]["em"]["mean"] = 10, 0.1  # one right answer in ten
    (tmp_path / "results.json").write_text(json.dumps({"summary": summary}), encoding="utf-8")
    assert "answers 1 of the 10 uncompressed problems right" in " ".join(_em_kept_headline(tmp_path))


def test_peers_compress_a_shared_context_once(tmp_path, monkeypatch):
    """A few-shot prompt is every row's context: the peer compresses it once per ratio, and every
    row gets that result; a resumed run asks for nothing again."""
    import sys

    from promptzip.eval import peers
    from promptzip.eval.data import EvalItem

    log = tmp_path / "asked.txt"
    fake = tmp_path / "python"
    fake.write_text(f"""#!{sys.executable}
import json, sys
_, worker, req, res, model = sys.argv
rows = [json.loads(x) for x in open(req)]
open({str(log)!r}, "a").write("".join(r["key"] + "\\n" for r in rows))
with open(res, "a") as out:
    for r in rows:
        out.write(json.dumps({{"key": r["key"], "text": r["context"][:4], "error": None, "seconds": 1.0}}) + "\\n")
""")
    fake.chmod(0o755)
    monkeypatch.setenv("PROMPTZIP_PEERS_PYTHON", str(fake))
    monkeypatch.setattr(peers, "model_path", lambda name: tmp_path)
    items = [EvalItem(f"q{i}", "shared few-shot prompt", f"question {i}") for i in range(5)]
    items.append(EvalItem("other", "another context", "question"))
    cache = tmp_path / "cache.jsonl"
    got = peers.run_peers("llmlingua", items, [0.5, 0.2], cache=cache)
    assert len(got) == 12 and got[("q3", 0.2)] == ("shar", 1.0) and got[("other", 0.5)][0] == "anot"
    assert len(log.read_text().splitlines()) == 4  # two contexts x two ratios
    assert len(peers.run_peers("llmlingua", items, [0.5, 0.2], cache=cache)) == 12
    assert len(log.read_text().splitlines()) == 4
    peers.run_peers("longllmlingua", items, [0.5], cache=tmp_path / "long.jsonl")
    assert len(log.read_text().splitlines()) == 4 + 6  # the question-aware peer reads each question


def test_knob_table_pairs_each_setting_with_the_defaults(tmp_path):
    """The extract-knobs bench: a setting's difference is taken row by row against the defaults,
    over the rows both have."""
    from promptzip.bench import knobs as k

    out = tmp_path / "knobs"
    out.mkdir()
    rows = []
    for i in range(40):
        rows.append({"item": f"r{i}", "method": "extract:noquery", "answer_retained": 1.0})
        rows.append({"item": f"r{i}", "method": "extract:noquery:articles=1", "answer_retained": 1.0 if i % 4 else 0.0})
    rows.append({"item": "only-here", "method": "extract:noquery:articles=1", "answer_retained": 0.0})
    (out / "rows.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    by = k._rows(out, "answer_retained")
    mean, lo, hi, n = k.paired(by, "extract:noquery", "extract:noquery:articles=1")
    assert n == 40 and mean == pytest.approx(-0.25) and lo < mean < hi <= 0
    assert "extract:noquery:question_words=1" not in k.variants("noquery")
    assert "extract:question_words=1" in k.variants("query")
    results = {(s, c): (by, k.SETTINGS[s][0]) for s in k.SETTINGS for c, *_ in k.MEASURES}
    lines = k.table(results)
    articles = next(line for line in lines if line.startswith("| `articles=1`") and "without" in line)
    assert "-0.250" in articles


def test_model_bench_finds_what_was_built_and_skips_the_shipped_file(tmp_path):
    """The extract-models bench runs only the trained models present, names the missing ones, and
    does not run a student twice when its int8 file is the shipped one."""
    import hashlib

    from promptzip.bench import models as b

    (tmp_path / "teacher-onnx").mkdir()
    (tmp_path / "teacher-onnx" / "model.fp32.onnx").write_bytes(b"teacher")
    for rel, data in (("runs/student/onnx", b"old student"), ("runs/student-big/onnx", b"shipped")):
        (tmp_path / rel).mkdir(parents=True)
        (tmp_path / rel / "model.int8.onnx").write_bytes(data)
    found, notes = b.candidates(tmp_path, hashlib.sha256(b"shipped").hexdigest())
    assert [(s.endswith(":precision=fp32"), p) for _, s, p in found] == [(True, "fp32"), (False, "int8")]
    assert "runs/student/onnx" in found[1][1]
    assert len(notes) == 1 and "the shipped file itself" in notes[0]
    (tmp_path / "teacher-onnx" / "model.fp32.onnx").unlink()
    found, notes = b.candidates(tmp_path, "0" * 64)
    assert len(found) == 2 and any("not built" in n and "make teacher" in n for n in notes)
