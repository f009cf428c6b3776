"""Copy a latent training run's committable part into models/latent-smollm2: the adapter, its
config, the learning curve and held-out evaluations, and a manifest with sha256, the base model,
data and the command. The model card is written by hand from these numbers:
`python -m promptzip.latent.ship RUN models/latent-smollm2`."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

from ..fileutil import sha256_file
from ..runtime.store import SPECS
from .model import DECODER_BASE, ENCODER_BASE
from .train import EVAL_FILE, TRAIN_FILES


def ship(run: Path, dest: Path) -> Path:
    state = json.loads((run / "state.json").read_text(encoding="utf-8"))
    dest.mkdir(parents=True, exist_ok=True)
    for name in ("adapter.safetensors", "state.json"):
        shutil.copyfile(run / name, dest / name)
    for name in ("curve.jsonl", "eval.jsonl"):  # lines of steps after the saved one describe no shipped weights
        lines = (run / name).read_text(encoding="utf-8").splitlines()
        kept = [ln for ln in lines if ln and json.loads(ln)["step"] <= state["step"]]
        (dest / name).write_text("".join(ln + "\n" for ln in kept), encoding="utf-8")
    (dest / "config.json").write_text(json.dumps(state["config"], indent=2) + "\n", encoding="utf-8")
    manifest = {
        "name": "latent-smollm2",
        "files": {n: {"sha256": sha256_file(dest / n), "bytes": (dest / n).stat().st_size}
                  for n in ("adapter.safetensors", "config.json")},
        "base_models": {n: {"package": SPECS[n].requirement, "wheel_sha256": SPECS[n].wheel_sha256,
                            "license": SPECS[n].license} for n in ((DECODER_BASE,) if state["config"].get("encoder") == "smollm2"
                                                                 else (ENCODER_BASE, DECODER_BASE))},
        "training_data": [f"../shared/corpora/{r}" for r in TRAIN_FILES],
        "held_out": f"../shared/corpora/{EVAL_FILE}",
        "command": state.get("command") or f"python -m promptzip.latent.train RUN --steps N (resumes RUN; "
                                            f"{state['step']} steps so far)",
        "phases": state.get("phases", []),  # each resume's learning rate, QA share and command, from its first step
        "steps": state["step"], "cpu_hours": round(float(state.get("seconds", 0.0)) / 3600, 3),
    }
    source = Path(state["init_from"]) / "state.json" if state.get("init_from") else None
    if source is not None and source.is_file():  # a warm start: the run it started from counts too
        before = json.loads(source.read_text(encoding="utf-8"))
        manifest["started_from"] = {"run": state["init_from"], "steps": before["step"], "config": before["config"],
                                    "cpu_hours": round(float(before.get("seconds", 0.0)) / 3600, 3),
                                    "phases": before.get("phases", [])}
    (dest / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return dest


if __name__ == "__main__":
    ship(Path(sys.argv[1]), Path(sys.argv[2]))
