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
  (answer kept, reader log-likelihood, Qwen's exact match; `promptzip.bench_knobs`);
* extract-models: the shipped `extract` model beside the teacher and students trained locally
  (`make teacher`, `make distill`) on issue 24's rows (`promptzip.bench_models`);
* languages: `extract` on held-out rows of English and the seven qa-multi sets, with and without
  the question, beside the English model, lexical and truncation, and both models' speed
  (`promptzip.bench_languages`);
* structure: numbers and prompt structure kept by `extract` on the GSM8K and BBH
  chain-of-thought prompts;
* rag: `promptzip rag` on multi-passage SQuAD (gold + 9 distractors) next to lexical, truncate
  and the LongLLMLingua peer, and its queries/s on 10 passages of 150 words;
* scaleout: `promptzip batch` on 1,000 documents with the local pool and with Ray (1 and 2
  actors, and a two-node cluster on this machine), and what a cluster would do on paper
  (`promptzip.bench_scaleout`);
* formats: every file of ../shared/corpora/formats through its format handler, side by side
  with the plain-text path (`promptzip.bench_formats`);
* fidelity: `promptzip eval` on SQuAD, QMSum and the GSM8K CoT prompt with every method and
  the peers (hours on 2 cores; checkpointed in bench-work/, so it resumes).

Run: python -m promptzip.bench [--sections pipeline,ratio,fidelity] [--datasets squad]
     [--methods truncate,lexical,...]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "corpora"
DEMO = ROOT / "corpora" / "demo" / "incident-report.md"
RATIOS = (0.5, 0.33, 0.2)


def shared_texts() -> list[tuple[str, str]]:
    """(id, text) for every document of ../shared/corpora/text."""
    docs = []
    text_dir = SHARED / "text"
    for path in sorted(text_dir.glob("*.jsonl")):
        with open(path, encoding="utf-8") as f:
            for line in f:
                row = json.loads(line)
                docs.append((f"{path.stem}/{row['id']}", row["text"]))
    for path in sorted(text_dir.glob("*.txt")):
        docs.append((path.name, path.read_text(encoding="utf-8")))
    return docs


def build_input(path: Path, size_mb: int) -> str:
    """A large mixed document: the shared texts (or the demo) repeated to `size_mb`."""
    if SHARED.is_dir():
        base = "\n\n".join(text for _, text in shared_texts())
        origin = "../shared/corpora/text (all documents, repeated)"
    else:
        base = DEMO.read_text(encoding="utf-8")
        origin = "corpora/demo/incident-report.md (repeated)"
    target = size_mb * 1_000_000
    if not path.exists() or path.stat().st_size < target:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "w", encoding="utf-8") as f:
            while f.tell() < target:
                f.write(base + "\n\n")
    return origin


def run_measured(cmd: list[str]) -> tuple[float, int, bytes]:
    """Wall seconds, peak RSS in MiB and stdout of one command in a fresh process."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited {proc.returncode}")
    return wall, usage.ru_maxrss // 1024, out


def bench_pipeline(work: Path, size_mb: int) -> str:
    big = work / f"input-{size_mb}mb.txt"
    origin = build_input(big, size_mb)
    exe = [sys.executable, "-m", "promptzip"]
    wall, rss, out = run_measured([*exe, "tokens", str(big)])
    tokens = int(out)
    rows = [("tokenize only (`promptzip tokens`)", wall, rss, None)]
    for method in ("truncate", "lexical"):
        report = work / f"report-{method}.json"
        wall, rss, _ = run_measured([*exe, "compress", str(big), "-m", method, "-r", "0.33", "-q",
                                     "--report", str(report)])
        rows.append((f"`{method}` at ratio 0.33", wall, rss, json.loads(report.read_text())["ratio"]))
    ceiling = tokens / rows[0][1]
    lines = [
        f"Input: {big.stat().st_size / 1e6:.0f} MB, {tokens:,} cl100k_base tokens, built from {origin}.",
        "Each row is a fresh process reading the file; wall time includes start-up (~0.3 s).",
        "",
        "| run | wall s | tokens/s | vs tokenize-only | peak RSS MiB | achieved ratio |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, wall, rss, ratio in rows:
        tps = tokens / wall
        r = f"{ratio:.4f}" if ratio is not None else "-"
        lines.append(f"| {name} | {wall:.1f} | {tps:,.0f} | {tps / ceiling:.2f} | {rss} | {r} |")
    return "\n".join(lines)


def bench_ratio() -> str:
    if not SHARED.is_dir():
        return "Skipped: ../shared/corpora is not beside this checkout."
    from .pipeline import compress

    docs = shared_texts()
    lines = [
        f"{len(docs)} documents from ../shared/corpora/text (every row of the four JSONL files and "
        "tinyshakespeare.txt); error = achieved - requested, in cl100k_base tokens.",
        "",
        "| method | requested | mean achieved | mean abs error | worst error | worst document |",
        "|---|---:|---:|---:|---:|---|",
    ]
    for method in ("lexical", "truncate"):
        for ratio in RATIOS:
            errs = []
            for doc_id, text in docs:
                rep = compress(text, method=method, ratio=ratio).report
                errs.append((rep.ratio - ratio, doc_id))
            mean_achieved = ratio + statistics.fmean(e for e, _ in errs)
            worst = max(errs, key=lambda x: abs(x[0]))
            mae = statistics.fmean(abs(e) for e, _ in errs)
            lines.append(f"| {method} | {ratio} | {mean_achieved:.4f} | {mae:.4f} | {worst[0]:+.4f} | "
                         f"{worst[1]} |")
    return "\n".join(lines)


def build_100k(path: Path, tokens: int = 100_000) -> str:
    """A ~100k cl100k-token document: WikiText-2 valid articles (or the demo) concatenated."""
    from .tokens import load_tokenizer

    counter = load_tokenizer("cl100k_base")
    if SHARED.is_dir():
        with open(SHARED / "text" / "wikitext2_valid_articles.jsonl", encoding="utf-8") as f:
            texts = [json.loads(line)["text"] for line in f]
        origin = "../shared/corpora/text/wikitext2_valid_articles.jsonl (articles in order)"
    else:
        texts = [DEMO.read_text(encoding="utf-8")] * 200
        origin = "corpora/demo/incident-report.md (repeated)"
    parts, n = [], 0
    for t in texts:
        if n >= tokens:
            break
        parts.append(t)
        n += counter.count(t)
    text = "\n\n".join(parts)
    lo, hi = 0, len(text)  # the longest prefix within `tokens`
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if counter.count(text[:mid]) <= tokens:
            lo = mid
        else:
            hi = mid - 1
    path.write_text(text[:lo], encoding="utf-8")
    return origin


def forward_only(doc: Path, max_len: int = 256, batch: int = 4) -> dict:
    """Raw onnxruntime throughput of the shipped int8 model on `doc`: its subwords packed into
    full windows (no overlap, no question), only `session.run` timed."""
    import numpy as np

    from .compressors.extract import Scorer, model_dir
    from .pipeline import word_pieces

    text = doc.read_text(encoding="utf-8")
    sc = Scorer(model_dir(), "int8", max_len, 0, batch)
    words = [text[s:e] for s, e in word_pieces(text)]
    ids = [i for e in sc.tok.encode_batch(words, add_special_tokens=False) for i in e.ids]
    room = max_len - 2
    rows = [[sc.cls, *ids[k:k + room], sc.sep] for k in range(0, len(ids), room)]
    seconds = 0.0
    for k in range(0, len(rows), batch):
        chunk = rows[k:k + batch]
        width = max(map(len, chunk))
        x = np.zeros((len(chunk), width), dtype=np.int64)
        m = np.zeros_like(x)
        for r, row in enumerate(chunk):
            x[r, :len(row)] = row
            m[r, :len(row)] = 1
        t0 = time.perf_counter()
        sc.sess.run(["probs"], {"input_ids": x, "attention_mask": m, "token_type_ids": np.zeros_like(x)})
        seconds += time.perf_counter() - t0
    return {"seconds": seconds, "subwords": len(ids), "windows": len(rows)}


def bench_extract(work: Path, repeats: int = 3) -> str:
    from .tokens import load_tokenizer

    work.mkdir(parents=True, exist_ok=True)
    doc = work / "input-100k.txt"
    origin = build_100k(doc)
    tokens = load_tokenizer("cl100k_base").count(doc.read_text(encoding="utf-8"))
    exe = [sys.executable, "-m", "promptzip"]
    report = work / "report-extract.json"
    # end to end and forward only alternate, each run `repeats` times in a fresh process; the
    # fastest of each is kept (a shared machine only ever adds time), so both rows see the same
    # conditions and their ratio does not hinge on one noisy run
    e2e_runs, wall_runs, fwd_runs, rss, fwd_rss = [], [], [], 0, 0
    for _ in range(repeats):
        wall, mem, _ = run_measured([*exe, "compress", str(doc), "-m", "extract", "-r", "0.33", "-q",
                                     "--report", str(report)])
        rep = json.loads(report.read_text())
        e2e_runs.append(rep["input_tokens"] / (rep["elapsed_ms"] / 1000))
        wall_runs.append(tokens / wall)
        _, mem_f, out = run_measured([sys.executable, "-m", "promptzip.bench", "--forward-only", str(doc)])
        fwd = json.loads(out)
        fwd_runs.append(tokens / fwd["seconds"])
        rss, fwd_rss = max(rss, mem), max(fwd_rss, mem_f)
    e2e, raw = max(e2e_runs), max(fwd_runs)
    rows = [("`extract` int8 end to end (library time)", e2e, rss),
            ("`extract` int8 end to end (process wall, with start-up)", max(wall_runs), rss),
            (f"onnxruntime forward only ({fwd['windows']} full windows of 256, batch 4)", raw, fwd_rss)]
    peer_note = ""
    from .eval.peers import peer_python, run_peers

    if peer_python().exists():
        from .eval.data import EvalItem

        text = doc.read_text(encoding="utf-8")
        counter = load_tokenizer("cl100k_base")
        piece = text[:16_000]
        n_piece = counter.count(piece)
        item = EvalItem(id="bench-100k-head", kind="document", context=piece, question=None, answers=[])
        res = run_peers("llmlingua", [item], [0.33])
        secs = res[(item.id, 0.33)][1]
        rows.append((f"LLMLingua peer (llmlingua 0.2.2, SmolLM2 scorer; first {n_piece:,} tokens)",
                     n_piece / secs, None))
    else:
        peer_note = "LLMLingua peer skipped: `make peers` has not been run."
    spread = ", ".join(f"{name} {min(r):,.0f}-{max(r):,.0f}" for name, r in
                       (("end to end", e2e_runs), ("forward only", fwd_runs)))
    lines = [f"Input: {tokens:,} cl100k_base tokens from {origin}; ratio 0.33; achieved "
             f"{rep['ratio']:.4f}. A fresh process per run; end to end and forward only alternate, "
             f"{repeats} runs each, the fastest shown (all runs, tokens/s: {spread}); the ratios "
             "compare rows of this run.", "",
             "| run | cl100k tokens/s | vs forward only | peak RSS MiB |", "|---|---:|---:|---:|"]
    for name, tps, mem in rows:
        lines.append(f"| {name} | {tps:,.0f} | {tps / raw:.2f} | {mem if mem is not None else '-'} |")
    if len(rows) == 4:
        lines += ["", f"`extract` end to end is {e2e / rows[3][1]:,.0f}x the LLMLingua peer's throughput."]
    if peer_note:
        lines += ["", peer_note]
    return "\n".join(lines)


def machine() -> str:
    cpu = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = ""
    try:
        kb = int(Path("/proc/meminfo").read_text().split()[1])
        mem = f", {kb / 2**20:.0f} GiB RAM"
    except (OSError, ValueError, IndexError):
        pass
    import numpy
    import tiktoken

    return (f"{cpu}, {os.cpu_count()} cores{mem}; Python {platform.python_version()}, "
            f"tiktoken {tiktoken.__version__}, numpy {numpy.__version__}")


FIDELITY = (
    # name, file under ../shared/corpora, rows, reader: "answer" (log-lik + EM/F1), "loglik" or None, title
    ("squad", "qa/squad_v2_half_dev.jsonl", 500, "answer", "SQuAD v2 half-dev (answerable, first 500)"),
    ("qmsum", "meetings/qmsum_val.jsonl", 4, "loglik",
     "QMSum val (query-aware; first 4 queries on meetings of at most 20k characters)"),
    ("gsm8k-cot", "prompts/gsm8k_cot_prompt_hardest.txt", None, None, "GSM8K 8-shot CoT prompt"),
)
ALL_METHODS = "truncate,lexical,random,selfinfo,llmlingua,longllmlingua,extract,extract:noquery"


def bench_fidelity(work: Path, methods: str, only: list[str], measured_only: bool = False) -> str:
    if not SHARED.is_dir():
        return "Skipped: ../shared/corpora is not beside this checkout."
    from .eval.peers import PEERS, peer_python
    from .runtime.lm import resolve_dtype

    wanted = [m for m in methods.split(",") if m]
    notes = []
    if not peer_python().exists() and any(m in PEERS for m in wanted):
        wanted = [m for m in wanted if m not in PEERS]
        notes.append("LLMLingua peers skipped: `make peers` has not been run.")
    parts = ["Measured with `promptzip eval` (rows are checkpointed in bench-work/; a re-run adds only "
             f"what is missing). Reader: SmolLM2-135M-Instruct ({resolve_dtype('auto')}); similarity: all-MiniLM-L6-v2. "
             "Plots put the *achieved* kept ratio on x.", f"Methods in this run: {', '.join(wanted)}.",
             *notes]
    for spec in FIDELITY:
        if only and spec[0] not in only:
            continue
        parts += _eval_table(work, spec, wanted, measured_only)
    return "\n".join(parts)


def bench_extract_fidelity(work: Path) -> str:
    """The SQuAD table again for the shipped `extract` only: the full fidelity run (all
    methods, readers and peers) takes hours, and a retrained model should not wait for it."""
    if not SHARED.is_dir():
        return "Skipped: ../shared/corpora is not beside this checkout."
    from .compressors.extract import Extract

    name, rel, limit, _, title = FIDELITY[0]  # SQuAD
    sha = Extract().model_id() or "?"
    parts = [f"`extract` version {Extract.version}, models/extract-minilm/model.int8.onnx sha256 "
             f"{sha[:12]}…, measured as in the Fidelity section (same rows, reader and metrics) but "
             "without the reader's own answers (EM/F1: generation takes hours on 2 cores); where "
             "that section's date is older, its `extract` rows are an earlier model's and these "
             "supersede them. Tokens/s here are not a speed measure: a document's first ratio pays the "
             "model's forward pass and its other ratios reuse those probabilities (`extract` keeps the "
             "last documents' in memory); the Extract speed section measures speed."]
    parts += _eval_table(work, (name, rel, limit, "loglik", title), ["extract", "extract:noquery"],
                         measured_only=False, out_name=f"{name}-extract")
    return "\n".join(parts)


READER = "qwen2.5-coder-0.5b-instruct"
READER_N = 200
READER_METHODS = ["truncate", "lexical", "selfinfo", "llmlingua", "extract", "extract:noquery"]


def bench_reader(work: Path, measured_only: bool = False) -> str:
    """SQuAD read by a reader that can answer (Qwen2.5-Coder-0.5B-Instruct through llama.cpp):
    EM / F1 / answer kept per method and ratio, and how much of the uncompressed EM each keeps."""
    if not SHARED.is_dir():
        return "Skipped: ../shared/corpora is not beside this checkout."
    from .eval.peers import peer_python
    from .runtime.store import prepare

    prepare(READER, log=lambda m: print(f"bench: {m}", file=sys.stderr))
    methods = [m for m in READER_METHODS if m != "llmlingua" or peer_python().exists()]
    name, rel, _, _, _ = FIDELITY[0]
    title = f"SQuAD v2 half-dev (answerable, first {READER_N}), read by Qwen2.5-Coder-0.5B-Instruct"
    parts = [f"`promptzip eval --reader-model {READER}`: the reader answers each question over each compressed "
             "context (greedy, the frozen reader prompt, llama.cpp's server on 2 threads); EM and F1 under SQuAD "
             "normalization, and EM kept = the method's EM over the uncompressed context's on the same rows. The "
             "log-likelihood column is empty: llama.cpp's server does not score given text."
             + ("" if "llmlingua" in methods else " LLMLingua peer not run: `make peers` has not been run.")]
    parts += _eval_table(work, (name, rel, READER_N, "answer", title), methods, measured_only,
                         out_name=f"{name}-qwen", extra=["--reader-model", READER, "--no-embed"])
    parts += _em_kept_headline(work / f"eval-{name}-qwen")
    rows = gsm8k_reader_rows(work / "gsm8k-cot-reader.jsonl", GSM8K_N)
    parts += ["", f"GSM8K as the LLMLingua papers read it: the 8-shot chain-of-thought prompt "
              "(prompts/gsm8k_cot_prompt_hardest.txt) is the context that methods compress, the question is one "
              f"of the last {GSM8K_N} problems of prompts/gsm8k_train.jsonl (none of them among the examples), "
              "and the reader reasons step by step to 'The answer is N' (at most 320 tokens); EM compares N with "
              "the gold number. Methods compress the examples without the question, as the papers do."]
    parts += _eval_table(work, ("gsm8k-cot", str(rows), None, "answer", f"GSM8K: {GSM8K_N} problems after the "
                                "8-shot CoT prompt, read by Qwen2.5-Coder-0.5B-Instruct"),
                         [m for m in methods if m in GSM8K_METHODS], measured_only,
                         out_name="gsm8k-cot-qwen", extra=["--reader-model", READER, "--no-embed"])
    parts += _em_kept_headline(work / "eval-gsm8k-cot-qwen")
    parts += ["", "QMSum is not in this section: its gold answers are free-form summaries, which neither EM "
              "nor F1 of a 0.5B model's summary measures, and llama.cpp's server gives no log-likelihood of "
              "given text (the Fidelity section has QMSum read by SmolLM2's log-likelihood)."]
    return "\n".join(parts)


MIN_RIGHT = 5  # uncompressed right answers below which a reader's EM kept is not reported


def _em_kept_headline(out: Path) -> list[str]:
    """The headline of a reader table: per method, the share of the uncompressed context's EM it
    keeps at each ratio (mean [95% interval], paired on the same rows), with the share of the
    text it really kept where that is off its target."""
    path = out / "results.json"
    if not path.is_file():
        return []
    summary = json.loads(path.read_text(encoding="utf-8"))["summary"]
    first = next((r for r in summary if r["method"] == "original"), None)
    original = first["em"]["mean"] if first else None
    if first and round(original * first["n"]) < MIN_RIGHT:
        return ["", f"The reader answers {round(original * first['n'])} of the {first['n']} uncompressed problems "
                "right: too few for its EM to say what a compression costs here (a stronger reader, "
                "`--reader-endpoint`, is needed for this set)."]
    kept: dict[str, dict[float, str]] = {}
    total: dict[str, float] = {}  # a method's EM kept summed over ratios: the table's order
    for r in summary:
        if r["method"] != "original" and r.get("em_kept"):
            k, got = r["em_kept"], r["achieved_ratio"]["mean"]
            miss = f" (kept {got:.2f} of the text)" if abs(got - r["target_ratio"]) > 0.05 else ""
            kept.setdefault(r["method"], {})[r["target_ratio"]] = f"{k['mean']:.2f} [{k['lo']:.2f}, {k['hi']:.2f}]{miss}"
            total[r["method"]] = total.get(r["method"], 0.0) + k["mean"]
    if not kept or original is None:
        return []
    lines = ["", f"How much of the uncompressed EM ({original:.3f}) each method keeps:", "",
             "| method | " + " | ".join(f"EM kept @{x:g}" for x in RATIOS) + " |",
             "|---|" + "---:|" * len(RATIOS)]
    for method, by in sorted(kept.items(), key=lambda kv: -total[kv[0]]):
        lines.append(f"| {method} | " + " | ".join(by.get(x, "-") for x in RATIOS) + " |")
    return lines


GSM8K_N = 10  # 10 to 40 s a problem on 2 cores (up to 320 tokens of reasoning), 13 settings each
GSM8K_METHODS = ("truncate", "lexical", "llmlingua", "extract:noquery")  # the examples compressed once, as in the papers


def gsm8k_reader_rows(out: Path, n: int) -> Path:
    """QA rows of style `cot`: the 8-shot CoT prompt as context, each of the last `n` GSM8K
    training problems that is not one of its examples as question, its number as answer."""
    prompt = (SHARED / "prompts" / "gsm8k_cot_prompt_hardest.txt").read_text(encoding="utf-8")
    with open(SHARED / "prompts" / "gsm8k_train.jsonl", encoding="utf-8") as f:  # not splitlines: U+2028 in rows
        rows = [json.loads(line) for line in f if line.strip()]
    picked = [r for r in reversed(rows) if r["prompt"].strip()[:80] not in prompt][:n]
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("".join(json.dumps({"id": r["id"], "context": prompt, "question": r["prompt"],
                                       "answers": [r["answer"]], "style": "cot"}) + "\n" for r in picked),
                   encoding="utf-8")
    return out


def _eval_table(work: Path, spec: tuple, methods: list[str], measured_only: bool,
                out_name: str = "", extra: list[str] | None = None) -> list[str]:
    """`promptzip eval` of `methods` on one FIDELITY dataset (rows kept in bench-work/eval-NAME,
    NAME = `out_name` or the dataset's): its table and links to its plots (docs/bench/NAME)."""
    dataset, rel, limit, reader, title = spec
    name = out_name or dataset
    out = work / f"eval-{name}"
    if measured_only and not (out / "rows.jsonl").is_file():
        return ["", f"### {title}", "", "Not measured yet (`make bench BENCH_SECTIONS=fidelity` measures it)."]
    cmd = [sys.executable, "-m", "promptzip", "eval", str(SHARED / rel), "--methods", ",".join(methods),
           "--ratios", ",".join(map(str, RATIOS)), "--out", str(out), "--title", title]
    if limit:
        cmd += ["--limit", str(limit)]
    if dataset == "qmsum":
        cmd += ["--max-chars", "20000"]  # ~5k tokens: peers and reader stay affordable on 2 cores
    cmd += extra or []
    if measured_only:
        cmd += ["--measured-only"]
    if reader is None:
        cmd += ["--no-reader"]
    elif reader == "loglik":
        cmd += ["--no-generate"]
    print(f"bench: eval {name} ...", file=sys.stderr)
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    plots = ROOT / "docs" / "bench" / name
    plots.mkdir(parents=True, exist_ok=True)
    for png in sorted(out.glob("*.png")):
        (plots / png.name).write_bytes(png.read_bytes())
    table = (out / "results.md").read_text(encoding="utf-8")
    links = " · ".join(f"[{p.stem}](docs/bench/{name}/{p.name})" for p in sorted(plots.glob("*.png")))
    return ["", table.rstrip(), "", f"Plots: {links}"]


RAG_N, RAG_PEER_N, RAG_HARD_N, RAG_HOP_N, RAG_SPEED_N = 300, 40, 200, 200, 100


class paused_training:
    """Training runs under $PROMPTZIP_HOME/train/runs hold between steps (their PAUSE file)
    while a timing-sensitive measurement runs; a run's own PAUSE file, set by hand, is left."""

    def __enter__(self):
        from .config import home
        from .train.finetune import PAUSE

        self.made = []
        runs = home() / "train" / "runs"
        for run in runs.iterdir() if runs.is_dir() else ():
            flag = run / PAUSE
            if (run / "state.pt").exists() and not (run / "train.json").exists() and not flag.exists():
                flag.touch()
                self.made.append(flag)
        if self.made:
            print(f"bench: {len(self.made)} training run(s) paused", file=sys.stderr)
            time.sleep(30)  # the step in flight ends
        return self

    def __exit__(self, *exc) -> None:
        for flag in self.made:
            flag.unlink(missing_ok=True)


def bench_rag(work: Path) -> str:
    """Multi-passage SQuAD: answer retention per method at 0.2 / 0.1 kept, the same-article
    variant and a two-passage (bridge) set for the relevance modes, and rag throughput on 10
    passages of 150 words (training paused)."""
    if not SHARED.is_dir():
        return "Skipped: ../shared/corpora is not beside this checkout."
    from . import rag
    from .eval.peers import peer_python
    from .rag import compress_passages
    from .rag_eval import (
        fixed_length,
        multi_hop_items,
        multi_passage_items,
        run_method,
        summarize,
        table,
    )

    data = SHARED / "qa" / "squad_v2_half_dev.jsonl"
    out = work / "rag"
    out.mkdir(parents=True, exist_ok=True)
    items = multi_passage_items(data, RAG_N)
    hard = multi_passage_items(data, RAG_HARD_N, same_article=True)
    hop = multi_hop_items(data, RAG_HOP_N)
    compress_passages("warm up", ["the models load", "before timing"], ratio=0.5, relevance_mode="hybrid")
    results, hard_results, hop_results, notes = {}, {}, {}, []

    def no_hop(rows_of):  # the model's relevance without the second hop
        names, rag.HOP_NAMES = rag.HOP_NAMES, 0
        try:
            return rows_of()
        finally:
            rag.HOP_NAMES = names

    for ratio in (0.2, 0.1):
        for method in ("rag", "rag:bm25", "rag:hybrid", "extract", "lexical", "truncate"):
            print(f"bench: rag {method} @{ratio} ...", file=sys.stderr)
            results[(method, ratio)] = summarize(run_method(method, items, ratio))
        if peer_python().exists():
            print(f"bench: rag longllmlingua @{ratio} ...", file=sys.stderr)
            rows = run_method("longllmlingua", items[:RAG_PEER_N], ratio, out / "peer-longllmlingua.jsonl")
            results[("longllmlingua", ratio)] = summarize(rows)
        for method in ("rag", "rag:bm25", "rag:auto", "rag:hybrid", "rag:embed"):
            print(f"bench: rag (same article) {method} @{ratio} ...", file=sys.stderr)
            hard_results[(method, ratio)] = summarize(run_method(method, hard, ratio))
        for method in ("rag", "rag:bm25", "rag:auto", "extract"):
            print(f"bench: rag (bridge) {method} @{ratio} ...", file=sys.stderr)
            hop_results[(method, ratio)] = summarize(run_method(method, hop, ratio))
        hop_results[("rag, no second hop", ratio)] = summarize(no_hop(lambda r=ratio: run_method("rag", hop, r)))
    if not peer_python().exists():
        notes.append("LongLLMLingua peer skipped: `make peers` has not been run.")
    speed_items = fixed_length(items[:RAG_SPEED_N])
    speed = ["| setting | target | queries/s | ms/query |", "|---|---:|---:|---:|"]
    with paused_training():
        for method, label in (("rag", "rag (model relevance, the default)"), ("rag:bm25", "rag --relevance bm25"),
                              ("rag:auto", "rag --relevance auto"), ("rag:hybrid", "rag --relevance hybrid")):
            for ratio in (0.2, 0.1):
                t0 = time.perf_counter()
                run_method(method, speed_items, ratio)
                secs = time.perf_counter() - t0
                speed.append(f"| {label} | {ratio} | {len(speed_items) / secs:.1f} | "
                             f"{1000 * secs / len(speed_items):.0f} |")
    words = statistics.fmean(len(p.split()) for it in items for p in it["passages"])
    return "\n".join([
        "Each SQuAD v2 half-dev question (answerable, first rows) with its gold paragraph and 9 distractor "
        "paragraphs, shuffled (`promptzip/rag_eval.py`, seed 0). `rag` is `promptzip rag` with its default "
        "relevance (`model`: the extract classifier reads each passage with the question, a second hop follows "
        "the names of the best passages, one word budget over all passages); `rag:MODE` sets `--relevance`; "
        "`extract`, `lexical` and `truncate` get the passages joined (`extract` with the question); the "
        "LongLLMLingua peer ranks the passages itself (first "
        f"{RAG_PEER_N} questions: it runs at ~60 tokens/s). *Answer kept*: a normalized gold answer is in the "
        "output. Queries/s in these tables were measured while the table was built (beside any training run); "
        "the throughput table below, measured with training paused, is the one to quote.", *notes, "",
        f"### Distractors from other articles ({len(items)} questions, {words:.0f} words per passage on average)",
        "", table(results), "",
        f"### Distractors from the same article ({len(hard)} questions; lexical ranking is less decisive)", "",
        table(hard_results), "",
        f"### Bridge questions: two passages needed ({len(hop)} questions)", "",
        "Built from the same split (`rag_eval.multi_hop_items`): a question Q whose paragraph B names E (E in Q, "
        "not in the answer); a sentence S naming E from another paragraph A of the article; E replaced by `X` in "
        "both, and the question reads `S'. Q'`. S' finds A, A gives E, and only E says which paragraph answers "
        "Q'. Ten passages: A, B, four more of the article, four of others. *Gold passage kept*: B.", "",
        table(hop_results), "",
        f"### Throughput: 10 passages of exactly 150 words per query ({len(speed_items)} queries, 2 cores)", "",
        *speed])


REWRITE_SETS = (("squad", "qa/squad_v2_half_dev.jsonl", 16, "0.5,0.33", []),
                ("qmsum", "meetings/qmsum_val.jsonl", 2, "0.33", ["--max-chars", "20000"]))
SPEED_PROMPT_CHARS = 1200


def bench_rewrite(work: Path, measured_only: bool = False) -> str:
    """rewrite vs extract on SQuAD and QMSum (promptzip eval, reader log-likelihood), the share
    of chunks per path (re-run through the completion cache), and local generation speed:
    onnxruntime-genai against transformers' generate on the same prompt."""
    if not SHARED.is_dir():
        return "Skipped: ../shared/corpora is not beside this checkout."
    from .compressors.rewrite import SYSTEM
    from .eval.data import load_items
    from .pipeline import compress
    from .runtime.generate import local_generator

    parts = ["`promptzip eval --methods rewrite,extract --no-generate` (reader: SmolLM2 log-likelihood of the "
             "gold answer; *entities kept*: the guard's names, *invented numbers*: distinct numbers in the "
             "output that the input lacks). Local backend: SmolLM2-135M on onnxruntime-genai, copy-constrained."]
    paths_all: dict[str, int] = {}
    for name, rel, limit, ratios, extra in REWRITE_SETS:
        out = work / f"eval-rewrite-{name}"
        cmd = [sys.executable, "-m", "promptzip", "eval", str(SHARED / rel), "--methods", "rewrite,extract",
               "--ratios", ratios, "--limit", str(limit), "--no-generate", "--out", str(out),
               "--title", f"rewrite vs extract: {name}", *extra]
        if measured_only:
            cmd += ["--measured-only"]
        print(f"bench: rewrite eval {name} ...", file=sys.stderr)
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
        parts += ["", (out / "results.md").read_text(encoding="utf-8").rstrip()]
        done = {json.loads(line)["item"] for line in open(out / "rows.jsonl", encoding="utf-8")
                if json.loads(line)["method"] == "rewrite"}
        items = [it for it in load_items(SHARED / rel, limit, 20000 if extra else None) if it.id in done]
        paths: dict[str, int] = {}
        for it in items:  # completions come from the cache the eval filled: no generation here
            for ratio in map(float, ratios.split(",")):
                rep = compress(it.context, method="rewrite", ratio=ratio, query=it.question).report
                for c in rep.chunks or []:
                    paths[c["path"]] = paths.get(c["path"], 0) + 1
        total = sum(paths.values())
        asked = sum(paths.get(p, 0) for p in ("rewrite", "retry", "extract"))
        fell = paths.get("extract", 0)
        for p, n in paths.items():
            paths_all[p] = paths_all.get(p, 0) + n
        parts += ["", f"Chunks by path ({len(items)} items, all ratios): " +
                  ", ".join(f"{p} {n} ({n / total:.0%})" for p, n in sorted(paths.items())) +
                  f". Of the {asked} chunks that needed rewriting, {fell} ({fell / max(asked, 1):.0%}) fell back "
                  "to extraction."]
    # generation speed, same prompt and greedy settings, both backends in this run
    gen = local_generator(True)
    text = (ROOT / "corpora" / "demo" / "incident-report.md").read_text(encoding="utf-8")[:SPEED_PROMPT_CHARS]
    msgs = [{"role": "system", "content": SYSTEM.format(words=60)}, {"role": "user", "content": text}]
    rows = ["| backend | prompt tokens | new tokens | seconds | tokens/s |", "|---|---:|---:|---:|---:|"]
    free = local_generator(False)
    n_prompt = len(free.prompt_ids(msgs))
    for label, g in (("onnxruntime-genai fp32", free), ("onnxruntime-genai fp32, copy-constrained", gen)):
        g.generated_tokens, g.seconds = 0, 0.0
        g.complete(msgs, 80, text)
        rows.append(f"| {label} | {n_prompt} | {g.generated_tokens} | {g.seconds:.2f} | {g.generated_tokens / g.seconds:.1f} |")
    import torch

    from .runtime.lm import load_causal_lm

    for dtype in ("float32", "bfloat16"):
        tok, model = load_causal_lm(dtype)
        ids = torch.tensor([free.prompt_ids(msgs)])
        with torch.inference_mode():
            model.generate(ids, max_new_tokens=2, do_sample=False)
            t0 = time.perf_counter()
            out = model.generate(ids, max_new_tokens=80, min_new_tokens=80, do_sample=False)
            secs = time.perf_counter() - t0
        new = out.shape[1] - ids.shape[1]
        rows.append(f"| transformers generate, torch {dtype} | {ids.shape[1]} | {new} | {secs:.2f} | {new / secs:.1f} |")
    parts += ["", "### Local generation speed (2 cores; prefill included)", "", *rows]
    return "\n".join(parts)


def bench_structure() -> str:
    """Few-shot chain-of-thought prompts (GSM8K 8-shot and the 27 BBH task prompts): after
    `extract` (and `lexical` for contrast), does every number survive, and every separator,
    step marker, answer statement and example label (`eval.metrics.structure_kept`)?"""
    if not SHARED.is_dir():
        return "Skipped: ../shared/corpora is not beside this checkout."
    from .eval.metrics import structure_kept
    from .fidelity import FidelityTracker
    from .pipeline import compress

    prompts = SHARED / "prompts"
    files = [prompts / "gsm8k_cot_prompt_hardest.txt", *sorted((prompts / "bbh_cot").glob("*.txt"))]
    texts = [(f.stem, f.read_text(encoding="utf-8")) for f in files]
    lines = [f"{len(texts)} prompts: ../shared/corpora/prompts/gsm8k_cot_prompt_hardest.txt and the "
             f"{len(texts) - 1} files of prompts/bbh_cot/. *Numbers kept*: share of the prompt's numbers in the "
             "output; *structure kept*: separators and step markers as whole lines, answer statements whole "
             "at a line end, example labels still opening a line. Achieved ratios above the request are "
             "prompts whose protected content (numbers, structure) alone exceeds the budget.", "",
             "| method | requested | mean achieved | numbers kept (mean / worst) | structure kept (mean / worst) "
             "| prompts with everything kept |", "|---|---:|---:|---:|---:|---:|"]
    for method in ("extract", "lexical"):
        for ratio in RATIOS:
            nums, structs, ratios = [], [], []
            for _, text in texts:
                res = compress(text, method, ratio=ratio)
                tracker = FidelityTracker()
                tracker.input(text)
                tracker.output(res.text)
                nums.append(tracker.result().numbers_kept)
                structs.append(structure_kept(text, res.text))
                ratios.append(res.report.ratio)
            n = [x for x in nums if x is not None]
            st = [x for x in structs if x is not None]
            whole = sum((a is None or a == 1.0) and (b is None or b == 1.0) for a, b in zip(nums, structs, strict=True))
            lines.append(f"| {method} | {ratio} | {statistics.fmean(ratios):.3f} | {statistics.fmean(n):.3f} / "
                         f"{min(n):.3f} | {statistics.fmean(st):.3f} / {min(st):.3f} | {whole} of {len(texts)} |")
    return "\n".join(lines)


def bench_latent() -> str:
    """The shipped latent path: its held-out learning curve (from models/latent-minilm), the
    held-out reconstruction with refinement at 4x, 8x and 16x (needs ../shared), and encoding /
    decoding speed on the demo document."""
    from .compressors.latent import REFINE_DEFAULT
    from .latent.fidelity import measure
    from .latent.runtime import LatentRuntime, latent_dir
    from .latent.train import SHARED, held_out

    folder = latent_dir()
    evals = [json.loads(line) for line in open(folder / "eval.jsonl", encoding="utf-8")]
    rows = ["| step | CPU hours | latents per 64 tokens | rate | precision | token exact match |",
            "|---:|---:|---:|---:|---:|---:|"]
    for e in evals:
        rows.append(f"| {e['step']} | {e['cpu_hours']:.2f} | {e['k']} | {e['ratio']:.0f}x | {e['precision']:.3f} | "
                    f"{e['token_em']:.3f} |")
    rt = LatentRuntime(folder)
    text = (ROOT / "corpora" / "demo" / "incident-report.md").read_text(encoding="utf-8")
    rt.encode(text[:500], 4)  # warm up: ONNX session and decoder tokenizer
    refined = ["| rate | chunks | precision | token exact match | exact chunks | median final loss | mean steps | "
               "encode tokens/s | decode tokens/s |", "|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    if (SHARED / "text").is_dir():
        chunks = held_out(rt.lm[0], rt.chunk_tokens, 8)
        for rate in (4, 8, 16):
            for init in ("encoder", "mean") if rate == 4 else ("encoder",):
                r = measure(rt, chunks, rate, REFINE_DEFAULT, init)
                label = f"{rate}x" + (" (init: mean)" if init == "mean" else "")
                refined.append(f"| {label} | {r['chunks']} | {r['precision']:.3f} | {r['token_em']:.3f} | "
                               f"{r['exact_chunks']} of {r['chunks']} | {r['final_loss_median']:.3f} | "
                               f"{r['steps_mean']:.0f} | {r['encode_tokens_per_s']:.2f} | {r['decode_tokens_per_s']:.1f} |")
    else:
        refined.append("| (../shared/corpora/text is absent: not measured) | | | | | | | | |")
    speed = ["| rate | decoder tokens | latents | encode s | encode tokens/s | decode s (first 2 chunks) | decoded tokens/s |",
             "|---:|---:|---:|---:|---:|---:|---:|"]
    for rate in (4, 8, 16):
        t0 = time.perf_counter()
        latents, header = rt.encode(text, rate)
        enc_s = time.perf_counter() - t0
        n = int(header["original_tokens"])
        t0 = time.perf_counter()
        out = rt.decode(latents[:2])
        dec_s = time.perf_counter() - t0
        new = len(rt.lm[0](out, add_special_tokens=False)["input_ids"])
        speed.append(f"| {rate}x | {n} | {sum(len(x) for x in latents)} | {enc_s:.2f} | {n / enc_s:,.0f} | "
                     f"{dec_s:.1f} | {new / dec_s:.1f} |")
    return "\n".join([
        "Held-out reconstruction (WikiText-2 test chunks of 64 SmolLM2 tokens, never trained on): precision = "
        "1 - character edit distance / length (C3's decoding precision); token exact match = share of "
        "positions where the greedy reconstruction has the original token.", "",
        f"### With refinement (what `compress -m latent` does; at most {REFINE_DEFAULT} steps per chunk, "
        "stopping at loss 0.05)", "",
        "`python -m promptzip.latent.fidelity`: the encoder's latents refined through the frozen decoder, "
        "then `promptzip decode`'s greedy path. Encode tokens/s include the refinement.", "", *refined, "",
        "### The encoder alone (no refinement), during training", "",
        "From models/latent-minilm/eval.jsonl, written during training.", "", *rows, "",
        "### Speed on the demo document, encoder alone (2 cores)", "", *speed])


def _bench_formats() -> str:
    from .bench_formats import bench_formats

    return bench_formats()


def md_sections(text: str) -> dict[str, str]:
    """'## Title' sections of a Markdown file: title -> body (an existing BENCHMARKS.md, so a partial
    run keeps the others; a model card's hand-written sections)."""
    found: dict[str, str] = {}
    title = None
    for line in text.splitlines():
        if line.startswith("## "):
            title = line[3:].strip()
            found[title] = ""
        elif title is not None:
            found[title] += line + "\n"
    return found


def _bench_knobs(work: Path) -> str:
    from .bench_knobs import bench_knobs

    return bench_knobs(work, SHARED)


def _bench_models(work: Path) -> str:
    from .bench_models import bench_models
    from .config import home

    return bench_models(work, SHARED, home() / "train")


def _bench_languages(work: Path) -> str:
    from .bench_languages import bench_languages
    from .config import home

    return bench_languages(work, SHARED, home() / "train" / "runs" / "multi-cut6" / "model")


def _bench_languages_reader(work: Path) -> str:
    from .bench_languages import bench_languages_reader

    return bench_languages_reader(work, SHARED)


def _bench_scaleout(work: Path) -> str:
    from .bench_scaleout import bench_scaleout

    return bench_scaleout(work, SHARED)


def _bench_serve() -> str:
    from .bench_serve import bench_serve

    return bench_serve()


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
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
        print(json.dumps(forward_only(args.forward_only)))
        return
    sections = args.sections.split(",")
    stamp = f"Machine: {machine()}. Date: {dt.date.today().isoformat()}."
    existing = md_sections(args.out.read_text(encoding="utf-8")) if args.out.exists() else {}
    only = [d for d in args.datasets.split(",") if d]
    jobs = [  # (section, title in BENCHMARKS.md, what it measures, the measurement)
        ("pipeline", f"Pipeline throughput and memory ({args.size_mb} MB input)", "pipeline throughput and memory",
         lambda: bench_pipeline(args.work, args.size_mb)),
        ("ratio", "Achieved vs requested ratio", "achieved vs requested ratio", bench_ratio),
        ("extract", "Extract speed (100k-token document)", "extract speed on a 100k-token document",
         lambda: bench_extract(args.work)),
        ("structure", "Structure: chain-of-thought prompts", "structure of chain-of-thought prompts",
         bench_structure),
        ("formats", "Formats: real JSON, CSV, HTML, logs, code and LaTeX", "formats (../shared/corpora/formats)",
         _bench_formats),
        ("serve", "Serve: the compression proxy under load", "serve (proxy under load)", _bench_serve),
        ("scaleout", "Scale-out: batch on Ray", "batch on the local pool and on Ray", lambda: _bench_scaleout(args.work)),
        ("rag", "RAG: multi-passage SQuAD", "rag (multi-passage SQuAD)", lambda: bench_rag(args.work)),
        ("rewrite", "Rewrite: chunk-summarize with a faithfulness guard",
         "rewrite (chunk-summarize with the guard)", lambda: bench_rewrite(args.work, args.measured_only)),
        ("latent", "Latent: reconstruction and speed", "latent encoder", bench_latent),
        ("extract-fidelity", "Fidelity of the shipped extract model (SQuAD)",
         "fidelity of the shipped extract model (SQuAD)", lambda: bench_extract_fidelity(args.work)),
        ("extract-knobs", "Extract selection settings, each switched off", "extract selection settings",
         lambda: _bench_knobs(args.work)),
        ("extract-models", "Extract models on issue 24's rows: shipped, teacher, students",
         "the shipped extract model beside the teacher and students", lambda: _bench_models(args.work)),
        ("languages", "Languages: extract on held-out rows of eight languages",
         "extract in every language (held-out rows)", lambda: _bench_languages(args.work)),
        ("languages-reader", "Languages: the Qwen reader on held-out rows",
         "languages read by the Qwen reader", lambda: _bench_languages_reader(args.work)),
        ("reader", "Reader that can answer: SQuAD read by Qwen2.5-Coder-0.5B", "SQuAD with the Qwen reader",
         lambda: bench_reader(args.work, args.measured_only)),
        ("fidelity", "Fidelity", "fidelity (promptzip eval)",
         lambda: bench_fidelity(args.work, args.methods, only, args.measured_only)),
    ]
    timed = ("pipeline", "extract", "serve", "scaleout")  # sections that are timings only: training runs hold meanwhile
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
            "Each section names the machine and date it was measured on.", ""]
    body = [f"## {title}\n{text.rstrip()}\n" for title, text in existing.items()]
    args.out.write_text("\n".join(head) + "\n" + "\n".join(body), encoding="utf-8")
    print(f"bench: wrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
