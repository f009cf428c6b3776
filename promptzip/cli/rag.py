"""`promptzip rag`."""

from __future__ import annotations

import json
import sys
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from ..errors import InputError, UsageError
from .common import (
    ForceOpt,
    QuietOpt,
    RatioOpt,
    TokenizerOpt,
    err,
    handle_errors,
    progress_bar,
    stdin_or_usage,
)


class Order(str, Enum):
    ends = "ends"
    relevance = "relevance"
    original = "original"


class Relevance(str, Enum):
    model = "model"
    auto = "auto"
    hybrid = "hybrid"
    bm25 = "bm25"
    embed = "embed"


def _lines(path: str | None):
    """(line number, text) of a JSONL file or stdin, read lazily."""
    if path in (None, "-"):
        stream = sys.stdin.buffer
    else:
        try:
            stream = open(path, "rb")  # noqa: SIM115 - closed below
        except OSError as exc:
            raise InputError(f"cannot read {path}: {exc.strerror}") from None
    try:
        for n, raw in enumerate(stream, 1):
            try:
                yield n, raw.decode("utf-8")
            except UnicodeDecodeError:
                yield n, "\x00not utf-8"  # reported as invalid JSON on its line
    finally:
        if stream is not sys.stdin.buffer:
            stream.close()


def register(app: typer.Typer) -> None:
    @app.command(epilog="Input shapes: one record per query, with `query` or `question` and a list "
                 "under `passages`, `ctxs`, `contexts` or `documents` (items: strings, or objects with "
                 "`text`, `content` or `page_content`; other fields pass through untouched); or one "
                 "passage per line with --query. Output: JSONL of the same shape on stdout, dropped "
                 "passages left out. Summary and warnings on stderr.")
    @handle_errors
    def rag(
        path: Annotated[str | None, typer.Argument(metavar="PATH|-", help="JSONL file, or - for stdin.")] = None,
        query: Annotated[str | None, typer.Option(
            "--query", "-Q", help="The question: required for one passage per line; for records "
            "without a query field otherwise.")] = None,
        ratio: RatioOpt = None,
        target_tokens: Annotated[int | None, typer.Option(
            "--target-tokens", "-t", help="Token budget per query.")] = None,
        top_k: Annotated[int | None, typer.Option("--top-k", "-k", help="Keep at most K passages per query.")] = None,
        threshold: Annotated[float | None, typer.Option(
            "--threshold", help="Drop passages whose relevance is below this (0-1; the best passage "
            "of each query scores 1).")] = None,
        order: Annotated[Order, typer.Option(
            "--order", help="Output order: ends (best first, second best last, weakest in the middle), "
            "relevance, or original.")] = Order.ends,
        relevance: Annotated[Relevance, typer.Option(
            "--relevance", help="Passage relevance: model (the extract classifier reads each passage "
            "with the query, and names in the best passages lead a second hop; one word budget over all "
            "passages), bm25 (about fifteen times faster; keeps fewer answers that need two passages), auto "
            "(BM25, re-scored with MiniLM embeddings when BM25 is unsure), hybrid (both, every passage), "
            "or embed.")] = Relevance.model,
        no_extract: Annotated[bool, typer.Option(
            "--no-extract", help="Stop at sentences: no word-level extraction.")] = False,
        tokenizer: TokenizerOpt = "cl100k_base",
        force: ForceOpt = None,
        strict: Annotated[bool, typer.Option(
            "--strict", help="Fail on the first malformed line instead of reporting and skipping it.")] = False,
        output: Annotated[Path | None, typer.Option("--output", "-o", metavar="FILE",
                                                    help="Write to FILE (atomically) instead of stdout.")] = None,
        report_file: Annotated[Path | None, typer.Option(
            "--report", metavar="FILE", help="Write one JSON report per query to FILE (JSONL): tokens "
            "before/after, kept and dropped passages with their scores, time.")] = None,
        quiet: QuietOpt = False,
    ) -> None:
        """Compress retrieved passages for their query (RAG): passages ranked, filtered, budgeted,
        then thinned to sentences and words."""
        from ..rag import run_jsonl

        stdin_or_usage(path)
        if ratio is not None and target_tokens is not None:
            raise UsageError("give --ratio or --target-tokens, not both")
        if threshold is not None and not 0 <= threshold <= 1:
            raise UsageError(f"--threshold must be in [0, 1], got {threshold}")
        reports = open(report_file, "w", encoding="utf-8") if report_file else None  # noqa: SIM115

        def on_shape(shape) -> None:
            if not quiet:
                err(f"rag: detected {shape.describe()}")

        def run(sink, tick) -> object:
            done = [0]

            def write(obj) -> None:
                sink.write((json.dumps(obj, ensure_ascii=False) + "\n").encode("utf-8"))
                sink.flush()
                done[0] += 1
                if tick:
                    tick(done[0], None)

            return run_jsonl(
                _lines(path), write, query=query, strict=strict,
                report=(lambda r: reports.write(json.dumps(r, ensure_ascii=False) + "\n")) if reports else None,
                on_warning=lambda w: err(f"Warning: {w.rstrip('.')}."), on_shape=on_shape,
                ratio=ratio, target_tokens=target_tokens, top_k=top_k, threshold=threshold, order=order.value,
                relevance_mode=relevance.value, extract=not no_extract, tokenizer=tokenizer,
                force=tuple(force or ()))

        try:
            with progress_bar(not quiet, "rag: records") as tick:
                if output is not None:
                    from ..fileutil import atomic_write

                    with atomic_write(output) as f:
                        summary = run(f, tick)
                else:
                    summary = run(sys.stdout.buffer, tick)
        finally:
            if reports:
                reports.close()
        if summary.records == 0 and not summary.skipped:
            err("Warning: no records in the input.")
        if not quiet:
            err(summary.render())
