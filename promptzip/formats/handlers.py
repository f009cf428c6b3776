"""Which handler reads a format (`handler_for`): the one place that knows every handler module.
Their heavy libraries (trafilatura, drain3) are imported when a handler first runs, not here."""

from __future__ import annotations

from ..errors import UsageError
from .base import Handler
from .code import CodeHandler
from .detect import FORMATS
from .html import HtmlHandler
from .jsondoc import JsonHandler
from .latex import LatexHandler
from .logs import LogHandler
from .table import TableHandler


def handler_for(fmt: str) -> Handler | None:
    """The handler of a format; None for text and markdown (the pipeline itself)."""
    if fmt in ("text", "markdown"):
        return None
    if fmt in ("json", "jsonl"):
        return JsonHandler(lines=fmt == "jsonl")
    if fmt in ("csv", "tsv"):
        return TableHandler(delimiter="\t" if fmt == "tsv" else None)
    if fmt == "html":
        return HtmlHandler()
    if fmt == "log":
        return LogHandler()
    if fmt == "code":
        return CodeHandler()
    if fmt == "latex":
        return LatexHandler()
    raise UsageError(f"unknown input format {fmt!r}", f"Choose one of: {', '.join(FORMATS)}.")
