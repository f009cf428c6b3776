"""The `fidelity` and `extract-fidelity` sections: `promptzip eval` on SQuAD, QMSum and the
GSM8K CoT prompt with every method and the peers, and the SQuAD table for the shipped
`extract` alone."""

from __future__ import annotations

from pathlib import Path

from ..compressors.extract import Extract
from ..eval.peers import PEERS, peer_python
from ..runtime.lm import resolve_dtype
from .common import SHARED, _eval_table

FIDELITY = (
    # name, file under ../shared/corpora, rows, reader: "answer" (log-lik + EM/F1), "loglik" or None, title
    ("squad", "qa/squad_v2_half_dev.jsonl", 500, "answer", "SQuAD v2 half-dev (answerable, first 500)"),
    ("qmsum", "meetings/qmsum_val.jsonl", 4, "loglik",
     "QMSum val (query-aware; first 4 queries on meetings of at most 20k characters)"),
    ("gsm8k-cot", "prompts/gsm8k_cot_prompt_hardest.txt", None, None, "GSM8K 8-shot CoT prompt"),
)
ALL_METHODS = "truncate,lexical,random,selfinfo,llmlingua,longllmlingua,extract,extract:noquery"


def bench_fidelity(work: Path, methods: str, only: list[str], measured_only: bool = False) -> str:
    if not SHARED.is_dir():
        return "Skipped: ../shared/corpora is not beside this checkout."
    wanted = [m for m in methods.split(",") if m]
    notes = []
    if not peer_python().exists() and any(m in PEERS for m in wanted):
        wanted = [m for m in wanted if m not in PEERS]
        notes.append("LLMLingua peers skipped: `make peers` has not been run.")
    parts = ["Measured with `promptzip eval` (rows are checkpointed in bench-work/; a re-run adds only "
             f"what is missing). Reader: SmolLM2-135M-Instruct ({resolve_dtype('auto')}); similarity: all-MiniLM-L6-v2. "
             "Plots put the *achieved* kept ratio on x.", f"Methods in this run: {', '.join(wanted)}.",
             *notes]
    for spec in FIDELITY:
        if only and spec[0] not in only:
            continue
        parts += _eval_table(work, spec, wanted, measured_only)
    return "\n".join(parts)


def bench_extract_fidelity(work: Path) -> str:
    """The SQuAD table again for the shipped `extract` only: the full fidelity run (all
    methods, readers and peers) takes hours, and a retrained model should not wait for it."""
    if not SHARED.is_dir():
        return "Skipped: ../shared/corpora is not beside this checkout."
    name, rel, limit, _, title = FIDELITY[0]  # SQuAD
    sha = Extract().model_id() or "?"
    parts = [f"`extract` version {Extract.version}, models/extract-minilm/model.int8.onnx sha256 "
             f"{sha[:12]}…, measured as in the Fidelity section (same rows, reader and metrics) but "
             "without the reader's own answers (EM/F1: generation takes hours on 2 cores); where "
             "that section's date is older, its `extract` rows are an earlier model's and these "
             "supersede them. Tokens/s here are not a speed measure: a document's first ratio pays the "
             "model's forward pass and its other ratios reuse those probabilities (`extract` keeps the "
             "last documents' in memory); the Extract speed section measures speed."]
    parts += _eval_table(work, (name, rel, limit, "loglik", title), ["extract", "extract:noquery"],
                         measured_only=False, out_name=f"{name}-extract")
    return "\n".join(parts)
