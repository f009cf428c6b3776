"""The training pipeline on a few examples: labels, resumable fine-tuning, ONNX export parity."""

from __future__ import annotations

import numpy as np
import pytest

from tests.conftest import needs_models

PARA = ("The Apollo 11 mission launched from Kennedy Space Center on July 16, 1969. Neil Armstrong "
        "and Buzz Aldrin landed the lunar module Eagle in the Sea of Tranquility four days later.")


def test_qa_labels_mark_answers_and_question_words():
    from promptzip.train.labels import qa_examples

    start = PARA.index("Eagle")
    rows = [{"id": "q1", "question": "What was the lunar module called?", "answers": ["Eagle"],
             "answer_starts": [start]}]
    agnostic, asked = qa_examples("Apollo", PARA, rows)
    marked = {w for w, lab in zip(agnostic.words, agnostic.labels, strict=True) if lab}
    assert marked == {"Eagle"}
    marked = {w for w, lab in zip(asked.words, asked.labels, strict=True) if lab}
    assert {"Eagle", "lunar", "module"} <= marked and "Kennedy" not in marked
    assert asked.query == rows[0]["question"]


def test_percentile_ranks():
    from promptzip.train.labels import percentile_ranks

    r = percentile_ranks(np.array([3.0, 1.0, 2.0, 2.0]))
    assert r.tolist() == [1.0, 0.0, 0.5, 0.5]


def test_span_rank_loss_ranks_each_answer_by_its_weakest_word():
    torch = pytest.importorskip("torch")
    from promptzip.train.finetune import span_rank_loss

    labels = torch.tensor([0.0, 1.0, 1.0, 0.0, 0.5, 0.0, 1.0])
    low = torch.tensor([0.0, 5.0, -1.0, 2.0, 9.0, 0.0, 4.0])  # the first answer's weak word is below a 0 word
    high = low.clone()
    high[2] = 3.0
    assert span_rank_loss(high, labels) < span_rank_loss(low, labels)
    low.requires_grad_(True)
    span_rank_loss(low, labels).backward()
    g = low.grad
    assert g[4] == 0  # words labelled between 0 and 1 are neither answers nor rivals
    assert g[2] < g[1] < 0 and g[6] < 0  # the weak word is pushed up hardest
    assert (g[[0, 3, 5]] > 0).all() and g[3] > g[0]  # the strongest rival is pushed down hardest


def test_windows_record_where_a_question_s_answer_is():
    from promptzip.train.finetune import answer_run, load_wordpiece, windows
    from promptzip.train.labels import words_of

    words, _ = words_of(PARA)
    labels = [0.0] * len(words)
    at = words.index("Eagle")
    labels[at - 2] = labels[at - 1] = labels[at] = 1.0  # `lunar module Eagle`
    labels[at + 3] = 0.5  # an evidence word is not the answer
    assert answer_run(labels) == (at - 2, at)
    assert answer_run([1.0, 0.0, 1.0]) is None and answer_run([0.0, 0.5]) is None
    tok = load_wordpiece()
    whole = windows(tok, words, labels, "What was the lunar module called?")
    assert len(whole) == 1 and whole[0].answer == (at - 2, at)
    cut = windows(tok, words, labels, "What was the lunar module called?", max_len=32)
    assert len(cut) > 1
    held = [(k, w.answer) for k, w in enumerate(cut) if w.answer is not None]
    assert len(held) == 1  # the window holding all three words, counted from its own first word
    k, (a, b) = held[0]
    first = sum(len(w.labels) for w in cut[:k])
    assert (first + a, first + b) == (at - 2, at)
    assert all(w.answer is None for w in windows(tok, words, labels, None))  # no question: no answer


def _both_probs(model, sc, words):
    """The first window of `words`: (ids, types, the torch model's keep probabilities, the
    scorer's ONNX session's)."""
    import torch

    ids, types, _, _ = sc.plan(words, None)[0]
    with torch.inference_mode():
        ref = torch.sigmoid(model(torch.tensor([ids]), torch.ones(1, len(ids), dtype=torch.long),
                                  torch.tensor([types])))[0].numpy()
    got = sc.sess.run(["probs"], {"input_ids": np.array([ids]), "attention_mask": np.ones((1, len(ids)), dtype=np.int64),
                                  "token_type_ids": np.array([types])})[0][0]
    return ids, types, ref, got


@needs_models
def test_fit_resumes_and_export_matches_torch(tmp_path):
    torch = pytest.importorskip("torch")
    pytest.importorskip("onnx")
    from promptzip.compressors.extract import Scorer
    from promptzip.train.export import export
    from promptzip.train.finetune import build_model, fit
    from promptzip.train.labels import Example, words_of

    words, _ = words_of(PARA)
    labels = [1.0 if w[0].isupper() else 0.0 for w in words]
    examples = [Example("a", "test", words, labels), Example("b", "test", words, labels, "Who landed?")]
    run = tmp_path / "run"
    fit(examples, run, steps=2, batch_size=2, save_every=1, log=lambda _: None)
    state = torch.load(run / "state.pt", weights_only=False)
    assert state["step"] == 2
    fit(examples, run, steps=3, batch_size=2, save_every=1, log=lambda _: None)  # resumes at 2
    state = torch.load(run / "state.pt", weights_only=False)
    assert state["step"] == 3 and len(state["losses"]) == 3

    out = export(run / "state.pt", tmp_path / "onnx")
    model = build_model(dropout=0.0)
    model.load_state_dict(state["model"])
    model.eval()
    sc = Scorer(tmp_path / "onnx", "fp32", max_len=64, overlap=0)
    ids, _, ref, got = _both_probs(model, sc, words)
    assert np.abs(ref - got).max() < 1e-4
    int8 = Scorer(tmp_path / "onnx", "int8", max_len=64, overlap=0).probs(words)
    assert out["int8"].stat().st_size < out["fp32"].stat().st_size / 3
    assert np.corrcoef(int8, sc.probs(words))[0, 1] > 0.9
    # padded batches give what each window gives alone (the exported mask is not traced constant)
    short = [sc.cls, *ids[1:10], sc.sep]
    batch = np.zeros((2, len(ids)), dtype=np.int64)
    batch[0], batch[1, :len(short)] = ids, short
    mask = (batch > 0).astype(np.int64)
    both = sc.sess.run(["probs"], {"input_ids": batch, "attention_mask": mask, "token_type_ids": np.zeros_like(batch)})[0]
    alone = sc.sess.run(["probs"], {"input_ids": np.array([short]), "attention_mask": np.ones((1, len(short)), dtype=np.int64),
                                    "token_type_ids": np.zeros((1, len(short)), dtype=np.int64)})[0]
    assert np.abs(both[1, :len(short)] - alone[0]).max() < 1e-4


@needs_models
def test_fit_with_ranking_loss_stops_early_and_goes_on(tmp_path):
    import json

    torch = pytest.importorskip("torch")
    from promptzip.train.finetune import fit
    from promptzip.train.labels import Example, words_of

    words, _ = words_of(PARA)
    labels = [1.0 if w[0].isupper() else 0.0 for w in words]
    examples = [Example("a", "test", words, labels), Example("b", "test", words, labels, "Who landed?")]
    run = tmp_path / "run"
    fit(examples, run, steps=4, batch_size=2, save_every=1, listwise=0.3, ranking="spans", stop=2, log=lambda _: None)
    state = torch.load(run / "state.pt", weights_only=False)
    info = json.loads((run / "train.json").read_text(encoding="utf-8"))
    assert state["step"] == 2 and info["stop"] == 2 and info["ranking"] == "spans" and info["listwise"] == 0.3
    assert all(np.isfinite(state["losses"]))
    lr = state["sched"]["_last_lr"][0]
    fit(examples, run, steps=4, batch_size=2, save_every=1, listwise=0.3, ranking="spans", log=lambda _: None)
    state = torch.load(run / "state.pt", weights_only=False)
    assert state["step"] == 4 and state["sched"]["_last_lr"][0] < lr  # the same schedule, decayed further


@needs_models
def test_fit_with_a_span_head_exports_start_and_end_logits(tmp_path):
    import json

    torch = pytest.importorskip("torch")
    pytest.importorskip("onnx")
    from promptzip.compressors.extract import Scorer
    from promptzip.train.export import export, state_from_int8
    from promptzip.train.finetune import build_model, fit
    from promptzip.train.labels import Example, words_of

    words, _ = words_of(PARA)
    labels = [1.0 if w == "Eagle" else 0.0 for w in words]
    examples = [Example("a", "test", words, labels), Example("b", "test", words, labels, "Who landed?")]
    plain, run = tmp_path / "plain", tmp_path / "run"
    fit(examples, plain, steps=1, batch_size=2, log=lambda _: None)
    fit(examples, run, steps=2, batch_size=2, span=0.5, init=plain / "state.pt", log=lambda _: None)  # head new
    state = torch.load(run / "state.pt", weights_only=False)
    assert {"span.weight", "span.bias"} <= set(state["model"])
    assert json.loads((run / "train.json").read_text(encoding="utf-8"))["span"] == 0.5
    export(run / "state.pt", tmp_path / "onnx")
    sc = Scorer(tmp_path / "onnx", "fp32", max_len=64, overlap=0)
    assert [o.name for o in sc.sess.get_outputs()] == ["probs", "span"]
    model = build_model(dropout=0.0, span=True)
    model.load_state_dict(state["model"])
    model.eval()
    ids, types, _, _ = sc.plan(words, "Who landed?")[0]
    feed = {"input_ids": np.array([ids]), "attention_mask": np.ones((1, len(ids)), dtype=np.int64),
            "token_type_ids": np.array([types])}
    probs, span = sc.sess.run(["probs", "span"], feed)
    with torch.inference_mode():
        keep, ref = model(*(torch.from_numpy(feed[k]) for k in ("input_ids", "attention_mask", "token_type_ids")))
    assert span.shape == (1, len(ids), 2) and np.abs(ref.numpy() - span).max() < 1e-4
    assert np.abs(torch.sigmoid(keep).numpy() - probs).max() < 1e-4
    kept = sc.probs(words, "Who landed?")  # the compressor reads the keep output alone
    assert len(kept) == len(words) and ((kept > 0) & (kept < 1)).all()
    back = torch.load(state_from_int8(tmp_path / "onnx" / "model.int8.onnx", tmp_path / "back.pt"), weights_only=False)
    assert np.abs(back["model"]["span.weight"].numpy() - state["model"]["span.weight"].numpy()).max() < 0.05


@needs_models
def test_state_from_int8_continues_the_shipped_model(tmp_path):
    """The dequantized state of the shipped model scores like the shipped model: a later session
    can go on training it (`python -m promptzip.train from-onnx`) without its fp32 state."""
    torch = pytest.importorskip("torch")
    pytest.importorskip("onnx")
    from promptzip.compressors.extract import Scorer, model_dir
    from promptzip.train.export import state_from_int8
    from promptzip.train.finetune import build_model
    from promptzip.train.labels import words_of

    shipped = model_dir("")
    out = state_from_int8(shipped / "model.int8.onnx", tmp_path / "state.pt")
    model = build_model(dropout=0.0)
    model.load_state_dict(torch.load(out, weights_only=False)["model"])  # strict: every weight there
    model.eval()
    words, _ = words_of(PARA)
    sc = Scorer(shipped, "int8", max_len=64, overlap=0)
    _, _, mine, theirs = _both_probs(model, sc, words)
    # int8 matmuls quantize activations too, so not equal; a fresh head would be near 0.5 everywhere
    assert np.corrcoef(mine, theirs)[0, 1] > 0.95
    assert np.abs(mine - theirs).mean() < 0.05


@needs_models
@pytest.mark.parametrize("fuse", [False, True])
def test_state_from_int8_reads_fused_and_unfused_exports(tmp_path, fuse):
    """Each weight comes back from either int8 graph within a quantization step: the fused
    graph's concatenated query/key/value are split back to the right parameters."""
    torch = pytest.importorskip("torch")
    onnx = pytest.importorskip("onnx")
    from promptzip.train.export import export, state_from_int8
    from promptzip.train.finetune import build_model

    state = build_model(dropout=0.0).state_dict()
    torch.save({"model": state}, tmp_path / "state.pt")
    out = export(tmp_path / "state.pt", tmp_path / "onnx", fuse=fuse)
    graph = onnx.load(str(out["int8"])).graph
    assert ("QAttention" in {n.op_type for n in graph.node}) == fuse
    # every weight a matrix product reads is quantized per output column (int8 then agrees with
    # fp32 more often); the embedding tables stay per tensor
    dims = {t.name: list(t.dims) for t in graph.initializer}
    matrices = {x.removesuffix("_quantized") for n in graph.node if n.op_type in ("MatMulInteger", "QAttention")
                for x in n.input if x.endswith("_quantized") and x in dims}
    assert len(matrices) == (4 if fuse else 6) * 6 + 1  # per layer; plus the head
    assert all(dims[m + "_scale"] == dims[m + "_quantized"][-1:] for m in matrices)
    back = torch.load(state_from_int8(out["int8"], tmp_path / "back.pt"), weights_only=False)["model"]
    assert set(back) == set(state)
    for key, value in state.items():
        assert (back[key] - value).abs().max() <= 0.05 * value.abs().max() + 1e-6, key


def test_stage_line_names_each_added_loss():
    from promptzip.train.card import _stage_line

    rec = {"run": "stage11", "init": "/w/runs/stage6/state.pt", "steps": 2500, "batch_size": 8, "lr": 5e-5,
           "seed": 11, "max_len": 256, "windows": 10, "examples": 9, "final_loss": 1.5, "listwise": 0.3,
           "ranking": "spans"}
    plain = _stage_line(11, rec)
    assert plain.startswith("Training stage 11: 2500 steps") and "starting from stage 6" in plain
    assert "ranking loss over answers" in plain and "span head" not in plain
    assert "plus 0.5 x a span head's loss" in _stage_line(11, {**rec, "span": 0.5})
    deeper = _stage_line(13, {**rec, "run": "stage13", "deepen": [0, 1, 2, 2, 3, 3, 4, 5]})
    assert "starting from stage 6 with its layers stacked to 8 (order 0, 1, 2, 2, 3, 3, 4, 5)" in deeper


def test_deepen_copies_layers_in_the_order_given():
    torch = pytest.importorskip("torch")
    from promptzip.train.finetune import deepen, depth_of, layer_of

    state = {"embeddings.w": torch.zeros(2), "head.weight": torch.ones(1)}
    for i in range(3):
        state[f"encoder.encoder.layer.{i}.attention.self.query.weight"] = torch.full((2,), float(i))
        state[f"encoder.encoder.layer.{i}.output.LayerNorm.bias"] = torch.full((1,), float(i))
    out = deepen(state, [0, 1, 1, 2])
    assert depth_of(state) == 3 and depth_of(out) == 4
    assert [out[f"encoder.encoder.layer.{i}.attention.self.query.weight"][0].item() for i in range(4)] == [0, 1, 1, 2]
    assert [out[f"encoder.encoder.layer.{i}.output.LayerNorm.bias"][0].item() for i in range(4)] == [0, 1, 1, 2]
    assert out["head.weight"] is state["head.weight"] and layer_of("head.weight") == -1
    out["encoder.encoder.layer.2.output.LayerNorm.bias"] += 5  # copies, not views of one tensor
    assert out["encoder.encoder.layer.1.output.LayerNorm.bias"].item() == 1
    with pytest.raises(ValueError, match="outside 0..2"):
        deepen(state, [0, 3])


@needs_models
@pytest.mark.parametrize("fuse", [False, True])
def test_a_deepened_model_trains_exports_and_reads_back(tmp_path, fuse):
    """Stage 6 stacked to more layers (`deepen`): fit goes on from it at its depth, the export has
    that many attention layers and matches torch, and `state_from_int8` rebuilds that depth."""
    import json

    torch = pytest.importorskip("torch")
    pytest.importorskip("onnx")
    from promptzip.compressors.extract import Scorer
    from promptzip.train.export import export, state_from_int8
    from promptzip.train.finetune import build_model, depth_of, fit
    from promptzip.train.labels import Example, words_of

    words, _ = words_of(PARA)
    labels = [1.0 if w[0].isupper() else 0.0 for w in words]
    base = build_model(dropout=0.0).state_dict()
    torch.save({"model": base}, tmp_path / "init.pt")
    run = tmp_path / "run"
    fit([Example("a", "test", words, labels)], run, steps=1, batch_size=1, init=tmp_path / "init.pt",
        deepen_order=[0, 1, 2, 2, 3, 4, 5], log=lambda _: None)
    state = torch.load(run / "state.pt", weights_only=False)["model"]
    assert depth_of(state) == 7 and json.loads((run / "train.json").read_text(encoding="utf-8"))["layers"] == 7
    fit([Example("a", "test", words, labels)], run, steps=2, batch_size=1, init=tmp_path / "init.pt",
        deepen_order=[0, 1, 2, 2, 3, 4, 5], log=lambda _: None)  # resumes at its own depth
    assert torch.load(run / "state.pt", weights_only=False)["step"] == 2
    state = torch.load(run / "state.pt", weights_only=False)["model"]
    out = export(run / "state.pt", tmp_path / "onnx", fuse=fuse)
    model = build_model(dropout=0.0, depth=7)
    model.load_state_dict(state)
    model.eval()
    _, _, ref, got = _both_probs(model, Scorer(tmp_path / "onnx", "fp32", max_len=64, overlap=0), words)
    assert np.abs(ref - got).max() < 1e-4
    back = torch.load(state_from_int8(out["int8"], tmp_path / "back.pt"), weights_only=False)["model"]
    assert set(back) == set(state)
    key = "encoder.encoder.layer.6.intermediate.dense.weight"
    assert (back[key] - state[key]).abs().max() <= 0.05 * state[key].abs().max()


@pytest.fixture
def tiny_mpnet(tmp_path, monkeypatch):
    """A prepared `mpnet-base-v2` folder holding a tiny random MPNet (2 layers x 32) with an
    MPNet-style tokenizer (<s> </s> <pad>), so the teacher's code runs without its 470 MB."""
    torch = pytest.importorskip("torch")
    from safetensors.torch import save_file
    from transformers import MPNetConfig, MPNetModel

    from promptzip.runtime import store
    from promptzip.runtime.onnx import wordpiece

    models = tmp_path / "models"
    models.mkdir()
    for name in ("minilm-l6-v2",):  # the student's base stays where it is
        (models / name).symlink_to(store.model_path(name))
    folder = models / "mpnet-base-v2"
    folder.mkdir()
    tok = wordpiece(str(store.model_path("minilm-l6-v2") / "tokenizer.json"))
    from tokenizers import Tokenizer

    tok = Tokenizer.from_str(tok.to_str())
    tok.add_special_tokens(["<s>", "</s>", "<pad>"])
    tok.save(str(folder / "tokenizer.json"))
    config = MPNetConfig(vocab_size=tok.get_vocab_size(), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                         intermediate_size=64, pad_token_id=tok.token_to_id("<pad>"))
    config.to_json_file(str(folder / "config.json"))
    torch.manual_seed(0)
    model = MPNetModel(config, add_pooling_layer=False)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(folder / "model.safetensors"))
    (folder / "manifest.json").write_text("{}")
    monkeypatch.setenv("PROMPTZIP_MODELS", str(models))
    return folder


@needs_models
def test_the_mpnet_teacher_trains_exports_and_scores_like_torch(tiny_mpnet, tmp_path):
    torch = pytest.importorskip("torch")
    pytest.importorskip("onnx")
    from promptzip.compressors.extract import Scorer
    from promptzip.train.export import export
    from promptzip.train.finetune import TEACHER, build_model, fit, load_wordpiece, windows
    from promptzip.train.labels import Example, words_of

    words, _ = words_of(PARA)
    tok = load_wordpiece(TEACHER)
    q = windows(tok, words, [0.0] * len(words), "Who landed?", 64)[0]
    s, e = tok.token_to_id("<s>"), tok.token_to_id("</s>")
    assert q.ids[0] == s and q.ids[-1] == e and q.ids.count(e) == 3  # <s> q </s></s> words </s>
    labels = [1.0 if w[0].isupper() else 0.0 for w in words]
    examples = [Example("a", "test", words, labels), Example("b", "test", words, labels, "Who landed?")]
    run = tmp_path / "run"
    fit(examples, run, steps=2, batch_size=2, save_every=1, base=TEACHER, freeze=1, bucket=True, log=lambda _: None)
    fit(examples, run, steps=3, batch_size=2, save_every=1, log=lambda _: None)  # resumes with the run's base
    state = torch.load(run / "state.pt", weights_only=False)
    assert state["step"] == 3 and state["base"] == TEACHER
    frozen = [k for k in state["model"] if k.startswith("encoder.embeddings.")]
    model = build_model(dropout=0.0, base=TEACHER)
    assert all(torch.equal(state["model"][k], model.state_dict()[k]) for k in frozen)  # never trained
    model.load_state_dict(state["model"])
    model.eval()
    export(run / "state.pt", tmp_path / "onnx")
    sc = Scorer(tmp_path / "onnx", "fp32", max_len=64, overlap=0)
    assert sc.mpnet
    for query in (None, "Who landed?"):
        plan = sc.plan(words, query)
        ids = plan[0][0]
        with torch.no_grad():
            ref = torch.sigmoid(model(torch.tensor([ids]), torch.ones((1, len(ids)), dtype=torch.long),
                                      torch.zeros((1, len(ids)), dtype=torch.long)))[0].numpy()
        feed = {"input_ids": np.array([ids]), "attention_mask": np.ones((1, len(ids)), dtype=np.int64)}
        if sc.typed:
            feed["token_type_ids"] = np.zeros((1, len(ids)), dtype=np.int64)
        got = sc.sess.run(["probs"], feed)[0][0]
        assert np.abs(ref - got).max() < 1e-4
    p = sc.probs(words, "Who landed?")
    assert p.shape == (len(words),) and ((p > 0) & (p < 1)).all()
    together = sc.probs_many([(words, "Who landed?"), (words[:5], None), ([], None)])  # fp32: padding changes nothing
    assert np.abs(together[0] - p).max() < 1e-5 and np.abs(together[1] - sc.probs(words[:5])).max() < 1e-5
    assert together[2].shape == (0,)


def test_distillation_targets_mix_gold_into_the_teacher_s_and_rank_by_gold():
    torch = pytest.importorskip("torch")
    from promptzip.train.finetune import Window, targets

    w = Window([0], [0], [0], [0.2, 0.9, 0.4], hard=[0.0, 0.0, 1.0])
    target, ranked = targets(w, 0.25)
    assert torch.allclose(target, torch.tensor([0.15, 0.675, 0.55]))
    assert ranked.tolist() == [0.0, 0.0, 1.0]
    plain = Window([0], [0], [0], [0.0, 1.0])
    assert targets(plain, 0.25)[0].tolist() == targets(plain, 0.25)[1].tolist() == [0.0, 1.0]
