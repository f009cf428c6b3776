import hashlib
import json

import pytest

from promptzip.errors import TokenizerError
from promptzip.tokens import _TIKTOKEN_DATA, load_tokenizer, seed_tiktoken_cache


def test_cl100k_and_o200k_offline_match_known_ids():
    # worked examples from tiktoken's documentation
    cl = load_tokenizer("cl100k_base")
    assert cl._enc.encode_ordinary("hello world") == [15339, 1917]
    assert cl._enc.encode_ordinary("tiktoken is great!") == [83, 1609, 5963, 374, 2294, 0]
    o2 = load_tokenizer("o200k_base")
    assert o2._enc.encode_ordinary("hello world") == [24912, 2375]
    assert cl.count("") == 0
    assert cl.count_many(["hello world", "", "a"]) == [2, 0, 1]


def test_seeded_cache_is_verified_and_repaired():
    path = seed_tiktoken_cache("cl100k_base")
    expected = _TIKTOKEN_DATA["cl100k_base"][1]
    assert hashlib.sha256(path.read_bytes()).hexdigest() == expected
    path.write_bytes(b"tampered")
    repaired = seed_tiktoken_cache("cl100k_base")
    assert hashlib.sha256(repaired.read_bytes()).hexdigest() == expected


def test_aliases_and_unknown_name():
    assert load_tokenizer("cl100k").name == "cl100k_base"
    with pytest.raises(TokenizerError) as exc:
        load_tokenizer("no_such_encoding")
    assert "cl100k_base" in exc.value.hint
    with pytest.raises(TokenizerError):
        load_tokenizer("/does/not/exist/tokenizer.json")


def test_hf_tokenizer_json(tmp_path):
    from tokenizers import Tokenizer, models, pre_tokenizers

    vocab = {"[UNK]": 0, "hello": 1, "world": 2, "!": 3}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    path = tmp_path / "tokenizer.json"
    tok.save(str(path))
    counter = load_tokenizer(str(path))
    assert counter.count("hello world !") == 3
    assert counter.count_many(["hello", "", "unknown words here"]) == [1, 0, 3]
    assert counter.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    # a folder holding tokenizer.json works too
    assert load_tokenizer(str(tmp_path)).count("hello") == 1


def test_sentencepiece_model(tmp_path, demo_text):
    import sentencepiece as spm

    corpus = tmp_path / "corpus.txt"
    corpus.write_text(demo_text, encoding="utf-8")
    prefix = tmp_path / "sp"
    spm.SentencePieceTrainer.train(input=str(corpus), model_prefix=str(prefix), vocab_size=300,
                                   model_type="bpe", minloglevel=2)
    counter = load_tokenizer(str(prefix) + ".model")
    sp = spm.SentencePieceProcessor(model_file=str(prefix) + ".model")
    text = "The checkout service handles about 180 requests per second."
    assert counter.count(text) == len(sp.encode(text)) > 5
    assert counter.count("") == 0


def test_broken_tokenizer_file(tmp_path):
    bad = tmp_path / "tokenizer.json"
    bad.write_text(json.dumps({"not": "a tokenizer"}))
    with pytest.raises(TokenizerError):
        load_tokenizer(str(bad))
