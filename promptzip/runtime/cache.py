"""A disk cache of generated completions, so re-runs and resumed batches do not generate again.

The key is the sha256 of everything that determines a greedy completion: the backend's id
(the local GGUF's name and sha256, or the endpoint URL and model name), the messages
(chunk text, budget, query and prompt wording are all inside them) and the token limit. Entries
are small JSON files under `$PROMPTZIP_HOME/cache/completions/`, written atomically, so two
processes can share the cache and a killed run leaves no torn entry. `PROMPTZIP_NO_CACHE=1`
turns it off.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from ..config import home
from ..fileutil import atomic_write


class CompletionCache:
    def __init__(self, folder: Path | None = None, enabled: bool | None = None) -> None:
        self.folder = folder or home() / "cache" / "completions"
        self.enabled = (os.environ.get("PROMPTZIP_NO_CACHE", "") in ("", "0")) if enabled is None else enabled
        self.hits = self.misses = 0

    @staticmethod
    def key(backend: str, messages: list[dict], max_tokens: int) -> str:
        blob = json.dumps([backend, messages, max_tokens], ensure_ascii=False, sort_keys=True)
        return hashlib.sha256(blob.encode("utf-8")).hexdigest()

    def _path(self, key: str) -> Path:
        return self.folder / key[:2] / f"{key}.json"

    def get(self, key: str) -> str | None:
        if not self.enabled:
            return None
        try:
            text = json.loads(self._path(key).read_text(encoding="utf-8"))["text"]
        except (OSError, ValueError, KeyError, TypeError):
            self.misses += 1
            return None
        self.hits += 1
        return text

    def put(self, key: str, text: str) -> None:
        if not self.enabled:
            return
        with atomic_write(self._path(key)) as f:
            f.write(json.dumps({"text": text}, ensure_ascii=False).encode("utf-8"))
