"""The public entry: `compress` (a string), `compress_file` (a path or stdin) and `compress_document`
(an open document), which route a document to its format handler (`formats`) or to the text
pipeline (`pipeline.compress_text`). Floor: the entry, above both; rag, batch, serve, eval and the
CLI call it.
"""

from __future__ import annotations

import io
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from .compressors import Compressor, get_method
from .context import Progress, Request
from .formats import detect, handler_for
from .formats.detect import SNIFF_CHARS
from .formats.dispatch import compress_formatted
from .pipeline import compress_text
from .report import Report
from .source import Document, document_from_bytes, open_document
from .tokens import DEFAULT_TOKENIZER, TokenCounter, load_tokenizer


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
    request = (request or Request()).validated()
    counter = load_tokenizer(tokenizer) if isinstance(tokenizer, str) else tokenizer
    if isinstance(method, Compressor):  # a configured instance (the format handlers' inner calls)
        compressor, cls = method, type(method)
    else:
        cls = get_method(method)
        compressor = cls(**(params or {}))
    warnings: list[str] = []
    if request.query and not cls.query_aware:
        warnings.append(f"{cls.name} ignores --query")
    sniffs = request.input_format in ("auto", "code")  # an explicit format needs no look at the text
    info = detect(_head(doc, SNIFF_CHARS) if sniffs else "", doc.label, request.input_format, request.language)
    handler = handler_for(info.format)
    if handler is not None:
        return compress_formatted(doc, out, handler, info, compressor, request, counter, warnings, t0)

    return compress_text(doc, out, compressor, request, counter, warnings, progress, t0, info.format, info.reason)


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


__all__ = ["Request", "CompressResult", "compress", "compress_file", "compress_document"]
