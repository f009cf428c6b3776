import io

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import promptzip
from promptzip import source
from promptzip.api import compress_document
from promptzip.context import Request
from promptzip.errors import UsageError
from promptzip.source import document_from_bytes
from promptzip.tokens import load_tokenizer

METHODS = ["truncate", "lexical"]


def is_subsequence(small: str, big: str) -> bool:
    it = iter(big)
    return all(ch in it for ch in small)


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("ratio", [0.5, 0.33, 0.2])
def test_ratio_is_hit_on_demo(demo_text, method, ratio):
    res = promptzip.compress(demo_text, method=method, ratio=ratio)
    rep = res.report
    assert rep.input_tokens == load_tokenizer().count(demo_text)
    assert rep.output_tokens == load_tokenizer().count(res.text)
    assert abs(rep.ratio - ratio) <= 0.03, rep.ratio
    assert is_subsequence(res.text, demo_text)


def test_target_tokens_budget(demo_text):
    res = promptzip.compress(demo_text, method="lexical", target_tokens=200)
    assert 170 <= res.report.output_tokens <= 205
    assert res.report.ratio == pytest.approx(res.report.output_tokens / res.report.input_tokens)


def test_protected_blocks_are_all_or_nothing(demo_text):
    code = demo_text[demo_text.index("```python"):demo_text.index("```\n\nThe configuration") + 3]
    table = demo_text[demo_text.index("| Metric"):demo_text.index("| 41 in 47 minutes |") + 20]
    for ratio in (0.8, 0.5, 0.3, 0.15):
        out = promptzip.compress(demo_text, method="lexical", ratio=ratio).text
        assert ("```python" in out) == (code in out)
        assert ("| Metric" in out) == (table in out)
        for heading in ("# Incident report", "## Timeline", "## Lessons"):
            assert heading in out  # lexical keeps headings


def test_force_strings_survive(demo_text):
    forced = ["INC-2291", "Jonas Weber", "eu-west-1"]
    for method in METHODS:
        res = promptzip.compress(demo_text, method=method, ratio=0.1, force=forced)
        for f in forced:
            assert f in res.text, (method, f)


def test_truncate_sides(demo_text):
    head = promptzip.compress(demo_text, method="truncate", ratio=0.3).text
    tail = promptzip.compress(demo_text, method="truncate", ratio=0.3, side="tail").text
    both = promptzip.compress(demo_text, method="truncate", ratio=0.3, side="both").text
    assert demo_text.startswith(head.rstrip("\n"))  # plus the input's final newline
    assert demo_text.rstrip("\n").endswith(tail.rstrip("\n"))
    assert both.startswith(head[:200]) and both.rstrip().endswith(demo_text.rstrip()[-40:])


def test_query_changes_lexical_selection(demo_text):
    q = promptzip.compress(demo_text, method="lexical", ratio=0.2, query="Who owns the checklist of library defaults?")
    assert "Jonas Weber owns" in q.text
    assert q.report.query


def test_report_fields(demo_text):
    rep = promptzip.compress(demo_text, method="lexical", ratio=0.33).report
    d = rep.to_dict()
    for key in ("schema_version", "method", "params", "tokenizer", "input_tokens", "output_tokens",
                "ratio", "elapsed_ms", "tokens_per_s", "protected_spans", "protected_spans_kept",
                "numbers_kept", "names_kept", "device"):
        assert key in d
    assert isinstance(rep.ratio, float)
    assert 0 < rep.numbers_kept < 1 and 0 < rep.names_kept <= 1
    assert rep.protected_spans_kept <= rep.protected_spans
    assert "ratio 0.3" in rep.render()


def test_empty_and_whitespace_input():
    for text in ("", "   \n\n  "):
        res = promptzip.compress(text, method="lexical", ratio=0.3)
        assert res.text == ""
        assert res.report.output_tokens == 0


def test_bad_requests():
    with pytest.raises(UsageError):
        promptzip.compress("x", ratio=1.5)
    with pytest.raises(UsageError):
        promptzip.compress("x", ratio=0.5, target_tokens=10)
    with pytest.raises(UsageError):
        promptzip.compress("x", method="nope")
    with pytest.raises(UsageError):
        promptzip.compress("x", method="truncate", side="middle")
    with pytest.raises(UsageError):
        promptzip.compress("x", method="truncate", colour="red")


def test_small_pieces_give_identical_output(demo_text, monkeypatch):
    """Streaming in 1 KiB pieces selects exactly what the single-piece run selects."""
    big = demo_text * 3
    expected = promptzip.compress(big, method="lexical", ratio=0.3).text
    monkeypatch.setattr(source, "PIECE_BYTES", 1024)
    out = io.BytesIO()
    compress_document(document_from_bytes(big.encode()), out, "lexical", Request(0.3))
    assert out.getvalue().decode() == expected


_words = st.sampled_from(["alpha", "beta", "Gamma", "42", "3.5 kg", "`x. y`", "http://a.io/b",
                          ".", "!", "\n", "\n\n", "- ", "# ", "| c |", "```", "{}", "é"])


@settings(max_examples=80, deadline=None)
@given(st.lists(_words, max_size=120).map(" ".join), st.sampled_from(METHODS),
       st.floats(min_value=0.05, max_value=1.0))
def test_output_is_subsequence_and_within_budget(text, method, ratio):
    params = {"keep_headings": 0} if method == "lexical" else {}  # no must-keep units
    res = promptzip.compress(text, method=method, ratio=ratio, **params)
    assert is_subsequence(res.text, text)
    if not text.strip():
        assert res.text == ""
    # the budget is exact on unit token sums; joins may shift the exact count by a few tokens
    assert res.report.output_tokens <= res.report.budget_tokens + 4 + 0.1 * res.report.budget_tokens


@settings(max_examples=60, deadline=None)
@given(st.lists(_words, max_size=150).map(" ".join), st.sampled_from(METHODS),
       st.integers(min_value=0, max_value=120))
def test_target_tokens_is_a_hard_cap(text, method, target):
    params = {"keep_headings": 0} if method == "lexical" else {}
    res = promptzip.compress(text, method=method, target_tokens=target, **params)
    assert res.report.output_tokens <= target
    assert is_subsequence(res.text, text)


def _compress_keeping_words(text: str, keep):
    """`text` through a word-level compressor that keeps every block and the words that
    `keep(n, word, flagged)` picks (n: the word's index in its unit; flagged: `word_pieces_flagged`'s
    must-keep flag)."""
    from promptzip.compressors import methods
    from promptzip.compressors.base import Compressor
    from promptzip.context import WORD_KINDS
    from promptzip.segment import word_pieces_flagged

    class Picked(Compressor):
        name = "picked-words"
        description = "test"

        def compress(self, ctx):
            kept, starts, cuts = [], [0], []
            for i, unit in enumerate(ctx.unit_texts()):
                words = ctx.table.kind[i] in WORD_KINDS
                pieces = word_pieces_flagged(unit) if words else [(0, len(unit), True)]
                kept += [not words or keep(n, unit[s:e], f) for n, (s, e, f) in enumerate(pieces)]
                cuts += [(s, e) for s, e, _ in pieces]
                starts.append(len(kept))
            ctx.emit_words(np.asarray(kept, dtype=bool), np.asarray(starts), np.asarray(cuts).reshape(-1, 2))

    methods()["picked-words"] = Picked
    try:
        return promptzip.compress(text, method="picked-words")
    finally:
        del methods()["picked-words"]


def test_word_level_emission_is_a_subsequence(demo_text):
    """emit_words with every other word dropped keeps blocks whole and words in order."""
    out = _compress_keeping_words(demo_text, lambda n, word, flagged: flagged or n % 2 == 0).text
    assert is_subsequence(out, demo_text)
    assert "```python\nfrom payments_client" in out and "| p99 latency | 310 ms | 2.4 s |" in out
    assert "4.12.0" in out and "https://git.example.internal/platform/loadtest" in out
    assert 0.4 < len(out) / len(demo_text) < 0.85


def test_every_bounded_parameter_rejects_values_outside_its_range():
    from promptzip.compressors import methods
    from promptzip.errors import UsageError

    bounded = [(cls, p) for cls in methods().values() for p in cls.params if p.bounds != (None, None)]
    assert len(bounded) >= 10
    for cls, p in bounded:
        assert cls(**{p.name: p.default}).settings[p.name] == p.default
        lo, hi = p.bounds
        for bad in ([lo - 1] if lo is not None else []) + ([hi + 1] if hi is not None else []):
            with pytest.raises(UsageError, match=f"parameter {p.name} must be"):
                cls(**{p.name: bad})


def test_kept_numbers_of_cjk_sentences_do_not_run_together():
    """Only the numbers of Chinese text kept, sentence units joined with nothing between them:
    a space goes between `18` (end of one sentence) and `2009` (start of the next)."""
    import re

    text = "他在那个赛季攻入18个联赛入球。2009年8月3日他转会英超。第三句话里有25个字吗？12月份再说。"
    out = _compress_keeping_words(text, lambda n, word, flagged: word.isdigit()).text
    assert re.findall(r"\d+", out) == ["18", "2009", "8", "3", "25", "12"], out


def test_the_report_counts_protected_spans_kept_inside_thinned_sentences():
    text = ("The council met on Monday and the vote on the new road was held before noon; the road will "
            "run 5 km past the old mill, and the plans are at https://example.org/road for anyone.")
    res = promptzip.compress(text, method="extract", ratio=0.33)
    assert res.report.protected_spans == 2 and res.report.protected_spans_kept == 2, res.text
    first_words = _compress_keeping_words(text, lambda n, word, flagged: n < 3)
    assert first_words.text.strip() == "The council met"
    assert first_words.report.protected_spans_kept == 0
