"""The `rewrite` section: `rewrite` beside `extract` on SQuAD and QMSum, the share of chunks per
path, and local generation speed (onnxruntime-genai against transformers' generate)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from ..api import compress
from ..compressors.rewrite import SYSTEM
from ..eval.data import load_items
from ..runtime.generate import local_generator
from ..runtime.lm import load_causal_lm
from .common import ROOT, SHARED

REWRITE_SETS = (("squad", "qa/squad_v2_half_dev.jsonl", 16, "0.5,0.33", []),
                ("qmsum", "meetings/qmsum_val.jsonl", 2, "0.33", ["--max-chars", "20000"]))
SPEED_PROMPT_CHARS = 1200


def bench_rewrite(work: Path, measured_only: bool = False) -> str:
    """rewrite vs extract on SQuAD and QMSum (promptzip eval, reader log-likelihood), the share
    of chunks per path (re-run through the completion cache), and local generation speed:
    onnxruntime-genai against transformers' generate on the same prompt."""
    if not SHARED.is_dir():
        return "Skipped: ../shared/corpora is not beside this checkout."
    parts = ["`promptzip eval --methods rewrite,extract --no-generate` (reader: SmolLM2 log-likelihood of the "
             "gold answer; *entities kept*: the guard's names, *invented numbers*: distinct numbers in the "
             "output that the input lacks). Local backend: SmolLM2-135M on onnxruntime-genai, copy-constrained."]
    paths_all: dict[str, int] = {}
    for name, rel, limit, ratios, extra in REWRITE_SETS:
        out = work / f"eval-rewrite-{name}"
        cmd = [sys.executable, "-m", "promptzip", "eval", str(SHARED / rel), "--methods", "rewrite,extract",
               "--ratios", ratios, "--limit", str(limit), "--no-generate", "--out", str(out),
               "--title", f"rewrite vs extract: {name}", *extra]
        if measured_only:
            cmd += ["--measured-only"]
        print(f"bench: rewrite eval {name} ...", file=sys.stderr)
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
        parts += ["", (out / "results.md").read_text(encoding="utf-8").rstrip()]
        done = {json.loads(line)["item"] for line in open(out / "rows.jsonl", encoding="utf-8")
                if json.loads(line)["method"] == "rewrite"}
        items = [it for it in load_items(SHARED / rel, limit, 20000 if extra else None) if it.id in done]
        paths: dict[str, int] = {}
        for it in items:  # completions come from the cache the eval filled: no generation here
            for ratio in map(float, ratios.split(",")):
                rep = compress(it.context, method="rewrite", ratio=ratio, query=it.question).report
                for c in rep.chunks or []:
                    paths[c["path"]] = paths.get(c["path"], 0) + 1
        total = sum(paths.values())
        asked = sum(paths.get(p, 0) for p in ("rewrite", "retry", "extract"))
        fell = paths.get("extract", 0)
        for p, n in paths.items():
            paths_all[p] = paths_all.get(p, 0) + n
        parts += ["", f"Chunks by path ({len(items)} items, all ratios): " +
                  ", ".join(f"{p} {n} ({n / total:.0%})" for p, n in sorted(paths.items())) +
                  f". Of the {asked} chunks that needed rewriting, {fell} ({fell / max(asked, 1):.0%}) fell back "
                  "to extraction."]
    # generation speed, same prompt and greedy settings, both backends in this run
    gen = local_generator(True)
    text = (ROOT / "corpora" / "demo" / "incident-report.md").read_text(encoding="utf-8")[:SPEED_PROMPT_CHARS]
    msgs = [{"role": "system", "content": SYSTEM.format(words=60)}, {"role": "user", "content": text}]
    rows = ["| backend | prompt tokens | new tokens | seconds | tokens/s |", "|---|---:|---:|---:|---:|"]
    free = local_generator(False)
    n_prompt = len(free.prompt_ids(msgs))
    for label, g in (("onnxruntime-genai fp32", free), ("onnxruntime-genai fp32, copy-constrained", gen)):
        g.generated_tokens, g.seconds = 0, 0.0
        g.complete(msgs, 80, text)
        rows.append(f"| {label} | {n_prompt} | {g.generated_tokens} | {g.seconds:.2f} | {g.generated_tokens / g.seconds:.1f} |")
    import torch  # heavy (torch): only this section's last table needs it

    for dtype in ("float32", "bfloat16"):
        tok, model = load_causal_lm(dtype)
        ids = torch.tensor([free.prompt_ids(msgs)])
        with torch.inference_mode():
            model.generate(ids, max_new_tokens=2, do_sample=False)
            t0 = time.perf_counter()
            out = model.generate(ids, max_new_tokens=80, min_new_tokens=80, do_sample=False)
            secs = time.perf_counter() - t0
        new = out.shape[1] - ids.shape[1]
        rows.append(f"| transformers generate, torch {dtype} | {ids.shape[1]} | {new} | {secs:.2f} | {new / secs:.1f} |")
    parts += ["", "### Local generation speed (2 cores; prefill included)", "", *rows]
    return "\n".join(parts)
