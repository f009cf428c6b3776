"""Logs: whole entries grouped by template, repeats collapsed, errors and warnings first.

An entry is a line plus the indented lines after it (a stack trace stays with its message).
drain3 mines each entry's template from its first line, with numbers, hex ids, IPs, paths'
digits and timestamps masked first. Scores rank, in order: the first entry of each template
(every distinct kind of message is seen once before any repeat), errors, then warnings, rare
templates before frequent ones; repeats come last, spread evenly over the file. Kept entries are
written verbatim in file order; after the first kept entry of a template whose other entries
were left out, one marker line says how many and over which time span:
`  … ×41 more like this (2024-01-02T10:00:01 … 2024-01-02T11:59:58)`.
"""

from __future__ import annotations

import logging
import re
from collections import Counter

import numpy as np

from .base import FormatContext, FormatOutput, Handler, fit, greedy, relevance, spread_scores
from .detect import is_json_line
from .jsondoc import JsonHandler

_ERROR = re.compile(
    r"\b(?:ERROR|ERR|FATAL|CRIT|CRITICAL|SEVERE|EMERG|ALERT|PANIC|Exception|Traceback|error|failed|"
    r"failure|Failed|Failure)\b|\"level\"\s*:\s*(?:50|60|\"(?:error|fatal|critical)\")"
)
_WARN = re.compile(r"\b(?:WARN|WARNING|Warning|warn|warning|deprecated)\b|\"level\"\s*:\s*(?:40|\"warn(?:ing)?\")")
_TIME = re.compile(
    r"\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d(?:[.,]\d+)?(?:Z|[+-]\d\d:?\d\d)?"
    r"|\d\d/[A-Z][a-z]{2}/\d{4}:\d\d:\d\d:\d\d(?: [+-]\d{4})?"
    r"|\b[A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d\b"
    r"|\b\d{10}\.\d+\b"
)
_MASKS = (
    (r"\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d(?:[.,]\d+)?(?:Z|[+-]\d\d:?\d\d)?", "TIME"),
    (r"\b[A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d\b", "TIME"),
    (r"\d\d/[A-Z][a-z]{2}/\d{4}:\d\d:\d\d:\d\d(?: [+-]\d{4})?", "TIME"),
    (r"\b\d{1,3}(?:\.\d{1,3}){3}(?::\d+)?\b", "IP"),
    (r"\b0x[0-9a-fA-F]+\b|\b[0-9a-f]{8,}\b|\b[0-9a-fA-F-]{36}\b", "HEX"),
    (r"(?<![A-Za-z])[-+]?\d+(?:[.,]\d+)*", "NUM"),
)
_CONTINUATION = re.compile(r"^(?:[ \t]+\S|Caused by|\.\.\. \d+ more)")
MARKER = "  … ×{n} more like this{span}\n"


def entries(text: str) -> list[str]:
    """Lines with their continuation lines (indented, `Caused by`) joined to them."""
    out: list[str] = []
    for line in text.splitlines(keepends=True):
        if out and _CONTINUATION.match(line) and not out[-1].endswith("\n\n"):
            out[-1] += line
        else:
            out.append(line)
    return out


def _miner():
    try:
        from drain3 import TemplateMiner
        from drain3.masking import MaskingInstruction
        from drain3.template_miner_config import TemplateMinerConfig
    except ImportError:  # pragma: no cover - a core dependency
        return None
    logging.getLogger("drain3").setLevel(logging.WARNING)
    config = TemplateMinerConfig()
    config.masking_instructions = [MaskingInstruction(p, m) for p, m in _MASKS]
    config.drain_sim_th = 0.5
    config.parametrize_numeric_tokens = True
    config.profiling_enabled = False
    return TemplateMiner(config=config)


def templates(heads: list[str]) -> list[int]:
    """A template id per entry (drain3; a regex mask of the variable parts without it)."""
    miner = _miner()
    ids: list[int] = []
    if miner is not None:
        for h in heads:
            ids.append(int(miner.add_log_message(h.strip())["cluster_id"]) if h.strip() else 0)
        return ids
    seen: dict[str, int] = {}
    for h in heads:
        key = h
        for p, m in _MASKS:
            key = re.sub(p, m, key)
        ids.append(seen.setdefault(key, len(seen) + 1))
    return ids


class LogHandler(Handler):
    name = "log"

    def compress(self, text: str, ctx: FormatContext) -> FormatOutput:
        items = entries(text)
        n = len(items)
        if n and sum(is_json_line(e, objects_only=True) for e in items) >= 0.9 * n:
            # structured logging (one JSON object a line): keys kept, values thinned, per line
            lines = "".join(e for e in items if is_json_line(e, objects_only=True))
            out = JsonHandler(lines=True).compress(lines, ctx)
            out.details["summary"] = "JSON lines: " + str(out.details.get("summary", ""))
            out.handler = "log (json lines)"
            return out
        heads = [e.split("\n", 1)[0] for e in items]
        tid = templates(heads)
        counts = Counter(tid)
        level = np.array([2 if _ERROR.search(h) else 1 if _WARN.search(h) else 0 for h in heads])
        first = np.zeros(n, dtype=bool)
        seen: set[int] = set()
        for i, t in enumerate(tid):
            if t not in seen:
                seen.add(t)
                first[i] = True
        rarity = np.array([1.0 / (1.0 + np.log1p(counts[t])) for t in tid])
        spread = spread_scores(n) / max(1, n)  # in (-1, 0]: repeats evenly over the file
        scores = 4.0 * first + 1.5 * level + rarity + 0.5 * spread
        if ctx.query:
            scores = scores + 3.0 * relevance(items, ctx.query)
        blank = np.array([not e.strip() for e in items])
        scores[blank] = -10.0
        costs = np.asarray(ctx.counter.count_many(items), dtype=np.int64)
        times = [m.group() if (m := _TIME.search(h)) else None for h in heads]
        # the first entry of a repeated template carries its marker's cost (all others dropped)
        all_times: dict[int, list[str]] = {}
        for t, ts in zip(tid, times, strict=True):
            if ts:
                all_times.setdefault(t, []).append(ts)
        marker_cost = {t: ctx.count(MARKER.format(n=c - 1, span=_span(all_times.get(t, [])[1:])))
                       for t, c in counts.items() if c > 1}
        costs = costs + np.array([marker_cost.get(t, 0) if f else 0 for t, f in zip(tid, first.tolist(), strict=True)],
                                 dtype=np.int64)

        def render(budget: int) -> tuple[str, int, int]:
            return write(greedy(costs, scores, budget))

        def write(keep: np.ndarray) -> tuple[str, int, int]:
            kept_of: Counter = Counter(t for t, k in zip(tid, keep.tolist(), strict=True) if k)
            dropped_times: dict[int, list[str]] = {}
            for t, k, ts in zip(tid, keep.tolist(), times, strict=True):
                if not k and ts:
                    dropped_times.setdefault(t, []).append(ts)
            parts: list[str] = []
            marked: set[int] = set()
            markers = 0
            for i in np.flatnonzero(keep).tolist():
                entry = items[i]
                parts.append(entry if entry.endswith("\n") else entry + "\n")
                t = tid[i]
                left = counts[t] - kept_of[t]
                if left > 0 and t not in marked:
                    marked.add(t)
                    markers += 1
                    parts.append(MARKER.format(n=left, span=_span(dropped_times.get(t, []))))
            return "".join(parts), int(keep.sum()), markers

        if ctx.count(text) <= ctx.budget:
            return FormatOutput(text, "log", all_fits=True,
                                details={"entries_in": n, "entries_kept": n, "templates": len(counts)})
        out, _, b = fit(lambda b: render(b)[0], ctx)
        keep = greedy(costs, scores, b)
        keep = _swap_fill(keep, costs - np.where(first, [marker_cost.get(t, 0) for t in tid], 0),
                          ~first & (level < 2) & ~blank, lambda k: write(k)[0], ctx)
        out, kept, markers = write(keep)
        if not text.endswith("\n"):
            out = out.rstrip("\n")
        errors = {t for t, lv in zip(tid, level.tolist(), strict=True) if lv == 2}
        keep_t = {tid[i] for i in np.flatnonzero(keep).tolist()}
        details = {
            "entries_in": n, "entries_kept": kept, "templates": len(counts), "markers": markers,
            "error_templates": len(errors), "error_templates_kept": len(errors & keep_t),
            "items_in": n, "items_kept": kept,
            "summary": f"{kept} of {n} entries, {len(counts)} templates, {markers} collapsed",
        }
        return FormatOutput(out, "log", details=details)


def _span(times: list[str]) -> str:
    """` (first … last)` of the left-out entries' timestamps; the last without the date they
    share (`(2024-05-01T10:00:02Z … 10:00:08Z)`)."""
    if not times:
        return ""
    if len(times) == 1:
        return f" ({times[0]})"
    a, b = times[0], times[-1]
    # the shared date ends at a `T` or space after at least 6 characters (`Apr 28 `, `2024-05-01T`)
    cut = max((i + 1 for i, c in enumerate(a[:len(b)]) if c in "T " and i >= 6 and a[:i] == b[:i]), default=0)
    return f" ({a} … {b[cut:]})"


def _swap_fill(keep: np.ndarray, costs: np.ndarray, movable: np.ndarray, write, ctx: FormatContext,
               tries: int = 40) -> np.ndarray:
    """A log of a few long lines can land a whole line under its target: swap a kept repeat for
    a longer left-out one while the measured output still fits (the greedy fill is by score and
    leaves such gaps). First-of-template lines, errors and blank lines are never swapped out."""
    target = ctx.budget
    slack = max(1, int(0.01 * ctx.input_tokens))
    n = ctx.count(write(keep))
    for _ in range(tries):
        gap = target - n
        if gap <= slack:
            break
        dropped = np.flatnonzero(~keep & (costs > 0))
        out = np.flatnonzero(keep & movable)
        best = None
        for d in dropped[np.argsort(-costs[dropped])].tolist():
            room = gap + ctx.over
            extra = costs[d] - (costs[out] if len(out) else np.zeros(0))
            ok = np.flatnonzero((extra > 0) & (extra <= room)) if len(out) else np.zeros(0, dtype=int)
            adds = costs[d] <= room
            if adds or len(ok):
                trial = keep.copy()
                trial[d] = True
                if not adds:
                    trial[out[ok[np.argmax(extra[ok])]]] = False
                m = ctx.count(write(trial))
                if n < m and abs(m - target) < abs(n - target) and m <= target + ctx.over:
                    best = (trial, m)
                    break
        if best is None:
            break
        keep, n = best
    return keep
