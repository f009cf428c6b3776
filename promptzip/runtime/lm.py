"""The local causal LM (SmolLM2-135M-Instruct) loaded once per process, on torch/CPU.

torch and transformers are imported here, lazily: `promptzip --help` and the extractive
baselines never load them. The dtype is `auto` by default: bfloat16 where the CPU computes in it
(AVX512-BF16 or AMX), float32 elsewhere. On an AVX2 CPU without them (AMD EPYC, 2 cores) bfloat16
is emulated: one forward pass over 300 tokens took 6.0 s in bfloat16 and 1.3 s in float32.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

from .store import model_path

LM_NAME = "smollm2-135m-instruct"


DTYPES = ("auto", "bfloat16", "float32")


@lru_cache(maxsize=1)
def native_bf16() -> bool:
    """Does this CPU compute in bfloat16 (AVX512-BF16 or AMX), rather than emulate it?"""
    try:
        flags = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return False
    return any(f in flags.split() for f in ("avx512_bf16", "amx_bf16"))


def resolve_dtype(dtype: str) -> str:
    """`auto` -> bfloat16 where the CPU computes in it, float32 elsewhere."""
    if dtype == "auto":
        return "bfloat16" if native_bf16() else "float32"
    return dtype


@lru_cache(maxsize=2)
def load_causal_lm(dtype: str = "auto", path: str | None = None):
    """(tokenizer, model) of the prepared SmolLM2, in eval mode."""
    import torch

    dtype = resolve_dtype(dtype)
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # a library call: no "Loading weights" bar on the user's stderr
    folder = Path(path) if path else model_path(LM_NAME) / "hf"
    tok = AutoTokenizer.from_pretrained(str(folder))
    model = AutoModelForCausalLM.from_pretrained(str(folder), dtype=getattr(torch, dtype)).eval()
    return tok, model


def lm_sha256() -> str:
    """sha256 of the prepared weights file (for reports)."""
    manifest = json.loads((model_path(LM_NAME) / "manifest.json").read_text(encoding="utf-8"))
    return manifest["files"]["hf/model.safetensors"]["sha256"]
