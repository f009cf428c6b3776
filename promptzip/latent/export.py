"""The latent encoder's ONNX graph: MiniLM with the adapter's LoRA merged into its query and
value projections, returning the subword states (`last_hidden_state`, batch x length x 384).

Built once per adapter (keyed by its sha256) into the model store, from the sha256-pinned base
weights: the repository commits only the adapter. fp32: the latents feed a frozen decoder
that was never trained on quantization noise.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

from ..runtime.onnx import wordpiece
from ..runtime.store import model_path, models_dir
from .model import ENCODER_BASE


def encoder_onnx(folder: Path, adapter_sha256: str, log=lambda _m: None):
    """(path of encoder.onnx, wordpiece tokenizer), exporting it when missing."""

    out = models_dir() / "latent-minilm" / adapter_sha256[:16]
    onnx = out / "encoder.onnx"
    if not onnx.is_file():
        log("exporting the latent encoder to ONNX (once)")
        export(folder, out)
    return onnx, wordpiece(str(model_path(ENCODER_BASE) / "tokenizer.json"))


def export(folder: Path, out: Path, opset: int = 17) -> Path:
    import torch
    from safetensors.torch import load_file
    from transformers import BertModel

    cfg = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    scale = float(cfg["lora_alpha"]) / int(cfg["lora_rank"])
    bert = BertModel.from_pretrained(str(model_path(ENCODER_BASE)), add_pooling_layer=False).eval()
    adapter = load_file(str(folder / "adapter.safetensors"))
    with torch.no_grad():
        for i, layer in enumerate(bert.encoder.layer):
            att = layer.attention.self
            for name in ("query", "value"):
                a = adapter[f"bert.encoder.layer.{i}.attention.self.{name}.a"]
                b = adapter[f"bert.encoder.layer.{i}.attention.self.{name}.b"]
                getattr(att, name).weight += scale * b @ a

    class States(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inner = bert

        def forward(self, input_ids, attention_mask, token_type_ids):
            return self.inner(input_ids=input_ids, attention_mask=attention_mask,
                              token_type_ids=token_type_ids).last_hidden_state

    out.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".latent-export.", dir=out.parent))
    try:
        inputs = ("input_ids", "attention_mask", "token_type_ids")
        example = (torch.ones((1, 16), dtype=torch.long), torch.ones((1, 16), dtype=torch.long),
                   torch.zeros((1, 16), dtype=torch.long))
        with torch.inference_mode():
            torch.onnx.export(States(), example, str(work / "encoder.onnx"), input_names=list(inputs),
                              output_names=["last_hidden_state"], opset_version=opset, dynamo=False,
                              dynamic_axes={**{n: {0: "batch", 1: "length"} for n in inputs},
                                            "last_hidden_state": {0: "batch", 1: "length"}})
        if out.exists():
            shutil.rmtree(out)
        os.replace(work, out)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return out / "encoder.onnx"
