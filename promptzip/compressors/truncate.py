"""`truncate`: keep the head, the tail, or both ends of the document within the budget.

The cut falls on a word boundary inside the boundary sentence; blocks (code, tables, JSON,
list items, headings) are never cut: one that does not fit ends the kept run. Units holding a
`--force` string are kept wherever they are, and their tokens come out of the budget first.
"""

from __future__ import annotations

import numpy as np

from ..context import Context, Partial
from ..segment import FORCED, Kind
from .base import Compressor, Param


class Truncate(Compressor):
    name = "truncate"
    refits = True  # 2: --ratio refitted on the measured output
    version = "2"
    description = "Keep the first and/or last tokens of the document (baseline)."
    params = (
        Param("side", str, "head", "which end to keep", ("head", "tail", "both")),
        Param("head_share", float, 0.5, "with side=both: share of the budget for the head", bounds=(0, 1)),
    )

    def compress(self, ctx: Context) -> None:
        t = ctx.table
        n = len(t)
        keep = (t.flags & FORCED) > 0
        left = ctx.budget - int(t.tokens[keep].sum())
        side = self.settings["side"]
        share = min(max(self.settings["head_share"], 0.0), 1.0)

        def run(order: np.ndarray, allowance: int) -> tuple[int, int | None]:
            """Keep units along `order` while they fit; return (tokens used, first misfit)."""
            free = order[~keep[order]]
            csum = np.cumsum(t.tokens[free])
            n_fit = int(np.searchsorted(csum, allowance, side="right"))
            keep[free[:n_fit]] = True
            used = int(csum[n_fit - 1]) if n_fit else 0
            return used, (int(free[n_fit]) if n_fit < len(free) else None)

        forward, backward = np.arange(n), np.arange(n - 1, -1, -1)
        if side == "head":
            used, boundary = run(forward, left)
            rest, part_side = left - used, "head"
        elif side == "tail":
            used, boundary = run(backward, left)
            rest, part_side = left - used, "tail"
        else:
            head_used, head_boundary = run(forward, int(left * share))
            tail_used, boundary = run(backward, left - head_used)
            rest, part_side = left - head_used - tail_used, "tail"
            if head_boundary is not None and not keep[head_boundary]:
                boundary, part_side = head_boundary, "head"
        partial = None
        if boundary is not None and not keep[boundary] and rest > 0 and t.kind[boundary] == Kind.SENTENCE:
            partial = Partial(boundary, part_side, rest)
        ctx.emit(keep, partial)
