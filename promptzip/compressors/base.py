"""The compressor protocol.

A compressor is a class with a name, a one-line description, the parameters it accepts and
`compress(ctx)`. The pipeline has already scanned the document when `compress` runs: `ctx`
holds the unit table (byte ranges, token counts, kinds, flags), the token budget and the
request, and offers `ctx.unit_texts()` to re-read units and `ctx.emit(keep)` to write a
selection. Methods that do not select (rewriters, encoders) will write through `ctx.write()`.
`observe(unit)` sees every unit during the scan, for methods that need document statistics.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from ..errors import UsageError

if TYPE_CHECKING:
    from ..context import Context
    from ..segment import Unit


@dataclass(frozen=True)
class Param:
    name: str
    type: type
    default: Any
    help: str
    choices: tuple[Any, ...] = ()
    bounds: tuple[float | None, float | None] = (None, None)  # inclusive; None = open

    def parse(self, raw: Any) -> Any:
        try:
            value = self.type(raw)
        except (TypeError, ValueError):
            raise UsageError(f"parameter {self.name} expects {self.type.__name__}, got {raw!r}") from None
        if self.choices and value not in self.choices:
            raise UsageError(
                f"parameter {self.name} must be one of {', '.join(map(str, self.choices))}, not {raw!r}"
            )
        lo, hi = self.bounds
        if (lo is not None and value < lo) or (hi is not None and value > hi):
            raise UsageError(f"parameter {self.name} must be {self.range_text()}, not {raw!r}")
        return value

    def range_text(self) -> str:
        """`between 0 and 1`, `at least 1`, `at most 9`, or "" without bounds."""
        lo, hi = self.bounds
        if lo is not None and hi is not None:
            return f"between {lo} and {hi}"
        if lo is not None:
            return f"at least {lo}"
        return f"at most {hi}" if hi is not None else ""


class Compressor(ABC):
    name: ClassVar[str]
    description: ClassVar[str]
    query_aware: ClassVar[bool] = False
    # Bump when the output for the same input and settings changes (batch resume keys on it).
    version: ClassVar[str] = "1"
    params: ClassVar[tuple[Param, ...]] = ()
    # parameters a later version removed: name -> why (a usage error says so, not "no parameter")
    retired: ClassVar[dict[str, str]] = {}
    # cheap to run again on the same document (a second budget costs no model pass): the
    # pipeline then refits a --ratio output on its measured tokens
    refits: ClassVar[bool] = False

    def __init__(self, **params: Any) -> None:
        known = {p.name: p for p in self.params}
        unknown = sorted(set(params) - set(known))
        gone = [name for name in unknown if name in self.retired]
        if gone:
            raise UsageError(
                f"method {self.name}: parameter {gone[0]} was retired ({self.retired[gone[0]]})",
                "Leave it out (`promptzip methods` lists the current parameters).",
            )
        if unknown:
            valid = ", ".join(known) or "none"
            raise UsageError(
                f"method {self.name} has no parameter {', '.join(unknown)}",
                f"Its parameters: {valid} (see `promptzip methods`).",
            )
        self.settings = {
            name: (p.parse(params[name]) if name in params else p.default) for name, p in known.items()
        }

    def model_id(self) -> str | None:
        """Identity (sha256) of the weights this instance would run, if any: batch resume redoes
        outputs made by other weights."""
        return None

    def observe(self, unit: Unit) -> None:  # noqa: B027 - optional hook
        """Called for every unit during the scan pass."""

    @abstractmethod
    def compress(self, ctx: Context) -> None:
        """Write the compressed document through `ctx`."""
