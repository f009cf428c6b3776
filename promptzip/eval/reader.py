"""The local reader: SmolLM2-135M-Instruct (torch on CPU; bfloat16 where the CPU computes in it,
float32 elsewhere: `runtime.lm.resolve_dtype`) reading a context.

Two signals: the answer it generates (EM/F1 against the gold answers; weak for a 135M model)
and the mean log-likelihood of the gold answer's tokens given the context, a continuous signal
that still separates good from bad contexts with a small reader. Contexts longer than
`max_context_tokens` are cut to their head (the same cut for original and compressed text);
gold answers are scored on their first `max_answer_tokens` tokens.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import UsageError
from ..runtime.lm import LM_NAME as MODEL
from ..runtime.lm import load_causal_lm


class Reader:
    def __init__(self, path: Path | None = None, max_context_tokens: int = 2048,
                 max_answer_tokens: int = 64, dtype: str = "auto") -> None:
        import torch

        self.name = MODEL
        self._torch = torch
        self.tok, self.model = load_causal_lm(dtype, str(path) if path else None)
        self.max_context_tokens = max_context_tokens
        self.max_answer_tokens = max_answer_tokens

    def _prompt(self, context: str, question: str | None) -> list[int]:
        ids = self.tok(context, add_special_tokens=False).input_ids
        if len(ids) > self.max_context_tokens:
            context = self.tok.decode(ids[: self.max_context_tokens])
        if question:
            user = (f"Context:\n{context}\n\nQuestion: {question}\n"
                    "Answer with a short phrase from the context.")
        else:
            user = f"Text:\n{context}\n\nSummarize the text."
        enc = self.tok.apply_chat_template([{"role": "user", "content": user}], add_generation_prompt=True,
                                           tokenize=True, return_dict=True)
        return list(enc["input_ids"])

    def answer_logprob(self, context: str, question: str | None, answer: str) -> float:
        """Mean log-probability per token of `answer` after the prompt."""
        torch = self._torch
        prompt = self._prompt(context, question)
        target = self.tok(answer, add_special_tokens=False).input_ids[: self.max_answer_tokens]
        if not target:
            return 0.0
        ids = torch.tensor([prompt + target])
        with torch.inference_mode():
            logits = self.model(ids).logits[0, len(prompt) - 1 : -1].float()
        logp = torch.log_softmax(logits, dim=-1)
        picked = logp[torch.arange(len(target)), torch.tensor(target)]
        return float(picked.mean())

    def answer_logprobs(self, contexts: list[str], question: str | None, answer: str,
                        batch_size: int = 16) -> list[float]:
        """`answer_logprob` for several contexts, batched (right padding)."""
        torch = self._torch
        target = self.tok(answer, add_special_tokens=False).input_ids[: self.max_answer_tokens]
        if not target:
            return [0.0] * len(contexts)
        out: list[float] = []
        for lo in range(0, len(contexts), batch_size):
            prompts = [self._prompt(c, question) for c in contexts[lo:lo + batch_size]]
            seqs = [p + target for p in prompts]
            width = max(map(len, seqs))
            pad = self.tok.eos_token_id
            ids = torch.tensor([s + [pad] * (width - len(s)) for s in seqs])
            mask = torch.tensor([[1] * len(s) + [0] * (width - len(s)) for s in seqs])
            with torch.inference_mode():
                logits = self.model(ids, attention_mask=mask).logits.float()
            tgt = torch.tensor(target)
            for b, p in enumerate(prompts):
                logp = torch.log_softmax(logits[b, len(p) - 1 : len(p) - 1 + len(target)], dim=-1)
                out.append(float(logp[torch.arange(len(target)), tgt].mean()))
        return out

    def generate_many(self, contexts: list[str], question: str | None, max_new_tokens: int = 16,
                      batch_size: int = 16, style: str = "span") -> list[str]:
        """`generate` for several contexts, batched (left padding, greedy)."""
        _spans_only(style)
        torch = self._torch
        out: list[str] = []
        for lo in range(0, len(contexts), batch_size):
            prompts = [self._prompt(c, question) for c in contexts[lo:lo + batch_size]]
            width = max(map(len, prompts))
            pad = self.tok.eos_token_id
            ids = torch.tensor([[pad] * (width - len(p)) + p for p in prompts])
            mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts])
            with torch.inference_mode():
                gen = self.model.generate(ids, attention_mask=mask, max_new_tokens=max_new_tokens,
                                          do_sample=False, pad_token_id=pad)
            for row in gen[:, width:]:
                text = self.tok.decode(row, skip_special_tokens=True)
                out.append(text.strip().split("\n")[0].strip())
        return out

    def generate(self, context: str, question: str | None, max_new_tokens: int = 16, style: str = "span") -> str:
        _spans_only(style)
        torch = self._torch
        prompt = self._prompt(context, question)
        with torch.inference_mode():
            out = self.model.generate(torch.tensor([prompt]), max_new_tokens=max_new_tokens,
                                      do_sample=False, pad_token_id=self.tok.eos_token_id)
        text = self.tok.decode(out[0, len(prompt):], skip_special_tokens=True)
        return text.strip().split("\n")[0].strip()


def _spans_only(style: str) -> None:
    if style != "span":
        raise UsageError(f"SmolLM2-135M cannot work {style!r} rows out (it answers nothing right even with spans)",
                         "Read them with --reader-model qwen2.5-coder-0.5b-instruct or --reader-endpoint URL.")
