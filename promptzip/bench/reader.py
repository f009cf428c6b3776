"""The `reader` section: SQuAD and GSM8K read by a reader that can answer (Qwen2.5-Coder-0.5B-
Instruct through llama.cpp), and how much of the uncompressed EM each method keeps."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from ..eval.peers import peer_python
from ..runtime.store import prepare
from .common import RATIOS, SHARED, _eval_table
from .fidelity import FIDELITY

READER = "qwen2.5-coder-0.5b-instruct"
READER_N = 200
READER_METHODS = ["truncate", "lexical", "selfinfo", "llmlingua", "extract", "extract:noquery"]


def bench_reader(work: Path, measured_only: bool = False) -> str:
    """SQuAD read by a reader that can answer (Qwen2.5-Coder-0.5B-Instruct through llama.cpp):
    EM / F1 / answer kept per method and ratio, and how much of the uncompressed EM each keeps."""
    if not SHARED.is_dir():
        return "Skipped: ../shared/corpora is not beside this checkout."
    prepare(READER, log=lambda m: print(f"bench: {m}", file=sys.stderr))
    methods = [m for m in READER_METHODS if m != "llmlingua" or peer_python().exists()]
    name, rel, _, _, _ = FIDELITY[0]
    title = f"SQuAD v2 half-dev (answerable, first {READER_N}), read by Qwen2.5-Coder-0.5B-Instruct"
    parts = [f"`promptzip eval --reader-model {READER}`: the reader answers each question over each compressed "
             "context (greedy, the frozen reader prompt, llama.cpp's server on 2 threads); EM and F1 under SQuAD "
             "normalization, and EM kept = the method's EM over the uncompressed context's on the same rows. The "
             "log-likelihood column is empty: llama.cpp's server does not score given text."
             + ("" if "llmlingua" in methods else " LLMLingua peer not run: `make peers` has not been run.")]
    parts += _eval_table(work, (name, rel, READER_N, "answer", title), methods, measured_only,
                         out_name=f"{name}-qwen", extra=["--reader-model", READER, "--no-embed"])
    parts += _em_kept_headline(work / f"eval-{name}-qwen")
    rows = gsm8k_reader_rows(work / "gsm8k-cot-reader.jsonl", GSM8K_N)
    parts += ["", f"GSM8K as the LLMLingua papers read it: the 8-shot chain-of-thought prompt "
              "(prompts/gsm8k_cot_prompt_hardest.txt) is the context that methods compress, the question is one "
              f"of the last {GSM8K_N} problems of prompts/gsm8k_train.jsonl (none of them among the examples), "
              "and the reader reasons step by step to 'The answer is N' (at most 320 tokens); EM compares N with "
              "the gold number. Methods compress the examples without the question, as the papers do."]
    parts += _eval_table(work, ("gsm8k-cot", str(rows), None, "answer", f"GSM8K: {GSM8K_N} problems after the "
                                "8-shot CoT prompt, read by Qwen2.5-Coder-0.5B-Instruct"),
                         [m for m in methods if m in GSM8K_METHODS], measured_only,
                         out_name="gsm8k-cot-qwen", extra=["--reader-model", READER, "--no-embed"])
    parts += _em_kept_headline(work / "eval-gsm8k-cot-qwen")
    parts += ["", "QMSum is not in this section: its gold answers are free-form summaries, which neither EM "
              "nor F1 of a 0.5B model's summary measures, and llama.cpp's server gives no log-likelihood of "
              "given text (the Fidelity section has QMSum read by SmolLM2's log-likelihood)."]
    return "\n".join(parts)


MIN_RIGHT = 5  # uncompressed right answers below which a reader's EM kept is not reported


def _em_kept_headline(out: Path) -> list[str]:
    """The headline of a reader table: per method, the share of the uncompressed context's EM it
    keeps at each ratio (mean [95% interval], paired on the same rows), with the share of the
    text it really kept where that is off its target."""
    path = out / "results.json"
    if not path.is_file():
        return []
    summary = json.loads(path.read_text(encoding="utf-8"))["summary"]
    first = next((r for r in summary if r["method"] == "original"), None)
    original = first["em"]["mean"] if first else None
    if first and round(original * first["n"]) < MIN_RIGHT:
        return ["", f"The reader answers {round(original * first['n'])} of the {first['n']} uncompressed problems "
                "right: too few for its EM to say what a compression costs here (a stronger reader, "
                "`--reader-endpoint`, is needed for this set)."]
    kept: dict[str, dict[float, str]] = {}
    total: dict[str, float] = {}  # a method's EM kept summed over ratios: the table's order
    for r in summary:
        if r["method"] != "original" and r.get("em_kept"):
            k, got = r["em_kept"], r["achieved_ratio"]["mean"]
            miss = f" (kept {got:.2f} of the text)" if abs(got - r["target_ratio"]) > 0.05 else ""
            kept.setdefault(r["method"], {})[r["target_ratio"]] = f"{k['mean']:.2f} [{k['lo']:.2f}, {k['hi']:.2f}]{miss}"
            total[r["method"]] = total.get(r["method"], 0.0) + k["mean"]
    if not kept or original is None:
        return []
    lines = ["", f"How much of the uncompressed EM ({original:.3f}) each method keeps:", "",
             "| method | " + " | ".join(f"EM kept @{x:g}" for x in RATIOS) + " |",
             "|---|" + "---:|" * len(RATIOS)]
    for method, by in sorted(kept.items(), key=lambda kv: -total[kv[0]]):
        lines.append(f"| {method} | " + " | ".join(by.get(x, "-") for x in RATIOS) + " |")
    return lines


GSM8K_N = 10  # 10 to 40 s a problem on 2 cores (up to 320 tokens of reasoning), 13 settings each
GSM8K_METHODS = ("truncate", "lexical", "llmlingua", "extract:noquery")  # the examples compressed once, as in the papers


def gsm8k_reader_rows(out: Path, n: int) -> Path:
    """QA rows of style `cot`: the 8-shot CoT prompt as context, each of the last `n` GSM8K
    training problems that is not one of its examples as question, its number as answer."""
    prompt = (SHARED / "prompts" / "gsm8k_cot_prompt_hardest.txt").read_text(encoding="utf-8")
    with open(SHARED / "prompts" / "gsm8k_train.jsonl", encoding="utf-8") as f:  # not splitlines: U+2028 in rows
        rows = [json.loads(line) for line in f if line.strip()]
    picked = [r for r in reversed(rows) if r["prompt"].strip()[:80] not in prompt][:n]
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("".join(json.dumps({"id": r["id"], "context": prompt, "question": r["prompt"],
                                       "answers": [r["answer"]], "style": "cot"}) + "\n" for r in picked),
                   encoding="utf-8")
    return out
