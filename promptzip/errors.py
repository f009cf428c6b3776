"""Typed exceptions; the CLI maps each to a message and an exit code.

Exit codes (documented in `promptzip --help`):
0 ok, 1 runtime error, 2 usage error, 3 model/data missing or failed its checksum,
4 batch finished with some failed items.
"""

from __future__ import annotations


class PromptzipError(Exception):
    """Base class. `str(err)` is the message; `hint` says what to do next."""

    exit_code = 1

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.hint = hint

    def render(self) -> str:
        text = f"Error: {self}"
        if not text.endswith("."):
            text += "."
        return f"{text} {self.hint}".rstrip()


class UsageError(PromptzipError):
    """Bad options or arguments (exit 2)."""

    exit_code = 2


class InputError(PromptzipError):
    """The input cannot be read or decoded (exit 1)."""


class TokenizerError(PromptzipError):
    """A tokenizer name or file that cannot be loaded (exit 2: the user named it)."""

    exit_code = 2


class ModelError(PromptzipError):
    """A model or data file is missing or failed its checksum (exit 3)."""

    exit_code = 3


class BatchError(PromptzipError):
    """A batch finished but some items failed (exit 4)."""

    exit_code = 4
