"""read -> segment -> score -> select -> assemble -> write, in bounded memory.

Pass 1 (scan) streams the document piece by piece: exact token count of the input, fidelity
tallies, and a *unit table* (numpy arrays: byte range, tokens, kind, separator, flags) built by
the segmenter; the compressor may observe each unit. The budget is then fixed once for the
whole document. The compressor re-reads units by byte offset when it needs their text and hands
back a keep mask; the writer copies the kept byte ranges verbatim, joined by the input's own
whitespace, while counting output tokens with the same piece rule as the input.

Memory is O(number of units) (about 30 bytes each) plus one piece (1 MiB) of text.
"""

from __future__ import annotations

import io
import math
import re
import time
from array import array
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from . import __version__
from .compressors import Compressor, get_method
from .errors import UsageError
from .fidelity import FidelityTracker
from .nospace import CHAR_PIECES, NOSPACE_SCRIPT
from .nospace import pieces as nospace_pieces
from .report import Report
from .segment import FORCED, GAP_TEXT, Gap, Kind, Segmenter, Unit, protected_spans
from .source import Document, PieceSplitter, RangeReader, document_from_bytes, open_document
from .tokens import DEFAULT_TOKENIZER, TokenCounter, load_tokenizer, token_starts

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


DEFAULT_RATIO = 0.5
_HARD_CAP_MAX_TOKENS = 2_000_000  # above this, --target-tokens output streams (may overshoot slightly)


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


class _TableBuilder:
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
    `tokens` tokens counted with its separator."""

    index: int
    side: str
    tokens: int


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
    model: str | None = None  # set by methods that run a model, for the report
    model_sha256: str | None = None
    language: str | None = None  # set by methods that choose their model by the document's language
    device: str = "cpu"
    word_scores: list[tuple[str, float, bool]] | None = None  # (word, keep score, kept), on request
    chunks: list[dict] | None = None  # rewriters: what happened to each chunk

    def warn(self, message: str) -> None:
        if message not in self.warnings:  # a refitted run says it once
            self.warnings.append(message)

    def unit_texts(self) -> Iterator[str]:
        reader = RangeReader(self.doc.file)
        for starts, ends in _chunked(self.table.start, self.table.end):
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

        def body(i: int, raw: bytes, sep: bytes) -> bytes:
            if whole_l[i] or not thin[i]:
                return raw
            text = raw.decode("utf-8")
            out, prev_end = [], None
            for s, e in kept_pieces[kept_at[i]:kept_at[i + 1]].tolist():
                if prev_end is not None:
                    # a line break where the whitespace just before this word holds one;
                    # nothing between adjacent pieces of one word, or in CJK text; a space
                    # where pieces of a giant word were dropped between them (not glued)
                    gap = text[prev_end:s]
                    if any(c.isspace() for c in gap):
                        out.append("\n" if "\n" in gap[len(gap.rstrip()):] else " ")
                    elif gap and not _NOSPACE_SCRIPT.search(gap):
                        out.append(" ")
                out.append(text[s:e])
                prev_end = e
            return "".join(out).encode("utf-8")

        self._write(unit_keep, body)
        self.kept = unit_keep & whole

    def measure_words(self, word_keep: np.ndarray, word_start: np.ndarray, pieces: np.ndarray) -> int:
        """Tokens that `emit_words(word_keep, word_start, pieces)` would write, writing nothing."""
        real, kept = self.sink, self.kept
        self.sink = OutputSink(_NullStream(), self.counter, None)
        try:
            self.emit_words(word_keep, word_start, pieces)
            self.sink.close()
            return self.sink.tokens
        finally:
            self.sink, self.kept = real, kept

    def _write(self, keep: np.ndarray, body) -> None:
        t = self.table
        reader = RangeReader(self.doc.file)
        last_kept = -2
        strongest = 0
        wrote = False
        prev_end = 0
        i = -1
        for starts, ends, gaps, keeps in _chunked(t.start, t.end, t.gap, keep):
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
                data = body(i, reader.get(start, end), sep)
                if not data:
                    continue
                self.sink.write(sep + data)
                wrote = True
                last_kept = i
                strongest = 0
        if wrote and self.doc.size and _ends_with_newline(self.doc.file, self.doc.size):
            self.sink.write(b"\n")

    def _fit(self, text: str, sep: str, partial: Partial) -> str:
        """The longest word-aligned head (or tail) of `text` within the partial's tokens."""
        pieces = word_pieces(text)
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
        return cut(lo)


def _chunked(*arrays: np.ndarray, size: int = 1 << 16) -> Iterator[list[list]]:
    """Parallel slices of numpy arrays as Python lists, a block at a time (a whole-table
    `tolist()` of millions of offsets would cost more memory than the table itself)."""
    for lo in range(0, len(arrays[0]), size):
        yield [a[lo : lo + size].tolist() for a in arrays]


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
_NOSPACE_SCRIPT = NOSPACE_SCRIPT
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
        if not _NOSPACE_SCRIPT.search(text, s, e):
            if e - s <= GIANT_WORD:
                yield s, e
            else:
                for p in CHAR_PIECES.finditer(text, s, e):
                    yield p.span()
            continue
        yield from nospace_pieces(text, s, e)


def _separator(gap: bytes, gap_kind: int, strongest: int) -> bytes:
    """Separator before a kept unit when units before it were dropped: the unit's own
    whitespace, upgraded to the strongest break that was dropped (keeping its indentation)."""
    if gap_kind >= strongest:
        return gap
    indent = gap[gap.rfind(b"\n") + 1 :] if b"\n" in gap else b""
    return GAP_TEXT[Gap(strongest)].encode() + indent


def _ends_with_newline(f: BinaryIO, size: int) -> bool:
    f.seek(size - 1)
    return f.read(1) == b"\n"


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
    for idx, toks in _chunked(order[n_fit:], tokens[order[n_fit:]]):
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


@dataclass
class ScanResult:
    table: UnitTable
    input_tokens: int
    fidelity: FidelityTracker


def scan(doc: Document, counter: TokenCounter, compressor: Compressor, force: Sequence[str],
         progress: Progress | None = None) -> ScanResult:
    seg = Segmenter(force)
    builder = _TableBuilder()
    fidelity = FidelityTracker()
    total = 0
    # Token start offsets (absolute bytes) not yet attributed to a unit. A unit owns the
    # tokens that start between the previous unit's end and its own end (its gap included),
    # so unit counts are in-context counts that add up to the document's count.
    pending: list[np.ndarray] = []
    prev_end = 0

    def take(units: list[Unit]) -> None:
        nonlocal prev_end, pending
        if not units:
            return
        if pending:
            starts = np.concatenate(pending) if len(pending) > 1 else pending[0]
            ends = np.fromiter((u.end for u in units), dtype=np.int64, count=len(units))
            lows = np.concatenate(([prev_end], ends[:-1]))
            counts = (np.searchsorted(starts, ends) - np.searchsorted(starts, lows)).tolist()
            pending = [starts[np.searchsorted(starts, ends[-1]):]]
        else:
            counts = counter.count_many([GAP_TEXT[u.gap] + u.text for u in units])
        prev_end = units[-1].end
        builder.add(units, counts)
        for u in units:
            compressor.observe(u)

    for offset, text in doc.pieces():
        starts = token_starts(counter, text)
        if starts is None:
            total += counter.count(text)
        else:
            total += len(starts)
            pending.append(starts + offset)
        fidelity.input(text)
        take(list(seg.feed(offset, text)))
        if progress:
            progress("scan", offset + len(text.encode("utf-8")), doc.size)
    take(list(seg.finish()))
    return ScanResult(builder.build(), total, fidelity)


@dataclass
class CompressResult:
    text: str | None  # None when the output went to a stream
    report: Report


def compress_document(
    doc: Document,
    out: BinaryIO,
    method: str | Compressor = "extract",
    request: Request | None = None,
    params: dict[str, Any] | None = None,
    tokenizer: str | TokenCounter = DEFAULT_TOKENIZER,
    progress: Progress | None = None,
) -> Report:
    """Compress `doc` into the binary stream `out` and return the report. The request's
    `input_format` picks a format handler (`promptzip.formats`); text and Markdown stream
    through the segmenter here."""
    t0 = time.perf_counter()
    request = request or Request()
    request.validate()
    if request.ratio is None and request.target_tokens is None:
        request = replace(request, ratio=DEFAULT_RATIO)
    counter = load_tokenizer(tokenizer) if isinstance(tokenizer, str) else tokenizer
    if isinstance(method, Compressor):  # a configured instance (the format handlers' inner calls)
        compressor, cls = method, type(method)
    else:
        cls = get_method(method)
        compressor = cls(**(params or {}))
    warnings: list[str] = []
    if request.query and not cls.query_aware:
        warnings.append(f"{cls.name} ignores --query")
    from .formats import detect, handler_for
    from .formats.detect import SNIFF_CHARS

    sniffs = request.input_format in ("auto", "code")  # an explicit format needs no look at the text
    info = detect(_head(doc, SNIFF_CHARS) if sniffs else "", doc.label, request.input_format, request.language)
    handler = handler_for(info.format)
    if handler is not None:
        from .formats.dispatch import compress_formatted

        return compress_formatted(doc, out, handler, info, compressor, request, counter, warnings, t0)

    scanned = scan(doc, counter, compressor, request.force, progress)
    table = scanned.table
    unit_total = int(table.tokens.sum())
    if request.target_tokens is not None:
        budget = request.target_tokens
    else:
        budget = int(round(request.ratio * unit_total))

    def attempt(stream: BinaryIO, budget: int) -> tuple[OutputSink, Context]:
        scanned.fidelity.reset_output()
        sink = OutputSink(stream, counter, scanned.fidelity)
        ctx = Context(doc, table, budget, request, counter, sink, progress, warnings)
        if len(table):
            compressor.compress(ctx)
        sink.close()
        return sink, ctx

    if request.target_tokens is not None and budget <= _HARD_CAP_MAX_TOKENS:
        # --target-tokens is a hard cap: joins can cost a token or two more than the units'
        # in-context counts, so compress in memory and tighten the budget until it fits.
        for _ in range(4):
            buf = io.BytesIO()
            sink, ctx = attempt(buf, budget)
            over = sink.tokens - request.target_tokens
            if over <= 0 or budget == 0:
                break
            budget = max(0, budget - over)
        out.write(buf.getvalue())
        out.flush()
    elif cls.refits and doc.size <= _REFIT_MAX_BYTES and len(table):
        sink, ctx = _refit(attempt, out, budget, scanned)
    else:
        sink, ctx = attempt(out, budget)
    kept = ctx.kept if ctx.kept is not None else np.zeros(len(table), dtype=bool)
    if request.force:
        forced = (table.flags & FORCED) > 0
        if bool((forced & ~kept).any()):
            warnings.append("some --force strings were not kept")
    elapsed = time.perf_counter() - t0
    fid = scanned.fidelity.result()
    must_over = False
    if sink.tokens > budget and budget < unit_total:
        over = (table.tokens[(table.flags & FORCED) > 0]).sum()
        if over > budget:
            must_over = True
            warnings.append(f"must-keep content ({int(over)} tokens) exceeds the budget of {budget}")
    if not must_over:
        warnings.extend(ratio_warnings(request.ratio, sink.tokens, scanned.input_tokens, False))
    return Report(
        method=cls.name,
        params=compressor.settings,
        tokenizer=counter.name,
        tokenizer_sha256=counter.sha256,
        input_tokens=scanned.input_tokens,
        output_tokens=sink.tokens,
        ratio=(sink.tokens / scanned.input_tokens) if scanned.input_tokens else 1.0,
        requested_ratio=request.ratio,
        target_tokens=request.target_tokens,
        budget_tokens=budget,
        input_bytes=doc.size,
        output_bytes=sink.bytes,
        units=len(table),
        units_kept=int(kept.sum()),
        protected_spans=int(table.spans.sum()),
        protected_spans_kept=int(table.spans[kept].sum()) if len(table) else 0,
        numbers_in=fid.numbers_in,
        numbers_kept=fid.numbers_kept,
        names_in=fid.names_in,
        names_kept=fid.names_kept,
        elapsed_ms=elapsed * 1000.0,
        tokens_per_s=scanned.input_tokens / elapsed if elapsed > 0 else 0.0,
        query=request.query,
        force=list(request.force),
        model=ctx.model,
        model_sha256=ctx.model_sha256,
        language=ctx.language,
        device=ctx.device,
        words=ctx.word_scores,
        chunks=ctx.chunks,
        source=doc.label,
        warnings=warnings,
        input_format=info.format,
        format_reason=info.reason,
        handler="text",
        promptzip_version=__version__,
    )


_REFIT_MAX_BYTES = 16 << 20  # up to this size a --ratio output is made in memory and refitted


def _refit(attempt, out: BinaryIO, budget: int, scanned: ScanResult) -> tuple[OutputSink, Context]:
    """Up to three attempts at `budget`, each moved by the last one's measured miss: item
    costs are estimates (a word counted alone, pieces of CJK text, joins), and the measured
    output is what the ratio promises. The closest attempt not over the target is written."""
    target = budget
    slack = max(1, scanned.input_tokens // 200)
    tries = []
    for _ in range(3):
        buf = io.BytesIO()
        sink, ctx = attempt(buf, budget)
        tries.append((buf, sink, ctx))
        miss = target - sink.tokens
        if -slack <= miss <= slack or budget == 0:
            break
        budget = max(0, budget + miss)
    fits = [t for t in tries if t[1].tokens <= target + slack]
    buf, sink, ctx = max(fits, key=lambda t: t[1].tokens) if fits else min(tries, key=lambda t: t[1].tokens)
    if sink is not tries[-1][1]:  # the fidelity tally holds the last attempt's output
        scanned.fidelity.reset_output()
        scanned.fidelity.output(buf.getvalue().decode("utf-8", errors="replace"))
    out.write(buf.getvalue())
    out.flush()
    return sink, ctx


RATIO_SLACK = 0.03  # how far from the requested ratio an output may land without a warning


def ratio_warnings(requested: float | None, out_tokens: int, in_tokens: int, all_fits: bool) -> list[str]:
    """A warning when the achieved ratio strays more than RATIO_SLACK from the request."""
    if requested is None or not in_tokens:
        return []
    achieved = out_tokens / in_tokens
    if abs(out_tokens - requested * in_tokens) <= 2:  # a tiny input: a token is a large share
        return []
    if in_tokens and out_tokens == 0 and requested * in_tokens >= 1:
        return [f"the output is empty though the request allowed {round(requested * in_tokens)} tokens"]
    if achieved > requested + RATIO_SLACK:
        return [f"achieved ratio {achieved:.3f} is above the requested {requested:g}"]
    if achieved < requested - RATIO_SLACK and not all_fits:
        return [f"achieved ratio {achieved:.3f} is below the requested {requested:g}"]
    return []


def _head(doc: Document, size: int) -> str:
    """The document's first `size` bytes as text (a cut character dropped)."""
    doc.file.seek(0)
    data = doc.file.read(size)
    doc.file.seek(0)
    return data.decode("utf-8", errors="ignore")


def compress(
    text: str,
    method: str = "extract",
    ratio: float | None = None,
    target_tokens: int | None = None,
    query: str | None = None,
    force: Sequence[str] = (),
    tokenizer: str | TokenCounter = DEFAULT_TOKENIZER,
    word_scores: bool = False,
    input_format: str = "auto",
    language: str | None = None,
    **params: Any,
) -> CompressResult:
    """Compress a string. Keyword arguments beyond the named ones are method parameters;
    `word_scores` asks word-level methods for per-word scores (`report.words`); `input_format`
    names the format (json, csv, html, log, code, latex, ...; auto sniffs the content)."""
    out = io.BytesIO()
    doc = document_from_bytes(text.encode("utf-8"))
    request = Request(ratio, target_tokens, query, tuple(force), word_scores, input_format, language)
    report = compress_document(doc, out, method, request, params, tokenizer)
    return CompressResult(out.getvalue().decode("utf-8"), report)


def compress_file(
    path: str | Path | None,
    out: BinaryIO,
    method: str = "extract",
    request: Request | None = None,
    params: dict[str, Any] | None = None,
    tokenizer: str | TokenCounter = DEFAULT_TOKENIZER,
    errors: str = "strict",
    progress: Progress | None = None,
) -> Report:
    """Compress a file (or stdin for None / '-') into `out`."""
    with open_document(path, errors) as doc:
        return compress_document(doc, out, method, request, params, tokenizer, progress)


__all__ = ["Request", "CompressResult", "compress", "compress_file", "compress_document", "Kind"]
