"""Teacher labels for the extractive classifier: one float in [0, 1] per word.

No large LLM is reachable, so two cheap teachers are built and compared:

- `selfinfo`: a word's self-information under SmolLM2-135M (how badly the LM predicts it from
  what precedes it), turned into its percentile rank inside its document. Words the LM can
  guess (function words, repeats, the tail of a name it has seen) rank low.
- `qa`: task supervision from SQuAD-style rows. Query-agnostic examples mark the words of every
  gold answer asked about the paragraph (what readers ask about: names, numbers, dates, key
  noun phrases); question-aware examples mark the answer of that question plus the words its
  evidence sentence shares with the question.
- `mix`: both kinds of examples, interleaved.

Words are cut exactly as the compressor cuts them at inference (`word_pieces_flagged`), so a
label lines up with the item the compressor keeps or drops. Examples are JSONL rows
`{"id", "source", "words", "labels", "query"}`.
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ..compressors.selfinfo import word_surprisal
from ..fileutil import read_jsonl
from ..nospace import NOSPACE_SCRIPT
from ..runtime.lm import load_causal_lm
from ..segment import word_pieces_flagged

SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "corpora"
SQUAD_TRAIN = SHARED / "qa" / "squad_v1_train.jsonl"
_STOP = frozenset("""a an the of in on at to for from by with and or but is are was were be been being
this that these those it its as which who whom whose what when where why how did do does
has have had not no than then there their they them he she his her him you your we our i
into onto over under about after before between during through up down out off so such
can could would should will shall may might must also very more most any all each other""".split())
_WORD = re.compile(r"[^\W_]+", re.UNICODE)


@dataclass
class Example:
    id: str
    source: str
    words: list[str]
    labels: list[float]
    query: str | None = None
    hard: list[float] | None = None  # teacher-labelled examples: the gold labels beside the teacher's


def words_of(text: str) -> tuple[list[str], np.ndarray]:
    pieces = word_pieces_flagged(text)
    return [text[s:e] for s, e, _ in pieces], np.asarray([(s, e) for s, e, _ in pieces],
                                                          dtype=np.int64).reshape(-1, 2)


def _overlapping(spans: np.ndarray, lo: int, hi: int) -> np.ndarray:
    return (spans[:, 0] < hi) & (spans[:, 1] > lo)


def _content(text: str) -> set[str]:
    """Content words of a text, lowercased; a run of a script without spaces gives its character
    pairs instead (`首都です` -> 首都, 都で, です), so words of such text match a question's."""
    out = set()
    for m in _WORD.finditer(text):
        w = m.group().lower()
        if NOSPACE_SCRIPT.search(w):
            out.update(w[i:i + 2] for i in range(len(w) - 1))
        elif w not in _STOP:
            out.add(w)
    return out


# a sentence ends at . ! ? before a capital, a digit, a quote or a letter of a caseless script
# (Arabic, Thai, CJK), or at 。！？؟ whatever follows
_SENT_END = re.compile("(?<=[.!?])\\s+(?=[A-Z0-9\"'(\u0400-\u042f\u0600-\u06ff\u0e00-\u0e7f\u3040-\u9fff])"
                       "|(?<=[\u3002\uff01\uff1f\u061f])\\s*")


def _sentence_bounds(text: str, pos: int) -> tuple[int, int]:
    lo = 0
    for m in _SENT_END.finditer(text):
        if m.start() >= pos:
            return lo, m.start()
        lo = m.end()
    return lo, len(text)


def split_titles() -> tuple[set[str], set[str]]:
    """SQuAD 1.1 train articles: every 20th title (sorted) is held out for validation."""
    titles = set()
    with open(SQUAD_TRAIN, encoding="utf-8") as f:
        for line in f:
            titles.add(json.loads(line)["title"])
    ordered = sorted(titles)
    val = set(ordered[::20])
    return set(ordered) - val, val


def split_by_title(path: Path, every: int = 8) -> tuple[set[str], set[str]]:
    """(train, held-out) titles of a SQuAD-style file: every `every`-th title (sorted) is held out,
    so no held-out paragraph shares its article with a training one."""
    titles = sorted({row.get("title", "") for row in read_jsonl(path)})
    held = set(titles[::every])
    return set(titles) - held, held


def squad_groups(path: Path, titles: set[str] | None = None) -> Iterator[tuple[str, str, list[dict]]]:
    """(title, context, rows) per paragraph of a SQuAD-style JSONL file, answerable rows only."""
    groups: dict[tuple[str, str], list[dict]] = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            row = json.loads(line)
            if not row.get("answers") or (titles is not None and row.get("title") not in titles):
                continue
            groups.setdefault((row.get("title", ""), row["context"]), []).append(row)
    for (title, context), rows in groups.items():
        yield title, context, rows


def qa_examples(title: str, context: str, rows: list[dict], with_queries: bool = True,
                evidence: float = 1.0) -> list[Example]:
    """One query-agnostic example (all answers of the paragraph) and, optionally, one
    question-aware example per question. `evidence`: the label of the evidence sentence's words
    that the question shares (1.0 in `qa`; 0.5 in `qa-soft`, so the answer ranks above the
    words the reader already has in the question)."""
    words, spans = words_of(context)
    if not words:
        return []
    agnostic = np.zeros(len(words))
    out = []
    for row in rows:
        mine = np.zeros(len(words))
        for ans, start in zip(row["answers"], row.get("answer_starts") or [None] * len(row["answers"]), strict=True):
            if start is None or context[start:start + len(ans)] != ans:
                start = context.find(ans)
            if start < 0:
                continue
            hit = _overlapping(spans, start, start + len(ans))
            agnostic[hit] = 1.0
            mine[hit] = 1.0
            lo, hi = _sentence_bounds(context, start)
            wanted = _content(row["question"])
            in_sent = np.flatnonzero(_overlapping(spans, lo, hi))
            for i in in_sent:
                if _content(words[i]) & wanted:
                    mine[i] = max(mine[i], evidence)
        if with_queries:
            out.append(Example(row["id"], "qa-query", words, mine.tolist(), row["question"]))
    out.insert(0, Example(f"{title}:{rows[0]['id']}:all", "qa", words, agnostic.tolist()))
    return out


def percentile_ranks(values: np.ndarray) -> np.ndarray:
    """Rank of each value in [0, 1] (ties share the mean rank)."""
    if len(values) < 2:
        return np.ones(len(values))
    order = values.argsort(kind="stable")
    ranks = np.empty(len(values))
    ranks[order] = np.arange(len(values))
    uniq, inv = np.unique(values, return_inverse=True)
    if len(uniq) < len(values):
        ranks = np.bincount(inv, ranks)[inv] / np.bincount(inv)[inv]
    return ranks / (len(values) - 1)


def selfinfo_examples(docs: Iterable[tuple[str, str]], dtype: str = "bfloat16",
                      log=lambda _: None) -> Iterator[Example]:
    """Percentile rank of each word's SmolLM2 self-information per LM token, per document."""

    tok, model = load_causal_lm(dtype)
    for n, (doc_id, text) in enumerate(docs):
        words, spans = words_of(text)
        if len(words) < 8:
            continue
        info = word_surprisal(text, spans, tok, model)
        lm_tokens = np.asarray([len(tok(" " + w, add_special_tokens=False).input_ids) for w in words])
        yield Example(doc_id, "selfinfo", words, percentile_ranks(info / np.maximum(lm_tokens, 1)).round(4).tolist())
        if n % 100 == 0:
            log(f"selfinfo labels: {n} documents")


def text_docs(limit_words: int = 350, seed: int = 0) -> list[tuple[str, str]]:
    """Paragraph-sized pieces of the shared plain texts (WikiText valid, KJV, Pride and
    Prejudice), GSM8K solutions and QMSum meetings beyond the evaluated queries."""
    rng = random.Random(seed)
    docs: list[tuple[str, str]] = []

    def cut(doc_id: str, text: str) -> None:
        paras = [p.strip() for p in re.split(r"\n\s*\n", text) if len(p.split()) >= 20]
        for i, p in enumerate(paras):
            w = p.split()
            for j in range(0, len(w), limit_words):
                docs.append((f"{doc_id}:{i}:{j}", " ".join(w[j:j + limit_words])))

    for name in ("wikitext2_valid_articles.jsonl", "pride_and_prejudice_chapters.jsonl", "kjv_chapters.jsonl"):
        with open(SHARED / "text" / name, encoding="utf-8") as f:
            for k, line in enumerate(f):
                row = json.loads(line)
                cut(f"{name}:{k}", row.get("text") or row.get("content") or "")
    with open(SHARED / "prompts" / "gsm8k_train.jsonl", encoding="utf-8") as f:
        for k, line in enumerate(f):
            row = json.loads(line)
            docs.append((f"gsm8k:{k}", f"{row['prompt']}\n{row.get('solution', '')}"))
    rng.shuffle(docs)
    return docs


def write_examples(path: Path, examples: Iterable[Example]) -> int:
    path.parent.mkdir(parents=True, exist_ok=True)
    n = 0
    with open(path, "a", encoding="utf-8") as f:
        for ex in examples:
            f.write(json.dumps(asdict(ex)) + "\n")
            f.flush()
            n += 1
    return n


def read_examples(path: Path) -> list[Example]:
    return [Example(**rec) for rec in read_jsonl(path)]
