"""Input formats: the second axis beside the compression methods.

Detection runs once, up front (`detect`): an explicit `--input-format`, else the file
extension, else content sniffing of the first bytes. The detected format picks one handler:

| format            | handler                                                          |
|-------------------|------------------------------------------------------------------|
| text, markdown    | the pipeline as it is (segment -> score -> select), no handler   |
| json, jsonl       | `jsondoc`: keeps keys and structure, thins arrays, compresses    |
|                   | long strings with the method; the output parses                  |
| csv, tsv          | `table`: the header and whole rows; the output parses            |
| html              | `html`: main text to Markdown (trafilatura), then the method     |
| log               | `logs`: lines grouped by template (drain3), repeats collapsed    |
| code              | `code`: whole lines, bodies elided behind a marker line          |
| latex             | `latex`: comments and preamble first, then the method            |

A handler gets the whole text and a `FormatContext` (budget, query, token counter and a way to
run the chosen method on plain text) and returns a `FormatOutput`. Methods never learn which
format they are thinning.
"""

from __future__ import annotations

from .base import FormatContext, FormatOutput, Handler
from .detect import FORMATS, StreamInfo, detect
from .handlers import handler_for

# Bump when a handler's output for the same input and settings changes (batch resume keys on it).
FORMATS_VERSION = "1"

__all__ = ["FORMATS", "FORMATS_VERSION", "FormatContext", "FormatOutput", "Handler", "StreamInfo", "detect",
           "handler_for"]
