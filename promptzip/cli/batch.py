"""`promptzip batch`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ..errors import BatchError, UsageError
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
        src: Annotated[Path, typer.Argument(help="Folder of input documents, or a dataset: a Parquet or JSON "
                                            "Lines file (or a folder of Parquet files) with a text column "
                                            "(--engine ray).")],
        out: Annotated[Path, typer.Option("--output", "-o", help="Output folder (mirrors the input tree; "
                                          "must not be inside it); for a dataset, a .parquet path (or folder) "
                                          "or a .jsonl file.")],
        glob: Annotated[str, typer.Option("--glob", "-g", help="Which files, relative to SRC.")] = "**/*",
        jobs: Annotated[int, typer.Option("--jobs", "-j", help="Parallel worker processes (local) or actors "
                                          "(ray).")] = 1,
        engine: Annotated[str, typer.Option("--engine", help="local: a process pool on this machine; ray: Ray "
                                            "Data, on a local Ray (loopback only) or the cluster at --address "
                                            "(`pip install 'promptzip-cli[ray]'`).")] = "local",
        address: Annotated[str | None, typer.Option("--address", help="A running Ray cluster to join "
                                                    "(HOST:6379, or `auto`); --engine ray.")] = None,
        actors: Annotated[int | None, typer.Option("--actors", help="Ray actors (models loaded once each); "
                                                   "default: --jobs.")] = None,
        column: Annotated[str, typer.Option("--column", help="A dataset's text column.")] = "text",
        query_column: Annotated[str | None, typer.Option("--query-column", help="A dataset's question column: "
                                                         "each row compressed for its question.")] = None,
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
        from ..context import Request

        request = Request(ratio, target_tokens, query, tuple(force or ()), input_format=input_format,
                          language=language)
        settings = BatchSettings(method, request, tuple(sorted(endpoint_params(
            parse_params(param), method, endpoint, model, api_key_env).items())),
                                 tokenizer, errors)
        from ..ray import is_dataset

        if is_dataset(src):
            if engine != "ray":
                raise UsageError(f"{src} is a dataset (Parquet or JSON Lines rows)", "Add --engine ray to "
                                 "compress its text column; a folder of documents works with either engine.")
            from ..ray import run_dataset, start

            started = start(address)
            try:
                res = run_dataset(src, out, settings, column, query_column, actors or jobs)
            finally:
                if started:
                    import ray

                    ray.shutdown()
            if not quiet:
                ratio = res["output_tokens"] / res["input_tokens"] if res["input_tokens"] else 1.0
                err(f"batch (ray): {res['rows']:,} rows · {res['failed']} failed · {res['input_tokens']:,} -> "
                    f"{res['output_tokens']:,} tokens (ratio {ratio:.3f}) · {res['elapsed_s']:.1f} s · "
                    f"{res['input_tokens'] / max(res['elapsed_s'], 1e-9):,.0f} tokens/s")
            if res["failed"]:
                for e in res["failures"]:
                    err(f"  failed: {e}")
                raise BatchError(f"{res['failed']} of {res['rows']} rows failed", "See the `error` column of the output.")
            return
        with progress_bar(not quiet, "batch") as progress:
            summary = run_batch(src, out, settings, glob, actors or jobs, progress, engine, address)
        if not quiet:
            err(summary.render())
        if summary.failed:
            for f in summary.failures[:20]:
                err(f"  failed: {f['path']}: {f['error']}")
            if summary.failed > 20:
                err(f"  ... and {summary.failed - 20} more (see {out / 'promptzip-summary.json'})")
            raise BatchError(f"{summary.failed} of {summary.total} files failed",
                             "Fix them and re-run the same command; finished files are skipped.")
