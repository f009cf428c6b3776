"""The text pipeline: read -> segment -> score -> select -> assemble -> write, in bounded memory.

Pass 1 (scan) streams the document piece by piece: exact token count of the input, fidelity
tallies, and a *unit table* (numpy arrays: byte range, tokens, kind, separator, flags) built by
the segmenter; the compressor may observe each unit. The budget is then fixed once for the
whole document. The compressor re-reads units by byte offset when it needs their text and hands
back a keep mask; the writer copies the kept byte ranges verbatim, joined by the input's own
whitespace, while counting output tokens with the same piece rule as the input.

Memory is O(number of units) (about 30 bytes each) plus one piece (1 MiB) of text.

Floor: the text pipeline, on the compressors (`compress_text`); the format handlers call it for
their text, and `api.compress_document` routes a document to a handler or here.
"""

from __future__ import annotations

import io
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import BinaryIO

import numpy as np

from ._version import __version__
from .compressors import Compressor
from .context import (
    WORD_KINDS,
    Context,
    OutputSink,
    Partial,
    Progress,
    Request,
    TableBuilder,
    UnitTable,
)
from .fidelity import FidelityTracker
from .report import Report
from .segment import FORCED, GAP_TEXT, Segmenter, Unit
from .source import Document, document_from_bytes
from .tokens import TokenCounter, token_starts

_HARD_CAP_MAX_TOKENS = 2_000_000  # above this, --target-tokens output streams (may overshoot slightly)


@dataclass
class ScanResult:
    table: UnitTable
    input_tokens: int
    fidelity: FidelityTracker


def scan(doc: Document, counter: TokenCounter, compressor: Compressor, force: Sequence[str],
         progress: Progress | None = None) -> ScanResult:
    seg = Segmenter(force)
    builder = TableBuilder()
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


def compress_text(doc: Document, out: BinaryIO, compressor: Compressor, request: Request, counter: TokenCounter,
                  warnings: list[str] | None = None, progress: Progress | None = None, t0: float | None = None,
                  input_format: str = "text", format_reason: str = "") -> Report:
    """Compress prose or Markdown `doc` with a configured compressor into the binary stream `out`
    (the request already validated and given a ratio or a target) and return the report."""
    t0 = time.perf_counter() if t0 is None else t0
    warnings = [] if warnings is None else warnings
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
        ctx = Context(doc, table, budget, request, counter, sink, progress, warnings, subcompress=_subcompress)
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
    elif type(compressor).refits and doc.size <= _REFIT_MAX_BYTES and len(table):
        sink, ctx = _refit(attempt, out, budget, scanned)
    else:
        sink, ctx = attempt(out, budget)
    if sink.bytes == 0 and scanned.input_tokens and min(budget, unit_total) >= 1 and len(table):
        # nothing the method keeps fits (a protected block larger than the whole budget, say): the
        # document's head within the budget rather than an empty output
        sink, ctx = _head_instead(doc, table, budget, request, counter, out, scanned, warnings)
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
        method=type(compressor).name,
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
        protected_spans_kept=(ctx.spans_kept if ctx.spans_kept is not None
                              else int(table.spans[kept].sum()) if len(table) else 0),
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
        generation=ctx.generation,
        source=doc.label,
        warnings=warnings,
        input_format=input_format,
        format_reason=format_reason,
        handler="text",
        promptzip_version=__version__,
    )


def _subcompress(text: str, compressor: Compressor, request: Request, counter: TokenCounter) -> str:
    """A string through the text path with another configured compressor (`Context.subcompress`:
    how a compressor falls back to another one without importing the pipeline)."""
    buf = io.BytesIO()
    compress_text(document_from_bytes(text.encode("utf-8")), buf, compressor, request.validated(), counter)
    return buf.getvalue().decode("utf-8")


def _head_instead(doc: Document, table: UnitTable, budget: int, request: Request, counter: TokenCounter,
                  out: BinaryIO, scanned: ScanResult, warnings: list[str]) -> tuple[OutputSink, Context]:
    """The units from the start while they fit, then the head of the next one."""
    scanned.fidelity.reset_output()
    sink = OutputSink(out, counter, scanned.fidelity)
    ctx = Context(doc, table, budget, request, counter, sink, None, warnings)
    fits = np.cumsum(table.tokens) <= budget
    n = int(fits.sum())  # units 0..n-1 fit whole
    partial = Partial(n, "head", budget - int(table.tokens[:n].sum()), lines=int(table.kind[n]) not in WORD_KINDS) \
        if n < len(table) else None
    ctx.emit(fits, partial)
    sink.close()
    biggest = int(table.tokens.max())
    ctx.warn(f"nothing the method kept fit the budget of {budget} tokens (the largest block that must stay whole "
             f"has {biggest:,}); the head of the document was kept instead")
    return sink, ctx


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


