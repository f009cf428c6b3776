"""Options shared by commands, error mapping and stderr output helpers."""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Annotated, Any, TypeVar

import typer

from ..errors import PromptzipError, UsageError

EXIT_CODES_HELP = (
    "Exit codes: 0 ok, 1 runtime error (unreadable or non-UTF-8 input), 2 usage error, "
    "3 model or data missing or failed its checksum, 4 batch finished with failed items, "
    "130 interrupted."
)

MethodOpt = Annotated[str, typer.Option("--method", "-m", envvar="PROMPTZIP_METHOD",
                                        help="Compression method (see `promptzip methods`).")]
RatioOpt = Annotated[float | None, typer.Option(
    "--ratio", "-r", help="Fraction of tokens to keep, output/input in the counting tokenizer "
    "(0.33 keeps a third). Default 0.5 when --target-tokens is not given.")]
TargetOpt = Annotated[int | None, typer.Option("--target-tokens", "-t",
                                               help="Token budget for the whole output.")]
TokenizerOpt = Annotated[str, typer.Option(
    "--tokenizer", envvar="PROMPTZIP_TOKENIZER",
    help="Counting tokenizer: a tiktoken name (cl100k_base, o200k_base; offline) or a path to "
    "a Hugging Face tokenizer.json or a SentencePiece tokenizer.model.")]
QueryOpt = Annotated[str | None, typer.Option("--query", "-Q",
                                              help="Question the output must serve (query-aware methods).")]
ForceOpt = Annotated[list[str] | None, typer.Option(
    "--force", "-f", metavar="STRING", help="A string that must survive verbatim (repeatable).")]
ParamOpt = Annotated[list[str] | None, typer.Option(
    "--param", "-p", metavar="KEY=VALUE", help="Method parameter KEY=VALUE (repeatable; see `promptzip methods`).")]
InputFormatOpt = Annotated[str, typer.Option(
    "--input-format", "-F", envvar="PROMPTZIP_INPUT_FORMAT", metavar="FORMAT",
    help="auto | text | markdown | json | jsonl | csv | tsv | html | log | code | latex. auto: the "
    "file extension, else the content (stdin is sniffed). Each format keeps its output valid "
    "(JSON parses, tables keep header and whole rows, code keeps whole lines).")]
LanguageOpt = Annotated[str | None, typer.Option(
    "--language", metavar="LANG", help="The language of code input (python, javascript, go, rust, "
    "java, c, ...); default: from the extension.")]
ErrorsOpt = Annotated[str, typer.Option(
    "--errors", envvar="PROMPTZIP_ERRORS",
    help="Invalid UTF-8 or binary input: strict (fail, exit 1) or replace (U+FFFD).")]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="No summary line on stderr.")]
EndpointOpt = Annotated[str | None, typer.Option(
    "--endpoint", metavar="URL",
    help="OpenAI-compatible server for -m rewrite (e.g. http://127.0.0.1:8080/v1); the API key "
    "is read from $PROMPTZIP_API_KEY (or the variable named by --api-key-env).")]
LmModelOpt = Annotated[str | None, typer.Option(
    "--model", metavar="NAME", help="Model name at --endpoint.")]
KeyEnvOpt = Annotated[str | None, typer.Option(
    "--api-key-env", metavar="VAR", help="Environment variable holding the endpoint's API key.")]


def parse_params(items: list[str] | None) -> dict[str, str]:
    params: dict[str, str] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"--param expects KEY=VALUE, got {item!r}")
        params[key.strip()] = value.strip()
    return params


def endpoint_params(params: dict[str, str], method: str, endpoint: str | None, model: str | None,
                    key_env: str | None) -> dict[str, str]:
    """Fold --endpoint/--model/--api-key-env into the method's parameters."""
    given = {"endpoint": endpoint, "model": model, "key_env": key_env}
    given = {k: v for k, v in given.items() if v}
    if not given:
        return params
    from ..compressors import get_method

    if "endpoint" not in {p.name for p in get_method(method).params}:
        raise UsageError(f"--endpoint/--model/--api-key-env are for -m rewrite, not -m {method}")
    if "endpoint" in given and "model" not in given and "model" not in params:
        raise UsageError("--endpoint needs --model NAME", "The name the server knows the model by.")
    return {**params, **given}


F = TypeVar("F", bound=Callable[..., Any])


def handle_errors(func: F) -> F:
    """Map library errors to `Error: ...` on stderr and the documented exit codes."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except PromptzipError as exc:
            if os.environ.get("PROMPTZIP_DEBUG") == "1":
                raise
            err(exc.render())
            raise typer.Exit(exc.exit_code) from None
        except KeyboardInterrupt:
            err("Interrupted.")
            raise typer.Exit(130) from None
        except BrokenPipeError:
            # the reader went away (e.g. `| head`); stay quiet like other Unix tools
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            raise typer.Exit(141) from None
        except typer.Exit:
            raise
        except Exception as exc:
            if os.environ.get("PROMPTZIP_DEBUG") == "1":
                raise
            err(f"Error: unexpected {type(exc).__name__}: {exc}. "
                "Set PROMPTZIP_DEBUG=1 for a traceback and report it.")
            raise typer.Exit(1) from None

    return wrapper  # type: ignore[return-value]


def err(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def stdin_or_usage(path: str | None) -> None:
    if (path is None or path == "-") and sys.stdin is not None and sys.stdin.isatty():
        raise UsageError("no input: stdin is a terminal", "Give a PATH or pipe text in, e.g. `cat doc.md | promptzip compress`.")


def app_callback_defaults(ctx: typer.Context) -> None:
    """Config file values become option defaults (below flags and env vars)."""
    from ..config import load_config

    try:
        config = load_config()
    except PromptzipError as exc:
        err(exc.render())
        raise typer.Exit(exc.exit_code) from None
    if config:
        defaults = {k: v for k, v in config.items()}
        ctx.default_map = {name: dict(defaults) for name in ("compress", "batch", "tokens")}


@contextmanager
def progress_bar(enabled: bool, label: str) -> Iterator[Callable[..., None] | None]:
    """A rich progress bar on stderr when it is a terminal; otherwise no callback."""
    if not enabled or not sys.stderr.isatty():
        yield None
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )

    with Progress(TextColumn(label), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                  console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task(label, total=None)

        def update(done: int, total: int, *_: Any) -> None:
            bar.update(task, completed=done, total=total)

        yield update
