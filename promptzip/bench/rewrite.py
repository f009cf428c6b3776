"""The `rewrite` section: the local rewriter (Qwen2.5-Coder-Instruct 0.5B and 1.5B on llama.cpp's
server) beside `extract` on the same rows: how many chunks pass the guard, invented numbers and
names kept, the answer kept and a Qwen reader's exact match at the ratio rewrite reached (extract
is run at that same ratio, row by row), and speed (input tokens/s; prompt reading against
generation, as the server reports them).

Rows: SQuAD v2 dev paragraphs with an answer (and their question), QMSum meeting transcripts (with
their query), and news articles (the main text of the news pages among ../shared/corpora/formats/html;
no question). Every measured row is kept in bench-work/rewrite/rows.jsonl (keyed by model, set, row
and ratio), so a re-run measures only what is missing; completions are cached besides.
"""

from __future__ import annotations

import json
import os
import sys
import time
from functools import lru_cache
from pathlib import Path

from ..api import compress
from ..compressors.rewrite import Rewrite
from ..eval.chat_reader import local_reader
from ..eval.data import load_items
from ..fidelity import numbers_in
from ..fileutil import read_jsonl
from ..formats.html import main_text
from ..guard import facts_of
from ..metrics import answer_retained, exact_match
from ..runtime.llama_server import LOCAL_MODELS, shared_server
from ..runtime.store import models_dir
from .common import SHARED

MODELS = ("qwen2.5-coder-0.5b-instruct", "qwen2.5-coder-1.5b-instruct")
# (model, constrain) pairs measured: free generation and the `items` grammar for both models (`vocab`, the
# grammar without forced items, passed fewer chunks than either at prompt 3: BENCHMARKS.md of 2026-12-07)
RUNS = (("qwen2.5-coder-0.5b-instruct", "off"), ("qwen2.5-coder-0.5b-instruct", "items"),
        ("qwen2.5-coder-1.5b-instruct", "items"), ("qwen2.5-coder-1.5b-instruct", "off"))
READER = "qwen2.5-coder-1.5b-instruct"


def chosen_runs() -> tuple[tuple[str, str], ...]:
    """RUNS, or those `PROMPTZIP_BENCH_REWRITE_RUNS` names (`model:grammar`, comma-separated; e.g.
    `qwen2.5-coder-0.5b-instruct:off` re-measures the default alone after a change)."""
    spec = os.environ.get("PROMPTZIP_BENCH_REWRITE_RUNS", "").strip()
    if not spec:
        return RUNS
    runs = tuple(tuple(x.strip().rsplit(":", 1)) for x in spec.split(",") if x.strip())
    unknown = [f"{m}:{g}" for m, g in runs if m not in MODELS or g not in ("off", "vocab", "items")]
    if unknown:
        raise SystemExit(f"PROMPTZIP_BENCH_REWRITE_RUNS: unknown runs {', '.join(unknown)} (model:off|vocab|items, "
                         f"models {', '.join(MODELS)})")
    return runs
NEWS = ("readability_ars-1.html", "readability_lemonde-1.html", "readability_lwn-1.html",
        "readability_ebb-org.html", "readability_gitlab-blog.html", "readability_dropbox-blog.html")
SETS = (("squad", (0.5, 0.33)), ("qmsum", (0.33,)), ("news", (0.5, 0.33)))
LIMITS = {"squad": 12, "qmsum": 1, "news": 2}  # the first rows of each set (rows already measured are kept)


@lru_cache(maxsize=8)
def rows_of(name: str) -> list[dict]:
    """(id, context, question, answers) rows of one set."""
    if name == "squad":  # distinct paragraphs, the first question of each (the first rows share two paragraphs)
        first: dict[str, object] = {}
        for it in load_items(SHARED / "qa" / "squad_v2_half_dev.jsonl", 2000):
            if it.answers:
                first.setdefault(it.context, it)
        items = list(first.values())[:LIMITS[name]]
    elif name == "qmsum":
        items = load_items(SHARED / "meetings" / "qmsum_val.jsonl", LIMITS[name], 20000)
    else:
        out = []
        for f in NEWS[:LIMITS[name]]:
            path = SHARED / "formats" / "html" / f
            if path.is_file():
                out.append({"id": f, "context": main_text(path.read_text(encoding="utf-8", errors="replace"))[0],
                            "question": None, "answers": []})
        return out
    return [{"id": it.id, "context": it.context, "question": it.question, "answers": list(it.answers or [])}
            for it in items]


def measure(work: Path, runs=RUNS, sets=SETS) -> list[dict]:
    """Rewrite and extract on every row (resumable through rows.jsonl; rows of another version of the
    rewriter are measured again)."""
    out = work / "rewrite"
    out.mkdir(parents=True, exist_ok=True)
    path = out / "rows.jsonl"
    done = {}
    if path.is_file():
        for r in read_jsonl(path):  # an interrupted run may leave a torn last line
            if r.get("version") == Rewrite.version:
                done[(r["model"], r["constrain"], r["set"], r["id"], r["ratio"])] = r
    with open(path, "a", encoding="utf-8") as log:
        for model, mode in runs:
            if not (models_dir() / model / "manifest.json").is_file():
                print(f"bench: {model} is not prepared; its rows are skipped", file=sys.stderr)
                continue
            for name, ratios in sets:
                for row in rows_of(name):
                    for ratio in ratios:
                        key = (model, mode, name, row["id"], ratio)
                        if key in done:
                            continue
                        print(f"bench: rewrite {model} ({mode}) {name} {row['id']} @{ratio}", file=sys.stderr, flush=True)
                        t0 = time.perf_counter()
                        res = compress(row["context"], method="rewrite", ratio=ratio, query=row["question"],
                                       local=model, constrain=mode)
                        seconds = time.perf_counter() - t0
                        rep = res.report
                        ext = compress(row["context"], method="extract", ratio=max(rep.ratio, 0.01),
                                       query=row["question"])
                        rec = {"model": model, "constrain": mode, "version": Rewrite.version, "set": name, "id": row["id"], "ratio": ratio,
                               "question": row["question"], "answers": row["answers"],
                               "input_tokens": rep.input_tokens, "rewrite": res.text, "rewrite_ratio": rep.ratio,
                               "extract": ext.text, "extract_ratio": ext.report.ratio, "seconds": seconds,
                               "chunks": rep.chunks, "generation": rep.generation}
                        log.write(json.dumps(rec, ensure_ascii=False) + "\n")
                        log.flush()
                        done[key] = rec
    return [r for r in done.values() if (r["model"], r["constrain"]) in runs]


def read_all(rows: list[dict], work: Path) -> None:
    """The reader's answer to every QA row's question over the original, rewrite's and extract's
    text (kept in bench-work/rewrite/answers.json; a re-run asks only what is missing)."""
    path = work / "rewrite" / "answers.json"
    answers = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    todo = []
    for r in rows:
        if not r["question"] or r["set"] != "squad":
            continue
        for kind in ("original", "rewrite", "extract"):
            k = _answer_key(r, kind)
            if k not in answers:
                todo.append((k, r, kind))
    if todo and (models_dir() / READER / "manifest.json").is_file():
        with local_reader(READER) as reader:
            for k, r, kind in todo:
                text = r[kind] if kind != "original" else _context(r)
                answers[k] = reader.generate(text, r["question"])
                path.write_text(json.dumps(answers, ensure_ascii=False), encoding="utf-8")
    for r in rows:
        for kind in ("original", "rewrite", "extract"):
            r[f"answer_{kind}"] = answers.get(_answer_key(r, kind))


def _answer_key(r: dict, kind: str) -> str:
    if kind == "original":
        return f"{r['set']}|{r['id']}|original"
    return f"{r['model']}|{r['constrain']}|{r['version']}|{r['set']}|{r['id']}|{r['ratio']}|{kind}"


def _context(r: dict) -> str:
    return next(x["context"] for x in rows_of(r["set"]) if x["id"] == r["id"])


def _mean(xs: list[float]) -> str:
    return f"{sum(xs) / len(xs):.3f}" if xs else "-"


def table(rows: list[dict]) -> list[str]:
    out = ["| model | grammar | rows | target | rewrite ratio | chunks asked | items fit the budget | passed the guard | of which on retry | "
           "invented numbers | names kept: rewrite / extract | answer kept: rewrite / extract | reader EM: original / rewrite / "
           "extract |",
           "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault((r["model"], r["constrain"], r["set"], r["ratio"]), []).append(r)
    order = {m: i for i, m in enumerate(("off", "vocab", "items"))}
    for (model, mode, name, ratio), rs in sorted(groups.items(),
                                                 key=lambda kv: (kv[0][0], order[kv[0][1]], kv[0][2], -kv[0][3])):
        asked = fits = passed = retried = invented = names_in = names_kept = names_extract = 0
        for r in rs:
            src = _context(r)
            for c in r["chunks"] or []:
                if c["path"] in ("rewrite", "retry", "extract"):
                    asked += 1
                    fits += "required items alone take" not in (c.get("reason") or "")
                passed += c["path"] in ("rewrite", "retry")
                retried += c["path"] == "retry"
            invented += len(set(numbers_in(r["rewrite"])) - set(numbers_in(src)))
            names = facts_of(src).names
            names_in += len(names)
            names_kept += sum(1 for n in names if n in r["rewrite"])
            names_extract += sum(1 for n in names if n in r["extract"])
        qa = [r for r in rs if r["answers"] and r["set"] == "squad"]  # QMSum's answers are summaries
        kept_rw = [float(answer_retained(r["rewrite"], r["answers"])) for r in qa]
        kept_ex = [float(answer_retained(r["extract"], r["answers"])) for r in qa]
        em = {k: [exact_match(r[f"answer_{k}"], r["answers"]) for r in qa if r.get(f"answer_{k}") is not None]
              for k in ("original", "rewrite", "extract")}
        out.append(
            f"| {model.removeprefix('qwen2.5-coder-').removesuffix('-instruct')} | {mode} | {name} ({len(rs)}) | {ratio} | "
            f"{_mean([r['rewrite_ratio'] for r in rs])} | {asked} | {fits / max(asked, 1):.0%} | "
            f"{passed / max(asked, 1):.0%} | {retried} | "
            f"{invented} | {names_kept / max(names_in, 1):.2f} / {names_extract / max(names_in, 1):.2f} | "
            + (f"{_mean(kept_rw)} / {_mean(kept_ex)}" if qa else "-") + " | "
            + (" / ".join(_mean(em[k]) for k in ("original", "rewrite", "extract")) if any(em.values()) else "-")
            + " |")
    return out


def speed(work: Path, runs=RUNS, new: bool = True) -> list[dict]:
    """Each run once on the first news article at 0.33 with the completion cache off (the rows above
    reuse cached completions across versions, so their seconds are not speeds); kept in
    bench-work/rewrite/speed.jsonl by rewriter version. `new=False`: only the runs measured so far."""
    path = work / "rewrite" / "speed.jsonl"
    done = {(r["model"], r["constrain"]): r for r in (read_jsonl(path) if path.is_file() else [])
            if r.get("version") == Rewrite.version}
    row = rows_of("news")[0] if rows_of("news") else None
    with open(path, "a", encoding="utf-8") as log:
        for model, mode in runs:
            if not new or (model, mode) in done or row is None or not (models_dir() / model / "manifest.json").is_file():
                continue
            print(f"bench: rewrite speed {model} ({mode})", file=sys.stderr, flush=True)
            old = os.environ.get("PROMPTZIP_NO_CACHE")
            os.environ["PROMPTZIP_NO_CACHE"] = "1"
            try:
                shared_server(model)  # started (and the model loaded) before the clock starts
                t0 = time.perf_counter()
                rep = compress(row["context"], method="rewrite", ratio=0.33, local=model, constrain=mode).report
                seconds = time.perf_counter() - t0
            finally:
                if old is None:
                    os.environ.pop("PROMPTZIP_NO_CACHE", None)
                else:
                    os.environ["PROMPTZIP_NO_CACHE"] = old
            g = rep.generation or {}
            rec = {"model": model, "constrain": mode, "version": Rewrite.version, "id": row["id"],
                   "input_tokens": rep.input_tokens, "seconds": seconds, "requests": g.get("requests"),
                   "prompt_s": g.get("prompt_s") or 0.0, "generated_s": g.get("generated_s") or 0.0,
                   "generated_tokens": g.get("generated_tokens") or 0}
            log.write(json.dumps(rec) + "\n")
            log.flush()
            done[(model, mode)] = rec
    return [done[k] for k in runs if k in done]


def speed_table(recs: list[dict]) -> list[str]:
    out = ["| model | grammar | input tokens | requests | seconds | input tokens/s | generated tokens/s | "
           "prompt reading share |", "|---|---|---:|---:|---:|---:|---:|---:|"]
    for r in recs:
        busy = r["prompt_s"] + r["generated_s"]
        out.append(f"| {r['model'].removeprefix('qwen2.5-coder-').removesuffix('-instruct')} | {r['constrain']} | "
                   f"{r['input_tokens']} | {r['requests']} | {r['seconds']:.0f} | "
                   f"{r['input_tokens'] / max(r['seconds'], 1e-9):.0f} | "
                   + (f"{r['generated_tokens'] / r['generated_s']:.1f}" if r["generated_s"] else "-") + " | "
                   + (f"{r['prompt_s'] / busy:.0%}" if busy else "-") + " |")
    return out


def bench_rewrite(work: Path, measured_only: bool = False) -> str:
    if not SHARED.is_dir():
        return "Skipped: ../shared/corpora is not beside this checkout."
    runs = chosen_runs()
    rows = measure(work, runs=runs) if not measured_only else measure(work, runs=(), sets=())
    if measured_only:
        path = work / "rewrite" / "rows.jsonl"
        rows = list(read_jsonl(path)) if path.is_file() else []
        rows = [r for r in rows if r.get("version") == Rewrite.version]
    read_all(rows, work)
    recs = speed(work, runs=runs, new=not measured_only)
    parts = [f"`python -m promptzip.bench --sections rewrite`: `-m rewrite` without an endpoint (the local model "
             f"on llama.cpp's server, 2 threads) beside `-m extract` at the ratio rewrite reached on each row. "
             f"Rows: the first {LIMITS['squad']} distinct SQuAD v2 half-dev paragraphs with an answer (with the first "
             "question of each), "
             f"{LIMITS['qmsum']} QMSum meeting (with its query), {LIMITS['news']} news and blog articles (the main "
             "text of the pages in ../shared/corpora/formats/html; no question). *Chunks asked*: chunks sent to the "
             "model (neither copied whole nor blocks); *items fit the budget*: of those, the share whose required items "
             "alone fit within 1.2x the chunk's budget (the most any model could pass; the others are extracted "
             "without asking); *passed the guard*: their rewrite kept every required item, "
             "invented no number, brought no name the chunk lacks, held its length and reads as sentences (not words "
             "or names set side by side), on the first try, the retry or one of the answers sampled after it "
             "(`-p samples`, 6 by default; *of which on retry* counts the last two kinds); the rest were extracted. "
             "*Invented numbers*: numbers in the output that the input lacks. *Names kept*: the guard's names of "
             f"the input found in the output (with a question, extracted chunks keep only the names their share "
             f"holds, as `extract` does: `-p keep_names=auto`). *Reader EM*: {READER} (llama.cpp) answering the question from the "
             "original, the rewrite and the extract output.", ""]
    parts += table(rows)
    parts += ["", f"Speed, the completion cache off: the first news article ({recs[0]['id'] if recs else '-'}) at "
              "0.33 by each model and grammar. *Input tokens/s*: input tokens over wall seconds of the whole "
              "compression (chunking, budget, the model, the guard and the extract fallback); *prompt reading "
              "share*: of the server's own time, the share spent reading prompts rather than generating.", ""]
    parts += speed_table(recs)
    models = sorted({r["model"] for r in rows})
    parts += ["", "*Grammar*: `-p constrain` (a llama.cpp grammar on the local model's output): `off` free; `vocab` "
              "only the chunk's own words, its required items and a few connectives; `items` that, with every "
              "required item in the text's order and as many free words between them as keep the rewrite within "
              "1.1x its budget (chunks with room for fewer than one free word per two items are extracted without "
              "asking)."]
    parts += ["", f"Models measured: {', '.join(models) or 'none'} (GGUF files: "
              + ", ".join(LOCAL_MODELS[m] for m in models) + ")."]
    return "\n".join(parts)
