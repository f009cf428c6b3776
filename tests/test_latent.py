"""`-m latent`: the latent file format, the header check, and the CLI round trip with the
shipped encoder adapter (reconstruction quality is a benchmark, not a test)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from promptzip.cli import app
from promptzip.errors import InputError, ModelError
from promptzip.latent import codec

from .conftest import needs_models, needs_shared

HEADER = {"encoder": "latent-minilm", "encoder_sha256": "a" * 64, "decoder": "smollm2-135m-instruct",
          "decoder_sha256": "b" * 64, "k": "16", "rate": "4", "chunk_tokens": "64",
          "chunks": json.dumps([[0, 100], [100, 180]]), "original_tokens": "100", "ratio": "4.0"}


def test_file_round_trip_keeps_latents_and_header(tmp_path):
    lat = [np.random.default_rng(0).normal(size=(16, 576)).astype(np.float32), np.ones((9, 576), np.float32)]
    path = tmp_path / "x.safetensors"
    codec.write(path, lat, HEADER)
    got = codec.read(path, {"encoder_sha256": "a" * 64})
    assert len(got.latents) == 2
    assert np.array_equal(got.latents[0], lat[0]) and got.latents[1].shape == (9, 576)
    assert got.chunks == [(0, 100), (100, 180)]
    assert got.header["format"] == "promptzip-latent" and got.header["original_tokens"] == "100"


def test_a_header_from_other_models_is_refused(tmp_path):
    path = tmp_path / "x.safetensors"
    codec.write(path, [np.zeros((4, 576), np.float32)], HEADER)
    with pytest.raises(ModelError) as exc:
        codec.read(path, {"decoder_sha256": "c" * 64})
    assert exc.value.exit_code == 3 and "decoder_sha256" in str(exc.value)


def test_files_that_are_not_latent_files_are_input_errors(tmp_path):
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"not a safetensors file at all")
    with pytest.raises(InputError):
        codec.read(junk)
    from safetensors.numpy import save_file

    other = tmp_path / "other.safetensors"
    save_file({"w": np.zeros(3, np.float32)}, str(other))
    with pytest.raises(InputError, match="not a promptzip latent file"):
        codec.read(other)


@needs_models
def test_cli_compress_decode_ask_and_mismatch(tmp_path):
    runner = CliRunner()
    src = tmp_path / "in.txt"
    src.write_text("The river Alder runs through the town of Aldermoor. The bridge was built in 1820 "
                   "and rebuilt after the flood of 1911.", encoding="utf-8")
    out = tmp_path / "in.safetensors"
    res = runner.invoke(app, ["compress", str(src), "-m", "latent", "-o", str(out), "-p", "rate=8",
                              "-p", "refine=2"])
    assert res.exit_code == 0, res.output
    lf = codec.read(out)
    assert lf.header["rate"] == "8" and int(lf.header["original_tokens"]) > 0
    assert lf.header["refine_steps"] == "2" and len(json.loads(lf.header["refine_loss"])) == len(lf.latents)
    assert sum(len(x) for x in lf.latents) * 8 >= int(lf.header["original_tokens"])
    res = runner.invoke(app, ["decode", str(out)])
    assert res.exit_code == 0 and res.output.strip()
    for extra in ([], ["--direct"]):
        res = runner.invoke(app, ["ask", str(out), "--question", "When was the bridge built?", *extra])
        assert res.exit_code == 0 and res.output.strip()
    bad = tmp_path / "bad.safetensors"
    codec.write(bad, lf.latents, {**{k: v for k, v in lf.header.items() if k not in ("format", "version")},
                                  "encoder_sha256": "0" * 64})
    res = runner.invoke(app, ["decode", str(bad)])
    assert res.exit_code == 3 and "encoder_sha256" in res.output


@needs_models
@needs_shared
def test_probe_optimizes_vectors_through_the_frozen_decoder():
    """The capacity probe: a few Adam steps on the input vectors alone lower the decoder's
    reconstruction loss (the decoder itself is frozen), and the greedy output is scored."""
    pytest.importorskip("torch")
    from promptzip.latent.probe import probe

    res = probe(k=16, steps=4, n_chunks=1, lr=0.05, log=lambda _: None)
    losses = [c["loss"] for c in res["curve"]]
    assert losses[-1] < losses[0]
    assert 0.0 <= res["precision"] <= 1.0 and 0.0 <= res["token_em"] <= 1.0
    assert res["ratio"] == 4.0
    with pytest.raises(ValueError):
        probe(k=5, steps=1)


SENTENCE = "The stone bridge over the river Alder was built in 1820 and rebuilt after the flood of 1911."


@needs_models
def test_refinement_makes_the_frozen_decoder_reproduce_the_text():
    """Refinement moves the latents (4x) until the decoder repeats the sentence: the
    reconstruction from the refined latents is (nearly) exact and far better than from the
    starting point; the decoder's weights are untouched and left as they were."""
    pytest.importorskip("torch")
    from promptzip.latent.runtime import runtime
    from promptzip.metrics import precision

    rt = runtime()
    _, model = rt.lm
    before = [p.detach().clone() for p in list(model.parameters())[:3]]
    flags = [p.requires_grad for p in model.parameters()]
    start, _ = rt.encode(SENTENCE, 4, refine=0)
    latents, header = rt.encode(SENTENCE, 4, refine=150)
    assert len(latents) == 1 and len(latents[0]) * 4 >= int(header["original_tokens"])
    p0 = precision(SENTENCE, rt.decode(start).strip())
    p1 = precision(SENTENCE, rt.decode(latents).strip())
    assert p1 >= 0.9 and p1 > p0 + 0.3, (p0, p1)
    assert json.loads(header["refine_loss"])[0] < 0.05  # it stopped early, under the loss threshold
    assert all(torch_equal(a, b) for a, b in zip(before, list(model.parameters())[:3], strict=True))
    assert flags == [p.requires_grad for p in model.parameters()]


def torch_equal(a, b) -> bool:
    import torch

    return bool(torch.equal(a, b))


@needs_models
def test_eval_reports_reconstruction_precision_and_ask_for_latent(tmp_path):
    from promptzip.cli import app

    data = tmp_path / "qa.jsonl"
    data.write_text(json.dumps({"id": "a", "context": SENTENCE, "question": "When was the bridge built?",
                                "answers": ["1820"]}) + "\n", encoding="utf-8")
    runner = CliRunner()
    out = tmp_path / "out"
    res = runner.invoke(app, ["eval", str(data), "--methods", "latent", "--ratios", "0.25", "--no-embed",
                              "--out", str(out)])
    assert res.exit_code == 0, res.output
    rows = {r["method"]: r for r in json.loads((out / "results.json").read_text())["rows"]}
    lat = rows["latent"]
    assert lat["precision"] >= 0.9 and lat["answer_retained"] == 1.0
    assert 0.2 <= lat["achieved_ratio"] <= 0.25 and lat["output_tokens"] * 4 >= 20
    assert lat["em"] is not None and lat["ll_answer"] is not None
    bad = runner.invoke(app, ["eval", str(data), "--methods", "latent", "--ratios", "0.3", "--no-reader",
                              "--no-embed", "--out", str(tmp_path / "o")])
    assert bad.exit_code == 2 and "0.25" in bad.output
