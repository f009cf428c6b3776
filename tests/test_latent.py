"""`-m latent`: the latent file format, the header check, refusal of the retired encoder's files,
the one-pass encoder, a resumed training step, and the CLI round trip with the shipped adapter
(reconstruction quality is a benchmark, not a test)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from promptzip.cli import app
from promptzip.errors import InputError, ModelError
from promptzip.latent import codec

from .conftest import needs_models, needs_shared

HEADER = {"encoder": "latent-smollm2", "encoder_sha256": "a" * 64, "decoder": "smollm2-135m-instruct",
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


def test_files_of_the_retired_minilm_encoder_are_refused_with_a_way_out(tmp_path):
    path = tmp_path / "old.safetensors"
    codec.write(path, [np.zeros((16, 576), np.float32)], {**HEADER, "encoder": "latent-minilm"})
    with pytest.raises(ModelError) as exc:
        codec.read(path, {"encoder": "latent-smollm2"})
    assert exc.value.exit_code == 3 and "MiniLM" in str(exc.value) and "Re-compress" in exc.value.hint
    res = CliRunner().invoke(app, ["decode", str(path)])
    assert res.exit_code == 3 and "re-compress" in res.output.lower()


@needs_models
def test_cli_compress_decode_ask_and_mismatch(tmp_path):
    runner = CliRunner()
    src = tmp_path / "in.txt"
    src.write_text("The river Alder runs through the town of Aldermoor. The bridge was built in 1820 "
                   "and rebuilt after the flood of 1911.", encoding="utf-8")
    out = tmp_path / "in.safetensors"
    res = runner.invoke(app, ["compress", str(src), "-m", "latent", "-o", str(out), "-p", "refine=2"])
    assert res.exit_code == 0, res.output
    lf = codec.read(out)
    assert lf.header["rate"] == "4" and int(lf.header["original_tokens"]) > 0
    assert lf.header["refine_steps"] == "2" and len(json.loads(lf.header["refine_loss"])) == len(lf.latents)
    assert all(1 <= n <= 2 for n in json.loads(lf.header["refine_used"]))
    assert sum(len(x) for x in lf.latents) * 4 >= int(lf.header["original_tokens"])
    res = runner.invoke(app, ["compress", str(src), "-m", "latent", "-o", str(out), "-p", "rate=16"])
    assert res.exit_code == 2 and "4x or 8x" in res.output
    eight = tmp_path / "in8.safetensors"  # 8x: half the vectors, and decode reads them
    res = runner.invoke(app, ["compress", str(src), "-m", "latent", "-o", str(eight), "-p", "rate=8"])
    assert res.exit_code == 0, res.output
    lf8 = codec.read(eight)
    assert lf8.header["rate"] == "8" and sum(len(x) for x in lf8.latents) * 2 == sum(len(x) for x in lf.latents)
    res = runner.invoke(app, ["decode", str(eight)])
    assert res.exit_code == 0 and res.output.strip()
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
def test_the_encoder_runs_in_one_pass_and_batching_does_not_change_it():
    """One forward pass per batch of chunks: a chunk's latents are the same alone and left-padded
    in a batch beside a longer one; they carry the text better than the mean token embeddings
    the decoder would otherwise be given (the encoder learned something); nothing is refined."""
    pytest.importorskip("torch")
    from promptzip.latent.runtime import runtime
    from promptzip.metrics import precision

    rt = runtime()
    tok, _ = rt.lm
    short = tok(SENTENCE, add_special_tokens=False)["input_ids"]
    long = tok(SENTENCE + " The town council paid for the second bridge with a tax on wool.",
               add_special_tokens=False)["input_ids"]
    alone, losses, steps = rt.encode_ids([short], 4)
    both, _, _ = rt.encode_ids([long, short], 4)
    assert alone[0].shape == (16, 576) and losses == [] and steps == []
    assert np.allclose(alone[0], both[1], atol=1e-4)
    mean, _, _ = rt.encode_ids([short], 4, init="mean")
    p_enc = precision(SENTENCE, rt.decode(alone).strip())
    p_mean = precision(SENTENCE, rt.decode(mean).strip())
    assert p_enc > p_mean, (p_enc, p_mean)


def test_the_switched_adapter_is_the_frozen_layer_when_off():
    """One layer, three modes: off is exactly the base layer (the frozen decoder), `enc` adds the
    encoder's adapter, `dec` the decoder's; each mode trains only its own tensors."""
    torch = pytest.importorskip("torch")
    from promptzip.latent.model import SwitchedLoRA

    base = torch.nn.Linear(6, 4)
    layer = SwitchedLoRA(base, rank=2, alpha=4.0, dec_rank=2)
    with torch.no_grad():
        layer.b.normal_()
        layer.db.normal_()
    x = torch.randn(3, 6)
    outs = {}
    for mode in ("off", "enc", "dec"):
        layer.mode = mode
        outs[mode] = layer(x)
    assert torch.equal(outs["off"], base(x))
    assert not torch.allclose(outs["enc"], outs["off"]) and not torch.allclose(outs["dec"], outs["off"])
    layer.mode = "dec"
    layer(x).sum().backward()
    assert layer.a.grad is None and layer.da.grad is not None


@needs_models
def test_refinement_polishes_the_encoders_latents_until_the_decoder_repeats_the_text():
    """Refinement moves the latents (4x) from the encoder's until the decoder repeats the sentence:
    the reconstruction is (nearly) exact; the decoder's weights are untouched and left as they were."""
    pytest.importorskip("torch")
    from promptzip.latent.runtime import runtime
    from promptzip.metrics import precision

    rt = runtime()
    _, model = rt.lm
    before = [p.detach().clone() for p in list(model.parameters())[:3]]
    flags = [p.requires_grad for p in model.parameters()]
    latents, header = rt.encode(SENTENCE, 4, refine=150)
    assert len(latents) == 1 and len(latents[0]) * 4 >= int(header["original_tokens"])
    assert precision(SENTENCE, rt.decode(latents).strip()) >= 0.9
    assert json.loads(header["refine_loss"])[0] < 0.05  # it stopped early, under the loss threshold
    assert 1 <= json.loads(header["refine_used"])[0] < 150
    assert all(torch_equal(a, b) for a, b in zip(before, list(model.parameters())[:3], strict=True))
    assert flags == [p.requires_grad for p in model.parameters()]


@needs_models
@needs_shared
def test_a_training_run_resumes_where_it_stopped(tmp_path):
    """Two calls of one step each on a run folder: the second resumes from the saved adapter and
    optimizer (step 2, two curve lines: a line logged after the last save is dropped; the adapter
    changed; each call's settings kept as a phase), with the soft readout's statistics
    set once, at the start; the second step is a QA step (context latents + question -> answer),
    and its evaluation scores `ask --direct` on a held-out row."""
    pytest.importorskip("torch")
    from safetensors.numpy import load_file

    from promptzip.latent.model import LatentConfig
    from promptzip.latent.train import fit

    run = tmp_path / "run"
    cfg = LatentConfig(readout="soft", encoder="smollm2", decoder_lora=4, ks=(16,))
    kw = {"batch": 2, "lr": 1e-3, "eval_every": 100, "eval_chunks": 1, "train_limit": 3, "log": lambda _m: None,
          "continuation": 0.0}
    fit(run, 1, cfg, **kw)
    first = load_file(str(run / "adapter.safetensors"))
    assert json.loads((run / "state.json").read_text())["step"] == 1
    assert first["sd"].min() > 0 and not np.allclose(first["mu"], 0)
    assert np.abs(first["lm.model.layers.0.self_attn.v_proj.db"]).max() > 0  # the decoder's adapter trains too
    with open(run / "curve.jsonl", "a") as f:  # a step that ran after the last save, then was lost
        f.write(json.dumps({"step": 2, "k": 16, "task": "rec", "loss": 9.9}) + "\n")
    fit(run, 1, None, **kw, qa=1.0)
    second = load_file(str(run / "adapter.safetensors"))
    state = json.loads((run / "state.json").read_text())
    assert state["step"] == 2 and state["config"]["readout"] == "soft" and state["qa"] == 1.0
    assert [(p["from_step"], p["qa"]) for p in state["phases"]] == [(1, 0.0), (2, 1.0)]
    curve = [json.loads(line) for line in (run / "curve.jsonl").read_text().splitlines()]
    assert [(c["step"], c["task"]) for c in curve] == [(1, "rec"), (2, "qa")]
    assert not np.array_equal(first["memory.16"], second["memory.16"])
    evals = [json.loads(line) for line in (run / "eval.jsonl").read_text().splitlines()]
    assert [e["step"] for e in evals] == [1, 2, 2]  # the last step of each call; QA rows once asked for
    assert 0.0 <= evals[2]["f1"] <= 1.0 and evals[2]["task"] == "qa"
    # a fresh run for 4x and 8x warm-started from it (lr 0: what it started from is what it saved):
    # the 8 new memory tokens are evenly spaced ones of the 16
    wider = tmp_path / "wider"
    fit(wider, 1, LatentConfig(readout="soft", encoder="smollm2", decoder_lora=4, ks=(16, 8)),
        **{**kw, "lr": 0.0}, init_from=run)
    third = load_file(str(wider / "adapter.safetensors"))
    assert np.array_equal(third["memory.8"], second["memory.16"][[0, 2, 4, 6, 9, 11, 13, 15]])
    assert np.array_equal(third["lin.weight"], second["lin.weight"])


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
    assert 0.0 < lat["precision"] <= 1.0 and lat["answer_retained"] in (0.0, 1.0)
    # one chunk, and every chunk gets the 16 vectors of 4x: a sentence shorter than 64 tokens compresses less
    assert lat["output_tokens"] == 16 and 0.25 <= lat["achieved_ratio"] <= 1.0
    assert lat["em"] is not None and lat["ll_answer"] is not None
    bad = runner.invoke(app, ["eval", str(data), "--methods", "latent", "--ratios", "0.3", "--no-reader",
                              "--no-embed", "--out", str(tmp_path / "o")])
    assert bad.exit_code == 2 and "0.25" in bad.output


def test_benchmarks_pause_latent_and_extract_runs_but_leave_a_hand_set_pause(tmp_path, monkeypatch):
    """`paused_training` holds unfinished extract runs and latent runs for a timed section and
    lifts only the PAUSE files it set."""
    from promptzip.bench import common

    monkeypatch.setenv("PROMPTZIP_HOME", str(tmp_path))
    monkeypatch.setattr(common.time, "sleep", lambda _s: None)
    train = tmp_path / "train"
    for name, files in {"runs/ext": ["state.pt"], "runs/finished": ["state.pt", "train.json"],
                        "lat": ["state.json", "adapter.safetensors"], "held": ["state.json", "adapter.safetensors", "PAUSE"],
                        "other": ["notes.txt"]}.items():
        (train / name).mkdir(parents=True)
        for f in files:
            (train / name / f).touch()
    with common.paused_training():
        paused = sorted(str(p.parent.relative_to(train)) for p in train.rglob("PAUSE"))
    assert paused == ["held", "lat", "runs/ext"]
    assert sorted(str(p.parent.relative_to(train)) for p in train.rglob("PAUSE")) == ["held"]


def test_answers_stop_at_their_first_line():
    from promptzip.latent.runtime import first_line

    assert first_line("  In 1889.\nWhat else happened that year?") == "In 1889."
    assert first_line("the bridge") == "the bridge"
    assert first_line("\n\n") == ""
