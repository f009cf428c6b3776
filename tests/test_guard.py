"""The faithfulness guard and semantic chunking (no models needed)."""

from __future__ import annotations

from promptzip.chunking import chunk_units, split_long
from promptzip.guard import check, facts_of, names_of
from promptzip.segment import Kind, protected_spans
from promptzip.tokens import load_tokenizer

SOURCE = ('On 14 March at 18:02 the on-call engineer, Priya Raman, paged the payments team. '
          'The pool shrank from 64 to 32 connections after release 4.12.0 of `payments-client`. '
          'She called it "a silent default" in https://example.org/postmortem/17.')


def test_facts_cover_every_kind():
    f = facts_of(SOURCE, force=["payments team", "absent string"])
    assert {"14", "18:02", "64", "32", "4.12.0", "17"} <= set(f.numbers)
    assert "14 March" in f.dates
    assert {"Priya", "Raman"} <= set(f.names)
    assert f.quotes == ("a silent default",)
    assert f.code == ("payments-client",)
    assert f.urls == ("https://example.org/postmortem/17",)
    assert f.forced == ("payments team",)  # a forced string the text lacks is not required


def test_sentence_initial_words_are_not_names_unless_seen_inside():
    text = "Written by the team. Normans came in 1066. Later the Normans left.\n- Page the lead"
    names = names_of(text)
    assert "Normans" in names
    assert "Written" not in names and "Page" not in names and "Later" not in names



def test_words_opening_a_sentence_after_a_bracket_quote_or_tag_are_not_names():
    text = ('Les députés ont voté. [Le détail est en ligne.] Il sera examiné.* Ce dispositif reste.\n'
            '<u>Retour sur le vote</u>\n« Dans la loi, Hollande » a dit Hollande.')
    names = names_of(text)
    assert "Hollande" in names
    assert not {"Le", "Ce", "Retour", "Dans"} & set(names)


def test_a_possessive_is_its_name_and_a_quote_ends_before_its_sentence_punctuation():
    text = 'Then Rollo\'s men sailed, and "highway," they wrote. Later Dropbox grew.'
    facts = facts_of(text)
    assert "Rollo" in facts.names and "highway" in facts.quotes
    assert check(facts, 'Rollo sailed on the highway to Dropbox.', text).ok
    assert not check(facts, 'The men sailed on a road.', text).ok
    assert check(facts_of("Dropbox and Rollo met."), "Dropbox's Rollo.", "Dropbox and Rollo met.").ok
    assert check(facts_of("Dropbox and Rollo met."), "Dropbox met Gerald.", "Dropbox and Rollo met.").new_names == ["Gerald"]

def test_verbatim_copy_passes_and_a_copy_with_new_number_fails():
    facts = facts_of(SOURCE)
    assert check(facts, SOURCE).ok
    v = check(facts, SOURCE.replace("32 connections", "30 connections"))
    assert not v.ok and v.missing == ["32"] and v.invented == ["30"]
    assert "missing 32" in v.reason() and "invented 30" in v.reason()


def test_thousands_separators_do_not_count_as_a_change():
    facts = facts_of("Revenue was 1,200,000 dollars.")
    assert check(facts, "Revenue: 1200000 dollars").ok


def test_dropping_a_name_or_quote_fails():
    facts = facts_of(SOURCE)
    v = check(facts, SOURCE.replace("Priya Raman", "an engineer").replace('"a silent default"', "a default"))
    assert not v.ok
    assert {"Priya", "Raman", "a silent default"} <= set(v.missing)


def _units(texts, kinds=None):
    counter = load_tokenizer("cl100k_base")
    kinds = kinds or [Kind.SENTENCE] * len(texts)
    tokens = [counter.count(" " + t) for t in texts]
    return texts, [" "] * len(texts), kinds, tokens, counter.count


def test_a_name_the_text_never_writes_fails_when_the_text_is_given():
    text = "On call, Priya Raman paged the payments team at 14:00. Payments answered."
    facts = facts_of(text)
    assert check(facts, "At 14:00 Priya Raman paged the payments team.", text).ok
    v = check(facts, "At 14:00 Priya Raman paged Henry from payments.", text)
    assert not v.ok and v.new_names == ["Henry"] and "names not in the text: Henry" in v.reason()
    assert check(facts, "At 14:00 Priya Raman paged the Payments team.", text).ok  # a word of the text, capitalized
    assert check(facts, "At 14:00 Priya Raman paged Henry from payments.").ok  # without the text: items and numbers
    # a French word glued to its elided article is a word of the text (l’Autorité, d’Etat)
    fr = "Le Conseil d’Etat a saisi l’Autorité de régulation en 2021."
    assert check(facts_of(fr), "En 2021, le Conseil a saisi la Autorité, dit le Conseil d'Etat.", fr).new_names == []
    assert check(facts_of(fr), "En 2021, le Conseil a saisi la Commission.", fr).new_names == ["Commission"]


def test_chunks_cover_all_units_in_order_within_the_bound():
    texts = [f"Sentence number {i} talks about topic {i // 3} in some detail here." for i in range(20)]
    t, seps, kinds, tokens, count = _units(texts)
    chunks = chunk_units(t, seps, kinds, tokens, None, count, max_tokens=50, min_tokens=10)
    covered = [u for c in chunks for u in c.units]
    assert covered == list(range(20))
    assert all(c.tokens <= 50 for c in chunks)
    assert all(c.prose for c in chunks)


def test_blocks_are_chunks_of_their_own_and_small_chunks_merge():
    texts = ["Short one.", "Another short sentence.", "def f():\n    return 1", "Tail sentence here."]
    kinds = [Kind.SENTENCE, Kind.SENTENCE, Kind.CODE, Kind.SENTENCE]
    t, seps, kinds, tokens, count = _units(texts, kinds)
    chunks = chunk_units(t, seps, kinds, tokens, None, count, max_tokens=200, min_tokens=8)
    assert [list(c.units) for c in chunks] == [[0, 1], [2], [3]]
    assert [c.prose for c in chunks] == [True, False, True]


def test_a_long_unit_is_split_at_word_boundaries_outside_protected_spans():
    counter = load_tokenizer("cl100k_base")
    text = " ".join(f"word{i} costs 1,234.5 ms at https://example.org/a/b/{i}" for i in range(40))
    pieces = split_long(text, 30, counter.count)
    assert len(pieces) > 3
    assert "".join(pieces) == text
    cuts, at = [], 0
    for p in pieces[:-1]:
        at += len(p)
        cuts.append(at)
    spans = protected_spans(text)
    assert any("https://" in text[s:e] for s, e in spans)
    assert not [c for c in cuts for s, e in spans if s < c < e]  # no cut inside a number or URL


def test_required_items_in_cyrillic_and_chinese():
    ru = facts_of("В 1812 году армия Наполеона вошла в Москву, и Кутузов отступил к Тарутино.")
    assert ru.numbers == ("1812",) and {"Наполеона", "Москву", "Кутузов", "Тарутино"} <= set(ru.names)
    assert not check(ru, "В 1812 году Наполеон вошёл в Москву.").ok  # Кутузов and Тарутино are missing
    zh = facts_of("长江全长约6300公里。《长江志》记载，1998年发生特大洪水。鲁迅说：「希望是本无所谓有」。")
    assert zh.numbers == ("6300", "1998") and zh.names == ()
    assert set(zh.quotes) == {"长江志", "希望是本无所谓有"}
    good = "长江约6300公里，《长江志》载1998年洪水；「希望是本无所谓有」。"
    assert check(zh, good).ok
    assert check(zh, good.replace("1998", "1999")).invented == ["1999"]


def test_meeting_fillers_and_tags_are_not_names():
    # QMSum-style transcript: "Mm", "Uh", "Yeah" are capitalized fillers, and a word after a
    # {vocalsound} tag starts an utterance; a speaker's role word mid-line is still a name
    text = ("Project Manager: Yeah . Mm . {vocalsound} Uh we could use a rabbit . Marketing: Okay , "
            "User Interface said Christa Pavlov {disfmarker} likes it .")
    names = facts_of(text).names
    assert not {"Yeah", "Mm", "Uh", "Okay"} & set(names)
    assert {"Manager", "Interface", "Christa", "Pavlov"} <= set(names)
