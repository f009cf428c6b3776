import re

from hypothesis import given, settings
from hypothesis import strategies as st

from promptzip import source
from promptzip.segment import FORCED, Kind, Segmenter, segment_text


def _nonspace(s: str) -> str:
    return re.sub(r"\s+", "", s)


def test_blocks_are_whole_units():
    text = (
        "# Title\n\nFirst sentence here. Second one, e.g. with 3.5 kg and `a. B` code.\n\n"
        "- item one\n  continues here\n- item two\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\n"
        "```py\nx = 1\n\ny = 2\n```\n\n{\"k\": [1, 2],\n \"v\": null}\n"
    )
    units = segment_text(text)
    kinds = [u.kind for u in units]
    assert kinds == [Kind.HEADING, Kind.SENTENCE, Kind.SENTENCE, Kind.LINE, Kind.LINE, Kind.TABLE,
                     Kind.CODE, Kind.JSON]
    assert units[2].text == "Second one, e.g. with 3.5 kg and `a. B` code."
    assert units[3].text == "- item one\n  continues here"
    assert units[6].text == "```py\nx = 1\n\ny = 2\n```"
    data = text.encode()
    for u in units:
        assert data[u.start:u.end].decode() == u.text


def test_sentence_boundaries_respect_protected_spans_and_abbreviations():
    text = "Mr. Smith visited https://example.com/a.b. Then he wrote to a.b@example.org. Done."
    assert [u.text for u in segment_text(text)] == [
        "Mr. Smith visited https://example.com/a.b.", "Then he wrote to a.b@example.org.", "Done."]


def test_line_breaks_label_lines_and_wrapped_prose():
    poem = "First Citizen:\nBefore we proceed, hear me.\nAll:\nSpeak, speak.\n"
    assert [u.text for u in segment_text(poem)] == [
        "First Citizen:\nBefore we proceed, hear me.", "All:\nSpeak, speak."]
    wrapped = ("This paragraph is wrapped at a fixed width the way e-mail and books are,\n"
               "so its newline is not a sentence boundary at all and the sentence goes on\n"
               "until here.\n")
    assert len(segment_text(wrapped)) == 1


def test_force_marks_units():
    units = segment_text("Keep the token ZX-81 here. Drop this one.", force=["ZX-81"])
    assert [bool(u.flags & FORCED) for u in units] == [True, False]


_alphabet = st.sampled_from(list("ab c.\n\n#-|`{}[]\"1:é 日"))


@settings(max_examples=150, deadline=None)
@given(st.text(alphabet=_alphabet, max_size=300))
def test_units_cover_all_text_in_order(text):
    units = segment_text(text)
    assert "".join(_nonspace(u.text) for u in units) == _nonspace(text)
    data = text.encode()
    prev = 0
    for u in units:
        assert prev <= u.start < u.end
        assert data[u.start:u.end].decode() == u.text
        assert data[prev:u.start].decode().strip() == ""
        prev = u.end


@settings(max_examples=60, deadline=None)
@given(st.text(alphabet=_alphabet, max_size=400), st.integers(min_value=8, max_value=64))
def test_piecewise_feeding_gives_the_same_units(text, piece):
    whole = segment_text(text)
    splitter = source.PieceSplitter(piece)
    seg = Segmenter()
    units, offset = [], 0
    chunks = [*splitter.feed(text.encode()), *splitter.finish()]
    for chunk in chunks:
        units.extend(seg.feed(offset, chunk.decode()))
        offset += len(chunk)
    units.extend(seg.finish())
    assert [(u.start, u.end, u.kind) for u in units] == [(u.start, u.end, u.kind) for u in whole]
