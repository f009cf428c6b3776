"""Eval outputs: results.json, results.md and PNG plots (fidelity vs achieved kept ratio,
speed vs fidelity). Curves use the *achieved* ratio on x, so a method that keeps more than
asked is compared where it actually is."""

from __future__ import annotations

import json
from pathlib import Path

LABELS = {
    "achieved_ratio": "kept ratio", "precision": "reconstruction precision", "answer_retained": "answer kept", "numbers_kept": "numbers kept",
    "names_kept": "names kept", "structure_kept": "structure kept",
    "entities_kept": "entities kept", "invented_numbers": "invented numbers", "embed_sim": "MiniLM cos", "ll_answer": "answer log-lik",
    "ll_delta": "Δ log-lik vs original", "em": "reader EM", "em_kept": "EM kept vs original", "f1": "reader F1", "tokens_per_s": "tokens/s",
}


def _cell(entry: dict, metric: str, digits: int = 3) -> str:
    v = entry.get(metric)
    if v is None:
        return "-"
    if metric == "tokens_per_s":
        return f"{v['mean']:,.0f}"
    return f"{v['mean']:.{digits}f} [{v['lo']:.{digits}f}, {v['hi']:.{digits}f}]"


def markdown(summary: list[dict], title: str, reader: str | None = None) -> str:
    metrics = [m for m in LABELS if any(m in e for e in summary)]
    head = "| method | target | n | " + " | ".join(LABELS[m] for m in metrics) + " |"
    sep = "|---|---:|---:|" + "---:|" * len(metrics)
    note = "Mean [95% bootstrap interval]." + (f" Reader: {reader}." if reader else "")
    lines = [f"### {title}", "", note, "", head, sep]
    for e in summary:
        target = "-" if e["method"] == "original" else f"{e['target_ratio']:g}"
        lines.append(f"| {e['method']} | {target} | {e['n']} | "
                     + " | ".join(_cell(e, m) for m in metrics) + " |")
    return "\n".join(lines) + "\n"


def plots(summary: list[dict], out: Path, title: str) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    methods = sorted({e["method"] for e in summary if e["method"] != "original"})
    for metric in ("answer_retained", "ll_delta", "embed_sim", "numbers_kept", "structure_kept"):
        if not any(metric in e for e in summary if e["method"] != "original"):
            continue
        fig, ax = plt.subplots(figsize=(6, 4))
        for m in methods:
            pts = sorted((e["achieved_ratio"]["mean"], e[metric]["mean"], e[metric]["lo"], e[metric]["hi"])
                         for e in summary if e["method"] == m and metric in e)
            if not pts:
                continue
            xs, ys, lo, hi = zip(*pts, strict=True)
            ax.plot(xs, ys, marker="o", label=m)
            ax.fill_between(xs, lo, hi, alpha=0.15)
        ax.set_xlabel("achieved kept ratio (output/input tokens)")
        ax.set_ylabel(LABELS[metric])
        ax.set_title(f"{title}: {LABELS[metric]}")
        ax.grid(alpha=0.3)
        ax.legend()
        path = out / f"{metric}_vs_ratio.png"
        fig.tight_layout()
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append(path)
    fid = "ll_delta" if any("ll_delta" in e for e in summary) else "embed_sim"
    if any(fid in e and "tokens_per_s" in e for e in summary):
        fig, ax = plt.subplots(figsize=(6, 4))
        plotted = False
        for m in methods:
            pts = [(e["tokens_per_s"]["mean"], e[fid]["mean"]) for e in summary
                   if e["method"] == m and fid in e and "tokens_per_s" in e]
            if pts:
                xs, ys = zip(*pts, strict=True)
                ax.scatter(xs, ys, label=m)
                plotted = True
        if not plotted:
            plt.close(fig)
            return written
        ax.set_xscale("log")
        ax.set_xlabel("compression speed (input tokens/s)")
        ax.set_ylabel(LABELS[fid])
        ax.set_title(f"{title}: speed vs fidelity")
        ax.grid(alpha=0.3)
        ax.legend()
        path = out / "speed_vs_fidelity.png"
        fig.tight_layout()
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append(path)
    return written


def write_all(out: Path, title: str, rows: list[dict], summary: list[dict], meta: dict) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps({"meta": meta, "summary": summary, "rows": rows},
                                                 indent=1) + "\n", encoding="utf-8")
    (out / "results.md").write_text(markdown(summary, title, meta.get("reader")), encoding="utf-8")
    return [out / "results.json", out / "results.md", *plots(summary, out, title)]
