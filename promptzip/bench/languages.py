"""`make bench BENCH_SECTIONS=languages`: `extract` in every language it was trained or validated
on (issue 35), on held-out rows only.

Rows: for each file of ../shared/corpora/qa-multi, the articles the multilingual model never saw
(every 8th title, `train.labels.split_by_title`, as its training split them), one question per
paragraph, the first `N`; for English, SQuAD v2 half-dev (answerable), the first `N`. Each row is
compressed with its question at 0.33 and 0.2 and without it at 0.33, by `extract` as a user gets it
(`-p model=auto`), by the English model forced (`-p model=english`: what every language got
before), by `lexical` (BM25 sentences) and by head truncation. Answer kept: the gold answer in the
compressed paragraph as whole words after NFKC, lowercasing and punctuation made spaces
(`eval.metrics.answer_retained`; each character of a script without spaces a word). Then the speed of both models on one long document of each script.
"""

from __future__ import annotations

import json
import os
import random
import re
import statistics
import subprocess
import sys
import time
import unicodedata
from pathlib import Path

from ..api import compress
from ..compressors.extract import Scorer, model_dir, multilingual_ready
from ..fileutil import read_jsonl
from ..metrics import answer_retained
from ..tokens import load_tokenizer
from ..train.labels import split_by_title, squad_groups

N = 100
LANGUAGES = (  # (label, file under qa-multi/ or None for English SQuAD)
    ("English (SQuAD v2 half-dev)", None),
    ("Chinese, Simplified (CMRC 2018)", "zh_cmrc2018_train.jsonl"),
    ("Chinese, Traditional (DRCD)", "zh_drcd_train.jsonl"),
    ("Japanese (JSQuAD)", "ja_jsquad_train.jsonl"),
    ("Arabic (ARCD)", "ar_arcd_train.jsonl"),
    ("Thai (iapp-wiki-qa)", "th_iapp_train.jsonl"),
    ("Kazakh (KazQAD)", "kk_kazqad_train.jsonl"),
    ("French (PIAF)", "fr_piaf_train.jsonl"),
)
COLUMNS = (  # (method, ratio, header)
    ("extract", 0.33, "extract+q @0.33"),
    ("extract", 0.2, "extract+q @0.2"),
    ("extract:noquery", 0.33, "extract, no q @0.33"),
    ("extract:model=english", 0.33, "English model+q @0.33"),
    ("lexical", 0.33, "lexical+q @0.33"),
    ("truncate", 0.33, "head @0.33"),
)


def held_out_rows(shared: Path, name: str | None, n: int = N) -> list[dict]:
    """The rows of one language's table line (see the module docstring)."""
    if name is None:
        rows = [r for r in read_jsonl(shared / "qa" / "squad_v2_half_dev.jsonl") if r.get("answers")]
        return rows[:n]
    path = shared / "qa-multi" / name
    _, held = split_by_title(path)
    rng = random.Random(0)  # one question per paragraph, drawn: the first ones ask about its start
    return [rng.choice(rows) for _, _, rows in squad_groups(path, held)][:n]


def _eval(rows: list[dict], out: Path, title: str, columns=COLUMNS, env: dict | None = None) -> dict[tuple[str, float], dict]:
    """`promptzip eval` of every column's method over `rows`; (method, ratio) -> its summary."""
    out.mkdir(parents=True, exist_ok=True)
    data = out / "rows-in.jsonl"
    data.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    methods = list(dict.fromkeys(m for m, _, _ in columns))
    ratios = sorted({r for _, r, _ in columns}, reverse=True)
    subprocess.run([sys.executable, "-m", "promptzip", "eval", str(data), "--methods", ",".join(methods),
                    "--ratios", ",".join(map(str, ratios)), "--no-reader", "--no-embed", "--out", str(out),
                    "--title", title], check=True, stdout=subprocess.DEVNULL, env={**os.environ, **(env or {})})
    summary = json.loads((out / "results.json").read_text(encoding="utf-8"))["summary"]
    return {(s["method"], round(s["target_ratio"], 2)): s for s in summary}


def speed(text: str, model: str, repeats: int = 2) -> dict:
    """End-to-end tokens/s of `extract -p model=MODEL` at 0.33 on `text`, and of its forward pass
    alone (the scorer's windows, no selection), best of `repeats` after a warm-up."""
    tokens = load_tokenizer("cl100k_base").count(text)
    compress(text[:2000], "extract", ratio=0.33, model=model)  # load everything once
    best = float("inf")
    for i in range(repeats):  # a different first word each time: the word probabilities are not remembered
        t0 = time.perf_counter()
        res = compress(f"Run{i} " + text, "extract", ratio=0.33, model=model)
        best = min(best, time.perf_counter() - t0)
    words = [w for w, _, _ in (compress(text, "extract", ratio=0.33, model=model, word_scores=True).report.words or [])]
    scorer = Scorer(model_dir(model))
    t0 = time.perf_counter()
    scorer.probs(words, None)
    forward = time.perf_counter() - t0
    return {"tokens": tokens, "end_to_end": tokens / best, "forward": tokens / forward,
            "model": res.report.model, "subwords_per_token": sum(len(s) for s in scorer.subwords(words)) / tokens}


def bench_languages(work: Path, shared: Path, cut: Path | None = None) -> str:
    """`cut`: a model folder of the 6-layer cut (issue 35's question), measured beside when it exists."""
    if not (shared / "qa-multi").is_dir():
        return "Skipped: ../shared/corpora/qa-multi is not beside this checkout."
    if not multilingual_ready():
        return "Skipped: the multilingual extract model is not installed (`make models`)."
    columns = COLUMNS
    if cut is not None and (cut / "model.int8.onnx").is_file():
        columns = (*COLUMNS, (f"extract:model={cut}", 0.33, "6-layer cut+q @0.33"))
    lines = ["| language (held-out rows) | rows | median answer, characters | "
             + " | ".join(h for *_, h in columns) + " |", "|---|---:|---:|" + "---:|" * len(columns)]
    for label, name in LANGUAGES:
        rows = held_out_rows(shared, name)
        print(f"bench: languages, {label} ({len(rows)} rows) ...", file=sys.stderr)
        got = _eval(rows, work / "languages" / (name or "en").removesuffix(".jsonl"), label, columns)
        cells = []
        for method, ratio, _ in columns:
            s = got.get((method, ratio))
            cells.append("-" if s is None else f"{s['answer_retained']['mean']:.3f} "
                         f"(ratio {s['achieved_ratio']['mean']:.3f})")
        median = statistics.median(len(r["answers"][0]) for r in rows)
        lines.append(f"| {label} | {len(rows)} | {median:g} | " + " | ".join(cells) + " |")
    docs = {
        "English (WikiText-2 test articles)": ("english", _long_text(shared / "text" / "wikitext2_test_articles.jsonl",
                                                                      chars=160_000)),
        "Chinese (CMRC paragraphs joined)": ("multilingual", _long_text(shared / "qa-multi" / "zh_cmrc2018_train.jsonl",
                                                                        key="context")),
    }
    speed_lines = ["| document | model | tokens (cl100k) | subwords per token | end to end, tokens/s | forward pass "
                   "alone, tokens/s | end to end / forward |", "|---|---|---:|---:|---:|---:|---:|"]
    if cut is not None and (cut / "model.int8.onnx").is_file():
        docs["Chinese, 6-layer cut"] = (str(cut), docs["Chinese (CMRC paragraphs joined)"][1])
    for label, (model, text) in docs.items():
        print(f"bench: languages, speed on {label} ...", file=sys.stderr)
        s = speed(text, model)
        speed_lines.append(f"| {label} | {s['model']} | {s['tokens']:,} | {s['subwords_per_token']:.2f} | "
                           f"{s['end_to_end']:,.0f} | {s['forward']:,.0f} | {s['end_to_end'] / s['forward']:.2f} |")
    unit_lines = ["| language | rows | XLM-R pieces (shipped) | single characters (Thai: runs of at most 4) |",
                  "|---|---:|---:|---:|"]
    for label, name in LANGUAGES:
        if name is None or name.split("_")[0] not in ("zh", "ja", "th"):
            continue
        rows = held_out_rows(shared, name)
        print(f"bench: languages, units for {label} ...", file=sys.stderr)
        cols = (("extract", 0.33, ""),)
        key = name.removesuffix(".jsonl")
        pieces = _eval(rows, work / "languages" / key, label, columns)[("extract", 0.33)]
        chars = _eval(rows, work / "languages" / f"{key}-chars", label, cols,
                      {"PROMPTZIP_SEGMENTER": str(work / "no-such-vocabulary.json")})[("extract", 0.33)]
        unit_lines.append(f"| {label} | {len(rows)} | {pieces['answer_retained']['mean']:.3f} | "
                          f"{chars['answer_retained']['mean']:.3f} |")
    head = ("Answer kept (and the achieved ratio) on held-out rows: articles the multilingual model never "
            "trained on. `extract` chooses its model by the document's language (`-p model=auto`); the "
            "English-model column is what every language got before the multilingual model. Answer kept: the "
            "gold answer as whole words of the compressed paragraph after NFKC, lowercasing and punctuation made "
            "spaces (each character of a script without spaces a word of its own); so measured, every held-out "
            "paragraph keeps its answer uncompressed (deleting punctuation as SQuAD does, 7 of 724 did not: French "
            "elisions, possessives, full-width brackets).")
    return "\n".join([head, "", *lines, "", "Units in scripts without spaces (`extract` with the question at 0.33; "
                      "the same model, only the words it keeps or drops differ):", "", *unit_lines, "",
                      "Speed (one run; 2 cores):", "", *speed_lines])


def _long_text(path: Path, key: str = "text", chars: int = 40_000) -> str:
    out, seen, size = [], set(), 0
    for row in read_jsonl(path):
        t = row.get(key) or ""
        if t in seen:
            continue
        seen.add(t)
        out.append(t)
        size += len(t)
        if size >= chars:
            break
    return "\n\n".join(out)


READER_ROWS = 25
READER_SETS = (("English (SQuAD v2 half-dev)", "en", None), ("Chinese, Simplified (CMRC 2018)", "zh", "zh_cmrc2018_train.jsonl"),
               ("Arabic (ARCD)", "ar", "ar_arcd_train.jsonl"))


def bench_languages_reader(work: Path, shared: Path) -> str:
    """Qwen2.5-Coder-0.5B reads `READER_ROWS` held-out rows of English, Chinese and Arabic: uncompressed,
    and at 0.33 with the question by `extract` (auto: the multilingual model for zh and ar) and by the
    English model; EM and F1 (character-level in Chinese) and their share of the uncompressed text's."""
    if not (shared / "qa-multi").is_dir() or not multilingual_ready():
        return "Skipped: ../shared/corpora/qa-multi or the multilingual model is missing."
    lines = ["| language | rows | uncompressed EM / F1 | extract+q @0.33 EM / F1 (F1 kept) | English model+q @0.33 EM / F1 "
             "(F1 kept) |", "|---|---:|---:|---:|---:|"]
    for label, key, name in READER_SETS:
        out = work / "reader-lang" / key
        out.mkdir(parents=True, exist_ok=True)
        rows = held_out_rows(shared, name, READER_ROWS)
        (out / "rows-in.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows),
                                           encoding="utf-8")
        methods = "extract:model=english" if name is None else "extract,extract:model=english"
        print(f"bench: languages with the Qwen reader, {label} ...", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "promptzip", "eval", str(out / "rows-in.jsonl"), "--methods", methods,
                        "--ratios", "0.33", "--reader-model", "qwen2.5-coder-0.5b-instruct", "--no-embed",
                        "--out", str(out), "--title", f"reader {key}"], check=True, stdout=subprocess.DEVNULL)
        summary = {s["method"]: s for s in json.loads((out / "results.json").read_text(encoding="utf-8"))["summary"]}
        orig = summary["original"]

        def cell(method: str, summary=summary, orig=orig) -> str:
            s = summary.get(method)
            if s is None:
                return "the same as the English model (English text)"
            kept = s["f1"]["mean"] / orig["f1"]["mean"] if orig["f1"]["mean"] else float("nan")
            return f"{s['em']['mean']:.2f} / {s['f1']['mean']:.3f} ({kept:.2f})"

        lines.append(f"| {label} | {orig['n']} | {orig['em']['mean']:.2f} / {orig['f1']['mean']:.3f} | "
                     f"{cell('extract') if name else cell('_none')} | {cell('extract:model=english')} |")
    return "\n".join(["The Qwen2.5-Coder-0.5B reader (local llama.cpp) on held-out rows, one question per paragraph as "
                      "above. It reads Chinese and Arabic poorly even uncompressed (EM is near zero there), so F1 and "
                      "its share of the uncompressed F1 say more than EM on so few rows.", "", *lines])


MT_LANGUAGES = (("ru", "Russian"), ("de", "German"), ("es", "Spanish"), ("zh", "Simplified Chinese"), ("ar", "Arabic"))
MT_ROWS = 30  # SQuAD paragraphs of at most MT_WORDS words
MT_WORDS = 130
MT_MODEL = "qwen2.5-coder-1.5b-instruct"
MT_COLUMNS = (("extract", 0.33, True, {}), ("extract", 0.2, True, {}), ("extract", 0.33, False, {}),
              ("extract", 0.33, True, {"model": "english"}), ("lexical", 0.33, True, {}),
              ("truncate", 0.33, True, {}))


def _mt_sources(shared: Path) -> list[dict]:
    rows, seen = [], set()
    for r in read_jsonl(shared / "qa" / "squad_v2_half_dev.jsonl"):
        if r.get("answers") and r["context"] not in seen:
            seen.add(r["context"])
            if len(r["context"].split()) <= MT_WORDS:
                rows.append(r)
    return rows[:MT_ROWS]


def _norm(s: str) -> str:
    s = unicodedata.normalize("NFKC", s).lower()
    return re.sub(r"\s+", " ", re.sub(r"[^\w\s]", " ", s)).strip()


def translated_rows(work: Path, shared: Path) -> list[dict]:
    """SQuAD v2 half-dev paragraphs (the first MT_ROWS of at most MT_WORDS words, first question) put
    into each of MT_LANGUAGES by the local Qwen2.5-Coder-1.5B, greedy: the paragraph with its answer
    between <b> tags (the answer is what the tags hold in the translation), and the question; where
    the tags were lost, the answer translated alone. A row counts only when its answer so found is
    words of the translated paragraph. Kept in
    bench-work/languages-mt/rows.jsonl (resumable; a few seconds a row)."""
    from ..runtime.endpoint import EndpointGenerator
    from ..runtime.llama_server import shared_server

    path = work / "languages-mt" / "rows.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    done = {(d["lang"], d["id"]): d for d in (read_jsonl(path) if path.is_file() else [])}
    sources = _mt_sources(shared)
    started = []

    def gen():  # the server starts only when a row is missing
        if not started:
            started.append(EndpointGenerator(shared_server(MT_MODEL), MT_MODEL, "PROMPTZIP_API_KEY", 1, 600.0, 1))
        return started[0]

    with open(path, "a", encoding="utf-8") as log:
        for lang, name in MT_LANGUAGES:
            for r in sources:
                if (lang, r["id"]) in done:
                    continue
                print(f"bench: translating {r['id']} into {name}", file=sys.stderr, flush=True)
                answer = r["answers"][0]
                i = r["context"].find(answer)
                # an answer the paragraph does not write as such (SQuAD has a few) gets no tags: not counted
                marked = f"{r['context'][:i]}<b>{answer}</b>{r['context'][i + len(answer):]}" if i >= 0 else r["context"]

                out = _ask(gen(), f"Translate this text into {name}. Keep the <b> and </b> tags around the words that "
                          f"translate the tagged words. Write only the translation.\n\n{marked}",
                          len(r["context"].split()) * 3 + 50)
                m = re.search(r"<b>(.*?)</b>", out, re.S)
                got = m.group(1).strip() if m else ""
                context = re.sub(r"</?b>", "", out).strip()
                question = _ask(gen(), f"Translate this question into {name}. Write only the translation.\n\n{r['question']}", 80)
                rec = {"lang": lang, "id": r["id"], "context": context, "question": question, "answers": [got],
                       "ok": bool(got) and i >= 0 and _norm(got) in _norm(context), "en_answer": answer,
                       "answer_from": "tags"}
                log.write(json.dumps(rec, ensure_ascii=False) + "\n")
                log.flush()
                done[(lang, r["id"])] = rec
            for r in sources:  # the tags lost: the answer translated alone, if the paragraph writes it so
                rec = done[(lang, r["id"])]
                if rec["ok"] or rec.get("alone_tried") or r["answers"][0] not in r["context"]:
                    continue
                got = _ask(gen(), f"Translate into {name}. Write only the translation.\n\n{r['answers'][0]}", 40)
                got = got.strip().strip("\"'«»“”「」。.")
                rec = {**rec, "alone_tried": True, "answers": [got], "answer_from": "alone",
                       "ok": bool(got) and _norm(got) in _norm(rec["context"])}
                log.write(json.dumps(rec, ensure_ascii=False) + "\n")
                log.flush()
                done[(lang, r["id"])] = rec
    return list(done.values())


def _ask(gen, text: str, limit: int) -> str:
    return gen.complete([{"role": "system", "content": "You are a professional translator."},
                         {"role": "user", "content": text}], limit)


def bench_languages_mt(work: Path, shared: Path) -> str:
    """Answer kept in the languages the issue's own parallel set checks and no native set here
    covers (Russian, German, Spanish; Chinese and Arabic beside), on SQuAD paragraphs machine-translated
    by the local 1.5B model (`translated_rows`), and on the same paragraphs in English."""
    if not (shared / "qa").is_dir() or not multilingual_ready():
        return "Skipped: ../shared/corpora/qa or the multilingual model is missing."
    everything = translated_rows(work, shared)
    rows = [r for r in everything if r["ok"]]
    english = {r["id"]: r for r in _mt_sources(shared)}
    lines = ["| language | rows | " + " | ".join(
        "head @0.33" if m == "truncate" else f"{m}{' (English model)' if kw else ''}{'+q' if q else ', no q'} @{ratio}"
        for m, ratio, q, kw in MT_COLUMNS)
        + " |", "|---|---:|" + "---:|" * len(MT_COLUMNS)]

    def line(label: str, rs: list[dict]) -> str:
        cells = []
        for method, ratio, q, kw in MT_COLUMNS:
            kept = achieved = 0.0
            for r in rs:
                res = compress(r["context"], method, ratio=ratio, query=r["question"] if q else None, **kw)
                kept += answer_retained(res.text, r["answers"])
                achieved += res.report.ratio
            cells.append(f"{kept / len(rs):.3f} ({achieved / len(rs):.2f})")
        return f"| {label} | {len(rs)} | " + " | ".join(cells) + " |"

    ids: set[str] = set()
    for lang, name in MT_LANGUAGES:
        rs = [r for r in rows if r["lang"] == lang]
        total = sum(1 for r in everything if r["lang"] == lang)
        if rs:
            print(f"bench: languages (translated), {name} ...", file=sys.stderr)
            alone = sum(r.get("answer_from") == "alone" for r in rs)
            lines.append(line(f"{name} ({len(rs)} of {total} translations; {alone} by the answer translated alone)", rs))
            ids |= {r["id"] for r in rs}
    lines.append(line("English (the same paragraphs, original)", [english[i] for i in sorted(ids)]))
    head = (f"SQuAD v2 half-dev paragraphs (the first {MT_ROWS} distinct ones of at most {MT_WORDS} words, first "
            f"question) translated by {MT_MODEL} on llama.cpp, greedy, with the answer between <b> tags so that the "
            "translated answer is the tagged words (where the tags were lost, the answer translated alone); a row "
            "counts only when that answer is words of the translated paragraph. A proxy for the professionally translated set the issue checks: a 1.5B coder "
            "model translates loosely (English words are left in Russian text, Chinese lost its tags in most rows), "
            "so these rows are easier and fewer than a real parallel set, and a language with few rows says little. "
            "Answer kept as in the section above (metrics v2); achieved ratio in brackets. Columns: extract as a "
            "user gets it (`-p model=auto`), the English model forced, BM25 sentences, head truncation.")
    return "\n".join([head, "", *lines])
