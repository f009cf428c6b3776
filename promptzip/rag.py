"""Query-aware, coarse-to-fine compression of retrieved passages (`promptzip rag`,
`promptzip.compress_passages`).

Per query:

1. **Relevance** of each passage. `model` (the default): the `extract` classifier reads every
   passage with the query, and a passage scores the mean keep probability of its best words;
   then a second hop: names the best passages hold (not the question's) extend the query, and
   the passages those names lead to are read again with it (`model_scores`). The others:
   BM25 of the query terms (IDF from the query's own passages), fused with the cosine of
   all-MiniLM-L6-v2 sentence embeddings (`hybrid`), either alone (`bm25`: fifteen times faster than
   `model`), `embed`, or `auto`: BM25, with the hybrid re-scoring the top passages when BM25
   is unsure. Scores are relative to the record: the best passage scores 1.
2. **Passages**: ranked by relevance and cut by `top_k` and a relevance `threshold`; without
   the model, also by the token budget (passages are taken while their tokens stay within
   `COARSE` times the budget).
3. **Budget per passage**: the query's budget (`ratio` of its tokens, or `target_tokens`).
   `model`: one budget over the words of every passage, each word ranked by its keep
   probability times its passage's relevance, a passage's share being what its words take
   (`model_shares`). Otherwise shared over the kept passages in proportion to relevance**4
   times length, capped at a passage's own length (what a capped passage does not need goes to
   the others).
4. **Sentences** (not with `model`, whose words are ranked already): a passage more than
   `SENTENCE_SLACK` times over its share keeps its sentences that best match the query (BM25),
   up to that much, in their original order.
5. **Words**: the `extract` classifier, given the query (with `model`, the query the passage was
   read with), brings each passage to its share. `extract=False` stops at sentences and ranks by BM25.

Passages that end up empty are dropped and counted. Output order: `original`, `relevance`, or
`ends` (the best passages at both ends, the weakest in the middle, against lost-in-the-middle).
"""

from __future__ import annotations

import json
import math
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import numpy as np

from .api import compress
from .compressors.extract import multilingual_ready
from .compressors.lexical import fold
from .errors import InputError, UsageError
from .fidelity import MONTHS, WEEKDAYS
from .lang import detect as detect_language
from .nospace import words_and_bigrams
from .runtime.embed import embedder
from .segment import sentence_bounds
from .select import share_budget
from .tokens import DEFAULT_TOKENIZER, TokenCounter, load_tokenizer

TEXT_KEYS = ("text", "content", "page_content")
ORDERS = ("original", "relevance", "ends")
RELEVANCE = ("model", "auto", "hybrid", "bm25", "embed")
AUTO_TOP = 4  # auto: passages the bi-encoder re-scores when BM25 is unsure
AUTO_MARGIN = 0.7  # auto: BM25 is unsure when the runner-up has this share of the best score
COARSE = 1.25  # candidate passages: up to this times the budget, before sentences and words
SENTENCE_SLACK = 1.25  # sentences kept: up to this times a passage's share, before words
SHARPNESS = 4  # shares follow relevance ** SHARPNESS times length: the best passages stay whole
MIN_SHARE = 8  # a passage whose share is below this many tokens is dropped
TOP_WORDS = 3  # model: a passage's relevance is the mean keep probability of its best words
HOP_FROM = 2  # model: the best passages whose names extend the query (the second hop)
HOP_NAMES = 4  # model: names taken from them, by keep probability
HOP_WEIGHT = 0.5  # model: weight of the second hop's BM25 beside the model's relevance


def passage_text(item: Any) -> str:
    """The text of a passage: a string, or the first of `text`/`content`/`page_content`."""
    if isinstance(item, str):
        return item
    if isinstance(item, Mapping):
        for key in TEXT_KEYS:
            if isinstance(item.get(key), str):
                return item[key]
    raise UsageError(f"a passage must be a string or an object with one of {', '.join(TEXT_KEYS)}; "
                     f"got {_preview(item)}")


def _preview(item: Any) -> str:
    text = repr(item)
    return text if len(text) <= 80 else text[:77] + "..."


@dataclass
class PassageResult:
    index: int  # position in the input
    text: str  # compressed text ("" when dropped)
    score: float  # fused relevance, 1 = the record's best passage
    bm25: float
    cosine: float | None
    tokens_before: int
    tokens_after: int = 0
    kept: bool = True
    reason: str = ""  # why it was dropped: top-k, threshold, budget, empty

    def as_dict(self) -> dict:
        out = {"index": self.index, "score": round(self.score, 4), "bm25": round(self.bm25, 4),
               "tokens_before": self.tokens_before, "tokens_after": self.tokens_after}
        if self.cosine is not None:
            out["cosine"] = round(self.cosine, 4)
        if not self.kept:
            out["reason"] = self.reason
        return out


@dataclass
class PassagesResult:
    passages: list[PassageResult]  # kept, in output order
    dropped: list[PassageResult]  # in input order
    tokens_before: int
    tokens_after: int
    budget: int | None
    seconds: float
    warnings: list[str] = field(default_factory=list)
    hop: list[str] = field(default_factory=list)  # model relevance: the names the second hop searched for

    @property
    def texts(self) -> list[str]:
        return [p.text for p in self.passages]

    def report(self) -> dict:
        return {"tokens_before": self.tokens_before, "tokens_after": self.tokens_after,
                "ratio": round(self.tokens_after / self.tokens_before, 4) if self.tokens_before else 1.0,
                "budget": self.budget, "passages_in": len(self.passages) + len(self.dropped),
                "passages_kept": len(self.passages), "passages_dropped": len(self.dropped),
                "kept": [p.as_dict() for p in self.passages], "dropped": [p.as_dict() for p in self.dropped],
                "seconds": round(self.seconds, 4), "warnings": self.warnings,
                **({"hop": self.hop} if self.hop else {})}


@lru_cache(maxsize=200_000)
def _term(word: str) -> str | None:
    """A lower-cased word as a BM25 term: stopwords out, then its first five letters (a crude
    stem that still matches `retired` with `retire` and `located` with `location`)."""
    t = fold(word)
    return t[:5] if t else None


def terms(text: str) -> list[str]:
    return [t for t in map(_term, words_and_bigrams(text.lower())) if t]


def bm25(query: str, docs: Sequence[str], k1: float = 1.2, b: float = 0.75) -> np.ndarray:
    """BM25 of `query` against each of `docs`, IDF from `docs` themselves."""
    q = set(terms(query))
    bags = [Counter(terms(d)) for d in docs]
    if not q or not bags:
        return np.zeros(len(docs))
    n = len(bags)
    lengths = np.asarray([sum(c.values()) for c in bags], dtype=np.float64)
    avg = max(float(lengths.mean()), 1.0)
    out = np.zeros(n)
    for t in q:
        df = sum(1 for c in bags if t in c)
        if not df:
            continue
        idf = math.log(1 + (n - df + 0.5) / (df + 0.5))
        tf = np.asarray([c.get(t, 0) for c in bags], dtype=np.float64)
        out += idf * tf * (k1 + 1) / (tf + k1 * (1 - b + b * lengths / avg))
    return out


def _scaled(x: np.ndarray) -> np.ndarray:
    """Min-max to [0, 1] (all equal: all 1)."""
    lo, hi = float(x.min()), float(x.max())
    return np.ones_like(x) if hi - lo < 1e-12 else (x - lo) / (hi - lo)


def relevance(query: str, texts: Sequence[str], mode: str = "auto") -> tuple[np.ndarray, np.ndarray,
                                                                            np.ndarray | None]:
    """(fused score, BM25, cosine or None) per passage; fused is in [0, 1], best = 1.

    `auto` runs the bi-encoder only where BM25 is unsure: when the runner-up scores at least
    AUTO_MARGIN of the best, the AUTO_TOP best BM25 passages are re-scored with the hybrid (the
    others keep their BM25 score, below the re-scored ones). Embedding every passage costs about
    30 ms per passage on 2 cores, which is most of a query's time (BENCHMARKS.md)."""
    if mode not in RELEVANCE:
        raise UsageError(f"relevance must be one of {', '.join(RELEVANCE)}, not {mode!r}")
    lexical = bm25(query, texts)
    n = len(texts)
    if not n:
        return np.zeros(0), lexical, None
    lex = _scaled(lexical) if lexical.max() > 0 else np.zeros(n)
    if mode == "bm25" or n == 1:
        return (lex if lexical.max() > 0 else np.ones(n)), lexical, None
    if mode == "auto":
        top = np.argsort(-lexical, kind="stable")[:AUTO_TOP]
        if lexical.max() > 0 and lexical[top[1]] < AUTO_MARGIN * lexical[top[0]]:
            return lex, lexical, None
    else:
        top = np.arange(n)

    vecs = embedder().embed([query, *(texts[i] for i in top)])
    cos = np.full(n, np.nan)
    cos[top] = vecs[1:] @ vecs[0]
    if mode == "embed":
        return _scaled(cos), lexical, cos
    fused = 0.5 * lex * (0.5 if mode == "auto" else 1.0)  # auto: the passages left out rank below
    hybrid = 0.5 * (_scaled(lexical[top]) if lexical[top].max() > 0 else 0.0) + 0.5 * _scaled(cos[top])
    fused[top] = hybrid if mode == "hybrid" else 0.5 + 0.5 * hybrid
    return fused / max(float(fused.max()), 1e-12), lexical, cos


@dataclass
class ModelScores:
    """What the extract classifier read in each passage given the query (`model` relevance)."""
    probs: list[np.ndarray]  # per passage: each word's keep probability
    relevance: np.ndarray  # per passage: the mean of its TOP_WORDS best probabilities
    hop: np.ndarray  # per passage: BM25 of the names the best passages gave (the second hop), scaled
    hop_names: list[str]
    queries: list[str]  # per passage: the query its probabilities were read with


def _scored(text: str, query: str, counter: TokenCounter, force: Sequence[str],
            model: str = "auto") -> tuple[list[str], np.ndarray]:

    res = compress(text, "extract", query=query, tokenizer=counter, force=force, word_scores=True,
                   threshold=1e-6, model=model)  # every word scored; the budgeted pass reads them again from memory
    scored = res.report.words or []
    return [w for w, _, _ in scored], np.asarray([x for _, x, _ in scored], dtype=np.float64)


def _top_mean(p: np.ndarray) -> float:
    return float(np.sort(p)[-TOP_WORDS:].mean()) if len(p) else 0.0


def extract_model(query: str, texts: Sequence[str]) -> str:
    """The extract model for one record: chosen once by the language of its question and passages
    (as `extract -p model=auto` chooses for a document), so every passage is read, scored and
    compared by the same model."""
    if detect_language(" ".join([query, *texts])).english:
        return "english"
    return "multilingual" if multilingual_ready() else "auto"  # auto: the English model, with a warning


def model_scores(query: str, texts: Sequence[str], counter: TokenCounter, force: Sequence[str] = (),
                 model: str = "auto") -> ModelScores:
    """The classifier's keep probabilities for every passage, read with the query; a passage's
    relevance from its best words. Then a second hop: the names (capitalized words outside the
    question, months and weekdays aside) that score highest in the HOP_FROM best passages extend the query; BM25 of those
    names finds the passages they lead to, and the classifier reads each such passage again
    with the extended query (a bridge question names the first passage's subject; the answer
    sits in a passage about a name read there, which the question alone does not point at)."""
    words, probs = [], []
    for text in texts:
        w, p = _scored(text, query, counter, force, model)
        words.append(w)
        probs.append(p)
    relevance_ = np.asarray([_top_mean(p) for p in probs])
    queries = [query] * len(texts)
    asked = set(terms(query))
    candidates: dict[str, float] = {}
    best = [int(i) for i in np.argsort(-relevance_, kind="stable")[:HOP_FROM]]
    for i in best:
        for w, x in zip(words[i], probs[i], strict=True):
            name = w.strip(".,;:!?()[]{}\"'")
            t = _term(name.lower())
            if (name[:1].isupper() and t and t not in asked and len(name) > 1
                    and name.lower() not in MONTHS and name.lower() not in WEEKDAYS):  # a date leads nowhere
                candidates[name] = max(candidates.get(name, 0.0), float(x))
    names = sorted(candidates, key=lambda n: -candidates[n])[:HOP_NAMES]
    hop = bm25(" ".join(names), texts) if names else np.zeros(len(texts))
    hop = _scaled(hop) if hop.max() > 0 else hop
    if names:
        extended = f"{query} {' '.join(names)}"
        for i in np.flatnonzero(hop > 0):
            if int(i) in best:
                continue
            _, p2 = _scored(texts[i], extended, counter, force, model)
            if _top_mean(p2) > relevance_[i]:
                probs[i], relevance_[i], queries[i] = p2, _top_mean(p2), extended
    return ModelScores(probs, relevance_, hop, names, queries)


def model_shares(budget: int, tokens: np.ndarray, scores: ModelScores, weight: np.ndarray) -> np.ndarray:
    """One budget over the words of all passages: words rank by keep probability times their
    passage's `weight` (its relevance after the second hop), and a passage's share is the
    tokens of its words that fit. A word costs its passage's mean tokens per word."""
    items, costs, owner = [], [], []
    for i, p in enumerate(scores.probs):
        if len(p) and tokens[i] > 0:
            items.append(p * weight[i])
            costs.append(np.full(len(p), tokens[i] / len(p)))
            owner.append(np.full(len(p), i))
    share = np.zeros(len(tokens), dtype=np.float64)
    if not items:
        return share.astype(np.int64)
    s, c, o = np.concatenate(items), np.concatenate(costs), np.concatenate(owner)
    order = np.argsort(-s, kind="stable")
    fits = np.cumsum(c[order]) <= budget
    np.add.at(share, o[order][fits], c[order][fits])
    return np.minimum(np.round(share), tokens).astype(np.int64)


def ends_order(ranked: list[int]) -> list[int]:
    """Best first and second best last, alternating inwards: 1, 3, 5, ..., 6, 4, 2."""
    return ranked[0::2] + ranked[1::2][::-1]


def compress_passages(
    query: str,
    passages: Sequence[str | Mapping],
    *,
    ratio: float | None = None,
    target_tokens: int | None = None,
    top_k: int | None = None,
    threshold: float | None = None,
    order: str = "ends",
    relevance_mode: str = "model",
    extract: bool = True,
    tokenizer: str | TokenCounter = DEFAULT_TOKENIZER,
    force: Sequence[str] = (),
) -> PassagesResult:
    """Compress the passages retrieved for `query` (strings or objects with `text`/`content`/
    `page_content`). Without `ratio`, `target_tokens`, `top_k` or `threshold`, keeps half the
    tokens. Returns the kept passages (compressed, in `order`) and the dropped ones."""
    t0 = time.perf_counter()
    if not query or not query.strip():
        raise UsageError("a query is needed to compress passages", "Give --query or a query field.")
    if order not in ORDERS:
        raise UsageError(f"order must be one of {', '.join(ORDERS)}, not {order!r}")
    if ratio is not None and not 0 < ratio <= 1:
        raise UsageError(f"ratio must be in (0, 1], got {ratio}")
    if target_tokens is not None and target_tokens < 1:
        raise UsageError(f"target tokens must be at least 1, got {target_tokens}")
    if top_k is not None and top_k < 1:
        raise UsageError(f"top-k must be at least 1, got {top_k}")
    if ratio is None and target_tokens is None and top_k is None and threshold is None:
        ratio = 0.5
    counter = load_tokenizer(tokenizer) if isinstance(tokenizer, str) else tokenizer
    texts = [passage_text(p) for p in passages]
    tokens = np.asarray(counter.count_many(texts) if texts else [], dtype=np.int64)
    total = int(tokens.sum())
    budget = target_tokens if target_tokens is not None else (
        max(1, round(ratio * total)) if ratio is not None else None)
    scores = None
    model = extract_model(query, texts) if extract and texts else "auto"
    if relevance_mode == "model" and extract and texts:
        scores = model_scores(query, texts, counter, force, model)
        lexical = bm25(query, texts)
        fused = scores.relevance + HOP_WEIGHT * scores.hop * scores.relevance.max()
        fused = fused / max(float(fused.max()), 1e-12)
        cos = None
    else:
        fused, lexical, cos = relevance(query, texts, "bm25" if relevance_mode == "model" else relevance_mode)
    results = [PassageResult(i, texts[i], float(fused[i]), float(lexical[i]),
                             None if cos is None or np.isnan(cos[i]) else float(cos[i]), int(tokens[i])) for i in range(len(texts))]
    ranked = sorted(range(len(texts)), key=lambda i: (-fused[i], i))

    def drop(i: int, reason: str) -> None:
        results[i].kept, results[i].reason, results[i].text = False, reason, ""

    for n, i in enumerate(ranked):
        if tokens[i] == 0 or not texts[i].strip():
            drop(i, "empty")
        elif top_k is not None and n >= top_k:
            drop(i, "top-k")
        elif threshold is not None and fused[i] < threshold:
            drop(i, "threshold")
    warnings: list[str] = []
    if budget is not None:
        alive = [i for i in ranked if results[i].kept]
        if scores is not None:  # one budget over every word the model scored
            weight = np.zeros(len(texts))
            weight[alive] = fused[alive]
            share = model_shares(budget, tokens, scores, weight)[alive]
        else:
            used = 0
            for n, i in enumerate(alive):
                if n and used + tokens[i] > COARSE * budget:
                    drop(i, "budget")
                else:
                    used += int(tokens[i])
            alive = [i for i in ranked if results[i].kept]
            share = share_budget(budget, tokens[alive], fused[alive] ** SHARPNESS * tokens[alive])
        for n, (i, s) in enumerate(zip(alive, share, strict=True)):
            if n == 0 and s < min(MIN_SHARE, tokens[i]):  # the best passage is never budgeted away: a
                s = min(budget, int(tokens[i]))  # small budget goes to it whole rather than to nothing
            if s < min(MIN_SHARE, tokens[i]):
                drop(i, "budget")
            elif s < tokens[i]:
                results[i].text = _fit(scores.queries[i] if scores else query, texts[i], int(tokens[i]), int(s),
                                       counter, extract, force, warnings, sentences=scores is None, model=model)
                if not results[i].text.strip():
                    drop(i, "empty")
    for r in results:  # a passage kept whole costs what it did
        r.tokens_after = 0 if not r.kept else r.tokens_before if r.text is texts[r.index] else counter.count(r.text)
    kept = [i for i in ranked if results[i].kept]
    if order == "original":
        kept.sort()
    elif order == "ends":
        kept = ends_order(kept)
    after = sum(results[i].tokens_after for i in kept)
    return PassagesResult([results[i] for i in kept], [r for r in results if not r.kept], total, after,
                          budget, time.perf_counter() - t0, warnings, scores.hop_names if scores else [])


def _fit(query: str, text: str, tokens: int, share: int, counter: TokenCounter, extract: bool,
         force: Sequence[str], warnings: list[str], sentences: bool = True, model: str = "auto") -> str:
    """One passage of `tokens` tokens brought to `share`: best sentences (by BM25, unless the
    model already ranked its words), then the extract classifier."""
    bounds = sentence_bounds(text)
    if len(bounds) > 1 and (not extract or (sentences and tokens > SENTENCE_SLACK * share)):
        sents = [text[a:b] for a, b in bounds]
        costs = counter.count_many(sents)
        scores = bm25(query, sents)
        room = SENTENCE_SLACK * share if extract else share
        keep, used = set(), 0
        for i in sorted(range(len(sents)), key=lambda i: (-scores[i], i)):
            if used + costs[i] <= room or not keep:
                keep.add(i)
                used += costs[i]
        text = " ".join(sents[i].strip() for i in sorted(keep))
        tokens = counter.count(text)
    if not extract or tokens <= share:
        return text

    res = compress(text, "extract", target_tokens=share, query=query, force=force, tokenizer=counter,
                   model=model)
    warnings += [w for w in res.report.warnings if w not in warnings]
    return res.text


# ---- JSONL records -------------------------------------------------------------------------

QUERY_KEYS = ("query", "question")
LIST_KEYS = ("passages", "ctxs", "contexts", "documents")


@dataclass
class Shape:
    kind: str  # "per-query" or "per-passage"
    query_key: str | None = None
    list_key: str | None = None
    text_key: str | None = None  # None: plain strings

    def describe(self) -> str:
        item = f"items with '{self.text_key}'" if self.text_key else "plain strings"
        if self.kind == "per-query":
            q = f"query from '{self.query_key}'" if self.query_key else "query from --query"
            return f"one record per query ({q}, passages under '{self.list_key}', {item})"
        return f"one passage per line ({item}), query from --query"


def detect(record: Any) -> Shape:
    """The shape of one JSONL record, or UsageError naming what was expected."""
    if isinstance(record, Mapping):
        lists = [k for k in LIST_KEYS if isinstance(record.get(k), list)]
        if lists:
            items = record[lists[0]]
            qk = next((k for k in QUERY_KEYS if isinstance(record.get(k), str)), None)
            return Shape("per-query", qk, lists[0], _text_key(items[0]) if items else "text")
        tk = _text_key(record)
        if tk:
            return Shape("per-passage", text_key=tk)
    elif isinstance(record, str):
        return Shape("per-passage")
    raise UsageError(f"unrecognised record {_preview(record)}",
                     f"Expected an object with a passage list under one of {', '.join(LIST_KEYS)}, or one "
                     f"passage per line (a string or an object with {', '.join(TEXT_KEYS)}).")


def _text_key(item: Any) -> str | None:
    if isinstance(item, Mapping):
        return next((k for k in TEXT_KEYS if isinstance(item.get(k), str)), None)
    return None


def with_text(item: Any, text: str) -> Any:
    """A passage as it came in, its text replaced."""
    if isinstance(item, str):
        return text
    out = dict(item)
    out[_text_key(item) or "text"] = text
    return out


def compress_record(record: Mapping, shape: Shape, query: str | None,
                    **options: Any) -> tuple[dict, PassagesResult]:
    """One per-query record: its passages compressed, everything else passed through."""
    q = res_query(record, shape, query)
    if not q:
        raise UsageError(f"the record has no {'/'.join(QUERY_KEYS)} field and --query was not given")
    items = record.get(shape.list_key)
    if not isinstance(items, list):
        raise UsageError(f"the record has no passage list under '{shape.list_key}'")
    res = compress_passages(q, items, **options)
    out = dict(record)
    out[shape.list_key] = [with_text(items[p.index], p.text) for p in res.passages]
    return out, res


@dataclass
class RunSummary:
    shape: Shape | None = None
    records: int = 0
    tokens_before: int = 0
    tokens_after: int = 0
    passages_kept: int = 0
    passages_dropped: int = 0
    skipped: list[str] = field(default_factory=list)  # "line N: why"
    seconds: float = 0.0

    def add(self, res: PassagesResult) -> None:
        self.records += 1
        self.tokens_before += res.tokens_before
        self.tokens_after += res.tokens_after
        self.passages_kept += len(res.passages)
        self.passages_dropped += len(res.dropped)

    def render(self) -> str:
        ratio = self.tokens_after / self.tokens_before if self.tokens_before else 1.0
        skipped = f", {len(self.skipped)} lines skipped" if self.skipped else ""
        return (f"rag: {self.records} record{'s' if self.records != 1 else ''}, "
                f"{self.tokens_before:,} -> {self.tokens_after:,} tokens ({ratio:.3f}), passages kept "
                f"{self.passages_kept}, dropped {self.passages_dropped}{skipped}, {self.seconds:.2f} s")


def run_jsonl(lines: Iterable[tuple[int, str]], write: Callable[[Any], None], query: str | None = None,
              strict: bool = False, report: Callable[[dict], None] | None = None,
              on_warning: Callable[[str], None] = lambda _: None, on_shape: Callable[[Shape], None] = lambda _: None,
              **options: Any) -> RunSummary:
    """Compress a stream of JSONL lines ((line number, text) pairs). Per-query records are
    written as soon as each is done; one-passage-per-line input is gathered first (its passages
    are ranked together) and written at the end. Lines that are not JSON, or records of an
    unrecognised shape, are reported with their line number and skipped (`strict`: InputError).
    A missing query is a UsageError."""
    t0 = time.perf_counter()
    summary = RunSummary()
    gathered: list[tuple[int, Any]] = []

    def bad(n: int, why: str) -> None:
        if strict:
            raise InputError(f"line {n}: {why}", "Fix the line, or drop --strict to skip bad lines.")
        summary.skipped.append(f"line {n}: {why}")
        on_warning(f"line {n}: {why}; skipped")

    for n, line in lines:
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError as exc:
            bad(n, f"not valid JSON ({exc})")
            continue
        try:
            shape = detect(record)
        except UsageError as exc:
            bad(n, str(exc))
            continue
        if summary.shape is None:
            summary.shape = shape
            on_shape(shape)
        elif shape.kind != summary.shape.kind:
            bad(n, f"a {shape.describe()} record in {summary.shape.describe()} input")
            continue
        if shape.kind == "per-passage":
            gathered.append((n, record))
            continue
        try:
            out, res = compress_record(record, shape, query, **options)
        except UsageError as exc:
            if "query" in str(exc):
                raise UsageError(f"line {n}: {exc}", "Give --query, or a query field in every record.") from None
            bad(n, str(exc))
            continue
        write(out)
        summary.add(res)
        if report is not None:
            report({"line": n, "query": res_query(record, shape, query), **res.report()})
    if gathered:
        if not query:
            raise UsageError("one passage per line needs --query")
        res = compress_passages(query, [r for _, r in gathered], **options)
        for p in res.passages:
            write(with_text(gathered[p.index][1], p.text))
        summary.add(res)
        if report is not None:
            rep = res.report()
            for p in rep["kept"] + rep["dropped"]:
                p["line"] = gathered[p["index"]][0]
            report({"query": query, **rep})
    summary.seconds = time.perf_counter() - t0
    return summary


def res_query(record: Mapping, shape: Shape, query: str | None) -> str | None:
    q = record.get(shape.query_key) if shape.query_key else None
    return q if isinstance(q, str) and q.strip() else query
