"""`selfinfo`: word deletion by self-information under SmolLM2-135M (Selective Context style).

A word the language model predicts easily from what precedes it carries little information
and can go. The document is scored in windows of `window` LM tokens, each preceded by up to
`context` tokens of the text before it (scored by nobody, seen by the model); a word's
self-information is the sum of -log p of the LM tokens that end inside it. Words are then
ranked by self-information per *target* token and kept greedily within ONE budget for the whole
document. Protected spans (numbers with units, inline code, URLs, e-mail), list markers and
units holding `--force` strings are always kept; blocks (code, tables, JSON, headings) are
single items scored by their mean self-information.

Slow by design (an LM forward pass over every token: about 1k tokens/s on 2 cores); it is the
reference the learned extractive classifier is trained to approximate cheaply.
"""

from __future__ import annotations

import numpy as np

from ..context import Context
from ..runtime.lm import lm_sha256, load_causal_lm
from .base import Compressor, Param
from .words import collect_words, select_words


class SelfInfo(Compressor):
    name = "selfinfo"
    description = "Word deletion by self-information under the local SmolLM2-135M (slow, LM-scored)."
    version = "3"  # 2: a few-shot answer line must start a text, line or sentence (words.py); 3: the LM in
    # float32 where the CPU has no native bfloat16 (`dtype` auto)
    params = (
        Param("window", int, 512, "LM tokens scored per forward pass", bounds=(16, 8192)),
        Param("context", int, 128, "LM tokens of preceding text seen but not scored", bounds=(0, 4096)),
        Param("dtype", str, "auto", "torch dtype of the LM (auto: bfloat16 where the CPU computes in it, "
              "float32 elsewhere)", ("auto", "bfloat16", "float32")),
    )

    def model_id(self) -> str | None:
        return lm_sha256()

    def compress(self, ctx: Context) -> None:
        tok, model = load_causal_lm(self.settings["dtype"])
        ctx.model, ctx.model_sha256 = "smollm2-135m-instruct", lm_sha256()
        w = collect_words(ctx)
        if not w.words:
            ctx.emit_words(np.zeros(0, dtype=bool), w.word_start, w.local)
            return
        surprisal = word_surprisal(w.text, w.spans, tok, model, self.settings["window"],
                                   self.settings["context"])
        costs = w.costs(ctx)
        score = surprisal / np.maximum(costs, 1)
        keep = select_words(ctx, w, score, costs=costs)
        if ctx.request.word_scores:  # bits of self-information per target token
            ctx.word_scores = [(word, round(float(x) / np.log(2), 3), bool(k))
                               for word, x, k in zip(w.words, score, keep, strict=True)]
        ctx.emit_words(keep, w.word_start, w.local)


def word_surprisal(text: str, spans: np.ndarray, tok, model, window: int = 512, context: int = 128) -> np.ndarray:
    """Sum of -log p over the LM tokens that end inside each word span."""
    import torch

    enc = tok(text, add_special_tokens=False, return_offsets_mapping=True)
    ids = enc["input_ids"]
    ends = np.asarray([e for _, e in enc["offset_mapping"]], dtype=np.int64)
    token_info = np.zeros(len(ids), dtype=np.float64)
    bos = tok.bos_token_id if tok.bos_token_id is not None else tok.eos_token_id
    for lo in range(0, len(ids), window):
        hi = min(len(ids), lo + window)
        ctx_lo = max(0, lo - context)
        chunk = [bos, *ids[ctx_lo:hi]]
        with torch.inference_mode():
            logits = model(torch.tensor([chunk])).logits[0].float()
        logp = torch.log_softmax(logits[:-1], dim=-1)
        target = torch.tensor(chunk[1:])
        info = -logp[torch.arange(len(target)), target].numpy()
        token_info[lo:hi] = info[lo - ctx_lo:]
    starts, word_end = spans[:, 0], spans[:, 1]
    idx = np.searchsorted(starts, ends - 1, side="right") - 1  # word whose span holds the token's last char
    inside = (idx >= 0) & (ends - 1 < word_end[np.clip(idx, 0, None)])
    out = np.zeros(len(spans), dtype=np.float64)
    np.add.at(out, idx[inside], token_info[inside])
    return out
