"""One file of a batch: its settings (`BatchSettings`, whose key says when an output is stale), the
job, and `run_job`, which compresses it into a temporary file and renames it into place. Both
engines run these: the local process pool (`batch`) and Ray (`ray`). Floor: batch work, on the
public entry (`api`).
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .api import compress_file
from .compressors import get_method
from .context import Request
from .errors import PromptzipError
from .formats import FORMATS_VERSION
from .tokens import load_tokenizer

TMP_MARK = ".pztmp-"


@dataclass(frozen=True)
class BatchSettings:
    method: str = "extract"
    request: Request = field(default_factory=Request)
    params: tuple[tuple[str, Any], ...] = ()
    tokenizer: str = "cl100k_base"
    errors: str = "strict"

    def describe(self) -> dict[str, Any]:
        cls = get_method(self.method)
        counter = load_tokenizer(self.tokenizer)
        compressor = cls(**dict(self.params))
        return {
            "method": self.method,
            "method_version": cls.version,
            "params": compressor.settings,
            "model_sha256": compressor.model_id(),
            "ratio": self.request.ratio,
            "target_tokens": self.request.target_tokens,
            "query": self.request.query,
            "force": list(self.request.force),
            "input_format": self.request.input_format,
            "language": self.request.language,
            "formats_version": FORMATS_VERSION,
            "tokenizer": counter.name,
            "tokenizer_sha256": counter.sha256,
            "errors": self.errors,
        }

    def key(self) -> str:
        blob = json.dumps(self.describe(), sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


@dataclass
class Job:
    rel: str
    src: str
    dst: str
    input_sha256: str
    settings: BatchSettings
    key: str


class _HashingWriter:
    def __init__(self, f) -> None:
        self._f = f
        self.sha = hashlib.sha256()

    def write(self, data: bytes) -> int:
        self.sha.update(data)
        return self._f.write(data)

    def flush(self) -> None:
        self._f.flush()


def run_job(job: Job) -> dict[str, Any]:
    """Compress one file (in a worker process or inline); never raises for bad input."""
    record: dict[str, Any] = {"path": job.rel, "input_sha256": job.input_sha256, "settings": job.key}
    dst = Path(job.dst)
    tmp = dst.with_name(f".{dst.name}{TMP_MARK}{os.getpid()}")
    try:
        dst.parent.mkdir(parents=True, exist_ok=True)
        s = job.settings
        with open(tmp, "wb") as f:
            writer = _HashingWriter(f)
            report = compress_file(job.src, writer, s.method, s.request, dict(s.params), s.tokenizer,
                                   s.errors)
        os.replace(tmp, dst)
        record.update(status="ok", output_sha256=writer.sha.hexdigest(), report=report.to_dict())
    except PromptzipError as exc:
        record.update(status="failed", error=exc.render())
    except OSError as exc:
        record.update(status="failed", error=f"Error: {exc.strerror or exc}: {exc.filename or job.src}.")
    except Exception as exc:  # a bug must not stop the batch; it is recorded
        record.update(status="failed", error=f"Error: unexpected {type(exc).__name__}: {exc}.")
    finally:
        tmp.unlink(missing_ok=True)
    return record
