"""Runs the LLMLingua peers inside the separate `.venv-peers` environment (`make peers`).

llmlingua 0.2.2 needs an older transformers (4.46; it unpacks past_key_values as tuples) than
promptzip's, so it lives in its own virtualenv and this script, which imports only the standard
library and llmlingua, is run there as a subprocess by `promptzip.eval.peers`.

Input JSONL rows: {"key", "method": "llmlingua"|"longllmlingua", "context", "question", "ratio"}.
Output JSONL rows, appended: {"key", "text", "seconds", "error"}.
Usage: python peer_worker.py REQUESTS.jsonl RESULTS.jsonl MODEL_DIR
"""

import json
import os
import re
import sys
import tempfile
import time


def peer_model_dir(model_dir: str) -> str:
    """A view of the converted SmolLM2 folder that transformers 4.46 can load."""
    view = tempfile.mkdtemp(prefix="promptzip-peer-model-")
    for name in ("model.safetensors", "config.json", "tokenizer.json"):
        os.symlink(os.path.join(model_dir, name), os.path.join(view, name))
    with open(os.path.join(model_dir, "tokenizer_config.json"), encoding="utf-8") as f:
        config = json.load(f)
    config["tokenizer_class"] = "PreTrainedTokenizerFast"  # newer transformers write another name
    with open(os.path.join(view, "tokenizer_config.json"), "w", encoding="utf-8") as f:
        json.dump(config, f)
    return view


def chunks(context: str) -> list[str]:
    """LongLLMLingua ranks and budgets a list of contexts: paragraphs, else sentences."""
    parts = [p for p in re.split(r"\n\s*\n", context) if p.strip()]
    if len(parts) < 3:
        parts = [s for s in re.split(r"(?<=[.!?])\s+", context) if s.strip()]
    return parts or [context]


def main() -> None:
    requests_path, results_path, model_dir = sys.argv[1:4]
    from llmlingua import PromptCompressor

    compressor = PromptCompressor(model_name=peer_model_dir(model_dir), device_map="cpu")
    with open(requests_path, encoding="utf-8") as f, open(results_path, "a", encoding="utf-8") as out:
        for line in f:
            req = json.loads(line)
            t0 = time.perf_counter()
            try:
                if req["method"] == "llmlingua":
                    res = compressor.compress_prompt(req["context"], rate=req["ratio"])
                else:
                    res = compressor.compress_prompt(
                        chunks(req["context"]), question=req["question"] or "", rate=req["ratio"],
                        condition_in_question="after_condition", reorder_context="sort",
                        dynamic_context_compression_ratio=0.3, condition_compare=True,
                        context_budget="+100", rank_method="longllmlingua")
                row = {"key": req["key"], "text": res["compressed_prompt"], "error": None}
            except Exception as exc:  # recorded per item; the run goes on
                row = {"key": req["key"], "text": "", "error": f"{type(exc).__name__}: {exc}"}
            row["seconds"] = time.perf_counter() - t0
            out.write(json.dumps(row) + "\n")
            out.flush()


if __name__ == "__main__":
    main()
