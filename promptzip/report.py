"""The compression report: numbers in dataclasses, formatting only in `render()`."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

SCHEMA_VERSION = 1


@dataclass
class Report:
    method: str
    params: dict[str, Any]
    tokenizer: str
    tokenizer_sha256: str | None
    input_tokens: int
    output_tokens: int
    ratio: float  # output tokens / input tokens (1.0 for empty input)
    requested_ratio: float | None
    target_tokens: int | None
    budget_tokens: int
    input_bytes: int
    output_bytes: int
    units: int
    units_kept: int
    protected_spans: int
    protected_spans_kept: int
    numbers_in: int
    numbers_kept: float | None
    names_in: int
    names_kept: float | None
    elapsed_ms: float
    tokens_per_s: float  # input tokens per second of wall time
    query: str | None = None
    force: list[str] = field(default_factory=list)
    model: str | None = None
    model_sha256: str | None = None
    language: str | None = None  # the document's language where the method chose its model by it
    device: str = "cpu"
    source: str = ""
    warnings: list[str] = field(default_factory=list)
    words: list[tuple[str, float, bool]] | None = None  # per-word (text, keep score, kept) when asked
    chunks: list[dict[str, Any]] | None = None  # rewriters: per chunk tokens, budget, path, reason
    # rewriters: requests to the model, and (where the server reports them, as llama.cpp's does) the
    # prompt tokens read and the tokens generated with their seconds
    generation: dict[str, Any] | None = None
    input_format: str = "text"  # the detected format (formats.FORMATS)
    format_reason: str = "default"  # how it was decided: option, extension, content or default
    handler: str = "text"  # which format handler ran ("text": the pipeline itself)
    # the handler's own counts (rows kept, arrays thinned, ...) and all_fits: everything the
    # handler keeps fits under the budget, so a ratio below the request is expected
    format_details: dict[str, Any] | None = None
    schema_version: int = SCHEMA_VERSION
    promptzip_version: str = ""

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        for key in ("words", "chunks", "format_details", "generation"):
            if data[key] is None:
                del data[key]
        return data

    def to_json(self, indent: int | None = None) -> str:
        return json.dumps(self.to_dict(), indent=indent, ensure_ascii=False)

    def render(self) -> str:
        """One line for stderr."""
        target = (
            f"target {self.requested_ratio:g}" if self.requested_ratio is not None
            else f"target {self.target_tokens} tokens" if self.target_tokens is not None
            else "no target"
        )
        head = self.method if self.handler == "text" else f"{self.input_format} ({self.format_reason}) + {self.method}"
        parts = [
            f"{head}: {self.input_tokens:,} -> {self.output_tokens:,} tokens",
            f"ratio {self.ratio:.3f} ({target})",
            f"{self.elapsed_ms:,.0f} ms",
        ]
        if self.language:
            parts.append(f"language {self.language}, model {self.model}")
        if self.numbers_kept is not None:
            parts.append(f"numbers kept {self.numbers_kept:.0%}")
        if self.names_kept is not None:
            parts.append(f"names kept {self.names_kept:.0%}")
        if self.protected_spans:
            parts.append(f"protected spans {self.protected_spans_kept}/{self.protected_spans}")
        details = self.format_details or {}
        if details.get("all_fits"):
            parts.append("all content fits")
        if details.get("summary"):
            parts.append(str(details["summary"]))
        if self.chunks:
            paths: dict[str, int] = {}
            for c in self.chunks:
                paths[c["path"]] = paths.get(c["path"], 0) + 1
            parts.append(f"chunks {len(self.chunks)}: " + ", ".join(f"{n} {p}" for p, n in sorted(paths.items())))
        g = self.generation or {}
        if g.get("requests") and g.get("generated_s") is not None and g.get("prompt_s") is not None:
            parts.append(f"{g['requests']} requests: read {g['prompt_tokens']:,} tokens in {g['prompt_s']:.1f} s, "
                         f"wrote {g['generated_tokens']:,} in {g['generated_s']:.1f} s")
        return " · ".join(parts)
