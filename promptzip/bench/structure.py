"""The `structure` section: numbers and prompt structure kept by `extract` (and `lexical`) on the
GSM8K and BBH chain-of-thought prompts."""

from __future__ import annotations

import statistics

from ..api import compress
from ..fidelity import FidelityTracker
from ..metrics import structure_kept
from .common import RATIOS, SHARED


def bench_structure() -> str:
    """Few-shot chain-of-thought prompts (GSM8K 8-shot and the 27 BBH task prompts): after
    `extract` (and `lexical` for contrast), does every number survive, and every separator,
    step marker, answer statement and example label (`eval.metrics.structure_kept`)?"""
    if not SHARED.is_dir():
        return "Skipped: ../shared/corpora is not beside this checkout."
    prompts = SHARED / "prompts"
    files = [prompts / "gsm8k_cot_prompt_hardest.txt", *sorted((prompts / "bbh_cot").glob("*.txt"))]
    texts = [(f.stem, f.read_text(encoding="utf-8")) for f in files]
    lines = [f"{len(texts)} prompts: ../shared/corpora/prompts/gsm8k_cot_prompt_hardest.txt and the "
             f"{len(texts) - 1} files of prompts/bbh_cot/. *Numbers kept*: share of the prompt's numbers in the "
             "output; *structure kept*: separators and step markers as whole lines, answer statements whole "
             "at a line end, example labels still opening a line. Achieved ratios above the request are "
             "prompts whose protected content (numbers, structure) alone exceeds the budget.", "",
             "| method | requested | mean achieved | numbers kept (mean / worst) | structure kept (mean / worst) "
             "| prompts with everything kept |", "|---|---:|---:|---:|---:|---:|"]
    for method in ("extract", "lexical"):
        for ratio in RATIOS:
            nums, structs, ratios = [], [], []
            for _, text in texts:
                res = compress(text, method, ratio=ratio)
                tracker = FidelityTracker()
                tracker.input(text)
                tracker.output(res.text)
                nums.append(tracker.result().numbers_kept)
                structs.append(structure_kept(text, res.text))
                ratios.append(res.report.ratio)
            n = [x for x in nums if x is not None]
            st = [x for x in structs if x is not None]
            whole = sum((a is None or a == 1.0) and (b is None or b == 1.0) for a, b in zip(nums, structs, strict=True))
            lines.append(f"| {method} | {ratio} | {statistics.fmean(ratios):.3f} | {statistics.fmean(n):.3f} / "
                         f"{min(n):.3f} | {statistics.fmean(st):.3f} / {min(st):.3f} | {whole} of {len(texts)} |")
    return "\n".join(lines)
