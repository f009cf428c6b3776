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

from ..errors import UsageError
from .common import (
    EndpointOpt,
    ErrorsOpt,
    ForceOpt,
    InputFormatOpt,
    KeyEnvOpt,
    LanguageOpt,
    LmModelOpt,
    MethodOpt,
    ParamOpt,
    QueryOpt,
    QuietOpt,
    RatioOpt,
    TargetOpt,
    TokenizerOpt,
    endpoint_params,
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
        method: MethodOpt = "extract",
        ratio: RatioOpt = None,
        target_tokens: TargetOpt = None,
        tokenizer: TokenizerOpt = "cl100k_base",
        query: QueryOpt = None,
        force: ForceOpt = None,
        param: ParamOpt = None,
        input_format: InputFormatOpt = "auto",
        language: LanguageOpt = None,
        fmt: Annotated[Format, typer.Option("--format", help="text: the compressed text; json: "
                                            '{"compressed": ..., "report": {...}}.')] = Format.text,
        output: Annotated[Path | None, typer.Option("--output", "-o", metavar="FILE",
                                                    help="Write to FILE (atomically) instead of stdout.")] = None,
        report_file: Annotated[Path | None, typer.Option("--report", metavar="FILE", help="Write the full report as JSON to FILE.")] = None,
        threshold: Annotated[float | None, typer.Option(
            "--threshold", help="Keep every word whose keep probability is at least this, instead of "
            "meeting a ratio (extract).")] = None,
        explain: Annotated[bool, typer.Option("--explain", help="Print the input with kept words "
                                              "bright and dropped words dim (word-level methods).")] = False,
        endpoint: EndpointOpt = None,
        model: LmModelOpt = None,
        api_key_env: KeyEnvOpt = None,
        errors: ErrorsOpt = "strict",
        quiet: QuietOpt = False,
    ) -> None:
        """Compress one document to a ratio or a token budget."""
        from ..api import compress_file
        from ..compressors import get_method
        from ..context import Request

        stdin_or_usage(path)
        if method == "latent":
            from .latent import compress_latent

            compress_latent(path, output, parse_params(param), quiet, report_file, errors)
            return
        params = endpoint_params(parse_params(param), method, endpoint, model, api_key_env)
        if threshold is not None:
            if ratio is not None or target_tokens is not None:
                raise UsageError("--threshold replaces --ratio/--target-tokens", "Give one of them.")
            if not 0 < threshold < 1:
                raise UsageError(f"--threshold must be in (0, 1), got {threshold}")
            if "threshold" not in {p.name for p in get_method(method).params}:
                raise UsageError(f"--threshold needs a method with keep probabilities, not {method}",
                                 "Use -m extract.")
            params["threshold"] = str(threshold)
        request = Request(ratio, target_tokens, query, tuple(force or ()),
                          word_scores=fmt is Format.json or explain, input_format=input_format,
                          language=language)
        request.validate()
        progress = _progress_for(path, quiet)
        if explain:
            _explain(path, method, request, params, tokenizer, errors)
            return

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
            err(f"Warning: {w.rstrip('.')}.")
        if not quiet:
            err(report.render())


def _explain(path, method, request, params, tokenizer, errors) -> None:
    """Render the input with each word styled by its fate; blocks and unscored text as is."""
    from rich.console import Console
    from rich.text import Text

    from ..api import compress_document
    from ..source import open_document

    with open_document(path, errors) as doc:
        report = compress_document(doc, io.BytesIO(), method, request, params, tokenizer)
        doc.file.seek(0)
        source = doc.file.read().decode("utf-8", errors="replace")
    if report.words is None:
        raise UsageError(f"--explain needs a word-level method with scores, not {method}",
                         "Use -m extract or -m selfinfo.")
    out = Text()
    pos = 0
    for word, _score, kept in report.words:
        at = source.find(word, pos)
        if at < 0:
            continue
        out.append(source[pos:at])
        out.append(word, style="bold" if kept else "dim strike")
        pos = at + len(word)
    out.append(source[pos:])
    console = Console(highlight=False)
    console.print(out, end="", soft_wrap=True)
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
