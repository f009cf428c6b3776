import re

import promptzip
from tests.conftest import needs_models
from tests.test_pipeline import is_subsequence

TEXT = """The Normans were the people who in the 10th and 11th centuries gave their name to
Normandy, a region in France. They were descended from Norse raiders and pirates from Denmark,
Iceland and Norway who, under their leader Rollo, agreed to swear fealty to King Charles III.
Through generations of assimilation, their descendants would gradually merge with the
Carolingian-based cultures of West Francia. The duchy was established in 911 and covered
about 30,000 km2 by 1050.
"""


@needs_models
def test_selfinfo_keeps_protected_spans_and_hits_ratio():
    res = promptzip.compress(TEXT, method="selfinfo", ratio=0.5, force=["Rollo"])
    out, rep = res.text, res.report
    assert is_subsequence(out, TEXT)
    for number in re.findall(r"(?<![\w])\d[\d,]*", TEXT):
        assert number in out  # numbers are protected spans: always kept
    assert "Rollo" in out
    assert abs(rep.ratio - 0.5) < 0.08
    assert rep.model == "smollm2-135m-instruct" and len(rep.model_sha256) == 64


@needs_models
def test_selfinfo_drops_predictable_words_first():
    out = promptzip.compress(TEXT, method="selfinfo", ratio=0.6).text
    kept = set(re.findall(r"\w+", out))
    # function words are cheap to predict; rare names are not
    assert "Carolingian" in kept or "Francia" in kept
    assert sum(w in kept for w in ("the", "of", "to", "and", "in")) <= 3


def test_lm_dtype_auto_follows_the_cpu(monkeypatch):
    """bfloat16 only where the CPU computes in it: emulated, it was 4.6x slower than float32."""
    from promptzip.runtime import lm

    assert lm.resolve_dtype("float32") == "float32" and lm.resolve_dtype("bfloat16") == "bfloat16"
    monkeypatch.setattr(lm, "native_bf16", lambda: False)
    assert lm.resolve_dtype("auto") == "float32"
    monkeypatch.setattr(lm, "native_bf16", lambda: True)
    assert lm.resolve_dtype("auto") == "bfloat16"
