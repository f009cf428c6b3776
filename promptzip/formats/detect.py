"""Which format a document is in, decided once: `--input-format`, else the file extension,
else the content (the first `SNIFF_CHARS` characters)."""

from __future__ import annotations

import csv
import json
import re
from dataclasses import dataclass
from pathlib import PurePath

from ..errors import UsageError

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
_LEVEL = re.compile(r"\b(?:TRACE|DEBUG|INFO|NOTICE|WARN|WARNING|ERROR|FATAL|CRITICAL)\b|\"level\"\s*:")
_CLOCK = re.compile(r"\b\d{1,2}:\d\d:\d\d\b")  # a time of day near the start of a line
_COMMENT = re.compile(r"^\s*(?://|/\*|\*|#(?!include|define|if|endif|pragma|!)|--|<!--)")
_CODE_LINE = re.compile(
    r"^\s*(?:def |class |import |from \S+ import |#include|#define|package |func |fn |pub |use |let |"
    r"const |var |function\b|return\b|public |private |protected |static |if \(|for \(|while \(|"
    r"}|\)|@\w+|impl\b|struct |enum |module\.exports|export |(?:if|elif|else|for|while|try|except|with)\b.*:\s*$|"
    r"[\w.\[\]]+\s*[-+*/|&]?=\s*\S)|[;{]\s*$|\)\s*:\s*$|\w\(.*\)\s*$"
)
_LANGUAGE_HINTS = (  # (language, pattern); the one with most matching lines wins
    ("python", re.compile(r"^\s*(?:def \w+\(.*\):|class \w+.*:\s*$|import [\w.]+(?: as \w+)?\s*$|"
                          r"from [\w.]+ import |elif |if __name__)")),
    ("go", re.compile(r"^(?:package \w+\s*$|func (?:\(\w+ \*?\w+\) )?\w+\()|:= ")),
    ("rust", re.compile(r"^\s*(?:pub(?:\(crate\))? |fn \w+|use \w+::|impl\b|let mut |#\[)")),
    ("java", re.compile(r"^\s*(?:package [\w.]+;|import java|public (?:final )?(?:class|interface)|"
                        r"@Override)")),
    ("javascript", re.compile(r"^\s*(?:function\b|const \w+ = require\(|module\.exports|var \w+ = |"
                              r"export (?:default|function|const))|=>")),
    ("c", re.compile(r"^\s*(?:#include\b|#define\b|typedef\b|static \w+ \**\w+\(|\w+ \**\w+\(.*\)\s*$)")),
)
_LATEX_START = re.compile(r"^[ \t]*\\(?:documentclass|begin\{document\})", re.MULTILINE)
_MARKDOWN = re.compile(r"^#{1,6} |^```|^\s*[-*] ", re.MULTILINE)
_TAG = re.compile(r"<(?:p|div|span|a|body|head|html|table|li|ul|script|meta|link)\b", re.IGNORECASE)


def _looks_like_log(sample: list[str]) -> bool:
    """Most lines carry a time or a level, or entries start with a timestamp and carry
    continuation lines (stack traces) between them."""
    hits = sum(1 for line in sample if _TIMESTAMP.match(line) or _LEVEL.search(line[:120])
               or _CLOCK.search(line[:120]))
    stamped = sum(1 for line in sample if _TIMESTAMP.match(line))
    return hits >= 0.6 * len(sample) or (bool(_TIMESTAMP.match(sample[0])) and stamped >= 3)


_WORD = re.compile(r"^[^\W\d_][\w'’-]*[,;:.!?)]?$")


def _prose(line: str) -> bool:
    """A line of running words (a verse ending in `;`, a sentence ending in `:`): not code."""
    words = line.split()
    return len(words) >= 6 and sum(1 for w in words if _WORD.match(w)) >= 0.85 * len(words)


def _code_language(sample: list[str]) -> tuple[bool, str | None]:
    """Whether the lines look like source code, and which language they look most like."""
    code = [line for line in sample if not _COMMENT.match(line)]
    if len(code) < 3:
        return False, None
    hits = sum(1 for line in code if _CODE_LINE.search(line) and not _prose(line))
    if hits < 0.3 * len(code):
        return False, None
    votes = {lang: sum(1 for line in code if pat.search(line)) for lang, pat in _LANGUAGE_HINTS}
    best = max(votes, key=votes.get)
    return True, best if votes[best] >= 2 else None


def sniff(head: str) -> StreamInfo:
    """The format of a text from its first characters."""
    t = head.lstrip("\ufeff\r\n")
    if not t.strip():
        return StreamInfo("text", "default")
    lines = [line for line in t.split("\n")[:400] if line.strip()]
    t = t.lstrip()
    complete = lines[:-1] if len(t) >= SNIFF_CHARS - 1 else lines
    sample = complete[:100] or lines[:100]
    if t[0] in "{[":
        try:
            json.loads(t)
            return StreamInfo("json", "content")
        except RecursionError:  # nested deeper than the parser goes: JSON all the same (its handler copes)
            return StreamInfo("json", "content")
        except ValueError:
            pass
        if complete and all(is_json_line(line) for line in complete[:50]):
            return StreamInfo("jsonl" if len(complete) > 1 else "json", "content")
        if len(sample) < 3 or not _looks_like_log(sample):
            if t[0] == "{" or len(t) >= SNIFF_CHARS - 1:  # longer than the head: parse it whole later
                return StreamInfo("json", "content")
    low = t[:1024].lower()
    if low.startswith(("<!doctype html", "<html", "<?xml")) or "<html" in low or (
            t[0] == "<" and len(_TAG.findall(t[:SNIFF_CHARS])) >= 8):
        return StreamInfo("html", "content")
    if _LATEX_START.search(t) or len(re.findall(r"\\[a-zA-Z]+[{\[]", t)) >= 8 and t.count("\\") > 0.005 * len(t) \
            and not _MARKDOWN.search(t):
        return StreamInfo("latex", "content")
    if t.startswith("#!"):
        first = t.split("\n", 1)[0]
        return StreamInfo("code", "content", "python" if "python" in first else "shell")
    if len(sample) >= 3:
        if _looks_like_log(sample):
            return StreamInfo("log", "content")
        body = [line for line in sample if not line.startswith("#")] or sample
        table = _table_dialect(body) if len(body) >= 3 else None
        if table:
            return StreamInfo(table, "content")
        fenced = sum(1 for line in sample if line.lstrip().startswith("```")) >= 2  # prose around fenced code
        is_code, language = _code_language(complete or lines)
        if is_code and not fenced:
            return StreamInfo("code", "content", language)
    if _MARKDOWN.search(t):
        return StreamInfo("markdown", "content")
    return StreamInfo("text", "default")


def is_json_line(line: str, objects_only: bool = False) -> bool:
    """Whether one line is a JSON value (`{...}` or `[...]`; only `{...}` with objects_only)."""
    s = line.strip()
    if not s.startswith("{" if objects_only else ("{", "[")):
        return False
    try:
        json.loads(s)
    except RecursionError:  # valid as far as the parser could go, only too deep for it
        return True
    except ValueError:
        return False
    return True


def _table_dialect(lines: list[str]) -> str | None:
    """csv or tsv when most lines split into the same number (> 1) of fields."""
    for delim, name in (("\t", "tsv"), (",", "csv"), (";", "csv"), ("|", "csv")):
        if sum(delim in line for line in lines) < 0.9 * len(lines):
            continue
        try:
            rows = list(csv.reader(lines, delimiter=delim))
        except csv.Error:
            continue
        if sum(1 for row in rows if row and not row[-1].strip()) > 0.5 * len(rows):
            continue  # the delimiter ends the lines (`SET x=1;`): statements, not fields
        counts = [len(row) for row in rows]
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
