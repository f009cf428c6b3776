"""Held-out validation of an extract model: SQuAD 1.1 train articles the model never saw
(every 20th title), one question per paragraph.

Reports, at 0.33 kept without the question and at 0.2 kept with it: answer retention (a
normalized gold answer survives), achieved ratio, and the share of words on which the int8 and
fp32 models make the same keep/drop decision.
"""

from __future__ import annotations

import itertools
import statistics
import time
from pathlib import Path

from ..api import compress
from ..metrics import answer_retained
from .labels import SQUAD_TRAIN, split_titles, squad_groups


def held_out(limit: int) -> list[dict]:
    _, val = split_titles()
    return [rows[0] for _, _, rows in itertools.islice(squad_groups(SQUAD_TRAIN, val), limit)]


def validate(model: Path, limit: int = 300, precision: str = "int8", settings=((0.33, False), (0.2, True))) -> dict:
    rows = held_out(limit)
    out: dict = {"model": str(model), "precision": precision, "paragraphs": len(rows)}
    for ratio, with_query in settings:
        kept, ratios, agree, t0 = [], [], [], time.perf_counter()
        for row in rows:
            q = row["question"] if with_query else None
            res = compress(row["context"], "extract", ratio=ratio, query=q, word_scores=True,
                           model=str(model), precision=precision)
            kept.append(answer_retained(res.text, row["answers"]))
            ratios.append(res.report.ratio)
            if precision == "int8" and (model / "model.fp32.onnx").is_file():
                other = compress(row["context"], "extract", ratio=ratio, query=q, word_scores=True,
                                 model=str(model), precision="fp32")
                a = [k for _, _, k in res.report.words]
                b = [k for _, _, k in other.report.words]
                agree.append(sum(x == y for x, y in zip(a, b, strict=True)) / max(len(a), 1))
        key = f"{ratio}{'-query' if with_query else ''}"
        out[key] = {"answer_retained": statistics.fmean(kept), "achieved_ratio": statistics.fmean(ratios),
                    "ratio_sd": statistics.pstdev(ratios), "seconds": time.perf_counter() - t0}
        if agree:
            out[key]["int8_fp32_agreement"] = statistics.fmean(agree)
    return out
