"""Peers run side by side with promptzip's methods: LLMLingua (token level) and LongLLMLingua
(question-aware), both from the `llmlingua` package with the local SmolLM2 as scoring model.
They run in `.venv-peers` (`make peers`) through `peer_worker.py`; results are cached per
(item, method, ratio) in one batch per method so the model loads once."""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path

from ..errors import ModelError
from ..fileutil import read_jsonl
from ..runtime.store import model_path
from .data import EvalItem

PEERS = {
    "llmlingua": "LLMLingua (token-level perplexity pruning; llmlingua 0.2.2, SmolLM2 scorer)",
    "longllmlingua": "LongLLMLingua (question-aware; llmlingua 0.2.2, SmolLM2 scorer)",
}
ROOT = Path(__file__).resolve().parents[2]


def peer_python() -> Path:
    env = os.environ.get("PROMPTZIP_PEERS_PYTHON")
    return Path(env) if env else ROOT / ".venv-peers" / "bin" / "python"


def _read_results(path: Path) -> dict[str, dict]:
    return {row["key"]: row for row in read_jsonl(path)} if path.is_file() else {}


def run_peers(method: str, items: Sequence[EvalItem], ratios: Sequence[float],
              cache: Path | None = None) -> dict[tuple[str, float], tuple[str, float]]:
    """(item id, ratio) -> (compressed text, seconds) for one peer method. With `cache`, results
    are appended there as they come and an interrupted run resumes where it stopped. Pairs the
    peer failed on are absent (their errors are kept in the cache file)."""
    python = peer_python()
    if not python.exists():
        raise ModelError(f"the peers environment is missing ({python})", "Run `make peers`.")
    model = model_path("smollm2-135m-instruct") / "hf"
    with tempfile.TemporaryDirectory(prefix="promptzip-peers-") as tmp:
        res = cache or Path(tmp) / "results.jsonl"
        have = _read_results(res)
        req = Path(tmp) / "requests.jsonl"
        # the same context (and question, for the question-aware peer) at the same ratio is
        # compressed once: a few-shot prompt is every row's context
        groups: dict[tuple, list[tuple[str, EvalItem, float]]] = {}
        for item in items:
            for ratio in ratios:
                same = (item.context, item.question if method != "llmlingua" else None, ratio)
                groups.setdefault(same, []).append((f"{item.id}\t{ratio}", item, ratio))
        twins: dict[str, str] = {}  # key -> the key whose result it shares
        n = 0
        with open(req, "w", encoding="utf-8") as f:
            for group in groups.values():
                doer = next((g for g in group if g[0] in have), group[0])
                twins.update((key, doer[0]) for key, _, _ in group if key not in have and key != doer[0])
                key, item, ratio = doer
                if key not in have:
                    f.write(json.dumps({"key": key, "method": method, "context": item.context,
                                        "question": item.question, "ratio": ratio}) + "\n")
                    n += 1
        if n:
            env = {**os.environ, "PYTHONWARNINGS": "ignore"}
            proc = subprocess.run([str(python), str(Path(__file__).with_name("peer_worker.py")), str(req),
                                   str(res), str(model)], capture_output=True, text=True, env=env)
            if proc.returncode != 0:
                tail = "\n".join(proc.stderr.strip().splitlines()[-3:])
                raise ModelError(f"the {method} peer failed: {tail}", "Check `make peers`.")
        if twins:
            done = _read_results(res)
            with open(res, "a", encoding="utf-8") as f:
                for key, twin in twins.items():
                    if twin in done:
                        f.write(json.dumps({**done[twin], "key": key}) + "\n")
        out: dict[tuple[str, float], tuple[str, float]] = {}
        for key, row in _read_results(res).items():
            if row.get("error"):
                continue
            item_id, ratio = key.rsplit("\t", 1)
            out[(item_id, float(ratio))] = (row["text"], row["seconds"])
        return out
