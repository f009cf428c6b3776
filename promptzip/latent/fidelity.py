"""Reconstruction fidelity of the shipped latent path (encoder, optional refinement, decoder) on
held-out text: `python -m promptzip.latent.fidelity --rates 4 --refine 0`.

Chunks of `chunk_tokens` decoder tokens from WikiText-2 *test* (never trained on; the same
seeded draw as the training run's evaluation) are encoded with `LatentRuntime.encode_ids` and
decoded greedily, one chunk at a time, exactly as `promptzip decode` does. Per rate it prints
one JSON line: precision (1 - character edit distance / length, C3's decoding precision), token
exact match, encode and decode seconds and tokens/s, and the refinement's final losses and
steps.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time

from ..metrics import precision, token_match
from .runtime import LatentRuntime
from .train import held_out


def measure(rt, chunks: list[list[int]], rate: int, refine: int, init: str, log=lambda _m: None) -> dict:
    tok, _ = rt.lm
    def progress(done: int, total: int) -> None:
        if done % 100 < len(chunks):
            log(f"{rate}x: {done} of at most {total} chunk-steps of refinement")

    t0 = time.perf_counter()
    latents, losses, steps = rt.encode_ids(chunks, rate, refine, init, progress)
    enc_s = time.perf_counter() - t0
    prec, em, t1 = [], [], time.perf_counter()
    for chunk, x in zip(chunks, latents, strict=True):
        text = rt.decode([x])
        prec.append(precision(tok.decode(chunk), text))
        em.append(token_match(chunk, tok(text, add_special_tokens=False)["input_ids"]))
    dec_s = time.perf_counter() - t1
    tokens = sum(len(c) for c in chunks)
    return {"rate": rate, "latents": sum(len(x) for x in latents), "chunks": len(chunks), "init": init,
            "refine": refine, "precision": round(statistics.fmean(prec), 4), "token_em": round(statistics.fmean(em), 4),
            "exact_chunks": sum(p == 1.0 for p in prec),
            "encode_s": round(enc_s, 1), "encode_tokens_per_s": round(tokens / enc_s, 2),
            "decode_s": round(dec_s, 1), "decode_tokens_per_s": round(tokens / dec_s, 2),
            "final_loss_median": round(statistics.median(losses), 4) if losses else None,
            "steps_mean": round(statistics.fmean(steps), 1) if steps else 0}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rates", default="4")
    ap.add_argument("--refine", type=int, default=0, help="refinement steps at most per chunk (0 = one pass)")
    ap.add_argument("--init", default="encoder", choices=("encoder", "mean"))
    ap.add_argument("--chunks", type=int, default=8)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--out", default=None, help="append the JSON lines to this file too")
    a = ap.parse_args(argv)
    if a.threads:
        import torch

        torch.set_num_threads(a.threads)
    rt = LatentRuntime(log=lambda m: print(m, file=sys.stderr))
    tok, _ = rt.lm
    chunks = held_out(tok, rt.chunk_tokens, a.chunks)
    for rate in (int(x) for x in a.rates.split(",")):
        res = measure(rt, chunks, rate, a.refine, a.init, log=lambda m: print(m, file=sys.stderr, flush=True))
        line = json.dumps(res)
        print(line, flush=True)
        if a.out:
            with open(a.out, "a", encoding="utf-8") as f:
                f.write(line + "\n")


if __name__ == "__main__":
    main()
