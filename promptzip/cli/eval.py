"""`promptzip eval`."""

from __future__ import annotations

import contextlib
import time
from pathlib import Path
from typing import Annotated

import typer

from ..errors import UsageError
from .common import TokenizerOpt, err, handle_errors, progress_bar


def _floats(text: str) -> list[float]:
    try:
        values = [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise UsageError(f"--ratios expects numbers like 0.5,0.33,0.2, got {text!r}") from None
    if not values or any(not 0 < v <= 1 for v in values):
        raise UsageError(f"--ratios must be in (0, 1], got {text!r}")
    return values


def register(app: typer.Typer) -> None:
    @app.command("eval", epilog="Writes OUT/results.json, OUT/results.md and PNG plots; prints the "
                 "Markdown table. Every measured row is appended to OUT/rows.jsonl, so a re-run "
                 "(interrupted, more rows, more methods) computes only what is missing. Reader and "
                 "embedding metrics need `promptzip models prepare`.")
    @handle_errors
    def eval_(
        data: Annotated[Path, typer.Argument(metavar="DATA", help="JSONL (QA, summarization or prompt "
                                             "rows) or a .txt document.")],
        methods: Annotated[str, typer.Option("--methods", help="Comma-separated methods; `random` is "
                                             "the word-dropping floor; NAME:noquery runs a query-aware "
                                             "method without the question; NAME:KEY=VALUE sets one of its "
                                             "parameters (e.g. extract:noquery:cost_power=0).")] = "truncate,lexical,random",
        ratios: Annotated[str, typer.Option("--ratios", help="Comma-separated target ratios (`latent`: "
                                            "0.25,0.125,0.0625 = 4x, 8x, 16x; its rows add the "
                                            "reconstruction's precision, and EM/F1 come from `ask`).")] = "0.5,0.33,0.2",
        limit: Annotated[int | None, typer.Option("--limit", help="First N usable rows.")] = None,
        max_chars: Annotated[int | None, typer.Option("--max-chars", help="Skip rows whose context is "
                                                      "longer than N characters.")] = None,
        out: Annotated[Path, typer.Option("--out", "-o", metavar="DIR", help="Output folder.")] = Path("eval-out"),
        reader: Annotated[bool, typer.Option("--reader/--no-reader", help="Reader metrics: the gold "
                                             "answer's log-likelihood and the reader's own answer "
                                             "(EM/F1).")] = True,
        reader_model: Annotated[str, typer.Option("--reader-model", metavar="NAME", help="Who reads: "
                                                  "smollm2-135m-instruct (local, torch; log-likelihood "
                                                  "and EM/F1), qwen2.5-coder-0.5b-instruct or "
                                                  "qwen2.5-coder-1.5b-instruct (local llama.cpp server; "
                                                  "EM/F1 only; `promptzip models prepare` it first), or the model's name at "
                                                  "--reader-endpoint.")] = "smollm2-135m-instruct",
        reader_endpoint: Annotated[str | None, typer.Option("--reader-endpoint", metavar="URL", help="An "
                                                            "OpenAI-compatible server that reads instead "
                                                            "(e.g. http://127.0.0.1:8080/v1); needs "
                                                            "--reader-model. Log-likelihood only where it "
                                                            "scores given text (completions with echo).")] = None,
        reader_key_env: Annotated[str, typer.Option("--reader-key-env", metavar="VAR", help="Environment "
                                                    "variable holding the endpoint's API key.")] = "PROMPTZIP_API_KEY",
        reader_concurrency: Annotated[int, typer.Option("--reader-concurrency", min=1, max=64, help="Parallel "
                                                        "requests to the reader endpoint.")] = 4,
        generate: Annotated[bool, typer.Option("--generate/--no-generate", help="Let the reader answer "
                                               "(EM/F1); off for free-form gold answers such as "
                                               "summaries, where only the log-likelihood is read.")] = True,
        embed: Annotated[bool, typer.Option("--embed/--no-embed", help="MiniLM similarity of original "
                                            "and compressed text.")] = True,
        tokenizer: TokenizerOpt = "cl100k_base",
        title: Annotated[str | None, typer.Option("--title", help="Title of the table and plots.")] = None,
        measured_only: Annotated[bool, typer.Option("--measured-only", help="Only aggregate the rows "
                                                    "already in OUT/rows.jsonl (tables and plots show how "
                                                    "many rows each method has); measure nothing.")] = False,
        fresh: Annotated[bool, typer.Option("--fresh", help="Ignore rows measured by an earlier run "
                                            "in OUT (by default they are reused, except rows made by another version "
                                            "of their method or other weights).")] = False,
    ) -> None:
        """Measure compressors side by side: ratio, answer retention, reader scores, similarity."""
        from ..eval.chat_reader import LOCAL, ChatReader, local_reader, reader_name
        from ..eval.data import load_items
        from ..eval.output import markdown, write_all
        from ..eval.run import Checkpoint, aggregate, evaluate, method_identity, rows_as_dicts
        from ..runtime.lm import LM_NAME as READER_NAME

        method_list = [m.strip() for m in methods.split(",") if m.strip()]
        ratio_list = _floats(ratios)
        items = load_items(data, limit, max_chars)
        t0 = time.perf_counter()
        rd = em = None
        local = reader_endpoint is None
        if local and reader_model not in (READER_NAME, *LOCAL):
            raise UsageError(f"unknown local reader {reader_model!r}",
                             f"Use {READER_NAME} or {', '.join(LOCAL)}, or name a server with --reader-endpoint.")
        if reader_endpoint is not None and reader_model == READER_NAME:
            raise UsageError("--reader-endpoint needs --reader-model NAME", "The name the server knows the model by.")
        uses_torch = reader and local and reader_model == READER_NAME
        named = (READER_NAME if uses_torch else reader_name(reader_model, reader_endpoint)) if reader else None
        if measured_only:
            if fresh:
                raise UsageError("--measured-only and --fresh contradict each other")
            from ..eval.embed import MODEL as EMBED_NAME

            tag = {"data": str(data.resolve()), "tokenizer": tokenizer, "reader": named,
                   "embedder": EMBED_NAME if embed else None}
            reader = embed = uses_torch = False
        if uses_torch or embed:
            from transformers.utils import logging as hf_logging

            hf_logging.disable_progress_bar()  # our own progress bar is on stderr
            hf_logging.set_verbosity_error()
        with contextlib.ExitStack() as stack:  # the local reader's server stops on any exit
            if uses_torch:
                from ..eval.reader import Reader

                rd = Reader()
            elif reader and local:
                err(f"eval: starting the {reader_model} reader (llama.cpp server on loopback)")
                rd = stack.enter_context(local_reader(reader_model))
            elif reader:
                rd = ChatReader(reader_endpoint, reader_model, reader_key_env, reader_concurrency)
            if embed:
                from ..eval.embed import Embedder

                em = Embedder()
            if not measured_only:
                tag = {"data": str(data.resolve()), "tokenizer": tokenizer,
                       "reader": rd.name if rd else None, "embedder": em.name if em else None}
            out.mkdir(parents=True, exist_ok=True)
            ckpt_path = out / "rows.jsonl"
            checkpoint = Checkpoint(ckpt_path, tag, reuse=not fresh)
            if checkpoint.rows:
                usable = checkpoint.usable(items, ratio_list, {m: method_identity(m) for m in method_list})
                err(f"eval: reusing {usable} of {len(checkpoint.rows)} rows measured before ({ckpt_path}; --fresh to "
                    "redo); rows of other methods, weights or versions are not used")
            try:
                with progress_bar(True, "eval") as progress:
                    rows = evaluate(items, method_list, ratio_list, rd, em, tokenizer, progress, checkpoint,
                                    generate=generate, measure=not measured_only)
            finally:
                checkpoint.close()
            summary = aggregate(rows)
            name = title or data.stem
            meta = {"data": str(data), "items": len(items), "measured_only": measured_only,
                    "methods": method_list, "ratios": ratio_list, "tokenizer": tokenizer,
                    "reader": tag["reader"], "embedder": tag["embedder"], "elapsed_s": time.perf_counter() - t0}
            written = write_all(out, name, rows_as_dicts(rows), summary, meta)
            typer.echo(markdown(summary, name, tag["reader"]), nl=False)
            err(f"eval: {len(items)} items, {len(rows)} rows in {meta['elapsed_s']:.0f} s; wrote "
                + ", ".join(str(p) for p in written))
