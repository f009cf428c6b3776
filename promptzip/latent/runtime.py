"""Encoding text to latents and reading them back, with the shipped latent encoder.

Encoder: SmolLM2-135M itself with the adapter's encoder LoRA (query and value projections of
every layer) switched on, reading a chunk of `chunk_tokens` SmolLM2 tokens followed by K learned
memory tokens; the soft readout of the states at those positions gives the K latents, in one
forward pass per batch of chunks (`promptzip.latent.model.DecoderEncoder`). Decoder: the same
model, fed the latents through `inputs_embeds`, greedy, with the adapter's reading LoRA on while
latents are in its input (`config.json`'s `decoder_lora`; 0 means the plain frozen SmolLM2) and
every adapter off when it reads plain text (`answer`). One copy of the weights serves both, and
the base weights never change. Refinement (`promptzip.latent.refine`, off by default: `-p
refine=N`) polishes each chunk's latents through the decoder until it repeats the chunk. Chunks
are cut every `chunk_tokens` tokens; every chunk (the last, shorter one too) gets the K latents
the encoder was trained for at that rate.
"""

from __future__ import annotations

import json
import time
from contextlib import nullcontext
from functools import lru_cache
from pathlib import Path

import numpy as np

from .. import shipped
from ..errors import ModelError, UsageError
from ..fileutil import sha256_file
from ..runtime.lm import lm_sha256, load_causal_lm
from ..verify import check_folder
from .refine import refine as run_refine

ENCODER_NAME = "latent-smollm2"
BATCH = 8  # chunks per encoder forward pass


def latent_dir() -> Path:
    return shipped.resolve(ENCODER_NAME)


class LatentRuntime:
    def __init__(self, folder: Path | None = None, log=lambda _m: None) -> None:
        self.folder = folder or latent_dir()
        check_folder(self.folder, ("adapter.safetensors", "config.json"))
        self.config = json.loads((self.folder / "config.json").read_text(encoding="utf-8"))
        if self.config.get("encoder") != "smollm2" or self.config.get("readout") not in ("soft", "memory"):
            raise ModelError(f"{self.folder} holds a {self.config.get('encoder', 'minilm')!r} encoder "
                             f"with a {self.config.get('readout')!r} readout; this promptzip runs the one-pass "
                             "SmolLM2 encoder", "Use the models/latent-smollm2 folder that comes with it.")
        self.adapter_sha256 = sha256_file(self.folder / "adapter.safetensors")
        self.decoder_sha256 = lm_sha256()
        self.chunk_tokens = int(self.config["chunk_tokens"])
        self.ks = tuple(int(k) for k in self.config["ks"])
        self.rates = tuple(self.chunk_tokens // k for k in self.ks)
        self.log = log
        self._lm = None
        self._enc = None

    def expect(self) -> dict[str, str]:
        from .model import DECODER_BASE

        return {"encoder": ENCODER_NAME, "encoder_sha256": self.adapter_sha256,
                "decoder": DECODER_BASE, "decoder_sha256": self.decoder_sha256}

    @property
    def lm(self):
        """(tokenizer, the frozen decoder); the encoder's adapters sit in it, switched off."""
        if self._lm is None:
            # its own copy: the encoder's adapters go into this model's layers
            self._lm = load_causal_lm.__wrapped__("float32")
            self._load_encoder(self._lm[1])
        return self._lm

    def _load_encoder(self, model) -> None:
        from .model import DecoderEncoder, LatentConfig, load_adapter

        cfg = LatentConfig(**{**self.config, "ks": tuple(self.config["ks"])})
        enc = DecoderEncoder(model, cfg, float(model.get_input_embeddings().weight.detach().std()))
        load_adapter(enc, self.folder / "adapter.safetensors")
        for p in enc.trainable().values():
            p.requires_grad_(False)
        self._enc = enc.eval()

    def k_for(self, rate: int) -> int:
        if rate not in self.rates:
            raise UsageError(f"the latent encoder runs at {' or '.join(f'{r}x' for r in self.rates)}, not {rate}x",
                             f"Give -p rate={self.rates[0]}.")
        return self.chunk_tokens // rate

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
        latents, losses, used = self.encode_ids(parts, rate, refine, init, progress)
        header = {**self.expect(), "k": str(self.k_for(rate)), "rate": str(rate),
                  "chunk_tokens": str(self.chunk_tokens), "chunks": json.dumps(spans),
                  "original_tokens": str(len(ids)),
                  "ratio": f"{len(ids) / max(1, sum(len(x) for x in latents)):.3f}",
                  "init": init, "refine_steps": str(refine),
                  "refine_used": json.dumps(used),
                  "refine_loss": json.dumps([round(x, 4) for x in losses]),
                  "encode_seconds": f"{time.perf_counter() - t0:.3f}"}
        return latents, header

    def encode_ids(self, parts: list[list[int]], rate: int = 4, refine: int = 0, init: str = "encoder",
                   progress=None) -> tuple[list[np.ndarray], list[float], list[int]]:
        """Latents per chunk of decoder token ids: the encoder's, in one forward pass per
        `BATCH` chunks (`init="encoder"`), or the mean of the decoder's own token embeddings
        over each latent's run of tokens (`init="mean"`, a start for refinement only); then up to
        `refine` steps of refinement through the decoder (`promptzip.latent.refine`;
        `progress(done, total)` counts chunk-steps). Returns the latents, each chunk's final
        teacher-forced loss and its refinement steps (both empty without refinement)."""
        if init not in ("encoder", "mean"):
            raise ValueError(f"init must be 'encoder' or 'mean', not {init!r}")
        k = self.k_for(rate)
        tok, model = self.lm
        if init == "mean":
            latents = [self.mean_init(model, part, k) for part in parts]
        else:
            latents = []
            for lo in range(0, len(parts), BATCH):
                latents += self.one_pass(parts[lo:lo + BATCH], k)
        if refine <= 0 or not parts:
            return latents, [], []
        from .model import HEAD, REPEAT

        with self._enc.reading():  # refinement runs the decoder as `decode` will
            done = run_refine(model, tok(HEAD, add_special_tokens=False)["input_ids"],
                              tok(REPEAT, add_special_tokens=False)["input_ids"],
                              tok.convert_tokens_to_ids("<|im_end|>"), latents, parts, refine, progress=progress)
        return done.latents, done.losses, done.steps

    def one_pass(self, parts: list[list[int]], k: int) -> list[np.ndarray]:
        """The encoder's latents for up to `BATCH` chunks at once (left-padded, as in training)."""
        import torch

        tok, _ = self.lm
        width = max(len(p) for p in parts)
        pad = tok.convert_tokens_to_ids("<|im_end|>")
        ids = torch.tensor([[pad] * (width - len(p)) + list(p) for p in parts])
        mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in parts])
        with torch.inference_mode():
            out = self._enc(ids, mask, k).float().numpy()
        return [np.ascontiguousarray(x) for x in out]

    @staticmethod
    def mean_init(model, part: list[int], k: int) -> np.ndarray:
        """Mean of the decoder's token embeddings over each of k contiguous runs of the chunk."""
        import torch

        with torch.inference_mode():
            e = model.get_input_embeddings()(torch.tensor(part)).float().numpy()
        runs = (np.arange(len(part)) * k) // len(part)
        return np.stack([e[runs == j].mean(axis=0) if (runs == j).any() else e.mean(axis=0)
                         for j in range(k)]).astype(np.float32)

    def _generate(self, prefix_ids: list[int], latents: np.ndarray, tail_ids: list[int], max_new: int) -> str:
        import torch

        tok, model = self.lm
        emb = model.get_input_embeddings()
        end = tok.convert_tokens_to_ids("<|im_end|>")
        reading = self._enc.reading() if len(latents) else nullcontext()  # the decoder's adapter, if any
        with torch.inference_mode(), reading:
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
        question, with the decoder's reading adapter on (trained on SQuAD questions; model card:
        F1 0.105 direct, 0.144 through the reconstruction, 0.214 on the text, 16 rows at 4x)."""
        if not direct:
            return self.answer(self.decode(latents), question, max_new)
        from .model import ASK, HEAD

        tok, _ = self.lm
        head = tok(HEAD, add_special_tokens=False)["input_ids"]
        tail = tok(ASK.format(q=question), add_special_tokens=False)["input_ids"]
        allx = np.concatenate(latents) if latents else np.zeros((0, 576), np.float32)
        return first_line(self._generate(head, allx, tail, max_new))

    def answer(self, text: str, question: str, max_new: int = 48) -> str:
        """The decoder's answer to `question` from `text` (the same prompt as `ask`)."""
        from .model import ASK, HEAD

        tok, _ = self.lm
        prefix = tok(HEAD + text, add_special_tokens=False)["input_ids"]
        tail = tok(ASK.format(q=question), add_special_tokens=False)["input_ids"]
        return first_line(self._generate(prefix, np.zeros((0, 576), np.float32), tail, max_new))


def first_line(answer: str) -> str:
    """The answer up to its first line break: asked for a few words, SmolLM2 often goes on with a
    question of its own."""
    return answer.strip().split("\n", 1)[0].strip()


@lru_cache(maxsize=1)
def runtime() -> LatentRuntime:
    import sys

    return LatentRuntime(log=lambda m: print(f"promptzip: {m}", file=sys.stderr))
