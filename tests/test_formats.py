"""Format detection and the format handlers: valid output, the ratio held, nothing empty."""

from __future__ import annotations

import csv
import io
import json
import random
import re
import shutil
import subprocess
import sys

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from promptzip import compress
from promptzip.errors import ModelError, UsageError
from promptzip.formats import detect
from promptzip.formats.detect import sniff
from tests.conftest import ROOT, SHARED, needs_models, needs_shared

FAST = "lexical"  # no model: the handlers' own selection is what these tests check


def records(n: int, seed: int = 0) -> list[dict]:
    rng = random.Random(seed)
    words = "alpha beta gamma delta error timeout disk cache user session login retry".split()
    return [{"id": i, "name": f"user{i}", "email": f"u{i}@example.com", "active": i % 3 == 0,
             "note": " ".join(rng.choice(words) for _ in range(rng.randint(3, 12)))} for i in range(n)]


def table_text(n: int, delimiter: str = ",") -> str:
    buf = io.StringIO()
    w = csv.writer(buf, delimiter=delimiter, lineterminator="\n")
    w.writerow(["id", "name", "comment, quoted", "score"])
    for r in records(n):
        w.writerow([r["id"], r["name"], f'Likes "{r["note"]}",\nsecond line', r["id"] * 1.5])
    return buf.getvalue()


def log_text(n: int = 300) -> str:
    lines = []
    for i in range(n):
        ts = f"2024-03-01T10:{i // 60:02d}:{i % 60:02d}Z"
        if i == 137:
            lines.append(f"{ts} ERROR db: connection to 10.0.0.{i % 250} refused after 3 retries")
        elif i % 3:
            lines.append(f"{ts} INFO http: GET /api/items/{i} 200 {i * 7} ms")
        else:
            lines.append(f"{ts} DEBUG cache: hit ratio {i % 100}% for shard {i % 8}")
    return "\n".join(lines) + "\n"


# -- detection ------------------------------------------------------------------------

@pytest.mark.parametrize(("label", "fmt"), [
    ("a.json", "json"), ("a.geojson", "json"), ("a.jsonl", "jsonl"), ("a.csv", "csv"), ("a.tsv", "tsv"),
    ("a.html", "html"), ("a.log", "log"), ("a.tex", "latex"), ("a.md", "markdown"), ("a.py", "code"),
    ("a.rs", "code"), ("a.txt", "text"),
])
def test_detect_by_extension(label, fmt):
    assert detect("", label).format == fmt
    assert detect("", label).reason == "extension"


@pytest.mark.parametrize(("text", "fmt"), [
    (json.dumps(records(5)), "json"),
    ("\n".join(json.dumps(r) for r in records(5)), "jsonl"),
    (table_text(10), "csv"),
    (table_text(10, "\t"), "tsv"),
    ("<!DOCTYPE html><html><body><p>Hi</p></body></html>", "html"),
    (log_text(20), "log"),
    ("\\documentclass{article}\n\\begin{document}\nHi\n\\end{document}\n", "latex"),
    ("import os\n\n\ndef f(x):\n    return x\n\n\nclass A:\n    pass\n", "code"),
    ("# Title\n\nSome prose here.\n", "markdown"),
    ("Just a sentence. And another one.", "text"),
])
def test_sniff(text, fmt):
    assert sniff(text).format == fmt


def test_explicit_format_wins_and_unknown_is_a_usage_error():
    assert detect("{}", "a.csv", "json").format == "json"
    with pytest.raises(UsageError, match="unknown input format"):
        detect("", "a", "yaml")


# -- JSON ------------------------------------------------------------------------------

@pytest.mark.parametrize("ratio", [0.5, 0.33, 0.2])
def test_json_array_parses_and_holds_the_ratio(ratio):
    text = json.dumps(records(200))  # compact: an indented one fits whole at 0.5 once re-written
    res = compress(text, method=FAST, ratio=ratio, input_format="json")
    out = json.loads(res.text)
    assert isinstance(out, list) and len(out) > 1
    assert isinstance(out[-1], str) and "more item" in out[-1]  # the marker says what was left out
    assert abs(res.report.ratio - ratio) <= 0.03
    assert set(out[0]) == set(records(1)[0])  # keys kept
    assert res.report.input_format == "json" and res.report.handler == "json"


def test_json_query_keeps_the_relevant_item():
    data = records(100)
    data[77]["note"] = "the quarterly zeppelin report"
    res = compress(json.dumps(data), method=FAST, ratio=0.2, query="zeppelin", input_format="json")
    assert any(isinstance(x, dict) and x.get("id") == 77 for x in json.loads(res.text))


def test_json_one_huge_string_is_thinned_not_dropped():
    text = json.dumps({"title": "x", "body": " ".join(f"word{i}" for i in range(3000))})
    res = compress(text, method=FAST, ratio=0.3)
    out = json.loads(res.text)
    assert set(out) == {"title", "body"} and len(out["body"]) > 100
    assert abs(res.report.ratio - 0.3) <= 0.03


def test_jsonl_every_line_parses():
    text = "\n".join(json.dumps(r) for r in records(120)) + "\n"
    res = compress(text, method=FAST, ratio=0.33, input_format="jsonl")
    lines = res.text.splitlines()
    assert len(lines) > 5 and all(json.loads(x) is not None for x in lines)
    assert res.text.endswith("\n")


def test_invalid_json_falls_back_to_text_with_a_warning():
    res = compress('{"a": 1, broken ' + "word " * 200, method=FAST, ratio=0.5, input_format="json")
    assert res.text.strip()
    assert any("not valid JSON" in w for w in res.report.warnings)


# -- tables ------------------------------------------------------------------------------

@pytest.mark.parametrize("delimiter", [",", "\t"])
def test_table_header_whole_rows_same_columns(delimiter):
    text = table_text(150, delimiter)
    res = compress(text, method=FAST, ratio=0.3, input_format="tsv" if delimiter == "\t" else "csv")
    rows = list(csv.reader(io.StringIO(res.text), delimiter=delimiter))
    src = list(csv.reader(io.StringIO(text), delimiter=delimiter))
    assert rows[0] == src[0]
    assert all(len(r) == len(src[0]) for r in rows)
    assert all(r in src for r in rows)  # whole input rows, no field cut
    assert 10 < len(rows) < len(src)
    assert abs(res.report.ratio - 0.3) <= 0.03


def test_table_rows_spread_over_the_table():
    res = compress(table_text(200), method=FAST, ratio=0.2, input_format="csv")
    ids = [int(r[0]) for r in list(csv.reader(io.StringIO(res.text)))[1:]]
    assert min(ids) < 20 and max(ids) > 180


# -- logs ------------------------------------------------------------------------------

def test_log_keeps_errors_whole_lines_and_collapses_repeats():
    text = log_text()
    res = compress(text, method=FAST, ratio=0.2, input_format="log")
    src = set(text.splitlines())
    out = res.text.splitlines()
    assert any("ERROR db" in x for x in out)
    markers = [x for x in out if x.startswith("  … ×")]
    assert markers and all(x in src for x in out if x not in markers)
    assert abs(res.report.ratio - 0.2) <= 0.03
    d = res.report.format_details
    assert d["error_templates_kept"] == d["error_templates"] == 1


# -- HTML and LaTeX ----------------------------------------------------------------------

PAGE = """<!DOCTYPE html><html><head><title>T</title><style>body{color:red}</style>
<script>var tracking = "should never appear";</script></head><body>
<nav><a href="/">Home</a> <a href="/about">About</a></nav><article><h1>Solar sails</h1>
%s<table><tr><th>Mission</th><th>Year</th></tr><tr><td>IKAROS</td><td>2010</td></tr></table>
</article><footer>Copyright</footer></body></html>"""


def test_html_main_text_as_markdown():
    pytest.importorskip("trafilatura")
    paras = "".join(f"<p>Paragraph {i}: a solar sail uses the pressure of sunlight on a large mirror to "
                    f"move a spacecraft, and mission {i} tested it in orbit.</p>" for i in range(30))
    res = compress(PAGE % paras, method=FAST, ratio=0.2, input_format="html")
    assert "should never appear" not in res.text and "<p>" not in res.text
    assert "solar sail" in res.text.lower()
    assert abs(res.report.ratio - 0.2) <= 0.03


def test_html_small_main_text_is_kept_whole_and_reported():
    pytest.importorskip("trafilatura")
    res = compress(PAGE % "<p>One short paragraph about sails and light pressure in space.</p>" + " " * 0,
                   method=FAST, ratio=0.9, input_format="html")
    assert "short paragraph" in res.text
    assert res.report.format_details["all_fits"]


LATEX = r"""\documentclass{article}
\usepackage{amsmath}
%% a comment that goes first
\begin{document}
%s
\end{document}
"""


def test_latex_quotes_are_not_inline_code():
    body = " ".join(f"The editor called it ``a turning point'' in {i} and ``the end'' of the era." for i in range(40))
    text = LATEX % body
    res = compress(text, method="extract", ratio=0.33, input_format="latex")
    assert abs(res.report.ratio - 0.33) <= 0.03
    plain = compress(body, method="extract", ratio=0.33, input_format="text")
    assert abs(plain.report.ratio - 0.33) <= 0.03


def _balance(text: str) -> tuple[int, int]:
    """(groups left open, closing braces without a group) of `text`."""
    depth = stray = 0
    for m in re.finditer(r"(?<!\\)[{}]", text):
        depth += 1 if m.group() == "{" else -1
        if depth < 0:
            stray, depth = stray + 1, 0
    return depth, stray


def test_latex_groups_and_environments_stay_whole():
    rng = random.Random(3)
    words = "the logic of proof was studied by many authors in the early years of the century".split()
    parts = []
    for i in range(60):
        prose = " ".join(rng.choice(words) for _ in range(12))
        parts.append(f"{prose} \\emph{{{' '.join(rng.choice(words) for _ in range(4))}}}. See \\textsc{{bce}}.")
        if i % 10 == 0:
            parts.append("\\begin{itemize}\n\\item " + prose + "\n\\item " + prose + "\n\\end{itemize}")
    text = LATEX % "\n\n".join(parts)
    assert _balance(text) == (0, 0)
    for method in ("extract", FAST):
        for ratio in (0.5, 0.2):
            out = compress(text, method=method, ratio=ratio, input_format="latex").text
            assert _balance(out) == (0, 0), (method, ratio)
            assert out.count("\\begin{itemize}") == out.count("\\end{itemize}"), (method, ratio)
            assert "\\textsc{bce" not in out.replace("\\textsc{bce}", "")  # a brace is not punctuation to trim


def test_rebalance_closes_after_the_last_kept_word_and_drops_strays():
    from promptzip.formats.latex import rebalance

    src = r"A \emph{Prior Analytics} and \textbf{bold words} end \begin{quote} said so \end{quote}"
    assert rebalance(src, r"A \emph{Prior and words} end \begin{quote} said") == \
        "A \\emph{Prior} and words end \\begin{quote} said\n\\end{quote}"
    assert rebalance(src, "a rewritten summary {") == "a rewritten summary {"  # not words of the source


# -- scripts without spaces, giant words ------------------------------------------------

def test_chinese_holds_the_ratio():
    text = "北京是中华人民共和国的首都，也是全国的政治中心和文化中心。" * 20
    for ratio in (0.5, 0.2):
        res = compress(text, ratio=ratio, input_format="text")
        assert res.text.strip() and abs(res.report.ratio - ratio) <= 0.03
        assert " " not in res.text.strip()  # pieces of one run are joined without spaces


def test_a_word_longer_than_the_budget_is_cut_not_dropped():
    res = compress("ab" * 20000 + "\n", method=FAST, ratio=0.3)
    assert len(res.text) > 1000 and abs(res.report.ratio - 0.3) <= 0.03


@needs_models
def test_a_giant_word_is_kept_or_dropped_whole_never_cut(tmp_path):
    """A LaTeX reference list or a prefixed hash (longer than GIANT_WORD, shorter than GIANT_WHOLE)
    is one item: no output holds a part of it (it was cut into 16-character pieces, and the kept
    ones were glued: `ols-of-db-0,tabl1,table:...`)."""
    ref = r"\cref{" + ",".join(f"table:symbols-of-db-{i}" for i in range(8)) + "}"
    hashed = "sha256:" + "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
    prose = ("We trained every model for two hundred epochs with the same schedule and report the mean of "
             "three seeds, which varied little between runs of the same network. ")
    text = f"The symbols are listed in {ref} for every database. " + prose * 3 + f"The file is {hashed} here.\n"
    for ratio in (0.5, 0.33, 0.2):
        out = compress(text, method="extract", ratio=ratio, input_format="text").text
        for giant in (ref, hashed):
            pieces = [giant[i:i + 16] for i in range(0, len(giant), 16)]
            assert giant in out or not any(p in out for p in pieces[1:-1]), (ratio, out)
    long_word = "".join(f"segment{i:03d}-" for i in range(60))  # 720 characters: thinned in pieces
    out = compress(prose + long_word + " " + prose, method="extract", ratio=0.3, input_format="text").text
    assert long_word not in out
    for kept in out.split():
        assert kept in prose or kept in long_word  # a space where pieces were dropped between, not glued


def test_empty_and_blank_inputs():
    for fmt in ("json", "csv", "log", "latex", "jsonl"):
        res = compress("", method=FAST, ratio=0.5, input_format=fmt)
        assert res.text == ""
    assert json.loads(compress("[]", method=FAST, ratio=0.5).text) == []


# -- property test over generated documents of every format ------------------------------

def _render(kind: str, rows: list[list[str]]) -> str:
    if kind == "json":
        return json.dumps([{"k": r[0], "v": r[1:]} for r in rows], indent=1)
    if kind == "jsonl":
        return "".join(json.dumps({"k": r[0], "v": r[1:]}) + "\n" for r in rows)
    if kind == "csv":
        buf = io.StringIO()
        csv.writer(buf, lineterminator="\n").writerows([["a", "b", "c"], *[r[:3] for r in rows]])
        return buf.getvalue()
    if kind == "log":
        return "".join(f"2024-01-01T00:00:{i % 60:02d}Z INFO {' '.join(r)}\n" for i, r in enumerate(rows))
    if kind == "code":  # a Python module: a function per row, a comment, a docstring, a branch
        return "import os\n\n" + "".join(
            f"def f{i}(a):\n    # {' '.join(r)}\n    {json.dumps(r[0])}\n    if a:\n        return {json.dumps(r)}\n"
            f"    else:\n        x = {json.dumps(r[1])}\n        return x\n\n\n" for i, r in enumerate(rows))
    if kind == "html":
        return ("<!DOCTYPE html><html><head><script>var hidden = 1;</script></head><body><article>"
                + "".join(f"<p>{' '.join(r)}.</p>" for r in rows) + "</article></body></html>")
    if kind == "latex":
        return ("\\documentclass{article}\n% a comment\n\\begin{document}\n"
                + "\n\n".join(" ".join(r) + "." for r in rows) + "\n\\end{document}\n")
    return "\n\n".join(" ".join(r) + "." for r in rows) + "\n"


_word = st.text(alphabet=st.characters(codec="utf-8", categories=("L", "N", "P")), min_size=1, max_size=12)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(kind=st.sampled_from(["json", "jsonl", "csv", "log", "code", "html", "latex", "text"]),
       rows=st.lists(st.lists(_word, min_size=3, max_size=6), min_size=40, max_size=80),
       ratio=st.sampled_from([0.5, 0.33, 0.2]))
def test_property_valid_output_within_bounds(kind, rows, ratio):
    text = _render(kind, rows)
    res = compress(text, method=FAST, ratio=ratio, input_format=kind)
    assert res.text.strip()
    if kind == "json":
        json.loads(res.text)
    elif kind == "jsonl":
        assert all(json.loads(x) is not None for x in res.text.splitlines())
    elif kind == "csv":
        out = list(csv.reader(io.StringIO(res.text)))
        assert out[0] == ["a", "b", "c"] and all(len(r) == 3 for r in out)
    elif kind == "code":
        import ast

        ast.parse(text)  # the generated module is valid, so the output must be too
        ast.parse(res.text)
        src = iter(text.splitlines())
        assert all(any(line == x for x in src) for line in res.text.splitlines() if "lines" not in line)
    elif kind == "html":
        assert "<p>" not in res.text and "hidden" not in res.text
    r = res.report
    assert r.ratio <= ratio + 0.03 or r.output_tokens - ratio * r.input_tokens <= 2
    if not (r.format_details or {}).get("all_fits"):
        assert r.ratio >= ratio - 0.03 or ratio * r.input_tokens - r.output_tokens <= 2


# -- through the CLI ------------------------------------------------------------------------

def _cli(args, stdin: str | None = None):
    return subprocess.run([sys.executable, "-m", "promptzip", *args], input=stdin, capture_output=True,
                          text=True, cwd=ROOT, timeout=300)


def test_cli_stdin_is_sniffed_and_output_ends_with_a_newline():
    p = _cli(["compress", "-m", FAST, "-r", "0.3"], stdin=json.dumps(records(100), indent=2) + "\n")
    assert p.returncode == 0, p.stderr
    assert p.stdout.endswith("\n") and json.loads(p.stdout)
    assert "json (content)" in p.stderr


def test_cli_input_format_option(tmp_path):
    f = tmp_path / "data.txt"
    f.write_text(table_text(80))
    p = _cli(["compress", str(f), "-m", FAST, "-r", "0.3", "--input-format", "csv", "--format", "json"])
    assert p.returncode == 0, p.stderr
    report = json.loads(p.stdout)["report"]
    assert report["input_format"] == "csv" and report["format_reason"] == "option"


def test_batch_picks_the_handler_by_extension(tmp_path):
    src, out = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    (src / "a.json").write_text(json.dumps(records(80)))
    (src / "b.csv").write_text(table_text(80))
    (src / "c.log").write_text(log_text(200))
    p = _cli(["batch", str(src), "-o", str(out), "-m", FAST, "-r", "0.3", "-q"])
    assert p.returncode == 0, p.stderr
    json.loads((out / "a.json").read_text())
    assert next(csv.reader(io.StringIO((out / "b.csv").read_text()))) == ["id", "name", "comment, quoted", "score"]
    journal = [json.loads(x) for x in (out / "promptzip-report.jsonl").read_text().splitlines()]
    assert {r["path"]: r["report"]["input_format"] for r in journal} == {"a.json": "json", "b.csv": "csv",
                                                                          "c.log": "log"}


def test_a_changed_model_file_is_refused(tmp_path):
    folder = tmp_path / "model"
    shutil.copytree(ROOT / "models" / "extract-minilm", folder)
    data = bytearray((folder / "model.int8.onnx").read_bytes())
    data[len(data) // 2] ^= 1
    (folder / "model.int8.onnx").write_bytes(bytes(data))
    with pytest.raises(ModelError, match="does not match its manifest"):
        compress("Some text to compress. Another sentence.", ratio=0.5, model=str(folder))
    p = _cli(["compress", "-r", "0.5", "-p", f"model={folder}"], stdin="Some text. More text here.\n")
    assert p.returncode == 3 and "model.int8.onnx" in p.stderr


def test_stdin_document_reads_from_its_start(monkeypatch):
    from promptzip.source import open_document

    class In:
        buffer = io.BytesIO(b"hello from a pipe\n")

        def isatty(self):
            return False

    monkeypatch.setattr(sys, "stdin", In())
    with open_document(None) as doc:
        assert doc.read_text() == "hello from a pipe\n"


@needs_shared
@pytest.mark.parametrize("kind", ["json", "csv", "logs", "latex"])
def test_shared_formats_valid_and_on_ratio(kind):
    for path in sorted((SHARED / "formats" / kind).iterdir())[:3]:
        res = compress(path.read_text(), method=FAST, ratio=0.33, input_format=detect("", path.name).format)
        assert res.text.strip(), path
        assert res.report.ratio <= 0.33 + 0.03, path
        if kind == "json":
            fmt = detect("", path.name).format
            if fmt == "jsonl":
                [json.loads(x) for x in res.text.splitlines()]
            else:
                json.loads(res.text)


def test_a_ratio_off_by_more_than_003_warns():
    # three rows of ~300 tokens: whole rows cannot land near half of the table
    text = "a,b\n" + "".join(f"{i},{' '.join(['word'] * 300)}\n" for i in range(3))
    res = compress(text, method=FAST, ratio=0.5, input_format="csv")
    assert abs(res.report.ratio - 0.5) > 0.03
    assert any("achieved ratio" in w for w in res.report.warnings)
    assert len(list(csv.reader(io.StringIO(res.text)))) >= 2  # the header and a whole row


def test_html_tidy_drops_reference_marks_and_local_link_targets():
    from promptzip.formats.html import _tidy

    md = ("Mozilla<sup>[\\[1\\]](#cite_note-1)</sup> is run by the [Mozilla Foundation](/wiki/MF) "
          "and [Mozilla Corp](https://mozilla.org/corp).\n## History\\[[edit](/w/index.php?a=edit)\\]")
    assert _tidy(md) == ("Mozilla is run by the Mozilla Foundation and [Mozilla Corp](https://mozilla.org/corp)."
                         "\n## History")


@pytest.mark.parametrize("fmt", ["csv", "log", "json"])
def test_target_tokens_is_a_cap_for_every_handler(fmt):
    text = {"csv": table_text(120), "log": log_text(200), "json": json.dumps(records(150))}[fmt]
    res = compress(text, method=FAST, target_tokens=700, input_format=fmt)
    assert 600 <= res.report.output_tokens <= 700


# -- hostile input: nothing empty while the input has content ---------------------------------------
HOSTILE = {
    "deep json": ("[" * 5000 + "]" * 5000 + "\n", "auto", "lexical", 0.5),
    "one-line json forced csv": (json.dumps([{"id": i, "text": "word " * 20} for i in range(400)]) + "\n",
                                 "csv", "truncate", 0.5),
    "bad jsonl line": ('{"a": 1, "b": "hello world"}\n{bad line\n{"a": 2}\n', "jsonl", "truncate", 0.33),
    "markdown table alone": ("| name | value | unit |\n|---|---|---|\n| pool | 64 | conns |\n| rate | 4.1 | pct |\n"
                             "| rollback | 18:40 | time |\n", "markdown", "lexical", 0.5),
    "six-line python": ("import sys\n\ndef main():\n    x = int(sys.argv[1])\n    print(x * 2)\n\nmain()\n", "code",
                        "lexical", 0.5),
    "json block as text": (json.dumps({"k": ["v" * 3] * 300}) + "\n", "text", "truncate", 0.3),
}


@pytest.mark.parametrize("name", list(HOSTILE))
def test_hostile_inputs_are_compressed_not_emptied(name):
    text, fmt, method, ratio = HOSTILE[name]
    res = compress(text, method=method, ratio=ratio, input_format=fmt)
    assert res.text.strip(), name
    assert res.report.output_tokens <= ratio * res.report.input_tokens + 0.03 * res.report.input_tokens + 3


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(kind=st.sampled_from(["json", "jsonl", "csv", "log", "code", "latex", "text"]),
       forced=st.sampled_from(["json", "jsonl", "csv", "tsv", "log", "code", "latex", "text", "markdown"]),
       rows=st.lists(st.lists(_word, min_size=3, max_size=6), min_size=5, max_size=60),
       ratio=st.sampled_from([0.5, 0.33, 0.2]), method=st.sampled_from(["lexical", "truncate"]))
def test_property_a_forced_wrong_format_never_empties_the_output(kind, forced, rows, ratio, method):
    text = _render(kind, rows)
    res = compress(text, method=method, ratio=ratio, input_format=forced)
    assert res.text.strip() or ratio * res.report.input_tokens < 1


def test_html_title_and_date_come_first_and_count_in_the_budget():
    pytest.importorskip("trafilatura")
    paras = "".join(f"<p>Paragraph {i}: a solar sail uses the pressure of sunlight on a large mirror to "
                    f"move a spacecraft, and mission {i} tested it in orbit.</p>" for i in range(30))
    page = (PAGE % paras).replace("<title>T</title>", '<title>Sailing on light</title><meta property='
                                  '"article:published_time" content="2021-03-04T10:00:00Z">')
    res = compress(page, method=FAST, ratio=0.2, input_format="html")
    assert res.text.startswith("# Solar sails\n\n2021-03-04\n\nParagraph 0")  # trafilatura takes the h1
    assert res.text.count("Solar sails") == 1
    assert abs(res.report.ratio - 0.2) <= 0.03
    res = compress(page.replace("<h1>Solar sails</h1>", ""), method=FAST, ratio=0.2, input_format="html")
    assert res.text.startswith("# Sailing on light\n\n2021-03-04\n\nParagraph 0")


def test_html_link_alone_in_a_paragraph_goes_back_into_its_sentence():
    from promptzip.formats.html import _tidy

    md = "See\n\n[the What's New document](https://docs.example.org/new)for more.\n\n## Links\n\n[a](https://a.b)\n"
    assert _tidy(md) == ("See [the What's New document](https://docs.example.org/new) for more.\n\n## Links\n\n"
                         "[a](https://a.b)\n")


PREAMBLE = "".join(
    [r"\documentclass[12pt]{report}" + "\n", "\n"]
    + [f"% Group {g}: the packages for feature {g} of the thesis; remove them if no chapter needs it\n"
       f"% (each comment line is what a template explains)\n\\usepackage[opt{g}]{{pkg{g}}}\n\n" for g in range(30)]
    + ["\\hypersetup{\n  colorlinks=true,\n  linkcolor=blue,\n}\n\n"]
    + [f"% macro {i}\n\\newcommand{{\\mac{i}}}{{\\mathbf{{x}}_{{{i}}}}}\n" for i in range(20)])


@pytest.mark.parametrize("ratio", [0.5, 0.33])
def test_latex_preamble_only_keeps_whole_statements_on_ratio(ratio):
    res = compress(PREAMBLE, method="extract", ratio=ratio, input_format="latex")
    assert abs(res.report.ratio - ratio) <= 0.03, res.report.ratio
    assert "\n\n\n" not in res.text
    if ratio < 0.4:  # the comments all went first (at 0.5 dropping some of them is enough)
        assert "%" not in res.text and r"\newcommand{\mac0}" in res.text
    lines = set(PREAMBLE.splitlines())
    assert all(line in lines for line in res.text.splitlines())  # whole lines only
    assert res.text.startswith(r"\documentclass") and res.text.count("{") == res.text.count("}")


def test_dropped_comment_lines_leave_no_blank_runs():
    from promptzip.formats.base import join_kept

    lines = ["a\n", "\n", "% c\n", "\n", "b\n", "% d\n", "\n", "\n", "c\n"]
    assert join_kept(lines, [not x.startswith("%") for x in lines]) == "a\n\nb\n\n\nc\n"


def test_verse_ending_in_semicolons_is_prose_not_code():
    verse = ("Behold, how good and how pleasant it is for brethren to dwell together in unity!\n"
             "It is like the precious ointment upon the head, that ran down upon the beard, even the beard: that "
             "went down to the skirts of his garments;\n"
             "As the dew of the hills, and as the dew that descended upon the mountains: for there the blessing "
             "was commanded, even life for evermore.\n")
    assert sniff(verse).format == "text"
    res = compress(verse, method=FAST, ratio=0.5)
    assert "// ..." not in res.text and abs(res.report.ratio - 0.5) <= 0.1
