"""Cheap fidelity signals: how many of the input's numbers and capitalized names survive.

Distinct values are tallied in bounded memory: past `cap` distinct values a tally keeps only
those whose CRC32 falls in a shrinking residue class (a deterministic sample), and the output
is tallied with the input's final sampling rate so the two sets stay comparable.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Iterable
from dataclasses import dataclass

from .nospace import NOSPACE_CHARS

# digits not glued to a word before them ("abc123" holds no number), but for the letters of scripts
# without spaces ("约6300公里" holds 6300)
NUMBER = re.compile(rf"\d(?<![^\W{NOSPACE_CHARS}]\d)(?<!\.\d)\d*(?:[.,:/]\d+)*")
# a capitalized word in Latin (accented letters too), Greek or Cyrillic script; scripts without
# capitals (Chinese, Japanese, Arabic, Thai, ...) have no names this can see
_UPPER = "A-ZÀ-ÖØ-ÞĀĂĄĆĈĊČĎĐĒĔĖĘĚĜĞĠĢĤĦĨĪĬĮİĴĶĹĻĽĿŁŃŅŇŊŌŎŐŒŔŖŘŚŜŞŠŢŤŦŨŪŬŮŰŲŴŶŸŹŻŽΑ-ΩΆΈΉΊΌΎΏА-ЯЁЄІЇЎҐ"
_LOWER = "a-zß-öø-ÿā-žα-ωάέήίόύώа-яёєіїўґ"
NAME = re.compile(rf"(?<![\w])[{_UPPER}][{_LOWER}]+(?:[-'][{_UPPER}{_LOWER}]+)*")
NOT_NAMES = frozenset(
    """A An The This That These Those It Its I We You He She They In On At Of For From To By With
    And But Or If When While As So Then There Here What Which Who Whom Whose Why How All Any Some
    No Not Yes One Our My Your His Her Their After Before Because Since Also However Thus Let
    Is Are Was Were Be Been Do Does Did Have Has Had Can Could Would Should Will Shall May Might
    Must Each Every Many Most Such Both Either Neither Once Now Only Just Even Still Yet Like
    Next First Second Third Finally Meanwhile Moreover Furthermore Instead Otherwise Overall Besides
    Therefore Hence Although Though Unless Whether Where Whereas Today Yesterday Tomorrow
    Unto Thou Thy Thee Ye Behold Lord God Question Answer Q
    Uh Um Umm Mm Mmm Hmm Hm Oh Ah Okay Ok Yeah Yep Yup Nope Alright Uh-huh Mm-hmm""".split()
)
MONTHS = frozenset("""january february march april may june july august september october november
december jan feb mar apr jun jul aug sep sept oct nov dec""".split())
WEEKDAYS = frozenset("monday tuesday wednesday thursday friday saturday sunday".split())


class Tally:
    def __init__(self, cap: int = 100_000, modulus: int = 1) -> None:
        self.cap = cap
        self.modulus = modulus
        self.values: set[str] = set()

    def add(self, items: Iterable[str]) -> None:
        mod = self.modulus
        for item in items:
            if mod == 1 or zlib.crc32(item.encode()) % mod == 0:
                self.values.add(item)
        while len(self.values) > self.cap:
            self.modulus *= 2
            mod = self.modulus
            self.values = {v for v in self.values if zlib.crc32(v.encode()) % mod == 0}


def numbers_in(text: str) -> list[str]:
    return [m.replace(",", "") for m in NUMBER.findall(text)]


def names_in(text: str) -> list[str]:
    return [m for m in NAME.findall(text) if m not in NOT_NAMES]


@dataclass
class Retention:
    numbers_in: int  # distinct numbers in the input (sampled past the cap)
    numbers_kept: float | None  # share of them found in the output; None when there are none
    names_in: int
    names_kept: float | None


class FidelityTracker:
    """Feed input text with `input()`, output text with `output()`, then `result()`."""

    def __init__(self, cap: int = 100_000) -> None:
        self._in_num, self._in_name = Tally(cap), Tally(cap)
        self._out_num: Tally | None = None
        self._out_name: Tally | None = None

    def reset_output(self) -> None:
        self._out_num = self._out_name = None

    def input(self, text: str) -> None:
        self._in_num.add(numbers_in(text))
        self._in_name.add(names_in(text))

    def output(self, text: str) -> None:
        if self._out_num is None:
            self._out_num = Tally(10**12, self._in_num.modulus)
            self._out_name = Tally(10**12, self._in_name.modulus)
        self._out_num.add(n for n in numbers_in(text) if n in self._in_num.values)
        self._out_name.add(n for n in names_in(text) if n in self._in_name.values)

    def result(self) -> Retention:
        def share(src: Tally, out: Tally | None) -> float | None:
            if not src.values:
                return None
            return (len(out.values) if out else 0) / len(src.values)

        return Retention(
            numbers_in=len(self._in_num.values),
            numbers_kept=share(self._in_num, self._out_num),
            names_in=len(self._in_name.values),
            names_kept=share(self._in_name, self._out_name),
        )
