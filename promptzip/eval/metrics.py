"""Text metrics (SQuAD-style normalization, answer retention, EM/F1) and bootstrap intervals."""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Sequence

import numpy as np

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCT = str.maketrans("", "", string.punctuation)


def normalize(text: str) -> str:
    text = _ARTICLES.sub(" ", text.lower().translate(_PUNCT))
    return " ".join(text.split())


def answer_retained(compressed: str, answers: Sequence[str]) -> bool:
    """A normalized gold answer occurs in the normalized compressed context."""
    hay = f" {normalize(compressed)} "
    return any(f" {normalize(a)} " in hay for a in answers if normalize(a))


def exact_match(prediction: str, answers: Sequence[str]) -> float:
    p = normalize(prediction)
    return float(any(p == normalize(a) for a in answers))


def f1(prediction: str, answers: Sequence[str]) -> float:
    pred = normalize(prediction).split()
    best = 0.0
    for a in answers:
        gold = normalize(a).split()
        common = sum((Counter(pred) & Counter(gold)).values())
        if not pred or not gold or not common:
            continue
        p, r = common / len(pred), common / len(gold)
        best = max(best, 2 * p * r / (p + r))
    return best


# Lines that carry a prompt's structure: example separators, step markers, answer lines.
_STRUCTURAL = re.compile(
    r"^\s*(?:#{1,6}\s|Question:|Q:|A:|Answer:|Let's think step by step|Options?:|.*\bThe answer is\b)"
)


def structure_kept(original: str, compressed: str) -> float | None:
    """Share of the original's structural lines found verbatim among the compressed lines."""
    wanted = [ln.strip() for ln in original.splitlines() if _STRUCTURAL.match(ln)]
    if not wanted:
        return None
    have = {ln.strip() for ln in compressed.splitlines()}
    return sum(ln in have for ln in wanted) / len(wanted)


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
