"""What several benchmark sections share: where the repository and ../shared are, the machine
line, a command timed in a fresh process, the shared inputs, the `promptzip eval` table and the
pause of training runs during timings."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy

from ..config import home
from ..tokens import load_tokenizer
from ..train.finetune import PAUSE

ROOT = Path(__file__).resolve().parents[2]  # the repository: promptzip/bench/common.py -> ../..
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


def build_100k(path: Path, tokens: int = 100_000) -> str:
    """A ~100k cl100k-token document: WikiText-2 valid articles (or the demo) concatenated."""
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
    import tiktoken  # start-up: kept out of the forward-only process, whose peak RSS is measured

    return (f"{cpu}, {os.cpu_count()} cores{mem}; Python {platform.python_version()}, "
            f"tiktoken {tiktoken.__version__}, numpy {numpy.__version__}")


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


class paused_training:
    """Training runs hold between steps (their PAUSE file) while a timing-sensitive measurement
    runs: extract runs under $PROMPTZIP_HOME/train/runs (unfinished: no train.json) and latent runs
    directly under $PROMPTZIP_HOME/train (state.json + adapter.safetensors). A PAUSE file set by
    hand is left."""

    def __enter__(self):
        self.made = []
        train = home() / "train"
        extract = [r for r in (train / "runs").iterdir() if (r / "state.pt").exists() and not (r / "train.json").exists()] \
            if (train / "runs").is_dir() else []
        latent = [r for r in train.iterdir() if (r / "state.json").exists() and (r / "adapter.safetensors").exists()] \
            if train.is_dir() else []
        for run in extract + latent:
            flag = run / PAUSE
            if not flag.exists():
                flag.touch()
                self.made.append(flag)
        if self.made:
            print(f"bench: {len(self.made)} training run(s) paused", file=sys.stderr)
            time.sleep(30)  # the step in flight ends
        return self

    def __exit__(self, *exc) -> None:
        for flag in self.made:
            flag.unlink(missing_ok=True)
