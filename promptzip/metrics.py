"""Text metrics (SQuAD-style normalization, answer retention, EM/F1) and bootstrap intervals."""

from __future__ import annotations

import re
import string
import unicodedata
from collections import Counter
from collections.abc import Sequence

import numpy as np

from .nospace import NOSPACE_SCRIPT

VERSION = 2  # of the figures below; eval measures a checkpointed row again when it changes.
# 2: answer_retained parts words at punctuation instead of deleting it

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCT = str.maketrans("", "", string.punctuation)
_PUNCT_SPACE = str.maketrans(string.punctuation, " " * len(string.punctuation))
_NOSPACE_CHAR = re.compile(f"({NOSPACE_SCRIPT.pattern})")


def normalize(text: str, spaced: bool = False) -> str:
    """SQuAD's normalization made script-blind: NFKC, lowercase, ASCII punctuation deleted and every
    other Unicode punctuation mark (`，。「」«»`) made a space, English articles removed, whitespace
    collapsed. `spaced`: ASCII punctuation made a space too (the words of `answer_retained`)."""
    text = unicodedata.normalize("NFKC", text).lower().translate(_PUNCT_SPACE if spaced else _PUNCT)
    text = "".join(" " if unicodedata.category(c).startswith("P") else c for c in text)
    return " ".join(_ARTICLES.sub(" ", text).split())


def _spaced(text: str) -> str:
    """`normalize(text, spaced=True)`, each character of a script without spaces a word of its own."""
    return " ".join(_tokens(normalize(text, spaced=True)))


def answer_retained(compressed: str, answers: Sequence[str]) -> bool:
    """A gold answer occurs in the compressed context as whole words, both normalized as SQuAD
    does but with punctuation made a space rather than deleted, so an answer counts where it
    starts after an elision, ends before a possessive or touches a bracket (`université` in
    `l'université`, `Rollo` in `Rollo's`, `ARAE` in `ARAE（Architects`); deleting it, 7 of 724
    held-out paragraphs did not keep their answer even uncompressed. Characters of a script
    written without spaces (Chinese, Japanese, Thai) are words of their own."""
    hay = f" {_spaced(compressed)} "
    return any(n and f" {n} " in hay for n in map(_spaced, answers))


def _tokens(text: str) -> list[str]:
    """Words of a normalized text; each character of a no-space script is a token of its own
    (CMRC's and JSQuAD's character-level F1)."""
    return _NOSPACE_CHAR.sub(r" \1 ", text).split()


def exact_match(prediction: str, answers: Sequence[str]) -> float:
    p = normalize(prediction)
    return float(any(p == normalize(a) for a in answers))


def f1(prediction: str, answers: Sequence[str]) -> float:
    pred = _tokens(normalize(prediction))
    best = 0.0
    for a in answers:
        gold = _tokens(normalize(a))
        common = sum((Counter(pred) & Counter(gold)).values())
        if not pred or not gold or not common:
            continue
        p, r = common / len(pred), common / len(gold)
        best = max(best, 2 * p * r / (p + r))
    return best


def precision(a: str, b: str) -> float:
    """1 - normalized character edit distance (C3's decoding precision)."""
    if not a and not b:
        return 1.0
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
        prev = cur
    return 1.0 - prev[-1] / max(len(a), len(b))


def token_match(ref: list[int], got: list[int]) -> float:
    return sum(1 for i, t in enumerate(ref) if i < len(got) and got[i] == t) / max(len(ref), 1)


# Lines that carry a prompt's structure: example separators, step markers, answer lines, and
# the labels that open an example's parts.
_STRUCTURAL = re.compile(
    r"^\s*(?:#{1,6}\s|Question:|Q:|A:|Answer:|Let's think step by step|Options?:|.*\b(?i:the answer is)\b"
    r"|[-=*_]{3,}\s*$)"
)
_LABEL = re.compile(r"^\s*(Question:|Q:|A:|Answer:|Options?:)")
_ANSWER = re.compile(r"\b(?i:the answer is)\b")
_SEPARATOR = re.compile(r"Let's think step by step|^\s*#{1,6}\s|^\s*[-=*_]{3,}\s*$")
_SENTENCE_END = re.compile(r"[.!?]\s")


def _structure_items(text: str) -> Counter:
    """A prompt's structural items: `answer <sentence>` for an answer statement (from the start
    of the sentence holding `the answer is` to the end of its line: BBH puts it after the last
    reasoning step on the same line), `line <text>` for separators and step markers, `label <L>`
    for a line opened by an example label whose text may be thinned."""
    found: Counter = Counter()
    for ln in text.splitlines():
        if not _STRUCTURAL.match(ln):
            continue
        answer = _ANSWER.search(ln)
        label = _LABEL.match(ln)
        if answer:
            starts = [m.end() for m in _SENTENCE_END.finditer(ln, 0, answer.start())]
            tail = ln[max(starts, default=label.end() if label else 0):].strip()
            found["answer " + tail] += 1
        elif label and not _SEPARATOR.search(ln[label.end():]):
            found["label " + label.group(1)] += 1
        else:
            found["line " + ln.strip()] += 1
    return found


def structure_kept(original: str, compressed: str) -> float | None:
    """Share of the original's structural items (`_structure_items`) still there: answer
    statements whole at the end of a line, separators and step markers as whole lines, labels
    still opening a line. Counted as multisets: dropping one of eight `Question:` lines costs
    one item."""
    wanted = _structure_items(original)
    if not wanted:
        return None
    lines = [ln.strip() for ln in compressed.splitlines()]

    def have(key: str) -> int:
        kind, rest = key.split(" ", 1)
        if kind == "answer":
            return sum(ln == rest or ln.endswith(" " + rest) for ln in lines)
        if kind == "label":
            return sum(ln.startswith(rest) for ln in lines)
        return lines.count(rest)

    return sum(min(n, have(k)) for k, n in wanted.items()) / sum(wanted.values())


def bootstrap_ci(values: Sequence[float], n: int = 1000, seed: int = 0,
                 level: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean."""
    arr = np.asarray([v for v in values if v is not None], dtype=np.float64)
    if len(arr) == 0:
        return (float("nan"), float("nan"))
    if len(arr) == 1:
        return (float(arr[0]), float(arr[0]))
    rng = np.random.default_rng(seed)
    means = arr[rng.integers(0, len(arr), size=(n, len(arr)))].mean(axis=1)
    lo, hi = np.quantile(means, [(1 - level) / 2, 1 - (1 - level) / 2])
    return float(lo), float(hi)


def ratio_ci(num: Sequence[float], den: Sequence[float], n: int = 1000, seed: int = 0,
             level: float = 0.95) -> tuple[float, float, float] | None:
    """sum(num) / sum(den) over paired items (e.g. a method's EM over the uncompressed
    context's EM on the same rows), with a percentile bootstrap interval that resamples items;
    None when the denominator is zero."""
    a, b = np.asarray(num, dtype=np.float64), np.asarray(den, dtype=np.float64)
    if len(a) == 0 or b.sum() == 0:
        return None
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(a), size=(n, len(a)))
    sums = b[idx].sum(axis=1)
    ratios = a[idx].sum(axis=1)[sums > 0] / sums[sums > 0]
    lo, hi = np.quantile(ratios, [(1 - level) / 2, 1 - (1 - level) / 2])
    return float(a.sum() / b.sum()), float(lo), float(hi)
