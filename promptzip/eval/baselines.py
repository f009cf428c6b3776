"""Eval-only floors: what a method must beat to be worth anything."""

from __future__ import annotations

import re
import zlib

import numpy as np

from ..tokens import TokenCounter


def random_drop(text: str, ratio: float, counter: TokenCounter, seed_key: str) -> str:
    """Keep a random subset of words (in order) whose token count fits ratio x the input's."""
    words = re.findall(r"\S+", text)
    if not words:
        return ""
    budget = ratio * counter.count(text)
    costs = np.asarray(counter.count_many([" " + w for w in words]))
    rng = np.random.default_rng(zlib.crc32(seed_key.encode()))
    order = rng.permutation(len(words))
    fit = int(np.searchsorted(np.cumsum(costs[order]), budget, side="right"))
    keep = np.zeros(len(words), dtype=bool)
    keep[order[:fit]] = True
    return " ".join(w for w, k in zip(words, keep, strict=True) if k)
