"""`lexical`: sentence selection by lexical scores, kept in original order within the budget.

With `--query`, each unit is scored by BM25 against the query (document = unit, collection =
the document's units), plus a small centrality term that breaks ties among units that share no
word with the query. Without a query, the score is centrality: the cosine between a unit's
TF-IDF vector and the document's TF-IDF centroid (units that talk about what the whole document
talks about). Statistics come from a scan of the whole document, so one budget covers it all.

Selection is greedy by score with skip-and-continue (a unit that no longer fits is passed over
for smaller ones); what is left of the budget then goes to the first words of the best dropped
sentence, so even a text of three sentences lands near its budget. Headings and units holding
`--force` strings are always kept.
"""

from __future__ import annotations

import math
from collections import Counter

import numpy as np

from ..context import Context
from ..nospace import words_and_bigrams
from ..segment import FORCED, STRUCTURE, Unit
from ..select import best_partial, select_by_score
from .base import Compressor, Param

STOPWORDS = frozenset(
    """a an the and or but if then else of to in on at by for with from as into onto over under
    is are was were be been being am do does did done have has had having it its it's this that
    these those there here which who whom whose what when where why how not no nor so than too
    very can could would should will shall may might must i me my we us our you your he him his
    she her they them their also just only about after before again all any both each few more
    most other some such own same s t d ll re ve m o y up down out off once further""".split()
)
_MAX_VOCAB = 2_000_000
_SHORT_UNIT = 6  # content words below which centrality is damped


def fold(word: str) -> str | None:
    """A lower-cased word as a term: None for stopwords, light plural fold ('models' -> 'model')."""
    if word in STOPWORDS:
        return None
    if len(word) > 3 and word.endswith("s") and not word.endswith("ss"):
        return word[:-1]
    return word


class Terms:
    """Text -> content terms, memoizing the per-word fold (bounded)."""

    def __init__(self, limit: int = 500_000) -> None:
        self._memo: dict[str, str | None] = {}
        self._limit = limit

    def __call__(self, text: str) -> list[str]:
        memo = self._memo
        out = []
        for w in words_and_bigrams(text.lower()):
            t = memo.get(w, "")
            if t == "":
                if len(memo) >= self._limit:
                    memo.clear()
                t = memo[w] = fold(w)
            if t:
                out.append(t)
        return out


class Lexical(Compressor):
    name = "lexical"
    refits = True  # 2: --ratio refitted on the measured output
    version = "2"
    description = "Sentence selection: BM25 against --query, or TF-IDF centrality without one."
    query_aware = True
    params = (
        Param("k1", float, 1.2, "BM25 term-frequency saturation", bounds=(0, None)),
        Param("b", float, 0.75, "BM25 length normalization", bounds=(0, 1)),
        Param("keep_headings", int, 1, "1: always keep Markdown headings; 0: score them", (0, 1)),
    )

    def __init__(self, **params) -> None:
        super().__init__(**params)
        self._df: Counter[str] = Counter()  # units containing the term
        self._tf: Counter[str] = Counter()  # occurrences in the document
        self._units = 0
        self._length = 0
        self._terms = Terms()

    def observe(self, unit: Unit) -> None:
        words = self._terms(unit.text)
        self._units += 1
        self._length += len(words)
        self._tf.update(words)
        self._df.update(set(words))
        if len(self._df) > _MAX_VOCAB:  # bound memory: forget the rarest terms
            for w in [w for w, c in self._df.items() if c <= 1]:
                del self._df[w]
                self._tf.pop(w, None)

    def compress(self, ctx: Context) -> None:
        n = self._units
        idf = {w: math.log(1.0 + (n - df + 0.5) / (df + 0.5)) for w, df in self._df.items()}
        # centroid of the document's TF-IDF vectors, folded with the unit's idf weight
        toward = {w: self._tf[w] * v * v for w, v in idf.items()}
        centroid_norm = math.sqrt(sum((self._tf[w] * v) ** 2 for w, v in idf.items())) or 1.0
        unseen = math.log(1.0 + (n + 0.5) / 0.5)
        query = Counter(self._terms(ctx.request.query or ""))
        avg_len = self._length / max(n, 1)
        k1, b = self.settings["k1"], self.settings["b"]
        scores = np.zeros(len(ctx.table), dtype=np.float64)
        terms = self._terms
        for i, text in enumerate(ctx.unit_texts()):
            words = terms(text)
            if not words:
                continue
            counts = Counter(words)
            dot = 0.0
            norm = 0.0
            for w, c in counts.items():
                dot += c * toward.get(w, 0.0)
                weight = c * idf.get(w, unseen)
                norm += weight * weight
            centrality = dot / (math.sqrt(norm) * centroid_norm)
            # a cosine is length-blind: damp units of a few words (speaker labels, captions)
            centrality *= min(1.0, len(words) / _SHORT_UNIT) ** 0.5
            if query:
                bm25 = 0.0
                denom_len = k1 * (1 - b + b * len(words) / avg_len)
                for q in query:
                    f = counts.get(q, 0)
                    if f:
                        bm25 += idf.get(q, unseen) * f * (k1 + 1) / (f + denom_len)
                scores[i] = bm25 + 0.1 * centrality
            else:
                scores[i] = centrality
        must = (ctx.table.flags & FORCED) > 0
        if self.settings["keep_headings"]:
            must |= (ctx.table.flags & STRUCTURE) > 0
        keep = select_by_score(ctx.table.tokens, scores, ctx.budget, must)
        ctx.emit(keep, best_partial(ctx.table, keep, scores, ctx.budget))
