"""`make bench BENCH_SECTIONS=extract-knobs`: each of `extract`'s selection settings switched off
in turn, measured beside the defaults on the same SQuAD rows (issue 24: a setting stays only
where it still earns its place with the shipped weights).

Two settings, the two the targets name: without the question at 0.33 and with it at 0.2. Three
measures, paired row by row with the defaults: answer kept (`promptzip eval`, first `KEPT_N`
rows), SmolLM2's log-likelihood of the gold answer and Qwen2.5-Coder-0.5B's exact match (first
`READER_N` rows each: the readers cost seconds a row on 2 cores). A difference is the setting
switched off minus the defaults, so a negative one is what the setting buys.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np

from ..compressors.extract import Extract
from ..metrics import bootstrap_ci
from ..runtime.lm import resolve_dtype
from ..runtime.store import prepare

DATA = "qa/squad_v2_half_dev.jsonl"
KEPT_N, READER_N = 500, 100
QWEN = "qwen2.5-coder-0.5b-instruct"
SETTINGS = {"noquery": ("extract:noquery", 0.33, "without the question @0.33"),
            "query": ("extract", 0.2, "with the question @0.2")}
KNOBS = (  # (parameter=its off value, what switching it off does, the settings where it acts)
    ("articles=1", "a, an and the score like any other word (default 0: they are dropped first)", ("noquery", "query")),
    ("cost_power=0", "words rank by probability alone (default 0.25: probability / tokens^0.25)",
     ("noquery", "query")),
    ("bridge=0", "a word between two well-scored ones is not lifted (default 0.9)", ("noquery", "query")),
    ("punctuation=keep", "punctuation at the edges of thinned words is written (default without a question: "
     "dropped)", ("noquery",)),
    ("punctuation=drop", "punctuation at the edges of thinned words is dropped (default with a question: "
     "written)", ("query",)),
    ("question_words=1", "the question's own words score like any other (default 0.25 x their probability)",
     ("query",)),
)
MEASURES = (  # (column, eval output folder suffix, row metric, rows, extra eval options)
    ("answer kept", "kept", "answer_retained", KEPT_N, ["--no-reader"]),
    ("SmolLM2 log-lik", "ll", "ll_answer", READER_N, ["--no-generate"]),
    ("Qwen EM", "qwen", "em", READER_N, ["--reader-model", QWEN]),
)


def variants(setting: str) -> list[str]:
    base = SETTINGS[setting][0]
    return [base] + [f"{base}:{knob}" for knob, _, where in KNOBS if setting in where]


def _rows(out: Path, metric: str) -> dict[str, dict[str, float]]:
    """method -> item -> the metric, from an eval folder's rows."""
    by: dict[str, dict[str, float]] = {}
    with open(out / "rows.jsonl", encoding="utf-8") as f:
        for line in f:
            r = json.loads(line)
            if r.get(metric) is not None:
                by.setdefault(r["method"], {})[r["item"]] = r[metric]
    return by


def paired(by: dict[str, dict[str, float]], base: str, method: str) -> tuple[float, float, float, int]:
    """Mean of method - base over the rows both have, its 95% bootstrap interval, and n."""
    a, b = by.get(base, {}), by.get(method, {})
    both = sorted(set(a) & set(b))
    diffs = [b[i] - a[i] for i in both]
    if not diffs:
        return float("nan"), float("nan"), float("nan"), 0
    lo, hi = bootstrap_ci(diffs)
    return float(np.mean(diffs)), lo, hi, len(diffs)


def measure(work: Path, shared: Path) -> dict:
    """Runs `promptzip eval` for every setting and measure (rows resume from bench-work/)."""
    results: dict = {}
    for column, suffix, metric, n, extra in MEASURES:  # the cheap measure first, for both settings
        for setting, (base, ratio, _) in SETTINGS.items():
            out = work / f"knobs-{suffix}-{setting}"
            cmd = [sys.executable, "-m", "promptzip", "eval", str(shared / DATA), "--methods",
                   ",".join(variants(setting)), "--ratios", str(ratio), "--limit", str(n), "--no-embed",
                   "--out", str(out), "--title", f"extract settings, {column}"] + extra
            print(f"bench: knobs {setting} {column} ...", file=sys.stderr)
            subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
            by = _rows(out, metric)
            results[(setting, column)] = (by, base)
    return results


def table(results: dict) -> list[str]:
    cols = [m[0] for m in MEASURES]
    lines = ["| switched off | what that does | setting | " + " | ".join(f"Δ {c} [95% CI]" for c in cols) + " |",
             "|---|---|---|" + "---:|" * len(cols)]
    for setting, (_, _, title) in SETTINGS.items():
        cells = []
        for c in cols:
            by, base = results[(setting, c)]
            vals = list(by.get(base, {}).values())
            cells.append(f"{np.mean(vals):.3f} (n={len(vals)})" if vals else "-")
        lines.append(f"| (defaults: the value) | | {title} | " + " | ".join(cells) + " |")
        for knob, what, where in KNOBS:
            if setting not in where:
                continue
            cells = []
            for c in cols:
                by, base = results[(setting, c)]
                mean, lo, hi, n = paired(by, base, f"{base}:{knob}")
                cells.append("-" if not n else f"{mean:+.3f} [{lo:+.3f}, {hi:+.3f}]")
            lines.append(f"| `{knob}` | {what} | {title} | " + " | ".join(cells) + " |")
    return lines


def bench_knobs(work: Path, shared: Path) -> str:
    if not shared.is_dir():
        return "Skipped: ../shared/corpora is not beside this checkout."
    prepare(QWEN, log=lambda m: print(f"bench: {m}", file=sys.stderr))
    results = measure(work, shared)
    sha = Extract().model_id() or "?"
    head = (f"`extract` version {Extract.version}, models/extract-minilm/model.int8.onnx sha256 {sha[:12]}…; "
            f"SQuAD v2 half-dev (answerable): answer kept on the first {KEPT_N} rows, the readers on the first "
            f"{READER_N} (SmolLM2-135M-Instruct's log-likelihood ({resolve_dtype('auto')}) per token of the first gold answer, "
            "Qwen2.5-Coder-0.5B-Instruct's exact match through llama.cpp, greedy). Each row below switches one "
            "selection setting off (`-p KEY=VALUE`) and gives its difference from the defaults, paired over "
            "the same rows (negative: the setting helps). `phrases` (names, dates and quantities kept or dropped "
            "whole) was retired in version 9 after version 8's run of this table measured it level on every "
            "column; those figures are in models/extract-minilm/MODEL_CARD.md.")
    return "\n".join([head, "", *table(results)])
