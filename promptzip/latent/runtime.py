"""Encoding text to latents and reading them back, with the shipped latent encoder.

Encoder path: MiniLM with the adapter's LoRA merged, exported once to ONNX (fp32) into the
model store from the base weights and `models/latent-minilm/adapter.safetensors` (the base is
not ours to commit, the adapter is small); the pooled readout, projector, norm and scale run in
numpy. Refinement (`promptzip.latent.refine`, optional, on by default in the CLI) then moves
each chunk's latents through the frozen decoder until it repeats the chunk. Decoder path: the
frozen SmolLM2 in torch, fed the latents through `inputs_embeds`, greedy. The text is cut into
chunks of `chunk_tokens` SmolLM2 tokens; each chunk becomes `ceil(tokens / rate)` latents (the
pooled readout serves any count).
"""

from __future__ import annotations

import json
import math
import time
from functools import lru_cache
from pathlib import Path

import numpy as np

from .. import shipped
from ..errors import ModelError
from ..fileutil import sha256_file
from ..runtime.lm import lm_sha256, load_causal_lm
from ..runtime.onnx import session
from ..verify import check_folder
from .refine import refine as run_refine

DEFAULT_LATENT_MODEL = shipped.default("latent-minilm")  # overrides aside
ENCODER_NAME = "latent-minilm"
ASK = "\nAnswer the question from the text above in a few words. Question: {q}<|im_end|>\n<|im_start|>assistant\n"


def latent_dir() -> Path:
    return shipped.resolve("latent-minilm")


def _gelu(x: np.ndarray) -> np.ndarray:
    from math import erf

    return 0.5 * x * (1.0 + np.vectorize(erf)(x / math.sqrt(2.0)))


class LatentRuntime:
    def __init__(self, folder: Path | None = None, log=lambda _m: None) -> None:
        from safetensors.numpy import load_file

        from .export import (
            encoder_onnx,  # .export and .model import torch: loaded when a latent path runs
        )

        self.folder = folder or latent_dir()
        self.config = json.loads((self.folder / "config.json").read_text(encoding="utf-8"))
        if self.config.get("readout", "pool") != "pool":
            raise ModelError(f"{self.folder} holds a {self.config['readout']!r} encoder; the runtime reads 'pool'")

        check_folder(self.folder, ("adapter.safetensors", "config.json"))
        self.adapter_sha256 = sha256_file(self.folder / "adapter.safetensors")
        self.weights = load_file(str(self.folder / "adapter.safetensors"))
        onnx, self.tok = encoder_onnx(self.folder, self.adapter_sha256, log)
        self.sess, self.device, self.warning = session(str(onnx))
        self.decoder_sha256 = lm_sha256()
        self.chunk_tokens = int(self.config["chunk_tokens"])
        self.max_subwords = int(self.config["max_subwords"])
        self._lm = None

    def expect(self) -> dict[str, str]:
        from .model import DECODER_BASE

        return {"encoder": ENCODER_NAME, "encoder_sha256": self.adapter_sha256,
                "decoder": DECODER_BASE, "decoder_sha256": self.decoder_sha256}

    @property
    def lm(self):
        if self._lm is None:
            self._lm = load_causal_lm("float32")
        return self._lm

    def head(self, states: np.ndarray, mask: np.ndarray, k: int) -> np.ndarray:
        """Pooled readout + projector + norm + scale, in numpy: (S, 384) states -> (k, 576)."""
        w = self.weights
        n = int(mask.sum()) - 2
        h = states[1:1 + n]
        runs = (np.arange(n) * k) // max(n, 1)
        pooled = np.stack([h[runs == j].mean(axis=0) if (runs == j).any() else np.zeros(h.shape[1], h.dtype)
                           for j in range(k)])
        x = _gelu(pooled @ w["proj.0.weight"].T + w["proj.0.bias"])
        x = x @ w["proj.2.weight"].T + w["proj.2.bias"]
        mu, var = x.mean(-1, keepdims=True), x.var(-1, keepdims=True)
        x = (x - mu) / np.sqrt(var + 1e-5) * w["norm.weight"] + w["norm.bias"]
        return (x * w["scale"]).astype(np.float32)

    def encode(self, text: str, rate: int = 4, refine: int = 0, init: str = "encoder",
               progress=None) -> tuple[list[np.ndarray], dict]:
        """The text cut into chunks of `chunk_tokens` decoder tokens, each encoded by
        `encode_ids`; returns the latents and the file header."""
        tok, _ = self.lm
        enc = tok(text, add_special_tokens=False, return_offsets_mapping=True)
        ids, offsets = enc["input_ids"], enc["offset_mapping"]
        t0 = time.perf_counter()
        los = range(0, len(ids), self.chunk_tokens)
        parts = [ids[lo:lo + self.chunk_tokens] for lo in los]
        spans = [[offsets[lo][0], offsets[lo + len(p) - 1][1]] for lo, p in zip(los, parts, strict=True)]
        latents, losses, _ = self.encode_ids(parts, rate, refine, init, progress)
        header = {**self.expect(), "k": str(max(1, self.chunk_tokens // rate)), "rate": str(rate),
                  "chunk_tokens": str(self.chunk_tokens), "chunks": json.dumps(spans),
                  "original_tokens": str(len(ids)),
                  "ratio": f"{len(ids) / max(1, sum(len(x) for x in latents)):.3f}",
                  "init": init, "refine_steps": str(refine),
                  "refine_loss": json.dumps([round(x, 4) for x in losses]),
                  "encode_seconds": f"{time.perf_counter() - t0:.3f}"}
        return latents, header

    def encode_ids(self, parts: list[list[int]], rate: int = 4, refine: int = 0, init: str = "encoder",
                   progress=None) -> tuple[list[np.ndarray], list[float], list[int]]:
        """Latents per chunk of decoder token ids, `ceil(len / rate)` each: the encoder's
        (`init="encoder"`) or the mean of the decoder's own token embeddings over each latent's
        run of tokens (`init="mean"`), then up to `refine` steps of refinement through the
        decoder (`promptzip.latent.refine`; `progress(done, total)` counts chunk-steps). Returns the
        latents, each chunk's final teacher-forced loss and its refinement steps (both empty
        without refinement)."""
        if init not in ("encoder", "mean"):
            raise ValueError(f"init must be 'encoder' or 'mean', not {init!r}")
        tok, model = self.lm
        latents = []
        for part in parts:
            k = max(1, math.ceil(len(part) / rate))
            if init == "mean":
                latents.append(self.mean_init(model, part, k))
                continue
            sub = self.tok.encode(tok.decode(part))
            sub_ids = sub.ids[:self.max_subwords - 1] + [sub.ids[-1]] if len(sub.ids) > self.max_subwords else sub.ids
            arr = np.asarray([sub_ids], dtype=np.int64)
            mask = np.ones_like(arr)
            states = self.sess.run(["last_hidden_state"], {"input_ids": arr, "attention_mask": mask,
                                                           "token_type_ids": np.zeros_like(arr)})[0][0]
            latents.append(self.head(states, mask[0], k))
        if refine <= 0 or not parts:
            return latents, [], []
        from .model import HEAD, REPEAT

        done = run_refine(model, tok(HEAD, add_special_tokens=False)["input_ids"],
                          tok(REPEAT, add_special_tokens=False)["input_ids"],
                          tok.convert_tokens_to_ids("<|im_end|>"), latents, parts, refine, progress=progress)
        return done.latents, done.losses, done.steps

    @staticmethod
    def mean_init(model, part: list[int], k: int) -> np.ndarray:
        """Mean of the decoder's token embeddings over each of k contiguous runs of the chunk."""
        import torch

        with torch.inference_mode():
            e = model.get_input_embeddings()(torch.tensor(part)).float().numpy()
        runs = (np.arange(len(part)) * k) // len(part)
        return np.stack([e[runs == j].mean(axis=0) for j in range(k)]).astype(np.float32)

    def _generate(self, prefix_ids: list[int], latents: np.ndarray, tail_ids: list[int], max_new: int) -> str:
        import torch

        tok, model = self.lm
        emb = model.get_input_embeddings()
        end = tok.convert_tokens_to_ids("<|im_end|>")
        with torch.inference_mode():
            x = torch.cat([emb(torch.tensor(prefix_ids)), torch.from_numpy(latents), emb(torch.tensor(tail_ids))])
            x = x.unsqueeze(0)
            out = model.generate(inputs_embeds=x, attention_mask=torch.ones(x.shape[:2], dtype=torch.long),
                                 max_new_tokens=max_new, do_sample=False, eos_token_id=end, pad_token_id=end)
        return tok.decode([t for t in out[0].tolist() if t != end], skip_special_tokens=True)

    def decode(self, latents: list[np.ndarray]) -> str:
        from .model import HEAD, REPEAT

        tok, _ = self.lm
        head = tok(HEAD, add_special_tokens=False)["input_ids"]
        tail = tok(REPEAT, add_special_tokens=False)["input_ids"]
        return "".join(self._generate(head, x, tail, self.chunk_tokens + 8) for x in latents)

    def ask(self, latents: list[np.ndarray], question: str, direct: bool = False, max_new: int = 48) -> str:
        """The decoder's answer from the latents: by default it reconstructs the text from them
        and answers from that (`answer`); `direct` puts the latents themselves before the
        question. Refined latents are made for "Repeat the text above.", and read directly they
        answer poorly (model card: F1 0.03 on 6 SQuAD rows at 4x against 0.29 through the
        reconstruction)."""
        if not direct:
            return self.answer(self.decode(latents), question, max_new)
        from .model import HEAD

        tok, _ = self.lm
        head = tok(HEAD, add_special_tokens=False)["input_ids"]
        tail = tok(ASK.format(q=question), add_special_tokens=False)["input_ids"]
        allx = np.concatenate(latents) if latents else np.zeros((0, 576), np.float32)
        return self._generate(head, allx, tail, max_new).strip()

    def answer(self, text: str, question: str, max_new: int = 48) -> str:
        """The decoder's answer to `question` from `text` (the same prompt as `ask`)."""
        from .model import HEAD

        tok, _ = self.lm
        prefix = tok(HEAD + text, add_special_tokens=False)["input_ids"]
        tail = tok(ASK.format(q=question), add_special_tokens=False)["input_ids"]
        return self._generate(prefix, np.zeros((0, 576), np.float32), tail, max_new).strip()


@lru_cache(maxsize=1)
def runtime() -> LatentRuntime:
    import sys

    return LatentRuntime(log=lambda m: print(f"promptzip: {m}", file=sys.stderr))
