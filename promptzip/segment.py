"""Segmentation: a document becomes a stream of *units*, the pieces a compressor keeps or drops.

Design
* Line-oriented state machine fed with pieces of text that end after a newline, so a 200 MB
  file is segmented without being one string; state (open code fence, current paragraph)
  carries over from one piece to the next. Blocks are capped at `MAX_BLOCK_CHARS`: a longer one
  is cut there (the only case where a unit can end mid-sentence).
* Units know their byte range in the UTF-8 file, so later passes re-read them by offset and
  the writer copies kept bytes verbatim: extractive output is a subsequence of the input.
* Every non-whitespace character belongs to exactly one unit; what lies between units is
  whitespace (kept by the writer as the separator).
* Protected content is never cut: fenced and indented code, tables, JSON blocks, headings and
  list items are whole units; inside prose, sentence boundaries are never placed inside inline
  code, URLs, e-mail addresses or numbers with units, and `--force` strings mark the units
  that hold them as must-keep.
"""

from __future__ import annotations

import json
import re
from bisect import bisect_right
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from enum import IntEnum

from .nospace import CHAR_PIECES, NOSPACE_SCRIPT
from .nospace import NOSPACE_CHARS as _NOSPACE_CHARS
from .nospace import pieces as nospace_pieces

MAX_BLOCK_CHARS = 1 << 20
SPLIT_BLOCK_CHARS = 4096  # a table or code block longer than this is cut into runs of lines


class Kind(IntEnum):
    SENTENCE = 0  # prose; the only kind a truncating method may cut inside
    LINE = 1  # a list item or a rule: whole line
    HEADING = 2
    TABLE = 3  # consecutive `|` rows
    CODE = 4  # fenced or indented code
    JSON = 5  # a paragraph that parses as JSON


class Gap(IntEnum):
    """What separates a unit from the one before it."""

    NONE = 0  # first unit, or glued (a forced cut inside a giant run of text)
    SPACE = 1
    NEWLINE = 2
    PARAGRAPH = 3


GAP_TEXT = {Gap.NONE: "", Gap.SPACE: " ", Gap.NEWLINE: "\n", Gap.PARAGRAPH: "\n\n"}

# flags
FORCED = 1  # holds (part of) a --force string
STRUCTURE = 2  # a heading: structural markup a selecting method keeps


@dataclass(slots=True)
class Unit:
    start: int  # byte offset of the first character
    end: int  # byte offset after the last character
    text: str
    kind: Kind
    gap: Gap
    spans: int  # protected spans inside (a block counts as one)
    flags: int


# `code` and ``code``, but not a LaTeX / PTB quote (``like this''): a backtick next to another
# opens only a double-backtick span, and a span holds no '' and at most 120 characters
_INLINE_CODE = r"(?<!`)`(?!`)[^`\n]{1,120}?(?<!`)`(?!`)|(?<!`)``(?!`)(?:(?!'')[^`\n]){1,120}?``(?!`)"
_URL = r"\b(?:https?|ftp)://[^\s<>\"'`]+[^\s<>\"'`.,;:!?)\]}]|\bwww\.[^\s<>\"'`]+[^\s<>\"'`.,;:!?)\]}]"
_EMAIL = r"\b[\w.+-]+@[\w-]+(?:\.[\w-]+)+\b"
_UNITS = (
    r"%|‰|°[CF]?|[kMGT]?B|[kMGT]i?B|km|cm|mm|nm|µm|m|kg|mg|g|lbs?|oz|ms|µs|ns|s|min|h|hrs?|"
    r"Hz|kHz|MHz|GHz|[kMG]?W|V|mAh|Ah|kWh|K|USD|EUR|GBP|x|px|pt|em"
)
# starts at a digit so the scan is fast; a sign or currency symbol is glued to it anyway; not
# inside a word (`x86`), but a number glued to Chinese or Japanese characters (`约8851.8千米`) is one
_NUMBER = (
    rf"\d(?<!\.\d)(?<![^\W{_NOSPACE_CHARS}]\d)(?:[\d,]*\d)?(?:\.\d+)?(?:e[-+]?\d+)?"
    rf"(?:\s?(?:{_UNITS})(?![\w]))?"
)
_HAS_DIGIT = re.compile(r"\d").search
_PROTECTED_TEXT = (  # (a test that must pass for the pattern to match anything, pattern)
    (lambda t: "`" in t, re.compile(_INLINE_CODE)),
    (lambda t: "://" in t or "www." in t, re.compile(_URL)),
    (lambda t: "@" in t, re.compile(_EMAIL)),
)
_PROTECTED = (*_PROTECTED_TEXT, (_HAS_DIGIT, re.compile(_NUMBER)))

_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
_HEADING = re.compile(r"^ {0,3}#{1,6}(?:\s|$)")
_TABLE = re.compile(r"^\s*\|")
_LIST = re.compile(r"^\s*(?:[-*+•]|\d{1,9}[.)])\s+\S")
_RULE = re.compile(r"^ {0,3}([-*_])(?:\s*\1){2,}\s*$")
_INDENTED = re.compile(r"^(?: {4}|\t)")

# A sentence ends at . ! ? (and closing quotes/brackets) followed by whitespace and a
# character that is not a lower-case letter.
# . ! ? … (and Arabic's ؟) before whitespace and a non-lowercase character; the full-width
# 。！？ of Chinese and Japanese before any character (those scripts put no space after them)
_SENT_END = re.compile(r"[.!?…؟]+[\"'’”)\]]*(?=\s+[^\sa-z])|[。！？]+[」』”’）)]*(?=\s*\S)")
_ABBREV = frozenset(
    "mr mrs ms dr st prof sr jr inc ltd co corp vs etc e.g i.e cf fig no nos vol pp ca approx "
    "dept est jan feb mar apr jun jul aug sep sept oct nov dec gen col lt sgt rev mt u.s u.k".split()
)
# a short label line ("First Citizen:", "Answer:") stays with the line it introduces
_LABEL = re.compile(r"[ \t]*\S+(?:[ \t]+\S+){0,3}:[ \t\r]*$")
_WORD_BEFORE = re.compile(r"([\w.]+)[.!?…]+[\"'’”)\]]*$")


def _line_kind(line: str) -> str:
    if not line.strip():
        return "blank"
    if _FENCE.match(line):
        return "fence"
    if _HEADING.match(line):
        return "heading"
    if _TABLE.match(line):
        return "table"
    if _RULE.match(line) or _LIST.match(line):
        return "line"
    return "text"


def _wrap_width(lines: Sequence[str]) -> int:
    """Width of a hard-wrapped paragraph, or 0 when its newlines look meaningful."""
    widest = max((len(line.rstrip()) for line in lines), default=0)
    return widest if 40 <= widest <= 120 else 0


def protected_spans(text: str) -> list[tuple[int, int]]:
    """Inline protected spans (code, URLs, e-mail, numbers with units), sorted, disjoint."""
    found: list[tuple[int, int]] = []
    for may_match, pattern in _PROTECTED:
        if not may_match(text):
            continue
        found.extend(m.span() for m in pattern.finditer(text))
    if not found:
        return found
    found.sort()
    merged = [found[0]]
    for s, e in found[1:]:
        if s < merged[-1][1]:
            if e > merged[-1][1]:
                merged[-1] = (merged[-1][0], e)
        else:
            merged.append((s, e))
    return merged


def protected_besides_numbers(text: str) -> bool:
    """Whether `text` holds a protected span other than a number (inline code, URL, e-mail)."""
    return any(may_match(text) and pattern.search(text) for may_match, pattern in _PROTECTED_TEXT)


def _inside(pos: int, spans: list[tuple[int, int]], starts: list[int]) -> bool:
    """Whether `pos` falls strictly inside one of the sorted disjoint `spans`."""
    i = bisect_right(starts, pos) - 1
    return i >= 0 and spans[i][0] < pos < spans[i][1]


def sentence_bounds(text: str, wrap_width: int = 0) -> list[tuple[int, int]]:
    """Character ranges of the sentences of one paragraph (whitespace trimmed).

    Newlines are boundaries too, except after a short label line ("Answer:") and, in a
    paragraph hard-wrapped at `wrap_width`, after a line that fills most of the width.
    """
    spans = protected_spans(text)
    span_starts = [s for s, _ in spans]
    cuts: list[int] = []
    for m in _SENT_END.finditer(text):
        end = m.end()
        if spans and _inside(end, spans, span_starts):
            continue
        w = _WORD_BEFORE.search(text, max(0, m.start() - 24), end)
        if w and m.group().startswith("."):
            word = w.group(1).lower().rstrip(".")
            if word in _ABBREV or (len(word) == 1 and word.isalpha()):
                continue
        cuts.append(end)
    pos = text.find("\n")
    while pos != -1:
        line_start = text.rfind("\n", 0, pos) + 1
        wrapped = wrap_width and len(text[line_start:pos].rstrip()) >= 0.7 * wrap_width
        if not wrapped and not _LABEL.match(text, line_start, pos) and not (
            spans and _inside(pos, spans, span_starts)
        ):
            cuts.append(pos)
        pos = text.find("\n", pos + 1)
    cuts = sorted(set(cuts))
    bounds = []
    prev = 0
    for cut in [*cuts, len(text)]:
        seg = text[prev:cut]
        stripped = seg.strip()
        if stripped:
            lead = len(seg) - len(seg.lstrip())
            bounds.append((prev + lead, prev + lead + len(stripped)))
        prev = cut
    return bounds


_CODE_HINT = re.compile(r"[{}\[\]();=<>]|::|:\s*$|^\s*(?:def|class|import|return|if|for|while)\b")


def _code_like(lines: Sequence[str]) -> bool:
    """Indented lines that look like code rather than indented prose."""
    hits = sum(1 for line in lines if _CODE_HINT.search(line))
    return hits >= 0.5 * len(lines)


def _gap_of(ws: str, first: bool) -> Gap:
    if first:
        return Gap.NONE
    n = ws.count("\n")
    if n >= 2:
        return Gap.PARAGRAPH
    if n == 1:
        return Gap.NEWLINE
    return Gap.SPACE if ws else Gap.NONE


def _is_json(text: str) -> bool:
    t = text.strip()
    if not ((t.startswith("{") and t.endswith("}")) or (t.startswith("[") and t.endswith("]"))):
        return False
    try:
        json.loads(t)
    except (ValueError, RecursionError):  # nested deeper than the parser goes: lines, like text
        return False
    return True


class Segmenter:
    """Feed consecutive pieces (`feed`), then `finish`; both yield `Unit`s in order."""

    def __init__(self, force: Sequence[str] = ()) -> None:
        self._force = tuple(f for f in force if f)
        self._block: list[tuple[int, str]] = []  # (byte offset, line text with newline)
        self._block_kind = ""  # "text", "fence", "table"
        self._block_chars = 0
        self._fence = ""
        self._ws = ""  # whitespace seen since the last unit
        self._first = True
        self._carry: tuple[int, str] | None = None  # a line whose newline is in the next piece

    # -- input -------------------------------------------------------------------------
    def feed(self, offset: int, text: str) -> Iterator[Unit]:
        if self._carry is not None:
            offset, text = self._carry[0], self._carry[1] + text
            self._carry = None
        ascii_only = text.isascii()
        pos = 0
        byte = offset
        n = len(text)
        while pos < n:
            nl = text.find("\n", pos)
            if nl == -1 and n - pos <= MAX_BLOCK_CHARS:
                self._carry = (byte, text[pos:])
                return
            stop = n if nl == -1 else nl + 1
            line = text[pos:stop]
            yield from self._line(byte, line)
            byte += len(line) if ascii_only else len(line.encode("utf-8"))
            pos = stop

    def finish(self) -> Iterator[Unit]:
        if self._carry is not None:
            byte, line = self._carry
            self._carry = None
            yield from self._line(byte, line)
        yield from self._flush()

    # -- state machine -----------------------------------------------------------------
    def _line(self, byte: int, line: str) -> Iterator[Unit]:
        if self._block_kind == "fence":
            self._add(byte, line)
            stripped = line.strip()
            if stripped and stripped[0] == self._fence[0] and set(stripped) == {self._fence[0]} \
                    and len(stripped) >= len(self._fence):
                yield from self._flush()
            elif self._block_chars > MAX_BLOCK_CHARS:
                yield from self._flush(keep_state=True)
            return
        kind = _line_kind(line)
        if kind == "text" and _INDENTED.match(line):
            # indented code: continues a code block, or starts one after a blank line
            if self._block_kind == "code" or (
                not self._block_kind and not self._first and self._ws.count("\n") >= 2
            ):
                kind = "code"
        if kind == "text" and self._block_kind == "line" and line[:1] in (" ", "\t"):
            self._add(byte, line)  # continuation of a list item
            return
        if kind == "blank":
            yield from self._flush()
            self._ws += line
            return
        if self._block_kind and (self._block_kind != kind or kind == "line"):
            yield from self._flush()
        if kind == "fence":
            self._fence = _FENCE.match(line).group(1)
        self._block_kind = kind
        self._add(byte, line)
        if kind == "heading" or self._block_chars > MAX_BLOCK_CHARS:
            yield from self._flush()

    def _add(self, byte: int, line: str) -> None:
        self._block.append((byte, line))
        self._block_chars += len(line)

    def _flush(self, keep_state: bool = False) -> Iterator[Unit]:
        if not self._block:
            if not keep_state:
                self._block_kind = ""
            return
        start = self._block[0][0]
        text = "".join(line for _, line in self._block)
        kind = self._block_kind
        lines = [line for _, line in self._block]
        self._block = []
        self._block_chars = 0
        if not keep_state:
            self._block_kind = ""
        if kind == "text":
            if _is_json(text):
                yield from self._whole(start, text, Kind.JSON, 0)
            else:
                yield from self._sentences(start, text, _wrap_width(lines))
        elif kind == "heading":
            yield from self._whole(start, text, Kind.HEADING, STRUCTURE)
        elif kind == "line":
            yield from self._whole(start, text, Kind.LINE, 0)
        elif kind == "table":
            yield from self._blocks(start, lines, Kind.TABLE)
        elif kind == "code" and not _code_like(lines):  # indented prose (quoted letters, poems)
            yield from self._sentences(start, text, _wrap_width(lines))
        else:  # fence, code
            yield from self._blocks(start, lines, Kind.CODE)

    def _blocks(self, start: int, lines: list[str], kind: Kind) -> Iterator[Unit]:
        """A table or code block as one unit; a large one (over SPLIT_BLOCK_CHARS) as runs of
        whole lines of about that size, so a budget smaller than the block keeps part of it
        instead of nothing."""
        text = "".join(lines)
        if len(text) <= SPLIT_BLOCK_CHARS:
            yield from self._whole(start, text, kind, 0)
            return
        group: list[str] = []
        size = 0
        byte = start
        for line in lines:
            group.append(line)
            size += len(line)
            if size >= SPLIT_BLOCK_CHARS // 4:
                chunk = "".join(group)
                yield from self._whole(byte, chunk, kind, 0)
                byte += len(chunk.encode("utf-8"))
                group, size = [], 0
        if group:
            yield from self._whole(byte, "".join(group), kind, 0)

    def _forced(self, text: str) -> list[tuple[int, int]]:
        hits = []
        for f in self._force:
            i = text.find(f)
            while i != -1:
                hits.append((i, i + len(f)))
                i = text.find(f, i + 1)
        return hits

    def _whole(self, start: int, text: str, kind: Kind, flags: int) -> Iterator[Unit]:
        stripped = text.strip()
        if not stripped:
            self._ws += text
            return
        lead = len(text) - len(text.lstrip())
        ws = self._ws + text[:lead]
        byte = start + len(text[:lead].encode("utf-8"))
        end = byte + len(stripped.encode("utf-8"))
        if self._forced(stripped):
            flags |= FORCED
        spans = 1 + (len(protected_spans(stripped)) if kind == Kind.LINE else 0)
        yield Unit(byte, end, stripped, kind, _gap_of(ws, self._first), spans, flags)
        self._first = False
        self._ws = text[lead + len(stripped):]

    def _sentences(self, start: int, text: str, wrap_width: int) -> Iterator[Unit]:
        bounds = sentence_bounds(text, wrap_width)
        forced = self._forced(text)
        spans = protected_spans(text)
        ascii_only = text.isascii()
        cursor_char, cursor_byte = 0, start
        prev_end = 0
        si = 0
        for s, e in bounds:
            if ascii_only:
                b_start, b_end = start + s, start + e
            else:
                cursor_byte += len(text[cursor_char:s].encode("utf-8"))
                b_start = cursor_byte
                b_end = b_start + len(text[s:e].encode("utf-8"))
                cursor_char, cursor_byte = e, b_end
            ws = (self._ws if prev_end == 0 else "") + text[prev_end:s]
            flags = FORCED if any(fs < e and s < fe for fs, fe in forced) else 0
            count = 0
            while si < len(spans) and spans[si][1] <= e:
                if spans[si][0] >= s:
                    count += 1
                si += 1
            yield Unit(b_start, b_end, text[s:e], Kind.SENTENCE, _gap_of(ws, self._first), count, flags)
            self._first = False
            prev_end = e
        self._ws = (self._ws if not bounds else "") + text[prev_end:]


def segment_text(text: str, force: Sequence[str] = ()) -> list[Unit]:
    """All units of an in-memory text (tests, small inputs)."""
    seg = Segmenter(force)
    return [*seg.feed(0, text), *seg.finish()]


# -- words inside a unit ---------------------------------------------------------------------
def word_pieces(text: str) -> list[tuple[int, int]]:
    """Whitespace-separated words, with protected spans (numbers with units, inline code,
    URLs) merged into single pieces so a cut never falls inside them."""
    return [(s, e) for s, e, _ in word_pieces_flagged(text)]


def word_pieces_flagged(text: str) -> list[tuple[int, int, bool]]:
    """`word_pieces` plus whether each piece holds a protected span."""
    spans = protected_spans(text)
    if not spans:  # most sentences: the whitespace-separated words as they are
        if text.isascii() and not _GIANT.search(text):
            return [(*m.span(), False) for m in _NONSPACE.finditer(text)]
        return [(s, e, False) for s, e in _split_runs(text)]
    pieces: list[list] = []
    j = 0
    for s, e in _split_runs(text):
        hit = False
        while j < len(spans) and spans[j][1] <= s:
            j += 1
        k = j
        while k < len(spans) and spans[k][0] < e:
            s, e, hit = min(s, spans[k][0]), max(e, spans[k][1]), True
            k += 1
        if pieces and s < pieces[-1][1]:
            pieces[-1][1] = max(e, pieces[-1][1])
            pieces[-1][2] = pieces[-1][2] or hit
        else:
            pieces.append([s, e, hit])
    return [(s, e, h) for s, e, h in pieces]


_NONSPACE = re.compile(r"\S+")
GIANT_WORD = 64  # a run of non-space characters longer than this is cut into pieces
_GIANT = re.compile(rf"\S{{{GIANT_WORD + 1}}}")


def _split_runs(text: str) -> Iterator[tuple[int, int]]:
    """Whitespace-separated words; a word in a script without spaces cut into the multilingual
    vocabulary's pieces (`nospace.pieces`), one longer than GIANT_WORD characters (a hash,
    base64, a minified line) into pieces of at most 16 characters, so that a budget smaller
    than the word keeps part of it. `emit_words` writes pieces that were adjacent in the input
    without a space between them."""
    for m in _NONSPACE.finditer(text):
        s, e = m.span()
        if not NOSPACE_SCRIPT.search(text, s, e):
            if e - s <= GIANT_WORD:
                yield s, e
            else:
                for p in CHAR_PIECES.finditer(text, s, e):
                    yield p.span()
            continue
        yield from nospace_pieces(text, s, e)
