"""Markdown split into its '## ' sections: BENCHMARKS.md (a partial bench run keeps the sections
it does not measure) and a model card (its hand-written sections). Imports nothing of promptzip."""

from __future__ import annotations


def md_sections(text: str) -> dict[str, str]:
    """'## Title' sections of a Markdown file: title -> body (an existing BENCHMARKS.md, so a partial
    run keeps the others; a model card's hand-written sections)."""
    found: dict[str, str] = {}
    title = None
    for line in text.splitlines():
        if line.startswith("## "):
            title = line[3:].strip()
            found[title] = ""
        elif title is not None:
            found[title] += line + "\n"
    return found
