"""The faithfulness guard for rewriters: what a rewrite of a source text must keep, and what
it must not invent.

A small LM that rewrites freely drops and invents facts, so a rewrite is accepted only when
every *required item* of its source appears in it verbatim and it holds no number absent from
the source (and, given the source text, no name the source never writes). Required items: numbers (compared without thousands separators), dates, capitalized
names, quoted strings (also in 「」『』《》 and « »), inline code, URLs and the user's `--force` strings. Names
are capitalized words in Latin, Greek or Cyrillic script (not at a sentence start, also after a
bracket, quote or tag there, unless seen inside one; a possessive is its name: "Rollo's" is Rollo); in a script without capitals (Chinese,
Japanese, Arabic, Thai) the numbers, dates, quotes, code and URLs are the required items. The check is lexical
and strict on purpose: "March 3rd" for "March 3" fails, and the caller retries or falls back to
extraction, which cannot invent anything. It does not judge meaning (a rewrite can keep every
name and still say something false about them); the report says which path each chunk took.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from .fidelity import NAME, NOT_NAMES, names_in, numbers_in

_MONTH = (r"(?:Jan(?:uary)?|Feb(?:ruary)?|Mar(?:ch)?|Apr(?:il)?|May|June?|July?|Aug(?:ust)?|"
          r"Sep(?:t(?:ember)?)?|Oct(?:ober)?|Nov(?:ember)?|Dec(?:ember)?)")
DATE = re.compile(
    rf"\b(?:\d{{4}}-\d{{2}}-\d{{2}}|\d{{1,2}}/\d{{1,2}}/\d{{2,4}}|{_MONTH}\.? \d{{1,2}}(?:, \d{{4}})?"
    rf"|\d{{1,2}} {_MONTH}(?: \d{{4}})?)\b"
)
QUOTED = re.compile(r"\"([^\"\n]{2,80})\"|“([^”\n]{2,80})”|「([^」\n]{1,80})」|『([^』\n]{1,80})』|《([^》\n]{1,80})》"
                    r"|«([^»\n]{2,80})»")
CODE = re.compile(r"`([^`\n]+)`")
URL = re.compile(r"\bhttps?://[^\s<>\"')\]]+")


@dataclass(frozen=True)
class Facts:
    """The required items of a source text, by kind, in first-seen order."""

    numbers: tuple[str, ...] = ()
    dates: tuple[str, ...] = ()
    names: tuple[str, ...] = ()
    quotes: tuple[str, ...] = ()
    code: tuple[str, ...] = ()
    urls: tuple[str, ...] = ()
    forced: tuple[str, ...] = ()

    def items(self) -> list[tuple[str, str]]:
        """(kind, item) pairs, each item once."""
        seen: set[str] = set()
        out = []
        for kind in ("forced", "quotes", "code", "urls", "dates", "names", "numbers"):
            for item in getattr(self, kind):
                if item not in seen:
                    seen.add(item)
                    out.append((kind, item))
        return out

    def __len__(self) -> int:
        return len(self.items())


@dataclass
class Verdict:
    ok: bool
    missing: list[str] = field(default_factory=list)
    invented: list[str] = field(default_factory=list)  # numbers the source does not hold
    new_names: list[str] = field(default_factory=list)  # names the source does not hold (`check(..., source=)`)

    def reason(self) -> str:
        parts = []
        if self.missing:
            parts.append("missing " + ", ".join(shorten(m) for m in self.missing[:6])
                         + (f" (+{len(self.missing) - 6})" if len(self.missing) > 6 else ""))
        if self.invented:
            parts.append("invented " + ", ".join(self.invented[:6]))
        if self.new_names:
            parts.append("names not in the text: " + ", ".join(self.new_names[:6]))
        return "; ".join(parts)


# a sentence or line start, then what may open it: brackets, quotes, emphasis marks, a tag ("[Le détail",
# "<u>Retour", "».* Ce")
_OPENERS = r"(?:[\[(«“‘\"'*_]+|<\w+>)*\s*"
_STARTS = re.compile(rf"(?:^|[.!?:;}}\]][»”’\"'*_)]*\s+|\n\s*(?:[-*+#>|]+\s*|\d+[.)]\s+)?){_OPENERS}$")


def names_of(text: str) -> list[str]:
    """Capitalized words that are names: those not at the start of a sentence or line, and
    those at a start that also appear capitalized mid-sentence ("Written by ..." is not a
    name; "Normans ... the Normans" is)."""

    mid = set()
    for m in NAME.finditer(text):
        head = text[max(0, m.start() - 12):m.start()]
        if m.start() and not _STARTS.search(head) and m.group() not in NOT_NAMES:
            mid.add(m.group())
    return [name_stem(w) for w in names_in(text) if w in mid]


def name_stem(name: str) -> str:
    """A name without its possessive: "Rollo's" is the name Rollo ("Rollo" keeps it, "Dropbox's" is no
    new name beside "Dropbox")."""
    return re.sub(r"'s?$", "", name) or name


def _unique(items: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(i for i in items if i))


def facts_of(text: str, force: Iterable[str] = ()) -> Facts:
    return Facts(
        numbers=_unique(numbers_in(text)),
        dates=_unique(m.group() for m in DATE.finditer(text)),
        names=_unique(names_of(text)),
        # the punctuation a quote closes on is the sentence's ("highway," "Coming soon.")
        quotes=_unique(next(g for g in m.groups() if g is not None).strip().rstrip(",.;:").strip()
                       for m in QUOTED.finditer(text)),
        code=_unique(m.group(1) for m in CODE.finditer(text)),
        urls=_unique(m.group().rstrip(".,;:") for m in URL.finditer(text)),
        forced=_unique(f for f in force if f and f in text),
    )


def check(source: Facts, rewrite: str, text: str | None = None) -> Verdict:
    """Does `rewrite` keep every required item of `source` and invent no number? Given the source's
    `text`, also: does it bring no name (a capitalized word mid-sentence) that the text never writes?"""
    numbers = set(numbers_in(rewrite))
    names = {name_stem(n) for n in names_in(rewrite)}
    flat = " ".join(rewrite.split())
    missing = []
    for kind, item in source.items():
        if kind == "numbers":
            found = item in numbers
        elif kind == "names":
            found = item in names
        else:
            found = " ".join(item.split()) in flat
        if not found:
            missing.append(item)
    allowed = set(source.numbers)
    invented = [n for n in dict.fromkeys(numbers_in(rewrite)) if n not in allowed]
    new_names = []
    if text is not None:
        known = set(re.findall(r"[^\W\d_][\w'’-]*", text))
        # an elided article or preposition is glued to its word: l’Autorité, d’Etat, dell'Arte
        known |= {part for word in known for part in re.split(r"['’]", word) if part}
        new_names = [n for n in dict.fromkeys(names_of(rewrite)) if n not in known]
    return Verdict(not missing and not invented and not new_names, missing, invented, new_names)


def retention(sources: Iterable[Facts], outputs: Iterable[str]) -> dict[str, float | int | None]:
    """Across (source facts, output text) pairs: the share of numbers and of names kept, and
    the count of invented numbers."""
    n_in = n_kept = e_in = e_kept = invented = 0
    for facts, out in zip(sources, outputs, strict=True):
        v = check(facts, out)
        lost = set(v.missing)
        n_in += len(facts.numbers)
        n_kept += sum(1 for n in facts.numbers if n not in lost)
        e_in += len(facts.names)
        e_kept += sum(1 for n in facts.names if n not in lost)
        invented += len(v.invented)
    return {"numbers_in": n_in, "numbers_kept": n_kept / n_in if n_in else None,
            "names_in": e_in, "names_kept": e_kept / e_in if e_in else None,
            "invented_numbers": invented}


def shorten(item: str, width: int = 24) -> str:
    return item if len(item) <= width else item[: width - 1] + "…"
