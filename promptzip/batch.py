"""Batch compression of a folder tree: mirrored outputs, a JSONL journal, resumable runs.

* Each output is written to a hidden temporary file beside its final path and renamed into
  place, so an interrupted run (Ctrl-C, SIGKILL, power loss aside) never leaves a truncated
  output under a final name.
* The journal `promptzip-report.jsonl` in the output folder gets one line per finished item
  (appended and flushed after the rename). A re-run skips an item when its last journal line
  says `ok` with the same input sha256 and settings key, and the output on disk still has the
  recorded sha256. A torn last line (a kill mid-write) is ignored.
* `promptzip-summary.json` is rewritten at the end of every run (also an interrupted one).
* One failing item is recorded with its error and never stops the run.
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from . import ray as ray_engine
from .errors import UsageError
from .fileutil import atomic_write, sha256_file
from .jobs import TMP_MARK, BatchSettings, Job, run_job

ENGINES = ("local", "ray")
REPORT_NAME = "promptzip-report.jsonl"
SUMMARY_NAME = "promptzip-summary.json"
SCHEMA_VERSION = 1


@dataclass
class Summary:
    source: str
    output: str
    total: int = 0
    compressed: int = 0
    up_to_date: int = 0
    failed: int = 0
    interrupted: bool = False
    input_tokens: int = 0
    output_tokens: int = 0
    ratio: float | None = None
    elapsed_s: float = 0.0
    settings: dict[str, Any] = field(default_factory=dict)
    failures: list[dict[str, str]] = field(default_factory=list)
    schema_version: int = SCHEMA_VERSION

    def render(self) -> str:
        ratio = f"ratio {self.ratio:.3f}" if self.ratio is not None else "ratio n/a"
        text = (
            f"batch: {self.total} files · {self.compressed} compressed · {self.up_to_date} up to date"
            f" · {self.failed} failed · {self.input_tokens:,} -> {self.output_tokens:,} tokens"
            f" ({ratio}) · {self.elapsed_s:.1f} s"
        )
        if self.input_tokens and self.elapsed_s > 0 and not self.up_to_date:  # all of it made by this run
            text += f" · {self.input_tokens / self.elapsed_s:,.0f} tokens/s"
        return text + (" · interrupted" if self.interrupted else "")


def _inside(child: Path, parent: Path) -> bool:
    return child == parent or parent in child.parents


def discover(src: Path, pattern: str, out: Path) -> list[Path]:
    """Files (and broken symlinks, to report them) under `src` matching `pattern`, sorted."""
    found = []
    for p in src.glob(pattern):
        if _inside(p.resolve() if p.exists() else p, out):
            continue
        if p.is_file() or (p.is_symlink() and not p.exists()):
            found.append(p)
    return sorted(found)


def check_dirs(src: Path, out: Path) -> None:
    if not src.is_dir():
        raise UsageError(f"{src} is not a directory")
    rs, ro = src.resolve(), out.resolve()
    if _inside(ro, rs):
        raise UsageError(
            f"output folder {out} is inside the input folder {src}",
            "Choose an output folder outside the input tree.",
        )
    if _inside(rs, ro):
        raise UsageError(
            f"input folder {src} is inside the output folder {out}",
            "Outputs could overwrite inputs; choose another output folder.",
        )
    if out.exists() and not out.is_dir():
        raise UsageError(f"{out} exists and is not a folder")


def load_journal(path: Path) -> dict[str, dict[str, Any]]:
    """Last record per input path; torn or foreign lines are skipped."""
    records: dict[str, dict[str, Any]] = {}
    if not path.exists():
        return records
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            try:
                rec = json.loads(line)
            except ValueError:
                continue
            if isinstance(rec, dict) and "path" in rec:
                records[rec["path"]] = rec
    return records


class _Journal:
    def __init__(self, path: Path) -> None:
        self.path = path
        if path.exists() and path.stat().st_size:
            with open(path, "rb") as f:
                f.seek(-1, os.SEEK_END)
                torn = f.read(1) != b"\n"
            if torn:  # a kill mid-line: start the next record on a line of its own
                with open(path, "ab") as f:
                    f.write(b"\n")
        self._f = open(path, "a", encoding="utf-8")  # noqa: SIM115 - closed in close()

    def append(self, record: dict[str, Any]) -> None:
        self._f.write(json.dumps(record, ensure_ascii=False) + "\n")
        self._f.flush()

    def close(self) -> None:
        self._f.close()


def _worker_init() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C


def _remove_stale_temps(out: Path) -> None:
    for p in out.rglob(f".*{TMP_MARK}*"):
        if p.is_file():
            p.unlink(missing_ok=True)


def run_batch(
    src: Path,
    out: Path,
    settings: BatchSettings,
    pattern: str = "**/*",
    jobs: int = 1,
    progress: Callable[[int, int, str], None] | None = None,
    engine: str = "local",
    address: str | None = None,
) -> Summary:
    """Compress every file under `src` matching `pattern` into the mirror tree `out`. `engine`:
    `local` (a process pool of `jobs` workers) or `ray` (Ray Data with `jobs` actors, on a local
    Ray or the cluster at `address`; `promptzip.ray`); the outputs and the journal are the same."""
    t0 = time.perf_counter()
    check_dirs(src, out)
    if jobs < 1:
        raise UsageError(f"--jobs must be at least 1, got {jobs}")
    if engine not in ENGINES:
        raise UsageError(f"--engine must be one of {', '.join(ENGINES)}, not {engine!r}")
    if address and engine != "ray":
        raise UsageError("--address is for the Ray engine", "Add --engine ray.")
    settings.request.validate()
    desc = settings.describe()  # validates method, params and tokenizer before any work
    key = settings.key()
    out.mkdir(parents=True, exist_ok=True)
    _remove_stale_temps(out)
    files = discover(src, pattern, out.resolve())
    reserved = {REPORT_NAME, SUMMARY_NAME}
    journal_records = load_journal(out / REPORT_NAME)
    summary = Summary(str(src), str(out), total=len(files), settings=desc)
    journal = _Journal(out / REPORT_NAME)
    finished: dict[str, dict[str, Any]] = {}

    def record(rec: dict[str, Any]) -> None:
        rec["time"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        journal.append(rec)
        finished[rec["path"]] = rec
        if progress:
            progress(len(finished), len(files), rec["path"])

    todo: list[Job] = []
    for p in files:
        rel = p.relative_to(src).as_posix()
        dst = out / rel
        if rel in reserved:
            record({"path": rel, "status": "failed",
                    "error": f"Error: {rel} collides with the batch report file name."})
            continue
        try:
            digest = sha256_file(p)
        except OSError as exc:
            reason = "broken symbolic link" if p.is_symlink() and not p.exists() else exc.strerror
            record({"path": rel, "status": "failed", "error": f"Error: cannot read {p}: {reason}."})
            continue
        prev = journal_records.get(rel)
        if (prev and prev.get("status") == "ok" and prev.get("settings") == key
                and prev.get("input_sha256") == digest and dst.is_file()
                and sha256_file(dst) == prev.get("output_sha256")):
            summary.up_to_date += 1
            finished[rel] = prev
            if progress:
                progress(len(finished), len(files), rel)
            continue
        todo.append(Job(rel, str(p), str(dst), digest, settings, key))

    started = False
    try:
        if engine == "ray":
            started = ray_engine.start(address) if todo else False
            records = ray_engine.execute(todo, settings, actors=jobs)
        else:
            records = _execute(todo, jobs)
        for rec in records:
            record(rec)
    except KeyboardInterrupt:
        summary.interrupted = True
    finally:
        journal.close()
        if started:  # a Ray this run started (not the caller's own) is stopped with it
            import ray

            ray.shutdown()
        if summary.interrupted:
            _remove_stale_temps(out)  # of workers stopped mid-file
        _finish_summary(summary, finished, t0)
        _write_json_atomic(out / SUMMARY_NAME, asdict(summary))
    if summary.interrupted:
        raise KeyboardInterrupt
    return summary


def _execute(todo: list[Job], jobs: int) -> Iterator[dict[str, Any]]:
    if jobs == 1 or len(todo) <= 1:
        for job in todo:
            yield run_job(job)
        return
    pool = ProcessPoolExecutor(max_workers=jobs, initializer=_worker_init)
    try:
        pending: set[Future] = set()
        queue = iter(todo)
        for job in queue:
            pending.add(pool.submit(run_job, job))
            if len(pending) >= jobs * 4:
                break
        while pending:
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            for fut in done:
                yield fut.result()
                nxt = next(queue, None)
                if nxt is not None:
                    pending.add(pool.submit(run_job, nxt))
    except BaseException:
        procs = list(getattr(pool, "_processes", {}).values())
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.join(timeout=10)
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown()


def _finish_summary(summary: Summary, finished: dict[str, dict[str, Any]], t0: float) -> None:
    for rel, rec in sorted(finished.items()):
        if rec.get("status") == "ok":
            rep = rec.get("report") or {}
            summary.input_tokens += int(rep.get("input_tokens", 0))
            summary.output_tokens += int(rep.get("output_tokens", 0))
        else:
            summary.failures.append({"path": rel, "error": rec.get("error", "")})
    summary.failed = len(summary.failures)
    summary.compressed = len(finished) - summary.failed - summary.up_to_date
    summary.ratio = summary.output_tokens / summary.input_tokens if summary.input_tokens else None
    summary.elapsed_s = time.perf_counter() - t0


def _write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    with atomic_write(path) as f:
        f.write((json.dumps(data, indent=2, ensure_ascii=False) + "\n").encode("utf-8"))
