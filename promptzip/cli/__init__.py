"""The `promptzip` command line (Typer), the top floor. Commands live one group per module; no model
logic here: commands parse options, call the library and map its typed errors to exit codes. Each
command imports the library inside its function, for start-up time: `promptzip --help` and a
command's own `--help` answer without loading numpy, tokenizers or onnxruntime."""

from __future__ import annotations

import typer

from .._version import __version__
from .common import EXIT_CODES_HELP, app_callback_defaults

app = typer.Typer(
    name="promptzip",
    help="Compress prompts and contexts for LLMs.\n\n" + EXIT_CODES_HELP,
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        from ..shipped import SHIPPED, describe

        typer.echo(f"promptzip {__version__}")
        for name in SHIPPED:
            row = describe(name, verify=False)
            where = f"{row['where']}: {row['path']}" if row["present"] else "missing"
            typer.echo(f"  {name:<22} sha256 {(row['sha256'] or '-')[:16]}  ({where})")
        raise typer.Exit()


@app.callback()
def _root(
    ctx: typer.Context,
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                 help="Show the version and the shipped models (sha256 of each, where found), and exit."),
) -> None:
    app_callback_defaults(ctx)


def _register() -> None:
    from . import batch, compress, eval, info, latent, models, rag, serve

    compress.register(app)
    batch.register(app)
    info.register(app)
    eval.register(app)
    models.register(app)
    rag.register(app)
    latent.register(app)
    serve.register(app)


_register()


def main() -> None:
    app()
