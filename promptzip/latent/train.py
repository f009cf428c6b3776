"""Training the latent encoder on CPU: reconstruction and continuation through the frozen
SmolLM2, checkpointed so that runs resume across sessions.

Data: chunks of `chunk_tokens` SmolLM2 tokens cut from ../shared/corpora/text (WikiText-2
*valid* articles, Pride and Prejudice, the KJV) and the SQuAD v1 training contexts; the held-out
split is WikiText-2 *test* (never trained on). Each step takes one K from the config's list
(4x, 8x, 16x: chunk tokens / K) for the whole batch; 3 of 4 examples are reconstruction
("Repeat the text above.", target = the chunk), 1 of 4 continuation (target = the next 32
tokens). Loss: cross-entropy on the target tokens only; the decoder and MiniLM stay frozen.

A run folder holds `adapter.safetensors` (the trainable tensors only, < 4 MB: committable),
`state.json` (step, config, data seed), `curve.jsonl` (one line per step: loss, K, seconds) and
`eval.jsonl` (held-out reconstruction precision and token exact match per K, every
`eval_every` steps); `optimizer.pt` is a local convenience (if it is missing the optimizer
starts fresh from the saved weights and step, so committed files alone resume a run).
"""

from __future__ import annotations

import json
import random
import re
import sys
import time
from contextlib import nullcontext
from pathlib import Path

import torch

from ..metrics import precision, token_match
from .model import ASK, CONTINUE, HEAD, REPEAT, LatentConfig, build, load_adapter, load_bases

PAUSE = "PAUSE"  # a file of this name in the run folder holds training between steps

SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "corpora"
TRAIN_FILES = ("text/wikitext2_valid_articles.jsonl", "text/pride_and_prejudice_chapters.jsonl",
               "text/kjv_chapters.jsonl", "qa/squad_v1_train.jsonl")
EVAL_FILE = "text/wikitext2_test_articles.jsonl"
NEXT_TOKENS = 32
QA_TRAIN = "qa/squad_v1_train.jsonl"
QA_EVAL = "qa/squad_v2_half_dev.jsonl"  # answerable rows; never trained on
QA_MAX_TOKENS = 192  # contexts up to 3 chunks, so that a QA batch costs about what a reconstruction batch does


def clean(text: str) -> str:
    """Undo WikiText's tokenization (" @-@ ", " , ") so chunks read like ordinary prose."""
    text = re.sub(r" @(.)@ ", r"\1", text)
    text = re.sub(r" ([,.;:!?)'])", r"\1", text)
    text = re.sub(r"([(]) ", r"\1", text)
    return re.sub(r"[ \t]+", " ", text)


def read_texts(rel: str, limit: int | None = None) -> list[str]:
    out, seen = [], set()
    with open(SHARED / rel, encoding="utf-8") as f:
        for line in f:
            rec = json.loads(line)
            text = rec.get("text") or rec.get("context") or ""
            if text and text not in seen:
                seen.add(text)
                out.append(clean(text))
            if limit and len(out) >= limit:
                break
    return out


def chunk_ids(ltok, texts: list[str], n: int, with_next: bool = True) -> list[tuple[list[int], list[int]]]:
    """(chunk of n tokens, the next NEXT_TOKENS tokens) cut from each text."""
    out = []
    for text in texts:
        ids = ltok(text, add_special_tokens=False)["input_ids"]
        for lo in range(0, len(ids) - n + 1, n):
            nxt = ids[lo + n: lo + n + NEXT_TOKENS]
            if with_next and len(nxt) < 8:
                nxt = []
            out.append((ids[lo:lo + n], nxt))
    return out


def qa_items(ltok, rel: str, limit: int | None = None) -> list[tuple[list[int], list[int], list[int], list[str]]]:
    """(context ids, question tail ids, first answer's ids, all answers) for SQuAD rows whose
    context is at most QA_MAX_TOKENS decoder tokens."""
    out, ctx_ids = [], {}
    with open(SHARED / rel, encoding="utf-8") as f:
        for line in f:
            rec = json.loads(line)
            answers = [a["text"] if isinstance(a, dict) else a for a in rec.get("answers") or []]
            if not answers:
                continue
            ctx = rec["context"]
            if ctx not in ctx_ids:
                ctx_ids[ctx] = ltok(ctx, add_special_tokens=False)["input_ids"]
            if len(ctx_ids[ctx]) > QA_MAX_TOKENS:
                continue
            tail = ltok(ASK.format(q=rec["question"].strip()), add_special_tokens=False)["input_ids"]
            out.append((ctx_ids[ctx], tail, ltok(answers[0].strip(), add_special_tokens=False)["input_ids"], answers))
            if limit and len(out) >= limit:
                break
    return out


def held_out(ltok, chunk_tokens: int, n: int) -> list[list[int]]:
    """The first `n` held-out chunks (WikiText-2 test) in a fixed seeded order: what training
    evaluates on, and what the probe and `promptzip.latent.fidelity` measure."""
    chunks = [c for c, _ in chunk_ids(ltok, read_texts(EVAL_FILE), chunk_tokens, with_next=False)]
    random.Random(1).shuffle(chunks)
    return chunks[:n]


def reading(enc):
    """The decoder reading latents: the encoder's `reading()` (its decoder adapter on, if any)."""
    return enc.reading() if hasattr(enc, "reading") else nullcontext()


class Batcher:
    """Builds encoder and decoder tensors for a list of (chunk, next) pairs."""

    def __init__(self, btok, ltok, lm, cfg: LatentConfig) -> None:
        self.btok, self.ltok, self.lm, self.cfg = btok, ltok, lm, cfg
        self.emb = lm.get_input_embeddings()
        self.head = ltok(HEAD, add_special_tokens=False)["input_ids"]
        self.repeat = ltok(REPEAT, add_special_tokens=False)["input_ids"]
        self.cont = ltok(CONTINUE, add_special_tokens=False)["input_ids"]
        self.end = ltok("<|im_end|>", add_special_tokens=False)["input_ids"]

    def encoder_inputs(self, chunks: list[list[int]]):
        if self.cfg.encoder == "smollm2":  # the decoder's own tokens, left-padded (memory tokens go last)
            width = max(len(c) for c in chunks)
            pad = self.end[0]
            ids = torch.tensor([[pad] * (width - len(c)) + list(c) for c in chunks])
            mask = torch.tensor([[0] * (width - len(c)) + [1] * len(c) for c in chunks])
            return ids, mask
        texts = [self.ltok.decode(c) for c in chunks]
        enc = self.btok(texts, padding=True, truncation=True, max_length=self.cfg.max_subwords, return_tensors="pt")
        return enc["input_ids"], enc["attention_mask"]

    def prefix(self, latents: torch.Tensor, tail: list[int]) -> torch.Tensor:
        """HEAD + latents + tail as input embeddings: (B, len, 576)."""
        b = latents.shape[0]
        h = self.emb(torch.tensor(self.head)).unsqueeze(0).expand(b, -1, -1)
        t = self.emb(torch.tensor(tail)).unsqueeze(0).expand(b, -1, -1)
        return torch.cat([h, latents, t], dim=1)

    def loss(self, enc, samples: list[tuple[list[int], list[int]]], k: int, cont_mask: list[bool]) -> torch.Tensor:
        ids, mask = self.encoder_inputs([c for c, _ in samples])
        latents = enc(ids, mask, k)
        rows = []
        for i, ((chunk, nxt), cont) in enumerate(zip(samples, cont_mask, strict=True)):
            tail, target = (self.cont, nxt) if cont and nxt else (self.repeat, chunk)
            rows.append((self.prefix(latents[i:i + 1], tail)[0], target))
        return self.target_loss(enc, rows)

    def qa_loss(self, enc, items: list[tuple[list[int], list[int], list[int]]], k: int) -> torch.Tensor:
        """The QA stage: each (context ids, question tail ids, answer ids) has its context cut into
        chunks, every chunk encoded to k latents, and the frozen decoder reads all of them followed
        by the question (`ASK`) with the answer as the target: what `ask --direct` does."""
        n = self.cfg.chunk_tokens
        pieces, owner = [], []
        for i, (ctx, _, _) in enumerate(items):
            for lo in range(0, len(ctx), n):
                pieces.append(ctx[lo:lo + n])
                owner.append(i)
        ids, mask = self.encoder_inputs(pieces)
        latents = enc(ids, mask, k)
        rows = []
        for i, (_, tail, answer) in enumerate(items):
            mine = latents[[j for j, o in enumerate(owner) if o == i]].reshape(1, -1, latents.shape[-1])
            rows.append((self.prefix(mine, tail)[0], answer))
        return self.target_loss(enc, rows)

    def target_loss(self, enc, rows: list[tuple[torch.Tensor, list[int]]]) -> torch.Tensor:
        """Cross-entropy of each row's target (then <|im_end|>) after its prefix embeddings,
        right-padded into one batch through the frozen decoder."""
        xs, labels = [], []
        for pre, target in rows:
            tgt = torch.tensor(target + self.end)
            xs.append(torch.cat([pre, self.emb(tgt)], dim=0))
            labels.append(torch.cat([torch.full((pre.shape[0],), -100), tgt]))
        width = max(r.shape[0] for r in xs)
        x = torch.zeros(len(xs), width, xs[0].shape[1])
        y = torch.full((len(xs), width), -100, dtype=torch.long)
        m = torch.zeros(len(xs), width, dtype=torch.long)
        for i, (r, lab) in enumerate(zip(xs, labels, strict=True)):
            x[i, :r.shape[0]] = r
            y[i, :r.shape[0]] = lab
            m[i, :r.shape[0]] = 1
        with reading(enc):
            return self.lm(inputs_embeds=x, attention_mask=m, labels=y).loss

    @torch.inference_mode()
    def reconstruct(self, enc, chunks: list[list[int]], k: int, max_new: int | None = None) -> list[list[int]]:
        """Greedy decoding from the latents with the repeat instruction."""
        ids, mask = self.encoder_inputs(chunks)
        latents = enc(ids, mask, k)
        x = self.prefix(latents, self.repeat)
        with reading(enc):
            out = self.lm.generate(inputs_embeds=x, attention_mask=torch.ones(x.shape[:2], dtype=torch.long),
                                   max_new_tokens=max_new or self.cfg.chunk_tokens + 8, do_sample=False,
                                   eos_token_id=self.end[0], pad_token_id=self.end[0])
        return [[t for t in row.tolist() if t != self.end[0]] for row in out]


def evaluate(batcher: Batcher, enc, chunks: list[list[int]], k: int) -> dict:
    enc.eval()
    prec, em = [], []
    for lo in range(0, len(chunks), 8):
        part = chunks[lo:lo + 8]
        for ref, got in zip(part, batcher.reconstruct(enc, part, k), strict=True):
            prec.append(precision(batcher.ltok.decode(ref), batcher.ltok.decode(got)))
            em.append(token_match(ref, got))
    enc.train()
    return {"k": k, "ratio": batcher.cfg.chunk_tokens / k, "n": len(chunks),
            "precision": sum(prec) / len(prec), "token_em": sum(em) / len(em)}


def evaluate_qa(batcher: Batcher, enc, items, k: int) -> dict:
    """F1 of the decoder's greedy answers read from the latents (`ask --direct`) on held-out rows."""
    from ..metrics import f1

    enc.eval()
    scores = []
    with torch.inference_mode():
        for ctx, tail, _, answers in items:
            n = batcher.cfg.chunk_tokens
            pieces = [ctx[lo:lo + n] for lo in range(0, len(ctx), n)]
            lat = enc(*batcher.encoder_inputs(pieces), k).reshape(1, -1, batcher.emb.weight.shape[1])
            x = batcher.prefix(lat, tail)
            with reading(enc):
                out = batcher.lm.generate(inputs_embeds=x, attention_mask=torch.ones(x.shape[:2], dtype=torch.long),
                                          max_new_tokens=24, do_sample=False, eos_token_id=batcher.end[0],
                                          pad_token_id=batcher.end[0])
            scores.append(f1(batcher.ltok.decode(out[0], skip_special_tokens=True), answers))
    enc.train()
    return {"k": k, "task": "qa", "n": len(items), "f1": sum(scores) / max(1, len(scores))}


def save(run: Path, enc, opt, step: int, cfg: LatentConfig, extra: dict) -> None:
    from safetensors.torch import save_file

    run.mkdir(parents=True, exist_ok=True)
    tensors = {n: p.detach().contiguous() for n, p in enc.trainable().items()}
    save_file(tensors, str(run / "adapter.safetensors.tmp"), metadata={"step": str(step)})
    (run / "adapter.safetensors.tmp").replace(run / "adapter.safetensors")
    torch.save(opt.state_dict(), run / "optimizer.pt.tmp")
    (run / "optimizer.pt.tmp").replace(run / "optimizer.pt")
    state = {"step": step, "config": cfg.to_dict(), **extra}
    (run / "state.json").write_text(json.dumps(state, indent=2) + "\n", encoding="utf-8")


def fit(run: Path, steps: int, cfg: LatentConfig | None = None, batch: int = 8, lr: float = 1e-3,
        eval_every: int = 200, save_every: int = 50, eval_chunks: int = 16, threads: int | None = None,
        seed: int = 0, train_limit: int | None = None, log=print, continuation: float = 0.25,
        command: str | None = None, qa: float = 0.0, init_from: Path | None = None) -> Path:
    """Train (or resume) the run in `run` for `steps` more steps. A share `qa` of the steps are QA
    steps (half a batch of SQuAD rows: context latents + question -> answer); the rest are
    reconstruction, with a share `continuation` of their samples continuing the text instead."""
    if threads:
        torch.set_num_threads(threads)
    run.mkdir(parents=True, exist_ok=True)
    state_file = run / "state.json"
    state = json.loads(state_file.read_text()) if state_file.is_file() else {}
    if state:
        c = state["config"]
        cfg = LatentConfig(**{**c, "ks": tuple(c["ks"])})
    cfg = cfg or LatentConfig()
    bert, btok, lm, ltok = load_bases()
    enc = build(cfg, bert, lm)
    start = int(state.get("step", 0))
    opt = torch.optim.AdamW(list(enc.trainable().values()), lr=lr, weight_decay=0.0)
    if start:
        load_adapter(enc, run / "adapter.safetensors")
        if (run / "optimizer.pt").is_file():
            opt.load_state_dict(torch.load(run / "optimizer.pt", weights_only=True))
        for name in ("curve.jsonl", "eval.jsonl"):  # steps after the last save were lost: drop their lines
            f = run / name
            if f.is_file():
                kept = [ln for ln in f.read_text(encoding="utf-8").splitlines() if ln and json.loads(ln)["step"] <= start]
                f.write_text("".join(ln + "\n" for ln in kept), encoding="utf-8")
        log(f"resuming {run} at step {start}")
    elif init_from:  # a fresh run warm-started from another run's tensors (those with the same names)
        from safetensors.torch import load_file

        given = load_file(str(Path(init_from) / "adapter.safetensors"))
        params = enc.trainable()
        with torch.no_grad():
            for n in set(params) & set(given):
                params[n].copy_(given[n])
            # memory tokens of a rate the source lacks (8 of 64 from a 16-of-64 run): evenly spaced
            # rows of the source's nearest larger set, so the new rate starts where the old one reads
            sized: dict[str, list[int]] = {}  # group -> the Ks the source has (memory.16: memory -> [16])
            for m in given:
                group, _, k = m.rpartition(".")
                if k.isdigit():
                    sized.setdefault(group, []).append(int(k))
            for n in sorted(set(params) - set(given)):
                group, _, k = n.rpartition(".")
                larger = sorted(x for x in sized.get(group, []) if k.isdigit() and x > int(k))
                if larger:
                    src = given[f"{group}.{larger[0]}"]
                    params[n].copy_(src[torch.linspace(0, len(src) - 1, int(k)).round().long()])
                    log(f"{n} starts from {k} evenly spaced rows of {group}.{larger[0]}")
        log(f"started from {init_from}: {len(set(params) & set(given))} of {len(params)} tensors")
    texts = [t for rel in TRAIN_FILES for t in read_texts(rel, train_limit)]
    data = chunk_ids(ltok, texts, cfg.chunk_tokens)
    if not start and not init_from and cfg.readout == "soft":  # standardization starts at the states' statistics
        pick = random.Random(seed).sample(range(len(data)), min(32, len(data)))
        enc.init_stats(torch.tensor([data[i][0] for i in pick]))
    held = held_out(ltok, cfg.chunk_tokens, eval_chunks)
    qa_train = qa_items(ltok, QA_TRAIN, train_limit or 20000) if qa > 0 else []
    qa_held = qa_items(ltok, QA_EVAL, eval_chunks) if qa > 0 else []
    log(f"{len(data)} training chunks of {cfg.chunk_tokens} tokens, {len(held)} held-out; "
        f"{sum(p.numel() for p in enc.trainable().values())} trainable parameters")
    batcher = Batcher(btok, ltok, lm, cfg)
    enc.train()
    curve = open(run / "curve.jsonl", "a", encoding="utf-8")  # noqa: SIM115
    evals = open(run / "eval.jsonl", "a", encoding="utf-8")  # noqa: SIM115
    seconds = float(state.get("seconds", 0.0))
    phase = {"from_step": start + 1, "lr": lr, "qa": qa, "continuation": continuation,
             "command": command or ""}
    phases = [p for p in state.get("phases", []) if p["from_step"] <= start] + [phase]
    warm = 50
    for step in range(start, start + steps):
        while (run / PAUSE).exists():  # held between steps while something timing-sensitive runs
            time.sleep(5)
        rng = random.Random(seed * 1_000_003 + step)
        k = cfg.ks[step % len(cfg.ks)]
        task = "qa" if qa_train and rng.random() < qa else "rec"
        samples = [data[rng.randrange(len(data))] for _ in range(batch)]
        cont = [rng.random() < continuation for _ in samples]  # the rest: "Repeat the text above."
        for g in opt.param_groups:
            g["lr"] = lr * min(1.0, (step + 1) / warm)
        t0, c0 = time.perf_counter(), time.process_time()
        if task == "qa":
            loss = batcher.qa_loss(enc, [qa_train[rng.randrange(len(qa_train))][:3] for _ in range(max(1, batch // 2))], k)
        else:
            loss = batcher.loss(enc, samples, k, cont)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(list(enc.trainable().values()), 1.0)
        opt.step()
        dt, cpu = time.perf_counter() - t0, time.process_time() - c0
        seconds += cpu / max(1, torch.get_num_threads())  # core-seconds / threads: pauses do not count
        curve.write(json.dumps({"step": step + 1, "k": k, "task": task, "loss": round(float(loss.detach()), 4), "seconds": round(dt, 2),
                                "cpu_seconds": round(cpu, 2), "threads": torch.get_num_threads()}) + "\n")
        curve.flush()
        if (step + 1) % 10 == 0:
            log(f"step {step + 1} k={k} loss {float(loss):.3f} ({dt:.1f} s)")
        if (step + 1) % save_every == 0 or step + 1 == start + steps:
            save(run, enc, opt, step + 1, cfg, {"seconds": seconds, "lr": lr, "batch": batch, "continuation": continuation,
                                                "qa": qa, "command": state.get("command") or command, "phases": phases,
                                                "init_from": str(init_from) if init_from else state.get("init_from")})
        if (step + 1) % eval_every == 0 or step + 1 == start + steps:
            for kk in cfg.ks:
                res = {"step": step + 1, "cpu_hours": round(seconds / 3600, 3), **evaluate(batcher, enc, held, kk)}
                evals.write(json.dumps(res) + "\n")
                evals.flush()
                log(f"eval step {step + 1}: {kk} latents ({res['ratio']:.0f}x) precision {res['precision']:.3f} "
                    f"token EM {res['token_em']:.3f}")
                if qa_held:
                    res = {"step": step + 1, "cpu_hours": round(seconds / 3600, 3), **evaluate_qa(batcher, enc, qa_held, kk)}
                    evals.write(json.dumps(res) + "\n")
                    evals.flush()
                    log(f"eval step {step + 1}: ask --direct F1 {res['f1']:.3f} on {res['n']} held-out SQuAD rows")
    curve.close()
    evals.close()
    return run


def main(argv: list[str] | None = None) -> None:
    import argparse

    ap = argparse.ArgumentParser(description="Train the latent encoder (resumes a run folder).")
    ap.add_argument("run", type=Path)
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--readout", default=None, choices=("pool", "query", "memory", "soft"),
                    help="how states become latents (default: pool for minilm, soft for smollm2)")
    ap.add_argument("--encoder", default="minilm", choices=("minilm", "smollm2"),
                    help="minilm: MiniLM + projector (the shipped encoder); smollm2: SmolLM2 itself with LoRA "
                    "and memory tokens (ICAE)")
    ap.add_argument("--lora-rank", type=int, default=8)
    ap.add_argument("--ks", default="16,8,4")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--eval-every", type=int, default=200)
    ap.add_argument("--eval-chunks", type=int, default=16)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--train-limit", type=int, default=None)
    ap.add_argument("--continuation", type=float, default=0.25,
                    help="share of samples trained to continue the text rather than repeat it")
    ap.add_argument("--decoder-lora", type=int, default=0,
                    help="rank of a decoder adapter used only while reading latents (0: the decoder stays frozen)")
    ap.add_argument("--init-from", type=Path, default=None,
                    help="start a fresh run from another run's tensors (those with the same names)")
    ap.add_argument("--qa", type=float, default=0.0,
                    help="share of steps that are QA steps (context latents + question -> answer, SQuAD v1 train)")
    a = ap.parse_args(argv)
    readout = a.readout or ("soft" if a.encoder == "smollm2" else "pool")
    if (a.encoder == "smollm2") != (readout in ("memory", "soft")):
        ap.error(f"--readout {readout} does not go with --encoder {a.encoder}")
    cfg = LatentConfig(readout=readout, encoder=a.encoder,
                       lora_rank=a.lora_rank, decoder_lora=a.decoder_lora, ks=tuple(int(x) for x in a.ks.split(",")))
    fit(a.run, a.steps, cfg, a.batch, a.lr, a.eval_every, eval_chunks=a.eval_chunks, threads=a.threads,
        train_limit=a.train_limit, continuation=a.continuation, qa=a.qa, init_from=a.init_from,
        log=lambda m: print(m, flush=True), command="python -m promptzip.latent.train " + " ".join(argv if argv is not None else sys.argv[1:]))


if __name__ == "__main__":
    main()
