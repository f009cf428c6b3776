"""What the proxy compresses in a chat request, and how.

A `Policy` is set per server (flags, or a TOML file of the same keys) and can be overridden
per request, by `x-promptzip-KEY: VALUE` headers or by a `promptzip` object in the JSON body
(`{"promptzip": {"ratio": 0.3}}`; stripped before the request goes upstream). Keys: the
fields of `Policy` with dashes or underscores; unknown keys and bad values are the client's
error (HTTP 400), never silently ignored.

Default: long `user` and `tool` messages are compressed by `extract` to half their tokens;
system (and developer) messages pass as they are. The last user turn holds the question that
query-aware methods keep answers to. Most RAG applications send the retrieved context and the
question together in that one turn (LangChain's and LlamaIndex's default QA prompts do), so a
long last user turn is split (`split_question`): its question, and the template's own lines
around the context, pass verbatim; the context between them is compressed with the question as
the query. A turn with no recognisable question passes untouched (`split_last_user = false`
passes every last user turn untouched). Messages under `min_tokens` pass untouched. A
`target_tokens` budget is shared among the compressed messages in proportion to their size.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import tomllib

from ..compressors import get_method
from ..errors import UsageError

ON_ERROR = ("forward", "fail")


@dataclass(frozen=True)
class Policy:
    method: str = "extract"
    ratio: float | None = 0.5
    target_tokens: int | None = None  # for all compressed messages together (instead of ratio)
    roles: tuple[str, ...] = ("user", "tool")
    min_tokens: int = 200  # shorter messages pass untouched
    keep_last_user: bool = True  # the last user turn's question is never compressed
    split_last_user: bool = True  # ... but the context around it in a long last user turn is
    query: bool = True  # the last user turn is the query of query-aware methods
    force: tuple[str, ...] = ()  # strings kept verbatim wherever they occur
    tokenizer: str = "cl100k_base"
    on_error: str = "forward"  # a compression failure forwards the original ("fail": HTTP 500)
    enabled: bool = True  # false: the request passes untouched

    def check(self) -> Policy:
        get_method(self.method)  # unknown names list the known ones
        if self.ratio is not None and (math.isnan(self.ratio) or not 0 < self.ratio <= 1):
            raise UsageError(f"ratio must be in (0, 1], got {self.ratio}")
        if self.target_tokens is not None and self.target_tokens < 1:
            raise UsageError(f"target_tokens must be at least 1, got {self.target_tokens}")
        if self.min_tokens < 0:
            raise UsageError(f"min_tokens must be >= 0, got {self.min_tokens}")
        if self.on_error not in ON_ERROR:
            raise UsageError(f"on_error must be one of {', '.join(ON_ERROR)}, got {self.on_error!r}")
        bad = [r for r in self.roles if r not in ("user", "tool", "assistant", "system", "developer", "function")]
        if bad:
            raise UsageError(f"unknown roles: {', '.join(bad)}")
        return self

    def with_overrides(self, overrides: Mapping[str, Any]) -> Policy:
        """A copy with `overrides` (names with `-` or `_`; values as JSON types or header
        strings) applied and checked."""
        known = {f.name: f for f in fields(self)}
        changes: dict[str, Any] = {}
        for raw, value in overrides.items():
            name = raw.replace("-", "_").lower()
            if name not in known:
                raise UsageError(f"unknown promptzip setting {raw!r}", f"Known: {', '.join(known)}.")
            changes[name] = _coerce(name, value)
        if "target_tokens" in changes and changes["target_tokens"] is not None and "ratio" not in changes:
            changes["ratio"] = None  # a budget replaces the server's ratio
        if "ratio" in changes and changes["ratio"] is not None and "target_tokens" not in changes:
            changes["target_tokens"] = None
        policy = replace(self, **changes)
        if policy.ratio is not None and policy.target_tokens is not None:
            raise UsageError("ratio and target_tokens are exclusive", "Give one of them.")
        return policy.check()


def _coerce(name: str, value: Any) -> Any:
    """A setting from JSON or from a header string."""
    try:
        if name in ("ratio",):
            return None if value in (None, "", "none") else float(value)
        if name in ("target_tokens", "min_tokens"):
            if value in (None, "", "none"):
                return None if name == "target_tokens" else 0
            if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                raise ValueError(value)
            return int(value)
        if name in ("keep_last_user", "split_last_user", "query", "enabled"):
            if isinstance(value, bool):
                return value
            text = str(value).strip().lower()
            if text in ("1", "true", "yes", "on"):
                return True
            if text in ("0", "false", "no", "off"):
                return False
            raise ValueError(value)
        if name in ("roles", "force"):
            items = value if isinstance(value, list) else str(value).split(",")
            return tuple(str(x).strip() for x in items if str(x).strip())
        if not isinstance(value, str):
            raise ValueError(value)
        return value.strip()
    except (TypeError, ValueError):
        raise UsageError(f"bad value for promptzip setting {name}: {value!r}") from None


def load_policy(path: Path | None, **flags: Any) -> Policy:
    """The server's policy: defaults < TOML file < flags that were given (not None)."""
    base = Policy()
    if path is not None:
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise UsageError(f"cannot read the policy file {path}: {exc}") from None
        base = base.with_overrides(data.get("serve", data))
    given = {k: v for k, v in flags.items() if v is not None}
    return base.with_overrides(given) if given else base.check()


# -- messages ---------------------------------------------------------------------------------
@dataclass
class Plan:
    """Which text pieces of a request to compress: (message index, part index or None, text)."""

    pieces: list[tuple[int, int | None, str]] = field(default_factory=list)
    query: str | None = None
    # (message, part) -> (text before, text after) the piece: the verbatim frame of a split last user turn
    frames: dict[tuple[int, int | None], tuple[str, str]] = field(default_factory=dict)


def message_texts(message: Mapping) -> list[tuple[int | None, str]]:
    """The text of a message: its string content, or each text part of a content list."""
    content = message.get("content")
    if isinstance(content, str):
        return [(None, content)]
    if isinstance(content, list):
        return [(i, p["text"]) for i, p in enumerate(content)
                if isinstance(p, Mapping) and p.get("type") == "text" and isinstance(p.get("text"), str)]
    return []


def plan(messages: list, policy: Policy, count) -> Plan:
    """What to compress in `messages` under `policy` (`count`: text -> tokens)."""
    if not isinstance(messages, list) or not all(isinstance(m, Mapping) for m in messages):
        raise UsageError("messages must be a list of objects")
    users = [i for i, m in enumerate(messages) if m.get("role") == "user"]
    last_user = users[-1] if users else None
    out = Plan()
    split = None
    if last_user is not None:
        texts = message_texts(messages[last_user])
        if policy.enabled and policy.keep_last_user and policy.split_last_user and "user" in policy.roles:
            split = _split_last(texts, count, policy.min_tokens)
        if policy.query:
            out.query = split[0] if split else " ".join(t for _, t in texts).strip() or None
    if not policy.enabled:
        return out
    for i, m in enumerate(messages):
        if m.get("role") not in policy.roles:  # system and developer messages only when listed
            continue
        if i == last_user and policy.keep_last_user:
            for part, before, context, after in split[1] if split else ():
                out.pieces.append((i, part, context))
                out.frames[(i, part)] = (before, after)
            continue
        for part, text in message_texts(m):
            if text.strip() and count(text) >= max(policy.min_tokens, 1):
                out.pieces.append((i, part, text))
    return out


# -- the question inside a long last user turn ---------------------------------------------------
QUESTION_TOKENS = 100  # a question without a marker: the last paragraph (or text part) up to this long
FRAME_TOKENS = 60  # a template's own paragraph around the context: at most this long
_QUESTION = re.compile(r"^[ \t]*(?:question|query|q|user question|user query)[ \t]*[:：][ \t]*(.*)$", re.I | re.M)
FRAME_CHARS = 400  # the template's lines that open the context are looked for this near its start
_CONTEXT = re.compile(r"^[ \t]*(?:context|retrieved context|context information)[ \t]*[:：][ \t]*", re.I | re.M)
_RULE = re.compile(r"^[ \t]*[-=_*~#]{3,}[ \t]*\n?", re.M)
_ANSWER = re.compile(r"^[ \t]*(?:helpful answer|answer|response)[ \t]*[:：]", re.I | re.M)
_PARAGRAPH = re.compile(r"\S(?:.|\n(?![ \t]*\n))*", re.M)


def split_question(text: str, count: Callable[[str], int]) -> tuple[str, int, int] | None:
    """(the question, start, end of its verbatim span) in a user turn: the last line that starts
    with a marker (`Question:`, `Query:`, `Q:`; the question is the rest of the line, or the next
    line when that is empty), else the last paragraph when it is at most QUESTION_TOKENS long and
    not the only one. None when the turn has no recognisable question."""
    marks = list(_QUESTION.finditer(text))
    if marks:
        m = marks[-1]
        q, end = m.group(1).strip(), m.end()
        if not q:  # `Question:` alone on its line: the question is on the next one
            nxt = re.compile(r"\n[ \t]*(\S[^\n]*)").match(text, m.end())
            if nxt:
                q, end = nxt.group(1).strip(), nxt.end()
        return (q, m.start(), end) if q else None
    paragraphs = list(_PARAGRAPH.finditer(text))
    if len(paragraphs) > 1 and count(paragraphs[-1].group()) <= QUESTION_TOKENS:
        return paragraphs[-1].group().strip(), paragraphs[-1].start(), paragraphs[-1].end()
    return None


def _context_span(text: str, lo: int, hi: int, count: Callable[[str], int], before_question: bool) -> tuple[int, int]:
    """Where the context lies in text[lo:hi], one side of the question. The template's own lines
    are looked for near the side's start (its first FRAME_CHARS characters): a `Context:` marker
    (the context follows it), or a rule line (`-----`; the context runs to the side's last rule
    line). Without them: the side less a short first paragraph (instructions). After the
    question, an `Answer:` cue ends the context."""
    side = text[lo:hi]
    marker = _CONTEXT.search(side, 0, min(len(side), FRAME_CHARS))
    rules = list(_RULE.finditer(side))
    start, end = 0, len(side)
    if marker:
        start = marker.end()
    elif rules and rules[0].start() < FRAME_CHARS:
        start = rules[0].end()
        if len(rules) > 1:
            end = rules[-1].start()
    else:
        paragraphs = list(_PARAGRAPH.finditer(side))
        if len(paragraphs) >= 3 and count(paragraphs[0].group()) <= FRAME_TOKENS:
            start = paragraphs[1].start()
    if not before_question:
        cue = list(_ANSWER.finditer(side, start, end))
        if cue:
            end = cue[-1].start()
    return lo + start, lo + max(start, end)


def _split_last(texts: list[tuple[int | None, str]], count: Callable[[str], int],
                min_tokens: int) -> tuple[str, list[tuple[int | None, str, str, str]]] | None:
    """(question, [(part, before, context, after)]) for a last user turn long enough to compress, or
    None. A content array whose last text part is short: that part is the question, the earlier
    long parts are context (compressed whole)."""
    long_enough = max(min_tokens, 1)
    if len(texts) > 1 and count(texts[-1][1]) <= QUESTION_TOKENS:
        parts = [(p, "", t, "") for p, t in texts[:-1] if t.strip() and count(t) >= long_enough]
        return (texts[-1][1].strip(), parts) if parts else None
    out, question = [], None
    for part, text in texts:
        if not text.strip() or count(text) < long_enough:
            continue
        found = split_question(text, count)
        if found is None:
            continue
        question, q_start, q_end = found
        before, after = count(text[:q_start]), count(text[q_end:])
        if before >= after:
            lo, hi = _context_span(text, 0, q_start, count, True)
        else:
            lo, hi = _context_span(text, q_end, len(text), count, False)
        if count(text[lo:hi]) >= long_enough:
            out.append((part, text[:lo], text[lo:hi], text[hi:]))
    return (question, out) if out and question else None


def apply(messages: list, replaced: Mapping[tuple[int, int | None], str]) -> list:
    """`messages` with the given pieces' text replaced (the originals are not changed)."""
    out = []
    for i, m in enumerate(messages):
        if not any(k[0] == i for k in replaced):
            out.append(m)
            continue
        m = dict(m)
        if (i, None) in replaced:
            m["content"] = replaced[(i, None)]
        else:
            m["content"] = [({**p, "text": replaced[(i, j)]} if (i, j) in replaced else p)
                            for j, p in enumerate(m["content"])]
        out.append(m)
    return out
