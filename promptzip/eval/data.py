"""Evaluation datasets.

Shapes (JSONL, one object per line):
* QA: `context` (or `contexts[]`, joined by blank lines), `question`, `answers[]`; rows whose
  `answers` is empty (SQuAD 2.0 unanswerable) are skipped; `"style": "cot"` marks a row whose
  reader reasons step by step and ends with a number (GSM8K: the context is the worked examples,
  only they are compressed, and the answer is the final number);
* summarization: `document`, `summary`;
* prompts: `prompt`, `answer`;
* a `.txt` file is one document with no reference (ratio and structure only).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import InputError, UsageError

STYLES = ("span", "cot")


@dataclass
class EvalItem:
    id: str
    context: str
    question: str | None
    answers: list[str] = field(default_factory=list)
    kind: str = "qa"  # qa | summarization | prompt | document
    style: str = "span"  # qa: the reader answers with a span, or reasons to a number ("cot")


def _item(row: dict, line_no: int) -> EvalItem | None:
    rid = str(row.get("id", line_no))
    if "question" in row and ("context" in row or "contexts" in row):
        ctx = row.get("context")
        if ctx is None:
            ctx = "\n\n".join(c if isinstance(c, str) else c.get("text", "") for c in row["contexts"])
        answers = [a for a in row.get("answers") or [] if a and a.strip()]
        if not answers:
            return None
        style = row.get("style", "span")
        if style not in STYLES:
            raise UsageError(f"line {line_no}: unknown style {style!r}", f"Use one of {', '.join(STYLES)}.")
        return EvalItem(rid, ctx, row["question"], answers, "qa", style)
    if "document" in row and "summary" in row:
        return EvalItem(rid, row["document"], None, [row["summary"]], "summarization")
    if "prompt" in row and "answer" in row:
        return EvalItem(rid, row["prompt"], None, [str(row["answer"])], "prompt")
    raise UsageError(
        f"line {line_no}: unknown row shape (keys: {', '.join(sorted(row))})",
        "Expected context+question+answers, document+summary, or prompt+answer.",
    )


def load_items(path: Path, limit: int | None = None, max_chars: int | None = None) -> list[EvalItem]:
    """Usable rows of `path` (the first `limit`; rows whose context is longer than `max_chars`
    characters are skipped)."""
    if not path.is_file():
        raise InputError(f"{path} does not exist")
    if path.suffix == ".txt":
        return [EvalItem(path.stem, path.read_text(encoding="utf-8"), None, [], "document")]
    items: list[EvalItem] = []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except ValueError as exc:
                raise InputError(f"{path}:{n} is not valid JSON ({exc})") from None
            item = _item(row, n)
            if item is not None and (not max_chars or len(item.context) <= max_chars):
                items.append(item)
                if limit and len(items) >= limit:
                    break
    if not items:
        raise InputError(f"{path} holds no usable rows")
    return items
