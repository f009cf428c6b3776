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
    res = runner.invoke(app, ["compress", str(src), "-m", "latent", "-o", str(out), "-p", "rate=8"])
    assert res.exit_code == 0, res.output
    lf = codec.read(out)
    assert lf.header["rate"] == "8" and int(lf.header["original_tokens"]) > 0
    assert sum(len(x) for x in lf.latents) * 8 >= int(lf.header["original_tokens"])
    res = runner.invoke(app, ["decode", str(out)])
    assert res.exit_code == 0 and res.output.strip()
    res = runner.invoke(app, ["ask", str(out), "--question", "When was the bridge built?"])
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
