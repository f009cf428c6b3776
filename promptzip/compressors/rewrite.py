"""`rewrite`: chunk-summarize compression (SCOPE / RECOMP-abstractive style) with a
faithfulness guard.

1. Chunk: the document's units are grouped into semantic chunks (`chunking.py`: embedding
   breakpoints, bounded by `chunk_tokens`; blocks are chunks of their own).
2. Budget: ONE budget for the document, shared among chunks in proportion to their size times
   their weight: the mean keep probability of their words under the extract model (information
   density) and, with `--query`, their embedding similarity to the question; without one, a chunk
   whose share is less than its required items need is raised to that (`_floored_shares`). A chunk whose
   share covers it is copied; a chunk with no share is dropped.
3. Rewrite: each other prose chunk goes to the backend with its word budget, the items it must
   keep (a name listed with the capitalized words beside it: "User Interface") and the question: by default a local Qwen2.5-Coder-Instruct GGUF (`local`) behind
   llama.cpp's own server (`runtime/llama_server.py`, started once per process and reused by
   every chunk and every file of a batch worker), asked through the same OpenAI-compatible client
   as `endpoint` + `model` (any server, requests in parallel). `constrain` holds the local model to a
   llama.cpp grammar: the chunk's own words only (`vocab`), and every required item in order with
   free words sized to the budget (`items`); off by default, since with its items forced a small
   model writes sentences that hold them and say nothing (BENCHMARKS.md, "Rewrite").
4. Guard (`guard.py`): the rewrite must keep every number, date, name, quoted string, inline
   code, URL and forced string of its chunk, invent no number nor name, stay within 1.2x the
   chunk's budget, share a content word with it (`_shared_content`), and read as sentences (`_not_prose`). On failure the model is told in a second turn what was missing or invented, and asked
   again; then `samples` (6) answers to the first prompt are sampled (temperature 0.7, seeded, so
   a run repeats and its completions are cached); when none passes, the chunk is compressed by
   `extract` to its budget instead
   (extraction cannot invent); without `--query` extracted chunks keep every name and date even past
   their share, with one they hold it (`keep_names=auto`).
   Blocks (code, tables, JSON, headings) always take the extract path, which keeps them whole.
5. The report lists every chunk: its tokens, budget, path (copy, rewrite, retry, extract, block,
   drop), why, and whether the completion came from the cache (`runtime/cache.py`).

How often each local model passes the guard, and what it costs, is measured in BENCHMARKS.md
("Rewrite").
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from functools import lru_cache

import numpy as np

from ..chunking import Chunk, chunk_units
from ..context import Context, Request
from ..errors import ModelError
from ..fidelity import NAME, NOT_NAMES, NUMBER
from ..guard import Facts, check, facts_of, name_stem, shorten
from ..lang import Language, detect
from ..nospace import NOSPACE_CHARS, NOSPACE_SCRIPT
from ..runtime.cache import CompletionCache
from ..runtime.embed import embedder
from ..runtime.endpoint import EndpointError, EndpointGenerator
from ..runtime.llama_server import LOCAL_MODELS, gguf_sha256, shared_server
from ..segment import GAP_TEXT, Gap, Kind, protected_spans
from ..select import share_budget
from .base import Compressor, Param
from .extract import Extract, Scorer, model_dir

PROMPT_VERSION = "5"
WORDS_PER_TOKEN = 0.75  # English prose under cl100k; only shapes the word budget in the prompt
LONG_SLACK = 1.2  # a rewrite may exceed its chunk's budget by this factor
# `constrain`: a grammar's free words are sized so the rewrite stays within FILL x its budget (the guard
# allows LONG_SLACK), each word costing its text's mean tokens plus SEP_TOKENS for a separator; with
# `items`, a chunk with room for fewer than DENSE free words per run between its items is extracted
FILL = 1.1
FLOORED = 0.8  # chunks raised to the least budget their items need take at most this share of the budget
SEP_TOKENS = 0.3
DENSE = 0.5
# after the greedy try and the retry, `samples` answers sampled at this temperature (seeds SEED, SEED + 1, ...)
SAMPLE_TEMPERATURE = 0.7
SEED = 100
LOCAL_DEFAULT = "qwen2.5-coder-0.5b-instruct"
# The system prompt and one worked example (our own text) come first and are the same in every request,
# so llama.cpp's server reads them once and reuses its cache of them; what changes comes last.
SYSTEM = ("You shorten texts for a reader who will answer questions from them. Keep the facts, drop filler, "
          "and write whole sentences in the text's own language and words. Every listed item must appear exactly as written. "
          "Never add a number, name or date that is not in the text. Reply with the shortened text only.")
ASK = "Text:\n{text}\n\n{items}At most {words} words."
ITEMS = "Items to keep: {items}\n"  # left out for a chunk without items (a model echoed "(none)" back)
FOCUS = "\nKeep what answers: {query}"
IN_LANGUAGE = "\nWrite it in {language}, as the text is."  # for a chunk not in English (the 0.5B translated French)
LANGUAGES = {"fr": "French", "de": "German", "es": "Spanish", "it": "Italian", "pt": "Portuguese", "nl": "Dutch",
             "ru": "Russian", "uk": "Ukrainian", "pl": "Polish", "cs": "Czech", "tr": "Turkish", "sv": "Swedish",
             "zh": "Chinese", "ja": "Japanese", "ko": "Korean", "ar": "Arabic", "fa": "Persian", "he": "Hebrew",
             "hi": "Hindi", "th": "Thai", "vi": "Vietnamese", "id": "Indonesian", "kk": "Kazakh", "el": "Greek"}
EXAMPLE = ("The committee met on Tuesday in the town hall, where the chair, Maria Lopez, explained that the "
           "budget for the new library, which had been discussed for several months, would be 2.4 million "
           "dollars, and that construction was expected to begin in March 2027 if the council approved it.",
           24,
           "On Tuesday chair Maria Lopez said the new library will cost 2.4 million dollars; building starts "
           "in March 2027 if the council approves.")
RETRY = "That rewrite {problems}. Write it again in at most {words} words{items}."
RETRY_ITEMS = ", with each of these exactly as written: {items}"
# Words a constrained rewrite may use besides the chunk's own (`constrain=vocab|items`)
CONNECTIVES = tuple("""and or but not no the a an of in on at to for from by with as is are was were be been it its
they their this that these which who also than then so after before while when said has have had""".split())
_GWORD = re.compile(r"[^\W\d_]+(?:['’-][^\W\d_]+)*")


@dataclass
class ChunkRecord:
    index: int
    units: tuple[int, int]  # first and last unit index
    tokens: int
    budget: int
    output_tokens: int = 0
    path: str = ""  # copy | rewrite | retry | extract | block | drop
    reason: str = ""
    cached: bool = False


@dataclass
class _Outcome:
    text: str | None  # None: fall back to extraction
    path: str
    reason: str
    cached: bool


class Rewrite(Compressor):
    name = "rewrite"
    description = ("Semantic chunks rewritten by an LM (a local Qwen2.5 on llama.cpp, or any OpenAI-compatible "
                   "endpoint) under a faithfulness guard; extractive fallback.")
    query_aware = True
    # .2: extracted chunks keep names and dates; .3: and their punctuation (extract v6 drops it
    # without a query), between rewritten prose; .4: a list of the required items is not a rewrite; prompt 3: a fixed
    # system prompt and worked example first (cached by the server), the chunk and its items after; prompt 4:
    # whole sentences asked for and words side by side refused, a grammar bounded by the token budget, items
    # as the text writes them, chunks raised to the budget their items need; .1: a name the chunk never
    # writes fails the guard; .2: chunks are raised to what their items need only without a question;
    # .3: with a question, extracted chunks hold their share (`keep_names=auto`); .4: a rewrite that shares
    # no content word with its chunk fails; .5: a word glued to an elided article (l’Autorité) is a word
    # of the chunk for the new-names check; prompt 5: a name is listed with the capitalized words beside it
    # ("User Interface"), and `samples` sampled answers follow the retry; .1: six of them, not three, and
    # sentence adverbs (Next, First, Finally, ...) are not names; .2: a chunk without items gets no items line;
    # .3: the rewrite of a chunk not in English must be in the chunk's language; .4: and the prompt names it,
    # and a rewrite whose every content word is part of an item fails (`_items_only`).
    # Extracted chunks are `extract`'s output, so its version is part of this one (checkpointed eval
    # rows and batch outputs are made again).
    version = f"{PROMPT_VERSION}.4+extract{Extract.version}"
    params = (
        Param("endpoint", str, "", "OpenAI-compatible base URL (e.g. http://127.0.0.1:8080/v1); "
              "empty = the local model"),
        Param("local", str, LOCAL_DEFAULT, "the local model llama.cpp serves when there is no endpoint "
              "(prepared from its pinned wheels on first use)", tuple(LOCAL_MODELS)),
        Param("model", str, "", "model name at the endpoint"),
        Param("key_env", str, "PROMPTZIP_API_KEY", "environment variable holding the endpoint's API key"),
        Param("concurrency", int, 4, "parallel requests to the endpoint", bounds=(1, 64)),
        Param("timeout", float, 120.0, "seconds per endpoint request", bounds=(1, None)),
        Param("retries", int, 3, "retries per endpoint request (connection errors, 429, 5xx)", bounds=(0, 20)),
        Param("chunk_tokens", int, 160, "largest chunk, in target tokens", bounds=(16, None)),
        Param("min_chunk", int, 24, "smaller chunks join a neighbour", bounds=(0, None)),
        Param("samples", int, 6, "after the first try and the retry fail the guard, this many answers sampled "
              "(temperature 0.7, seeded) are tried before the chunk is extracted", bounds=(0, 16)),
        Param("keep_names", str, "auto", "extracted chunks keep every name and date, even past their share "
              "(on), or hold their share and let names go (off); auto = on without --query, off with it (the "
              "question says which names matter)", ("auto", "on", "off")),
        Param("constrain", str, "off", "the local model's output, by a llama.cpp grammar: vocab = only the "
              "chunk's words, its items and a few connectives; items = that, with every required item in "
              "the text's order (chunks dense in items are extracted); off = free (the guard judges)",
              ("off", "vocab", "items")),
    )

    def model_id(self) -> str | None:
        if self.settings["endpoint"]:
            return None
        try:
            return gguf_sha256(self.settings["local"])
        except (OSError, KeyError, ModelError):  # not prepared yet: the first run prepares it
            return None

    def backend(self) -> EndpointGenerator:
        """The endpoint's client, or the same client pointed at this process's llama.cpp server of
        the local model (started on first use; its id names the GGUF's sha256 for the cache)."""
        s = self.settings
        if s["endpoint"]:
            return EndpointGenerator(s["endpoint"], s["model"], s["key_env"], s["concurrency"], s["timeout"],
                                     s["retries"])
        sha = gguf_sha256(s["local"])
        gen = EndpointGenerator(shared_server(s["local"]), s["local"], s["key_env"], 1, max(s["timeout"], 600.0),
                                s["retries"])
        gen.id, gen.sha256 = f"local:{s['local']}:{sha[:16]}", sha
        return gen

    def compress(self, ctx: Context) -> None:
        gen = self.backend()
        ctx.model = gen.id
        ctx.model_sha256 = gen.sha256
        t = ctx.table
        texts = list(ctx.unit_texts())
        seps = [GAP_TEXT[Gap(g)] for g in t.gap.tolist()]
        emb = embedder()
        chunks = chunk_units(texts, seps, t.kind.tolist(), t.tokens.tolist(), emb.embed, ctx.counter.count,
                             self.settings["chunk_tokens"], self.settings["min_chunk"])
        budgets = self._budgets(ctx, chunks, emb)
        records = [ChunkRecord(i, (c.units.start, c.units.stop - 1), c.tokens, int(b))
                   for i, (c, b) in enumerate(zip(chunks, budgets, strict=True))]
        cache = CompletionCache()
        todo = []
        for c, r in zip(chunks, records, strict=True):
            if r.budget <= 0:
                r.path, r.reason = "drop", "no budget"
            elif r.budget >= c.tokens:
                r.path, r.reason = "copy", "budget covers the chunk"
            elif not c.prose:
                r.path, r.reason = "block", "code, table, JSON or heading: extracted, never rewritten"
            else:
                todo.append(r.index)
        outputs: dict[int, str | None] = {}

        def work(i: int) -> tuple[int, _Outcome]:
            return i, self._rewrite(gen, cache, chunks[i], records[i].budget, ctx)

        done = 0
        with ThreadPoolExecutor(max_workers=gen.concurrency) as pool:
            for i, out in pool.map(work, todo):
                outputs[i] = out.text
                records[i].path, records[i].reason, records[i].cached = out.path, out.reason, out.cached
                done += 1
                if ctx.progress:
                    ctx.progress("rewrite", done, len(todo))
        if todo and all(records[i].reason.startswith("endpoint:") for i in todo):
            raise EndpointError(records[todo[0]].reason.removeprefix("endpoint: "),
                                "Check that the server is running and --endpoint is right.")
        final: dict[int, str] = {}
        extracted = []
        for c, r in zip(chunks, records, strict=True):
            if r.path == "copy":
                final[r.index] = c.text
            elif r.path != "drop" and outputs.get(r.index) is not None:
                final[r.index] = outputs[r.index]
            elif r.path != "drop":
                extracted.append(r.index)
                if r.path != "block":
                    r.path = "extract"
        self._extract_all(ctx, chunks, records, extracted, final)
        pieces = []
        for c, r in zip(chunks, records, strict=True):
            text = final.get(r.index, "")
            r.output_tokens = ctx.counter.count(text) if text else 0
            if text:
                pieces.append((c, text))
        for k, (c, text) in enumerate(pieces):
            sep = "" if k == 0 else _join(seps[c.units.start])
            ctx.sink.write((sep + text).encode("utf-8"))
        if pieces and texts:
            ctx.sink.write(b"\n")
        ctx.kept = np.zeros(len(t), dtype=bool)
        ctx.spans_kept = spans_written(texts, t.spans.tolist(), "\n".join(text for _, text in pieces))
        ctx.chunks = [asdict(r) for r in records]
        tm = getattr(gen, "timings", None) or {"prompt_n": 0, "prompt_ms": 0.0, "predicted_n": 0, "predicted_ms": 0.0}
        ctx.generation = {"requests": getattr(gen, "requests", 0), "prompt_tokens": tm["prompt_n"], "generated_tokens": tm["predicted_n"],
                          "prompt_s": round(tm["prompt_ms"] / 1000, 3) if tm["prompt_n"] else None,
                          "generated_s": round(tm["predicted_ms"] / 1000, 3) if tm["predicted_n"] else None}

    def _extract_all(self, ctx: Context, chunks: list[Chunk], records: list[ChunkRecord], todo: list[int],
                     final: dict[int, str]) -> None:
        """Extract the chunks in `todo` at their shares. Kept names can take a chunk past its
        share; when they take the document past its budget, the shares of the extracted chunks
        are scaled down (at most three passes) so the words around the names pay for them."""
        fixed = sum(ctx.counter.count(t) for t in final.values())
        names = self.settings["keep_names"]
        if names == "auto":  # with a question, names kept past their share took the answer's words
            names = "off" if ctx.request.query else "on"
        scale = 1.0
        for _ in range(3):
            texts = {i: _extract(chunks[i].text, scale * records[i].budget / max(chunks[i].tokens, 1), ctx, names)
                     for i in todo}
            used = sum(ctx.counter.count(t) for t in texts.values())
            room = ctx.budget - fixed
            if not todo or used <= 1.02 * room or room <= 0:
                break
            scale *= max(0.1, room / used)
        final.update(texts if todo else {})

    def _budgets(self, ctx: Context, chunks: list[Chunk], emb) -> np.ndarray:
        """Share the budget by size x density (extract keep probability) x relevance. Blocks
        are all or nothing: headings are always kept (they carry the structure), other blocks
        when their share would be at least half of them; what is left is shared again among
        the prose chunks."""

        tokens = np.array([c.tokens for c in chunks], dtype=np.float64)
        scorer = Scorer(model_dir())
        density = np.ones(len(chunks))
        for i, c in enumerate(chunks):
            words = c.text.split()
            if words:
                density[i] = float(np.mean(scorer.probs(words, ctx.request.query)))
        weight = np.maximum(density, 0.05)
        if ctx.request.query:
            vecs = emb.embed([ctx.request.query, *[c.text for c in chunks]])
            cos = vecs[1:] @ vecs[0]
            weight = weight * np.clip(cos, 0.0, None) ** 2 + 1e-3
        weight = tokens * weight / np.maximum(weight.mean(), 1e-9)
        first = share_budget(ctx.budget, tokens, weight)
        kinds = ctx.table.kind
        out = np.zeros(len(chunks), dtype=np.int64)
        prose = np.array([c.prose for c in chunks], dtype=bool)
        for i, c in enumerate(chunks):
            if not c.prose:
                keep = kinds[c.units.start] == Kind.HEADING or first[i] >= 0.5 * c.tokens
                out[i] = c.tokens if keep else 0
        rest = max(0, ctx.budget - int(out.sum()))
        if prose.any():
            # without a question, a chunk short of what its items need is raised to it; with one, the
            # question's weighting comes first (raising took budget from the chunks that answer it)
            floors = np.array([0 if ctx.request.query else _floor(c.text, ctx) for c in chunks])
            out[prose] = _floored_shares(rest, tokens[prose], weight[prose], floors[prose])
        return out

    def _rewrite(self, gen, cache, chunk: Chunk, budget: int, ctx: Context) -> _Outcome:
        facts = facts_of(chunk.text, ctx.request.force)
        need = ctx.counter.count(" ".join(item for _, item in facts.items()))
        if need > LONG_SLACK * budget:
            return _Outcome(None, "extract", f"its {len(facts)} required items alone take {need} tokens, "
                            f"over the budget of {budget}", False)
        words = max(4, round(budget * WORDS_PER_TOKEN))
        limit = int(budget * 1.5) + 16
        mode = self.settings["constrain"] if not self.settings["endpoint"] else "off"  # a llama.cpp feature
        extra = None
        if mode != "off" and not NOSPACE_SCRIPT.search(chunk.text):
            items = ordered_items(chunk.text, facts) if mode == "items" else []
            room = free_words(chunk.text, items, budget, ctx.counter.count)
            if items and room < DENSE * (len(items) + 1):
                return _Outcome(None, "extract", f"its {len(items)} required items leave room for {room} other "
                                "words: too dense to rewrite", False)
            extra = {"grammar": grammar(chunk.text, facts, room, items)}
        cached_all = True
        reason = ""
        first = messages = _messages(chunk.text, words, ctx.request.query, facts)
        # greedy, then the retry told what was wrong, then `samples` sampled answers to the first prompt (seeded,
        # so a run is repeatable and its completions cacheable)
        tries = [(None, False), (None, False)] + [({"temperature": SAMPLE_TEMPERATURE, "seed": SEED + k}, True)
                                                  for k in range(self.settings["samples"])]
        for attempt, (sampling, fresh) in enumerate(tries):
            ask = first if fresh else messages
            more = {**(extra or {}), **(sampling or {})} or None
            key = cache.key(gen.id, ask + [more] if more else ask, limit)
            text = cache.get(key)
            if text is None:
                cached_all = False
                try:
                    text = gen.complete(ask, limit, chunk.text, more)
                except EndpointError as exc:
                    return _Outcome(None, "extract", f"endpoint: {exc}", False)
                cache.put(key, text)
            failed = _judge(facts, text, budget, ctx.counter.count, chunk.text)
            if failed is None:
                how = "" if attempt < 2 else f"; passed on sampled answer {attempt - 1} of {len(tries) - 2}"
                return _Outcome(text, "retry" if attempt else "rewrite",
                                f"first try failed: {reason}{how}" if attempt else "", cached_all)
            if attempt == 0:
                reason, problems = failed
                # the second try sees its first answer and what was wrong with it
                messages = [*messages, {"role": "assistant", "content": text},
                            {"role": "user", "content": RETRY.format(problems=problems, words=words,
                                                                    items=_items(chunk.text, facts, RETRY_ITEMS))}]
            last = failed[0]
        return _Outcome(None, "extract", f"guard: {last} (the last of {len(tries)} tries)", cached_all)


def spans_written(units: list[str], spans: list[int], output: str) -> int:
    """How many of the units' protected spans (numbers with units, code, URLs; a block counts as one)
    the output writes verbatim: the report's count, since a rewrite keeps no unit as such."""
    kept = 0
    for text, n in zip(units, spans, strict=True):
        if not n:
            continue
        inline = protected_spans(text)
        kept += min(n, sum(text[a:b] in output for a, b in inline))
        if n > len(inline) and text.strip() in output:  # the block itself
            kept += n - len(inline)
    return kept


def _floor(text: str, ctx: Context) -> int:
    """The least budget at which a rewrite of `text` can pass the guard: its required items' tokens
    plus about a word before, after and between them, within FILL x the budget."""
    facts = facts_of(text, ctx.request.force)
    if not len(facts):
        return 0
    need = ctx.counter.count(" ".join(item for _, item in facts.items()))
    return math.ceil((need + 2 * (len(facts) + 1)) / FILL)


def _floored_shares(budget: int, tokens: np.ndarray, weight: np.ndarray, floors: np.ndarray) -> np.ndarray:
    """`share_budget`, except that a chunk whose share falls short of its floor (the least a rewrite
    can pass the guard with; `_floor`) is raised to it, heaviest first, while the raised chunks take
    at most FLOORED of the budget; the others share the rest. A chunk with no share stays without."""
    floors = np.minimum(floors, tokens)
    shares = share_budget(budget, tokens, weight)
    raised = np.zeros(len(tokens), dtype=bool)
    for _ in range(4):
        low = np.flatnonzero(~raised & (shares > 0) & (shares < floors))
        if not len(low):
            break
        grew = False
        for i in low[np.argsort(-weight[low], kind="stable")]:
            if floors[raised].sum() + floors[i] > FLOORED * budget:
                continue
            raised[i] = grew = True
        if not grew:
            break
        shares = np.where(raised, floors, 0)
        shares[~raised] = share_budget(budget - int(floors[raised].sum()), tokens[~raised], weight[~raised])
    return shares


def _items(text: str, facts: Facts, form: str = ITEMS) -> str:
    """The prompt's clause naming the items to keep; empty when there are none."""
    items = written_items(text, facts)
    return form.format(items="; ".join(items)) if items else ""


def _messages(text: str, words: int, query: str | None, facts: Facts) -> list[dict]:
    ex_text, ex_words, ex_answer = EXAMPLE
    ask = ASK.format(text=text, items=_items(text, facts), words=words) + (FOCUS.format(query=query) if query else "")
    lang = _language(text)
    if not lang.english and lang.code in LANGUAGES:
        ask += IN_LANGUAGE.format(language=LANGUAGES[lang.code])
    return [{"role": "system", "content": SYSTEM},
            {"role": "user", "content": ASK.format(text=ex_text, items=_items(ex_text, facts_of(ex_text)),
                                                   words=ex_words)},
            {"role": "assistant", "content": ex_answer},
            {"role": "user", "content": ask}]


def ordered_items(text: str, facts: Facts) -> list[str]:
    """The required items as the text writes them (a number with its separators: "30,000" for the guard's
    30000), in the order the text first has them. An item inside another (the year of a date, a name in
    a quote) is left to the one that holds it, unless the guard would still miss it there ("Romance"
    standing alone beside "Gallo-Romance"): then its first occurrence of its own comes too."""
    found = {item: list(_occurrences(text, kind, item)) for kind, item in facts.items()}
    chosen: list[tuple[int, int, str]] = []

    def free(a: int, b: int) -> bool:
        return all(b <= x or a >= y for x, y, _ in chosen)

    for a, b, form in sorted(((occ[0][0], occ[0][1], occ[0][2]) for occ in found.values() if occ),
                             key=lambda s: (s[0], s[0] - s[1])):
        if free(a, b):
            chosen.append((a, b, form))
    for item in check(facts, " ; ".join(f for _, _, f in chosen)).missing:
        spot = next(((a, b, f) for a, b, f in found.get(item, ()) if free(a, b)), None)
        if spot:
            chosen.append(spot)
    return [f for _, _, f in sorted(chosen)]


_NAME_RUN = re.compile(rf"{NAME.pattern}(?: {NAME.pattern})+")


def written_items(text: str, facts: Facts) -> list[str]:
    """The required items as the prompt lists them: as the text writes them, in its order
    (`ordered_items`), a name with the capitalized words beside it ("User Interface", "Free Software
    Foundation", "Maria Lopez"): a small model told to keep "Interface" and "Manager" alone drops them,
    and copies the whole name."""
    names = set(facts.names)
    whole: dict[str, str] = {}
    for run in _NAME_RUN.finditer(text):
        words = list(NAME.finditer(run.group()))
        while words and words[0].group() in NOT_NAMES:  # "Then Dropbox", "The Normans"
            words.pop(0)
        stems = [name_stem(w.group()) for w in words]
        if len(words) > 1 and names.intersection(stems):
            for stem in stems:
                whole.setdefault(stem, run.group()[words[0].start():])
    return list(dict.fromkeys(whole.get(form, form) for form in ordered_items(text, facts)))


def _occurrences(text: str, kind: str, item: str):
    """(start, end, surface) of every place `text` writes `item` as the guard would find it."""
    if kind == "numbers":
        yield from ((m.start(), m.end(), m.group()) for m in NUMBER.finditer(text) if m.group().replace(",", "") == item)
    elif kind == "names":
        yield from ((m.start(), m.start() + len(item), item) for m in NAME.finditer(text) if name_stem(m.group()) == item)
    else:
        i = text.find(item)
        while i >= 0:
            yield i, i + len(item), item
            i = text.find(item, i + 1)


def free_words(text: str, items: list[str], budget: int, count: Callable[[str], int]) -> int:
    """How many free words a constrained rewrite of `text` may write besides `items` and stay within
    FILL x its token budget: the items' own tokens first, then the text's own words at their mean
    token cost, each with a separator."""
    taken = set(items)
    own = [w for w in _GWORD.findall(text) if w not in taken] or ["the"]
    per_word = count(" " + " ".join(own)) / len(own) + SEP_TOKENS
    room = FILL * budget - (count(" " + " ".join(items)) + SEP_TOKENS * len(items) if items else 0)
    return max(0, math.floor(room / per_word))


def grammar(text: str, facts: Facts, words: int, items: list[str]) -> str:
    """A llama.cpp GBNF grammar for a rewrite of `text` in at most `words` free words (`free_words`
    turns the token budget into that count): free words are the text's own words (letters only: a
    number can come only as a required item), lower-cased too, and CONNECTIVES; `items`, when given,
    must all appear, in this order, each once, with runs of free words between them whose bounds add
    up to at most `words` (so no rewrite can run past its budget)."""
    own = set(_GWORD.findall(text))
    vocab = (own | {w.lower() for w in own} | set(CONNECTIVES)) - set(items)
    if not items:  # without forced items, the text's numbers and other items may be written freely
        vocab |= {item for _, item in facts.items()}
    lines = ['sep ::= " " | ", " | ". " | " - "',
             "w ::= " + " | ".join(json.dumps(v, ensure_ascii=False) for v in sorted(vocab))]
    if not items:
        return "\n".join([f'root ::= w (sep w){{0,{max(0, words - 1)}}} "."?', *lines]) + "\n"
    gap = max(1, words // (len(items) + 1))
    run = f"(sep w){{0,{gap}}}"
    body = f"(w sep){{0,{gap}}} " + f" {run} sep ".join(json.dumps(i, ensure_ascii=False) for i in items)
    return "\n".join([f'root ::= {body} {run} "."?', *lines]) + "\n"


def _problems(verdict, text: str, too_long: bool, source: str, facts: Facts) -> str:
    """What the guard found wrong with a rewrite, said to the model."""
    parts = []
    if verdict.missing:
        parts.append("left out " + ", ".join(verdict.missing[:8]))
    if verdict.invented or verdict.new_names:
        parts.append("wrote " + ", ".join((verdict.invented + verdict.new_names)[:6]) + ", which the text does not have")
    if not text.strip():
        parts.append("was empty")
    elif too_long:
        parts.append("was too long")
    elif not _shared_content(text, source):
        parts.append("said nothing the text says")
    elif _not_prose(text, source):
        parts.append("was words side by side, not sentences")
    elif _items_only(text, source, facts):
        parts.append("said nothing but the items")
    elif _other_language(text, source):
        parts.append("was not written in the text's language")
    return " and ".join(parts) or "did not pass the check"


def _judge(facts: Facts, text: str, budget: int, count: Callable[[str], int], source: str) -> tuple[str, str] | None:
    """None when the rewrite of `source` is accepted, else why not: for the report, and as the retry
    tells the model (`_problems`)."""
    verdict = check(facts, text, source)
    n = count(text)
    too_long = n > LONG_SLACK * budget + 2
    if not text.strip():
        reason = "empty answer"
    elif not verdict.ok:
        reason = verdict.reason()
    elif too_long:
        reason = f"too long ({n} tokens for a budget of {budget})"
    elif _item_list(facts, text, source):
        reason = "a list of its required items, not a rewrite"
    elif not _shared_content(text, source):
        reason = "says nothing the text says (no word of it)"
    else:
        reason = (_not_prose(text, source) or ("its required items and nothing more" if _items_only(text, source, facts)
                                               else None) or _other_language(text, source))
    return None if reason is None else (reason, _problems(verdict, text, too_long, source, facts))


@lru_cache(maxsize=64)
def _language(chunk: str) -> Language:
    """A chunk's language, detected once: its prompt and the guard's check of each of up to 8 answers ask."""
    return detect(chunk)


def _other_language(text: str, source: str) -> str | None:
    """Is the rewrite of a chunk in another language than English written in another language than
    the chunk's? The 0.5B answered a Russian chunk in English, keeping its numbers and Cyrillic names,
    and nothing else of the guard saw it. (An English chunk is not checked: a short English rewrite
    has too few words for the classifier to be sure of, and the model keeps English.)"""
    src = _language(source)
    if src.english:
        return None
    out = detect(text)
    if out.code == src.code or out.how in ("no letters", "classifier, unsure"):
        return None
    return f"written in another language ({out.code}) than the text ({src.code})"


_CONTENT = re.compile(r"[^\W\d_]{5,}")
_FUNCTION = frozenset("about after again being below cannot could every other their there these those under "
                      "where which while would should shall might still since until whose".split())
_NOSPACE_RUN = re.compile(f"[{NOSPACE_CHARS}]+")


def _content_units(text: str) -> set[str]:
    """Words of five letters or more but a few English function words, by their first five (lowercased:
    `rolled back` and `rolling back` meet), and character pairs of scripts without spaces."""
    units = {w.lower()[:5] for w in _CONTENT.findall(_NOSPACE_RUN.sub(" ", text)) if w.lower() not in _FUNCTION}
    for run in _NOSPACE_RUN.findall(text):
        units.update(run[i:i + 2] for i in range(max(1, len(run) - 1)))
    return units


def _shared_content(text: str, source: str) -> bool:
    """Does the rewrite share a content word with its chunk? A chunk without numbers or names has no
    required items, so "Nothing." or "I cannot summarize this." would otherwise pass the guard. A
    rewrite with no content word at all (`It is.`) is judged by the rest of the guard."""
    mine = _content_units(text)
    return not mine or bool(mine & _content_units(source))


def _items_only(text: str, source: str, facts: Facts) -> bool:
    """Is every content word of the rewrite part of a required item ("CNCTR, Conseil, Etat.", "La
    Commission."), where its chunk has other content words? Sampled answers found such rewrites, which
    keep every item and say nothing of them."""
    items = _content_units(" ".join(item for _, item in facts.items()))
    return bool(_content_units(source) - items) and not (_content_units(text) - items)


_PART = re.compile(r"[,;:\n，；、。]|(?<=[.!?])\s")
_NAMES_RUN = re.compile(r"(?:(?<!\S)[A-Z0-9][\w'’.-]*[\w'’]? +){3,}[A-Z0-9][\w'’.-]*[\w'’]?")
_EDGES = "\"'“”‘’()[]«»,.;:!?"


def _not_prose(text: str, source: str) -> str | None:
    """Is the answer words set side by side rather than sentences, where its source is sentences? What a
    grammar that forces the items makes of a small model: fragments of one or two words between commas
    ("Norse, Normanni, Denmark, Rollo, King, Charles"), or names and numbers in a row of which at least
    three pairs never stand side by side in the source ("Normans Christian Catholic Gallo-Romance"). Extraction at the same
    budget keeps the source's own order, so such a rewrite is no better than it."""
    def median_part(t: str) -> float:
        parts = sorted(len(p.split()) for p in _PART.split(t) if p.split())
        return parts[len(parts) // 2] if len(parts) >= 4 else math.inf

    if median_part(text) <= 2 < median_part(source):
        return "a list of words, not sentences"
    words = [w.strip(_EDGES) for w in source.split()]
    pairs = set(zip(words, words[1:], strict=False))
    for m in _NAMES_RUN.finditer(text):
        run = [w.strip(_EDGES) for w in m.group().split()]
        if sum(p not in pairs for p in zip(run, run[1:], strict=False)) >= 3:
            return f"names in a row the text does not have ({shorten(m.group(), 40)})"
    return None


def _item_list(facts: Facts, text: str, source: str) -> bool:
    """Is the answer the required items listed (a model told to copy them may write only them)? At least
    four comma-, semicolon- or line-separated parts, and most of them exactly an item, as the guard or the
    prompt (`written_items`) has it."""
    items = {" ".join(item.split()) for item in [*(i for _, i in facts.items()), *written_items(source, facts)]}
    parts = [" ".join(x.split()).strip(" .") for x in re.split(r"[,;\n]", text)]
    parts = [x for x in parts if x]
    return len(parts) >= 4 and sum(x in items for x in parts) >= 0.7 * len(parts)


def _extract(text: str, ratio: float, ctx: Context, keep_names: str = "on") -> str:
    """The chunk by extraction at its share of the budget, punctuated like the rewritten chunks around
    it; with `keep_names` on, every name and date word kept (the guard's required items; they may take
    a chunk past its share, a hard cap would drop them)."""
    if ctx.subcompress is None:
        raise RuntimeError("rewrite needs the text pipeline's Context (its subcompress) to fall back to extract")
    request = Request(ratio=min(1.0, max(ratio, 1e-3)), query=ctx.request.query, force=ctx.request.force)
    extract = Extract(keep_names=keep_names, punctuation="keep")
    return ctx.subcompress(text, extract, request, ctx.counter).strip()


def _join(sep: str) -> str:
    """Chunks are joined by a paragraph break where the input had one, else a space."""
    return "\n\n" if "\n\n" in sep else "\n" if "\n" in sep else " "
