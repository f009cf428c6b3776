"""The per-call primitives every compressor works with, and nothing above them.

`Request` (what the user asked for), the *unit table* (numpy columns: byte range, tokens, kind,
separator, flags) that the text pipeline builds from the segmenter's units, the `OutputSink` that
writes and counts output, and `Context`: one call's document, table, budget and request, with the
writers a compressor calls (`emit` for whole units, `emit_words` for words). Floor: text
primitives (imports `segment`, `source`, `tokens`, `fidelity`, `nospace`, `errors` only).
"""

from __future__ import annotations

import math
import re
from array import array
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import BinaryIO

import numpy as np

from .errors import UsageError
from .fidelity import FidelityTracker
from .nospace import NOSPACE_SCRIPT
from .segment import GAP_TEXT, Gap, Kind, Unit, protected_spans, word_pieces
from .source import Document, PieceSplitter, RangeReader
from .tokens import TokenCounter

Progress = Callable[[str, int, int], None]  # (phase, bytes done, bytes total)
WORD_KINDS = (Kind.SENTENCE, Kind.LINE)  # units whose words a word-level method may drop


@dataclass(frozen=True)
class Request:
    """What the user asked for, independent of the method."""

    ratio: float | None = None
    target_tokens: int | None = None
    query: str | None = None
    force: tuple[str, ...] = ()
    word_scores: bool = False  # ask word-level methods for per-word keep scores (report.words)
    input_format: str = "auto"  # auto (extension, then content) or a name from formats.FORMATS
    language: str | None = None  # the code language, when the format is code (else from the extension)

    def validate(self) -> None:
        if self.ratio is not None and self.target_tokens is not None:
            raise UsageError("--ratio and --target-tokens are exclusive", "Give one of them.")
        if self.ratio is not None and not (0.0 < self.ratio <= 1.0) or (
            self.ratio is not None and math.isnan(self.ratio)
        ):
            raise UsageError(
                f"--ratio must be in (0, 1], got {self.ratio}",
                "It is the fraction of tokens kept: 0.33 keeps a third.",
            )
        if self.target_tokens is not None and self.target_tokens < 0:
            raise UsageError(f"--target-tokens must be >= 0, got {self.target_tokens}")

    def validated(self) -> Request:
        """This request checked, with the default ratio when it names neither a ratio nor a target."""
        self.validate()
        if self.ratio is None and self.target_tokens is None:
            return replace(self, ratio=DEFAULT_RATIO)
        return self


DEFAULT_RATIO = 0.5


@dataclass
class UnitTable:
    start: np.ndarray
    end: np.ndarray
    tokens: np.ndarray
    kind: np.ndarray
    gap: np.ndarray
    spans: np.ndarray
    flags: np.ndarray

    def __len__(self) -> int:
        return len(self.start)


class TableBuilder:
    """Columns grow as compact `array.array`s; `build()` wraps them without copying."""

    _TYPES = {"start": "q", "end": "q", "tokens": "i", "kind": "B", "gap": "B", "spans": "i", "flags": "B"}
    _DTYPES = {"q": np.int64, "i": np.int32, "B": np.uint8}

    def __init__(self) -> None:
        self.cols = {name: array(code) for name, code in self._TYPES.items()}

    def add(self, units: Sequence[Unit], counts: Sequence[int]) -> None:
        c = self.cols
        for u, n in zip(units, counts, strict=True):
            c["start"].append(u.start)
            c["end"].append(u.end)
            c["tokens"].append(n)
            c["kind"].append(u.kind)
            c["gap"].append(u.gap)
            c["spans"].append(u.spans)
            c["flags"].append(u.flags)

    def build(self) -> UnitTable:
        return UnitTable(**{
            name: np.frombuffer(col, dtype=self._DTYPES[col.typecode]) if len(col)
            else np.zeros(0, dtype=self._DTYPES[col.typecode])
            for name, col in self.cols.items()
        })


class OutputSink:
    """Writes output bytes; counts their tokens piece by piece and tallies fidelity."""

    def __init__(self, out: BinaryIO, counter: TokenCounter, fidelity: FidelityTracker | None) -> None:
        self._out = out
        self._counter = counter
        self._fidelity = fidelity
        self._splitter = PieceSplitter()
        self.tokens = 0
        self.bytes = 0

    def write(self, data: bytes) -> None:
        if not data:
            return
        self._out.write(data)
        self.bytes += len(data)
        for piece in self._splitter.feed(data):
            self._count(piece)

    def close(self) -> None:
        for piece in self._splitter.finish():
            self._count(piece)
        self._out.flush()

    def _count(self, piece: bytes) -> None:
        text = piece.decode("utf-8", errors="replace")
        self.tokens += self._counter.count(text)
        if self._fidelity is not None:  # None: only counting (a budget round's trial output)
            self._fidelity.output(text)


class _NullStream:
    def write(self, data: bytes) -> int:
        return len(data)

    def flush(self) -> None:
        pass


@dataclass
class Partial:
    """Keep only part of unit `index`: its first (side='head') or last ('tail') words, within
    `tokens` tokens counted with its separator; whole lines instead of words with `lines`
    (a table or a code block cut between its rows)."""

    index: int
    side: str
    tokens: int
    lines: bool = False


_LINE = re.compile(r"[^\n]+")


@dataclass
class Context:
    doc: Document
    table: UnitTable
    budget: int
    request: Request
    counter: TokenCounter
    sink: OutputSink
    progress: Progress | None = None
    warnings: list[str] = field(default_factory=list)
    kept: np.ndarray | None = None  # set by emit(): which units reached the output whole
    spans_kept: int | None = None  # set by emit_words(): protected spans written whole, thinned units' too
    model: str | None = None  # set by methods that run a model, for the report
    model_sha256: str | None = None
    language: str | None = None  # set by methods that choose their model by the document's language
    device: str = "cpu"
    word_scores: list[tuple[str, float, bool]] | None = None  # (word, keep score, kept), on request
    chunks: list[dict] | None = None  # rewriters: what happened to each chunk
    generation: dict | None = None  # rewriters: requests, prompt and generated tokens and seconds
    # set by the text pipeline: (text, another configured compressor, request, counter) -> text, how a
    # compressor falls back to another one (rewrite to extract) without importing the pipeline
    subcompress: Callable[[str, object, Request, TokenCounter], str] | None = None

    def warn(self, message: str) -> None:
        if message not in self.warnings:  # a refitted run says it once
            self.warnings.append(message)

    def unit_texts(self) -> Iterator[str]:
        reader = RangeReader(self.doc.file)
        for starts, ends in chunked(self.table.start, self.table.end):
            for s, e in zip(starts, ends, strict=True):
                yield reader.get(s, e).decode("utf-8")

    def emit(self, keep: np.ndarray, partial: Partial | None = None) -> None:
        """Write the kept units in document order, joined by the input's whitespace; the
        `partial` unit, if any, contributes only the words that fit its allowance."""
        p_index = partial.index if partial else -1

        def body(i: int, raw: bytes, sep: bytes) -> bytes:
            if i != p_index:
                return raw
            return self._fit(raw.decode("utf-8"), sep.decode("utf-8"), partial).encode("utf-8")

        wanted = keep.copy()
        if partial:
            wanted[p_index] = True
        self._write(wanted, body)
        self.kept = keep.copy()  # units written whole (a partial unit is not counted)

    def emit_words(self, word_keep: np.ndarray, word_start: np.ndarray, pieces: np.ndarray) -> None:
        """Word-level output: unit i owns words word_start[i]:word_start[i + 1] of the flat
        `word_keep` (its words as `word_pieces_flagged` cuts them; blocks are one word), and
        `pieces` holds each word's (start, end) characters inside its unit's text
        (`Words.local`)."""
        word_keep = np.asarray(word_keep, dtype=bool)
        n_units = len(word_start) - 1
        unit_of = np.repeat(np.arange(n_units), np.diff(word_start))
        kept_words = np.bincount(unit_of[word_keep], minlength=n_units)
        unit_keep = kept_words > 0
        whole = kept_words == np.diff(word_start)
        kinds = self.table.kind
        # the kept words' pieces, unit i's at kept_at[i]:kept_at[i + 1] (an array: a list of
        # them all would cost ~100 bytes a word on a large document)
        kept_pieces = pieces[word_keep]
        kept_at = np.concatenate(([0], np.cumsum(kept_words))).tolist()
        whole_l, thin = whole.tolist(), np.isin(kinds, list(WORD_KINDS)).tolist()
        spans_l = self.table.spans.tolist()
        self.spans_kept = 0

        def body(i: int, raw: bytes, sep: bytes) -> bytes:
            if whole_l[i] or not thin[i]:
                self.spans_kept += spans_l[i]
                return raw
            text = raw.decode("utf-8")
            if spans_l[i]:
                self.spans_kept += min(spans_l[i], _spans_written(text, kept_pieces[kept_at[i]:kept_at[i + 1]]))
            out, prev_end = [], None
            for s, e in kept_pieces[kept_at[i]:kept_at[i + 1]].tolist():
                if prev_end is not None:
                    # a line break where the whitespace just before this word holds one;
                    # nothing between adjacent pieces of one word, or in CJK text; a space
                    # where pieces of a giant word were dropped between them (not glued)
                    gap = text[prev_end:s]
                    if any(c.isspace() for c in gap):
                        out.append("\n" if "\n" in gap[len(gap.rstrip()):] else " ")
                    elif gap and (not NOSPACE_SCRIPT.search(gap) or _glues(text[prev_end - 1], text[s])):
                        out.append(" ")
                out.append(text[s:e])
                prev_end = e
            return "".join(out).encode("utf-8")

        self._write(unit_keep, body)
        self.kept = unit_keep & whole

    def measure_words(self, word_keep: np.ndarray, word_start: np.ndarray, pieces: np.ndarray) -> int:
        """Tokens that `emit_words(word_keep, word_start, pieces)` would write, writing nothing."""
        real, kept, spans_kept = self.sink, self.kept, self.spans_kept
        self.sink = OutputSink(_NullStream(), self.counter, None)
        try:
            self.emit_words(word_keep, word_start, pieces)
            self.sink.close()
            return self.sink.tokens
        finally:
            self.sink, self.kept, self.spans_kept = real, kept, spans_kept

    def _write(self, keep: np.ndarray, body) -> None:
        t = self.table
        reader = RangeReader(self.doc.file)
        last_kept = -2
        last_whole, last_byte = False, b""
        strongest = 0
        wrote = False
        prev_end = 0
        i = -1
        for starts, ends, gaps, keeps in chunked(t.start, t.end, t.gap, keep):
            for start, end, gap, kept in zip(starts, ends, gaps, keeps, strict=True):
                i += 1
                strongest = max(strongest, gap)
                if not kept:
                    prev_end = end
                    continue
                gap_bytes = reader.get(prev_end, start)
                prev_end = end
                if not wrote:
                    sep = b""
                elif last_kept == i - 1:
                    sep = gap_bytes
                else:
                    sep = _separator(gap_bytes, gap, strongest)
                raw = reader.get(start, end)
                data = body(i, raw, sep)
                if not data:
                    continue
                if wrote and not sep and _glues(last_byte, data[:1]) and not (
                        last_kept == i - 1 and last_whole and raw[:1] == data[:1]):
                    sep = b" "  # units of CJK text with no space between, the text between them dropped
                self.sink.write(sep + data)
                wrote = True
                last_kept, last_whole, last_byte = i, data == raw, data[-1:]
                strongest = 0
        if wrote and self.doc.size and _ends_with_newline(self.doc.file, self.doc.size):
            self.sink.write(b"\n")

    def _fit(self, text: str, sep: str, partial: Partial) -> str:
        """The longest word-aligned (or line-aligned) head (or tail) of `text` within the partial's tokens."""
        pieces = [m.span() for m in _LINE.finditer(text)] if partial.lines else word_pieces(text)
        count = self.counter.count

        def cut(k: int) -> str:
            if partial.side == "head":
                return text[: pieces[k - 1][1]] if k else ""
            return text[pieces[len(pieces) - k][0]:] if k else ""

        lo, hi = 0, len(pieces)
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if count(sep + cut(mid)) <= partial.tokens:
                lo = mid
            else:
                hi = mid - 1
        if lo == 0 and partial.lines:  # not even one line fits: its first words
            return self._fit(text, sep, replace(partial, lines=False))
        return cut(lo)


def chunked(*arrays: np.ndarray, size: int = 1 << 16) -> Iterator[list[list]]:
    """Parallel slices of numpy arrays as Python lists, a block at a time (a whole-table
    `tolist()` of millions of offsets would cost more memory than the table itself)."""
    for lo in range(0, len(arrays[0]), size):
        yield [a[lo : lo + size].tolist() for a in arrays]



def _separator(gap: bytes, gap_kind: int, strongest: int) -> bytes:
    """Separator before a kept unit when units before it were dropped: the unit's own
    whitespace, upgraded to the strongest break that was dropped (keeping its indentation)."""
    if gap_kind >= strongest:
        return gap
    indent = gap[gap.rfind(b"\n") + 1 :] if b"\n" in gap else b""
    return GAP_TEXT[Gap(strongest)].encode() + indent


def _spans_written(text: str, kept: np.ndarray) -> int:
    """How many of `text`'s protected spans (numbers with units, code, URLs) the kept word
    pieces `kept` ((start, end) rows) cover whole."""
    covered = np.zeros(len(text) + 1, dtype=np.int32)
    for s, e in kept.tolist():
        covered[s] += 1
        covered[e] -= 1
    on = np.cumsum(covered)[:-1] > 0
    return sum(bool(on[s:e][[not c.isspace() for c in text[s:e]]].all()) for s, e in protected_spans(text))


def _glues(left: str | bytes, right: str | bytes) -> bool:
    """Would two kept pieces with CJK text dropped between them run together into one number or
    word ("2017年3月5日" -> "201735", "Queen，简称DQ" -> "QueenDQ")? Then a space goes between."""
    return bool(left) and bool(right) and left.isascii() and right.isascii() and left.isalnum() and right.isalnum()


def _ends_with_newline(f: BinaryIO, size: int) -> bool:
    f.seek(size - 1)
    return f.read(1) == b"\n"
