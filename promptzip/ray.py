"""Compression on Ray Data: `promptzip batch --engine ray`, and one line for existing pipelines.

Ray Data runs model inference over large datasets the way this needs: `map_batches` with a class
whose constructor loads the model once per worker (an actor), a pool of actors per node, streaming
reads and writes (files, JSONL, Parquet), the same code on one machine or a cluster. promptzip
adds no scheduler of its own on top:

* a folder (`run_batch(..., engine="ray")`): the driver plans the work exactly as the local
  engine does (which files, which are up to date by the journal) and keeps the journal; the
  actors compress files (`jobs.run_job`: atomic writes beside the final path) and hand back
  journal records, which the driver appends as they stream in. The outputs are the local
  engine's byte for byte (the same function makes them); a re-run skips what is done, and an
  item whose worker died is retried by Ray or, failing that, recorded as failed and redone by the
  next run. On a cluster the input and output folders must be on storage every node sees.
* a dataset (`compress_dataset(ds, column="text", ...)`): every row's text compressed, the
  compressed text and the report's numbers added as columns, ids and metadata carried through; a
  `query_column` makes it query-aware (a RAG row: one question and its passage).

Without an address Ray starts on this machine and listens on loopback only; with one it joins a
running cluster (`ray start --head` on one node, `ray start --address=HEAD:6379` on the others).
onnxruntime in each actor gets as many threads as the CPUs the actor holds, so actors do not
oversubscribe a node. Ray is an optional extra: `pip install 'promptzip-cli[ray]'`.
"""

from __future__ import annotations

import json
import os
import resource
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict
from typing import Any

from .api import compress
from .compressors import get_method
from .context import Request
from .errors import PromptzipError, UsageError
from .jobs import Job, run_job
from .tokens import load_tokenizer

INSTALL = "Install it with `pip install 'promptzip-cli[ray]'` (`make install` does)."
OUT_COLUMNS = ("compressed", "input_tokens", "output_tokens", "ratio", "model", "language", "error")


def _ray():
    try:
        import ray  # heavy (~1 s): only when the Ray engine is asked for
        import ray.data  # noqa: F401
    except ImportError:
        raise UsageError("the Ray engine needs Ray, which is not installed", INSTALL) from None
    return ray


def start(address: str | None = None, cpus: int | None = None) -> bool:
    """Join the cluster at `address`, or start a local Ray on loopback only; False when Ray was
    already running in this process (the caller's own `ray.init`), which is then used as it is."""
    if not address or address.removeprefix("ray://").rsplit(":", 1)[0] in ("127.0.0.1", "localhost", "::1"):
        loopback_only()  # before Ray is imported: it reads the setting then
    ray = _ray()
    if ray.is_initialized():
        return False
    quiet = {"include_dashboard": False, "configure_logging": False, "log_to_driver": False}
    if address:
        reachable(address)
        try:
            ray.init(address=address, **quiet)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            raise UsageError(f"cannot reach a Ray cluster at {address}: {exc}",
                             "Start one with `ray start --head` (its address is printed), or leave "
                             "--address out to run on this machine.") from None
    else:  # a local run has no reason to open ports to the network
        ray.init(num_cpus=cpus, _node_ip_address="127.0.0.1", **quiet)
    return True


def loopback_only() -> None:
    """Keep a Ray started from this process on loopback. `_node_ip_address="127.0.0.1"` alone still lets
    Ray's worker processes listen on every interface and look the control store up at the machine's
    network address; with `RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0` in the environment when Ray is imported
    (Ray 2.60, checked with `ss -ltn` in tests/test_ray.py) everything binds 127.0.0.1. This sets it in
    this process, which is about to start Ray anyway (a global state change by nature)."""
    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")


def reachable(address: str, timeout: float = 3.0) -> None:
    """A UsageError at once when nothing answers at HOST:PORT (Ray itself retries for minutes)."""
    import socket

    if address == "auto":
        return
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        raise UsageError(f"--address must be HOST:PORT (or auto), not {address!r}",
                         "`ray start --head` prints the address to use.")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout).close()
    except OSError as exc:
        raise UsageError(f"cannot reach a Ray cluster at {address}: {exc.strerror or exc}",
                         "Start one with `ray start --head` (its address is printed), or leave --address out "
                         "to run on this machine.") from None


def _threads() -> None:
    """onnxruntime threads in this actor = the CPUs Ray gave it (set in the actor's own process)."""
    import ray

    cpus = ray.get_runtime_context().get_assigned_resources().get("CPU", 1)
    os.environ["PROMPTZIP_THREADS"] = str(max(1, int(cpus)))


class FileCompressor:
    """A Ray Data actor for `batch`: one row = one planned file job; returns its journal record."""

    def __init__(self, settings) -> None:
        import ray

        _threads()
        self.settings = settings
        self.node = ray.get_runtime_context().get_node_id()

    def __call__(self, batch: dict[str, Any]) -> dict[str, list]:
        records = []
        for rel, src, dst, sha, key in zip(batch["rel"], batch["src"], batch["dst"], batch["sha"], batch["key"],
                                           strict=True):
            rec = run_job(Job(str(rel), str(src), str(dst), str(sha), self.settings, str(key)))
            rec["node"] = self.node  # which Ray node made it (the journal shows how work spread)
            rec["worker_pid"] = os.getpid()
            rec["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
            records.append(json.dumps(rec, ensure_ascii=False))
        return {"record": records}


def execute(jobs: Sequence, settings, actors: int = 2, cpus_per_actor: float = 1) -> Iterator[dict[str, Any]]:
    """Journal records of `jobs` (`jobs.Job`) compressed by `actors` Ray actors, as they finish."""
    ray = _ray()
    if not jobs:
        return
    rows = [{"rel": j.rel, "src": j.src, "dst": j.dst, "sha": j.input_sha256, "key": j.key} for j in jobs]
    ds = ray.data.from_items(rows, override_num_blocks=min(len(rows), max(1, actors) * 8))
    ds = ds.map_batches(FileCompressor, fn_constructor_kwargs={"settings": settings}, batch_size=1,
                        compute=ray.data.ActorPoolStrategy(size=actors), num_cpus=cpus_per_actor,
                        max_task_retries=2)
    for row in ds.iter_rows():
        yield json.loads(row["record"])


class TextCompressor:
    """A Ray Data actor for datasets: compresses `column` of every row; adds OUT_COLUMNS."""

    def __init__(self, column: str, method: str, request: dict, params: dict, tokenizer: str,
                 query_column: str | None, prefix: str) -> None:
        _threads()

        self.column, self.method, self.params = column, method, params
        self.request = Request(**request)
        self.query_column, self.prefix = query_column, prefix
        self.counter = load_tokenizer(tokenizer)

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        texts = batch[self.column]
        queries = batch[self.query_column] if self.query_column else [None] * len(texts)
        out: dict[str, list] = {self.prefix + c: [] for c in OUT_COLUMNS}
        for text, query in zip(texts, queries, strict=True):
            r0 = self.request
            try:
                res = compress(str(text) if text is not None else "", self.method, r0.ratio, r0.target_tokens,
                               str(query) if query is not None else r0.query, r0.force, self.counter,
                               input_format=r0.input_format, **self.params)
                r = res.report
                values = (res.text, r.input_tokens, r.output_tokens, r.ratio, r.model or "", r.language or "", "")
            except PromptzipError as exc:
                values = ("", 0, 0, 0.0, "", "", exc.render())
            for c, v in zip(OUT_COLUMNS, values, strict=True):
                out[self.prefix + c].append(v)
        return {**batch, **out}


def compress_dataset(ds, column: str = "text", method: str = "extract", ratio: float | None = None,
                     target_tokens: int | None = None, query: str | None = None, query_column: str | None = None,
                     params: dict | None = None, tokenizer: str = "cl100k_base", actors: int = 1,
                     cpus_per_actor: float = 1, prefix: str = "", batch_size: int = 16):
    """A `ray.data.Dataset` with `column` compressed: columns `compressed`, `input_tokens`,
    `output_tokens`, `ratio`, `model`, `language` and `error` (empty, or why a row failed) are added
    (`prefix` before each name); every other column is carried through. Lazy, as Ray Data is: it
    runs when the dataset is consumed or written.

        ds = ray.data.read_parquet("chunks/")
        ds = promptzip.ray.compress_dataset(ds, column="text", ratio=0.33)
        ds.write_parquet("chunks-short/")
    """
    ray = _ray()

    request = Request(ratio=ratio, target_tokens=target_tokens, query=query)
    request.validate()
    get_method(method)(**(params or {}))  # a bad method or parameter fails here, not in every actor
    names = ds.schema().names if ds.schema() is not None else []
    if column not in names:
        raise UsageError(f"the dataset has no column {column!r}", f"Its columns: {', '.join(names) or 'none'}.")
    if query_column and query_column not in names:
        raise UsageError(f"the dataset has no column {query_column!r}", f"Its columns: {', '.join(names)}.")
    kwargs = {"column": column, "method": method, "request": asdict(request), "params": params or {},
              "tokenizer": tokenizer, "query_column": query_column, "prefix": prefix}
    return ds.map_batches(TextCompressor, fn_constructor_kwargs=kwargs, batch_size=batch_size,
                          compute=ray.data.ActorPoolStrategy(size=actors), num_cpus=cpus_per_actor,
                          batch_format="numpy")


DATASET_SUFFIXES = (".parquet", ".jsonl", ".ndjson")


def is_dataset(path) -> bool:
    """A Parquet or JSON Lines file, or a folder of Parquet files (a dataset rather than documents)."""
    from pathlib import Path

    p = Path(path)
    if p.is_file():
        return p.suffix.lower() in DATASET_SUFFIXES
    return p.is_dir() and any(p.glob("*.parquet")) and not any(q.suffix.lower() not in (".parquet", ".crc")
                                                                for q in p.iterdir() if q.is_file())


def run_dataset(src, out, settings, column: str = "text", query_column: str | None = None,
                actors: int = 2, cpus_per_actor: float = 1) -> dict[str, Any]:
    """A Parquet or JSON Lines dataset in, the same rows with the compressed column out (Parquet
    when OUT ends in .parquet or is a folder, else JSON Lines); a summary of the run."""
    from pathlib import Path

    ray = _ray()
    t0 = time.perf_counter()
    src, out = Path(src), Path(out)
    if src.suffix.lower() in (".jsonl", ".ndjson"):
        ds = ray.data.read_json(str(src), lines=True)
    else:
        ds = ray.data.read_parquet(str(src))
    ds = compress_dataset(ds, column, settings.method, settings.request.ratio, settings.request.target_tokens,
                          settings.request.query, query_column, dict(settings.params), settings.tokenizer,
                          actors, cpus_per_actor)
    if out.suffix.lower() in (".jsonl", ".ndjson", ".json"):
        import pandas  # noqa: F401  (ray.data's to_pandas needs it; pyarrow writes it)

        frame = ds.to_pandas()
        tmp = out.with_name(f".{out.name}.pztmp")
        frame.to_json(tmp, orient="records", lines=True, force_ascii=False)
        os.replace(tmp, out)
        rows = frame
    else:
        ds = ds.materialize()
        ds.write_parquet(str(out))
        rows = ds.to_pandas()
    failed = int((rows["error"] != "").sum())
    return {"rows": len(rows), "failed": failed, "input_tokens": int(rows["input_tokens"].sum()),
            "output_tokens": int(rows["output_tokens"].sum()), "elapsed_s": time.perf_counter() - t0,
            "failures": rows.loc[rows["error"] != "", "error"].head(20).tolist()}
