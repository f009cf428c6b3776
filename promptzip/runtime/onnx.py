"""One builder for onnxruntime sessions: CPU by default, CUDA when the installed onnxruntime
has it and a GPU answers; a warning says when a GPU was asked for but is not used."""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

from ..nospace import NOSPACE_SCRIPT, load_tokenizer


@lru_cache(maxsize=4)
def session(path: str, threads: int | None = None, device: str = "auto"):
    """(InferenceSession, device actually used, warning or None)."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    n = threads or int(os.environ.get("PROMPTZIP_THREADS", "0")) or (os.cpu_count() or 1)
    opts.intra_op_num_threads = n
    opts.inter_op_num_threads = 1
    # idle worker threads would spin for a while after each call; with two sessions in one
    # process (rag: embedder + extract) the spinning pool starves the working one (3-4x slower)
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    warning = None
    providers = ["CPUExecutionProvider"]
    if device in ("auto", "cuda") and "CUDAExecutionProvider" in ort.get_available_providers():
        providers = ["CUDAExecutionProvider", "CPUExecutionProvider"]
    elif device == "cuda":
        warning = "CUDA was requested but this onnxruntime has no CUDA provider; running on CPU"
    sess = ort.InferenceSession(str(Path(path)), sess_options=opts, providers=providers)
    used = "cuda" if sess.get_providers()[0] == "CUDAExecutionProvider" else "cpu"
    if providers[0] == "CUDAExecutionProvider" and used != "cuda":
        warning = "the CUDA provider failed to start; running on CPU"
    return sess, used, warning


def specials(tok) -> tuple[int, int, int, bool]:
    """(cls, sep, pad, mpnet) ids of an encoder's tokenizer: BERT's [CLS]/[SEP]/[PAD], or MPNet's
    <s>/</s>/<pad> (mpnet True: a question is joined to its text with two separators, as
    RoBERTa does, and there are no segment ids)."""
    if tok.token_to_id("<s>") is not None:
        return tok.token_to_id("<s>"), tok.token_to_id("</s>"), tok.token_to_id("<pad>"), True
    return tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]"), tok.token_to_id("[PAD]") or 0, False


def wordpiece(path: str):
    """An encoder's tokenizer.json, loaded once per process (`nospace.load_tokenizer`: the
    no-space segmenter reads the multilingual model's through the same object)."""

    return load_tokenizer(path)


def _metaspace(tok) -> bool:
    """A SentencePiece tokenizer (XLM-R's), loaded by `wordpiece` to add no word-start mark itself."""
    from tokenizers import pre_tokenizers

    return isinstance(tok.pre_tokenizer, pre_tokenizers.Metaspace)


def encode_text(tok, text: str) -> list[int]:
    """Subword ids of a free text (a question), as the tokenizer's own defaults would give them."""
    return tok.encode(" " + text if _metaspace(tok) else text, add_special_tokens=False).ids


def subword_ids(tok, words: list[str], unk: int | None = None) -> list[list[int]]:
    """Subword ids of each word (an empty one reads as `unk`). A SentencePiece (Metaspace)
    tokenizer marks a word that starts after a space with `▁`; a word of a script written without
    spaces (`开发` inside Chinese text) is encoded without that mark, as the model read such text
    in pre-training (`▁ 开发 ▁ 游戏` would be neither the text nor its tokens). `wordpiece` loads such
    a tokenizer to add no mark itself, so one tokenizer encodes both kinds of word (`" " + word`
    gives exactly the ids that the tokenizer's default would give `word`)."""

    if unk is None:
        unk = tok.token_to_id("[UNK]") if tok.token_to_id("[UNK]") is not None else tok.token_to_id("<unk>")
    if _metaspace(tok):
        words = [w if NOSPACE_SCRIPT.match(w) else " " + w for w in words]
    return [e.ids or [unk] for e in tok.encode_batch(words, add_special_tokens=False)]
