"""`promptzip batch`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ..errors import BatchError
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
    progress_bar,
)


def register(app: typer.Typer) -> None:
    @app.command(epilog="Writes OUT/promptzip-report.jsonl (one line per file) and "
                 "OUT/promptzip-summary.json. Exit 4 when any file failed.")
    @handle_errors
    def batch(
        src: Annotated[Path, typer.Argument(help="Folder of input documents.")],
        out: Annotated[Path, typer.Option("--output", "-o", help="Output folder (mirrors the input tree; "
                                          "must not be inside it).")],
        glob: Annotated[str, typer.Option("--glob", "-g", help="Which files, relative to SRC.")] = "**/*",
        jobs: Annotated[int, typer.Option("--jobs", "-j", help="Parallel worker processes.")] = 1,
        method: MethodOpt = "extract",
        ratio: RatioOpt = None,
        target_tokens: TargetOpt = None,
        tokenizer: TokenizerOpt = "cl100k_base",
        query: QueryOpt = None,
        force: ForceOpt = None,
        param: ParamOpt = None,
        input_format: InputFormatOpt = "auto",
        language: LanguageOpt = None,
        endpoint: EndpointOpt = None,
        model: LmModelOpt = None,
        api_key_env: KeyEnvOpt = None,
        errors: ErrorsOpt = "strict",
        quiet: QuietOpt = False,
    ) -> None:
        """Compress every matching file under SRC into OUT; re-runs skip finished files. Each
        file's format comes from its extension (or --input-format for all)."""
        from ..batch import BatchSettings, run_batch
        from ..pipeline import Request

        request = Request(ratio, target_tokens, query, tuple(force or ()), input_format=input_format,
                          language=language)
        settings = BatchSettings(method, request, tuple(sorted(endpoint_params(
            parse_params(param), method, endpoint, model, api_key_env).items())),
                                 tokenizer, errors)
        with progress_bar(not quiet, "batch") as progress:
            summary = run_batch(src, out, settings, glob, jobs, progress)
        if not quiet:
            err(summary.render())
        if summary.failed:
            for f in summary.failures[:20]:
                err(f"  failed: {f['path']}: {f['error']}")
            if summary.failed > 20:
                err(f"  ... and {summary.failed - 20} more (see {out / 'promptzip-summary.json'})")
            raise BatchError(f"{summary.failed} of {summary.total} files failed",
                             "Fix them and re-run the same command; finished files are skipped.")
