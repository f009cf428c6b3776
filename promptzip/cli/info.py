"""`promptzip methods` and `promptzip tokens`."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from .common import ErrorsOpt, TokenizerOpt, handle_errors, stdin_or_usage
from .compress import Format


def register(app: typer.Typer) -> None:
    @app.command()
    @handle_errors
    def methods(
        fmt: Annotated[Format, typer.Option("--format", help="text or json.")] = Format.text,
    ) -> None:
        """List the compression methods and their parameters."""
        from ..compressors import methods as registry

        rows = []
        for cls in registry().values():
            rows.append({
                "name": cls.name,
                "description": cls.description,
                "query_aware": cls.query_aware,
                "params": [{"name": p.name, "type": p.type.__name__, "default": p.default,
                            "choices": list(p.choices), "bounds": list(p.bounds), "help": p.help}
                           for p in cls.params],
            })
        if fmt is Format.json:
            typer.echo(json.dumps(rows, indent=2))
            return
        for row in rows:
            flag = " (query-aware)" if row["query_aware"] else ""
            typer.echo(f"{row['name']:<10} {row['description']}{flag}")
            for p in row["params"]:
                choices = f" {{{', '.join(map(str, p['choices']))}}}" if p["choices"] else ""
                lo, hi = p["bounds"]
                if lo is not None or hi is not None:
                    choices = f" [{'' if lo is None else lo}..{'' if hi is None else hi}]"
                typer.echo(f"{'':<12}-p {p['name']}={p['default']}{choices}  {p['help']}")

    @app.command()
    @handle_errors
    def tokens(
        path: Annotated[str | None, typer.Argument(metavar="PATH|-", help="Input file, or - for stdin.")] = None,
        tokenizer: TokenizerOpt = "cl100k_base",
        fmt: Annotated[Format, typer.Option("--format", help="text: the count; json: details.")] = Format.text,
        errors: ErrorsOpt = "strict",
    ) -> None:
        """Count the tokens of a document in a tokenizer."""
        from ..source import open_document
        from ..tokens import load_tokenizer

        stdin_or_usage(path)
        counter = load_tokenizer(tokenizer)
        total = 0
        with open_document(path, errors) as doc:
            for _, text in doc.pieces():
                total += counter.count(text)
            size = doc.size
        if fmt is Format.json:
            typer.echo(json.dumps({"tokens": total, "bytes": size, "tokenizer": counter.name,
                                   "tokenizer_sha256": counter.sha256}))
        else:
            typer.echo(total)
