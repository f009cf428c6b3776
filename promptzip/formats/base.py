"""What every format handler shares: its context, its output, and the budget fit.

Handlers select whole items (rows, lines, array elements) and write their own valid output,
so the output's token count is not the sum of the items' costs: joins, markers of what was left
out and re-serialisation all cost a little. `fit` therefore treats a handler's `render(budget)`
as a black box that is roughly monotone in its budget and searches the budget whose *measured*
output lands on the target: a few secant steps, then the best measured candidate (never one
over the target when one within the tolerance below exists).
"""

from __future__ import annotations

import math
import re
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from ..compressors.lexical import STOPWORDS
from ..select import select_by_score
from ..tokens import TokenCounter

TOLERANCE = 0.01  # of the input tokens: how close to the target `fit` tries to land


@dataclass
class FormatContext:
    """What a handler may use: the counting tokenizer, the budget and the request, and the
    chosen method for plain text (`compress_text(text, tokens)`)."""

    counter: TokenCounter
    input_tokens: int
    budget: int
    query: str | None = None
    force: tuple[str, ...] = ()
    language: str | None = None
    label: str = ""
    compress_text: Callable[[str, int], str] | None = None
    warnings: list[str] = field(default_factory=list)
    # tokens the output may exceed the budget by when that lands closer to it (a --ratio is a
    # target; a --target-tokens budget is a cap: 0)
    over: int = 0

    def count(self, text: str) -> int:
        return self.counter.count(text) if text else 0

    def warn(self, message: str) -> None:
        self.warnings.append(message)

    def text(self, text: str, tokens: int) -> str:
        """`text` compressed by the chosen method to at most `tokens` tokens (as is if it fits)."""
        if tokens <= 0 or not text.strip():
            return ""
        if self.count(text) <= tokens:
            return text
        if self.compress_text is None:
            return text[: max(1, tokens * 3)]
        return self.compress_text(text, tokens)


@dataclass
class FormatOutput:
    text: str
    handler: str
    # everything the handler keeps fits under the budget: a ratio below the request is expected
    all_fits: bool = False
    details: dict[str, Any] = field(default_factory=dict)


class Handler(ABC):
    """One input format: `compress(text, ctx)` writes a valid document of that format."""

    name: ClassVar[str]
    extensions: ClassVar[tuple[str, ...]] = ()
    # heavy optional packages the handler imports (for the error that names the extra)
    needs: ClassVar[tuple[str, ...]] = ()

    @abstractmethod
    def compress(self, text: str, ctx: FormatContext) -> FormatOutput:
        """The compressed document."""


def fit(render: Callable[[int], str], ctx: FormatContext, start: int | None = None,
        steps: int = 12) -> tuple[str, int, int]:
    """The output of `render(b)` for the budget b whose measured tokens land closest to
    `ctx.budget` (never more than `ctx.over` above it); returns (text, tokens, b). Secant steps
    first, bisection between the best budgets under and over the target once they stop moving."""
    target = ctx.budget
    slack = max(1, int(TOLERANCE * ctx.input_tokens) // 2)
    tried: dict[int, tuple[str, int]] = {}
    lo, hi = -1, None  # largest budget known to land under the target, smallest over it
    b = target if start is None else start
    for _ in range(steps):
        b = max(0, b)
        if b in tried or (hi is not None and b >= hi) or b <= lo:
            if hi is None or hi - lo <= 1:
                break
            b = (max(lo, 0) + hi) // 2
            if b in tried:
                break
        out = render(b)
        n = ctx.count(out)
        tried[b] = (out, n)
        if target - slack <= n <= target:
            break
        if n > target:
            hi = b if hi is None else min(hi, b)
        else:
            lo = max(lo, b)
        b = b + (target - n)
    found = [(t, n, b) for b, (t, n) in tried.items()]
    allowed = [x for x in found if x[1] <= target + ctx.over]
    if allowed:  # the closest, from below on a tie
        return min(allowed, key=lambda x: (abs(x[1] - target), x[1] > target, x[2]))
    return min(found, key=lambda x: x[1])


def greedy(costs: np.ndarray, scores: np.ndarray, budget: int, must: np.ndarray | None = None) -> np.ndarray:
    """Must-keep items, then the best-scored items that still fit (ties to earlier items)."""

    costs = np.asarray(costs, dtype=np.int64)
    must = np.zeros(len(costs), dtype=bool) if must is None else np.asarray(must, dtype=bool)
    if not len(costs):
        return must
    return select_by_score(costs, np.asarray(scores, dtype=float), budget, must)


def spread_scores(n: int) -> np.ndarray:
    """Scores that make a greedy fill keep evenly spaced items at any budget: the rank of each
    index in the bit-reversed (van der Corput) order, first item best."""
    if n <= 0:
        return np.zeros(0)
    bits = max(1, (n - 1).bit_length())
    idx = np.arange(1 << bits)
    rev = np.zeros_like(idx)
    for k in range(bits):
        rev |= ((idx >> k) & 1) << (bits - 1 - k)
    order = rev[rev < n]
    scores = np.empty(n)
    scores[order] = -np.arange(n, dtype=float)
    return scores


_WORD = re.compile(r"[^\W_]+")


def query_terms(query: str | None) -> set[str]:
    """Lower-cased content words of a query (for lexical relevance of items)."""
    if not query:
        return set()
    return {w for w in (m.group().lower() for m in _WORD.finditer(query)) if w not in STOPWORDS and len(w) > 1}


def relevance(texts: list[str], query: str | None) -> np.ndarray:
    """Per text: how many distinct query terms it holds, damped by document frequency (an
    IDF-weighted overlap; 0 everywhere without a query)."""
    terms = query_terms(query)
    out = np.zeros(len(texts))
    if not terms or not texts:
        return out
    sets = [{w.lower() for w in _WORD.findall(t)} & terms for t in texts]
    df = {t: sum(1 for s in sets if t in s) for t in terms}
    n = len(texts)
    for i, s in enumerate(sets):
        out[i] = sum(math.log(1 + n / df[t]) for t in s)
    return out


def join_kept(lines: list[str], kept: list[bool]) -> str:
    """The kept lines joined, less a blank line that would follow another blank line across
    dropped ones (dropping a comment between two blank lines must not leave a run of them)."""
    out: list[str] = []
    gap = False  # a line was dropped since the last one written
    for line, k in zip(lines, kept, strict=True):
        if not k:
            gap = True
            continue
        if gap and not line.strip() and (not out or not out[-1].strip()):
            continue
        out.append(line)
        gap = False
    return "".join(out)
