"""`promptzip rag` and `promptzip.compress_passages` on the retrieval samples the project ships
(corpora/rag) with the real models."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from promptzip import compress_passages
from promptzip.cli import app
from promptzip.rag import bm25, ends_order
from promptzip.select import share_budget
from promptzip.tokens import load_tokenizer
from tests.conftest import ROOT, SHARED, needs_shared

SAMPLE = ROOT / "corpora" / "rag" / "sample.jsonl"
PASSAGES = ROOT / "corpora" / "rag" / "passages.jsonl"
RECORDS = [json.loads(line) for line in SAMPLE.read_text(encoding="utf-8").splitlines()]


def run(*args: str, input: str | None = None):
    return CliRunner().invoke(app, ["rag", *args], input=input)


def test_api_keeps_the_answer_within_the_budget():
    rec = RECORDS[0]
    res = compress_passages(rec["question"], rec["ctxs"], ratio=0.3)
    joined = " ".join(res.texts)
    assert "River Tarrow" in joined
    assert res.passages[0].index == 0  # the passage about Aldermoor ranks first
    assert res.tokens_after <= res.budget * 1.05
    assert len(res.passages) + len(res.dropped) == 4 and res.dropped
    counter = load_tokenizer("cl100k_base")
    assert res.tokens_after == sum(counter.count(t) for t in res.texts)


def test_cli_keeps_the_shape_and_passes_fields_through():
    res = run(str(SAMPLE), "--ratio", "0.3")
    assert res.exit_code == 0, res.output
    out = [json.loads(line) for line in res.stdout.splitlines()]
    assert [r["id"] for r in out] == ["q1", "q2", "q3"]
    assert "detected one record per query" in res.stderr and "rag: 3 records" in res.stderr
    for before, after in zip(RECORDS, out, strict=True):
        assert set(before) == set(after)
        key = "ctxs" if "ctxs" in before else "passages"
        assert 1 <= len(after[key]) < len(before[key])
        if key == "ctxs":
            originals = {p["id"]: p for p in before[key]}
            for p in after[key]:  # everything but the text untouched
                assert {k: v for k, v in p.items() if k != "text"} == \
                    {k: v for k, v in originals[p["id"]].items() if k != "text"}
        else:
            assert all(isinstance(p, str) for p in after[key])
    assert "64 GiB" in json.dumps(out[1])
    assert "retired" in json.dumps(out[2])


def test_one_passage_per_line_needs_a_query():
    res = run(str(PASSAGES))
    assert res.exit_code == 2 and "--query" in res.stderr
    res = run(str(PASSAGES), "--query", "Which river runs through Aldermoor?", "--top-k", "2", "--ratio", "1")
    assert res.exit_code == 0, res.output
    out = [json.loads(line) for line in res.stdout.splitlines()]
    assert len(out) == 2 and out[0]["id"] == "a1"
    assert "one passage per line" in res.stderr


def test_malformed_lines_are_reported_and_skipped_or_fatal_with_strict(tmp_path):
    src = tmp_path / "in.jsonl"
    src.write_text(SAMPLE.read_text(encoding="utf-8") + '{"question": "x", "ctxs": [\n[1, 2]\n', encoding="utf-8")
    res = run(str(src), "--ratio", "0.5")
    assert res.exit_code == 0, res.output
    assert "line 4: not valid JSON" in res.stderr and "line 5: unrecognised record" in res.stderr
    assert len(res.stdout.splitlines()) == 3 and "2 lines skipped" in res.stderr
    res = run(str(src), "--ratio", "0.5", "--strict")
    assert res.exit_code == 1 and "line 4" in res.stderr


def test_missing_query_is_a_clear_error():
    rec = {"ctxs": [{"text": "Some passage."}]}
    res = run("-", input=json.dumps(rec) + "\n")
    assert res.exit_code == 2 and "line 1" in res.stderr and "--query" in res.stderr
    res = run("-", "--query", "What passage?", input=json.dumps(rec) + "\n")
    assert res.exit_code == 0, res.output


def test_report_lists_kept_and_dropped_with_scores_and_reasons(tmp_path):
    report = tmp_path / "report.jsonl"
    res = run(str(SAMPLE), "--top-k", "1", "--order", "relevance", "--report", str(report))
    assert res.exit_code == 0, res.output
    reps = [json.loads(line) for line in report.read_text(encoding="utf-8").splitlines()]
    assert len(reps) == 3
    for rep in reps:
        assert rep["passages_kept"] == 1 and rep["kept"][0]["score"] == 1.0
        assert {d["reason"] for d in rep["dropped"]} == {"top-k"}
        assert rep["tokens_after"] <= rep["tokens_before"] and rep["seconds"] >= 0


def test_empty_passages_are_dropped_and_counted():
    res = compress_passages("Which river?", ["", "The River Tarrow runs through Aldermoor.", "   "], ratio=1.0)
    assert res.texts == ["The River Tarrow runs through Aldermoor."]
    assert sorted(d.reason for d in res.dropped) == ["empty", "empty"]


def test_orders_and_relevance_modes():
    rec = RECORDS[0]
    ranked = [p.index for p in compress_passages(rec["question"], rec["ctxs"], ratio=1.0, order="relevance").passages]
    assert ranked[0] == 0
    ends = [p.index for p in compress_passages(rec["question"], rec["ctxs"], ratio=1.0, order="ends").passages]
    assert ends == ends_order(ranked) and ends[0] == ranked[0] and ends[-1] == ranked[1]
    original = [p.index for p in compress_passages(rec["question"], rec["ctxs"], ratio=1.0, order="original").passages]
    assert original == sorted(ranked)
    hybrid = compress_passages(rec["question"], rec["ctxs"], ratio=1.0, relevance_mode="hybrid")
    assert all(p.cosine is not None for p in hybrid.passages)
    lexical = compress_passages(rec["question"], rec["ctxs"], ratio=1.0, relevance_mode="bm25")
    assert all(p.cosine is None for p in lexical.passages)
    assert ends_order([1, 2, 3, 4, 5]) == [1, 3, 5, 4, 2]


BRIDGE_Q = "The Tarrow viaduct was built by which firm, and in what year was that firm founded?"
BRIDGE = [
    "The Tarrow viaduct carries the A61 road over the river valley south of Aldermoor. It was built by the "
    "Hollins & Crane group between March 1998 and June 2002 and is 340 metres long.",
    "Hollins & Crane was established in 1871 by two brothers as a small ironworks in Leeds. It grew into one of "
    "the largest civil engineering contractors in the north of England.",
    "The river valley south of Aldermoor is home to otters, kingfishers and several rare mosses. A walking trail "
    "follows the water for twelve miles.",
    "In 1904 a firm of clockmakers in the town built the market hall clock, which still keeps time today.",
    "Aldermoor's railway station opened in 1849. Trains run hourly to York and every two hours to the coast.",
    "The town council was founded as a borough corporation and meets in the old guildhall every second Tuesday.",
]


def test_model_relevance_follows_a_name_to_the_second_passage():
    """The founding year sits in a passage the question does not point at (it never names the
    firm): the second hop finds it through the name the first passage gives."""
    from promptzip.rag import model_scores

    scores = model_scores(BRIDGE_Q, BRIDGE, load_tokenizer("cl100k_base"))
    assert {"Hollins", "Crane"} <= set(scores.hop_names) and "Tarrow" not in scores.hop_names
    assert not {"March", "June"} & set(scores.hop_names)  # a date leads to no passage
    assert scores.hop[1] == 1.0 or scores.hop[1] >= scores.hop[3]
    assert scores.queries[1] != BRIDGE_Q and scores.queries[0] == BRIDGE_Q  # read again with the names
    res = compress_passages(BRIDGE_Q, BRIDGE, ratio=0.25)
    joined = " ".join(res.texts)
    assert "Hollins" in joined and "1871" in joined
    assert res.tokens_after <= res.budget * 1.05
    assert res.report()["hop"] == scores.hop_names
    assert "hop" not in compress_passages(BRIDGE_Q, BRIDGE, ratio=0.25, relevance_mode="bm25").report()


def test_budget_sharing_and_bm25():
    share = share_budget(100, [30, 200, 50], [1.0, 1.0, 0.0001])
    assert share[0] == 30 and share.sum() <= 100 and share[1] >= 60
    scores = bm25("river Tarrow", ["the River Tarrow floods", "a market town", "Tarrow estuary birds"])
    assert scores[0] > scores[2] > scores[1] == 0


def test_bad_options_are_usage_errors():
    assert run(str(SAMPLE), "--ratio", "0.5", "--target-tokens", "10").exit_code == 2
    assert run(str(SAMPLE), "--threshold", "2").exit_code == 2
    with pytest.raises(Exception, match="query"):
        compress_passages("", ["text"])


@needs_shared
def test_squad_with_distractors_keeps_answers():
    """A small sample of the benchmark's multi-passage set (the full one is in BENCHMARKS.md)."""
    from promptzip.bench.rag import multi_passage_items
    from promptzip.metrics import answer_retained

    items = multi_passage_items(SHARED / "qa" / "squad_v2_half_dev.jsonl", 30, seed=1)
    assert all(len(it["passages"]) == 10 for it in items)
    kept = [answer_retained(" ".join(compress_passages(it["question"], it["passages"], ratio=0.2).texts),
                            it["answers"]) for it in items]
    assert sum(kept) / len(kept) >= 0.85, sum(kept)


@needs_shared
def test_bridge_items_need_two_passages():
    import re

    from promptzip.bench.rag import multi_hop_items

    items = multi_hop_items(SHARED / "qa" / "squad_v2_half_dev.jsonl", 40)
    assert len(items) == 40
    for it in items:
        bridge = re.compile(rf"\b{re.escape(it['bridge'])}\b")
        gold, hop = it["passages"][it["gold"]], it["passages"][it["hop"]]
        assert len(it["passages"]) == 10 and it["gold"] != it["hop"]
        assert not bridge.search(it["question"]) and "X" in it["question"]  # the question never names it
        assert bridge.search(gold) and bridge.search(hop)
        assert any(a in gold for a in it["answers"]) and not any(a in hop for a in it["answers"])


def test_a_small_budget_keeps_the_best_passage_rather_than_none():
    from promptzip.rag import compress_passages

    res = compress_passages("Who wrote the first program?", ["Ada Lovelace wrote the first program in 1843.",
                                                               "The weather was fine that week."],
                            ratio=0.5, relevance_mode="bm25")
    assert len(res.passages) == 1 and "Lovelace" in res.passages[0].text
    assert 0 < res.tokens_after <= res.budget + 1
