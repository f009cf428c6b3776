"""`make bench BENCH_SECTIONS=extract-models`: the shipped `extract` model beside the models
issue 24 trained locally (the MPNet teacher, the distilled students), on the rows of the issue's
targets: SQuAD v2 half-dev, answerable, first `N` rows; answer kept without the question at 0.33
and with it at 0.2, each model paired row by row with the shipped one.

The trained models live under $PROMPTZIP_HOME/train (`make teacher`, `make distill`); a model
that is not there is named as missing, never guessed. Rows resume from bench-work/.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np

from ..compressors.extract import Extract
from ..fileutil import sha256_file
from ..metrics import bootstrap_ci
from .knobs import DATA, _rows, paired

N = 500
SETTINGS = (("noquery", "extract:noquery", 0.33, "no question @0.33"), ("query", "extract", 0.2, "question @0.2"))
CANDIDATES = (  # (label, folder under $PROMPTZIP_HOME/train, precision, how it is made)
    ("teacher: MPNet 110M, 400 steps", "teacher-onnx", "fp32", "`make teacher`"),
    ("student: 3,500 teacher-labelled examples, 1,000 steps", "runs/student/onnx", "int8",
     "`make distill`"),
    ("student: 16,500 teacher-labelled examples, 2,000 steps", "runs/student-big/onnx", "int8",
     "the larger distillation's commands in models/extract-minilm/MODEL_CARD.md"),
)


def candidates(train: Path, shipped_sha: str) -> tuple[list[tuple[str, str, str]], list[str]]:
    """(label, method suffix, precision) of the trained models found, and notes on the others.
    A student whose int8 file is the shipped one is the default, so it is not run twice."""
    found, notes = [], []
    for label, rel, precision, how in CANDIDATES:
        folder = train / rel
        onnx = folder / f"model.{precision}.onnx"
        if not onnx.is_file():
            notes.append(f"{label}: not built on this machine ({how}; {folder} has no {onnx.name}).")
        elif precision == "int8" and sha256_file(onnx) == shipped_sha:
            notes.append(f"{label}: the shipped file itself (sha256 {shipped_sha[:12]}…), so the default row is it.")
        else:
            found.append((label, f":model={folder}" + (":precision=fp32" if precision == "fp32" else ""), precision))
    return found, notes


def bench_models(work: Path, shared: Path, train: Path) -> str:
    if not shared.is_dir():
        return "Skipped: ../shared/corpora is not beside this checkout."
    sha = Extract().model_id() or "?"
    found, notes = candidates(train, sha)
    lines = ["| model | precision | " + " | ".join(f"answer kept, {t} [95% CI] | vs shipped, paired (gained / lost)"
                                                for *_, t in SETTINGS) + " |",
             "|---|---|" + "---:|---:|" * len(SETTINGS)]
    by_setting = {}
    for key, base, ratio, title in SETTINGS:
        out = work / f"models-{key}"
        methods = [base] + [base + suffix for _, suffix, _ in found]
        print(f"bench: extract models, {title} ...", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "promptzip", "eval", str(shared / DATA), "--methods", ",".join(methods),
                        "--ratios", str(ratio), "--limit", str(N), "--no-reader", "--no-embed", "--out", str(out),
                        "--title", f"extract models, {title}"], check=True, stdout=subprocess.DEVNULL)
        by_setting[key] = (_rows(out, "answer_retained"), base)

    def cells(suffix: str) -> str:
        parts = []
        for key, *_ in SETTINGS:
            by, base = by_setting[key]
            vals = list(by.get(base + suffix, {}).values())
            lo, hi = bootstrap_ci(vals)
            parts.append(f"{np.mean(vals):.3f} [{lo:.3f}, {hi:.3f}]")
            if not suffix:
                parts.append("-")
                continue
            mean, dlo, dhi, _ = paired(by, base, base + suffix)
            a, b = by[base], by[base + suffix]
            both = set(a) & set(b)
            gained, lost = sum(b[i] > a[i] for i in both), sum(b[i] < a[i] for i in both)
            parts.append(f"{mean:+.3f} [{dlo:+.3f}, {dhi:+.3f}] ({gained} / {lost})")
        return " | ".join(parts)

    lines.append(f"| shipped default (models/extract-minilm, sha256 {sha[:12]}…) | int8 | {cells('')} |")
    for label, suffix, precision in found:
        lines.append(f"| {label} | {precision} | {cells(suffix)} |")
    head = (f"`extract` version {Extract.version}; SQuAD v2 half-dev, answerable, first {N} rows (issue 24's "
            "targets: 0.87 without the question at 0.33, 0.95 with it at 0.2). The shipped model beside the "
            f"models trained locally under {str(train).replace(str(Path.home()), '~')} (`make teacher`, `make distill`; not in the repo: the "
            "teacher is 438 MB in fp32 and int8 breaks it). A paired difference is the model minus the shipped "
            "one over the same rows.")
    return "\n".join([head, "", *lines, "", *notes]).rstrip()
