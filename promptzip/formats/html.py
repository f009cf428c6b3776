"""HTML: the page's main content as Markdown first (trafilatura: boilerplate, navigation,
scripts and styles dropped; links and tables kept as Markdown), then the chosen method thins
that Markdown to the document budget, counted against the tokens of the HTML as given.

The page's title and date (trafilatura's metadata) come first, as a `# title` line and a date
line, kept whole and counted in the budget; a title the main text already opens with is not
repeated. A page whose main text is smaller than the budget is written whole, and the report says
that all the content fits: markup is what the budget would otherwise buy.
"""

from __future__ import annotations

import re

from ..errors import UsageError
from .base import FormatContext, FormatOutput, Handler

EXTRA_HINT = "Install the formats extra: pip install 'promptzip-cli[formats]' (or `make install`)."


def _trafilatura():
    try:
        import trafilatura  # heavy (lxml, justext, ...) and optional: imported when HTML arrives
    except ImportError as exc:
        raise UsageError(f"HTML input needs trafilatura ({exc})", EXTRA_HINT) from None
    return trafilatura


def heading(html: str, md: str) -> tuple[str, str]:
    """(the page's title and date as the first lines of its Markdown, the Markdown less a title line
    it already opens with); ("", md) when the page has neither."""
    meta = _trafilatura().extract_metadata(html)
    if meta is None:
        return "", md
    lines = []
    title = " ".join((meta.title or "").split())
    body = md.lstrip()
    first, _, rest = body.partition("\n")
    if title and first.lstrip("# ").strip() == title:  # the main text opens with the title: once
        body = rest.lstrip("\n")
    if title:
        lines.append(f"# {title}")
    if meta.date:
        lines.append(str(meta.date))
    return ("\n\n".join(lines) + "\n\n", body) if lines else ("", md)


def main_text(html: str) -> tuple[str, str]:
    """(Markdown of the main content, how it was found)."""
    trafilatura = _trafilatura()
    md = trafilatura.extract(html, output_format="markdown", include_links=True, include_tables=True,
                             include_comments=False, include_images=False, favor_recall=True)
    if md and md.strip():
        return _tidy(_unlayout(md.strip())) + "\n", "trafilatura main text"
    text = trafilatura.html2txt(html) or ""  # no main block found: every visible text node
    return text.strip() + "\n" if text.strip() else "", "visible text"


class HtmlHandler(Handler):
    name = "html"
    needs = ("trafilatura",)

    def compress(self, text: str, ctx: FormatContext) -> FormatOutput:
        md, how = main_text(text)
        if not md.strip():
            ctx.warn("no text found in the HTML")
            return FormatOutput("", "html", all_fits=True, details={"main_text_tokens": 0, "extraction": how})
        head, md = heading(text, md)
        md_tokens = ctx.count(head + md)
        details = {"main_text_tokens": md_tokens, "extraction": how}
        if md_tokens <= ctx.budget:
            details["summary"] = f"main text whole ({md_tokens:,} tokens, {how})"
            return FormatOutput(head + md, "html -> markdown", all_fits=True, details=details)
        out = head + ctx.text(md, max(0, ctx.budget - ctx.count(head)))
        details["summary"] = f"main text {md_tokens:,} tokens thinned by the method ({how})"
        return FormatOutput(out, "html -> markdown", details=details)


def _unlayout(md: str) -> str:
    """Table rows that hold running text (a layout table: a cell of over 40 words) become
    paragraphs, one a cell: they are prose, not data."""
    out = []
    for line in md.split("\n"):
        cells = [c.strip() for c in line.strip().strip("|").split("|")] if line.lstrip().startswith("|") else []
        if cells and max(len(c.split()) for c in cells) > 40:
            out.extend(c + "\n" for c in cells if c and set(c) - set("-: "))
        else:
            out.append(line)
    return "\n".join(out)


_CITATION = re.compile(r"(?:<sup>)?\[\\?\[\d{1,4}\\?\]\]\([^)\s]*\)(?:</sup>)?|</?sup>")
_LOCAL_LINK = re.compile(r"\[([^\[\]\n]*)\]\((?!https?://|mailto:)[^)\s]*\)")
_EDIT = re.compile(r"\\?\[\[edit\]\([^)\s]*\)\\?\]")
# a link trafilatura set in a paragraph of its own in the middle of a sentence ("See\n\n[the notes](u)for
# more"): the paragraph before ends without a sentence mark and is prose (no heading, list, table, quote)
_LONE_LINK = re.compile(r"(?m)^((?![ \t]*(?:#+|[>|*+-]|\d+\.)\s)[^\n]*[^\s.!?:;)\]|])\n\n(\[[^\[\]\n]+\]\([^)\s]+\))(\w?)")


def _tidy(md: str) -> str:
    """Reference marks (`[1]` links, `<sup>`) and `[edit]` links dropped; links to the same site
    (relative) or the same page (`#...`) written as their text: their targets mean nothing once
    the page is gone, and cost tokens. Absolute links stay Markdown links; one set alone in a
    paragraph in the middle of a sentence goes back into it."""
    md = _EDIT.sub("", md)
    md = _CITATION.sub("", md)
    md = _LOCAL_LINK.sub(lambda m: m.group(1), md)
    return _LONE_LINK.sub(lambda m: f"{m.group(1)} {m.group(2)}{' ' if m.group(3) else ''}{m.group(3)}", md)
