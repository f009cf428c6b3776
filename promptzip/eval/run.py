"""The evaluation loop: every item x method x ratio, metrics per row, then aggregates with
bootstrap intervals. Query-aware methods receive the question; the others do not.

Methods are registry names plus the eval-only floor `random`. Reader metrics of the original
(uncompressed) context are computed once per item and reported as `original`.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

from ..compressors import get_method
from ..fidelity import FidelityTracker
from ..pipeline import compress
from ..tokens import TokenCounter, load_tokenizer
from .baselines import random_drop
from .data import EvalItem
from .metrics import answer_retained, bootstrap_ci, exact_match, f1
from .peers import PEERS, run_peers

EVAL_ONLY = {"random": "random word dropping at the requested ratio (a floor)", **PEERS}
METRICS = ("achieved_ratio", "answer_retained", "numbers_kept", "names_kept", "embed_sim",
           "ll_answer", "ll_delta", "em", "f1", "tokens_per_s")


@dataclass
class Row:
    item: str
    method: str
    target_ratio: float
    achieved_ratio: float
    input_tokens: int
    output_tokens: int
    seconds: float
    tokens_per_s: float
    answer_retained: float | None = None
    numbers_kept: float | None = None
    names_kept: float | None = None
    embed_sim: float | None = None
    ll_answer: float | None = None
    ll_delta: float | None = None  # ll_answer(compressed) - ll_answer(original)
    em: float | None = None
    f1: float | None = None


def _fidelity(original: str, compressed: str) -> tuple[float | None, float | None]:
    tracker = FidelityTracker()
    tracker.input(original)
    tracker.output(compressed)
    res = tracker.result()
    return res.numbers_kept, res.names_kept


def compress_with(method: str, item: EvalItem, ratio: float, counter: TokenCounter,
                  precomputed: dict | None = None) -> tuple[str, float | None]:
    """Compressed text, and the seconds it took when it was measured elsewhere (peers)."""
    if precomputed is not None and method in precomputed:
        return precomputed[method][(item.id, ratio)]
    if method == "random":
        return random_drop(item.context, ratio, counter, f"{item.id}:{ratio}"), None
    query = item.question if get_method(method).query_aware else None
    return compress(item.context, method=method, ratio=ratio, query=query, tokenizer=counter).text, None


def evaluate(items: Sequence[EvalItem], methods: Sequence[str], ratios: Sequence[float],
             reader=None, embedder=None, tokenizer: str = "cl100k_base",
             progress: Callable[[int, int], None] | None = None) -> list[Row]:
    counter = load_tokenizer(tokenizer)
    for m in methods:
        if m not in EVAL_ONLY:
            get_method(m)  # unknown names fail before any work
    precomputed = {m: run_peers(m, items, ratios) for m in methods if m in PEERS}
    rows: list[Row] = []
    total = len(items) * (len(methods) * len(ratios) + 1)
    done = 0
    for item in items:
        n_in = counter.count(item.context)
        gold = item.answers[0] if item.answers else None
        base_ll = reader.answer_logprob(item.context, item.question, gold) if reader and gold else None
        orig = Row(item.id, "original", 1.0, 1.0, n_in, n_in, 0.0, 0.0,
                   answer_retained=float(answer_retained(item.context, item.answers)) if item.kind == "qa" else None,
                   numbers_kept=1.0, names_kept=1.0, embed_sim=1.0, ll_answer=base_ll,
                   ll_delta=0.0 if base_ll is not None else None)
        if reader and item.kind == "qa":
            pred = reader.generate(item.context, item.question)
            orig.em, orig.f1 = exact_match(pred, item.answers), f1(pred, item.answers)
        rows.append(orig)
        done += 1
        for method in methods:
            for ratio in ratios:
                t0 = time.perf_counter()
                text, measured = compress_with(method, item, ratio, counter, precomputed)
                secs = measured if measured is not None else time.perf_counter() - t0
                n_out = counter.count(text)
                row = Row(item.id, method, ratio, n_out / n_in if n_in else 1.0, n_in, n_out, secs,
                          n_in / secs if secs > 0 else 0.0)
                row.numbers_kept, row.names_kept = _fidelity(item.context, text)
                if item.kind == "qa":
                    row.answer_retained = float(answer_retained(text, item.answers))
                if embedder:
                    row.embed_sim = embedder.similarity(item.context, text)
                if reader and gold:
                    row.ll_answer = reader.answer_logprob(text, item.question, gold)
                    row.ll_delta = row.ll_answer - base_ll
                    if item.kind == "qa":
                        pred = reader.generate(text, item.question)
                        row.em, row.f1 = exact_match(pred, item.answers), f1(pred, item.answers)
                rows.append(row)
                done += 1
                if progress:
                    progress(done, total)
    return rows


def aggregate(rows: Sequence[Row], seed: int = 0) -> list[dict]:
    """Mean, 95% bootstrap interval and spread per (method, target ratio)."""
    groups: dict[tuple[str, float], list[Row]] = {}
    for r in rows:
        groups.setdefault((r.method, r.target_ratio), []).append(r)
    out = []
    for (method, ratio), group in sorted(groups.items(), key=lambda kv: (kv[0][0] != "original", kv[0])):
        entry: dict = {"method": method, "target_ratio": ratio, "n": len(group)}
        for metric in METRICS:
            values = [getattr(r, metric) for r in group if getattr(r, metric) is not None]
            if not values:
                continue
            lo, hi = bootstrap_ci(values, seed=seed)
            entry[metric] = {"mean": statistics.fmean(values), "lo": lo, "hi": hi,
                             "sd": statistics.pstdev(values)}
        out.append(entry)
    return out


def rows_as_dicts(rows: Sequence[Row]) -> list[dict]:
    return [asdict(r) for r in rows]
