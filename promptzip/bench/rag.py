"""The `rag` section: the multi-passage benchmark of `promptzip rag`. Each SQuAD question with
its gold paragraph and 9 distractor paragraphs, shuffled; answer retention and achieved ratio per
method at each ratio, and queries per second.

Distractors come from other articles (the set the targets are stated on) or, for a harder
variant where lexical ranking is less decisive, from the same article."""

from __future__ import annotations

import json
import random
import re
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from .. import rag
from ..api import compress
from ..eval.data import EvalItem
from ..eval.peers import peer_python, run_peers
from ..metrics import answer_retained
from ..rag import compress_passages
from ..tokens import load_tokenizer
from .common import SHARED, paused_training

METHODS = ("rag", "rag:bm25", "rag:hybrid", "extract", "lexical", "truncate", "longllmlingua")


def _answerable(path: Path) -> tuple[list[dict], dict[str, list[str]]]:
    """The rows with answers, and each article's distinct paragraphs (by title)."""
    rows = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            row = json.loads(line)
            if row.get("answers"):
                rows.append(row)
    by_title: dict[str, list[str]] = {}
    for r in rows:
        paras = by_title.setdefault(r.get("title", ""), [])
        if r["context"] not in paras:
            paras.append(r["context"])
    return rows, by_title


def multi_passage_items(path: Path, n: int, seed: int = 0, distractors: int = 9,
                        same_article: bool = False) -> list[dict]:
    """Up to `n` items {id, question, answers, passages (10 strings), gold (its index)}."""
    rows, by_title = _answerable(path)
    titles = sorted(by_title)
    rng = random.Random(seed)
    items = []
    for r in rows:
        if len(items) >= n:
            break
        title = r.get("title", "")
        if same_article:
            pool = [p for p in by_title[title] if p != r["context"]]
            if len(pool) < distractors:
                continue
            chosen = rng.sample(pool, distractors)
        else:
            others = rng.sample([t for t in titles if t != title], distractors)
            chosen = [rng.choice(by_title[t]) for t in others]
        passages = [*chosen, r["context"]]
        rng.shuffle(passages)
        items.append({"id": r["id"], "question": r["question"], "answers": r["answers"],
                      "passages": passages, "gold": passages.index(r["context"])})
    return items


_NAME = re.compile(r"(?<![\w.])[A-Z][a-z]{2,}(?: [A-Z][a-z]{2,}){0,2}(?![\w])")
_SENTENCE = re.compile(r"[^.!?]+[.!?]")


def multi_hop_items(path: Path, n: int, seed: int = 0, distractors: int = 8) -> list[dict]:
    """Up to `n` bridge items {id, question, answers, passages (10), gold, bridge, hop}: two
    passages are needed, the second found through a name read in the first.

    From a SQuAD question Q whose gold paragraph B holds a name E that Q also names (E not in the
    answer), a sentence S naming E is taken from another paragraph A of the same article that
    does not hold the answer (S not in B). E is replaced by `X` in both, and the question reads
    `S'. Q'` ("X led the Normans to England. When was X born?"): S' finds A, A gives E, and
    only E says which paragraph answers Q'. The ten passages are A, B, four more paragraphs of
    the article and four of others, shuffled. `gold` is B's index, `hop` A's, `bridge` is E."""
    rows, by_title = _answerable(path)
    titles = sorted(by_title)
    rng = random.Random(seed)
    items = []
    for r in rows:
        if len(items) >= n:
            break
        q, b = r["question"], r["context"]
        answers = [a.lower() for a in r["answers"]]
        names = [m.group() for m in _NAME.finditer(q) if m.start() > 0 and re.search(rf"\b{m.group()}\b", b)
                 and not any(m.group().lower() in a or a in m.group().lower() for a in answers)]
        found = None
        for e in names:
            for a in by_title[r.get("title", "")]:
                if a == b or any(x in a.lower() for x in answers):  # B alone holds the answer
                    continue
                for m in _SENTENCE.finditer(a):
                    sent = m.group().strip()
                    if re.search(rf"\b{re.escape(e)}\b", sent) and sent not in b and 6 <= len(sent.split()) <= 40:
                        found = (e, a, sent)
                        break
                if found:
                    break
            if found:
                break
        if not found:
            continue
        e, a, sent = found
        mask = re.compile(rf"\b{re.escape(e)}\b")
        question = f"{mask.sub('X', sent)} {mask.sub('X', q)}"
        same = [p for p in by_title[r.get("title", "")] if p not in (a, b)]
        if len(same) < distractors // 2:
            continue
        others = rng.sample([t for t in titles if t != r.get("title", "")], distractors - distractors // 2)
        passages = [a, b, *rng.sample(same, distractors // 2), *(rng.choice(by_title[t]) for t in others)]
        rng.shuffle(passages)
        items.append({"id": r["id"], "question": question, "answers": r["answers"], "passages": passages,
                      "gold": passages.index(b), "hop": passages.index(a), "bridge": e})
    return items


def fixed_length(items: Sequence[dict], words: int = 150) -> list[dict]:
    """The same items with every passage cut or filled (with the next passages' words) to
    exactly `words` words: the throughput set."""
    out = []
    for it in items:
        pool = " ".join(it["passages"]).split()
        ps = []
        for k, p in enumerate(it["passages"]):
            w = p.split()
            if len(w) < words:
                rest = " ".join(it["passages"][k + 1:] + it["passages"][:k]).split()
                w = w + rest[:words - len(w)]
            ps.append(" ".join((w or pool)[:words]))
        out.append({**it, "passages": ps})
    return out


def run_method(method: str, items: Sequence[dict], ratio: float, peer_cache: Path | None = None) -> list[dict]:
    """One row per item: answer kept, achieved ratio, gold passage kept (rag only), seconds."""
    counter = load_tokenizer("cl100k_base")
    rows = []
    if method in ("longllmlingua", "llmlingua"):
        evals = [EvalItem(it["id"], "\n\n".join(it["passages"]), it["question"], it["answers"]) for it in items]
        got = run_peers(method, evals, [ratio], cache=peer_cache)
        for it, ev in zip(items, evals, strict=True):
            if (ev.id, ratio) not in got:
                continue
            text, secs = got[(ev.id, ratio)]
            rows.append({"id": it["id"], "kept": answer_retained(text, it["answers"]),
                         "ratio": counter.count(text) / max(counter.count(ev.context), 1), "seconds": secs})
        return rows
    for it in items:
        t0 = time.perf_counter()
        if method.startswith("rag"):
            mode = method.partition(":")[2]
            res = compress_passages(it["question"], it["passages"], ratio=ratio,
                                    **({"relevance_mode": mode} if mode else {}))
            secs = time.perf_counter() - t0
            text = "\n\n".join(res.texts)
            gold = any(p.index == it["gold"] for p in res.passages)
            achieved = res.tokens_after / max(res.tokens_before, 1)
        else:
            joined = "\n\n".join(it["passages"])
            res = compress(joined, method, ratio=ratio, query=it["question"])
            secs = time.perf_counter() - t0
            text, gold, achieved = res.text, None, res.report.ratio
        rows.append({"id": it["id"], "kept": answer_retained(text, it["answers"]), "ratio": achieved,
                     "gold": gold, "seconds": secs})
    return rows


def summarize(rows: Sequence[dict], seed: int = 0, rounds: int = 1000) -> dict:
    kept = [float(r["kept"]) for r in rows]
    rng = random.Random(seed)
    boots = sorted(statistics.fmean(rng.choices(kept, k=len(kept))) for _ in range(rounds)) if kept else [0.0]
    golds = [r["gold"] for r in rows if r.get("gold") is not None]
    secs = sum(r["seconds"] for r in rows)
    return {"n": len(rows), "answer_kept": statistics.fmean(kept) if kept else 0.0,
            "ci": (boots[int(0.025 * len(boots))], boots[int(0.975 * len(boots)) - 1]),
            "ratio": statistics.fmean(r["ratio"] for r in rows) if rows else 0.0,
            "gold_kept": statistics.fmean(map(float, golds)) if golds else None,
            "qps": len(rows) / secs if secs else 0.0}


def table(results: dict[tuple[str, float], dict]) -> str:
    lines = ["| method | target | n | kept ratio | answer kept [95% CI] | gold passage kept | queries/s |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for (method, ratio), s in sorted(results.items(), key=lambda kv: (-kv[0][1], kv[0][0])):
        gold = "-" if s["gold_kept"] is None else f"{s['gold_kept']:.3f}"
        lines.append(f"| {method} | {ratio} | {s['n']} | {s['ratio']:.3f} | {s['answer_kept']:.3f} "
                     f"[{s['ci'][0]:.3f}, {s['ci'][1]:.3f}] | {gold} | {s['qps']:,.1f} |")
    return "\n".join(lines)


RAG_N, RAG_PEER_N, RAG_HARD_N, RAG_HOP_N, RAG_SPEED_N = 300, 40, 200, 200, 100


def bench_rag(work: Path) -> str:
    """Multi-passage SQuAD: answer retention per method at 0.2 / 0.1 kept, the same-article
    variant and a two-passage (bridge) set for the relevance modes, and rag throughput on 10
    passages of 150 words (training paused)."""
    if not SHARED.is_dir():
        return "Skipped: ../shared/corpora is not beside this checkout."
    data = SHARED / "qa" / "squad_v2_half_dev.jsonl"
    out = work / "rag"
    out.mkdir(parents=True, exist_ok=True)
    items = multi_passage_items(data, RAG_N)
    hard = multi_passage_items(data, RAG_HARD_N, same_article=True)
    hop = multi_hop_items(data, RAG_HOP_N)
    compress_passages("warm up", ["the models load", "before timing"], ratio=0.5, relevance_mode="hybrid")
    results, hard_results, hop_results, notes = {}, {}, {}, []

    def no_hop(rows_of):  # the model's relevance without the second hop
        names, rag.HOP_NAMES = rag.HOP_NAMES, 0
        try:
            return rows_of()
        finally:
            rag.HOP_NAMES = names

    for ratio in (0.2, 0.1):
        for method in ("rag", "rag:bm25", "rag:hybrid", "extract", "lexical", "truncate"):
            print(f"bench: rag {method} @{ratio} ...", file=sys.stderr)
            results[(method, ratio)] = summarize(run_method(method, items, ratio))
        if peer_python().exists():
            print(f"bench: rag longllmlingua @{ratio} ...", file=sys.stderr)
            rows = run_method("longllmlingua", items[:RAG_PEER_N], ratio, out / "peer-longllmlingua.jsonl")
            results[("longllmlingua", ratio)] = summarize(rows)
        for method in ("rag", "rag:bm25", "rag:auto", "rag:hybrid", "rag:embed"):
            print(f"bench: rag (same article) {method} @{ratio} ...", file=sys.stderr)
            hard_results[(method, ratio)] = summarize(run_method(method, hard, ratio))
        for method in ("rag", "rag:bm25", "rag:auto", "extract"):
            print(f"bench: rag (bridge) {method} @{ratio} ...", file=sys.stderr)
            hop_results[(method, ratio)] = summarize(run_method(method, hop, ratio))
        hop_results[("rag, no second hop", ratio)] = summarize(no_hop(lambda r=ratio: run_method("rag", hop, r)))
    if not peer_python().exists():
        notes.append("LongLLMLingua peer skipped: `make peers` has not been run.")
    speed_items = fixed_length(items[:RAG_SPEED_N])
    speed = ["| setting | target | queries/s | ms/query |", "|---|---:|---:|---:|"]
    with paused_training():
        for method, label in (("rag", "rag (model relevance, the default)"), ("rag:bm25", "rag --relevance bm25"),
                              ("rag:auto", "rag --relevance auto"), ("rag:hybrid", "rag --relevance hybrid")):
            for ratio in (0.2, 0.1):
                t0 = time.perf_counter()
                run_method(method, speed_items, ratio)
                secs = time.perf_counter() - t0
                speed.append(f"| {label} | {ratio} | {len(speed_items) / secs:.1f} | "
                             f"{1000 * secs / len(speed_items):.0f} |")
    words = statistics.fmean(len(p.split()) for it in items for p in it["passages"])
    return "\n".join([
        "Each SQuAD v2 half-dev question (answerable, first rows) with its gold paragraph and 9 distractor "
        "paragraphs, shuffled (`promptzip/bench/rag.py`, seed 0). `rag` is `promptzip rag` with its default "
        "relevance (`model`: the extract classifier reads each passage with the question, a second hop follows "
        "the names of the best passages, one word budget over all passages); `rag:MODE` sets `--relevance`; "
        "`extract`, `lexical` and `truncate` get the passages joined (`extract` with the question); the "
        "LongLLMLingua peer ranks the passages itself (first "
        f"{RAG_PEER_N} questions: it runs at ~60 tokens/s). *Answer kept*: a normalized gold answer is in the "
        "output. Queries/s in these tables were measured while the table was built (beside any training run); "
        "the throughput table below, measured with training paused, is the one to quote.", *notes, "",
        f"### Distractors from other articles ({len(items)} questions, {words:.0f} words per passage on average)",
        "", table(results), "",
        f"### Distractors from the same article ({len(hard)} questions; lexical ranking is less decisive)", "",
        table(hard_results), "",
        f"### Bridge questions: two passages needed ({len(hop)} questions)", "",
        "Built from the same split (`bench.rag.multi_hop_items`): a question Q whose paragraph B names E (E in Q, "
        "not in the answer); a sentence S naming E from another paragraph A of the article; E replaced by `X` in "
        "both, and the question reads `S'. Q'`. S' finds A, A gives E, and only E says which paragraph answers "
        "Q'. Ten passages: A, B, four more of the article, four of others. *Gold passage kept*: B.", "",
        table(hop_results), "",
        f"### Throughput: 10 passages of exactly 150 words per query ({len(speed_items)} queries, 2 cores)", "",
        *speed])
