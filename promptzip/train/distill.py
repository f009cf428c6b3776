"""Distillation data: text labelled with the teacher's keep probabilities (issue 24's Step 2).

LLMLingua-2's recipe with a teacher we can run: the MPNet classifier (110M, `fit --base
mpnet-base-v2`, exported to ONNX) reads far more text than gold labels cover and gives every word
a keep probability; the fast MiniLM student is then trained on those probabilities (`labels`)
and, where a row has them, the gold answer labels too (`hard`: `fit --gold` mixes them into the
target and the ranking loss reads them).

Sources (the held-out SQuAD 1.1 articles and every evaluation split stay out):

- `squad-agnostic`: each training paragraph without a question (gold: all its answers);
- `squad-query`: each training paragraph with one of its questions (`per` of them; gold: that
  question's answer and evidence words, as `qa-soft`);
- `covidqa`: COVID-QA's paper excerpts, with and without their question;
- `prose`: paragraph-sized pieces of WikiText (valid), Pride and Prejudice, the KJV and GSM8K
  solutions, no question and no gold labels: what a teacher adds that SQuAD's answers cannot.

Rows are written as they are labelled and a rerun skips the ids already in the file.
"""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from ..compressors.extract import Scorer
from .labels import (
    SHARED,
    Example,
    qa_examples,
    read_examples,
    squad_groups,
    text_docs,
    words_of,
    write_examples,
)

SOURCES = ("squad-agnostic", "squad-query", "covidqa", "prose")
CHUNK = 64  # examples whose windows run through the teacher together


def source_examples(source: str, train_titles: set[str], squad: Path, per: int = 1) -> Iterator[Example]:
    """The unlabelled side of a source: examples whose `labels` are the gold ones (or zeros)."""
    if source in ("squad-agnostic", "squad-query"):
        for title, context, rows in squad_groups(squad, train_titles):
            exs = qa_examples(title, context, rows, with_queries=source == "squad-query", evidence=0.5)
            yield from (exs[:1] if source == "squad-agnostic" else exs[1:1 + per])
    elif source == "covidqa":
        with open(SHARED / "qa" / "covidqa.jsonl", encoding="utf-8") as f:
            rows = [json.loads(line) for line in f]
        groups: dict[str, list[dict]] = {}
        for r in rows:
            if r.get("answers"):
                groups.setdefault(r["context"], []).append(r)
        for context, rs in groups.items():
            yield from qa_examples("covidqa", context, rs, with_queries=True, evidence=0.5)
    elif source == "prose":
        for doc_id, text in text_docs():
            words, _ = words_of(text)
            if len(words) >= 20:
                yield Example(f"prose:{doc_id}", "prose", words, [0.0] * len(words))
    else:
        raise ValueError(f"unknown source {source!r}; one of {', '.join(SOURCES)}")


def teach(teacher: Path, source: str, out: Path, limit: int, train_titles: set[str], squad: Path,
          per: int = 1, log: Callable[[str], None] = print) -> int:
    """Label up to `limit` examples of `source` with the teacher's probabilities (appended to
    `out`; ids already there are skipped). Returns how many were added."""

    done = {ex.id for ex in read_examples(out)} if out.exists() else set()
    scorer = Scorer(teacher, "int8" if (teacher / "model.int8.onnx").is_file() else "fp32", batch_size=8)
    has_gold = source != "prose"
    t0, words_done = time.perf_counter(), 0

    def labelled() -> Iterator[Example]:
        nonlocal words_done
        todo = (ex for ex in itertools.islice(source_examples(source, train_titles, squad, per), limit)
                if f"teacher:{ex.id}" not in done)
        n = 0
        while chunk := list(itertools.islice(todo, CHUNK)):
            for ex, p in zip(chunk, scorer.probs_many([(ex.words, ex.query) for ex in chunk]), strict=True):
                words_done += len(ex.words)
                yield Example(f"teacher:{ex.id}", f"teacher:{source}", ex.words, np.round(p, 4).tolist(), ex.query,
                              hard=ex.labels if has_gold else None)
            n += len(chunk)
            log(f"teach {source}: {n} examples, {words_done / (time.perf_counter() - t0):,.0f} words/s")

    return write_examples(out, labelled())
