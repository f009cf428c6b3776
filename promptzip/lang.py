"""Which language a document is written in, to choose the extract model for it.

`py3langid` (BSD; a naive-Bayes byte n-gram classifier over 97 languages, its model a numpy
archive inside the package: nothing is fetched at run time) names the language. Loading it
costs ~0.8 s, so two cheap looks come first:

1. the share of letters outside the Latin script: at 0.3 or more the document is not English
   (Cyrillic, Han, kana, Arabic, Thai, Devanagari ...) and only the language's name is asked;
2. for Latin text, the share of its words that are among the commonest English function words:
   at 0.08 or more it is English without asking (English prose runs at 0.25 to 0.45, French or
   Spanish prose below 0.03: their `a`, `in`, `on` are rarer and most English ones are absent).

Everything else is asked of the classifier; it decides for a non-English language only when it
is at least `CONFIDENT` sure (code, logs and tables, with few words of any language, stay with the
English model that today's figures were measured on). A document is sampled (its start, middle
and end, `SAMPLE` characters each), so a long one costs no more than a short one.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass

SAMPLE = 2000  # characters read at the start, middle and end of a document
NON_LATIN_SHARE = 0.3  # letters outside the Latin script: from this share on, not English
ENGLISH_SHARE = 0.08  # English function words among the words: from this share on, English
CONFIDENT = 0.5  # the classifier's probability needed to call Latin text another language
_ENGLISH = frozenset("""the of and to in is was for on that with as by it he are from his at be this
which an or have has not but were had they their its also been who can will would there more
one all when into other than we you your what about after them these some so if our only""".split())
_WORDS = re.compile(r"[^\W\d_]+")
_lock = threading.Lock()
_identifier: list = []


@dataclass(frozen=True)
class Language:
    code: str  # ISO 639-1 as py3langid names it ("en", "zh", "ru", ...); "und" with no letters
    confidence: float  # the classifier's probability, or the share that decided without it
    non_latin: float  # share of the letters outside the Latin script
    how: str  # "script", "function words", "classifier" or "no letters"
    english: bool  # what the extract model is chosen by: English (or no letters) or not


def sample(text: str, size: int = SAMPLE) -> str:
    """The start, middle and end of a text (the whole text when it is short)."""
    if len(text) <= 3 * size:
        return text
    mid = len(text) // 2 - size // 2
    return "\n".join((text[:size], text[mid:mid + size], text[-size:]))


def non_latin_share(text: str) -> float:
    letters = [c for c in text if c.isalpha()]
    if not letters:
        return 0.0
    return sum(1 for c in letters if ord(c) > 0x24F and not 0x1E00 <= ord(c) <= 0x1EFF) / len(letters)


def classify(text: str) -> tuple[str, float]:
    """(language code, probability) from py3langid, loaded once per process."""
    with _lock:
        if not _identifier:
            from py3langid.langid import MODEL_FILE, LanguageIdentifier  # ~0.8 s: only when asked

            _identifier.append(LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True))
    code, prob = _identifier[0].classify(text)
    return str(code), float(prob)


def detect(text: str) -> Language:
    """The language of `text` (see the module's docstring for how it is decided)."""
    part = sample(text)
    share = non_latin_share(part)
    words = _WORDS.findall(part)
    if not words:
        return Language("und", 0.0, share, "no letters", True)
    if share >= NON_LATIN_SHARE:
        code, prob = classify(part)
        return Language(code, prob, share, "script", False)
    english = sum(1 for w in words if w.lower() in _ENGLISH) / len(words)
    if english >= ENGLISH_SHARE:
        return Language("en", english, share, "function words", True)
    code, prob = classify(part)
    if code != "en" and prob < CONFIDENT:
        return Language(code, prob, share, "classifier, unsure", True)
    return Language(code, prob, share, "classifier", code == "en")
