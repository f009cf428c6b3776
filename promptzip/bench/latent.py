"""The `latent` section: the shipped encoder's learning curve, its held-out reconstruction in one
pass and with refinement as a polish, encoding / decoding speed on the demo document, and `ask`
from the latents against the same reader on the text."""

from __future__ import annotations

import json
import statistics
import time

from ..fileutil import read_jsonl
from ..latent.runtime import LatentRuntime, latent_dir
from ..metrics import f1
from .common import ROOT, SHARED

QA_ROWS = 16  # answerable SQuAD v2 half-dev rows (never trained on) for `ask`
REFINE_STEPS = 200


def bench_latent() -> str:
    """The shipped latent encoder: held-out learning curve (models/latent-smollm2/eval.jsonl),
    held-out reconstruction in one pass at every trained rate and polished by refinement at the
    first (needs ../shared),
    speed on the demo document, and `ask` F1 (needs ../shared)."""
    # heavy (torch): latent.train imports it at module level, latent.fidelity through it
    from ..latent.fidelity import measure
    from ..latent.train import held_out

    folder = latent_dir()
    rt = LatentRuntime(folder)
    rate = rt.rates[0]
    evals = [json.loads(line) for line in open(folder / "eval.jsonl", encoding="utf-8")]
    curve = ["| step | CPU hours | latents per 64 tokens | rate | precision | token exact match |",
             "|---:|---:|---:|---:|---:|---:|"]
    for e in (e for e in evals if e.get("task") != "qa"):
        curve.append(f"| {e['step']} | {e['cpu_hours']:.2f} | {e['k']} | {e['ratio']:.0f}x | {e['precision']:.3f} | "
                     f"{e['token_em']:.3f} |")
    text = (ROOT / "corpora" / "demo" / "incident-report.md").read_text(encoding="utf-8")
    rt.encode(text[:500], rate)  # warm up: weights, tokenizer, first forward pass
    held = ["| rate | latents from | refinement steps at most | chunks | precision | token exact match | exact chunks | "
            "mean steps taken | median final loss | encode tokens/s | decode tokens/s |",
            "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    shared_text = (SHARED / "text").is_dir()
    if shared_text:
        chunks = held_out(rt.lm[0], rt.chunk_tokens, 16)
        runs = [(rate, "encoder", 0, 16), (rate, "encoder", REFINE_STEPS, 8), (rate, "mean", REFINE_STEPS, 4)]
        runs[1:1] = [(other, "encoder", 0, 16) for other in rt.rates[1:]]  # every other trained rate, one pass
        for at, init, refine, n in runs:
            r = measure(rt, chunks[:n], at, refine, init)
            loss = "" if r["final_loss_median"] is None else f"{r['final_loss_median']:.3f}"
            held.append(f"| {at}x | {'the encoder (one pass)' if init == 'encoder' else 'mean token embeddings'} | {refine} | "
                        f"{r['chunks']} | {r['precision']:.3f} | {r['token_em']:.3f} | {r['exact_chunks']} | "
                        f"{r['steps_mean']:.1f} | {loss} | {r['encode_tokens_per_s']:,.1f} | "
                        f"{r['decode_tokens_per_s']:.1f} |")
    else:
        held.append("| | (../shared/corpora/text is absent: not measured) | | | | | | | | | |")
    speed = ["| document | decoder tokens | latents | encode s | encode tokens/s | decode s (first 2 chunks) | "
             "decoded tokens/s |", "|---|---:|---:|---:|---:|---:|---:|"]
    for label, doc in (("corpora/demo/incident-report.md", text), ("the same, 4 times over", "\n\n".join([text] * 4))):
        t0 = time.perf_counter()
        latents, header = rt.encode(doc, rate)
        enc_s = time.perf_counter() - t0
        n = int(header["original_tokens"])
        t0 = time.perf_counter()
        out = rt.decode(latents[:2])
        dec_s = time.perf_counter() - t0
        new = len(rt.lm[0](out, add_special_tokens=False)["input_ids"])
        speed.append(f"| {label} | {n:,} | {sum(len(x) for x in latents)} | {enc_s:.2f} | {n / enc_s:,.0f} | "
                     f"{dec_s:.1f} | {new / dec_s:.1f} |")
    qa = ask_table(rt, rate) if (SHARED / "qa").is_dir() else ["(../shared/corpora/qa is absent: not measured)"]
    return "\n".join([
        "Held-out reconstruction (WikiText-2 test chunks of 64 SmolLM2 tokens, never trained on): precision = "
        "1 - character edit distance / length (C3's decoding precision); token exact match = share of "
        "positions where the greedy reconstruction has the original token.", "",
        "### Held-out reconstruction", "",
        "`python -m promptzip.latent.fidelity`'s measure: latents from the encoder in one pass (what `compress -m "
        f"latent` does) or polished by refinement (`-p refine={REFINE_STEPS}`, stopping at loss 0.05), from the "
        "encoder's latents or from the mean token embeddings; then `promptzip decode`'s greedy path. Encode "
        "tokens/s include the refinement.", "", *held, "",
        "### Learning curve (held-out, written during training)", "",
        f"From {folder.name}/eval.jsonl.", "", *curve, "",
        "### Speed, encoder in one pass (2 cores)", "", *speed, "",
        f"### `ask` at {rate}x (SQuAD v2 half-dev, first {QA_ROWS} answerable rows)", "", *qa])


def ask_table(rt: LatentRuntime, rate: int) -> list[str]:
    """F1 of SmolLM2's answers on the text, on the text reconstructed from the latents (`ask`)
    and from the latents themselves (`ask --direct`)."""
    rows = [r for r in read_jsonl(SHARED / "qa" / "squad_v2_half_dev.jsonl") if r.get("answers")][:QA_ROWS]
    scores: dict[str, list[float]] = {"text": [], "reconstruction": [], "direct": []}
    seconds: dict[str, float] = dict.fromkeys(scores, 0.0)
    for r in rows:
        t0 = time.perf_counter()
        scores["text"].append(f1(rt.answer(r["context"], r["question"]), r["answers"]))
        seconds["text"] += time.perf_counter() - t0
        t0 = time.perf_counter()
        latents, _ = rt.encode(r["context"], rate)
        enc_s = time.perf_counter() - t0
        for mode in ("reconstruction", "direct"):
            t0 = time.perf_counter()
            scores[mode].append(f1(rt.ask(latents, r["question"], direct=mode == "direct"), r["answers"]))
            seconds[mode] += time.perf_counter() - t0 + enc_s
    base = statistics.fmean(scores["text"])
    out = ["| the reader (SmolLM2-135M-Instruct) reads | F1 | share of F1 on the text | seconds per question |",
           "|---|---:|---:|---:|"]
    for mode, label in (("text", "the text"), ("reconstruction", "the text decoded from the latents (`ask`)"),
                        ("direct", "the latents (`ask --direct`)")):
        mean = statistics.fmean(scores[mode])
        out.append(f"| {label} | {mean:.3f} | {mean / base if base else 0:.2f} | {seconds[mode] / len(rows):.1f} |")
    return out
