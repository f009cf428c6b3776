"""The `pipeline` and `ratio` sections: throughput and peak RSS of each method on a large input
beside tokenization alone, and achieved vs requested ratio on ../shared/corpora/text."""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path

from ..api import compress
from .common import RATIOS, SHARED, build_input, run_measured, shared_texts


def bench_pipeline(work: Path, size_mb: int) -> str:
    big = work / f"input-{size_mb}mb.txt"
    origin = build_input(big, size_mb)
    exe = [sys.executable, "-m", "promptzip"]
    wall, rss, out = run_measured([*exe, "tokens", str(big)])
    tokens = int(out)
    rows = [("tokenize only (`promptzip tokens`)", wall, rss, None)]
    for method in ("truncate", "lexical"):
        report = work / f"report-{method}.json"
        wall, rss, _ = run_measured([*exe, "compress", str(big), "-m", method, "-r", "0.33", "-q",
                                     "--report", str(report)])
        rows.append((f"`{method}` at ratio 0.33", wall, rss, json.loads(report.read_text())["ratio"]))
    ceiling = tokens / rows[0][1]
    lines = [
        f"Input: {big.stat().st_size / 1e6:.0f} MB, {tokens:,} cl100k_base tokens, built from {origin}.",
        "Each row is a fresh process reading the file; wall time includes start-up (~0.3 s).",
        "",
        "| run | wall s | tokens/s | vs tokenize-only | peak RSS MiB | achieved ratio |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, wall, rss, ratio in rows:
        tps = tokens / wall
        r = f"{ratio:.4f}" if ratio is not None else "-"
        lines.append(f"| {name} | {wall:.1f} | {tps:,.0f} | {tps / ceiling:.2f} | {rss} | {r} |")
    return "\n".join(lines)


def bench_ratio() -> str:
    if not SHARED.is_dir():
        return "Skipped: ../shared/corpora is not beside this checkout."
    docs = shared_texts()
    lines = [
        f"{len(docs)} documents from ../shared/corpora/text (every row of the four JSONL files and "
        "tinyshakespeare.txt); error = achieved - requested, in cl100k_base tokens.",
        "",
        "| method | requested | mean achieved | mean abs error | worst error | worst document |",
        "|---|---:|---:|---:|---:|---|",
    ]
    for method in ("lexical", "truncate"):
        for ratio in RATIOS:
            errs = []
            for doc_id, text in docs:
                rep = compress(text, method=method, ratio=ratio).report
                errs.append((rep.ratio - ratio, doc_id))
            mean_achieved = ratio + statistics.fmean(e for e, _ in errs)
            worst = max(errs, key=lambda x: abs(x[0]))
            mae = statistics.fmean(abs(e) for e, _ in errs)
            lines.append(f"| {method} | {ratio} | {mean_achieved:.4f} | {mae:.4f} | {worst[0]:+.4f} | "
                         f"{worst[1]} |")
    return "\n".join(lines)
