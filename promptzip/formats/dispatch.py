"""The format path of `compress_document`: read the whole document, run its handler with one
document budget, write its output, and report what was detected and what the handler did.

Structured formats are read into memory (a handler must see the whole structure to keep it
valid); prose and Markdown keep the streaming pipeline.
"""

from __future__ import annotations

import io
import time
from typing import TYPE_CHECKING, BinaryIO

from .._version import __version__
from ..context import Request
from ..fidelity import FidelityTracker
from ..pipeline import compress_text as text_path
from ..pipeline import ratio_warnings
from ..report import Report
from ..source import PieceSplitter, document_from_bytes
from .base import FormatContext, Handler
from .detect import StreamInfo

if TYPE_CHECKING:
    from ..compressors import Compressor
    from ..source import Document
    from ..tokens import TokenCounter


OVERSHOOT = 0.015  # of the input: how far past a --ratio target a whole-item output may land


def count_pieces(counter: TokenCounter, text: str) -> int:
    """Tokens of `text` counted piece by piece, as the pipeline and `promptzip tokens` count."""
    splitter = PieceSplitter()
    data = text.encode("utf-8")
    pieces = [*splitter.feed(data), *splitter.finish()]
    return sum(counter.count(p.decode("utf-8")) for p in pieces)


def compress_formatted(doc: Document, out: BinaryIO, handler: Handler, info: StreamInfo,
                       compressor: Compressor, request: Request, counter: TokenCounter,
                       warnings: list[str], t0: float) -> Report:
    text = doc.read_text()
    input_tokens = count_pieces(counter, text)
    if request.target_tokens is not None:
        budget = request.target_tokens
    else:
        budget = int(round(request.ratio * input_tokens))
    inner = {"calls": 0, "model": None, "sha": None, "device": "cpu"}

    def compress_text(part: str, tokens: int) -> str:
        buf = io.BytesIO()
        sub = Request(target_tokens=max(0, tokens), query=request.query, force=request.force, input_format="text")
        rep = text_path(document_from_bytes(part.encode("utf-8"), doc.label), buf, compressor, sub.validated(), counter)
        inner["calls"] += 1
        inner["model"], inner["sha"], inner["device"] = rep.model, rep.model_sha256, rep.device
        if rep.language:  # the languages the handler's text calls were read as, most text first
            inner.setdefault("languages", {})[rep.language] = inner.get("languages", {}).get(
                rep.language, 0) + rep.input_tokens
        return buf.getvalue().decode("utf-8")

    ctx = FormatContext(counter, input_tokens, budget, request.query, request.force, info.language,
                        doc.label, compress_text,
                        over=0 if request.target_tokens is not None else int(OVERSHOOT * input_tokens))
    capped = request.target_tokens is not None
    result = handler.compress(text, ctx) if text.strip() and (budget > 0 or not capped) else None
    body = result.text if result else ""
    if body and capped and count_pieces(counter, body) > budget:
        # a cap smaller than the format's thinnest valid output (`{}`, a header): nothing fits
        ctx.warn(f"the thinnest valid {handler.name} output exceeds --target-tokens {budget}")
        body = ""
    if body and text.endswith("\n") and not body.endswith("\n"):
        body += "\n"
    data = body.encode("utf-8")
    out.write(data)
    out.flush()
    output_tokens = count_pieces(counter, body)
    warnings.extend(ctx.warnings)
    details = dict(result.details) if result else {}
    all_fits = bool(result and result.all_fits)
    details["all_fits"] = all_fits
    if result and all_fits and request.ratio is not None and output_tokens < (request.ratio - 0.03) * input_tokens:
        warnings.append(f"all the content the {result.handler} handler keeps fits in {output_tokens} tokens "
                        f"(ratio {output_tokens / max(1, input_tokens):.3f})")
    warnings.extend(ratio_warnings(request.ratio, output_tokens, input_tokens, all_fits))
    fid = FidelityTracker()
    fid.input(text)
    fid.output(body)
    f = fid.result()
    elapsed = time.perf_counter() - t0
    cls = type(compressor)
    return Report(
        method=cls.name,
        params=compressor.settings,
        tokenizer=counter.name,
        tokenizer_sha256=counter.sha256,
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        ratio=output_tokens / input_tokens if input_tokens else 1.0,
        requested_ratio=request.ratio,
        target_tokens=request.target_tokens,
        budget_tokens=budget,
        input_bytes=doc.size,
        output_bytes=len(data),
        units=int(details.get("items_in", 0)),
        units_kept=int(details.get("items_kept", 0)),
        protected_spans=0,
        protected_spans_kept=0,
        numbers_in=f.numbers_in,
        numbers_kept=f.numbers_kept,
        names_in=f.names_in,
        names_kept=f.names_kept,
        elapsed_ms=elapsed * 1000.0,
        tokens_per_s=input_tokens / elapsed if elapsed > 0 else 0.0,
        query=request.query,
        force=list(request.force),
        model=inner["model"],
        model_sha256=inner["sha"],
        language=max(inner["languages"], key=inner["languages"].get) if inner.get("languages") else None,
        device=inner["device"],
        source=doc.label,
        warnings=warnings,
        input_format=info.format,
        format_reason=info.reason,
        handler=result.handler if result else handler.name,
        format_details=details,
        promptzip_version=__version__,
    )
