"""Semantic chunks for rewriters: runs of consecutive units (sentences, list lines, blocks)
that talk about one thing, each within a token bound.

Every prose unit is embedded (MiniLM, ONNX); a chunk ends where the similarity between
neighbouring units drops below a low percentile of the document's neighbour similarities, or
where the next unit would push it past `max_tokens`. Then outliers are repaired: a chunk under
`min_tokens` joins the neighbour it is more similar to when the two fit together; a single unit
over `max_tokens` is split at word boundaries (never inside a protected span: `word_pieces`
treats each span as one word). Blocks (code, tables, JSON, headings) are chunks of their own
and are never rewritten; their text reaches the output by extraction, which keeps them whole.

Chunks are unit index ranges plus, for split units, the text piece; the caller keeps the
input's own separators between chunks.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from .segment import Kind, word_pieces

PROSE = (Kind.SENTENCE, Kind.LINE)


@dataclass
class Chunk:
    units: range  # unit indices
    text: str  # the units' text joined by their separators (or a piece of one long unit)
    tokens: int
    prose: bool  # False for blocks: copied or extracted, never rewritten


def chunk_units(texts: Sequence[str], seps: Sequence[str], kinds: Sequence[int], tokens: Sequence[int],
                embed: Callable[[list[str]], np.ndarray] | None, count: Callable[[str], int],
                max_tokens: int = 160, min_tokens: int = 24, percentile: float = 25.0) -> list[Chunk]:
    """Chunks of units `texts` (with the separator before each, its kind and token count)."""
    n = len(texts)
    if n == 0:
        return []
    prose = [k in PROSE for k in kinds]
    sims = np.ones(max(n - 1, 0))
    idx = [i for i in range(n) if prose[i]]
    if embed is not None and len(idx) > 1:
        got = embed([texts[i] for i in idx])
        vecs = np.zeros((n, got.shape[1]), dtype=np.float32)
        vecs[idx] = got
        sims = np.einsum("ij,ij->i", vecs[:-1], vecs[1:])
    pair = [prose[i] and prose[i + 1] for i in range(n - 1)]
    cut_at = float(np.percentile(sims[pair], percentile)) if any(pair) else -1.0

    groups: list[list[int]] = []
    for i in range(n):
        if not prose[i]:
            groups.append([i])
            continue
        cur = groups[-1] if groups and prose[groups[-1][-1]] else None
        if cur is not None:
            size = sum(tokens[j] for j in cur)
            topic_break = sims[i - 1] < cut_at and size >= min_tokens
            if size + tokens[i] <= max_tokens and not topic_break:
                cur.append(i)
                continue
        groups.append([i])
    groups = _merge_small(groups, prose, tokens, sims, min_tokens, max_tokens)

    chunks = []
    for g in groups:
        text = texts[g[0]] + "".join(seps[j] + texts[j] for j in g[1:])
        size = sum(tokens[j] for j in g)
        if prose[g[0]] and len(g) == 1 and size > max_tokens:
            chunks.extend(Chunk(range(g[0], g[0] + 1), piece, count(piece), True)
                          for piece in split_long(text, max_tokens, count))
        else:
            chunks.append(Chunk(range(g[0], g[-1] + 1), text, size, prose[g[0]]))
    return chunks


def _merge_small(groups: list[list[int]], prose: Sequence[bool], tokens: Sequence[int], sims: np.ndarray,
                 min_tokens: int, max_tokens: int) -> list[list[int]]:
    """Join each prose group under `min_tokens` to its more similar prose neighbour that fits."""
    changed = True
    while changed:
        changed = False
        for k, g in enumerate(groups):
            size = sum(tokens[j] for j in g)
            if not prose[g[0]] or size >= min_tokens:
                continue
            options = []
            for other in (k - 1, k + 1):
                if 0 <= other < len(groups) and prose[groups[other][0]]:
                    both = size + sum(tokens[j] for j in groups[other])
                    if both <= max_tokens:
                        edge = g[0] - 1 if other < k else g[-1]
                        options.append((float(sims[edge]), other))
            if options:
                _, other = max(options)
                lo, hi = min(k, other), max(k, other)
                groups[lo:hi + 1] = [groups[lo] + groups[hi]]
                changed = True
                break
    return groups


def split_long(text: str, max_tokens: int, count: Callable[[str], int]) -> list[str]:
    """Cut one long unit into pieces of at most about `max_tokens`, at word boundaries that do
    not fall inside a protected span; pieces keep their trailing whitespace so that joined
    back they give `text`."""

    pieces = word_pieces(text)
    out, start, used = [], 0, 0
    for k, (s, e) in enumerate(pieces):
        n = count(text[s:e]) + 1
        if used + n > max_tokens and used > 0:
            out.append(text[start:s])
            start, used = s, 0
        used += n
        if k == len(pieces) - 1:
            out.append(text[start:])
    return out or [text]
