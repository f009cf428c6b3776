"""Export a fine-tuned classifier to ONNX (fp32) and a dynamically quantized int8 copy.

The graph takes `input_ids`, `attention_mask`, `token_type_ids` (int64, batch x length, both
dynamic) and returns `probs` (float32, batch x length): the keep probability of each subword.
Word aggregation and selection stay in numpy (`promptzip.compressors.extract`).
"""

from __future__ import annotations

import shutil
from pathlib import Path

from ..runtime.store import model_path
from .finetune import BASE, build_model


def export(state_path: Path, out_dir: Path, opset: int = 17) -> dict[str, Path]:
    import torch

    out_dir.mkdir(parents=True, exist_ok=True)
    model = build_model(dropout=0.0)
    state = torch.load(state_path, weights_only=False)
    model.load_state_dict(state["model"])
    model.eval()

    class Probs(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inner = model

        def forward(self, input_ids, attention_mask, token_type_ids):
            return torch.sigmoid(self.inner(input_ids, attention_mask, token_type_ids))

    fp32, int8 = _to_onnx(Probs(), out_dir, "probs", {0: "batch", 1: "length"}, opset)
    return {"fp32": fp32, "int8": int8}


def _to_onnx(module, out_dir: Path, output: str, output_axes: dict, opset: int) -> tuple[Path, Path]:
    """A BERT-input module to out_dir/model.fp32.onnx and its dynamic int8 copy, plus the
    tokenizer."""
    import torch
    from onnxruntime.quantization import QuantType, quantize_dynamic

    inputs = ("input_ids", "attention_mask", "token_type_ids")
    fp32, int8 = out_dir / "model.fp32.onnx", out_dir / "model.int8.onnx"
    example = (torch.ones((2, 16), dtype=torch.long), torch.ones((2, 16), dtype=torch.long),
               torch.zeros((2, 16), dtype=torch.long))
    with torch.inference_mode():
        torch.onnx.export(module, example, str(fp32), input_names=list(inputs), output_names=[output],
                          opset_version=opset, dynamo=False,
                          dynamic_axes={**{n: {0: "batch", 1: "length"} for n in inputs}, output: output_axes})
    quantize_dynamic(str(fp32), str(int8), weight_type=QuantType.QInt8)
    shutil.copy(model_path(BASE) / "tokenizer.json", out_dir / "tokenizer.json")
    return fp32, int8


def export_embedder(out_dir: Path, opset: int = 17) -> Path:
    """all-MiniLM-L6-v2 as it is (no training) for `promptzip rag`'s passage relevance: the graph
    returns mean-pooled, unit-length sentence embeddings (`embeddings`, batch x 384), quantized
    to int8. Written once from the sha256-pinned wheel; see models/embed-minilm/MODEL_CARD.md."""
    import torch
    from transformers import AutoModel

    out_dir.mkdir(parents=True, exist_ok=True)
    encoder = AutoModel.from_pretrained(str(model_path(BASE))).eval()

    class Pooled(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inner = encoder

        def forward(self, input_ids, attention_mask, token_type_ids):
            hidden = self.inner(input_ids=input_ids, attention_mask=attention_mask,
                                token_type_ids=token_type_ids).last_hidden_state
            mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)
            return torch.nn.functional.normalize(pooled, dim=-1)

    fp32, int8 = _to_onnx(Pooled(), out_dir, "embeddings", {0: "batch"}, opset)
    fp32.unlink()
    return int8
