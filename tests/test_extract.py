"""The shipped extract model (models/extract-minilm, int8 ONNX) on text the project ships."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from typer.testing import CliRunner

from promptzip import compress
from promptzip.cli import app
from promptzip.compressors.extract import DEFAULT_MODEL, Scorer
from promptzip.compressors.words import _trimmed
from promptzip.errors import UsageError
from tests.conftest import DEMO, needs_shared

pytestmark = pytest.mark.skipif(not (DEFAULT_MODEL / "model.int8.onnx").is_file(),
                                reason="models/extract-minilm is not built: run `make models`")

PASSAGE = ("The Apollo 11 mission launched from Kennedy Space Center on July 16, 1969. Neil Armstrong "
           "and Buzz Aldrin landed the lunar module Eagle in the Sea of Tranquility four days later, "
           "while Michael Collins stayed in lunar orbit aboard Columbia. Armstrong stepped onto the "
           "surface at 02:56 UTC on July 21 and the crew returned to Earth on July 24 after a mission "
           "of eight days, three hours and eighteen minutes.")


@pytest.mark.parametrize("ratio", [0.5, 0.33, 0.2])
def test_ratio_is_met_on_the_demo(demo_text, ratio):
    res = compress(demo_text, method="extract", ratio=ratio)
    assert abs(res.report.ratio - ratio) <= 0.02, res.report.ratio
    assert res.report.model.startswith("extract-minilm")


def test_protected_spans_and_forced_strings_survive(demo_text):
    res = compress(demo_text, method="extract", ratio=0.2, force=["what we are changing"])
    for span in ("`POST /checkout`", "eu-west-1", "what we are changing"):
        if span in demo_text:
            assert span in res.text
    prose = "\n".join(line for line in demo_text.splitlines() if not line.startswith("|"))
    numbers = re.findall(r"\b\d+(?:\.\d+)+\b", prose)  # versions and decimals (tables are whole blocks)
    assert numbers and all(n in res.text for n in numbers)


def test_target_tokens_is_a_hard_cap(demo_text):
    res = compress(demo_text, method="extract", target_tokens=150)
    assert res.report.output_tokens <= 150


def test_windows_cover_every_word_once_with_context():
    sc = Scorer(DEFAULT_MODEL, max_len=32, overlap=4)
    words = (PASSAGE + " ") .split() * 3
    plan = sc.plan(words, "Who stayed in orbit?")
    cores = [range(a, b) for *_, (a, b) in plan]
    assert [w for core in cores for w in core] == list(range(len(words)))
    assert all(len(ids) <= 32 for ids, *_ in plan)
    inner = plan[1]  # a middle window reads words before and after its core
    owners = [o for o in inner[2] if o >= 0]
    a, b = inner[3]
    assert min(owners) < a and max(owners) >= b
    # the same probabilities whatever the window size, up to the context each word sees
    p_small = Scorer(DEFAULT_MODEL).probs(words)
    p_big = Scorer(DEFAULT_MODEL, max_len=512).probs(words)
    assert np.corrcoef(p_small, p_big)[0, 1] > 0.8


def test_question_changes_what_is_kept():
    plain = compress(PASSAGE, method="extract", ratio=0.25).text
    asked = compress(PASSAGE, method="extract", ratio=0.25, query="Who stayed in lunar orbit?").text
    assert plain != asked
    assert "Collins" in asked


def test_json_has_word_probabilities_and_explain_styles_words(tmp_path):
    src = tmp_path / "apollo.txt"
    src.write_text(PASSAGE + "\n", encoding="utf-8")
    runner = CliRunner()
    res = runner.invoke(app, ["compress", str(src), "-m", "extract", "-r", "0.4", "--format", "json"])
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    words = data["report"]["words"]
    assert [w for w, _, _ in words] == PASSAGE.split()
    assert all(0.0 <= p <= 1.0 for _, p, _ in words)
    kept = [w for w, _, k in words if k]  # as read; without a question written without edge punctuation
    assert " ".join(w.strip(",.") for w in kept) == data["compressed"].strip()
    res = runner.invoke(app, ["compress", str(src), "-m", "extract", "-r", "0.4", "--explain"])
    assert res.exit_code == 0
    assert res.stdout.strip() == PASSAGE  # the whole input, styled (no colours in a pipe)


def test_threshold_mode(tmp_path):
    src = tmp_path / "apollo.txt"
    src.write_text(PASSAGE, encoding="utf-8")
    runner = CliRunner()
    low = runner.invoke(app, ["compress", str(src), "-m", "extract", "--threshold", "0.2", "--format", "json"])
    high = runner.invoke(app, ["compress", str(src), "-m", "extract", "--threshold", "0.8", "--format", "json"])
    assert low.exit_code == 0 and high.exit_code == 0
    n_low = json.loads(low.stdout)["report"]["output_tokens"]
    n_high = json.loads(high.stdout)["report"]["output_tokens"]
    assert n_high < n_low
    for _, p, k in json.loads(high.stdout)["report"]["words"]:
        assert k or p < 0.8
    bad = runner.invoke(app, ["compress", str(src), "-m", "extract", "--threshold", "0.5", "-r", "0.3"])
    assert bad.exit_code == 2
    bad = runner.invoke(app, ["compress", str(src), "-m", "lexical", "--threshold", "0.5"])
    assert bad.exit_code == 2


def test_missing_model_is_exit_3(tmp_path):
    runner = CliRunner()
    src = tmp_path / "a.txt"
    src.write_text(PASSAGE, encoding="utf-8")
    res = runner.invoke(app, ["compress", str(src), "-m", "extract", "-p", f"model={tmp_path / 'none'}"])
    assert res.exit_code == 3
    assert "missing at" in res.output and "-p model=" in res.output


def _prompt_files():
    from tests.conftest import SHARED

    prompts = SHARED / "prompts"
    if not prompts.is_dir():
        return []
    return [prompts / "gsm8k_cot_prompt_hardest.txt", *sorted((prompts / "bbh_cot").glob("*.txt"))]


@needs_shared
@pytest.mark.parametrize("ratio", [0.5, 0.33])
def test_cot_prompts_keep_numbers_separators_and_answers(ratio):
    files = _prompt_files()
    assert len(files) == 28
    number = re.compile(r"(?<![\w.])\d+(?:[.,/:]\d+)*")
    for path in files:
        text = path.read_text(encoding="utf-8")
        out = compress(text, method="extract", ratio=ratio).text
        lost = set(number.findall(text)) - set(number.findall(out))
        assert not lost, (path.name, sorted(lost)[:5])
        for line in text.splitlines():
            s = line.strip()
            if re.search(r"answer is", s, re.I):
                tail = s[s.lower().rfind("so the answer is") if "so the answer is" in s.lower() else 0:]
                assert tail in out, (path.name, tail)
            if s in ("-----", "Let's think step by step", "A: Let's think step by step."):
                assert out.count(s) == text.count(s), (path.name, s)
        for label in ("Question:", "Q:"):
            assert out.count(f"\n{label}") >= text.count(f"\n{label}"), (path.name, label)


def test_bridge_lifts_a_word_between_strong_neighbours():
    from promptzip.compressors.words import bridge_scores

    s = bridge_scores(np.array([0.9, 0.2, 0.1, 0.05, 0.8, 0.7]), bridge=0.5)
    assert s.tolist() == pytest.approx([0.9, 0.2, 0.1, 0.05, 0.8, 0.7])
    s = bridge_scores(np.array([0.9, 0.1, 0.8]), bridge=0.5)
    assert s[1] == pytest.approx(0.4)


def test_a_retired_setting_is_a_usage_error_that_says_so():
    """`phrases` was retired in extract version 9 (measured to change nothing); asking for it
    says it was retired rather than that it never existed."""
    with pytest.raises(UsageError, match="phrases was retired"):
        compress(PASSAGE, method="extract", ratio=0.33, phrases="off")
    with pytest.raises(UsageError, match="has no parameter"):
        compress(PASSAGE, method="extract", ratio=0.33, no_such_setting="1")


NUMBER_DENSE = ("The 2008 survey counted 4,312 households in 17 villages, 2,905 of them within 12 km of the "
                "river; 61% had lost a house, 38% a harvest and 9% both. Relief arrived after 6 days, "
                "when 1,200 tents, 340 tonnes of rice and 85 doctors reached the valley. The mayor of the "
                "district, Elena Brankovic, asked the province for a second bridge.")


def test_with_a_question_numbers_compete_for_the_budget():
    """Without a question every number is kept (here past the budget); with one, numbers are
    scored like other words, so the ratio holds and the words the question needs have room;
    `-p numbers=keep` restores the protection."""
    numbers = re.findall(r"\d[\d,.]*%?", NUMBER_DENSE)
    q = "Who asked the province for a second bridge?"
    plain = compress(NUMBER_DENSE, method="extract", ratio=0.2)
    assert all(n in plain.text for n in numbers)
    assert plain.report.ratio > 0.3
    asked = compress(NUMBER_DENSE, method="extract", ratio=0.2, query=q)
    assert abs(asked.report.ratio - 0.2) <= 0.03, asked.report.ratio
    assert "Brankovic" in asked.text
    assert sum(n in asked.text for n in numbers) < len(numbers)
    kept = compress(NUMBER_DENSE, method="extract", ratio=0.2, query=q, numbers="keep")
    assert all(n in kept.text for n in numbers)


def test_question_words_give_their_budget_to_what_the_reader_lacks():
    """With a question, its own words score a quarter of their probability: fewer of them are
    kept than with the damping off (`-p question_words=1`), the answer still is, the ratio holds,
    and a factor outside [0, 1] is a usage error."""
    q = "Who stayed in lunar orbit aboard Columbia?"
    asked = {"stayed", "lunar", "orbit", "aboard", "columbia"}

    def kept_question_words(res):
        return sum(re.sub(r"\W", "", w.lower()) in asked for w, _, k in res.report.words if k)

    # at 0.2 the budget reaches the answer and some of the question's words (the model puts both
    # far above the rest of this passage), so what the damping gives away shows; words rank by
    # probability alone (cost_power=0) and none is lifted by its neighbours (bridge=0: with it,
    # the question's words between two answer words are lifted back), so only the damping differs
    damped = compress(PASSAGE, method="extract", ratio=0.2, query=q, word_scores=True, cost_power=0, bridge=0)
    plain = compress(PASSAGE, method="extract", ratio=0.2, query=q, word_scores=True, question_words=1,
                     cost_power=0, bridge=0)
    assert kept_question_words(damped) < kept_question_words(plain)
    assert "Collins" in damped.text
    assert abs(damped.report.ratio - 0.2) <= 0.03
    # the probabilities reported are the model's, undamped
    assert [s for _, s, _ in damped.report.words] == [s for _, s, _ in plain.report.words]
    with pytest.raises(UsageError):
        compress(PASSAGE, method="extract", ratio=0.2, query=q, question_words=2)


def test_threshold_mode_ignores_the_question_damping():
    """--threshold compares the model's own probability: the damping (a budget matter) does not
    apply there."""
    q = "Who stayed in lunar orbit aboard Columbia?"
    damped = compress(PASSAGE, method="extract", threshold=0.3, query=q)
    plain = compress(PASSAGE, method="extract", threshold=0.3, query=q, question_words=1)
    assert damped.text == plain.text


def test_a_long_question_leaves_room_for_words_in_small_windows():
    q = " ".join(["Which astronaut stayed behind in lunar orbit while the others walked"] * 6)
    sc = Scorer(DEFAULT_MODEL, max_len=16, overlap=4)
    plan = sc.plan(PASSAGE.split(), q)
    assert plan and all(len(ids) <= 16 and b > a for ids, _, _, (a, b) in plan)
    res = compress(PASSAGE, method="extract", ratio=0.5, query=q, max_len=16)
    assert 0 < res.report.output_tokens < res.report.input_tokens


def test_trimmed_keeps_abbreviations_and_initials():
    assert [w[slice(*_trimmed(w))] for w in ("(Norman:", "Normanni)", "U.S.,", "J.", "Mr.", '"end."', "—", "1,000,",
                                             "«Ja»", "¿Qué?", "and…")] \
        == ["Norman", "Normanni", "U.S.", "J.", "Mr", "end", "—", "1,000", "Ja", "Qué", "and"]
    assert _trimmed("...") == (3, 3)


@pytest.mark.parametrize("query", [None, "Who stayed in lunar orbit?"])
def test_punctuation_is_dropped_without_a_question_and_kept_with_one(query):
    text = PASSAGE.replace("Michael Collins", "(Michael Collins)")
    auto = compress(text, method="extract", ratio=0.4, query=query).text
    dropped = compress(text, method="extract", ratio=0.4, query=query, punctuation="drop").text
    kept = compress(text, method="extract", ratio=0.4, query=query, punctuation="keep").text
    assert not re.search(r"[(),.]", dropped.replace("02:56", ""))  # the time is protected
    assert re.search(r"[(),.]", kept)
    assert auto == (kept if query else dropped)
    if query is None:  # numbers are always kept without a question, their punctuation trimmed
        assert all(number in dropped.split() for number in ("11", "1969", "02:56"))


def test_punctuation_freed_budget_goes_to_words():
    dropped = compress(PASSAGE, method="extract", ratio=0.33, punctuation="drop").text
    kept = compress(PASSAGE, method="extract", ratio=0.33, punctuation="keep").text
    assert len(dropped.split()) > len(kept.split())


def test_articles_give_their_budget_to_content_words():
    def articles(text):
        return sum(w.lower() in ("a", "an", "the") for w in text.split())

    scored = compress(PASSAGE, method="extract", ratio=0.6, articles=1.0).text  # `Eagle the Sea` (bridged)
    damped = compress(PASSAGE, method="extract", ratio=0.6).text  # default articles=0
    assert articles(scored) > 0
    assert articles(damped) == 0
    assert len(damped.split()) > len(scored.split()) - articles(scored)


def test_answer_lines_are_few_shot_answers_not_prose():
    from promptzip.compressors.words import _ANSWER_LINE

    for line in ("The answer is 4.", "Ann says 3. Bob lies. So the answer is No.", "#### 42",
                 "Therefore, the final answer is 7"):
        assert _ANSWER_LINE.search(line), line
    for prose in ("If the answer is yes, many problems have faster solutions.", "Walking, the answer is 5"):
        assert not _ANSWER_LINE.search(prose), prose


def test_cost_power_ranks_cheap_words_up():
    """With cost_power 1 words rank by probability per token: more, cheaper words fit the same budget
    (on the shipped demo document: a single paragraph is too few words to tell)."""
    text = DEMO.read_text(encoding="utf-8")
    by_score = compress(text, method="extract", ratio=0.33, cost_power=0)
    per_token = compress(text, method="extract", ratio=0.33, cost_power=1)
    assert abs(per_token.report.ratio - 0.33) <= 0.02
    assert len(per_token.text.split()) > len(by_score.text.split())


@pytest.mark.parametrize("threshold", [0.0, 0.3, 1e-5])
def test_units_of_punctuation_alone_are_not_written(threshold):
    """A word trimmed to nothing is never kept, even by a threshold that keeps every other word,
    so a paragraph of punctuation alone leaves no line behind."""
    text = PASSAGE + '\n\n...\n\n("")\n\n' + PASSAGE.replace("Apollo", "Gemini")
    out = compress(text, method="extract", ratio=0.4, threshold=threshold).text
    assert out.count("\n\n") == 1
    assert "..." not in out and '("")' not in out
