"""Refinement: the latents of a chunk improved by gradient steps through the frozen decoder.

The encoder's latents are a starting point. Because the encoder has the text, it can check what
the decoder makes of them: it runs `HEAD + latents + "Repeat the text above." + chunk` through
the frozen SmolLM2, takes the cross-entropy of the chunk's tokens (teacher forcing), and moves
the latents (only them: no weight changes) down its gradient with Adam. A chunk stops once its
loss is under `stop_loss`, where greedy decoding reproduces it (measured in the model card).
This is semi-amortized encoding: slow (each step is a forward and backward pass of the
decoder), and the price of a decoder that copies from the latents.

Chunks with the same number of latents and tokens run as one batch; each chunk has its own
parameter, so Adam moves it independently of the others and a finished chunk leaves the batch.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np


@dataclass
class Refined:
    latents: list[np.ndarray]
    losses: list[float]  # teacher-forced loss per chunk (nats per token) at the end
    steps: list[int]  # steps each chunk took


def refine(lm, head: list[int], tail: list[int], end: int, latents: list[np.ndarray], chunks: list[list[int]],
           steps: int, lr: float = 0.15, stop_loss: float = 0.05, batch: int = 8,
           progress: Callable[[int, int], None] | None = None) -> Refined:
    """Refine each chunk's latents for up to `steps` Adam steps (lr in units of the decoder's
    embedding std). `progress(done, total)` is called after each step with chunk-steps done and
    the total still expected (it shrinks as chunks finish early)."""
    out = [x.copy() for x in latents]
    if steps <= 0 or not chunks:
        return Refined(out, [float("nan")] * len(chunks), [0] * len(chunks))
    frozen = [(p, p.requires_grad) for p in lm.parameters()]
    for p, _ in frozen:  # gradients reach the latents only, never the decoder's weights
        p.requires_grad_(False)
    try:
        return _refine(lm, head, tail, end, latents, chunks, steps, lr, stop_loss, batch, progress, out)
    finally:
        for p, flag in frozen:
            p.requires_grad_(flag)


def _refine(lm, head, tail, end, latents, chunks, steps, lr, stop_loss, batch, progress, out) -> Refined:
    import torch

    emb = lm.get_input_embeddings()
    std = float(emb.weight.std())
    losses = [float("nan")] * len(chunks)
    used = [0] * len(chunks)
    total, done = steps * len(chunks), 0
    groups: dict[tuple[int, int], list[int]] = defaultdict(list)
    for i, (x, c) in enumerate(zip(latents, chunks, strict=True)):
        groups[(len(x), len(c))].append(i)
    with torch.no_grad():
        h = emb(torch.tensor(head))
        t = emb(torch.tensor(tail))
    for members in groups.values():
        for lo in range(0, len(members), batch):
            rows = members[lo:lo + batch]
            params = [torch.nn.Parameter(torch.from_numpy(np.array(latents[i], dtype=np.float32))) for i in rows]
            opt = torch.optim.Adam(params, lr=lr * std)
            with torch.no_grad():
                targets = [torch.tensor(chunks[i] + [end]) for i in rows]
                target_emb = [emb(x) for x in targets]
            active = list(range(len(rows)))
            for _ in range(steps):
                x = torch.stack([torch.cat([h, params[r], t, target_emb[r]]) for r in active])
                logits = lm(inputs_embeds=x).logits
                n = targets[active[0]].shape[0]
                pred = logits[:, -n - 1:-1].float()
                gold = torch.stack([targets[r] for r in active])
                per_row = torch.nn.functional.cross_entropy(pred.transpose(1, 2), gold, reduction="none").mean(1)
                opt.zero_grad()
                per_row.sum().backward()
                opt.step()
                for r, loss in zip(active, per_row.tolist(), strict=True):
                    losses[rows[r]] = loss
                    used[rows[r]] += 1
                done += len(active)
                finished = [r for r in active if losses[rows[r]] < stop_loss]
                total -= sum(steps - used[rows[r]] for r in finished)
                if progress:
                    progress(done, total)
                active = [r for r in active if r not in finished]
                if not active:
                    break
            for r, i in enumerate(rows):
                out[i] = params[r].detach().numpy().copy()
    return Refined(out, losses, used)
