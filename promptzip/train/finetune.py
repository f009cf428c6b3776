"""Fine-tuning a bidirectional encoder as a word keep/drop classifier, on CPU, with checkpoints.

Two bases: all-MiniLM-L6-v2 (BERT, 22.7M; the shipped fast model) and all-mpnet-base-v2 (MPNet,
110M; the teacher whose probabilities the fast model is distilled from). MPNet has no segment
ids and joins a question to the text as RoBERTa does (`<s> question </s></s> words </s>`).

The encoder reads words (optionally after a question: `[CLS] question [SEP] words [SEP]`); a
linear head gives one logit per subword; a word's logit is the mean of its subwords' and the
loss is binary cross-entropy against the word's teacher label (a float in [0, 1]). Long
examples are cut into windows of at most `max_len` subwords on word boundaries. Optionally
(`span`), a second head learns where a question's answer starts and ends, as extractive QA
readers do: its loss picks one start word and one end word per window, where the keep head
scores each word on its own.

A run directory holds `state.pt` (weights, optimizer, step, data order, RNG) written every
`save_every` steps and at the end: `fit` on an existing run resumes from its last checkpoint
and reproduces the same data order.
"""

from __future__ import annotations

import json
import math
import random
import re
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..runtime.onnx import encode_text, specials, subword_ids, wordpiece
from ..runtime.store import model_path
from .labels import Example

BASE = "minilm-l6-v2"
TEACHER = "mpnet-base-v2"
MULTI = "multilingual-e5-small"  # the multilingual model's base: its 250k x 384 word embeddings stay fixed
PAUSE = "PAUSE"  # a file of this name in a run folder holds training between steps (benchmarks)


@dataclass
class Window:
    ids: list[int]
    type_ids: list[int]
    word_of: list[int]  # per subword: word index inside the window's label list, -1 for specials/question
    labels: list[float]
    answer: tuple[int, int] | None = None  # with a question: the answer's first and last word in the window
    hard: list[float] | None = None  # gold labels beside a teacher's soft ones (the ranking loss reads them)


def load_wordpiece(base: str = BASE):
    return wordpiece(str(model_path(base) / "tokenizer.json"))


def word_subwords(tok, words: list[str]) -> list[list[int]]:
    """Subword ids of each word (a word with no subwords maps to [UNK])."""

    return subword_ids(tok, words)


def answer_run(labels: list[float] | None) -> tuple[int, int] | None:
    """First and last word of the one run of words labelled 1 (a question-aware example's answer;
    its evidence words are labelled below 1), or None when there is not exactly one."""
    if not labels:
        return None
    pos = np.flatnonzero(np.asarray(labels) >= 1.0)
    if len(pos) == 0 or pos[-1] - pos[0] + 1 != len(pos):
        return None
    return int(pos[0]), int(pos[-1])


def windows(tok, words: list[str], labels: list[float] | None, query: str | None, max_len: int = 256,
            max_query: int = 48, hard: list[float] | None = None) -> list[Window]:
    """Cut one example into windows on word boundaries (no overlap: training). With a question,
    a window holding the whole answer (`answer_run`) records where it is. `hard`: gold labels
    beside soft `labels` (a teacher's); the answer and the ranking loss are read from them."""
    cls, sep, _, mpnet = specials(tok)

    q_ids = encode_text(tok, query)[:max_query] if query else []
    head = ([cls, *q_ids, sep, sep] if mpnet else [cls, *q_ids, sep]) if q_ids else [cls]
    room = max_len - len(head) - 1
    subs = word_subwords(tok, words)
    run = answer_run(hard if hard is not None else labels) if q_ids else None
    out: list[Window] = []
    i = 0
    while i < len(words):
        first = i
        ids, word_of, labs = list(head), [-1] * len(head), []
        while i < len(words) and (len(ids) - len(head) + len(subs[i][:room]) <= room):
            piece = subs[i][:room]
            ids += piece
            word_of += [len(labs)] * len(piece)
            labs.append(labels[i] if labels is not None else 0.0)
            i += 1
        ids.append(sep)
        word_of.append(-1)
        type_ids = [0] * len(head) + [1 if q_ids and not mpnet else 0] * (len(ids) - len(head))
        inside = run is not None and first <= run[0] and run[1] < i
        out.append(Window(ids, type_ids, word_of, labs, (run[0] - first, run[1] - first) if inside else None,
                          list(hard[first:i]) if hard is not None else None))
    return out


def build_model(dropout: float = 0.1, span: bool = False, depth: int | None = None, base: str = BASE):
    """The base encoder (MiniLM's BertModel or MPNet's MPNetModel) with its pretrained weights
    and a fresh linear head (one keep logit per subword); with `span`, a second head gives each
    subword an answer-start and an answer-end logit and `forward` returns (keep logits, span
    logits). `depth`: layers of the encoder when not the base's (a deepened model, `deepen`);
    layers beyond the base's start fresh."""
    import torch
    from safetensors.torch import load_file
    from transformers import BertConfig, BertModel, MPNetConfig, MPNetModel

    folder = model_path(base)
    mpnet = json.loads((folder / "config.json").read_text(encoding="utf-8"))["model_type"] == "mpnet"
    config = (MPNetConfig if mpnet else BertConfig).from_json_file(str(folder / "config.json"))
    base_layers = config.num_hidden_layers
    if depth is not None:
        config.num_hidden_layers = depth

    class Classifier(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.encoder = (MPNetModel if mpnet else BertModel)(config, add_pooling_layer=False)
            self.dropout = torch.nn.Dropout(dropout)
            self.head = torch.nn.Linear(config.hidden_size, 1)
            self.span = torch.nn.Linear(config.hidden_size, 2) if span else None

        def forward(self, input_ids, attention_mask, token_type_ids):
            extra = {} if mpnet else {"token_type_ids": token_type_ids}
            h = self.dropout(self.encoder(input_ids=input_ids, attention_mask=attention_mask,
                                          **extra).last_hidden_state)
            keep = self.head(h).squeeze(-1)
            return keep if self.span is None else (keep, self.span(h))

    model = Classifier()
    state = {k.removeprefix("bert."): v for k, v in load_file(str(folder / "model.safetensors")).items()}
    state = {k: v for k, v in state.items() if not k.startswith("pooler.")}
    missing, unexpected = model.encoder.load_state_dict(state, strict=False)
    missing = [k for k in missing if "position_ids" not in k and layer_of(k) < base_layers]
    unexpected = [k for k in unexpected if "position_ids" not in k and layer_of(k) < config.num_hidden_layers]
    if missing or unexpected:
        raise RuntimeError(f"{base} weights do not match: missing {missing[:3]}, unexpected {unexpected[:3]}")
    return model


def base_depth(base: str = BASE) -> int:
    """Encoder layers of the base weights (MiniLM-L6: 6, MPNet: 12)."""
    return json.loads((model_path(base) / "config.json").read_text(encoding="utf-8"))["num_hidden_layers"]


LAYER = re.compile(r"((?:^|\.)layer\.)(\d+)\.")  # an encoder layer's index inside a parameter name


def layer_of(key: str) -> int:
    """The encoder layer a parameter name belongs to (`encoder.layer.3.…` -> 3), -1 for others."""
    m = LAYER.search(key)
    return int(m.group(2)) if m else -1


def depth_of(state: dict) -> int:
    """Encoder layers of a model state dict."""
    return 1 + max(layer_of(k) for k in state)


def deepen(state: dict, order: list[int]) -> dict:
    """A state dict whose encoder layer i is a copy of `state`'s layer order[i] (progressive
    stacking: `[0, 1, 2, 3, 4, 4, 5, 5]` turns 6 layers into 8); other parameters unchanged."""
    have = depth_of(state)
    if not order or any(not 0 <= i < have for i in order):
        raise ValueError(f"layer order {order} names layers outside 0..{have - 1}")
    out = {k: v for k, v in state.items() if layer_of(k) < 0}
    for new, old in enumerate(order):
        for k, v in state.items():
            if layer_of(k) == old:
                out[LAYER.sub(rf"\g<1>{new}.", k, count=1)] = v.clone()
    return out


def collate(batch: list[Window], pad: int = 0):
    import torch

    width = max(len(w.ids) for w in batch)
    n = len(batch)
    ids = torch.full((n, width), pad, dtype=torch.long)
    mask = torch.zeros((n, width), dtype=torch.long)
    types = torch.zeros((n, width), dtype=torch.long)
    word_of = torch.full((n, width), -1, dtype=torch.long)
    for b, w in enumerate(batch):
        k = len(w.ids)
        ids[b, :k] = torch.tensor(w.ids)
        mask[b, :k] = 1
        types[b, :k] = torch.tensor(w.type_ids)
        word_of[b, :k] = torch.tensor(w.word_of)
    labels = [torch.tensor(w.labels, dtype=torch.float32) for w in batch]
    return ids, mask, types, word_of, labels


def targets(w: Window, gold: float):
    """(cross-entropy target, ranking labels) of a window: its labels; a window with gold labels
    beside a teacher's soft ones learns `gold` x gold + (1 - gold) x teacher, and ranks by gold."""
    import torch

    soft = torch.tensor(w.labels, dtype=torch.float32)
    if w.hard is None:
        return soft, soft
    hard = torch.tensor(w.hard, dtype=torch.float32)
    return gold * hard + (1 - gold) * soft, hard


def word_logits(sub_logits, word_of, n_words: int):
    """Mean subword logit per word of one window (`sub_logits`: subwords, or subwords x k)."""
    import torch

    valid = word_of >= 0
    shape = (n_words, *sub_logits.shape[1:])
    sums = torch.zeros(shape, dtype=sub_logits.dtype).index_add(0, word_of[valid], sub_logits[valid])
    counts = torch.zeros(shape, dtype=sub_logits.dtype).index_add(
        0, word_of[valid], torch.ones_like(sub_logits[valid]))
    return sums / counts.clamp(min=1)


def span_rank_loss(wl, labels):
    """Mean over the runs of words labelled 1 of -log P(run beats the window's words labelled
    0), a run scoring the soft minimum of its word logits."""
    import torch

    pos = labels >= 1.0
    neg = labels <= 0.0
    edge = torch.diff(pos.to(torch.int8), prepend=torch.zeros(1, dtype=torch.int8),
                      append=torch.zeros(1, dtype=torch.int8))
    starts = torch.nonzero(edge == 1).flatten().tolist()
    ends = torch.nonzero(edge == -1).flatten().tolist()
    rest = torch.logsumexp(wl[neg], 0) if bool(neg.any()) else wl.new_tensor(-30.0)
    out = []
    for a, b in zip(starts, ends, strict=True):
        weakest = -torch.logsumexp(-wl[a:b], 0)
        out.append(torch.nn.functional.softplus(rest - weakest))
    return torch.stack(out).mean()


def span_loss(span_logits, word_of, n_words: int, answer: tuple[int, int]):
    """Cross-entropy of the answer's first word among the window's words as a start, plus that
    of its last word as an end, halved (word logits: the mean of their subwords')."""
    import torch

    words = word_logits(span_logits, word_of, n_words)  # words x (start, end)
    return torch.nn.functional.cross_entropy(words.T, torch.tensor(answer))  # the mean of the two


def fit(examples: list[Example], run: Path, steps: int, batch_size: int = 8, lr: float = 5e-5,
        max_len: int = 256, seed: int = 0, save_every: int = 50, threads: int | None = None,
        init: Path | None = None, listwise: float = 0.0, ranking: str = "words", stop: int | None = None,
        span: float = 0.0, deepen_order: list[int] | None = None, base: str = BASE, freeze: int = 0,
        bucket: bool = False, gold: float = 0.0, log=print) -> Path:
    """Train (or resume) a run; returns the path of the final state. `init`: the state of an
    earlier run whose weights a new run starts from (a fresh optimizer and schedule). `stop`: end
    at that step of the `steps`-long schedule (the learning rate still decays over `steps`).
    `listwise` > 0 adds that times a ranking loss: in each window holding words labelled 1, the
    mean over those words of -log softmax(word logits) across the window's words, so the words a
    reader needs must outrank the other candidates of their window (binary cross-entropy alone
    scores each word on its own and lets a model hedge over every name in a paragraph).
    `ranking="spans"` ranks answers instead of words: each run of words labelled 1 scores as its
    weakest word (a soft minimum of their logits) and must outrank the words labelled 0 of its
    window, since an answer survives only when all its words do. `span` > 0 adds a span head
    (`build_model(span=True)`) and that times `span_loss` on each window that holds a question's
    whole answer; a run from `init` without one starts it fresh. `deepen_order`: a new run's `init`
    weights are first stacked to more layers (`deepen`; a resumed run has them already). `base`:
    the pretrained encoder (`BASE`, or `TEACHER` for MPNet). `freeze` > 0 keeps the embeddings and that many lower layers fixed (a large base's
    backward pass then stops early); a resumed run keeps the base and `freeze` it began with. `bucket` orders each run of 64 batches by window length, so
    a batch pads less (the teacher pays per subword). A `PAUSE` file in the run folder holds
    training between steps until it is removed. Examples a teacher labelled (`hard` beside
    `labels`: distillation) learn `gold` x the gold labels + (1 - gold) x the teacher's, and the
    ranking loss ranks by the gold labels."""
    import torch

    if threads:
        torch.set_num_threads(threads)
    run.mkdir(parents=True, exist_ok=True)
    state_path = run / "state.pt"
    state = torch.load(state_path, weights_only=False) if state_path.exists() else None
    if state is not None:  # a resumed run keeps the base and frozen layers it began with
        base, freeze = state.get("base", BASE), state.get("freeze", freeze)
    tok = load_wordpiece(base)
    pad = specials(tok)[2]
    wins: list[Window] = []
    for ex in examples:
        wins += windows(tok, ex.words, ex.labels, ex.query, max_len, hard=ex.hard)
    order_rng = random.Random(seed)
    torch.manual_seed(seed)
    start = torch.load(init, weights_only=False)["model"] if state is None and init is not None else None
    if start is not None and deepen_order:
        start = deepen(start, deepen_order)
    weights = state["model"] if state is not None else start
    model = build_model(span=span > 0, depth=depth_of(weights) if weights is not None else None, base=base)
    for name, param in model.encoder.named_parameters():
        if freeze and (name.startswith("embeddings.") or 0 <= layer_of(name) < freeze):
            param.requires_grad = False
        if base == MULTI and name == "embeddings.word_embeddings.weight":
            # 96M of its 117M parameters: fixed, so no gradient, no AdamW state (1.1 GB), and the
            # shipped model can read them from the pinned base instead of carrying them
            param.requires_grad = False
    opt = torch.optim.AdamW([q for q in model.parameters() if q.requires_grad], lr=lr, weight_decay=0.01)
    warmup = max(1, steps // 20)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warmup) * max(0.0, 0.5 * (1 + math.cos(math.pi * min(s, steps) / steps))))
    step, losses, order = 0, [], []
    if state is not None:
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["opt"])
        sched.load_state_dict(state["sched"])
        step, losses, order = state["step"], state["losses"], state["order"]
        order_rng.setstate(state["order_rng"])
        torch.set_rng_state(state["torch_rng"])
        log(f"resumed {run} at step {step}")
    elif init is not None:
        missing, unexpected = model.load_state_dict(start, strict=False)
        if unexpected or any(not k.startswith("span.") for k in missing):
            raise RuntimeError(f"{init} does not match the model: missing {missing[:3]}, unexpected {unexpected[:3]}")
        log(f"{run}: weights from {init}" + (f", layers stacked as {deepen_order}" if deepen_order else "")
            + (" (span head new)" if missing else ""))
    end = min(steps, stop) if stop else steps  # a finished run only (re)writes its train.json

    def save() -> None:
        tmp = run / "state.pt.tmp"
        torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "sched": sched.state_dict(),
                    "step": step, "losses": losses, "order": order, "order_rng": order_rng.getstate(),
                    "torch_rng": torch.get_rng_state(), "steps": steps, "base": base, "freeze": freeze}, tmp)
        tmp.replace(state_path)

    model.train()
    t0, first = time.perf_counter(), step
    while step < end:
        while (run / PAUSE).exists():
            time.sleep(5)
        if len(order) < batch_size:
            fresh = list(range(len(wins)))
            order_rng.shuffle(fresh)
            if bucket:
                chunk = 64 * batch_size
                fresh = [i for c in range(0, len(fresh), chunk)
                         for i in sorted(fresh[c:c + chunk], key=lambda i: len(wins[i].ids))]
                groups = [fresh[c:c + batch_size] for c in range(0, len(fresh), batch_size)]
                order_rng.shuffle(groups)
                fresh = [i for g in groups for i in g]
            order += fresh
        batch = [wins[i] for i in order[:batch_size]]
        del order[:batch_size]
        ids, mask, types, word_of, labels = collate(batch, pad)
        logits = model(ids, mask, types)
        logits, spans = logits if span > 0 else (logits, None)
        loss = 0.0
        n = 0
        ranks, located = [], []
        for b in range(len(batch)):
            wl = word_logits(logits[b], word_of[b], len(labels[b]))
            if spans is not None and batch[b].answer is not None:
                located.append(span_loss(spans[b], word_of[b], len(labels[b]), batch[b].answer))
            target, ranked = targets(batch[b], gold)
            loss = loss + torch.nn.functional.binary_cross_entropy_with_logits(wl, target, reduction="sum")
            n += len(labels[b])
            pos = ranked >= 1.0 if listwise > 0 else None
            if pos is not None and bool(pos.any()):
                ranks.append(span_rank_loss(wl, ranked) if ranking == "spans"
                             else -torch.log_softmax(wl, 0)[pos].mean())
        loss = loss / max(n, 1)
        if ranks:
            loss = loss + listwise * torch.stack(ranks).mean()
        if located:
            loss = loss + span * torch.stack(located).mean()
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        step += 1
        losses.append(loss.item())
        if step % 10 == 0:
            rate = (step - first) / (time.perf_counter() - t0)  # this process's steps (a resumed run's too)
            log(f"step {step}/{steps} loss {np.mean(losses[-10:]):.4f} ({rate:.2f} steps/s)")
        if step % save_every == 0 or step == end:
            save()
    (run / "train.json").write_text(json.dumps({"run": run.name, "init": str(init) if init else None,
                                                "steps": steps, "batch_size": batch_size, "lr": lr,
                                                "max_len": max_len, "seed": seed, "listwise": listwise,
                                                "ranking": ranking, "stop": stop, "span": span,
                                                "deepen": deepen_order or None, "layers": model.encoder.config.num_hidden_layers,
                                                "base": base, "freeze": freeze, "bucket": bucket, "gold": gold,
                                                "windows": len(wins),
                                                "examples": len(examples),
                                                "final_loss": float(np.mean(losses[-50:]))}, indent=1))
    return state_path
