"""`extract`: the learned extractive classifier (LLMLingua-2 style) on onnxruntime.

A fine-tuned all-MiniLM-L6-v2 gives every word a keep probability. The document's words are
cut into windows of at most `max_len` subwords on word boundaries; each window adds up to
`overlap` subwords of context on both sides, and a word takes its probability from the window
whose core holds it, so no word is judged at a chunk edge. Windows run in batches through one
onnxruntime session. A word's probability is the mean of its subwords'. Selection is ONE
budget over the whole document, measured in the target tokenizer (greedy by probability,
skipping what does not fit), or, with `threshold`, every word at or above it. A word between
two strong neighbours is lifted (`bridge`: `Bank of England` keeps its `of`).
A giant word (a hash, a URL, a LaTeX reference list) is kept or dropped whole. Protected spans,
list markers, structural lines and `--force` units are always kept; blocks (code, tables,
JSON, headings) are single items scored by their mean probability.

With `--query`, the question is read before each window (`[CLS] question [SEP] words [SEP]`),
which the model was trained for, and numbers compete for the budget by score (kept or dropped
whole) instead of being always kept: the question says which numbers matter, and in a
number-dense passage the protected numbers alone would fill a small budget (`-p numbers=keep`
keeps them all the same). Under a budget, the words of the question itself score a quarter of
their probability (`-p question_words`): the reader is given the question, so the budget goes to
what it lacks.

Under a budget, `a`, `an` and `the` are kept only when nothing else is left (`-p articles`), words
(a name or date as one item) rank by probability / tokens^0.25 (`-p cost_power`), and without a
question the kept words are written without the punctuation at their edges (`-p
punctuation`): commas, brackets and quotes cost ~15% of a thinned paragraph's tokens. All three let
the same budget keep more words; with a question the small reader of BENCHMARKS.md read the
unpunctuated text worse, so punctuation stays there.
"""

from __future__ import annotations

import json
import os
import threading
from functools import lru_cache
from pathlib import Path

import numpy as np

from .. import shipped
from ..context import Context
from ..errors import ModelError
from ..fileutil import sha256_file
from ..guard import DATE, name_stem, names_of
from ..lang import detect
from ..runtime.e5q4 import Q4Rows
from ..runtime.onnx import encode_text, session, specials, subword_ids, wordpiece
from ..runtime.store import model_path
from ..verify import check_file, check_folder
from .base import Compressor, Param
from .words import (
    bridge_scores,
    collect_words,
    phrase_groups,
    question_words,
    select_words,
    whole_giants,
)

DEFAULT_MODEL = shipped.default("extract-minilm")  # where the shipped models are (overrides aside)
MULTILINGUAL_MODEL = shipped.default("extract-multilingual")
CHOICES = ("auto", "english", "multilingual")  # `-p model=`: these, or a model folder


def model_dir(setting: str = "") -> Path:
    """The model folder a `model` setting names: english (the default; PROMPTZIP_EXTRACT_MODEL
    moves it), multilingual (PROMPTZIP_MULTILINGUAL_MODEL), or a folder (`runtime.shipped` finds
    them). `auto` is decided per document (`choose`)."""
    if setting == "multilingual":
        return shipped.resolve("extract-multilingual")
    if setting in ("", "auto", "english"):
        return shipped.resolve("extract-minilm")
    return shipped.resolve("extract-minilm", explicit=setting)


def multilingual_dir() -> Path | None:
    found = shipped.find("extract-multilingual")
    return found.path if found else None


MAX_LEN, OVERLAP, BATCH = 256, 4, 4  # window subwords (as in training), context per side, windows per call
MEMO_SIZE = 64  # documents whose word probabilities are remembered (oldest out first)
_MEMO: dict[tuple, np.ndarray] = {}
_MEMO_LOCK = threading.Lock()


class Scorer:
    """Keep probabilities per word from the ONNX classifier."""

    def __init__(self, folder: Path, precision: str = "int8", max_len: int = MAX_LEN, overlap: int = OVERLAP,
                 batch_size: int = BATCH, max_query: int = 48, threads: int | None = None) -> None:

        onnx = folder / f"model.{precision}.onnx"
        if not onnx.is_file():
            raise ModelError(f"{onnx} is missing", "Run `make models`.")
        check_folder(folder, (onnx.name, "tokenizer.json"))
        self.sess, self.device, self.warning = session(str(onnx), threads)
        self.tok = wordpiece(str(folder / "tokenizer.json"))
        self.max_len, self.overlap, self.batch_size, self.max_query = max_len, overlap, batch_size, max_query
        self.cls, self.sep, self.pad, self.mpnet = specials(self.tok)
        self.unk = next(i for i in (self.tok.token_to_id("[UNK]"), self.tok.token_to_id("<unk>"), 0) if i is not None)
        inputs = {i.name for i in self.sess.get_inputs()}
        self.typed = "token_type_ids" in inputs  # MPNet has none
        # the multilingual graph reads word embeddings that the caller looks up (runtime.e5q4)
        self.embed = embeddings_of(folder) if "inputs_embeds" in inputs else None
        self.name = folder.name

    def plan(self, words: list[str], query: str | None):
        """Windows as (subword ids, token types, per-subword word index or -1, core word range)."""
        subs = self.subwords(words)
        # the question takes at most half a window, so every window has room for words
        q_room = min(self.max_query, (self.max_len - 3) // 2)
        q = encode_text(self.tok, query)[:q_room] if query else []
        head = np.asarray(([self.cls, *q, self.sep, self.sep] if self.mpnet else [self.cls, *q, self.sep])
                          if q else [self.cls], dtype=np.int64)
        room = self.max_len - len(head) - 1
        ov = min(self.overlap, room // 4)
        core_room = room - 2 * ov
        subs = [s[:core_room] for s in subs]
        lens = np.fromiter(map(len, subs), dtype=np.int64, count=len(subs))
        flat = np.fromiter((i for s in subs for i in s), dtype=np.int64, count=int(lens.sum()))
        owner_of = np.repeat(np.arange(len(words), dtype=np.int64), lens)
        cum = np.concatenate(([0], np.cumsum(lens)))  # strictly increasing: no word is empty
        type_q = 1 if q and not self.mpnet else 0  # SentencePiece (RoBERTa-style) input: no segment ids
        out = []
        a = 0
        while a < len(words):
            b = int(np.searchsorted(cum, cum[a] + core_room, side="right")) - 1  # core: whole words
            lo = int(np.searchsorted(cum, cum[a] - ov, side="left"))  # context before, whole words
            left = int(cum[a] - cum[lo])
            hi = int(np.searchsorted(cum, cum[b] + 2 * ov - left, side="right")) - 1  # and after
            body = slice(int(cum[lo]), int(cum[hi]))
            ids = np.concatenate((head, flat[body], [self.sep]))
            owner = np.concatenate((np.full(len(head), -1), owner_of[body], [-1]))
            types = np.zeros(len(ids), dtype=np.int64)
            types[len(head):] = type_q
            out.append((ids, types, owner, (a, b)))
            a = b
        return out

    def subwords(self, words: list[str]) -> list[list[int]]:
        """Subword ids of each word (an empty one reads as [UNK]); each distinct word is encoded
        once (a document repeats its words: 80k words hold ~9k distinct ones)."""
        uniq = list(dict.fromkeys(words))
        table = dict(zip(uniq, subword_ids(self.tok, uniq, self.unk), strict=True))
        return [table[w] for w in words]

    def probs(self, words: list[str], query: str | None = None) -> np.ndarray:
        return self.probs_many([(words, query)])[0]

    def probs_many(self, docs: list[tuple[list[str], str | None]]) -> list[np.ndarray]:
        """Keep probabilities of the words of several (words, query) documents, their windows run
        together, shortest first, `batch_size` per call (a short document no longer runs alone)."""
        plans = [self.plan(words, query) if words else [] for words, query in docs]
        sums = [np.zeros(len(words)) for words, _ in docs]
        counts = [np.zeros(len(words)) for words, _ in docs]
        flat = [(d, w) for d, plan in enumerate(plans) for w in plan]
        flat.sort(key=lambda x: len(x[1][0]))
        for k in range(0, len(flat), self.batch_size):
            batch = flat[k:k + self.batch_size]
            width = max(len(w[0]) for _, w in batch)
            ids = np.full((len(batch), width), self.pad, dtype=np.int64)
            mask = np.zeros_like(ids)
            types = np.zeros_like(ids)
            for r, (_, (i, t, _, _)) in enumerate(batch):
                ids[r, :len(i)] = i
                mask[r, :len(i)] = 1
                types[r, :len(t)] = t
            feed = {"input_ids": ids, "attention_mask": mask} if self.embed is None else \
                {"inputs_embeds": self.embed(ids), "attention_mask": mask}
            if self.typed:
                feed["token_type_ids"] = types
            p = self.sess.run(["probs"], feed)[0]
            for r, (d, (_, _, own, (a, b))) in enumerate(batch):
                sel = (own >= a) & (own < b)
                np.add.at(sums[d], own[sel], p[r, :len(own)][sel])
                np.add.at(counts[d], own[sel], 1)
        return [x / np.maximum(c, 1) for x, c in zip(sums, counts, strict=True)]


def embeddings_of(folder: Path):
    """The word-embedding rows a model folder's manifest names (`embeddings`: a prepared base model
    and its file, sha256-pinned), as a `Q4Rows` lookup."""

    spec = json.loads((folder / "manifest.json").read_text(encoding="utf-8")).get("embeddings") or {}
    if not spec:
        raise ModelError(f"{folder} reads word embeddings but its manifest does not say from where",
                         "Restore the folder (`git checkout -- models/`).")
    path = model_path(spec["model"]) / spec["file"]
    check_file(path, spec["sha256"])
    return _rows(str(path))


@lru_cache(maxsize=2)
def _rows(path: str):
    return Q4Rows(Path(path))


def multilingual_ready() -> bool:
    """Is the multilingual model installed: its folder, and the base file its embeddings come from?"""
    folder = multilingual_dir()
    if folder is None or not (folder / "manifest.json").is_file():
        return False
    spec = json.loads((folder / "manifest.json").read_text(encoding="utf-8")).get("embeddings") or {}
    return bool(spec) and (shipped.store_dir() / spec["model"] / spec["file"]).is_file()


def choose(setting: str, text: str) -> tuple[Path, object | None]:
    """(model folder, the detected `lang.Language` or None) for a `model` setting and the text the
    model would read: `auto` detects the language and takes the multilingual model for any but
    English (falling back to English, with a warning from the caller, when it is not installed)."""
    if setting != "auto" or os.environ.get("PROMPTZIP_EXTRACT_MODEL"):
        return model_dir(setting), None

    lang = detect(text)
    if lang.english:
        return model_dir("english"), lang
    return model_dir("multilingual"), lang


class Extract(Compressor):
    name = "extract"
    description = ("Learned word keep/drop classifier (ONNX int8): MiniLM-L6 for English, multilingual-e5-small "
                   "for other languages, chosen per document; fast, query-aware.")
    query_aware = True
    refits = True
    version = "11"  # 2: phrase-aware scores; 3: numbers scored with a query; 4: question words damped;
    # 5: windows overlap by 4 subwords (was 8); 6: articles last, punctuation dropped without a query,
    # words ranked by probability / tokens^0.25; 7: --ratio refitted on the measured output, CJK
    # text and words over 64 characters cut into pieces, LaTeX quotes are not inline code; 8: a giant
    # word of at most 256 characters is kept or dropped whole, a longer one's pieces spaced apart;
    # 9: `phrases` retired (names, dates and quantities no longer kept or dropped as one item); 10: kept
    # numbers or Latin words of CJK sentences with the text between them dropped get a space; 11:
    # punctuation alone (CJK text) is kept with its word, not for its own score, and dropped without a query
    retired = {"phrases": "version 9: keeping a name, date or quantity whole moved neither the answer kept "
               "nor the readers' scores on SQuAD, so it was removed; the extract model card has the figures"}
    params = (
        Param("model", str, "auto", "auto (English text: the English model; any other language: the "
              "multilingual one), english, multilingual, or a model folder"),
        Param("precision", str, "int8", "which ONNX file to run", ("int8", "fp32")),
        Param("threshold", float, 0.0, "keep every word with probability >= this instead of "
              "meeting a ratio (0 = off)", bounds=(0, 1)),
        Param("max_len", int, MAX_LEN, "subwords per window (as in training; 512 is slower: attention grows "
              "with the square)", bounds=(8, 512)),
        Param("overlap", int, OVERLAP, "context subwords added on each side of a window", bounds=(0, None)),
        Param("batch", int, BATCH, "windows per onnxruntime call", bounds=(1, None)),
        Param("bridge", float, 0.9, "a word between two well-scored ones scores this times the lesser "
              "of theirs (0 = off)", bounds=(0, 1)),
        Param("numbers", str, "auto", "numbers: always kept (keep), or kept or dropped whole by score "
              "like other words (score; a question says which numbers matter); auto = keep without "
              "--query, score with it", ("auto", "keep", "score")),
        Param("question_words", float, 0.25, "with --query and a budget, a word of the question scores "
              "this times its probability (the reader has the question already; 1 = off; a --threshold "
              "compares the model's own probability)", bounds=(0, 1)),
        Param("punctuation", str, "auto", "punctuation at the edges of thinned words: written (keep), "
              "left out (drop), or left out but for the . ? ! that ends a sentence (ends); auto = drop "
              "without --query, keep with it", ("auto", "keep", "drop", "ends")),
        Param("articles", float, 0.0, "under a budget, a, an and the score this times their probability "
              "and are not lifted by `bridge` (1 = like any other word)", bounds=(0, 1)),
        Param("cost_power", float, 0.25, "under a budget, words (and whole names) rank by probability / "
              "tokens^this: 0 = by probability alone, 1 = per token", bounds=(0, 1)),
        Param("keep_names", str, "off", "keep every name and date word (as the rewrite guard finds them) "
              "even past the budget", ("on", "off")),
    )

    def model_id(self) -> str | None:
        setting = self.settings["model"]
        sha = _sha(model_dir(setting), self.settings["precision"])
        multi = multilingual_dir()
        if setting == "auto" and not os.environ.get("PROMPTZIP_EXTRACT_MODEL") and multi is not None:
            sha = f"{sha}+{_sha(multi, self.settings['precision'])}"  # either may run
        return sha

    def compress(self, ctx: Context) -> None:
        w = collect_words(ctx)
        folder, lang = choose(self.settings["model"], " ".join(w.words[:4000]))
        try:
            scorer = Scorer(folder, self.settings["precision"], self.settings["max_len"],
                            self.settings["overlap"], self.settings["batch"])
        except ModelError as e:
            if lang is None or lang.english:
                raise
            ctx.warn(f"the multilingual extract model could not be used ({e}); the English model "
                     f"read this {lang.code} text. {e.hint}")
            folder = model_dir("english")
            scorer = Scorer(folder, self.settings["precision"], self.settings["max_len"],
                            self.settings["overlap"], self.settings["batch"])
        if scorer.warning:
            ctx.warn(scorer.warning)
        ctx.model = f"{folder.name} ({self.settings['precision']})"
        ctx.model_sha256 = _sha(folder, self.settings["precision"])
        ctx.device = scorer.device
        if lang is not None:
            ctx.language = lang.code
        if not w.words:
            ctx.emit_words(np.zeros(0, dtype=bool), w.word_start, w.local)
            return
        key = (hash(tuple(w.words)), len(w.words), ctx.request.query, folder, self.settings["precision"],
               self.settings["max_len"], self.settings["overlap"])  # a hash: the memo holds no document's words
        with _MEMO_LOCK:  # threads share it (`promptzip serve` compresses requests in worker threads)
            p = _MEMO.get(key)  # the same words again: a refit, a tighter cap, rag's second pass
        if p is None:
            p = scorer.probs(w.words, ctx.request.query)
            with _MEMO_LOCK:
                _MEMO[key] = p
                while len(_MEMO) > MEMO_SIZE:
                    del _MEMO[next(iter(_MEMO))]
        numbers = self.settings["numbers"]
        if numbers == "score" or (numbers == "auto" and ctx.request.query):
            w.score_numbers()
        s = p
        budgeted = self.settings["threshold"] <= 0  # a --threshold compares the model's own probability
        if ctx.request.query and self.settings["question_words"] != 1 and budgeted:
            s = np.where(question_words(w.words, ctx.request.query), p * self.settings["question_words"], p)
        if self.settings["keep_names"] == "on":
            w.must = w.must | name_words(w)
        articles = article_words(w.words) if budgeted and self.settings["articles"] != 1 else None
        if articles is not None:
            s = np.where(articles, s * self.settings["articles"], s)
        if self.settings["bridge"] > 0:
            lifted = bridge_scores(s, self.settings["bridge"])
            s = lifted if articles is None else np.where(articles, s, lifted)
        giants = whole_giants(w)  # word ranges kept or dropped whole
        punctuation = self.settings["punctuation"]
        if punctuation == "auto":
            punctuation = "keep" if ctx.request.query else "drop"
        if punctuation != "keep":
            w.trim_punctuation(sentence_ends=punctuation == "ends")
        elif budgeted:  # a mark alone (CJK text) goes with its word, not for its own score
            s = np.where(w.glue_punctuation(), 0.0, s)
        if not budgeted:
            group, item_scores = phrase_groups(w, s, giants)
            keep = item_scores >= self.settings["threshold"]
            keep = w.must | (keep if group is None else keep[group])
            keep = keep if w.blank is None else keep & ~w.blank
        else:
            keep = select_words(ctx, w, s, phrases=giants, cost_power=self.settings["cost_power"])
        if ctx.request.word_scores:
            ctx.word_scores = [(word, round(float(x), 4), bool(k))
                               for word, x, k in zip(w.words, p, keep, strict=True)]
        ctx.emit_words(keep, w.word_start, w.local)


def article_words(words: list[str]) -> np.ndarray:
    """Per word: is it `a`, `an` or `the` (any case)?"""
    return np.fromiter((x.lower() in ("a", "an", "the") for x in words), dtype=bool, count=len(words))


def name_words(w) -> np.ndarray:
    """Per word: does it hold a name or a date word (the faithfulness guard's required items)?"""
    import re


    names = set(names_of(w.text))
    for m in DATE.finditer(w.text):
        names.update(m.group().replace(",", " ").split())
    strip = re.compile(r"^[^\w]+|[^\w]+$")
    return np.fromiter((name_stem(strip.sub("", word)) in names for word in w.words), dtype=bool,
                       count=len(w.words))


@lru_cache(maxsize=8)
def _sha(folder: Path, precision: str) -> str | None:
    """The model file's sha256 from the folder's manifest, else hashed here."""
    name = f"model.{precision}.onnx"
    manifest = folder / "manifest.json"
    if manifest.is_file():
        sha = json.loads(manifest.read_text(encoding="utf-8")).get("files", {}).get(name, {}).get("sha256")
        if sha:
            return sha
    if not (folder / name).is_file():
        raise ModelError(f"{folder / name} is missing", "Run `make models`.")

    return sha256_file(folder / name)
