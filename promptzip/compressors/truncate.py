"""`truncate`: keep the head, the tail, or both ends of the document within the budget.

The cut falls on a word boundary inside the boundary sentence; blocks (code, tables, JSON,
list items, headings) are never cut: one that does not fit ends the kept run. Units holding a
`--force` string are kept wherever they are, and their tokens come out of the budget first.
"""

from __future__ import annotations

import numpy as np

from ..pipeline import Context, Partial
from ..segment import FORCED, Kind
from .base import Compressor, Param


class Truncate(Compressor):
    name = "truncate"
    description = "Keep the first and/or last tokens of the document (baseline)."
    params = (
        Param("side", str, "head", "which end to keep", ("head", "tail", "both")),
        Param("head_share", float, 0.5, "with side=both: share of the budget for the head"),
    )

    def compress(self, ctx: Context) -> None:
        t = ctx.table
        n = len(t)
        tokens = t.tokens.tolist()
        kinds = t.kind.tolist()
        keep = (t.flags & FORCED) > 0
        left = ctx.budget - int(t.tokens[keep].sum())
        side = self.settings["side"]
        share = min(max(self.settings["head_share"], 0.0), 1.0)

        def run(indices: range, allowance: int) -> tuple[int, int | None]:
            """Keep units along `indices` while they fit; return (tokens used, boundary)."""
            used = 0
            for i in indices:
                if keep[i]:
                    continue
                if used + tokens[i] > allowance:
                    return used, i
                keep[i] = True
                used += tokens[i]
            return used, None

        partial = None
        if side == "head":
            used, boundary = run(range(n), left)
            rest, psid = left - used, "head"
        elif side == "tail":
            used, boundary = run(range(n - 1, -1, -1), left)
            rest, psid = left - used, "tail"
        else:
            head_used, head_boundary = run(range(n), int(left * share))
            tail_used, boundary = run(range(n - 1, -1, -1), left - head_used)
            rest, psid = left - head_used - tail_used, "tail"
            if head_boundary is not None and not keep[head_boundary]:
                boundary, psid = head_boundary, "head"
        if boundary is not None and not keep[boundary] and rest > 0 and kinds[boundary] == Kind.SENTENCE:
            partial = Partial(boundary, psid, rest)
        ctx.emit(np.asarray(keep, dtype=bool), partial)
