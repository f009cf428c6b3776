"""Words for scripts written without spaces (Chinese, Japanese, Thai, Lao, Khmer, Myanmar).

Selection works on words, and these scripts have no spaces to find them by. The units are the
pieces of the multilingual extract model's SentencePiece (unigram) vocabulary, the XLM-R one:
learnt from CC-100 text in ~100 languages, its pieces are mostly whole words or morphemes
(`基于`, `开发`, `游戏`; `ประเทศ`), so a unit is what the model reads as one token and what a
reader reads as one word. Dropping a unit never cuts a character, and the model labels exactly
the items the selection keeps or drops, in training as at inference.

Only the no-space parts of a run are cut: a Latin name or a number inside Chinese text
(`Nexon开发`, `2019年`) stays one unit. Without the vocabulary file (a checkout stripped of the
multilingual model) the units fall back to single characters (Han, kana) and runs of at most
four characters (Thai and its neighbours), as before it.

Design trade-off: a segmenter made for one language (jieba, fugashi, pythainlp) cuts its language
a little better, but three of them would be three heavy dependencies and still leave the other
scripts; this one is the vocabulary the model already ships, loaded once (~1 s) and only when a
document holds such text.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Iterator
from functools import lru_cache
from pathlib import Path

from . import shipped

_CJK = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uac00-\ud7af\u3000-\u303f\uff00-\uffef"
_SEA = "\u0e00-\u0eff\u1000-\u109f\u1780-\u17ff"
NOSPACE_CHARS = _CJK + _SEA  # for character classes of other patterns
NOSPACE_SCRIPT = re.compile(f"[{_CJK}{_SEA}]")
# without the vocabulary: one piece a character (Han, kana, Hangul syllables), or runs of at most
# 4 (Thai, Lao, Khmer, Myanmar); other characters in runs of at most 16
CHAR_PIECES = re.compile(f"[{_CJK}]|[{_SEA}]{{1,4}}|[^\\s{_CJK}{_SEA}]{{1,16}}")
_LONG_OTHER = re.compile(f"[^\\s{_CJK}{_SEA}]{{1,16}}")

_lock = threading.Lock()


def vocabulary_file() -> Path | None:
    """The SentencePiece tokenizer.json that cuts no-space text: `PROMPTZIP_SEGMENTER`, else the
    shipped multilingual model's, else the prepared multilingual base's; None when none exists.
    Looked up once per setting of the environment (it is asked for every run of such text)."""
    return _vocabulary_file(os.environ.get("PROMPTZIP_SEGMENTER", ""), os.environ.get("PROMPTZIP_MODELS", ""),
                            os.environ.get("PROMPTZIP_HOME", ""))


@lru_cache(maxsize=8)
def _vocabulary_file(env: str, _models: str, _home: str) -> Path | None:
    if env:
        return Path(env) if Path(env).is_file() else None
    found = shipped.find("extract-multilingual")
    if found is not None:
        return found.path / "tokenizer.json"
    store = shipped.store_dir() / "multilingual-e5-small" / "tokenizer.json"
    return store if store.is_file() else None


@lru_cache(maxsize=4)
def load_tokenizer(path: str):
    """A tokenizer.json without the padding and truncation a sentence-transformers file carries
    (windows and cuts are made by the caller), loaded once per process and file: the extract
    models read through the same object (`runtime.onnx.wordpiece`). A SentencePiece (Metaspace)
    tokenizer is set to add no word-start mark itself: callers give `" " + text` where a word
    starts after a space, and nothing where it is glued to the one before (`runtime.onnx.subword_ids`)."""
    from tokenizers import Tokenizer, pre_tokenizers

    tok = Tokenizer.from_file(path)
    tok.no_padding()
    tok.no_truncation()
    if isinstance(tok.pre_tokenizer, pre_tokenizers.Metaspace):
        tok.pre_tokenizer.prepend_scheme = "never"
    return tok


def _tokenizer():
    """The vocabulary's tokenizer, or None."""
    path = vocabulary_file()
    with _lock:
        return load_tokenizer(str(path)) if path is not None else None


def segmenter_name() -> str:
    """What cuts no-space text here (for reports and model cards)."""
    path = vocabulary_file()
    return f"sentencepiece ({path.parent.name})" if path else "characters"


def pieces(text: str, s: int, e: int) -> Iterator[tuple[int, int]]:
    """Units of the run text[s:e] (no whitespace inside), which holds no-space-script characters."""
    tok = _tokenizer()
    if tok is None:
        for m in CHAR_PIECES.finditer(text, s, e):
            yield m.span()
        return
    run = text[s:e]
    cuts = {0, len(run)}
    enc = tok.encode(" " + run, add_special_tokens=False)  # the run starts after a space (or the text)
    for piece, (a, b) in zip(enc.tokens, enc.offsets, strict=True):
        a, b = max(0, a - 1), max(0, b - 1)
        if a < b and piece != "\u2581":  # the word-start mark alone is aligned to the first character
            cuts.add(a)
            cuts.add(b)
    marks = sorted(cuts)
    lo = 0
    for k in marks[1:]:
        # a cut between two characters of other scripts (inside `Nexon`, `2019`) is not a word edge
        if k < len(run) and not (NOSPACE_SCRIPT.match(run, k - 1) or NOSPACE_SCRIPT.match(run, k)):
            continue
        piece = run[lo:k]
        if len(piece) > 16 and not NOSPACE_SCRIPT.search(piece):
            for m in _LONG_OTHER.finditer(run, lo, k):
                yield s + m.start(), s + m.end()
        else:
            yield s + lo, s + k
        lo = k


_RUN = re.compile(r"[^\W_]+")
_SCRIPT_PARTS = re.compile(f"([{_CJK}{_SEA}]+)")


def words_and_bigrams(text: str) -> list[str]:
    """Words for lexical matching (BM25, TF-IDF): runs of letters and digits as they are, and in a
    script without spaces the overlapping character pairs of each run (a lone character as
    itself), the usual units of CJK retrieval: `生命数耗完` -> 生命, 命数, 数耗, 耗完."""
    out: list[str] = []
    for m in _RUN.finditer(text):
        w = m.group()
        if not NOSPACE_SCRIPT.search(w):
            out.append(w)
            continue
        for k, part in enumerate(_SCRIPT_PARTS.split(w)):
            if not part:
                continue
            if k % 2 == 0:  # the parts between no-space runs: Latin names, numbers
                out.append(part)
            elif len(part) == 1:
                out.append(part)
            else:
                out.extend(part[i:i + 2] for i in range(len(part) - 1))
    return out
