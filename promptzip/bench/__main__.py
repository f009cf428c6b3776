"""`make bench`: measured numbers for BENCHMARKS.md.

Sections (each replaced in BENCHMARKS.md only when it runs)
* pipeline: throughput (input tokens per second of wall time) and peak RSS on a large input
  (default 200 MB), each method run in a fresh process, side by side with tokenization alone
  (`promptzip tokens`, the ceiling: every method must at least tokenize its input);
* ratio: achieved vs requested ratio for truncate and lexical at 0.5 / 0.33 / 0.2 on the
  documents of ../shared/corpora/text (skipped when the shared corpora are absent);
* extract: the `extract` method on a 100k-token document, end to end, next to the raw
  onnxruntime forward pass of the same model and the LLMLingua peer (tokens/s, peak RSS);
* extract-fidelity: the fidelity section's SQuAD table for the shipped `extract` alone, reader
  log-likelihood without generated answers (the whole fidelity section takes hours);
* extract-knobs: each selection setting of `extract` switched off in turn beside the defaults
  (answer kept, reader log-likelihood, Qwen's exact match; `promptzip.bench.knobs`);
* extract-models: the shipped `extract` model beside the teacher and students trained locally
  (`make teacher`, `make distill`) on issue 24's rows (`promptzip.bench.models`);
* languages: `extract` on held-out rows of English and the seven qa-multi sets, with and without
  the question, beside the English model, lexical and truncation, and both models' speed
  (`promptzip.bench.languages`);
* structure: numbers and prompt structure kept by `extract` on the GSM8K and BBH
  chain-of-thought prompts;
* rag: `promptzip rag` on multi-passage SQuAD (gold + 9 distractors) next to lexical, truncate
  and the LongLLMLingua peer, and its queries/s on 10 passages of 150 words;
* scaleout: `promptzip batch` on 1,000 documents with the local pool and with Ray (1 and 2
  actors, and a two-node cluster on this machine), and what a cluster would do on paper
  (`promptzip.bench.scaleout`);
* formats: every file of ../shared/corpora/formats through its format handler, side by side
  with the plain-text path (`promptzip.bench.formats`);
* fidelity: `promptzip eval` on SQuAD, QMSum and the GSM8K CoT prompt with every method and
  the peers (hours on 2 cores; checkpointed in bench-work/, so it resumes).

Run: python -m promptzip.bench [--sections pipeline,ratio,fidelity] [--datasets squad]
     [--methods truncate,lexical,...]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from pathlib import Path

from ..config import home
from ..mdsections import md_sections
from ..metrics import VERSION as METRICS_VERSION
from . import (
    extract,
    fidelity,
    formats,
    knobs,
    languages,
    latent,
    models,
    pipeline,
    rag,
    reader,
    rewrite,
    scaleout,
    serve,
    structure,
)
from .common import ROOT, SHARED, machine, paused_training
from .fidelity import ALL_METHODS


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m promptzip.bench", description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=ROOT / "BENCHMARKS.md")
    ap.add_argument("--size-mb", type=int, default=200)
    ap.add_argument("--work", type=Path, default=ROOT / "bench-work")
    ap.add_argument("--sections", default="pipeline,ratio,fidelity")
    ap.add_argument("--methods", default=ALL_METHODS, help="methods for the fidelity section")
    ap.add_argument("--datasets", default="", help="fidelity datasets to run (default: all)")
    ap.add_argument("--measured-only", action="store_true",
                    help="fidelity: tables and plots from the rows measured so far (bench-work/), no new rows")
    ap.add_argument("--forward-only", type=Path, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.forward_only:
        print(json.dumps(extract.forward_only(args.forward_only)))
        return
    sections = args.sections.split(",")
    stamp = f"Machine: {machine()}. Date: {dt.date.today().isoformat()}. Metrics v{METRICS_VERSION}."
    existing = md_sections(args.out.read_text(encoding="utf-8")) if args.out.exists() else {}
    only = [d for d in args.datasets.split(",") if d]
    jobs = [  # (section, title in BENCHMARKS.md, what it measures, the measurement)
        ("pipeline", f"Pipeline throughput and memory ({args.size_mb} MB input)", "pipeline throughput and memory",
         lambda: pipeline.bench_pipeline(args.work, args.size_mb)),
        ("ratio", "Achieved vs requested ratio", "achieved vs requested ratio", pipeline.bench_ratio),
        ("extract", "Extract speed (100k-token document)", "extract speed on a 100k-token document",
         lambda: extract.bench_extract(args.work)),
        ("structure", "Structure: chain-of-thought prompts", "structure of chain-of-thought prompts",
         structure.bench_structure),
        ("formats", "Formats: real JSON, CSV, HTML, logs, code and LaTeX", "formats (../shared/corpora/formats)",
         formats.bench_formats),
        ("serve", "Serve: the compression proxy under load", "serve (proxy under load)", serve.bench_serve),
        ("scaleout", "Scale-out: batch on Ray", "batch on the local pool and on Ray",
         lambda: scaleout.bench_scaleout(args.work, SHARED)),
        ("rag", "RAG: multi-passage SQuAD", "rag (multi-passage SQuAD)", lambda: rag.bench_rag(args.work)),
        ("rewrite", "Rewrite: chunk-summarize with a faithfulness guard",
         "rewrite (chunk-summarize with the guard)", lambda: rewrite.bench_rewrite(args.work, args.measured_only)),
        ("latent", "Latent: reconstruction and speed", "latent encoder", latent.bench_latent),
        ("extract-fidelity", "Fidelity of the shipped extract model (SQuAD)",
         "fidelity of the shipped extract model (SQuAD)", lambda: fidelity.bench_extract_fidelity(args.work)),
        ("extract-knobs", "Extract selection settings, each switched off", "extract selection settings",
         lambda: knobs.bench_knobs(args.work, SHARED)),
        ("extract-models", "Extract models on issue 24's rows: shipped, teacher, students",
         "the shipped extract model beside the teacher and students",
         lambda: models.bench_models(args.work, SHARED, home() / "train")),
        ("languages", "Languages: extract on held-out rows of eight languages",
         "extract in every language (held-out rows)",
         lambda: languages.bench_languages(args.work, SHARED, home() / "train" / "runs" / "multi-cut6" / "model")),
        ("languages-mt", "Languages: SQuAD machine-translated into Russian, German, Spanish, Chinese and Arabic",
         "extract on machine-translated SQuAD", lambda: languages.bench_languages_mt(args.work, SHARED)),
        ("languages-reader", "Languages: the Qwen reader on held-out rows",
         "languages read by the Qwen reader", lambda: languages.bench_languages_reader(args.work, SHARED)),
        ("reader", "Reader that can answer: SQuAD read by Qwen2.5-Coder-0.5B", "SQuAD with the Qwen reader",
         lambda: reader.bench_reader(args.work, args.measured_only)),
        ("fidelity", "Fidelity", "fidelity (promptzip eval)",
         lambda: fidelity.bench_fidelity(args.work, args.methods, only, args.measured_only)),
    ]
    timed = ("pipeline", "extract", "serve", "scaleout", "latent", "languages", "rewrite")  # sections with timings: training runs hold meanwhile
    for name, title, what, measure in jobs:
        if name in sections:
            print(f"bench: {what} ...", file=sys.stderr)
            if name in timed:
                with paused_training():
                    text = measure()
            else:
                text = measure()
            existing[title] = f"\n{stamp}\n\n{text}\n\n"
    head = ["# Benchmarks", "",
            "Written by `make bench` (`python -m promptzip.bench`); numbers are measured, never edited.",
            "Each section names the machine and date it was measured on, and the version of the metrics "
            "(`promptzip.metrics.VERSION`). Answer kept changed in v2: punctuation makes a space instead of "
            "being deleted (SQuAD's way), so an answer after an elision or before a possessive counts; sections "
            "without a version were measured with v1 (on the Languages rows, 7 of 724 paragraphs then did not keep "
            "their answer even uncompressed).", ""]
    body = [f"## {title}\n{text.rstrip()}\n" for title, text in existing.items()]
    args.out.write_text("\n".join(head) + "\n" + "\n".join(body), encoding="utf-8")
    print(f"bench: wrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
