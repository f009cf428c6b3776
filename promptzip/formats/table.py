"""CSV and TSV: the header and whole rows, written verbatim in their order, so the output is a
valid table of the input's dialect with the same columns.

Rows are records as the stdlib `csv` module reads them (a quoted field may span lines), kept
as their exact input lines. Without a query the rows kept are spread evenly over the table
(a bit-reversed order: at any budget the kept rows sample the whole table, not its head); with
one, rows holding more of the query's words come first. Columns are never dropped: a reader
would lose which value is which.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import replace

import numpy as np

from .base import FormatContext, FormatOutput, Handler, fit, greedy, relevance, spread_scores

_LINE = re.compile(r"[^\n]*\n|[^\n]+$")


HEADER_ONLY_TOKENS = 256  # a header alone up to this size is a table; a longer single line is text


class TableHandler(Handler):
    name = "csv"

    def __init__(self, delimiter: str | None = None) -> None:
        self.delimiter = delimiter

    def _dialect(self, text: str):
        sample = text[:65536]
        if self.delimiter:
            class D(csv.excel):
                delimiter = self.delimiter
            return D
        try:
            return csv.Sniffer().sniff(sample, delimiters=",;\t|")
        except csv.Error:
            return csv.excel

    def records(self, text: str) -> tuple[list[str], list[list[str]]]:
        """The table's records as (raw text with line ends, parsed fields)."""
        lines = _LINE.findall(text)
        reader = csv.reader(iter(lines), self._dialect(text))
        raws, rows = [], []
        done = 0
        for row in reader:
            upto = reader.line_num
            raws.append("".join(lines[done:upto]))
            rows.append(row)
            done = upto
        if done < len(lines):
            raws[-1:] = [raws[-1] + "".join(lines[done:])] if raws else ["".join(lines[done:])]
        return raws, rows

    def compress(self, text: str, ctx: FormatContext) -> FormatOutput:
        # comment lines before the header (`# Source: ...`) describe the table: kept, as they are
        lines = _LINE.findall(text)
        lead = 0
        while lead < len(lines) and (lines[lead].lstrip().startswith("#") or not lines[lead].strip()):
            lead += 1
        preamble, text = "".join(lines[:lead]), "".join(lines[lead:])
        out = self._rows(text, preamble, replace(ctx, budget=ctx.budget - ctx.count(preamble)))
        if preamble:
            out.text = preamble + out.text
            out.details["preamble_lines"] = lead
        return out

    def _rows(self, text: str, preamble: str, ctx: FormatContext) -> FormatOutput:
        try:
            raws, rows = self.records(text)
        except csv.Error as exc:
            ctx.warn(f"the input is not a readable table ({exc}); compressed as plain text")
            return FormatOutput(ctx.text(text, ctx.budget), "text")
        # blank lines are not rows
        keep_idx = [i for i, r in enumerate(rows) if any(f.strip() for f in r)]
        raws = [raws[i] for i in keep_idx]
        rows = [rows[i] for i in keep_idx]
        n = len(raws)
        name = "tsv" if self.delimiter == "\t" else "csv"
        if n <= 1:
            tokens = ctx.count(text)
            if tokens > max(ctx.budget + ctx.over, HEADER_ONLY_TOKENS):  # one long line: not a table to keep whole
                ctx.warn(f"the input has no {name} rows (one line of {tokens:,} tokens); compressed as plain text")
                return FormatOutput(ctx.text(text, ctx.budget), "text")
            return FormatOutput(text, name, all_fits=True, details={"rows_in": max(0, n - 1), "rows_kept": 0})
        body = raws[1:]
        if body and not body[-1].endswith("\n"):
            body[-1] += "\n"
        costs = np.asarray(ctx.counter.count_many(body), dtype=np.int64)
        scores = spread_scores(len(body))
        if ctx.query:
            scores = relevance([" ".join(r) for r in rows[1:]], ctx.query) * len(body) + scores
        header = raws[0] if raws[0].endswith("\n") else raws[0] + "\n"

        def render(budget: int) -> str:
            keep = greedy(costs, scores, max(0, budget - ctx.count(header)))
            return header + "".join(b for b, k in zip(body, keep.tolist(), strict=True) if k)

        out, _, _ = fit(render, ctx)
        kept_rows = self.records(out)[0] if out else []
        kept = max(0, len(kept_rows) - 1)
        width = len(rows[0])
        details = {"rows_in": len(body), "rows_kept": kept, "columns": width,
                   "items_in": len(body), "items_kept": kept,
                   "summary": f"header + {kept} of {len(body)} rows"}
        if kept == len(body):
            details["all_fits"] = True
        return FormatOutput(out if text.endswith("\n") else out.rstrip("\n"), name,
                            all_fits=kept == len(body), details=details)


def parse_table(text: str, delimiter: str | None = None) -> list[list[str]]:
    """The rows of a table as `TableHandler` reads it (for checks and tests)."""
    h = TableHandler(delimiter)
    return list(csv.reader(io.StringIO(text), h._dialect(text)))
