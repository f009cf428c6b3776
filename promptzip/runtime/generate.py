"""Text generation backends for rewriters: the local SmolLM2 on onnxruntime-genai, and any
OpenAI-compatible chat endpoint (`runtime/endpoint.py`). Both answer `complete(messages,
max_tokens, source)` with the generated text and carry an `id` that names the weights or the
endpoint for cache keys.

Local backend. The prepared SmolLM2 (`promptzip models prepare`) is turned once into an
onnxruntime-genai model folder (fp32 ONNX with a key/value cache and grouped-query attention,
about 540 MB) beside it, by the builder that ships with onnxruntime-genai; generation then runs
in genai's C++ loop: 13.7 tokens/s on 2 cores (409-token prompt, 80 new tokens, prefill
included) against 9.4 for transformers' `generate` in torch fp32 and 8.4 in bf16, with the
same greedy output (BENCHMARKS.md). The int4 build is 6x smaller and twice as
fast but repeats itself into garbage on this model, so it is not offered.

Greedy decoding, optionally *copy-constrained*: every step may only pick a token that occurs in
the tokenization of the source text's words (with and without a leading space), a few
connectives and punctuation, or end-of-turn. The model can reorder, drop and join, but it cannot
spell a name or a word the source does not hold; digits can still recombine into a number the
source lacks, which the faithfulness guard catches.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
from functools import lru_cache
from pathlib import Path

import numpy as np

from ..errors import ModelError
from ..fileutil import sha256_file
from .store import model_path

LM_NAME = "smollm2-135m-instruct"
GENAI_DIR = "genai-fp32"
CONNECTIVES = ". , ; : ( ) - ' \" the a an and or but of in on at to from is are was were be has had " \
              "for by with as that which who it its this their not no"


def build_genai(folder: Path | None = None, log=lambda _m: None) -> Path:
    """The genai model folder of the prepared SmolLM2, built on first use (needs torch,
    transformers and onnx_ir: the `train` extra). Built into a temporary folder, then renamed."""
    base = folder or model_path(LM_NAME)
    final = base / GENAI_DIR
    if (final / "genai_config.json").is_file() and (final / "manifest.json").is_file():
        return final
    log(f"building the onnxruntime-genai model of {LM_NAME} (once, about a minute)")
    work = Path(tempfile.mkdtemp(prefix=f".{GENAI_DIR}.", dir=base))
    try:
        cmd = [sys.executable, "-m", "onnxruntime_genai.models.builder", "-m", "HuggingFaceTB/SmolLM2-135M-Instruct",
               "-i", str(base / "hf"), "-o", str(work / "out"), "-p", "fp32", "-e", "cpu",
               "-c", str(work / "cache")]
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
        done = subprocess.run(cmd, capture_output=True, text=True, env=env)
        if done.returncode != 0:
            tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
            raise ModelError("building the onnxruntime-genai model failed: " + " / ".join(tail),
                             "Install the train extra (`make install`) and run `promptzip models prepare`.")
        out = work / "out"
        files = {p.name: {"sha256": sha256_file(p), "bytes": p.stat().st_size}
                 for p in sorted(out.iterdir()) if p.is_file()}
        (out / "manifest.json").write_text(json.dumps({"built_from": "hf/model.safetensors", "precision": "fp32",
                                                       "files": files}, indent=2) + "\n", encoding="utf-8")
        if final.exists():
            shutil.rmtree(final)
        os.replace(out, final)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return final


class LocalGenerator:
    """SmolLM2-135M-Instruct on onnxruntime-genai, greedy, one request at a time."""

    concurrency = 1

    def __init__(self, constrain: bool = True, folder: Path | None = None, log=lambda _m: None) -> None:
        try:
            import onnxruntime_genai as og
        except ImportError:
            raise ModelError("the local rewriter needs onnxruntime-genai",
                             "Install promptzip with its dependencies (`make install`), or use an "
                             "endpoint: --endpoint URL --model NAME.") from None
        from tokenizers import Tokenizer

        self._og = og
        path = build_genai(folder, log)
        self.model = og.Model(str(path))
        self.tok = Tokenizer.from_file(str(path / "tokenizer.json"))
        self.constrain = constrain
        self.eos = [i for i in (self.tok.token_to_id("<|im_end|>"), self.tok.token_to_id("<|endoftext|>"))
                    if i is not None]
        manifest = json.loads((path / "manifest.json").read_text(encoding="utf-8"))
        self.sha256 = manifest["files"]["model.onnx.data"]["sha256"]
        self.id = f"local:{LM_NAME}:genai-fp32:{self.sha256[:16]}:constrain={int(constrain)}"
        self.generated_tokens = 0
        self.seconds = 0.0
        self._lock = threading.Lock()

    def prompt_ids(self, messages: list[dict]) -> list[int]:
        """SmolLM2's chat format (ChatML), written out rather than rendered from the jinja file:
        one `<|im_start|>role\\ncontent<|im_end|>\\n` per message, then the assistant's header."""
        text = "".join(f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>\n" for m in messages)
        return self.tok.encode(text + "<|im_start|>assistant\n", add_special_tokens=False).ids

    def allowed(self, source: str) -> np.ndarray:
        words = set(re.findall(r"\S+", source)) | set(re.findall(r"\w+|[^\w\s]", source)) | set(CONNECTIVES.split())
        variants = [v for w in words for v in (w, " " + w, w.capitalize(), " " + w.capitalize())]
        ids = {i for enc in self.tok.encode_batch(variants, add_special_tokens=False) for i in enc.ids}
        ids.update(self.tok.encode("\n", add_special_tokens=False).ids)
        ids.update(self.eos)
        return np.fromiter(sorted(ids), dtype=np.int64)

    def complete(self, messages: list[dict], max_tokens: int, source: str | None = None) -> str:
        import time

        og = self._og
        ids = self.prompt_ids(messages)
        allow = self.allowed(source) if self.constrain and source else None
        with self._lock:
            t0 = time.perf_counter()
            params = og.GeneratorParams(self.model)
            params.set_search_options(max_length=len(ids) + max_tokens, do_sample=False, repetition_penalty=1.1)
            gen = og.Generator(self.model, params)
            gen.append_tokens(ids)
            out: list[int] = []
            mask = None
            while not gen.is_done():
                if allow is not None:
                    logits = gen.get_logits()
                    if mask is None:
                        mask = np.full(logits.shape, -1e9, dtype=logits.dtype)
                        mask[..., allow] = 0
                    gen.set_logits(logits + mask)
                gen.generate_next_token()
                token = int(gen.get_next_tokens()[0])
                if token in self.eos:
                    break
                out.append(token)
            self.generated_tokens += len(out)
            self.seconds += time.perf_counter() - t0
        return self.tok.decode(out, skip_special_tokens=True).strip()


@lru_cache(maxsize=2)
def local_generator(constrain: bool = True) -> LocalGenerator:
    return LocalGenerator(constrain, log=lambda m: print(f"promptzip: {m}", file=sys.stderr))
