"""`make bench BENCH_SECTIONS=formats`: every file of ../shared/corpora/formats at 0.5, 0.33
and 0.2 through its format handler, side by side with the plain-text path of before (the same
file compressed as prose, `--input-format text`), in one process, same method and tokenizer.

Per format: achieved ratio (mean absolute error and worst error outside the "all content fits"
cases, worst overshoot), validity (JSON parses; CSV keeps its header and column count; code is
whole input lines in order and Python parses after its markers), empty outputs, a fidelity
figure of the format's own, and wall time of each path.

Fidelity per format
* json: share of the input's distinct keys that appear as `"key":` in the output;
* csv: share of output lines (after the header) that are whole input rows, and header kept;
* log: share of distinct error templates (drain3) with at least one line kept whole;
* html: share of the main text's sentences (trafilatura) whose best match in the output has
  MiniLM cosine >= 0.8 (embed-minilm);
* code: share of signature lines (def, class, function, func, fn, ...) kept verbatim;
* latex: share of numbers kept (the report's tally).
"""

from __future__ import annotations

import ast
import csv
import io
import json
import re
import statistics
import time
from pathlib import Path

from ..api import compress
from ..formats import detect
from ..formats.detect import sniff
from ..formats.html import main_text
from ..formats.logs import _ERROR, entries, templates
from ..runtime.embed import embedder
from ..segment import sentence_bounds
from .common import RATIOS, SHARED

KINDS = ("json", "csv", "html", "logs", "code", "latex")
_SIGNATURE = re.compile(r"^\s*(?:async\s+)?(?:def|class|function|func|fn|pub\s+fn|impl|struct|interface|"
                        r"(?:public|private|protected|static)\b.*\(|[\w:<>,\s\*]+\s+\**\w+\s*\([^;]*$)")
_MARKER = re.compile(r"^\s*(?:\.\.\.\s+# \d+ lines?|(?://|#|--) \.\.\. \d+ lines?)\s*$")


def _keys(text: str) -> set[str]:
    return set(re.findall(r'"((?:[^"\\]|\\.)*)"\s*:', text))


def _json_valid(text: str, fmt: str) -> bool:
    try:
        if fmt == "jsonl":
            for line in text.splitlines():
                if line.strip():
                    json.loads(line)
        else:
            json.loads(text)
    except ValueError:
        return False
    return True


def _table_body(text: str) -> str:
    """The table without the comment lines before its header."""
    lines = text.splitlines(keepends=True)
    k = 0
    while k < len(lines) and (lines[k].lstrip().startswith("#") or not lines[k].strip()):
        k += 1
    return "".join(lines[k:])


def _csv_check(src: str, out: str, delimiter: str) -> tuple[bool, float]:
    src, out = _table_body(src), _table_body(out)
    rows_in = list(csv.reader(io.StringIO(src), delimiter=delimiter))
    try:
        rows_out = list(csv.reader(io.StringIO(out), delimiter=delimiter))
    except csv.Error:
        return False, 0.0
    if not rows_out:
        return False, 0.0
    valid = rows_out[0] == rows_in[0] and all(len(r) == len(rows_in[0]) for r in rows_out if r)
    seen = {tuple(r) for r in rows_in[1:]}
    body = [r for r in rows_out[1:] if r]
    whole = sum(1 for r in body if tuple(r) in seen) / len(body) if body else 0.0
    return valid, whole


def _code_check(src: str, out: str, language: str | None) -> bool:
    lines = [x for x in out.splitlines() if not _MARKER.match(x)]
    it = iter(src.splitlines())
    ok = all(any(line == x for x in it) for line in lines)  # a subsequence of the input lines
    if ok and language == "python":
        try:
            ast.parse(out)
        except SyntaxError:
            return False
    return ok


def _signatures(src: str, out: str) -> float:
    sig = [x for x in src.splitlines() if _SIGNATURE.match(x) and x.strip()]
    kept = set(out.splitlines())
    return sum(1 for x in sig if x in kept) / len(sig) if sig else 1.0


def _error_templates(src: str, out: str) -> float | None:
    items = entries(src)
    heads = [e.split("\n", 1)[0] for e in items]
    tid = templates(heads)
    err = {t for t, h in zip(tid, heads, strict=True) if _ERROR.search(h)}
    if not err:
        return None
    kept_lines = set(out.splitlines())
    kept = {t for t, h in zip(tid, heads, strict=True) if t in err and h.rstrip("\n") in kept_lines}
    return len(kept) / len(err)


class _Html:
    def __init__(self) -> None:
        self.emb = embedder()

    def kept(self, html: str, out: str) -> float:
        main, _ = main_text(html)
        sents = [main[s:e] for s, e in sentence_bounds(main) if len(main[s:e].split()) >= 4]
        outs = [out[s:e] for s, e in sentence_bounds(out) if out[s:e].strip()]
        if not sents:
            return 1.0
        if not outs:
            return 0.0
        a, b = self.emb.embed(sents), self.emb.embed(outs)
        return float(((a @ b.T).max(axis=1) >= 0.8).mean())


def bench_formats(method: str = "extract") -> str:
    if not (SHARED / "formats").is_dir():
        return "Skipped: ../shared/corpora/formats is not beside this checkout."
    html = _Html()
    rows: dict[tuple[str, str], list[dict]] = {}
    sniffs: dict[str, list[tuple[str, str, str]]] = {}
    files = [p for kind in KINDS for p in sorted((SHARED / "formats" / kind).iterdir()) if p.is_file()]
    compress("Warm up the model. It loads once.", method=method, ratio=0.5)  # model load outside timings
    for path in files:
        kind = path.parent.name
        src = path.read_text(encoding="utf-8")
        info = detect(src[:65536], path.name)  # by the extension, as `compress FILE` and `batch` do
        sniffed = sniff(src[:65536])
        sniffs.setdefault(kind, []).append((path.name, sniffed.format, info.format))
        for ratio in RATIOS:
            for path_name, fmt in (("format", "auto"), ("text", "text")):
                t0 = time.perf_counter()
                res = compress(src, method=method, ratio=ratio,
                               input_format=info.format if fmt == "auto" else fmt, language=info.language)
                wall = time.perf_counter() - t0
                rep, out = res.report, res.text
                fits = bool((rep.format_details or {}).get("all_fits")) and path_name == "format"
                row = {"file": path.name, "ratio": ratio, "achieved": rep.ratio, "fits": fits,
                       "empty": not out.strip(), "wall": wall, "valid": None, "fidelity": None,
                       "bytes": len(src.encode("utf-8"))}
                if kind == "json":
                    row["valid"] = _json_valid(out, info.format)
                    k_in = _keys(src)
                    row["fidelity"] = len(_keys(out) & k_in) / len(k_in) if k_in else 1.0
                elif kind == "csv":
                    row["valid"], row["fidelity"] = _csv_check(src, out, "\t" if path.suffix == ".tsv" else ",")
                elif kind == "code":
                    row["valid"] = _code_check(src, out, info.language)
                    row["fidelity"] = _signatures(src, out)
                elif kind == "logs":
                    row["fidelity"] = _error_templates(src, out)
                elif kind == "html":
                    row["fidelity"] = html.kept(src, out)
                else:
                    row["fidelity"] = rep.numbers_kept
                rows.setdefault((kind, path_name), []).append(row)
    return _table(rows, files, method) + "\n\n" + _sniff_table(sniffs)


def _sniff_table(sniffs: dict) -> str:
    """How often content sniffing alone (stdin) finds the format the extension names."""
    lines = ["Content sniffing (what stdin gets, the first 64 KiB) against the extension:", "",
             "| format | files | sniffed the same | sniffed otherwise |", "|---|---:|---:|---|"]
    for kind, found in sniffs.items():
        same = [f for f in found if f[1] == f[2]]
        other = ", ".join(f"{name} -> {got}" for name, got, want in found if got != want) or "-"
        lines.append(f"| {kind} | {len(found)} | {len(same)} | {other} |")
    return "\n".join(lines)


_FIDELITY = {"json": "keys kept", "csv": "output rows whole", "logs": "error templates kept whole",
             "html": "main-text sentences kept", "code": "signatures kept", "latex": "numbers kept"}


def _table(rows: dict, files: list[Path], method: str) -> str:
    n_files = len(files)
    lines = [
        f"{n_files} files of ../shared/corpora/formats ({', '.join(KINDS)}) at {', '.join(map(str, RATIOS))}, "
        f"method `{method}`, cl100k_base. **format**: the format handler (detected from the extension); "
        "**text**: the same file as prose (`--input-format text`, the path every file took before). "
        "Error = achieved - requested; \"fits\" = runs where all the content the handler keeps fits under "
        "the budget (the whole main text of a page, a compacted JSON document), left out of the error "
        "columns. Validity: JSON/JSONL parse; CSV keeps its header and column count; code is whole input "
        "lines in order (markers aside) and Python parses. Time: wall seconds of all runs of the format.",
        "",
        "| format | path | runs | fits | mean abs error | worst error | worst overshoot | valid | empty | "
        "fidelity | time (s) |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---|---:|",
    ]
    totals = {"format": [], "text": []}
    for kind in KINDS:
        for path_name in ("format", "text"):
            rs = rows.get((kind, path_name), [])
            if not rs:
                continue
            errs = [r["achieved"] - r["ratio"] for r in rs if not r["fits"]]
            totals[path_name].extend(errs)
            over = max((r["achieved"] - r["ratio"] for r in rs), default=0.0)
            valid = [r["valid"] for r in rs if r["valid"] is not None]
            fid = [r["fidelity"] for r in rs if r["fidelity"] is not None]
            worst = max(errs, key=abs) if errs else 0.0
            lines.append(
                f"| {kind} | {path_name} | {len(rs)} | {sum(r['fits'] for r in rs)} | "
                f"{statistics.fmean(abs(e) for e in errs) if errs else 0:.4f} | {worst:+.4f} | {over:+.4f} | "
                f"{f'{sum(valid)}/{len(valid)}' if valid else 'n/a'} | {sum(r['empty'] for r in rs)} | "
                f"{_FIDELITY[kind]} {statistics.fmean(fid):.3f} | {sum(r['wall'] for r in rs):.1f} |")
    lines.append("")
    for path_name, errs in totals.items():
        if errs:
            lines.append(f"All formats, {path_name} path: mean abs error {statistics.fmean(abs(e) for e in errs):.4f}, "
                         f"worst {max(errs, key=abs):+.4f} over {len(errs)} runs.")
    worst_rows = sorted((r | {"kind": k[0]} for k, rs in rows.items() if k[1] == "format" for r in rs
                         if not r["fits"]), key=lambda r: -abs(r["achieved"] - r["ratio"]))[:5]
    if worst_rows:
        lines += ["", "Largest errors of the format path: " + "; ".join(
            f"{r['file']} @{r['ratio']} -> {r['achieved']:.3f}" for r in worst_rows) + "."]
    return "\n".join(lines)
