"""Source code: whole input lines, unaltered and in order, plus one marker line per elided run,
so the output reads (and for Python parses) as the input's skeleton.

Trade-offs: units are what can be dropped without breaking the text: Python logical lines from
`tokenize` (a bracketed expression or triple-quoted string is one unit), elsewhere physical
lines joined while a block comment, multi-line string or `\\` continuation runs on, so a long
statement is kept or dropped whole, never cut. Structure is read from indentation, not parsed:
a line needs its enclosing header; a line opening with a closing bracket goes with the line that
opened it; decorators go with their definition, a lone `{` with its signature, a Python clause
(`else`, `except`, ...) needs the clause before it and `try` keeps its first handler. That is
cheap and language-agnostic, but badly indented code gets a looser skeleton. Selection is one
greedy by score: blanks, then comments and docstrings, then bodies (deeper, then later lines
first), then signatures, then top-level lines; a header scores at least what it encloses, so
greedy takes it first, and a group whose header did not fit is dropped after. A query lifts the
lines and whole functions holding its words. `fit` searches the greedy budget on the measured
output, markers included. Python output is checked with `ast.parse`: a top-level block at an
error is cut to its header plus a marker and the selection redone (valid beats tight).
"""

from __future__ import annotations

import ast
import io
import re
import tokenize
import warnings

import numpy as np

from .base import FormatContext, FormatOutput, Handler, fit, greedy, relevance
from .detect import HASH_COMMENTS

BLANK, COMMENT, CODE = 0, 1, 2
_LINE = re.compile(r"[^\n]*\n|[^\n]+$")
_WORD = re.compile(r"[A-Za-z_]\w*")
_CONTROL = frozenset("if else elif for while do switch case default try catch except finally with "
                     "match loop select return unsafe defer go async await".split())
_BOX = "class|struct|interface|impl|trait|enum|mod|module|namespace|object|union|extern"
_CONTAINER = re.compile(rf"\b(?:{_BOX})\b")
_DEF = re.compile(rf"\b(?:def|func|fn|function|{_BOX})\b")
_CLAUSE = re.compile(r"(?:else|elif|except|finally)\b")
_C_LIKE = frozenset({None, "c", "cpp", "objc", "csharp", "go"})
_LABEL = re.compile(r"#\s*\w+|(?!default\b)\w+:\s*$")  # preprocessor lines and goto labels
_OPEN = ("(", "[", "{")
_KW_LANGS = frozenset({"ruby", "shell", "lua"})  # blocks closed by keywords
_KW_END = frozenset({"end", "fi", "done", "esac"})
_KW_CLAUSE = frozenset({"else", "elif", "elsif", "elseif", "rescue", "ensure", "when"})
_RUST_CHAR = re.compile(r"'(?:\\[^']{1,9}|[^'\\])'")


class Unit:
    """Lines kept or dropped together; `head` is the first line stripped, `last` the code (no
    comment) of the last line, `ws` the leading whitespace, `indent` its width."""

    def __init__(self, rows: list[str], kind: int, last: str | None = None) -> None:
        first = rows[0].rstrip("\r\n")
        self.ws = first[: len(first) - len(first.lstrip())]
        self.text, self.nlines, self.kind, self.head = "".join(rows), len(rows), kind, first.strip()
        self.last = (rows[-1] if last is None else last).strip()
        self.indent, self.doc = len(self.ws.expandtabs(8)), False
        self.word = m.group() if (m := _WORD.match(self.head)) else ""


def _python_units(text: str, rows: list[str]) -> list[Unit] | None:
    """Logical lines (and comment-only / blank lines) from `tokenize`; docstrings marked."""
    spans: dict[int, tuple[int, int]] = {}  # first row -> (last row, kind)
    start = None
    try:
        for tok in tokenize.generate_tokens(io.StringIO(text).readline):
            tt, r0 = tok.type, tok.start[0] - 1
            if tt == tokenize.NEWLINE:
                spans[r0 if start is None else start] = (r0, CODE)
                start = None
            elif tt in (tokenize.INDENT, tokenize.DEDENT, tokenize.ENDMARKER) or start is not None:
                continue
            elif tt in (tokenize.COMMENT, tokenize.NL):
                spans.setdefault(r0, (r0, COMMENT if tt == tokenize.COMMENT else BLANK))
            else:
                start = r0
    except (tokenize.TokenError, SyntaxError):
        return None
    units, first, r = [], {}, 0
    while r < len(rows):
        end, kind = spans.get(r, (r, CODE if rows[r].strip() else BLANK))
        while end + 1 < len(rows) and end + 1 not in spans:  # rows no token claimed
            end += 1
        first[r] = len(units)
        units.append(Unit(rows[r:end + 1], kind))
        r = end + 1
    tree = _parse(text)
    for node in ast.walk(tree) if isinstance(tree, ast.Module) else ():
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) \
                and ast.get_docstring(node, clean=False) is not None \
                and (i := first.get(node.body[0].lineno - 1)) is not None:
            units[i].doc = True  # a sole docstring is a body: its elision needs a marker
            units[i].kind = CODE if len(node.body) == 1 else COMMENT
    return units


def _line_units(rows: list[str], lang: str | None) -> list[Unit]:
    """Physical lines, joined while a block comment, multi-line string or `\\` runs on."""
    hashes = lang in HASH_COMMENTS
    line_c = "--" if lang in ("sql", "lua") else None if hashes else "//"
    block, multi = not hashes and lang != "lua", "`\"" if lang == "rust" else "`"
    units: list[Unit] = []
    state, pending, has_code, last = "", [], False, ""
    for n, row in enumerate(rows):
        line = row.rstrip("\r\n")
        code, i = [], 0
        has_code |= bool(state) and state != "*/"
        if hashes:  # no block comments or multi-line strings tracked
            comment = line.lstrip().startswith("#") and (n > 0 or not line.startswith("#!"))
            code, i = ([] if comment else [line]), len(line)
        while i < len(line):
            c = line[i]
            if state == "*/":
                j = line.find("*/", i)
                state, i = ("*/", len(line)) if j < 0 else ("", j + 2)
            elif state:
                code.append(line[i:i + 2] if c == "\\" else c)
                i += 2 if c == "\\" else 1
                state = "" if c == state else state
            elif block and line.startswith("/*", i):
                state, i = "*/", i + 2
            elif line_c and line.startswith(line_c, i):
                break
            elif c == "'" and lang == "rust":  # a char literal, or a lifetime
                m = _RUST_CHAR.match(line, i)
                code.append(m.group() if m else c)
                i = m.end() if m else i + 1
            else:
                state = c if c in "\"'`" else ""
                code.append(c)
                i += 1
        if state and state != "*/" and state not in multi:
            state = ""  # an unterminated ordinary string ends with its line
        text = "".join(code).strip()
        has_code, last = has_code or bool(text), text or last
        pending.append(row)
        if not state and not (line.endswith("\\") and text) or n == len(rows) - 1:
            kind = CODE if has_code else COMMENT if "".join(pending).strip() else BLANK
            units.append(Unit(pending, kind, last))
            pending, has_code, last = [], False, ""
    return units


def _marker(lang: str | None, n: int) -> str:
    lead = "--" if lang in ("sql", "lua") else "#" if lang in HASH_COMMENTS else "//"
    return f"...  # {n} lines" if lang == "python" else f"{lead} ... {n} lines"


def _parse(text: str) -> ast.Module | SyntaxError:
    """The module, or the error that stops the parse."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return ast.parse(text)
    except (SyntaxError, ValueError) as exc:
        return exc if isinstance(exc, SyntaxError) else SyntaxError(str(exc))


def _structure(units: list[Unit], lang: str | None, query: str | None):
    """Per unit: its header (parent), the units it needs, the pairs kept together, its score."""
    n, py = len(units), lang == "python"
    code = [u.kind == CODE for u in units]
    label = [code[i] and lang in _C_LIKE and bool(_LABEL.match(units[i].head)) for i in range(n)]
    nxt = [0] * (n + 1)  # indentation of the next structural code unit
    for i in range(n - 1, -1, -1):
        nxt[i] = units[i].indent if code[i] and not label[i] else nxt[i + 1]
    parent, stack = [-1] * n, []
    for i, u in enumerate(units):
        if code[i] and not label[i]:
            while stack and stack[-1][0] >= u.indent:
                stack.pop()
            parent[i] = stack[-1][1] if stack else -1
            stack.append((u.indent, i))
        elif u.kind != BLANK:  # comments and labels belong to the code that follows them
            ind = max(nxt[i], u.indent) if code[i] else nxt[i]
            parent[i] = next((j for k, j in reversed(stack) if k < ind), -1)

    def same_indent(i: int, ok) -> int | None:
        for j in range(i - 1, -1, -1):
            if code[j] and units[j].indent <= units[i].indent:
                if units[j].indent < units[i].indent or ok(j):
                    return j if units[j].indent == units[i].indent else None
        return None

    needs = [[p] if p >= 0 else [i - 1] if units[i].kind == BLANK and i else [] for i, p in
             enumerate(parent)]
    ties: list[tuple[int, int]] = []
    opened: dict[int, list[int]] = {}  # indentation -> lines that opened a block still open
    for i, u in enumerate(units):
        if not code[i]:
            continue
        if u.head.startswith(("@", "#[")) and not u.last.endswith(("{", ";")):
            if (j := next((j for j in range(i + 1, n) if code[j]), None)) is not None:
                ties.append((i, j))
        if py:
            clause = _CLAUSE.match(u.head)
            j = same_indent(i, lambda k: True) if clause or u.word == "case" else None
            if clause and j is not None:
                needs[i].append(j)
                if clause.group() in ("except", "finally") and units[j].word == "try":
                    ties.append((j, i))
            elif u.word == "case" and j is None and parent[i] >= 0 \
                    and units[parent[i]].word == "match":
                ties.append((parent[i], i))
        elif u.head.startswith(("}", ")", "]")):
            # the opener: the last line still open at this indentation, else the first line of
            # a multi-line header (`if (a &&`) with its lines up to the one that opens
            st, want = opened.get(u.indent, []), _OPEN[")]}".index(u.head[0])]
            at = next((a for a in range(len(st) - 1, -1, -1) if units[st[a]].last[-1:] == want), -1)
            j = st[at] if at >= 0 else same_indent(i, lambda k: not units[k].last.endswith(":"))
            del st[at if at >= 0 else len(st):]
            if j is not None and not units[j].last.endswith(_OPEN):
                inner = [s[-1] for k, s in opened.items() if k > u.indent and s and s[-1] > j]
                ties += [(j, m) for m in range(j + 1, min(inner) + 1) if code[m]] if inner else []
                j = j if inner else None
            for k, s in opened.items():  # what is still open inside the closed block is over
                while j is not None and k > u.indent and s and s[-1] > j:
                    s.pop()
            if j is not None:
                ties.append((j, i))
        elif lang in _KW_LANGS and (u.word in _KW_END or u.word in _KW_CLAUSE):
            # `end` / `fi` / `done` go with the statement they close; `else` needs it
            j = same_indent(i, lambda k: units[k].word not in _KW_CLAUSE)
            if j is not None:
                ties.append((j, i)) if u.word in _KW_END else needs[i].append(j)
        elif u.head == "{" and i:
            j = next((j for j in range(i - 1, -1, -1) if code[j]), None)
            if j is not None and not units[j].last.endswith((";", "}", "{")):
                ties.append((j, i))
        if not py and not label[i] and u.last.endswith(_OPEN):
            opened.setdefault(u.indent, []).append(i)
    kids, depth, end = [0] * n, [0] * n, list(range(n))
    for i in range(n):
        if parent[i] >= 0:
            depth[i] = depth[parent[i]] + 1
            kids[parent[i]] += code[i]
    for i in range(n - 1, -1, -1):
        if parent[i] >= 0:
            end[parent[i]] = max(end[parent[i]], end[i])
    sig, box, fn = [False] * n, [False] * n, [-1] * n
    arrow = lang in ("javascript", "typescript")
    scores = np.zeros(n)
    for i, u in enumerate(units):
        p, d = parent[i], depth[i]
        sig[i] = bool(code[i] and kids[i] and u.word not in _CONTROL and u.head[:1] not in "})]"
                      and not u.doc and (_DEF.search(u.head) or p < 0 or box[p]
                                         or arrow and "=>" in u.last))
        box[i] = sig[i] and bool(_CONTAINER.search(u.head))
        fn[i] = i if sig[i] and not box[i] else fn[p] if p >= 0 else -1
        frac = (i - p) / (end[p] - p + 1) if p >= 0 else i / n
        if u.kind == COMMENT or u.doc:
            scores[i] = 10 - 0.5 * min(d, 8) - frac
        elif u.kind == BLANK:
            continue
        elif d == 0 or d == 1 and units[p].word in ("import", "use"):
            scores[i] = 300 - d
        elif sig[i] or sig[p] and units[p].last.endswith("(") and not py:  # signature lines
            scores[i] = 200 - d
        else:
            scores[i] = 100 - 8 * min(d, 10) - 4 * frac
    if query:
        blocks = sorted({f for f in fn if f >= 0})
        brel = relevance(["".join(u.text for u in units[b:end[b] + 1]) for b in blocks], query)
        bonus = dict(zip(blocks, brel.tolist(), strict=True))
        lrel = relevance([u.text for u in units], query)
        for i in np.flatnonzero(scores > 0):
            scores[i] += 150 * (lrel[i] + bonus.get(fn[i], 0.0))
    for a, b in ties:  # closers, decorators and lone braces score as what they go with
        for k in (a, b):
            if units[k].head[:1] in ("}", ")", "]", "{", "@") or units[k].head.startswith("#["):
                scores[k] = 0
    return parent, needs, ties, scores


class CodeHandler(Handler):
    name = "code"

    def compress(self, text: str, ctx: FormatContext) -> FormatOutput:
        rows = _LINE.findall(text)
        if ctx.count(text) <= ctx.budget or not rows:
            return FormatOutput(text, "code", all_fits=True,
                                details=_details(len(rows), len(rows), 0))
        lang, eol = ctx.language, "\r\n" if text.count("\r\n") * 2 > len(rows) else "\n"
        units = _python_units(text, rows) if lang == "python" else None
        check = units is not None and isinstance(_parse(text), ast.Module)
        if units is None:
            units = _line_units(rows, "shell" if lang == "python" else lang)
        n = len(units)
        parent, needs, ties, unit_scores = _structure(units, lang, ctx.query)
        item, old = np.arange(n), None  # the group of each unit: its earliest tied unit
        while old is None or (item != old).any():
            old = item.copy()
            for a, b in ties:
                item[a] = item[b] = min(item[a], item[b])
        costs = np.zeros(n, dtype=np.int64)
        np.add.at(costs, item, ctx.counter.count_many([u.text for u in units]))
        scores = np.full(n, -1.0)
        np.maximum.at(scores, item, unit_scores)
        inneed: list[set[int]] = [set() for _ in range(n)]
        for i in range(n):
            inneed[item[i]].update(int(item[p]) for p in needs[i] if item[p] != item[i])
        for i in range(n - 1, -1, -1):  # a header scores at least what it encloses
            for p in inneed[i]:
                scores[p] = max(scores[p], scores[i])
        itop, is_item = np.arange(n), item == np.arange(n)
        for i in np.flatnonzero(np.array(parent) >= 0):
            itop[i] = itop[parent[i]]
        kinds = np.array([u.kind for u in units])
        collapsed: set[int] = set()
        forbid = ~is_item  # only group roots are selectable
        stats: dict[str, tuple[int, int]] = {}

        def select(b: int, no: np.ndarray) -> np.ndarray:
            keep = greedy(np.where(no, 1 << 40, costs), scores, b) & ~no
            for _ in range(n):  # a group whose header is out goes too
                drop = [i for i in np.flatnonzero(keep) if any(not keep[p] for p in inneed[i])]
                if not drop:
                    break
                keep[drop] = False
            if not keep.any():
                free = [i for i in range(n) if not no[i] and not inneed[i] and costs[i] <= b]
                if free:
                    keep[max(free, key=lambda i: (scores[i], -i))] = True
            return keep[item]

        def write(kept: np.ndarray) -> tuple[str, list[int]]:
            out, where, run, marks = [], [], [], 0
            for i in [*range(n), n]:
                if i < n and not kept[i]:
                    run.append(i)
                    continue
                if (first := next((k for k in run if units[k].kind == CODE), None)) is not None:
                    lines = sum(units[k].nlines for k in run if units[k].kind != BLANK)
                    out.append(f"{units[first].ws}{_marker(lang, lines)}{eol}")
                    where.append(first)
                    marks += 1
                run = []
                if i < n:
                    t = units[i].text
                    out.append(t if t.endswith("\n") else t + eol)
                    where.extend([i] * units[i].nlines)
            s = "".join(out) if len(where) > marks else ""  # a lone marker is no output
            s = s if text.endswith("\n") else s[: -len(eol)]
            stats[s] = (len(where) - marks, marks)
            return s, where

        def render(b: int) -> str:
            nonlocal forbid
            for _ in range(12):
                out, where = write(select(b, forbid))
                if not check or isinstance(err := _parse(out), ast.Module):
                    return out
                row = min(max(1, err.lineno or len(where)), len(where)) - 1 if where else 0
                t = itop[where[row]] if where else 0
                if t in collapsed:
                    break
                collapsed.add(t)  # keep only that top-level block's header from now on
                forbid = forbid | ((itop == t) & (item != item[t]))
            collapsed.add(-1)
            forbid = ~is_item | (itop != np.arange(n)) | (kinds != CODE)  # top-level code only
            return write(select(b, forbid))[0]

        out, _, _ = fit(render, ctx)
        if not out.strip():  # no line fits with its marker: the best that fits alone, if any
            leaf = (kinds == CODE) & is_item & ~np.isin(np.arange(n), parent)
            alone = [i for i in np.flatnonzero(leaf) if not inneed[i] and costs[i] <= ctx.budget]
            if alone:
                out = units[max(alone, key=lambda i: (scores[i], -i))].text
                stats[out] = (out.count("\n") + (not out.endswith("\n")), 0)
        if check and not isinstance(_parse(out), ast.Module):
            ctx.warn("the code handler's output does not parse as Python")
        elif collapsed:
            ctx.warn("some Python blocks were cut to their headers so that the output parses")
        return FormatOutput(out, "code", details=_details(len(rows), *stats.get(out, (0, 0))))


def _details(n: int, kept: int, marks: int) -> dict:
    return {"lines_in": n, "lines_kept": kept, "markers": marks, "items_in": n, "items_kept": kept,
            "summary": f"{kept} of {n} lines, {marks} elisions"}
