"""Capacity probe of the frozen decoder: can SmolLM2 reproduce a chunk from K input vectors
that are optimized directly (no encoder)? If it can, whatever keeps the latent model from
reconstructing is on the encoder's side.

`python -m promptzip.latent.probe --k 16 --steps 100`: takes `--chunks` held-out chunks of
`chunk_tokens` tokens (WikiText-2 test, as the latent model's evaluation), starts each chunk's K
vectors at the mean token embedding of its K runs, optimizes them with Adam through the frozen
decoder (HEAD + vectors + "Repeat the text above." -> the chunk), then decodes greedily from
them and prints one JSON line: teacher-forced loss along the way, precision and token exact
match of the greedy output.
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from ..metrics import precision, token_match
from .model import HEAD, REPEAT, LatentConfig, load_bases
from .train import held_out


def probe(k: int, steps: int, n_chunks: int = 4, lr: float = 0.05, log=print) -> dict:
    chunk_tokens = LatentConfig().chunk_tokens
    if chunk_tokens % k:
        raise ValueError(f"k must divide {chunk_tokens}")
    _, _, lm, ltok = load_bases()
    emb = lm.get_input_embeddings()
    chunks = held_out(ltok, chunk_tokens, n_chunks)
    with torch.no_grad():
        head = emb(torch.tensor(ltok(HEAD, add_special_tokens=False)["input_ids"]))
        repeat = emb(torch.tensor(ltok(REPEAT, add_special_tokens=False)["input_ids"]))
        end = ltok("<|im_end|>", add_special_tokens=False)["input_ids"]
        targets = [torch.tensor(c + end) for c in chunks]
        target_emb = [emb(t) for t in targets]
        start = torch.stack([emb(torch.tensor(c)).view(k, -1, emb.embedding_dim).mean(1) for c in chunks])
    vectors = torch.nn.Parameter(start.clone())
    opt = torch.optim.Adam([vectors], lr=lr * float(emb.weight.std()))
    prefix_len = head.shape[0] + k + repeat.shape[0]
    labels = torch.stack([torch.cat([torch.full((prefix_len,), -100), t]) for t in targets])
    curve, t0 = [], time.perf_counter()
    for step in range(1, steps + 1):
        x = torch.stack([torch.cat([head, vectors[i], repeat, target_emb[i]]) for i in range(len(chunks))])
        loss = lm(inputs_embeds=x, labels=labels).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step == 1 or step % 25 == 0 or step == steps:
            curve.append({"step": step, "loss": round(loss.item(), 4), "seconds": round(time.perf_counter() - t0)})
            log(json.dumps(curve[-1]))
    prec, em = [], []
    with torch.inference_mode():
        for i, chunk in enumerate(chunks):
            x = torch.cat([head, vectors[i], repeat]).unsqueeze(0)
            out = lm.generate(inputs_embeds=x, attention_mask=torch.ones(x.shape[:2], dtype=torch.long),
                              max_new_tokens=chunk_tokens + 8, do_sample=False, eos_token_id=end[0],
                              pad_token_id=end[0])[0].tolist()
            out = [t for t in out if t != end[0]]
            prec.append(precision(ltok.decode(chunk), ltok.decode(out)))
            em.append(token_match(chunk, out))
    return {"k": k, "ratio": chunk_tokens / k, "chunks": len(chunks), "steps": steps, "curve": curve,
            "precision": sum(prec) / len(prec), "token_em": sum(em) / len(em)}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--k", type=int, default=16, help="vectors per chunk (64 / k = the rate)")
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--chunks", type=int, default=4)
    ap.add_argument("--lr", type=float, default=0.05, help="in units of the embedding std")
    ap.add_argument("--threads", type=int, default=None)
    a = ap.parse_args(argv)
    if a.threads:
        torch.set_num_threads(a.threads)
    res = probe(a.k, a.steps, a.chunks, a.lr)
    print(json.dumps({k: v for k, v in res.items() if k != "curve"}))


if __name__ == "__main__":
    main()
