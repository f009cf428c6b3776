"""Selection by score under a token budget: the greedy fill every extractive method uses, the
partial sentence that spends what it leaves, and a budget shared in proportion to weights.
Floor: text primitives (imports `context` and `segment` only)."""

from __future__ import annotations

import numpy as np

from .context import Partial, UnitTable, chunked
from .segment import Kind


def select_by_score(tokens: np.ndarray, scores: np.ndarray, budget: int, must: np.ndarray) -> np.ndarray:
    """Greedy fill over items (units or words) with token costs `tokens`: must-keep items
    first, then the best-scored items that still fit (an item that does not fit is skipped and
    smaller ones are tried); ties go to earlier items."""
    keep = must.copy()
    used = int(tokens[must].sum())
    order = np.lexsort((np.arange(len(scores)), -scores))
    order = order[~keep[order]]
    # the best-scored run that fits as a whole, at once; then skip-and-continue one by one
    csum = np.cumsum(tokens[order])
    n_fit = int(np.searchsorted(csum, budget - used, side="right"))
    keep[order[:n_fit]] = True
    used += int(csum[n_fit - 1]) if n_fit else 0
    smallest = int(tokens.min()) if len(tokens) else 0
    for idx, toks in chunked(order[n_fit:], tokens[order[n_fit:]]):
        if budget - used < smallest:
            break
        for i, n in zip(idx, toks, strict=True):
            if used + n <= budget:
                keep[i] = True
                used += n
    return keep


def best_partial(table: UnitTable, keep: np.ndarray, scores: np.ndarray, budget: int) -> Partial | None:
    """Spend what the greedy fill left over on the head of the best dropped sentence, so
    short documents (a few long sentences) still land on their budget."""
    rest = budget - int(table.tokens[keep].sum())
    if rest < 2:
        return None
    candidates = np.flatnonzero(~keep & (table.kind == Kind.SENTENCE))
    if not len(candidates):
        return None
    best = candidates[np.argmax(scores[candidates])]
    return Partial(int(best), "head", rest)


def share_budget(budget: int, tokens: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Split `budget` in proportion to `weights`, no passage above its own `tokens`; what a
    capped passage does not need is shared again among the others."""
    tokens, weights = np.asarray(tokens, dtype=np.float64), np.asarray(weights, dtype=np.float64)
    share = np.zeros(len(tokens), dtype=np.float64)
    open_ = tokens > 0
    left = float(budget)
    while left > 0.5 and open_.any():
        w = np.where(open_, np.maximum(weights, 1e-9), 0.0)
        offer = left * w / w.sum()
        room = tokens - share
        take = np.minimum(offer, room)
        share += np.where(open_, take, 0.0)
        left -= float(take[open_].sum())
        full = open_ & (share >= tokens - 1e-9)
        if not full.any():
            break
        open_ &= ~full
    return np.floor(share).astype(np.int64)
