"""LaTeX: comments go first, then the preamble, then the chosen method thins the body.

A file with no `\\begin{document}` whose lines are mostly commands (a thesis template's
`preamble.tex`, a macro file) has no prose for a method to thin: its statements (a command and
the lines its braces hold open) are kept whole, `\\documentclass` and packages first, then macro
definitions, then the rest, in the order of the input, as many as the budget holds.
Blank lines that dropped lines would leave in runs are written once.

`` and '' are quotes here (the segmenter never reads backticks of a LaTeX quote as inline
code). Comment lines are dropped from the last one up, then trailing comments, then preamble
lines (all but `\\documentclass`), each only as far as the budget needs; what remains of the
body is handed to the method with the budget left over, so the output stays one document in
the order of the input. A method that keeps words of the body (every extractive one) can keep
`\\emph{Prior` and drop `Analytics}`: the thinned body's braces are then put right again, a
group whose `}` went is closed after its last kept word, and a `}` whose group went is dropped.
"""

from __future__ import annotations

import re
from bisect import bisect_left

import numpy as np

from .base import FormatContext, FormatOutput, Handler, fit, greedy, join_kept

_COMMENT_LINE = re.compile(r"^[ \t]*(?<!\\)%.*\n?", re.MULTILINE)
_TRAILING = re.compile(r"(?<!\\)%.*$", re.MULTILINE)
_BEGIN = re.compile(r"^[^%\n]*\\begin\{document\}.*\n?", re.MULTILINE)
_TOKEN = re.compile(r"\S+")
# what opens and closes: an environment's \begin{name} and \end{name}, a group's { and }
# (\{ and \} are literal braces)
_COMMAND = re.compile(r"^[ \t]*\\[A-Za-z@]")
_PACKAGE = re.compile(r"^[ \t]*\\(?:documentclass|usepackage|RequirePackage|LoadClass)\b")
_DEFINITION = re.compile(r"^[ \t]*\\(?:(?:re)?newcommand|providecommand|(?:re)?newenvironment|def|let|"
                         r"DeclareMathOperator|DeclareRobustCommand|newtheorem|definecolor|NewDocumentCommand)\b")
COMMAND_SHARE = 0.6  # no \begin{document} and at least this share of code lines are commands: no prose body
_MARK = re.compile(r"\\(begin|end)\{([^{}\s]*)\}|(?<!\\)([{}])")


def _pairs(text: str) -> dict[int, tuple[int, str]]:
    """Per opening and closing mark of `text` that has its partner (properly nested): the
    partner's offset and the text that closes the pair (`}` or `\\end{name}`)."""
    pairs: dict[int, tuple[int, str]] = {}
    stack: list[tuple[int, str]] = []
    for m in _MARK.finditer(text):
        closer = "}" if m.group(3) else f"\\end{{{m.group(2)}}}"
        if m.group(3) == "{" or m.group(1) == "begin":
            stack.append((m.start(), closer))
        elif stack and stack[-1][1] == m.group():
            a, _ = stack.pop()
            pairs[a], pairs[m.start()] = (m.start(), closer), (a, closer)
    return pairs


def _part(word: str, whole: str, start: int) -> int:
    """Where `word` starts in the source word `whole` (at or after `start`) when it is that word
    cut at its edges (only punctuation cut off) or a long piece of it (a giant word is thinned
    in pieces), else -1."""
    k = whole.find(word, start)
    if k < 0 or (len(word) < 12 and (any(c.isalnum() for c in whole[:k])
                                     or any(c.isalnum() for c in whole[k + len(word):]))):
        return -1
    return k


def rebalance(source: str, thinned: str) -> str:
    """`thinned` (words of `source` in order, each whole or cut at its edges) with its groups and
    environments made whole again: a kept `{` or `\\begin{name}` whose closing mark was dropped is
    closed after the last kept word that started inside it, a kept closing mark whose opening
    went is dropped. Words not found in `source` in order (a rewriting method's text, pieces of
    a giant word) are left as they are."""
    pairs = _pairs(source)
    if not pairs:
        return thinned
    src = [(m.start(), m.group()) for m in _TOKEN.finditer(source)]
    where: list[tuple[int, int, int]] = []  # per kept word: offset in thinned, its end there, offset in source
    i = off = 0  # the next source word, and how much of it earlier pieces took
    for m in _TOKEN.finditer(thinned):
        j, k = i, _part(m.group(), src[i][1], off) if i < len(src) else -1
        while k < 0 and (j := j + 1) < len(src):
            k = _part(m.group(), src[j][1], 0)
        if k >= 0:
            where.append((m.start(), m.end(), src[j][0] + k))
            i, off = (j, k + len(m.group())) if k + len(m.group()) < len(src[j][1]) else (j + 1, 0)
    kept: dict[int, tuple[int, int]] = {}  # source offset of a kept mark -> its span in thinned
    for at, end, origin in where:
        for m in _MARK.finditer(thinned, at, end):
            kept[origin + m.start() - at] = m.span()
    origins = [origin for _, _, origin in where]
    drop: list[tuple[int, int]] = []
    close: dict[int, list[str]] = {}  # offset in thinned after which closing marks go
    for s_at, span in kept.items():
        if s_at not in pairs or pairs[s_at][0] in kept:
            continue
        other, closer = pairs[s_at]
        if other < s_at:  # a closing mark whose opening went
            drop.append(span)
            continue
        j = bisect_left(origins, other) - 1  # the last kept word that starts inside the pair
        last = max(where[j][1], span[1]) if j >= 0 else span[1]
        close.setdefault(last, []).insert(0, closer if closer == "}" else "\n" + closer)
    if not drop and not close:
        return thinned
    out, k = [], 0
    for a, b in sorted(drop) + [(len(thinned), len(thinned))]:
        for at in sorted(x for x in close if k < x <= a):
            out += [thinned[k:at], *close.pop(at)]
            k = at
        out.append(thinned[k:a])
        k = b
    return "".join(out)


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
        current = join_kept(lines, kept)
        # 2. trailing comments
        if ctx.count(current) > ctx.budget:
            current = re.sub(r"[ \t]+$", "", _TRAILING.sub("", current), flags=re.MULTILINE)
        # 3. the preamble, but for \documentclass
        m = _BEGIN.search(current)
        if m is None and ctx.count(current) > ctx.budget and _commands_only(current):
            out = _statements(current, ctx)
            details["summary"] = (f"no document body (commands only): {details['comment_lines']} comment lines and "
                                  "whole statements dropped")
            return FormatOutput(out, "latex", details=details)
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
        out = pre + rebalance(body, ctx.text(body, room))
        parts = [f"{details['comment_lines'] - sum(1 for i, c in enumerate(comment) if c and kept[i])} comment lines"]
        if details.get("preamble_lines_dropped"):
            parts.append(f"{details['preamble_lines_dropped']} preamble lines")
        details["summary"] = f"dropped {' and '.join(parts)}; body thinned by the method"
        return FormatOutput(out, "latex", details=details)


def _commands_only(text: str) -> bool:
    code = [x for x in text.splitlines() if x.strip() and not _COMMENT_LINE.fullmatch(x + "\n")]
    return bool(code) and sum(bool(_COMMAND.match(x)) for x in code) >= COMMAND_SHARE * len(code)


def _statements(text: str, ctx: FormatContext) -> str:
    """Whole statements (a line, and the lines after it while its braces stay open) within the
    budget: packages first, then definitions, then the rest; blank lines between kept ones."""
    groups: list[list[str]] = []
    depth = 0
    for line in text.splitlines(keepends=True):
        if depth > 0 and groups:
            groups[-1].append(line)
        else:
            groups.append([line])
        code = _TRAILING.sub("", line).replace("\\{", "").replace("\\}", "")
        depth = max(0, depth + code.count("{") - code.count("}"))
    items = ["".join(g) for g in groups]
    blank = np.array([not x.strip() for x in items])
    costs = np.asarray(ctx.counter.count_many(items), dtype=np.int64)
    rank = np.array([3.0 if _PACKAGE.match(x) else 2.0 if _DEFINITION.match(x) else 1.0 for x in items])
    scores = rank - np.arange(len(items)) / (len(items) + 1)  # earlier first within a rank
    scores[blank] = -1.0

    def render(budget: int) -> str:
        keep = greedy(costs, scores, budget) & ~blank
        near = np.zeros(len(items), dtype=bool)  # a blank line right after a kept statement stays
        near[1:] = keep[:-1] & blank[1:]
        return join_kept(items, (keep | near).tolist())

    out, _, _ = fit(render, ctx)
    return out
