"""The code handler: whole input lines in order, elision markers, parseable Python, budgets."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from promptzip.formats.base import FormatContext
from promptzip.formats.code import CodeHandler
from promptzip.formats.detect import LANGUAGES
from promptzip.tokens import load_tokenizer

CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpora" / "formats" / "code"
CORPUS_FILES = sorted(p.name for p in CORPUS.glob("*")) if CORPUS.is_dir() else []
INJECTED = "            checksum = zlib_crc(a)"
MARKER = re.compile(r"\s*(?:\.\.\.  # |# \.\.\. |// \.\.\. |-- \.\.\. )\d+ lines")


@pytest.fixture(scope="module")
def counter():
    return load_tokenizer("cl100k_base")


def run(counter, text: str, ratio: float, language: str | None, query: str | None = None):
    n = counter.count(text)
    ctx = FormatContext(counter, n, int(ratio * n), query=query, language=language)
    return CodeHandler().compress(text, ctx), n


def assert_subsequence(out: str, text: str) -> None:
    lines = iter(text.splitlines())
    for line in out.splitlines():
        if MARKER.fullmatch(line):
            continue
        assert any(line == src for src in lines), f"not an input line in order: {line!r}"


def py_module(n_funcs: int = 20) -> str:
    parts = ['"""A generated module."""', "import os", "import sys", "", "LIMIT = 10", ""]
    for k in range(n_funcs):
        parts += [
            f"def func_{k}(a, b=({k},\n           {k + 1})):",
            f'    """Do thing number {k}."""',
            "    # add things up",
            f"    total = a + {k}",
            "    for item in b:",
            "        if item > LIMIT:",
            "            total += item",
            "        elif item < 0:",
            "            total -= item",
            "        else:",
            "            total *= 2",
            "    try:",
            "        total = int(total)",
            "    except ValueError:",
            "        total = 0",
            "    finally:",
            "        pass",
            "    return total",
            "",
        ]
    parts += ["class Box:", '    """Only a docstring here."""', "", "class Pair:",
              "    @property", "    def left(self):", "        return self._left", ""]
    return "\n".join(parts) + "\n"


JS = """'use strict';
var path = require('path');

/**
 * Render a view.
 */
app.render = function render(name, options, callback) {
  var opts = {};
  if (typeof options === 'function' &&
      callback === undefined) {
    callback = options;
    options = {};
  }
  [1, 2, 3].forEach(function (x) {
    opts[x] = x * 2;
  });
  // done
  return tryRender(view, opts, callback);
};

app.listen = function listen() {
  var server = http.createServer(this);
  return server.listen.apply(server, arguments);
};
"""


@pytest.mark.parametrize("ratio", [0.5, 0.33, 0.2])
def test_python_output_parses_with_markers(counter, ratio):
    text = py_module()
    out, n = run(counter, text, ratio, "python")
    ast.parse(out.text)
    assert_subsequence(out.text, text)
    assert "...  # " in out.text  # an elided body is marked
    assert counter.count(out.text) <= int(ratio * n)
    assert out.details["lines_kept"] + out.details["markers"] == len(out.text.splitlines())


def test_python_structure_kept(counter):
    out, _ = run(counter, py_module(), 0.2, "python")
    lines = out.text.splitlines()
    assert "import os" in lines and "LIMIT = 10" in lines
    assert any(line.startswith("def func_") for line in lines)
    # a kept clause brings its statement, a kept decorator its def
    for k, line in enumerate(lines):
        if line.strip().startswith(("elif", "else:")):
            assert any(prev.strip().startswith("if ") for prev in lines[:k])
        if line.strip() == "@property":
            assert lines[k + 1].strip().startswith("def left")


def test_ratio_close_to_target(counter):
    text = py_module(18)
    assert 280 <= len(text.splitlines()) <= 400
    for ratio in (0.5, 0.33, 0.2):
        out, n = run(counter, text, ratio, "python")
        assert abs(counter.count(out.text) / n - ratio) <= 0.03


def test_query_keeps_the_matching_function(counter):
    head, tail = py_module(12).split("def func_7", 1)
    text = head + "def func_7" + tail.replace(
        "            total *= 2\n", "            total *= 2\n" + INJECTED + "\n", 1)
    out, _ = run(counter, text, 0.25, "python", query="checksum crc")
    ast.parse(out.text)
    assert INJECTED in out.text.splitlines()
    plain, _ = run(counter, text, 0.25, "python")
    assert INJECTED not in plain.text.splitlines()


def test_whole_input_when_it_fits(counter):
    text = py_module(2)
    n = counter.count(text)
    out = CodeHandler().compress(text, FormatContext(counter, n, n + 5, language="python"))
    assert out.text == text and out.all_fits
    assert out.details["lines_kept"] == out.details["lines_in"]


@pytest.mark.parametrize("ratio", [0.6, 0.4])
def test_brace_language_closers_follow_openers(counter, ratio):
    out, _ = run(counter, JS, ratio, "javascript")
    assert_subsequence(out.text, JS)
    assert out.text.strip()
    code = re.sub(r"//.*|'[^']*'", "", out.text)
    assert code.count("{") == code.count("}") and code.count("(") == code.count(")")
    assert "/**" not in out.text or " */" in out.text  # a block comment is one unit


def test_never_empty_when_a_line_fits(counter):
    text = py_module(3)
    out = CodeHandler().compress(text, FormatContext(counter, counter.count(text), 6,
                                                     language="python"))
    assert out.text.strip() and counter.count(out.text) <= 6
    ast.parse(out.text)


@pytest.mark.skipif(not CORPUS.is_dir(), reason="../shared/corpora is not beside this checkout")
@pytest.mark.parametrize("name", CORPUS_FILES)
def test_corpus_files(counter, name):
    text = (CORPUS / name).read_text()
    lang = LANGUAGES[Path(name).suffix]
    for ratio in (0.5, 0.33, 0.2):
        out, n = run(counter, text, ratio, lang)
        if lang == "python":
            ast.parse(out.text)
        assert_subsequence(out.text, text)
        assert ratio - 0.015 <= counter.count(out.text) / n <= ratio
