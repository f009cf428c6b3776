"""The `latent` section: the shipped latent path's learning curve, its held-out reconstruction
with refinement, and encoding / decoding speed on the demo document."""

from __future__ import annotations

import json
import time

from ..compressors.latent import REFINE_DEFAULT
from ..latent.runtime import LatentRuntime, latent_dir
from .common import ROOT


def bench_latent() -> str:
    """The shipped latent path: its held-out learning curve (from models/latent-minilm), the
    held-out reconstruction with refinement at 4x, 8x and 16x (needs ../shared), and encoding /
    decoding speed on the demo document."""
    # heavy (torch): latent.train imports it at module level, latent.fidelity through it
    from ..latent.fidelity import measure
    from ..latent.train import SHARED, held_out

    folder = latent_dir()
    evals = [json.loads(line) for line in open(folder / "eval.jsonl", encoding="utf-8")]
    rows = ["| step | CPU hours | latents per 64 tokens | rate | precision | token exact match |",
            "|---:|---:|---:|---:|---:|---:|"]
    for e in evals:
        rows.append(f"| {e['step']} | {e['cpu_hours']:.2f} | {e['k']} | {e['ratio']:.0f}x | {e['precision']:.3f} | "
                    f"{e['token_em']:.3f} |")
    rt = LatentRuntime(folder)
    text = (ROOT / "corpora" / "demo" / "incident-report.md").read_text(encoding="utf-8")
    rt.encode(text[:500], 4)  # warm up: ONNX session and decoder tokenizer
    refined = ["| rate | chunks | precision | token exact match | exact chunks | median final loss | mean steps | "
               "encode tokens/s | decode tokens/s |", "|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    if (SHARED / "text").is_dir():
        chunks = held_out(rt.lm[0], rt.chunk_tokens, 8)
        for rate in (4, 8, 16):
            for init in ("encoder", "mean") if rate == 4 else ("encoder",):
                r = measure(rt, chunks, rate, REFINE_DEFAULT, init)
                label = f"{rate}x" + (" (init: mean)" if init == "mean" else "")
                refined.append(f"| {label} | {r['chunks']} | {r['precision']:.3f} | {r['token_em']:.3f} | "
                               f"{r['exact_chunks']} of {r['chunks']} | {r['final_loss_median']:.3f} | "
                               f"{r['steps_mean']:.0f} | {r['encode_tokens_per_s']:.2f} | {r['decode_tokens_per_s']:.1f} |")
    else:
        refined.append("| (../shared/corpora/text is absent: not measured) | | | | | | | | |")
    speed = ["| rate | decoder tokens | latents | encode s | encode tokens/s | decode s (first 2 chunks) | decoded tokens/s |",
             "|---:|---:|---:|---:|---:|---:|---:|"]
    for rate in (4, 8, 16):
        t0 = time.perf_counter()
        latents, header = rt.encode(text, rate)
        enc_s = time.perf_counter() - t0
        n = int(header["original_tokens"])
        t0 = time.perf_counter()
        out = rt.decode(latents[:2])
        dec_s = time.perf_counter() - t0
        new = len(rt.lm[0](out, add_special_tokens=False)["input_ids"])
        speed.append(f"| {rate}x | {n} | {sum(len(x) for x in latents)} | {enc_s:.2f} | {n / enc_s:,.0f} | "
                     f"{dec_s:.1f} | {new / dec_s:.1f} |")
    return "\n".join([
        "Held-out reconstruction (WikiText-2 test chunks of 64 SmolLM2 tokens, never trained on): precision = "
        "1 - character edit distance / length (C3's decoding precision); token exact match = share of "
        "positions where the greedy reconstruction has the original token.", "",
        f"### With refinement (what `compress -m latent` does; at most {REFINE_DEFAULT} steps per chunk, "
        "stopping at loss 0.05)", "",
        "`python -m promptzip.latent.fidelity`: the encoder's latents refined through the frozen decoder, "
        "then `promptzip decode`'s greedy path. Encode tokens/s include the refinement.", "", *refined, "",
        "### The encoder alone (no refinement), during training", "",
        "From models/latent-minilm/eval.jsonl, written during training.", "", *rows, "",
        "### Speed on the demo document, encoder alone (2 cores)", "", *speed])
