"""LaTeX: comments go first, then the preamble, then the chosen method thins the body.

`` and '' are quotes here (the segmenter never reads backticks of a LaTeX quote as inline
code). Comment lines are dropped from the last one up, then trailing comments, then preamble
lines (all but `\\documentclass`), each only as far as the budget needs; what remains of the
body is handed to the method with the budget left over, so the output stays one document in
the order of the input.
"""

from __future__ import annotations

import re

from .base import FormatContext, FormatOutput, Handler

_COMMENT_LINE = re.compile(r"^[ \t]*(?<!\\)%.*\n?", re.MULTILINE)
_TRAILING = re.compile(r"(?<!\\)%.*$", re.MULTILINE)
_BEGIN = re.compile(r"^[^%\n]*\\begin\{document\}.*\n?", re.MULTILINE)


class LatexHandler(Handler):
    name = "latex"

    def compress(self, text: str, ctx: FormatContext) -> FormatOutput:
        details: dict = {}
        if ctx.count(text) <= ctx.budget:
            return FormatOutput(text, "latex", all_fits=True, details=details)
        lines = text.splitlines(keepends=True)
        comment = [bool(_COMMENT_LINE.fullmatch(x)) for x in lines]
        details["comment_lines"] = sum(comment)
        # 1. comment lines, from the last one up
        total = ctx.count(text)
        costs = ctx.counter.count_many(lines)
        kept = [True] * len(lines)
        for i in reversed(range(len(lines))):
            if total <= ctx.budget:
                break
            if comment[i]:
                kept[i] = False
                total -= costs[i]
        current = "".join(x for x, k in zip(lines, kept, strict=True) if k)
        # 2. trailing comments
        if ctx.count(current) > ctx.budget:
            current = _TRAILING.sub("", current)
        # 3. the preamble, but for \documentclass
        m = _BEGIN.search(current)
        pre, body = (current[: m.start()], current[m.start():]) if m else ("", current)
        if m and ctx.count(current) > ctx.budget:
            pre_lines = pre.splitlines(keepends=True)
            keep_pre = [x for x in pre_lines if x.lstrip().startswith("\\documentclass")]
            dropped = len(pre_lines) - len(keep_pre)
            details["preamble_lines_dropped"] = dropped
            pre = "".join(keep_pre)
        if ctx.count(pre + body) <= ctx.budget:
            return FormatOutput(pre + body, "latex", details=details)
        room = ctx.budget - ctx.count(pre)
        out = pre + ctx.text(body, room)
        parts = [f"{details['comment_lines'] - sum(1 for i, c in enumerate(comment) if c and kept[i])} comment lines"]
        if details.get("preamble_lines_dropped"):
            parts.append(f"{details['preamble_lines_dropped']} preamble lines")
        details["summary"] = f"dropped {' and '.join(parts)}; body thinned by the method"
        return FormatOutput(out, "latex", details=details)
