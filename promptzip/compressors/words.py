"""The word view of a document shared by word-level methods (`selfinfo`, `extract`).

Every unit a word-level method may thin (sentences, lines) contributes its words; a block
(code, table, JSON, heading) is one item that is kept or dropped whole. Each item knows
whether it must be kept: protected spans (numbers, inline code, URLs, e-mail), list markers,
structural lines, units holding `--force` strings, and the scaffolding of few-shot prompts:
a leading label (`Question:`, `Q:`, `A:`), answer lines (`The answer is ...`, `#### 42`) and
short lines that recur verbatim (`Let's think step by step`, `-----`), kept whole.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from ..context import WORD_KINDS, Context
from ..nospace import NOSPACE_SCRIPT as _NOSPACE_SCRIPT
from ..segment import (
    FORCED,
    GAP_TEXT,
    STRUCTURE,
    Gap,
    Kind,
    protected_besides_numbers,
    word_pieces_flagged,
)
from ..select import select_by_score
from .lexical import STOPWORDS


@dataclass
class Words:
    text: str  # the document as a model reads it: units joined by their separators
    words: list[str]
    spans: np.ndarray  # (n, 2) character span of each word in `text`
    local: np.ndarray  # (n, 2) the same span inside the word's unit (`Context.emit_words` pieces)
    must: np.ndarray  # bool per word
    forced: np.ndarray  # bool per word: in a unit holding a --force string (never dropped)
    unit_of: np.ndarray  # unit index per word
    word_start: np.ndarray  # first word of each unit, plus the end
    block: np.ndarray  # bool per word: the item is a whole block
    number: np.ndarray  # bool per word: must be kept only because it holds a number
    shown: list[str] | None = None  # what each word writes when it differs from `words` (trimmed)
    blank: np.ndarray | None = None  # bool per word: trimmed to nothing, so never kept
    follows: np.ndarray | None = None  # per word: punctuation alone written with the word before (-1) or after (+1) it

    @cached_property
    def giants(self) -> list[tuple[int, int]]:
        """`giant_words` of this document, found once (trimming and selection both read them)."""
        return giant_words(self)

    def score_numbers(self) -> None:
        """Let numbers compete for the budget by score like other words (still kept or dropped
        whole): for query-aware compression, where the question says which numbers matter."""
        self.must = self.must & ~self.number

    def costs(self, ctx: Context) -> np.ndarray:
        """Target-tokenizer cost of each item: a word counted with its leading space, a block
        its whole unit."""
        words = self.words if self.shown is None else self.shown
        distinct = list(dict.fromkeys(words))  # a document repeats its words: count each once
        count = dict(zip(distinct, ctx.counter.count_many([" " + w for w in distinct]), strict=True))
        costs = np.fromiter((count[w] for w in words), dtype=np.int64, count=len(words))
        costs[self.block] = ctx.table.tokens[self.unit_of[self.block]]
        return costs

    def glue_punctuation(self) -> np.ndarray:
        """Punctuation alone, touching a word of its unit (Chinese and Japanese text: `，` `。` `「`),
        is kept with that word rather than chosen for itself: an opening mark with the word after
        it, any other with the word before. Sets `follows`; returns the mask of such words. (With
        spaces between words a mark is part of its word, as in `(Norman:`, and this never applies.)"""
        n = len(self.words)
        follows = np.zeros(n, dtype=np.int8)
        sp, unit = self.spans, self.unit_of
        for i, word in enumerate(self.words):
            if self.block[i] or not all(unicodedata.category(c)[0] == "P" for c in word):
                continue
            opening = unicodedata.category(word[0]) in ("Ps", "Pi")
            if opening and i + 1 < n and unit[i + 1] == unit[i] and sp[i + 1, 0] == sp[i, 1]:
                follows[i] = 1
            elif not opening and i and unit[i - 1] == unit[i] and sp[i - 1, 1] == sp[i, 0]:
                follows[i] = -1
        self.follows = follows if follows.any() else None
        return follows != 0

    def attach(self, keep: np.ndarray) -> np.ndarray:
        """`keep` with each `follows` word kept exactly when its word is (`」。` after a kept word: both)."""
        if self.follows is None:
            return keep
        out = keep.copy()
        for i in np.flatnonzero(self.follows < 0).tolist():  # left to right: a run of closing marks
            out[i] = out[i - 1]
        for i in np.flatnonzero(self.follows > 0)[::-1].tolist():  # right to left: a run of opening marks
            out[i] = out[i + 1]
        return out

    def trim_punctuation(self, sentence_ends: bool) -> None:
        """Words written without the punctuation at their edges (`(Norman:` -> `Norman`): commas,
        brackets and quotes (but not braces, which are markup) cost ~15% of a thinned paragraph's tokens. A word of punctuation alone
        writes nothing; a dot that ends an abbreviation or an initial stays (`U.S.`, `J.`), and
        with `sentence_ends` so does the `.`, `?` or `!` that ends a unit. Protected words (but
        for the punctuation around a number: `1066.` -> `1066`), structural and forced words and
        blocks stay verbatim."""
        free = (~self.must | self.number) & ~(self.forced | self.block)
        for a, b in self.giants:  # a giant word's pieces: its inner punctuation is not an edge
            free[a:b] = False
        cut = {x: _trimmed(x) for x in dict.fromkeys(self.words) if x[0] in _TRIM or x[-1] in _TRIM}
        if not cut:
            return
        lo = np.zeros(len(self.words), dtype=np.int64)
        hi = np.fromiter(map(len, self.words), dtype=np.int64, count=len(self.words))
        shown = list(self.words)
        for i in np.flatnonzero(free).tolist():
            word = self.words[i]
            if word in cut:
                a, b = cut[word]
                lo[i], hi[i], shown[i] = a, b, word[a:b]
        if sentence_ends:
            last = self.word_start[1:][np.diff(self.word_start) > 0] - 1
            for i in last[free[last]].tolist():
                word = self.words[i]
                end = len(word.rstrip(_CLOSING))
                if lo[i] < hi[i] and word[end - 1:end] in (".", "?", "!"):
                    hi[i] = max(hi[i], end)
                    shown[i] = word[lo[i]:hi[i]]
        self.local = np.stack((self.local[:, 0] + lo, self.local[:, 0] + hi), axis=1)
        self.shown, self.blank = shown, hi == lo


_LEAD_LABEL = re.compile(r"^[A-Z][A-Za-z]{0,15}:$")
# `The answer is 4.`, `So the answer is (A).`, `#### 42`: at the start of the text or of a sentence
# (prose such as `If the answer is yes, ...` is not a few-shot answer line)
_ANSWER_LINE = re.compile(r"(?:^|[.!?:]\s+)(?:(?:so|therefore|thus|hence),?\s+)?(?:the |my )?(?:final |correct )?"
                          r"answer is\b|^####\s", re.IGNORECASE | re.MULTILINE)
_RECUR_MAX_WORDS = 12
_RECUR_MAX_TIMES = 16


def collect_words(ctx: Context) -> Words:
    t = ctx.table
    words: list[str] = []
    must: list[bool] = []
    forced_words: list[bool] = []
    unit_of: list[int] = []
    block: list[bool] = []
    spans: list[tuple[int, int]] = []
    local: list[tuple[int, int]] = []
    number: list[bool] = []
    word_start = [0]
    parts: list[str] = []
    pos = 0
    kinds, flags, gaps = t.kind.tolist(), t.flags.tolist(), t.gap.tolist()
    texts = list(ctx.unit_texts())
    seen = Counter(line.strip() for x in texts for line in x.split("\n")
                   if line.strip() and len(line.split()) <= _RECUR_MAX_WORDS)
    for i, text in enumerate(texts):
        sep = GAP_TEXT[Gap(gaps[i])] if i else ""
        parts.append(sep + text)
        pos += len(sep)
        thin = kinds[i] in WORD_KINDS
        pieces = word_pieces_flagged(text) if thin else [(0, len(text), False)]
        forced = bool(flags[i] & FORCED)
        structural = bool(flags[i] & STRUCTURE) or bool(_ANSWER_LINE.search(text))
        recurring = _recurring_lines(text, seen) if thin else None
        unit_words = [text[s:e] for s, e, _ in pieces]
        n = len(unit_words)
        protected = [p for _, _, p in pieces]
        other = [forced or structural] * n
        if n and (kinds[i] == Kind.LINE or _LEAD_LABEL.match(unit_words[0])):
            other[0] = True  # a list marker or a leading label
        if recurring is not None:
            other = [o or recurring[text.count("\n", 0, s)] for o, (s, _, _) in zip(other, pieces, strict=True)]
        words += unit_words
        spans += [(pos + s, pos + e) for s, e, _ in pieces]
        local += [(s, e) for s, e, _ in pieces]
        must += [o or p for o, p in zip(other, protected, strict=True)]
        number += [p and not o and not protected_besides_numbers(x)
                   for x, o, p in zip(unit_words, other, protected, strict=True)]
        forced_words += [forced] * n
        unit_of += [i] * n
        block += [not thin] * n
        pos += len(text)
        word_start.append(len(words))
    return Words("".join(parts), words, np.asarray(spans, dtype=np.int64).reshape(-1, 2),
                 np.asarray(local, dtype=np.int64).reshape(-1, 2),
                 np.asarray(must, dtype=bool), np.asarray(forced_words, dtype=bool),
                 np.asarray(unit_of, dtype=np.int64),
                 np.asarray(word_start, dtype=np.int64), np.asarray(block, dtype=bool),
                 np.asarray(number, dtype=bool))



def _recurring_lines(text: str, seen: Counter) -> list[bool] | None:
    """Per line of a unit: whether it is a short line found 2 to 16 times in the document (a
    few-shot template line; fillers that recur all over a transcript are not)."""
    flags = [1 < seen.get(line.strip(), 0) <= _RECUR_MAX_TIMES for line in text.split("\n")]
    return flags if any(flags) else None


def select_words(ctx: Context, w: Words, scores: np.ndarray, rounds: int = 3,
                 costs: np.ndarray | None = None, phrases: list[tuple[int, int]] = (),
                 cost_power: float = 0.0) -> np.ndarray:
    """Best-scored words within the budget, with the budget corrected by what the output
    really costs: per-word costs ignore how words merge once joined and what line breaks cost,
    so after each selection the would-be output is counted and the budget moved by the miss
    (up to `rounds` times, stopping within one percent of the target).

    `phrases` ([start, end) word ranges): see `phrase_groups`. With `cost_power` p, items rank
    by score / tokens**p (0: by score alone; 1: by score per token)."""
    costs = w.costs(ctx) if costs is None else costs
    group, item_scores = phrase_groups(w, scores, phrases)
    if group is None:
        item_costs, must, forced = costs, w.must, w.forced
    else:
        n = int(group.max()) + 1 if len(group) else 0
        item_costs = np.bincount(group, costs, minlength=n).astype(np.int64)
        must = np.bincount(group, w.must, minlength=n) > 0
        forced = np.bincount(group, w.forced, minlength=n) > 0
    if cost_power:
        item_scores = item_scores / np.maximum(item_costs, 1) ** cost_power
    protected_cost = int(item_costs[must].sum())
    if protected_cost > ctx.budget and ctx.request.target_tokens is None:
        ctx.warn(f"protected content ({protected_cost} tokens) exceeds the budget of {ctx.budget}; "
                 "the output is above the requested ratio")
    elif protected_cost > ctx.budget:
        # --target-tokens is a hard cap: only --force units stay absolute; the rest of the
        # protected content goes first, in score order, while it fits
        ctx.warn(f"protected content ({protected_cost} tokens) exceeds the budget of {ctx.budget}; "
                 "some of it was dropped")
        spread = float(np.max(item_scores)) - float(np.min(item_scores)) + 1.0
        item_scores = np.where(must, item_scores + spread, item_scores)
        must = forced
    budget = ctx.budget
    tolerance = max(1, int(ctx.budget * 0.01))
    best, best_miss = None, None
    for _ in range(rounds):
        keep = select_by_score(item_costs, item_scores, max(0, budget), must)
        keep = keep if group is None else keep[group]
        if w.blank is not None:
            keep &= ~w.blank  # a word trimmed to nothing (a unit of them alone would write an empty line)
        keep = w.attach(keep)
        miss = ctx.measure_words(keep, w.word_start, w.local) - ctx.budget
        if best_miss is None or abs(miss) < abs(best_miss) or (miss <= 0 < best_miss):
            best, best_miss = keep, miss
        if abs(miss) <= tolerance:
            break
        budget -= miss
    return best


_EDGE = "\"'“”‘’«»‹›()[]{},.;:!?¿¡…，。、；：！？（）「」『』【】《》〈〉・،؛؟"
_TRIM = _EDGE.replace("{}", "")  # braces are markup (LaTeX groups, code), not prose punctuation
_CLOSING = "\"'”’)]"


def _trimmed(word: str) -> tuple[int, int]:
    """[start, end) of `word` without the punctuation at its edges, keeping the dot of an
    abbreviation or an initial (`U.S.`, `J.`)."""
    a = len(word) - len(word.lstrip(_TRIM))
    b = len(word.rstrip(_TRIM))
    if a < b < len(word) and word[b] == "." and ("." in word[a:b] or (b - a == 1 and word[a].isupper())):
        b += 1
    return a, max(a, b)


def phrase_groups(w: Words, scores: np.ndarray, phrases: list[tuple[int, int]]
                  ) -> tuple[np.ndarray | None, np.ndarray]:
    """Items to select when `phrases` ([start, end) word ranges, the pieces of giant words) are
    kept or dropped whole: each range's unprotected words form one item scored with the range's
    best word (its protected words stay items of their own, so protection costs what it did);
    other words are items alone. Returns (item of each word, score of each item), or (None,
    scores) without ranges."""
    if not phrases:
        return None, scores
    item = np.arange(len(w.words))
    best = scores.astype(np.float64, copy=True)
    for a, b in phrases:
        free = np.flatnonzero(~w.must[a:b]) + a
        if len(free) > 1:
            item[free] = free[0]
        if len(free):
            best[free[0]] = scores[a:b].max()
    uniq, group = np.unique(item, return_inverse=True)
    return group, best[uniq]


_FOLD = re.compile(r"[^\w]+")


def question_words(words: list[str], query: str) -> np.ndarray:
    """Per word: is it a content word of the question (case and punctuation folded; stopwords
    never match)?"""
    asked = {_FOLD.sub("", x.lower()) for x in query.split()} - STOPWORDS - {""}
    return np.fromiter((_FOLD.sub("", x.lower()) in asked for x in words), dtype=bool, count=len(words))


def bridge_scores(scores: np.ndarray, bridge: float = 0.9) -> np.ndarray:
    """A word between two well-scored neighbours gets `bridge` times the lesser of their scores
    (`Bank of England` keeps its `of`)."""
    out = scores.astype(np.float64, copy=True)
    if bridge > 0 and len(out) > 2:
        out[1:-1] = np.maximum(out[1:-1], np.minimum(out[:-2], out[2:]) * bridge)
    return out


GIANT_WHOLE = 256  # characters: a giant word up to this long is kept or dropped whole


def giant_words(w: Words) -> list[tuple[int, int]]:
    """[start, end) word ranges that are the pieces of one giant word (longer than
    `pipeline.GIANT_WORD`, cut into pieces by `word_pieces_flagged`) of at most GIANT_WHOLE
    characters: a hash, a URL or a LaTeX reference list is kept or dropped whole, never cut into
    a misleading part of itself. Longer runs (a minified line, base64) stay pieces, so a budget
    smaller than the word still keeps some of it; CJK pieces are words of their own."""
    sp = w.spans
    if len(sp) < 2:
        return []
    glued = ((sp[1:, 0] == sp[:-1, 1]) & (w.unit_of[1:] == w.unit_of[:-1]) & ~w.block[1:] & ~w.block[:-1])
    found, i, n = [], 0, len(w.words)
    for j in np.flatnonzero(glued).tolist():
        if j < i:
            continue
        k = j + 1
        while k < n - 1 and glued[k]:
            k += 1
        run = range(j, k + 1)
        if (sp[k, 1] - sp[j, 0] <= GIANT_WHOLE
                and not any(_NOSPACE_SCRIPT.search(w.words[x]) for x in run)):
            found.append((j, k + 1))
        i = k + 1
    return found


def whole_giants(w: Words) -> list[tuple[int, int]]:
    """The document's giant words as items kept or dropped whole (a giant word holding a protected
    span, say a number, is kept whole)."""
    giants = w.giants
    for a, b in giants:
        if w.must[a:b].any():
            w.must[a:b] = True
    return list(giants)
