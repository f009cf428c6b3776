"""A reader behind any OpenAI-compatible endpoint, and the local reader that can answer.

`ChatReader` asks `POST {base}/chat/completions` each question over each (compressed) context,
greedy, with the frozen prompt below, and takes the first line of the reply as the answer (EM /
F1 under SQuAD normalization in `metrics.py`). Requests run `concurrency` at a time, with the
rewrite backend's retries (`runtime/endpoint.py`) and completion cache (`runtime/cache.py`), so
a resumed eval asks nothing twice.

Rows of style `cot` (GSM8K: the context is the worked examples, the question a new problem) are
asked to reason step by step and end with "The answer is N"; the number after the last "answer
is" (else the last number) is the answer, compared as EM. They have no log-likelihood.

The gold answer's log-likelihood needs the server to score text it did not generate: the
legacy `POST {base}/completions` with `echo` and `logprobs` (vLLM and OpenAI's older models
do; llama.cpp's server refuses `echo`). The reader asks once; where the server refuses or
returns no prompt log-probabilities, `ll_answer` stays empty (None) for the whole run, never
zero. That prompt is plain text (no chat template: the server applies none to `/completions`),
the same for every context, so differences between methods stay comparable.

`local_reader(name)` serves a prepared GGUF (`promptzip models prepare NAME`) with llama.cpp's
prebuilt server (`xllamacpp`) on a loopback port for the reader's lifetime.

The prompt is part of the instrument. It was chosen on the SQuAD 1.1 *training* split (40 rows
drawn with a fixed seed) among six candidates with Qwen2.5-Coder-0.5B (EM 0.275-0.350; this one,
a system line and one worked example, had the best EM, 0.350, F1 0.508; the figures are in
BENCHMARKS.md) and is frozen: changing it
changes `PROMPT_VERSION`, and with it the reader's name, so checkpointed rows are measured again.
"""

from __future__ import annotations

import contextlib
import re
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

from ..runtime.cache import CompletionCache
from ..runtime.endpoint import EndpointError, EndpointGenerator, api_url
from ..runtime.llama_server import LOCAL_MODELS, LocalServer
from ..runtime.store import model_path

PROMPT_VERSION = "1"
SYSTEM = ("You answer questions about a text. Reply with the shortest span of the text that answers the "
          "question, copied exactly, and nothing else.")
# One worked example (written for this prompt, not taken from any dataset) shows the expected
# shape of an answer: a span, not a sentence.
EXAMPLE_TEXT = ("The Millbrook ferry began service in 1932 and carried up to 40 cars per crossing. "
                "It was replaced in 1978 by a toll bridge designed by the engineer Ada Forsyth.")
EXAMPLE = [{"role": "user", "content": f"Text:\n{EXAMPLE_TEXT}\n\nQuestion: Who designed the bridge that "
            "replaced the ferry?"},
           {"role": "assistant", "content": "Ada Forsyth"}]
MAX_ANSWER_TOKENS = 32
UNREACHED = (None, 401, 403, 407, 429)  # failures that say nothing about scoring given text
LOCAL = LOCAL_MODELS


COT_SYSTEM = ("Solve the problem. Reason step by step as the worked examples do, and end with a line "
              "'The answer is N.' where N is a number.")
COT_MAX_TOKENS = 320
_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?")
_ANSWER_IS = re.compile(r"answer is[^\d-]*(-?\d[\d,]*(?:\.\d+)?)", re.IGNORECASE)


def messages(context: str, question: str | None, style: str = "span") -> list[dict]:
    if style == "cot":  # the (compressed) worked examples, then the problem
        return [{"role": "system", "content": COT_SYSTEM},
                {"role": "user", "content": f"{context}\n\nQuestion: {question}\nLet's think step by step"}]
    if question:
        return [{"role": "system", "content": SYSTEM}, *EXAMPLE,
                {"role": "user", "content": f"Text:\n{context}\n\nQuestion: {question}"}]
    return [{"role": "user", "content": f"Text:\n{context}\n\nSummarize the text in a few sentences."}]


def scoring_prompt(context: str, question: str | None) -> str:
    """The plain-text prompt under which the gold answer's log-likelihood is read."""
    if question:
        return f"{SYSTEM}\n\nText:\n{context}\n\nQuestion: {question}\nAnswer:"
    return f"Text:\n{context}\n\nSummary:"


def final_number(text: str) -> str:
    """The number a worked answer ends on: after its last "answer is", else its last number;
    thousands separators and a trailing ".0" dropped."""
    found = _ANSWER_IS.findall(text) or _NUMBER.findall(text)
    if not found:
        return ""
    value = found[-1].replace(",", "")
    return value[:-2] if value.endswith(".0") else value


def first_line(text: str) -> str:
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    return lines[0] if lines else ""


class ChatReader:
    """Reads contexts through an OpenAI-compatible server; the `eval` loop's reader protocol
    (`name`, `generate`, `generate_many`, `answer_logprob`, `answer_logprobs`)."""

    def __init__(self, endpoint: str, model: str, key_env: str = "PROMPTZIP_API_KEY", concurrency: int = 4,
                 timeout: float = 300.0, retries: int = 3, name: str | None = None,
                 cache: CompletionCache | None = None) -> None:
        self.gen = EndpointGenerator(endpoint, model, key_env, concurrency, timeout, retries)
        self.completions_url = api_url(endpoint, "completions")
        self.name = name or reader_name(model, endpoint)
        self.cache = cache or CompletionCache()
        self.logprobs: bool | None = None  # unknown until the first try
        self.max_answer_tokens = MAX_ANSWER_TOKENS

    # -- answers ------------------------------------------------------------------------------
    def generate(self, context: str, question: str | None, max_new_tokens: int = MAX_ANSWER_TOKENS,
                 style: str = "span") -> str:
        msgs = messages(context, question, style)
        limit = COT_MAX_TOKENS if style == "cot" else max_new_tokens
        key = CompletionCache.key(f"reader:{self.name}", msgs, limit)
        text = self.cache.get(key)
        if text is None:
            text = self.gen.complete(msgs, limit)
            self.cache.put(key, text)
        return final_number(text) if style == "cot" else first_line(text)

    def generate_many(self, contexts: list[str], question: str | None,
                      max_new_tokens: int = MAX_ANSWER_TOKENS, style: str = "span") -> list[str]:
        with ThreadPoolExecutor(max_workers=self.gen.concurrency) as pool:
            return list(pool.map(lambda c: self.generate(c, question, max_new_tokens, style), contexts))

    # -- log-likelihood -----------------------------------------------------------------------
    def answer_logprob(self, context: str, question: str | None, answer: str) -> float | None:
        """Mean log-probability per token of ` answer` after the scoring prompt; None when the
        server cannot score given text."""
        if self.logprobs is False or not answer.strip():
            return None
        prompt = scoring_prompt(context, question)
        try:
            data = self.gen.post(self.completions_url, {
                "model": self.gen.model, "prompt": prompt + " " + answer.strip(), "echo": True,
                "logprobs": 1, "max_tokens": 1, "temperature": 0}, retries=None if self.logprobs else 0)
        except EndpointError as exc:
            if self.logprobs or exc.status in UNREACHED:  # it worked before, or the server is not there
                raise
            return self._no_logprobs(str(exc))
        value = _answer_logprob(data, len(prompt))
        if value is None:
            return self._no_logprobs("no log-probabilities for the prompt's tokens in its answer")
        self.logprobs = True
        return value

    def answer_logprobs(self, contexts: list[str], question: str | None, answer: str) -> list[float | None]:
        if self.logprobs is None and contexts:  # the first answer decides whether to ask at all
            return [self.answer_logprob(contexts[0], question, answer),
                    *self.answer_logprobs(contexts[1:], question, answer)]
        with ThreadPoolExecutor(max_workers=self.gen.concurrency) as pool:
            return list(pool.map(lambda c: self.answer_logprob(c, question, answer), contexts))

    def _no_logprobs(self, why: str) -> None:
        self.logprobs = False
        print(f"eval: the reader cannot score given text ({why[:160]}); ll_answer stays empty",
              file=sys.stderr)
        return None


def _answer_logprob(data: dict, start: int) -> float | None:
    """Mean log-probability of the echoed tokens from character `start` on (OpenAI's legacy
    completions shape: `choices[0].logprobs` with `token_logprobs` and `text_offset`)."""
    try:
        lp = data["choices"][0]["logprobs"]
        values, offsets = lp["token_logprobs"], lp["text_offset"]
    except (KeyError, IndexError, TypeError):
        return None
    if not values or not offsets or len(values) != len(offsets):
        return None
    picked = [v for v, off in zip(values[:-1], offsets[:-1], strict=True) if off >= start and v is not None]
    # the last entry is the one generated token (max_tokens=1), not part of the answer
    return sum(picked) / len(picked) if picked else None


def reader_name(model: str, endpoint: str | None = None) -> str:
    """The name rows are tagged with: model, where it ran, and the prompt's version."""
    where = f"at {endpoint}" if endpoint else "local llama.cpp"
    return f"{model} ({where}, reader prompt v{PROMPT_VERSION})"


@contextlib.contextmanager
def local_reader(model: str, parallel: int = 2) -> Iterator[ChatReader]:
    """A `ChatReader` over a prepared local GGUF, served by llama.cpp for the block's duration."""
    gguf = model_path(model) / LOCAL[model]
    with LocalServer(gguf, alias=model, parallel=parallel) as url:
        yield ChatReader(url, model, concurrency=parallel, name=reader_name(model))
