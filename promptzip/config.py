"""User state and configuration.

Precedence: command-line flag > `PROMPTZIP_*` environment variable > config file > default.
`PROMPTZIP_HOME` (default `~/.promptzip`) holds everything promptzip stores for a user: the
config file `config.toml`, caches and converted models; tests point it at a temporary folder.
Config keys map to option names of the commands, e.g.::

    method = "lexical"
    tokenizer = "o200k_base"
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import tomllib

from .errors import UsageError

CONFIG_KEYS = ("method", "tokenizer", "errors")


def home() -> Path:
    return Path(os.environ.get("PROMPTZIP_HOME") or Path.home() / ".promptzip").expanduser()


def load_config() -> dict[str, Any]:
    path = home() / "config.toml"
    if not path.is_file():
        return {}
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot parse {path}: {exc}", "Fix or remove the file.") from None
    unknown = sorted(set(data) - set(CONFIG_KEYS))
    if unknown:
        raise UsageError(
            f"{path} has unknown keys: {', '.join(unknown)}", f"Known keys: {', '.join(CONFIG_KEYS)}."
        )
    return data
