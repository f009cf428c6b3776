"""JSON and JSON Lines: the output parses, keys and structure are kept, long arrays are thinned
with an explicit marker, long strings are compressed by the chosen method.

Design: the parsed document becomes a tree of nodes, each with its full cost and its minimum
cost in tokens of compact JSON (a string's minimum is a short head and `…`; an array's is its
first item's minimum and a marker; an object's is every key with its value's minimum). A budget
is spent top-down: a container that fits is written whole; one that does not keeps children in
priority order (array items: relevance to the query, else document order; object members:
document order) while their minimums fit, then shares what is left over their extras by
water-filling, so small values stay whole and long ones are thinned. Objects drop members (with
a `"…": "N more keys"` member) only when even their keys do not fit. The output is written
compactly (no indentation): whitespace costs tokens and carries nothing.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .base import FormatContext, FormatOutput, Handler, fit, relevance

MARKER = "…"
ITEM_SHARE = 0.5  # an array item is kept only with at least this share of its full cost
_MIN_STR = 6  # tokens a long string keeps at least (a head and the ellipsis)
_METHOD_STR = 24  # strings of at least this many tokens are compressed by the method (else cut)


@dataclass
class Node:
    kind: str  # obj, arr, str, lit
    value: Any = None  # scalars: the value; containers: None
    keys: list[str] = field(default_factory=list)
    key_costs: list[int] = field(default_factory=list)
    children: list[Node] = field(default_factory=list)
    full: int = 0
    minimum: int = 0  # every key kept, every value at its minimum
    floor: int = 0  # the thinnest valid rendering: a container keeps its first child and a marker


def _dump(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


class _Builder:
    """Parsed JSON -> nodes, with leaf costs counted once per distinct text."""

    def __init__(self, ctx: FormatContext) -> None:
        self.ctx = ctx
        self.cache: dict[str, int] = {}

    def cost(self, text: str) -> int:
        n = self.cache.get(text)
        if n is None:
            n = self.cache[text] = self.ctx.counter.count(text)
        return n

    def build(self, value: Any) -> Node:
        if isinstance(value, dict):
            node = Node("obj", keys=[str(k) for k in value])
            node.key_costs = [self.cost(_dump(k) + ":") for k in node.keys]
            node.children = [self.build(v) for v in value.values()]
            n = len(node.children)
            node.full = 2 + sum(node.key_costs) + sum(c.full for c in node.children) + max(0, n - 1)
            node.minimum = 2 + sum(node.key_costs) + sum(c.minimum for c in node.children) + max(0, n - 1)
            node.floor = 2 if not n else min(node.minimum, 2 + node.key_costs[0] + node.children[0].floor + 10)
            return node
        if isinstance(value, list):
            node = Node("arr", children=[self.build(v) for v in value])
            n = len(node.children)
            node.full = 2 + sum(c.full for c in node.children) + max(0, n - 1)
            node.minimum = 2 if not n else 2 + node.children[0].minimum + (8 if n > 1 else 0)
            node.minimum = min(node.minimum, node.full)
            node.floor = 2 if not n else min(node.full, 2 + node.children[0].floor + (8 if n > 1 else 0))
            return node
        text = _dump(value)
        full = self.cost(text) if len(text) < 4096 else self.ctx.counter.count(text)
        if isinstance(value, str):
            least = min(full, _MIN_STR) if full > 8 else full
            return Node("str", value, full=full, minimum=least, floor=least)
        return Node("lit", value, full=full, minimum=full, floor=full)


def _water_fill(extras: list[int], budget: int) -> list[int]:
    """Share `budget` over items wanting `extras`: each gets min(extra, L) for the largest level L
    that fits."""
    if budget <= 0 or not extras:
        return [0] * len(extras)
    if sum(extras) <= budget:
        return list(extras)
    order = sorted(range(len(extras)), key=lambda i: extras[i])
    out = [0] * len(extras)
    left, rest = budget, len(extras)
    for i in order:
        share = left // rest if rest else 0
        give = min(extras[i], share)
        out[i] = give
        left -= give
        rest -= 1
    return out


class _Renderer:
    def __init__(self, ctx: FormatContext, final: bool) -> None:
        self.ctx = ctx
        self.final = final
        self.thinned = 0  # arrays and objects that lost items
        self.left_out = 0  # items and members left out
        self.shortened = 0  # strings compressed or cut

    def render(self, node: Node, budget: int) -> Any:
        if node.kind == "lit":
            return node.value
        if node.kind == "str":
            return self._string(node, budget)
        if budget >= node.full:
            return self._whole(node)
        if node.kind == "arr":
            return self._array(node, budget)
        return self._object(node, budget)

    def _whole(self, node: Node) -> Any:
        if node.kind == "arr":
            return [self._whole(c) for c in node.children]
        if node.kind == "obj":
            return {k: self._whole(c) for k, c in zip(node.keys, node.children, strict=True)}
        return node.value

    def _string(self, node: Node, budget: int) -> str:
        s = node.value
        if budget >= node.full:
            return s
        self.shortened += 1
        room = max(1, budget - 2)  # the quotes
        if self.final and node.full >= _METHOD_STR and " " in s and room >= 4:
            out = self.ctx.text(s, room)
            if out.strip():
                return out
        keep = max(1, int(len(s) * room / max(1, node.full - 2)) - 1)
        return s[:keep].rstrip() + MARKER

    def _array(self, node: Node, budget: int) -> list:
        items = node.children
        n = len(items)
        marker_cost = 8
        kept: list[int] = []
        used = 2
        for i in self.priority(node):
            # an item is kept with every key and at least ITEM_SHARE of its cost, or not at all
            need = max(items[i].minimum, int(ITEM_SHARE * items[i].full)) + 1
            reserve = marker_cost if len(kept) + 1 < n else 0
            if used + need + reserve > budget and kept:
                continue  # a smaller item further on may still fit
            kept.append(i)
            used += need
        kept.sort()
        dropped = n - len(kept)
        room = budget - 2 - (marker_cost if dropped else 0) - len(kept)
        spare = room - sum(items[i].minimum for i in kept)
        if spare >= 0:
            extras = _water_fill([items[i].full - items[i].minimum for i in kept], spare)
            out = [self.render(items[i], items[i].minimum + e) for i, e in zip(kept, extras, strict=True)]
        else:  # one item larger than the whole budget: it thins itself
            out = [self.render(items[i], max(items[i].floor, room // len(kept))) for i in kept]
        if dropped:
            self.thinned += 1
            self.left_out += dropped
            out.append(f"{MARKER} {dropped} more item{'s' if dropped > 1 else ''}")
        return out

    def _object(self, node: Node, budget: int) -> dict:
        kids = node.children
        if node.minimum <= budget:  # every key, values at their minimum or more
            kept = list(range(len(kids)))
            extras = _water_fill([kids[i].full - kids[i].minimum for i in kept], budget - node.minimum)
            return {node.keys[i]: self.render(kids[i], kids[i].minimum + e)
                    for i, e in zip(kept, extras, strict=True)}
        marker_cost = 10
        floors = [kc + c.floor + 1 for kc, c in zip(node.key_costs, kids, strict=True)]
        kept, used = [], 2 + marker_cost
        for i in self.priority(node):
            if used + floors[i] > budget and kept:
                continue
            kept.append(i)
            used += floors[i]
        kept.sort()
        dropped = len(kids) - len(kept)
        base = 2 + sum(floors[i] for i in kept) + (marker_cost if dropped else 0)
        values = self._fill(kids, kept, budget - base)
        out = {node.keys[i]: v for i, v in zip(kept, values, strict=True)}
        if dropped:
            self.thinned += 1
            self.left_out += dropped
            out[MARKER] = f"{dropped} more key{'s' if dropped > 1 else ''}"
        return out

    def _fill(self, kids: list[Node], kept: list[int], spare: int) -> list:
        """The kept children rendered from their floors up, sharing `spare` tokens."""
        extras = _water_fill([kids[i].full - kids[i].floor for i in kept], spare)
        return [self.render(kids[i], kids[i].floor + e) for i, e in zip(kept, extras, strict=True)]

    def priority(self, node: Node) -> list[int]:
        n = len(node.children)
        if not self.ctx.query or n < 2:
            return list(range(n))
        texts = [_dump(self._whole(c))[:8000] for c in node.children]
        if node.kind == "obj":
            texts = [k + " " + t for k, t in zip(node.keys, texts, strict=True)]
        rel = relevance(texts, self.ctx.query)
        return [int(i) for i in np.lexsort((np.arange(n), -rel))]


def _keys(value: Any, out: set[str]) -> set[str]:
    if isinstance(value, dict):
        for k, v in value.items():
            if k != MARKER:
                out.add(k)
            _keys(v, out)
    elif isinstance(value, list):
        for v in value:
            _keys(v, out)
    return out


class JsonHandler(Handler):
    name = "json"
    extensions = (".json", ".jsonl")

    def __init__(self, lines: bool = False) -> None:
        self.lines = lines

    def compress(self, text: str, ctx: FormatContext) -> FormatOutput:
        try:
            return self._compress(text, ctx)
        except RecursionError:  # valid, but nested deeper than Python's parser and our walk can go
            ctx.warn(f"the {'JSON Lines' if self.lines else 'JSON'} input is nested too deeply to walk its "
                     "structure; compressed as plain text")
            return FormatOutput(ctx.text(text, ctx.budget), "text")

    def _compress(self, text: str, ctx: FormatContext) -> FormatOutput:
        try:
            value = self._parse(text)
        except ValueError as exc:
            ctx.warn(f"the input is not valid {'JSON Lines' if self.lines else 'JSON'} ({exc}); "
                     "compressed as plain text")
            return FormatOutput(ctx.text(text, ctx.budget), "text")
        root = _Builder(ctx).build(value)
        keys_in = _keys(value, set())

        def dump(v: Any) -> str:
            if self.lines:
                return "\n".join(_dump(r) for r in v)
            return _dump(v)

        def render(budget: int, final: bool = False) -> tuple[str, _Renderer]:
            r = _Renderer(ctx, final)
            if self.lines:
                # one line a record: the array's brackets and commas become newlines
                v = r.render(root, budget + 2)
            else:
                v = r.render(root, budget)
            return dump(v), r

        full_text = dump(value)
        whole_cost = ctx.count(full_text)
        details: dict[str, Any] = {"keys_in": len(keys_in)}
        if whole_cost <= ctx.budget:
            details.update(keys_kept=len(keys_in), items_left_out=0, strings_shortened=0,
                           summary="whole document, compact")
            return FormatOutput(full_text, "json", all_fits=True, details=details)
        _, _, budget = fit(lambda b: render(b)[0], ctx)
        out, r = render(budget, final=True)
        if ctx.count(out) > ctx.budget + ctx.over:  # the method's strings cost more than estimated
            out, r = render(max(0, budget - (ctx.count(out) - ctx.budget)), final=True)
        kept_value = self._parse(out)
        kept_keys = _keys(kept_value, set())
        details.update(keys_kept=len(kept_keys & keys_in), items_left_out=r.left_out,
                       containers_thinned=r.thinned, strings_shortened=r.shortened,
                       summary=f"keys {len(kept_keys & keys_in)}/{len(keys_in)}, "
                               f"{r.left_out} items left out, {r.shortened} strings shortened")
        return FormatOutput(out, "json", details=details)

    def _parse(self, text: str) -> Any:
        if not self.lines:
            return json.loads(text)
        records = []
        for n, line in enumerate(text.splitlines(), 1):
            if line.strip():
                try:
                    records.append(json.loads(line))
                except ValueError as exc:
                    raise ValueError(f"line {n}: {exc}") from None
        return records
