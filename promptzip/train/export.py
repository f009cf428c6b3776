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


def state_from_int8(int8_path: Path, out: Path) -> Path:
    """A training state (`{"model": state_dict}`, what `fit --init` reads) rebuilt from a
    shipped int8 export: every weight dequantized ((q - zero_point) * scale). For going on
    training the shipped model on a machine where its fp32 training state is gone.

    The quantized graph names most weights `onnx::MatMul_N`; which parameter each one is comes
    from a fresh fp32 export of the same architecture, whose initializers are the base weights
    (transposed) under the same names."""
    import tempfile

    import numpy as np
    import onnx
    import torch
    from onnx import numpy_helper

    model = build_model(dropout=0.0)
    base = model.state_dict()
    with tempfile.TemporaryDirectory() as d:
        st = Path(d) / "state.pt"
        torch.save({"model": base}, st)
        fp32 = export(st, Path(d) / "onnx")["fp32"]
        fresh = {t.name: numpy_helper.to_array(t) for t in onnx.load(str(fp32)).graph.initializer}
    shipped = {t.name: numpy_helper.to_array(t) for t in onnx.load(str(int8_path)).graph.initializer}
    state = {}
    for name, arr in fresh.items():
        key, transposed = name.removeprefix("inner."), False
        if key not in base:
            hits = [k for k, v in base.items()
                    if v.ndim == 2 and v.shape[::-1] == arr.shape and np.array_equal(v.numpy().T, arr)]
            if len(hits) != 1:
                raise RuntimeError(f"{name}: no single parameter matches it ({hits[:3]})")
            key, transposed = hits[0], True
        if name in shipped:
            value = shipped[name]
        elif name + "_quantized" in shipped:
            q = shipped[name + "_quantized"].astype(np.float32)
            value = (q - shipped[name + "_zero_point"].astype(np.float32)) * shipped[name + "_scale"]
        else:
            raise RuntimeError(f"{int8_path} has no weight {name}: not an export of this architecture")
        value = np.ascontiguousarray(value.T if transposed else value, dtype=np.float32)
        if tuple(value.shape) != tuple(base[key].shape):
            raise RuntimeError(f"{name}: shape {value.shape} where {key} is {tuple(base[key].shape)}")
        state[key] = torch.from_numpy(value.copy())  # the onnx arrays are read-only views
    missing = sorted(set(base) - set(state))
    if missing:
        raise RuntimeError(f"{int8_path} does not give {missing[:3]}")
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"model": state}, out)
    return out
