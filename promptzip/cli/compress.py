"""`promptzip compress`."""

from __future__ import annotations

import io
import json
import os
import sys
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from .common import (
    ErrorsOpt,
    ForceOpt,
    MethodOpt,
    ParamOpt,
    QueryOpt,
    QuietOpt,
    RatioOpt,
    TargetOpt,
    TokenizerOpt,
    err,
    handle_errors,
    parse_params,
    stdin_or_usage,
)

_PROGRESS_MIN_BYTES = 8 << 20


class Format(str, Enum):
    text = "text"
    json = "json"


def register(app: typer.Typer) -> None:
    @app.command(epilog="Reads stdin when PATH is '-' or missing; writes data to stdout, "
                 "the one-line summary and warnings to stderr.")
    @handle_errors
    def compress(
        path: Annotated[str | None, typer.Argument(metavar="PATH|-", help="Input file, or - for stdin.")] = None,
        method: MethodOpt = "lexical",
        ratio: RatioOpt = None,
        target_tokens: TargetOpt = None,
        tokenizer: TokenizerOpt = "cl100k_base",
        query: QueryOpt = None,
        force: ForceOpt = None,
        param: ParamOpt = None,
        fmt: Annotated[Format, typer.Option("--format", help="text: the compressed text; json: "
                                            '{"compressed": ..., "report": {...}}.')] = Format.text,
        output: Annotated[Path | None, typer.Option("--output", "-o", metavar="FILE",
                                                    help="Write to FILE (atomically) instead of stdout.")] = None,
        report_file: Annotated[Path | None, typer.Option("--report", metavar="FILE", help="Write the full report as JSON to FILE.")] = None,
        errors: ErrorsOpt = "strict",
        quiet: QuietOpt = False,
    ) -> None:
        """Compress one document to a ratio or a token budget."""
        from ..pipeline import Request, compress_file

        stdin_or_usage(path)
        request = Request(ratio, target_tokens, query, tuple(force or ()))
        request.validate()
        params = parse_params(param)
        progress = _progress_for(path, quiet)

        def run(sink) -> object:
            return compress_file(path, sink, method, request, params, tokenizer, errors, progress)

        if fmt is Format.json:
            buf = io.BytesIO()
            report = run(buf)
            data = json.dumps({"compressed": buf.getvalue().decode("utf-8"), "report": report.to_dict()},
                              ensure_ascii=False) + "\n"
            _deliver(data.encode("utf-8"), output, run=None)
        elif output is not None:
            report = _deliver(None, output, run=run)
        else:
            report = run(sys.stdout.buffer)
            sys.stdout.buffer.flush()
        if report_file is not None:
            report_file.write_text(report.to_json(indent=2) + "\n", encoding="utf-8")
        for w in report.warnings:
            err(f"Warning: {w}.")
        if not quiet:
            err(report.render())


def _progress_for(path: str | None, quiet: bool):
    if quiet or not sys.stderr.isatty() or path in (None, "-"):
        return None
    try:
        if os.path.getsize(path) < _PROGRESS_MIN_BYTES:
            return None
    except OSError:
        return None
    from rich.console import Console
    from rich.progress import Progress

    bar = Progress(console=Console(stderr=True), transient=True)
    bar.start()
    task = bar.add_task("compressing", total=None)

    def update(phase: str, done: int, total: int) -> None:
        bar.update(task, description=phase, completed=done, total=total)
        if done >= total and phase == "scan":
            bar.stop()

    return update


def _deliver(data: bytes | None, output: Path | None, run):
    """Write `data` (or what `run(stream)` writes) to stdout or atomically to `output`."""
    if output is None:
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
        return None
    from ..fileutil import atomic_write

    with atomic_write(output) as f:
        return run(f) if run else f.write(data)
