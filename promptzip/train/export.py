"""Export a fine-tuned classifier to ONNX (fp32) and a dynamically quantized int8 copy.

The graph takes `input_ids`, `attention_mask`, `token_type_ids` (int64, batch x length, both
dynamic; an MPNet graph has no use for the last and may not list it) and returns `probs` (float32, batch x length): the keep probability of each subword;
a model trained with a span head also returns `span` (float32, batch x length x 2): each
subword's answer-start and answer-end logits. Word aggregation and selection stay in numpy
(`promptzip.compressors.extract`).

The classifier is exported with plain (eager) attention and then fused by onnxruntime's BERT
optimizer: one `Attention` node per layer (Q, K and V in one matrix), `EmbedLayerNormalization`,
`SkipLayerNormalization`, `BiasGelu`. Quantizing the fused graph gives `QAttention` and
`QEmbedLayerNormalization`, which run a 256-subword window about a quarter faster on two cores
than the unfused int8 graph (MatMulInteger + float softmax), keep/drop decisions agreeing with
fp32 as often (MODEL_CARD.md).
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from ..runtime.store import model_path
from .finetune import BASE, MULTI, base_depth, build_model, depth_of, layer_of


def export(state_path: Path, out_dir: Path, opset: int = 17, fuse: bool = True) -> dict[str, Path]:
    import torch

    out_dir.mkdir(parents=True, exist_ok=True)
    state = torch.load(state_path, weights_only=False)
    span = any(k.startswith("span.") for k in state["model"])
    base = state.get("base", BASE)
    model = build_model(dropout=0.0, span=span, depth=depth_of(state["model"]), base=base)
    model.load_state_dict(state["model"])
    model.eval()
    fuse = fuse and base == BASE  # onnxruntime's BERT fusion does not know MPNet's relative attention
    if fuse:  # the optimizer recognises the eager attention subgraph, not SDPA's
        model.encoder.config._attn_implementation = "eager"

    class Probs(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inner = model

        def forward(self, input_ids, attention_mask, token_type_ids):
            out = self.inner(input_ids, attention_mask, token_type_ids)
            return (torch.sigmoid(out[0]), out[1]) if span else torch.sigmoid(out)

    outputs = {"probs": {0: "batch", 1: "length"}}
    if span:
        outputs["span"] = {0: "batch", 1: "length"}
    fp32, int8 = _to_onnx(Probs(), out_dir, outputs, opset, model.encoder.config if fuse else None,
                          per_channel=True, base=base, quantize=base == BASE)
    return {"fp32": fp32, "int8": int8} if int8 else {"fp32": fp32}


def _to_onnx(module, out_dir: Path, outputs: dict[str, dict], opset: int,
             fuse_config=None, per_channel: bool = False, base: str = BASE,
             quantize: bool = True) -> tuple[Path, Path | None]:
    """A BERT-input module (`outputs`: its outputs' names and dynamic axes) to
    out_dir/model.fp32.onnx and its dynamic int8 copy, plus the tokenizer; with `fuse_config`
    (the BertConfig), the fp32 graph is fused first. With `per_channel`, each weight column gets
    its own int8 scale: the classifier's keep decisions then agree with fp32 on 0.978 of held-out
    words instead of 0.953, at the same speed (MODEL_CARD.md). Without `quantize` (the MPNet
    teacher: its unfused MatMuls quantized per channel gave probabilities that correlate 0.11 with
    fp32's, per tensor 0.93, and answer retention fell from 0.66 to 0.38 at 0.33 on held-out
    paragraphs), only the fp32 graph is written."""
    import onnx
    import torch
    from onnxruntime.quantization import QuantType, quantize_dynamic

    inputs = ("input_ids", "attention_mask", "token_type_ids")
    fp32, int8 = out_dir / "model.fp32.onnx", out_dir / "model.int8.onnx"
    example = (torch.ones((2, 16), dtype=torch.long), torch.ones((2, 16), dtype=torch.long),
               torch.zeros((2, 16), dtype=torch.long))
    with torch.inference_mode():
        torch.onnx.export(module, example, str(fp32), input_names=list(inputs), output_names=list(outputs),
                          opset_version=opset, dynamo=False,
                          dynamic_axes={**{n: {0: "batch", 1: "length"} for n in inputs}, **outputs})
    extra = {}
    if fuse_config is not None:
        from onnxruntime.transformers.optimizer import optimize_model

        fused = optimize_model(str(fp32), model_type="bert", num_heads=fuse_config.num_attention_heads,
                               hidden_size=fuse_config.hidden_size)
        counts = fused.get_fused_operator_statistics()
        if counts.get("Attention") != fuse_config.num_hidden_layers:
            raise RuntimeError(f"the BERT optimizer fused {counts.get('Attention')} attention layers "
                               f"of {fuse_config.num_hidden_layers}: the exported graph is not the expected one")
        fused.save_model_to_file(str(fp32))
        extra = {"DefaultTensorType": onnx.TensorProto.FLOAT}  # types of the fused ops' outputs
    if quantize:
        quantize_dynamic(str(fp32), str(int8), weight_type=QuantType.QInt8, per_channel=per_channel,
                         extra_options=extra)
    else:
        int8 = None
    shutil.copy(model_path(base) / "tokenizer.json", out_dir / "tokenizer.json")
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

    fp32, int8 = _to_onnx(Pooled(), out_dir, {"embeddings": {0: "batch"}}, opset)
    fp32.unlink()
    return int8


def state_from_int8(int8_path: Path, out: Path) -> Path:
    """A training state (`{"model": state_dict}`, what `fit --init` reads) rebuilt from a
    shipped int8 export: every weight dequantized ((q - zero_point) * scale). For going on
    training the shipped model on a machine where its fp32 training state is gone.

    The quantized graph names most weights `onnx::MatMul_N` (and a fused graph concatenates each
    layer's query, key and value into `Attention_N_qkv_*`); which parameters each one holds comes
    from a fresh export of the same architecture (fused or not, as the shipped file is), whose
    initializers are the base weights under the same names."""
    import tempfile

    import numpy as np
    import onnx
    import torch
    from onnx import numpy_helper

    graph = onnx.load(str(int8_path)).graph
    fused = any(n.op_type == "QAttention" for n in graph.node)
    shipped = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    if fused:
        depth = sum(n.op_type == "QAttention" for n in graph.node)
    else:
        depth = 1 + max(int(m.group(1)) for n in graph.node if (m := re.search(r"layer\.(\d+)/", n.name)))
    model = build_model(dropout=0.0, span=any(o.name == "span" for o in graph.output), depth=depth)
    base = model.state_dict()
    gen, fresh_from = torch.Generator().manual_seed(0), base_depth()
    for key, value in base.items():  # layers past the base weights': fresh biases are all zeros,
        if layer_of(key) >= fresh_from:  # and the export folds equal ones into one; make each distinct
            value.copy_(torch.randn(value.shape, generator=gen))
    with tempfile.TemporaryDirectory() as d:
        st = Path(d) / "state.pt"
        torch.save({"model": base}, st)
        fp32 = export(st, Path(d) / "onnx", fuse=fused)["fp32"]
        fresh = {t.name: numpy_helper.to_array(t) for t in onnx.load(str(fp32)).graph.initializer}
    plain = {k: v.numpy() for k, v in base.items()}
    state = {}
    for name, arr in fresh.items():
        if arr.dtype != np.float32:
            continue  # shape constants
        parts = _parameters_of(name, arr, plain)
        value = _dequantized(shipped, name, int8_path)
        cuts = np.cumsum([plain[key].shape[0] for key, _ in parts])[:-1]
        for (key, transposed), piece in zip(parts, np.split(value, cuts, axis=-1), strict=True):
            piece = np.ascontiguousarray(piece.T if transposed else piece, dtype=np.float32)
            if piece.shape != plain[key].shape:
                raise RuntimeError(f"{name}: shape {piece.shape} where {key} is {plain[key].shape}")
            state[key] = torch.from_numpy(piece.copy())  # the onnx arrays are read-only views
    missing = sorted(set(base) - set(state))
    if missing:
        raise RuntimeError(f"{int8_path} does not give {missing[:3]}")
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"model": state}, out)
    return out


def _parameters_of(name: str, arr, params: dict) -> list[tuple[str, bool]]:
    """The parameters an initializer of a fresh export holds, as (key, transposed): itself by
    name, one 2-D weight transposed (a MatMul), or a fused layer's query, key and value side
    by side along the last axis (their weights transposed)."""
    import numpy as np

    key = name.removeprefix("inner.")
    if key in params:
        return [(key, False)]
    hits = [k for k, v in params.items() if v.ndim == 2 and v.shape[::-1] == arr.shape and np.array_equal(v.T, arr)]
    if len(hits) == 1:
        return [(hits[0], True)]
    kind = "weight" if arr.ndim == 2 else "bias"
    for k in params:
        if k.endswith(f"attention.self.query.{kind}"):
            trio = [k.replace(".query.", f".{x}.") for x in ("query", "key", "value")]
            cat = np.concatenate([params[t].T if kind == "weight" else params[t] for t in trio], axis=-1)
            if cat.shape == arr.shape and np.array_equal(cat, arr):
                return [(t, kind == "weight") for t in trio]
    raise RuntimeError(f"{name}: no parameter of the architecture matches it")


def _dequantized(shipped: dict, name: str, path: Path):
    import numpy as np

    if name in shipped:
        return shipped[name]
    if name + "_quantized" in shipped:
        q = shipped[name + "_quantized"].astype(np.float32)
        return (q - shipped[name + "_zero_point"].astype(np.float32)) * shipped[name + "_scale"]
    raise RuntimeError(f"{path} has no weight {name}: not an export of this architecture")


def export_multilingual(state_path: Path, out_dir: Path, opset: int = 17) -> dict[str, Path]:
    """The multilingual classifier without its word embeddings: the graph takes `inputs_embeds`
    (float32, batch x length x 384: the base's fixed Q4 rows, looked up by the caller,
    `runtime.e5q4.Q4Rows`) and `attention_mask`, adds position embeddings and the embedding
    LayerNorm itself, and returns `probs` (batch x length). The 250k x 384 table stays out of the
    graph (the int8 graph with it would be 100 MB; without it, about 22 MB). Fused by
    onnxruntime's BERT optimizer (attention, skip LayerNorm, bias GELU) when it recognises all
    layers, then written as fp32 and as per-channel int8."""
    import onnx
    import torch
    from onnxruntime.quantization import QuantType, quantize_dynamic


    out_dir.mkdir(parents=True, exist_ok=True)
    state = torch.load(state_path, weights_only=False)
    model = build_model(dropout=0.0, base=MULTI, depth=depth_of(state["model"]))  # 12, or a cut of them
    model.load_state_dict(state["model"])
    model.eval()
    config = model.encoder.config
    config._attn_implementation = "eager"  # the optimizer recognises the eager attention subgraph

    class Probs(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.encoder, self.head = model.encoder, model.head

        def forward(self, inputs_embeds, attention_mask):
            types = torch.zeros_like(attention_mask)
            h = self.encoder(inputs_embeds=inputs_embeds, attention_mask=attention_mask,
                             token_type_ids=types).last_hidden_state
            return torch.sigmoid(self.head(h).squeeze(-1))

    fp32, int8 = out_dir / "model.fp32.onnx", out_dir / "model.int8.onnx"
    example = (torch.randn((2, 16, config.hidden_size)), torch.ones((2, 16), dtype=torch.long))
    axes = {"inputs_embeds": {0: "batch", 1: "length"}, "attention_mask": {0: "batch", 1: "length"},
            "probs": {0: "batch", 1: "length"}}
    with torch.inference_mode():
        torch.onnx.export(Probs(), example, str(fp32), input_names=["inputs_embeds", "attention_mask"],
                          output_names=["probs"], opset_version=opset, dynamo=False, dynamic_axes=axes)
    from onnxruntime.transformers.optimizer import optimize_model

    fused = optimize_model(str(fp32), model_type="bert", num_heads=config.num_attention_heads,
                           hidden_size=config.hidden_size)
    extra = {}
    if fused.get_fused_operator_statistics().get("Attention") == config.num_hidden_layers:
        fused.save_model_to_file(str(fp32))
        extra = {"DefaultTensorType": onnx.TensorProto.FLOAT}
    quantize_dynamic(str(fp32), str(int8), weight_type=QuantType.QInt8, per_channel=True, extra_options=extra)
    shutil.copy(model_path(MULTI) / "tokenizer.json", out_dir / "tokenizer.json")
    return {"fp32": fp32, "int8": int8}
