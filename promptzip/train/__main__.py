"""Training pipeline of the extract model: `python -m promptzip.train STEP ...`.

Steps (each resumable; files under --work, default $PROMPTZIP_HOME/train):
  labels    teacher labels: qa / qa-soft / qa-agnostic (SQuAD 1.1 train answers/evidence; the
            last without question-paired examples), selfinfo (SmolLM2 on the same
            paragraphs), text (SmolLM2 on plain text, GSM8K and meetings)
  fit       fine-tune MiniLM (or, --base mpnet-base-v2, the MPNet teacher) on one or more
            label files (comma-separated), checkpointed
  teacher   the MPNet teacher end to end: its base, labels, fit, export, validation
  teach     text labelled with an exported teacher's probabilities (distillation data; gold
            labels kept beside them where the source has them)
  export    ONNX fp32 + int8 from a run
  from-onnx a training state dequantized from a shipped int8 model (to go on training it where
            its fp32 state is gone)
  reexport  the shipped weights exported again in the current format (dequantized from the
            shipped int8), replacing it; manifest and card updated
  ship      export the last of some runs that went on from the shipped weights and replace the
            shipped model with it; manifest (earlier training records kept) and card updated
  validate  answer retention / ratio / int8-fp32 agreement on the held-out SQuAD 1.1 articles
  all       the shipped recipe, ending in models/extract-minilm (what `make models` runs)
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
from pathlib import Path

from ..config import home
from ..fileutil import sha256_file
from ..runtime.store import prepare
from .card import reexport, ship
from .distill import teach
from .export import export, export_multilingual, state_from_int8
from .finetune import BASE, MULTI, TEACHER, fit
from .labels import (
    SHARED,
    SQUAD_TRAIN,
    qa_examples,
    read_examples,
    selfinfo_examples,
    split_by_title,
    split_titles,
    squad_groups,
    text_docs,
    write_examples,
)
from .multilingual import ship as ship_multilingual
from .validate import validate


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _done_ids(path: Path) -> set[str]:
    return {ex.id for ex in read_examples(path)} if path.exists() else set()


def cmd_labels(args) -> None:
    train, _ = split_titles()
    out = Path(args.out)
    done = _done_ids(out)
    groups = list(itertools.islice(((t, c, r) for t, c, r in squad_groups(SQUAD_TRAIN, train)),
                                   args.offset, args.offset + args.limit))
    if args.source in ("qa", "qa-soft", "qa-agnostic"):
        evidence = 1.0 if args.source == "qa" else 0.5
        asked = args.source != "qa-agnostic"
        exs = (ex for t, c, r in groups for ex in qa_examples(t, c, r, with_queries=asked, evidence=evidence)
               if ex.id not in done)
        n = write_examples(out, exs)
    elif args.source == "selfinfo":
        docs = ((f"{t}:{r[0]['id']}:all", c) for t, c, r in groups if f"{t}:{r[0]['id']}:all" not in done)
        n = write_examples(out, selfinfo_examples(docs, log=_log))
    else:
        docs = [(i, t) for i, t in text_docs()[: args.limit] if i not in done]
        n = write_examples(out, selfinfo_examples(docs, log=_log))
    _log(f"labels: {n} new examples in {out} ({len(done)} were there)")


def cmd_fit(args) -> None:
    examples = []
    for p in args.data.split(","):
        exs = read_examples(Path(p))
        examples += exs[: args.per_file] if args.per_file else exs
    _log(f"fit: {len(examples)} examples")
    fit(examples, Path(args.run), args.steps, args.batch, args.lr, args.max_len, args.seed, args.save_every,
        init=Path(args.init) if getattr(args, "init", None) else None,
        listwise=getattr(args, "listwise", 0.0), ranking=getattr(args, "ranking", "words"),
        stop=getattr(args, "stop", 0) or None, span=getattr(args, "span", 0.0),
        deepen_order=[int(i) for i in args.deepen.split(",")] if getattr(args, "deepen", "") else None,
        base=getattr(args, "base", BASE), freeze=getattr(args, "freeze", 0), bucket=getattr(args, "bucket", False),
        gold=getattr(args, "gold", 0.0), log=_log)


def cmd_teach(args) -> None:
    train, _ = split_titles()
    n = teach(Path(args.teacher), args.source, Path(args.out), args.limit, train, SQUAD_TRAIN, args.per, log=_log)
    _log(f"teach: {n} new examples in {args.out}")


def cmd_export(args) -> None:
    paths = export(Path(args.run) / "state.pt", Path(args.out))
    _log("export: " + " and ".join(str(p) for p in paths.values()))


def cmd_from_onnx(args) -> None:
    out = state_from_int8(Path(args.model) / "model.int8.onnx", Path(args.out))
    _log(f"from-onnx: {out} (dequantized from {args.model}; `fit --init {out}` goes on from it)")


def cmd_reexport(args) -> None:
    """The shipped weights in the current export format (the fused graph): dequantize, export,
    validate, replace models/extract-minilm/model.int8.onnx and update its manifest and card."""

    model = Path(args.model)
    source = sha256_file(model / "model.int8.onnx")
    work = Path(args.work) / "reexport"
    state = state_from_int8(model / "model.int8.onnx", work / "state.pt")
    export_dir = work / "onnx"
    export(state, export_dir)
    m = reexport(export_dir, model, source, "one fused Attention per layer (QAttention in int8), "
                 "EmbedLayerNormalization, SkipLayerNormalization and BiasGelu from onnxruntime's BERT optimizer")
    _log(f"reexport: {model / 'model.int8.onnx'} sha256 {m['files']['model.int8.onnx']['sha256']}; "
         f"held-out answer kept {m['reexport']['validation']['0.33']['answer_retained']:.3f} @0.33, "
         f"{m['reexport']['validation']['0.2-query']['answer_retained']:.3f} @0.2 with the question")


def cmd_ship(args) -> None:
    """Runs that went on from the shipped weights (`from-onnx`): export the last, validate it and
    replace the shipped model; the manifest keeps the training records it had and adds these."""

    w, model = Path(args.work), Path(args.model)
    runs = [w / "runs" / r for r in args.runs.split(",")]
    earlier = json.loads((model / "manifest.json").read_text(encoding="utf-8"))["training"]
    export_dir = w / "export-ship"
    cmd_export(argparse.Namespace(run=str(runs[-1]), out=str(export_dir)))
    m = ship(export_dir, runs, model, RECIPE, w / "compare.json", earlier=earlier)
    v = m["validation"]["int8"]
    _log(f"ship: {model / 'model.int8.onnx'} sha256 {m['files']['model.int8.onnx']['sha256']}; held-out answer "
         f"kept {v['0.33']['answer_retained']:.3f} @0.33, {v['0.2-query']['answer_retained']:.3f} @0.2 with the question")


def cmd_validate(args) -> None:
    res = validate(Path(args.model), args.limit, args.precision)
    print(json.dumps(res, indent=1))
    if args.out:
        Path(args.out).write_text(json.dumps(res, indent=1) + "\n", encoding="utf-8")


RECIPE = {  # the shipped model: `qa` labels won the comparison (MODEL_CARD.md); stage 2 goes on
    # from stage 1's weights over every training paragraph, with the question words of the
    # evidence at 0.5 (`qa-soft`) so answers rank above what the reader already has; stage 3 goes
    # on longer over the same paragraphs with the query-agnostic examples drawn three times as
    # often (18% of stage 2's examples, 39% of stage 3's); stages 5 and 6 go on over the same
    # examples with a ranking loss added (words, then whole answers by their weakest word); the
    # unshipped stage 4 of MODEL_CARD.md's history is not part of it
    "labels": {"qa.jsonl": ("qa", 3000), "qa-soft.jsonl": ("qa-soft", 30000),  # file -> (source, paragraphs)
               "qa-agnostic.jsonl": ("qa-agnostic", 30000)},
    "stages": [{"run": "stage1", "data": ["qa.jsonl"], "steps": 1000, "lr": 1e-4},
               {"run": "stage2", "data": ["qa-soft.jsonl"], "steps": 1500, "lr": 5e-5, "init": "stage1"},
               {"run": "stage3", "data": ["qa-soft.jsonl", "qa-agnostic.jsonl", "qa-agnostic.jsonl"],
                "steps": 2000, "lr": 5e-5, "init": "stage2"},
               {"run": "stage5", "data": ["qa-soft.jsonl", "qa-agnostic.jsonl", "qa-agnostic.jsonl"],
                "steps": 2000, "stop": 1000, "lr": 5e-5, "init": "stage3", "seed": 2, "listwise": 0.3},
               {"run": "stage6", "data": ["qa-soft.jsonl", "qa-agnostic.jsonl", "qa-agnostic.jsonl"],
                "steps": 1500, "lr": 5e-5, "init": "stage5", "seed": 3, "listwise": 0.3, "ranking": "spans"}],
    "batch": 8, "max_len": 256, "seed": 0,
}


TEACHER_RECIPE = {  # issue 24's teacher: MPNet on stage 6's examples and losses, from its pretrained
    # weights; the embeddings and two lowest layers stay fixed (their backward pass is not paid),
    # batches are drawn by window length (the base pays per subword: 8 to 12 s a step of 8 on 2
    # cores). 400 steps fit one session; session 18's 800-step schedule (held-out fp32 0.793 / 0.940)
    # was lost with its machine before its student finished (MODEL_CARD.md)
    "data": ["qa-soft.jsonl", "qa-agnostic.jsonl", "qa-agnostic.jsonl"], "run": "teacher", "steps": 400,
    "lr": 5e-5, "batch": 8, "max_len": 256, "listwise": 0.3, "ranking": "spans", "freeze": 2, "seed": 0,
}


def cmd_teacher(args) -> None:
    """The teacher end to end, each step resuming: its base (470 MB, once), labels, fit, export
    to WORK/teacher-onnx (fp32 only: int8 breaks MPNet, `export`), held-out validation
    (WORK/teacher-onnx/validation.json)."""

    if not SHARED.is_dir():
        raise SystemExit("promptzip.train: ../shared/corpora is needed to train the teacher")
    w, r = Path(args.work), TEACHER_RECIPE
    prepare(TEACHER, log=_log)
    for name, (source, limit) in RECIPE["labels"].items():
        if name in r["data"]:
            cmd_labels(argparse.Namespace(source=source, out=str(w / name), limit=limit, offset=0))
    run = w / "runs" / r["run"]
    cmd_fit(argparse.Namespace(data=",".join(str(w / n) for n in r["data"]), run=str(run), steps=r["steps"],
                               batch=r["batch"], lr=r["lr"], max_len=r["max_len"], per_file=0, seed=r["seed"],
                               save_every=20, init="", listwise=r["listwise"], ranking=r["ranking"], stop=args.stop,
                               span=0.0, deepen="", base=TEACHER, freeze=r["freeze"], bucket=True))
    out = w / "teacher-onnx"
    cmd_export(argparse.Namespace(run=str(run), out=str(out)))
    cmd_validate(argparse.Namespace(model=str(out), limit=300, precision="fp32", out=str(out / "validation.json")))


DISTILL_RECIPE = {  # issue 24's student: the teacher's probabilities on more text (the question-paired
    # paragraphs first: with a question the teacher is ahead), then the shipped model trained
    # further on them alone, the gold answer labels mixed in where a row has them
    "teach": (("squad-query", 2000), ("squad-agnostic", 1000), ("covidqa", 100), ("prose", 400)),
    "data": ["teacher.jsonl"], "run": "student", "steps": 1000, "lr": 3e-5, "batch": 8,
    "max_len": 256, "listwise": 0.3, "ranking": "spans", "gold": 0.5, "seed": 0,
}


def cmd_distill(args) -> None:
    """The teacher (finished if it is not), its labels (WORK/teacher.jsonl), and the student: the
    shipped model (dequantized) trained on them, exported to WORK/runs/student/onnx and validated
    on the held-out articles (validation.json there). Every step resumes or is skipped when done;
    shipping is a separate, deliberate `ship --runs student`."""
    w, r = Path(args.work), DISTILL_RECIPE
    teacher = w / "teacher-onnx"
    if not (teacher / "validation.json").is_file():
        cmd_teacher(argparse.Namespace(work=args.work, stop=0))
    mine = json.loads((teacher / "validation.json").read_text(encoding="utf-8"))
    shipped_manifest = Path(__file__).resolve().parents[2] / "models" / "extract-minilm" / "manifest.json"
    theirs = json.loads(shipped_manifest.read_text(encoding="utf-8"))["validation"]["fp32"]
    gains = {k: mine[k]["answer_retained"] - theirs[k]["answer_retained"] for k in ("0.33", "0.2-query")}
    _log("distill: teacher vs shipped model (fp32, held-out paragraphs, answer kept): "
         + ", ".join(f"{k} {mine[k]['answer_retained']:.3f} vs {theirs[k]['answer_retained']:.3f}" for k in gains))
    if max(gains.values()) <= 0 and not args.force:
        raise SystemExit("promptzip.train: the teacher is no better than the shipped model on the held-out "
                         "paragraphs, so its labels would teach the student less than it knows; "
                         "`distill --force` goes on anyway")
    for source, limit in r["teach"]:
        cmd_teach(argparse.Namespace(teacher=str(teacher), source=source, out=str(w / "teacher.jsonl"), limit=limit,
                                     per=1))
    init = w / "runs" / "shipped" / "state.pt"
    if not init.is_file():
        cmd_from_onnx(argparse.Namespace(model=str(Path(__file__).resolve().parents[2] / "models" / "extract-minilm"),
                                         out=str(init)))
    run = w / "runs" / r["run"]
    cmd_fit(argparse.Namespace(data=",".join(str(w / n) for n in r["data"]), run=str(run), steps=r["steps"],
                               batch=r["batch"], lr=r["lr"], max_len=r["max_len"], per_file=0, seed=r["seed"],
                               save_every=50, init=str(init), listwise=r["listwise"], ranking=r["ranking"],
                               stop=args.stop, span=0.0, deepen="", base=BASE, freeze=0, bucket=False, gold=r["gold"]))
    if args.stop:
        return
    out = run / "onnx"
    cmd_export(argparse.Namespace(run=str(run), out=str(out)))
    cmd_validate(argparse.Namespace(model=str(out), limit=300, precision="int8", out=str(out / "validation.json")))


VARIANTS = {"selfinfo": ("selfinfo.jsonl",), "qa": ("qa-compare.jsonl",),
            "mix": ("qa-compare.jsonl", "selfinfo.jsonl")}


MULTI_RECIPE = {  # issue 35: multilingual-e5-small on SQuAD (English) and the native QA of qa-multi/
    # (zh, zh-Hant, ja, ar, th, kk, fr), every 8th article of each held out; the word embeddings stay
    # fixed (finetune.MULTI); the losses of the shipped English model's last stage from the start
    "english_paragraphs": 2500, "held_every": 8,
    "data": ["multi-soft.jsonl", "multi-agnostic.jsonl", "en-soft.jsonl", "en-agnostic.jsonl"],
    "run": "multi", "steps": 2400, "lr": 8e-5, "batch": 8, "max_len": 256, "listwise": 0.3,
    "ranking": "spans", "seed": 0,
    # stage 2 goes on from stage 1's weights over the same examples with the question-free ones drawn
    # twice as often (without a question, stage 1 kept 0.55-0.80 of answers at 0.33) and a lower rate
    "stage2": {"run": "multi2", "data": ["multi-soft.jsonl", "multi-agnostic.jsonl", "multi-agnostic.jsonl",
                                         "en-soft.jsonl", "en-agnostic.jsonl"], "steps": 900, "lr": 4e-5, "seed": 1},
    # stage 3 (session 25): stage 2 moved nothing without a question, and the English model, which keeps
    # 0.88 there, saw about 18k question-free paragraphs against this model's 8k; so every English
    # training paragraph's question-free example is added (what makes a span worth asking about should
    # carry across languages, also to those without a set of their own: German, Spanish, Russian)
    "stage3": {"run": "multi3", "init": "multi2",
               "data": ["multi-soft.jsonl", "multi-agnostic.jsonl", "multi-agnostic.jsonl",
                        "en-soft.jsonl", "en-agnostic-all.jsonl"], "steps": 1500, "lr": 5e-5, "seed": 2},
}
QA_MULTI = SHARED / "qa-multi"


def multi_files() -> list[Path]:
    return sorted(QA_MULTI.glob("*_train.jsonl"))


def cmd_multi_labels(args) -> None:
    """Label files of the multilingual run under WORK (each written once) and the held-out rows
    of each qa-multi file (WORK/multi-val/<file>: whole articles, for `validate-multi` and eval)."""
    w, r = Path(args.work), MULTI_RECIPE
    val = w / "multi-val"
    if not (w / "multi-soft.jsonl").is_file():
        val.mkdir(parents=True, exist_ok=True)
        soft, agnostic = [], []
        for path in multi_files():
            train, held = split_by_title(path, r["held_every"])
            for t, c, rows in squad_groups(path, train):
                exs = qa_examples(t, c, rows, with_queries=True, evidence=0.5)
                soft += exs
                agnostic += exs[:1]
            with open(val / path.name, "w", encoding="utf-8") as out:
                for _, _, rows in squad_groups(path, held):
                    for row in rows:
                        out.write(json.dumps(row, ensure_ascii=False) + "\n")
        write_examples(w / "multi-agnostic.jsonl", agnostic)
        write_examples(w / "multi-soft.jsonl", soft)
        _log(f"multi labels: {len(soft)} examples ({len(agnostic)} without a question)")
    if not (w / "en-soft.jsonl").is_file():
        train, _ = split_titles()
        groups = list(itertools.islice(squad_groups(SQUAD_TRAIN, train), r["english_paragraphs"]))
        soft = [ex for t, c, rows in groups for ex in qa_examples(t, c, rows, with_queries=True, evidence=0.5)]
        write_examples(w / "en-agnostic.jsonl", [ex for ex in soft if ex.query is None])
        write_examples(w / "en-soft.jsonl", soft)
        _log(f"english labels: {len(soft)} examples")
    if not (w / "en-agnostic-all.jsonl").is_file():
        train, _ = split_titles()
        agnostic = [ex for t, c, rows in squad_groups(SQUAD_TRAIN, train)
                    for ex in qa_examples(t, c, rows, with_queries=False)]
        write_examples(w / "en-agnostic-all.jsonl", agnostic)
        _log(f"english question-free labels, every training paragraph: {len(agnostic)} examples")


def cmd_multilingual(args) -> None:
    """The multilingual extract model: its base (prepared from two pinned wheels), labels, fit
    (resumable; `--stop N` ends at step N of the schedule), export to WORK/runs/multi/onnx."""

    if not QA_MULTI.is_dir():
        raise SystemExit("promptzip.train: ../shared/corpora/qa-multi is needed to train the multilingual model")
    w, r = Path(args.work), MULTI_RECIPE
    prepare(MULTI, log=_log)
    cmd_multi_labels(args)
    run = w / "runs" / r["run"]
    cmd_fit(argparse.Namespace(data=",".join(str(w / n) for n in r["data"]), run=str(run), steps=r["steps"],
                               batch=r["batch"], lr=r["lr"], max_len=r["max_len"], per_file=0, seed=r["seed"],
                               save_every=25, init="", listwise=r["listwise"], ranking=r["ranking"],
                               stop=args.stop, span=0.0, deepen="", base=MULTI, freeze=0, bucket=True))

def cmd_multilingual_stage(args) -> None:
    """A later stage of the recipe (`stage2`, `stage3`), from the weights of the run before it;
    resumable. Stage 2: the question-free examples drawn twice as often (measured: no gain); stage 3:
    every English paragraph's question-free example added."""
    w, r = Path(args.work), MULTI_RECIPE
    st = r[args.stage]
    cmd_multi_labels(args)
    init = w / "runs" / st.get("init", r["run"]) / "state.pt"
    cmd_fit(argparse.Namespace(data=",".join(str(w / n) for n in st["data"]), run=str(w / "runs" / st["run"]),
                               steps=st["steps"], batch=r["batch"], lr=st["lr"], max_len=r["max_len"], per_file=0,
                               seed=st["seed"], save_every=25, init=str(init), listwise=r["listwise"],
                               ranking=r["ranking"], stop=args.stop, span=0.0, deepen="", base=MULTI, freeze=0,
                               bucket=True))


CUT_RECIPE = {  # issue 35's question: does a 6-layer cut of the trained model (every other layer, the
    # last kept) keep its fidelity after a short fine-tune? Same data and losses, from `multi`'s weights
    "run": "multi-cut6", "init": "multi", "layers": [1, 3, 5, 7, 9, 11], "steps": 500, "lr": 5e-5,
}


def cmd_multilingual_cut(args) -> None:
    w, r, c = Path(args.work), MULTI_RECIPE, CUT_RECIPE
    run = w / "runs" / c["run"]
    cmd_fit(argparse.Namespace(data=",".join(str(w / n) for n in r["data"]), run=str(run), steps=c["steps"],
                               batch=r["batch"], lr=c["lr"], max_len=r["max_len"], per_file=0, seed=1,
                               save_every=25, init=str(w / "runs" / c["init"] / "state.pt"),
                               listwise=r["listwise"], ranking=r["ranking"], stop=args.stop, span=0.0,
                               deepen=",".join(map(str, c["layers"])), base=MULTI, freeze=0, bucket=True))


def cmd_ship_multilingual(args) -> None:
    """Export a multilingual run and write it with its manifest into models/extract-multilingual."""

    w = Path(args.work)
    run = w / "runs" / args.run
    out_dir = run / "onnx"
    export_multilingual(run / "state.pt", out_dir)
    validation = json.loads(Path(args.validation).read_text(encoding="utf-8")) if args.validation else None
    m = ship_multilingual(out_dir, run, Path(args.model),
                          CUT_RECIPE if args.run == CUT_RECIPE["run"] else MULTI_RECIPE, validation)
    _log(f"ship-multilingual: {args.model}/model.int8.onnx sha256 {m['files']['model.int8.onnx']['sha256']}")


def cmd_compare(args) -> None:
    """The label-source comparison: the same fine-tuning on each label set, validated on the
    held-out articles; results in WORK/compare.json (finished variants are not redone)."""
    w = Path(args.work)
    cmd_labels(argparse.Namespace(source="qa", out=str(w / "qa-compare.jsonl"), limit=args.paragraphs, offset=0))
    cmd_labels(argparse.Namespace(source="selfinfo", out=str(w / "selfinfo.jsonl"), limit=args.paragraphs,
                                  offset=0))
    path = w / "compare.json"
    done = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {"variants": {}}
    done["settings"] = {"paragraphs": args.paragraphs, "steps": args.steps, "batch": 8, "max_len": 256}
    for name, files in VARIANTS.items():
        if name in done["variants"]:
            continue
        run, out = w / "runs" / f"compare-{name}", w / "runs" / f"compare-{name}" / "onnx"
        cmd_fit(argparse.Namespace(data=",".join(str(w / f) for f in files), run=str(run), steps=args.steps,
                                   batch=8, lr=5e-5, max_len=256, per_file=0, seed=0, save_every=50))
        cmd_export(argparse.Namespace(run=str(run), out=str(out)))

        done["variants"][name] = validate(out, args.limit, "int8")
        path.write_text(json.dumps(done, indent=1) + "\n", encoding="utf-8")
        _log(f"compare: {name}: {json.dumps(done['variants'][name])}")


def cmd_all(args) -> None:
    """Labels -> fit -> export -> validate -> models/extract-minilm (each step resumes)."""

    if not SHARED.is_dir():
        raise SystemExit("promptzip.train: ../shared/corpora is needed to train (it is beside the "
                         "checkout in CI); the shipped model in models/extract-minilm needs no training.")
    w = Path(args.work)
    r = RECIPE
    for name, (source, limit) in r["labels"].items():
        cmd_labels(argparse.Namespace(source=source, out=str(w / name), limit=limit, offset=0))
    for stage in r["stages"]:
        run = w / "runs" / stage["run"]
        init = str(w / "runs" / stage["init"] / "state.pt") if stage.get("init") else ""
        cmd_fit(argparse.Namespace(data=",".join(str(w / n) for n in stage["data"]), run=str(run),
                                   steps=stage["steps"], batch=r["batch"], lr=stage["lr"], max_len=r["max_len"],
                                   per_file=0, seed=stage.get("seed", r["seed"]), save_every=50, init=init,
                                   listwise=stage.get("listwise", 0.0), ranking=stage.get("ranking", "words"),
                                   stop=stage.get("stop", 0), span=stage.get("span", 0.0),
                                   deepen=",".join(map(str, stage.get("deepen", [])))))
    export_dir = w / "export"
    cmd_export(argparse.Namespace(run=str(run), out=str(export_dir)))
    ship(export_dir, [w / "runs" / st["run"] for st in r["stages"]], Path(args.out), RECIPE, w / "compare.json")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m promptzip.train", description=__doc__.splitlines()[0])
    ap.add_argument("--work", type=Path, default=None)
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("labels")
    p.add_argument("--source", choices=("qa", "qa-soft", "qa-agnostic", "selfinfo", "text"), required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--limit", type=int, default=2000, help="paragraphs (qa/selfinfo) or documents (text)")
    p.add_argument("--offset", type=int, default=0)
    p.set_defaults(func=cmd_labels)
    p = sub.add_parser("fit")
    p.add_argument("--data", required=True)
    p.add_argument("--run", required=True)
    p.add_argument("--steps", type=int, default=600)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--lr", type=float, default=5e-5)
    p.add_argument("--max-len", type=int, default=256)
    p.add_argument("--per-file", type=int, default=0, help="first N examples of each file (0 = all)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--save-every", type=int, default=50)
    p.add_argument("--init", default="", help="state.pt of an earlier run to start from (warm start)")
    p.add_argument("--listwise", type=float, default=0.0,
                   help="weight of the ranking loss added to binary cross-entropy (0 = off)")
    p.add_argument("--ranking", choices=("words", "spans"), default="words",
                   help="what the ranking loss ranks: each word labelled 1, or each run of them by its weakest word")
    p.add_argument("--stop", type=int, default=0,
                   help="end at this step of the --steps schedule (0 = run it all)")
    p.add_argument("--span", type=float, default=0.0,
                   help="weight of a span head's loss (the answer's first and last word; 0 = no span head)")
    p.add_argument("--deepen", default="",
                   help="with --init: stack its encoder layers in this order first (e.g. 0,1,2,2,3,3,4,5: 8 layers)")
    p.add_argument("--base", choices=(BASE, TEACHER, MULTI), default=BASE,
                   help=f"pretrained encoder: {BASE} (the shipped fast model) or {TEACHER} (the 110M teacher)")
    p.add_argument("--freeze", type=int, default=0, help="keep the embeddings and this many lower layers fixed")
    p.add_argument("--bucket", action="store_true", help="batch windows of similar length (less padding)")
    p.add_argument("--gold", type=float, default=0.0,
                   help="teacher-labelled examples: weight of the gold labels in the target (0 = the teacher's alone)")
    p.set_defaults(func=cmd_fit)
    p = sub.add_parser("teacher", help="the MPNet teacher end to end (base, labels, fit, export, validation)")
    p.add_argument("--stop", type=int, default=0, help="end at this step of the schedule (0 = all of it)")
    p.set_defaults(func=cmd_teacher)
    p = sub.add_parser("distill", help="teacher, its labels, and the student trained on them (issue 24)")
    p.add_argument("--stop", type=int, default=0, help="end the student at this step (0 = all of it)")
    p.add_argument("--force", action="store_true", help="distill even from a teacher that validates no better "
                   "than the shipped model")
    p.set_defaults(func=cmd_distill)

    p = sub.add_parser("multilingual", help="the multilingual extract model (issue 35): base, labels, fit")
    p.add_argument("--stop", type=int, default=0, help="end at this step of the schedule (0 = all of it)")
    p.set_defaults(func=cmd_multilingual)
    for stage in ("stage2", "stage3"):
        p = sub.add_parser(f"multilingual-{stage}", help=f"{stage} of the multilingual model (resumable)")
        p.add_argument("--stop", type=int, default=0, help="end at this step of the schedule (0 = all of it)")
        p.set_defaults(func=cmd_multilingual_stage, stage=stage)
    p = sub.add_parser("multilingual-cut", help="a 6-layer cut of the multilingual model, fine-tuned briefly")
    p.add_argument("--stop", type=int, default=0, help="end at this step of the schedule (0 = all of it)")
    p.set_defaults(func=cmd_multilingual_cut)
    p = sub.add_parser("ship-multilingual", help="export a multilingual run into models/extract-multilingual")
    p.add_argument("--run", default="multi", help="run name under WORK/runs (multi: the shipped stage 1; "
                   "multi2: stage 2; multi-cut6)")
    p.add_argument("--model", default=str(Path(__file__).resolve().parents[2] / "models" / "extract-multilingual"))
    p.add_argument("--validation", default="", help="a JSON file of held-out figures to record in the manifest")
    p.set_defaults(func=cmd_ship_multilingual)

    p = sub.add_parser("teach", help="label text with a teacher's keep probabilities (distillation data)")
    p.add_argument("--teacher", required=True, help="an exported teacher folder (model.int8.onnx, tokenizer.json)")
    p.add_argument("--source", choices=("squad-agnostic", "squad-query", "covidqa", "prose"), required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--limit", type=int, default=1000, help="examples of the source to label")
    p.add_argument("--per", type=int, default=1, help="squad-query: questions per paragraph")
    p.set_defaults(func=cmd_teach)
    p = sub.add_parser("export")
    p.add_argument("--run", required=True)
    p.add_argument("--out", required=True)
    p.set_defaults(func=cmd_export)
    p = sub.add_parser("from-onnx", help="a training state dequantized from a shipped int8 model")
    p.add_argument("--model", default=str(Path(__file__).resolve().parents[2] / "models" / "extract-minilm"))
    p.add_argument("--out", required=True, help="state.pt to write")
    p.set_defaults(func=cmd_from_onnx)
    p = sub.add_parser("reexport", help="the shipped weights exported again in the current format "
                       "(dequantized from the shipped int8; replaces it, updates manifest and card)")
    p.add_argument("--model", default=str(Path(__file__).resolve().parents[2] / "models" / "extract-minilm"))
    p.set_defaults(func=cmd_reexport)
    p = sub.add_parser("ship", help="export the last of RUNS (runs under WORK/runs that went on from the "
                       "shipped weights) and replace the shipped model; manifest and card updated")
    p.add_argument("--runs", required=True, help="comma-separated run names, in training order")
    p.add_argument("--model", default=str(Path(__file__).resolve().parents[2] / "models" / "extract-minilm"))
    p.set_defaults(func=cmd_ship)
    p = sub.add_parser("validate")
    p.add_argument("--model", required=True)
    p.add_argument("--limit", type=int, default=300)
    p.add_argument("--precision", default="int8")
    p.add_argument("--out", default="")
    p.set_defaults(func=cmd_validate)
    p = sub.add_parser("compare")
    p.add_argument("--paragraphs", type=int, default=800)
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--limit", type=int, default=300, help="held-out paragraphs to validate on")
    p.set_defaults(func=cmd_compare)
    p = sub.add_parser("all")
    p.add_argument("--out", default=str(Path(__file__).resolve().parents[2] / "models" / "extract-minilm"))
    p.set_defaults(func=cmd_all)
    args = ap.parse_args(argv)
    args.work = args.work or home() / "train"
    args.func(args)


if __name__ == "__main__":
    main()
