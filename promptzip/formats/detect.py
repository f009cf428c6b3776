"""Which format a document is in, decided once: `--input-format`, else the file extension,
else the content (the first `SNIFF_CHARS` characters)."""

from __future__ import annotations

import csv
import json
import re
from dataclasses import dataclass
from pathlib import PurePath

from ..errors import UsageError
from .base import Handler

FORMATS = ("auto", "text", "markdown", "json", "jsonl", "csv", "tsv", "html", "log", "code", "latex")
SNIFF_CHARS = 65536

_EXTENSIONS = {
    "text": (".txt", ".text", ".rst"),
    "markdown": (".md", ".markdown", ".mdown", ".mkd"),
    "json": (".json", ".geojson", ".jsonld", ".har"),
    "jsonl": (".jsonl", ".ndjson", ".jsonlines"),
    "csv": (".csv",),
    "tsv": (".tsv", ".tab"),
    "html": (".html", ".htm", ".xhtml"),
    "log": (".log",),
    "latex": (".tex", ".ltx", ".sty", ".cls"),
}
LANGUAGES = {
    ".py": "python", ".pyi": "python", ".js": "javascript", ".mjs": "javascript", ".cjs": "javascript",
    ".jsx": "javascript", ".ts": "typescript", ".tsx": "typescript", ".go": "go", ".rs": "rust",
    ".java": "java", ".kt": "kotlin", ".scala": "scala", ".c": "c", ".h": "c", ".cc": "cpp",
    ".cpp": "cpp", ".cxx": "cpp", ".hpp": "cpp", ".hh": "cpp", ".cs": "csharp", ".swift": "swift",
    ".rb": "ruby", ".php": "php", ".sh": "shell", ".bash": "shell", ".zsh": "shell", ".lua": "lua",
    ".pl": "perl", ".r": "r", ".sql": "sql", ".m": "objc", ".dart": "dart", ".zig": "zig",
}
# languages whose comments start with # (the rest use // and /* */, or -- for sql and lua)
HASH_COMMENTS = frozenset({"python", "ruby", "shell", "perl", "r"})


@dataclass(frozen=True)
class StreamInfo:
    """The detected format, how it was decided, and the code language when it is code."""

    format: str
    reason: str  # "option", "extension", "content" or "default"
    language: str | None = None


def _by_extension(label: str) -> tuple[str | None, str | None]:
    suffix = PurePath(label).suffix.lower()
    if not suffix:
        return None, None
    for fmt, exts in _EXTENSIONS.items():
        if suffix in exts:
            return fmt, None
    if suffix in LANGUAGES:
        return "code", LANGUAGES[suffix]
    return None, None


_TIMESTAMP = re.compile(
    r"^\W{0,2}(?:\d{4}[-/]\d\d[-/]\d\d[T ]\d\d:\d\d"  # ISO-like
    r"|[A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d"  # syslog
    r"|\d\d/[A-Z][a-z]{2}/\d{4}:\d\d"  # common log format
    r"|\d{10}(?:\.\d+)?\s"  # epoch seconds
    r"|\d{1,3}(?:\.\d{1,3}){3}\s.*\[\d\d/[A-Z][a-z]{2}/\d{4}"  # access logs
    r")"
)
_LEVEL = re.compile(r"\b(?:TRACE|DEBUG|INFO|NOTICE|WARN|WARNING|ERROR|FATAL|CRITICAL)\b")
_CODE_LINE = re.compile(
    r"^\s*(?:def |class |import |from \S+ import |#include|package |func |fn |pub |use |let |const |"
    r"var |function\b|return\b|public |private |static |if \(|for \(|while \(|}|\)|@\w+)|[;{]\s*$"
)
_TAG = re.compile(r"<(?:p|div|span|a|body|head|html|table|li|ul|script|meta|link)\b", re.IGNORECASE)


def sniff(head: str) -> StreamInfo:
    """The format of a text from its first characters."""
    t = head.lstrip("\ufeff \t\r\n")
    if not t:
        return StreamInfo("text", "default")
    lines = [line for line in t.split("\n")[:200] if line.strip()]
    complete = lines[:-1] if len(t) >= SNIFF_CHARS - 1 else lines
    if t[0] in "{[":
        try:
            json.loads(t)
            return StreamInfo("json", "content")
        except ValueError:
            pass
        if complete and all(is_json_line(line) for line in complete[:50]):
            return StreamInfo("jsonl" if len(complete) > 1 else "json", "content")
        if t[0] == "{" or len(t) >= SNIFF_CHARS - 1:  # longer than the head: parse it whole later
            return StreamInfo("json", "content")
    low = t[:4096].lower()
    if low.startswith(("<!doctype html", "<html")) or len(_TAG.findall(t[:SNIFF_CHARS])) >= 8:
        return StreamInfo("html", "content")
    if "\\documentclass" in t or "\\begin{document}" in t or len(re.findall(r"\\[a-zA-Z]+[{\[]", t)) >= 8 \
            and t.count("\\") > 0.005 * len(t):
        return StreamInfo("latex", "content")
    sample = complete[:100] or lines[:100]
    if len(sample) >= 3:
        stamped = sum(1 for line in sample if _TIMESTAMP.match(line) or _LEVEL.search(line[:80]))
        if stamped >= 0.6 * len(sample):
            return StreamInfo("log", "content")
        table = _table_dialect(sample)
        if table:
            return StreamInfo(table, "content")
    if t.startswith("#!"):
        first = t.split("\n", 1)[0]
        return StreamInfo("code", "content", "python" if "python" in first else "shell")
    if len(sample) >= 3:
        code = sum(1 for line in sample if _CODE_LINE.search(line))
        if code >= 0.4 * len(sample):
            py = sum(1 for line in sample if re.match(r"\s*(?:def |class \w+.*:\s*$|import |from \S+ import )", line))
            return StreamInfo("code", "content", "python" if py >= 2 else None)
    if re.search(r"^#{1,6} |^```|^\s*[-*] ", t[:SNIFF_CHARS], re.MULTILINE):
        return StreamInfo("markdown", "content")
    return StreamInfo("text", "default")


def is_json_line(line: str, objects_only: bool = False) -> bool:
    """Whether one line is a JSON value (`{...}` or `[...]`; only `{...}` with objects_only)."""
    s = line.strip()
    if not s.startswith("{" if objects_only else ("{", "[")):
        return False
    try:
        json.loads(s)
    except ValueError:
        return False
    return True


def _table_dialect(lines: list[str]) -> str | None:
    """csv or tsv when most lines split into the same number (> 1) of fields."""
    for delim, name in (("\t", "tsv"), (",", "csv"), (";", "csv"), ("|", "csv")):
        if sum(delim in line for line in lines) < 0.9 * len(lines):
            continue
        try:
            counts = [len(row) for row in csv.reader(lines, delimiter=delim)]
        except csv.Error:
            continue
        if not counts or counts[0] < 2:
            continue
        same = sum(1 for c in counts if c == counts[0])
        if same >= 0.9 * len(counts):
            return name
    return None


def detect(head: str, label: str = "", explicit: str = "auto", language: str | None = None) -> StreamInfo:
    """The format of a document: the explicit choice, else its extension, else its content."""
    explicit = (explicit or "auto").lower()
    if explicit not in FORMATS:
        raise UsageError(f"unknown input format {explicit!r}", f"Choose one of: {', '.join(FORMATS)}.")
    ext_fmt, ext_lang = _by_extension(label) if label not in ("", "stdin", "text") else (None, None)
    lang = language or ext_lang
    if explicit != "auto":
        if explicit == "code" and not lang:
            lang = sniff(head).language
        return StreamInfo(explicit, "option", lang if explicit == "code" else None)
    if ext_fmt:
        return StreamInfo(ext_fmt, "extension", lang if ext_fmt == "code" else None)
    found = sniff(head)
    if found.format == "code":
        return StreamInfo("code", found.reason, lang or found.language)
    return found


def handler_for(fmt: str) -> Handler | None:
    """The handler of a format; None for text and markdown (the pipeline itself)."""
    if fmt in ("text", "markdown"):
        return None
    if fmt in ("json", "jsonl"):
        from .jsondoc import JsonHandler

        return JsonHandler(lines=fmt == "jsonl")
    if fmt in ("csv", "tsv"):
        from .table import TableHandler

        return TableHandler(delimiter="\t" if fmt == "tsv" else None)
    if fmt == "html":
        from .html import HtmlHandler

        return HtmlHandler()
    if fmt == "log":
        from .logs import LogHandler

        return LogHandler()
    if fmt == "code":
        from .code import CodeHandler

        return CodeHandler()
    if fmt == "latex":
        from .latex import LatexHandler

        return LatexHandler()
    raise UsageError(f"unknown input format {fmt!r}", f"Choose one of: {', '.join(FORMATS)}.")
