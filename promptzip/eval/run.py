"""The evaluation loop: every item x method x ratio, metrics per row, then aggregates with
bootstrap intervals. Query-aware methods receive the question; the others do not.

Methods are registry names plus the eval-only floor `random`. Reader metrics of the original
(uncompressed) context are computed once per item and reported as `original`.
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from ..api import compress
from ..compressors import get_method
from ..compressors.latent import REFINE_DEFAULT
from ..errors import UsageError
from ..fidelity import FidelityTracker
from ..fileutil import read_jsonl
from ..guard import facts_of, retention
from ..latent.runtime import runtime
from ..metrics import VERSION as METRICS_VERSION
from ..metrics import (
    answer_retained,
    bootstrap_ci,
    exact_match,
    f1,
    precision,
    ratio_ci,
    structure_kept,
)
from ..tokens import TokenCounter, load_tokenizer
from .baselines import random_drop
from .data import EvalItem
from .peers import PEERS, run_peers

NO_QUERY = "noquery"  # `NAME:noquery` runs a query-aware method without the question


def parse_method(method: str) -> tuple[str, bool, dict[str, str]]:
    """`NAME[:noquery][:KEY=VALUE]...` -> (name, without the question?, the method's parameters as
    `-p` takes them), e.g. `extract:noquery:cost_power=0` (a selection setting measured beside the
    defaults; its rows are its own)."""
    name, *parts = method.split(":")
    params = dict(p.split("=", 1) for p in parts if "=" in p)
    modes = [p for p in parts if "=" not in p]
    if any(m != NO_QUERY for m in modes) or len(modes) > 1:
        raise UsageError(f"unknown method mode {method!r}", f"Use NAME, NAME:{NO_QUERY} or NAME[:{NO_QUERY}]:KEY=VALUE.")
    return name, bool(modes), params
EVAL_ONLY = {"random": "random word dropping at the requested ratio (a floor)", **PEERS}
METRICS = ("achieved_ratio", "precision", "answer_retained", "numbers_kept", "names_kept", "entities_kept",
           "invented_numbers", "structure_kept", "embed_sim", "ll_answer", "ll_delta", "em", "em_kept", "f1",
           "tokens_per_s")


@dataclass
class Row:
    item: str
    method: str
    target_ratio: float
    achieved_ratio: float
    input_tokens: int
    output_tokens: int
    seconds: float
    tokens_per_s: float
    answer_retained: float | None = None
    numbers_kept: float | None = None
    names_kept: float | None = None
    embed_sim: float | None = None
    ll_answer: float | None = None
    ll_delta: float | None = None  # ll_answer(compressed) - ll_answer(original)
    em: float | None = None
    f1: float | None = None
    structure_kept: float | None = None  # documents: share of structural lines kept verbatim
    entities_kept: float | None = None  # names as the rewrite guard sees them (not sentence starts)
    invented_numbers: int | None = None  # distinct numbers in the output that the input lacks
    precision: float | None = None  # `latent`: 1 - character edit distance of the reconstruction
    method_id: str | None = None  # what made the row (`method_identity`); None in rows of older runs
    metrics: int | None = None  # `metrics.VERSION` its figures were computed with; another one is measured again


def _fidelity(original: str, compressed: str) -> tuple[float | None, float | None]:
    tracker = FidelityTracker()
    tracker.input(original)
    tracker.output(compressed)
    res = tracker.result()
    return res.numbers_kept, res.names_kept


LATENT_RATES = {0.25: 4, 0.125: 8, 0.0625: 16}


def latent_rate(ratio: float) -> int:
    rates = {rate: r for r, rate in LATENT_RATES.items() if rate in runtime().rates}
    for rate, r in rates.items():
        if abs(ratio - r) < 1e-3:
            return rate
    raise UsageError(f"the latent encoder runs at {', '.join(f'{x}x' for x in rates)}, i.e. --ratios "
                     f"{','.join(str(r) for r in rates.values())} (got {ratio})")


def latent_with(item: EvalItem, ratio: float, ask: bool) -> tuple[str, int, int, str | None]:
    """`latent` in the loop: (reconstruction, latent vectors, decoder tokens, the decoder's
    answer read from the latents with `ask`, when asked)."""

    rt = runtime()
    latents, header = rt.encode(item.context, latent_rate(ratio), REFINE_DEFAULT, "encoder")
    text = rt.decode(latents)
    answer = rt.answer(text, item.question) if ask and item.question else None  # = rt.ask(latents, q)
    return text, sum(len(x) for x in latents), int(header["original_tokens"]), answer


def compress_with(method: str, item: EvalItem, ratio: float, counter: TokenCounter,
                  precomputed: dict | None = None) -> tuple[str, float | None]:
    """Compressed text, and the seconds it took when it was measured elsewhere (peers)."""
    if precomputed is not None and method in precomputed:
        return precomputed[method][(item.id, ratio)]
    if method == "random":
        return random_drop(item.context, ratio, counter, f"{item.id}:{ratio}"), None
    name, noquery, params = parse_method(method)
    query = item.question if get_method(name).query_aware and not noquery else None
    return compress(item.context, method=name, ratio=ratio, query=query, tokenizer=counter, **params).text, None


def method_identity(method: str) -> str | None:
    """What makes a method's rows: its version and the sha256 of the weights it runs (None for
    the peers and `random`, pinned elsewhere). A checkpointed row made by anything else is
    measured again."""
    name = method.partition(":")[0]
    if method in EVAL_ONLY or name in EVAL_ONLY:
        return None
    cls = get_method(name)
    weights = cls(**parse_method(method)[2]).model_id()
    return f"{name} v{cls.version}" + (f" {weights}" if weights else "")


def made(row: Row, made_by: dict[str, str | None]) -> bool:
    """Was this row made by what would make it now (`made_by`: method -> `method_identity`)?
    Rows of older runs (no method_id) are trusted; rows whose figures an older `metrics.VERSION`
    computed are not."""
    return (row.method in made_by and row.method_id in (None, made_by[row.method])
            and row.metrics == METRICS_VERSION)


class Checkpoint:
    """Rows already measured, one JSON line each, so an interrupted or extended run (new
    methods, more rows) computes only what is missing. Rows remember the dataset, tokenizer and
    which reader/embedder produced them; others are ignored."""

    def __init__(self, path: Path | None, tag: dict, reuse: bool = True) -> None:
        self.path, self.tag = path, tag
        self.rows: dict[tuple[str, str, float], Row] = {}
        if path and not reuse:
            path.unlink(missing_ok=True)
        if path and reuse and path.exists():
            for rec in read_jsonl(path):
                if rec.pop("tag", None) == tag:
                    row = Row(**rec)
                    self.rows[(row.item, row.method, row.target_ratio)] = row
        if path and reuse and not self.rows:
            self._seed_from_results(path.with_name("results.json"))
        self._f = open(path, "a", encoding="utf-8") if path else None  # noqa: SIM115
        if self._f and self.rows and path.stat().st_size == 0:
            for row in self.rows.values():
                self.add(row)

    def _seed_from_results(self, results: Path) -> None:
        """Rows of a finished run whose results.json predates rows.jsonl."""
        if not results.is_file():
            return
        try:
            data = json.loads(results.read_text(encoding="utf-8"))
        except ValueError:
            return
        meta = data.get("meta", {})
        tag = {"data": str(Path(meta.get("data", "")).resolve()), "tokenizer": meta.get("tokenizer"),
               "reader": meta.get("reader"), "embedder": meta.get("embedder")}
        if tag != self.tag:
            return
        fields = set(Row.__dataclass_fields__)
        for rec in data.get("rows", []):
            row = Row(**{k: v for k, v in rec.items() if k in fields})
            self.rows[(row.item, row.method, row.target_ratio)] = row

    def get(self, item: str, method: str, ratio: float) -> Row | None:
        return self.rows.get((item, method, ratio))

    def original(self, item: str) -> Row | None:
        """The item's uncompressed row, if the current `metrics.VERSION` computed it."""
        row = self.rows.get((item, "original", 1.0))
        return row if row is not None and row.metrics == METRICS_VERSION else None

    def usable(self, items: Sequence[EvalItem], ratios: Sequence[float], made_by: dict[str, str | None]) -> int:
        """How many rows a run over these items, ratios and methods (method -> `method_identity`)
        takes as they are."""
        ids, wanted = {it.id for it in items}, set(ratios)
        return sum(r.item in ids and (self.original(r.item) is r if r.method == "original"
                                      else r.target_ratio in wanted and made(r, made_by))
                   for r in self.rows.values())

    def add(self, row: Row) -> None:
        if self._f:
            self._f.write(json.dumps({**asdict(row), "tag": self.tag}) + "\n")
            self._f.flush()

    def close(self) -> None:
        if self._f:
            self._f.close()


def evaluate(items: Sequence[EvalItem], methods: Sequence[str], ratios: Sequence[float],
             reader=None, embedder=None, tokenizer: str = "cl100k_base",
             progress: Callable[[int, int], None] | None = None,
             checkpoint: Checkpoint | None = None, generate: bool = True, measure: bool = True) -> list[Row]:
    """Rows for every item x method x ratio; with `measure=False`, only the checkpointed ones."""
    counter = load_tokenizer(tokenizer)
    for m in methods:
        if m not in EVAL_ONLY:
            name, _, params = parse_method(m)
            get_method(name)(**params)  # unknown names, modes and parameters fail before any work
    if "latent" in methods:
        for r in ratios:
            latent_rate(r)  # 4x, 8x, 16x only: fail before any work
    ckpt = checkpoint or Checkpoint(None, {})
    made_by = {m: method_identity(m) for m in methods}

    def reusable(item_id: str, method: str, ratio: float) -> Row | None:
        row = ckpt.get(item_id, method, ratio)
        return row if row is None or made(row, made_by) else None

    precomputed = {}
    for m in methods:
        if m in PEERS and measure:
            todo = [it for it in items if any(reusable(it.id, m, r) is None for r in ratios)]
            cache = ckpt.path.with_name(f"peer-{m}.jsonl") if ckpt.path else None
            precomputed[m] = run_peers(m, todo, ratios, cache) if todo else {}
    rows: list[Row] = []
    failed: dict[str, int] = {}
    total = len(items) * (len(methods) * len(ratios) + 1)
    done = 0
    for item in items:
        n_in = counter.count(item.context)
        gold = item.answers[0] if item.answers else None
        scored = item.style == "span"  # a worked-out number has no single gold continuation to score
        orig = ckpt.original(item.id)
        if not measure:
            rows += [r for r in [orig] + [reusable(item.id, m, r) for m in methods for r in ratios] if r]
            continue
        if orig is None:
            base_ll = reader.answer_logprob(item.context, item.question, gold) if reader and gold and scored else None
            orig = Row(item.id, "original", 1.0, 1.0, n_in, n_in, 0.0, 0.0,
                       answer_retained=float(answer_retained(item.context, item.answers)) if item.kind == "qa" else None,
                       numbers_kept=1.0, names_kept=1.0, entities_kept=1.0, invented_numbers=0, embed_sim=1.0 if embedder else None, ll_answer=base_ll,
                       ll_delta=0.0 if base_ll is not None else None, metrics=METRICS_VERSION)
            if item.kind == "document":
                orig.structure_kept = 1.0
            if reader and generate and item.kind == "qa":
                pred = reader.generate(item.context, item.question, style=item.style)
                orig.em, orig.f1 = exact_match(pred, item.answers), f1(pred, item.answers)
            ckpt.add(orig)
        base_ll = orig.ll_answer
        rows.append(orig)
        done += 1
        fresh: list[tuple[Row, str]] = []
        for method in methods:
            for ratio in ratios:
                cached = reusable(item.id, method, ratio)
                if cached is not None:
                    rows.append(cached)
                    done += 1
                    continue
                if method in precomputed and (item.id, ratio) not in precomputed[method]:
                    failed[method] = failed.get(method, 0) + 1  # the peer failed on this item
                    continue
                t0 = time.perf_counter()
                answer = None
                if method == "latent":  # the compressed form is vectors; its text is the reconstruction
                    text, vectors, dec_tokens, answer = latent_with(item, ratio, bool(generate and item.kind == "qa"))
                    secs = time.perf_counter() - t0
                    row = Row(item.id, method, ratio, vectors / max(dec_tokens, 1), n_in, vectors, secs,
                              n_in / secs if secs > 0 else 0.0, precision=precision(item.context, text))
                    if answer is not None:
                        row.em, row.f1 = exact_match(answer, item.answers), f1(answer, item.answers)
                else:
                    text, measured = compress_with(method, item, ratio, counter, precomputed)
                    secs = measured if measured is not None else time.perf_counter() - t0
                    n_out = counter.count(text)
                    row = Row(item.id, method, ratio, n_out / n_in if n_in else 1.0, n_in, n_out, secs,
                              n_in / secs if secs > 0 else 0.0)
                row.method_id, row.metrics = made_by[method], METRICS_VERSION
                row.numbers_kept, row.names_kept = _fidelity(item.context, text)
                guard = retention([facts_of(item.context)], [text])
                row.entities_kept, row.invented_numbers = guard["names_kept"], guard["invented_numbers"]
                if item.kind == "qa":
                    row.answer_retained = float(answer_retained(text, item.answers))
                if embedder:
                    row.embed_sim = embedder.similarity(item.context, text)
                if item.kind == "document":
                    row.structure_kept = structure_kept(item.context, text)
                fresh.append((row, text, answer is not None))
        if reader and gold and fresh:  # the reader reads an item's new rows in one batch
            texts = [t for _, t, _ in fresh]
            lls = reader.answer_logprobs(texts, item.question, gold) if scored else [None] * len(texts)
            for (row, _, _), ll in zip(fresh, lls, strict=True):
                row.ll_answer = ll  # None: the reader cannot score given text
                row.ll_delta = ll - base_ll if ll is not None and base_ll is not None else None
            todo = [(row, t) for row, t, answered in fresh if not answered]  # latent rows answered with `ask`
            if generate and item.kind == "qa" and todo:
                preds = reader.generate_many([t for _, t in todo], item.question, style=item.style)
                for (row, _), pred in zip(todo, preds, strict=True):
                    row.em, row.f1 = exact_match(pred, item.answers), f1(pred, item.answers)
        for row, _, _ in fresh:
            ckpt.add(row)
            rows.append(row)
            done += 1
        if progress:
            progress(done, total)
    for method, n in failed.items():
        print(f"warning: {method} failed on {n} item-ratio pairs; they are left out of its rows",
              file=sys.stderr)
    return rows


def aggregate(rows: Sequence[Row], seed: int = 0) -> list[dict]:
    """Mean, 95% bootstrap interval and spread per (method, target ratio)."""
    groups: dict[tuple[str, float], list[Row]] = {}
    base = {r.item: r.em for r in rows if r.method == "original" and r.em is not None}
    for r in rows:
        groups.setdefault((r.method, r.target_ratio), []).append(r)
    out = []
    for (method, ratio), group in sorted(groups.items(), key=lambda kv: (kv[0][0] != "original", kv[0])):
        entry: dict = {"method": method, "target_ratio": ratio, "n": len(group)}
        for metric in METRICS:
            if metric == "em_kept":
                continue
            values = [getattr(r, metric) for r in group if getattr(r, metric) is not None]
            if not values:
                continue
            lo, hi = bootstrap_ci(values, seed=seed)
            entry[metric] = {"mean": statistics.fmean(values), "lo": lo, "hi": hi,
                             "sd": statistics.pstdev(values)}
        if "em" in entry and method != "original":  # how much of the uncompressed EM it keeps
            pairs = [(r.em, base[r.item]) for r in group if r.em is not None and r.item in base]
            kept = ratio_ci([p for p, _ in pairs], [b for _, b in pairs], seed=seed) if pairs else None
            if kept:
                entry["em_kept"] = {"mean": kept[0], "lo": kept[1], "hi": kept[2], "sd": None}
        out.append(entry)
    return out


def rows_as_dicts(rows: Sequence[Row]) -> list[dict]:
    return [asdict(r) for r in rows]
