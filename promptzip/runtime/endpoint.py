"""An OpenAI-compatible chat endpoint as a generation backend (llama.cpp's server, Ollama,
vLLM, OpenAI itself): `POST {base}/chat/completions` with greedy settings.

Standard library only (urllib): no client package to install for a feature many users never
touch. Requests run concurrently from the rewriter's thread pool (`concurrency`); each is
retried on connection errors, timeouts, 408/409/429 and 5xx with exponential backoff (honouring
`Retry-After`); 4xx answers other than those fail at once, since retrying cannot fix a bad model
name or key. The key is read from an environment variable (never from a flag, which would land
in shell history) and sent as a Bearer token.
"""

from __future__ import annotations

import json
import os
import threading
import time
import urllib.error
import urllib.request

from ..errors import PromptzipError, UsageError

RETRY_STATUS = frozenset({408, 409, 429, 500, 502, 503, 504})


class EndpointError(PromptzipError):
    """The endpoint did not give an answer (after retries); `status` is its last HTTP status
    (None: no HTTP answer at all)."""

    def __init__(self, message: str, hint: str = "", status: int | None = None) -> None:
        super().__init__(message, hint)
        self.status = status


def chat_url(endpoint: str) -> str:
    """`http://host:port`, `.../v1` or the full `.../chat/completions` all name the same thing."""
    return api_url(endpoint, "chat/completions")


def api_url(endpoint: str, path: str) -> str:
    """`path` (e.g. `completions`) under the endpoint's `/v1` base, however the endpoint was given."""
    url = endpoint.strip().rstrip("/")
    if not url.startswith(("http://", "https://")):
        raise UsageError(f"--endpoint must be an http(s) URL, got {endpoint!r}",
                         "For example: --endpoint http://127.0.0.1:8080/v1")
    for known in ("/chat/completions", "/completions"):
        if url.endswith(known):
            url = url[: -len(known)]
            break
    if not url.endswith("/v1"):
        url += "/v1"
    return f"{url}/{path}"


class EndpointGenerator:
    def __init__(self, endpoint: str, model: str, key_env: str = "PROMPTZIP_API_KEY", concurrency: int = 4,
                 timeout: float = 120.0, retries: int = 3, backoff: float = 0.5) -> None:
        if not model:
            raise UsageError("--endpoint needs --model NAME", "The name the server knows the model by.")
        self.url = chat_url(endpoint)
        self.model = model
        self.key = os.environ.get(key_env) or None
        self.concurrency = max(1, concurrency)
        self.timeout, self.retries, self.backoff = timeout, max(0, retries), backoff
        self.id = f"endpoint:{self.url}:{model}"
        self.sha256 = None
        self.generated_tokens = 0
        self.seconds = 0.0
        self.requests = 0
        self.retried = 0
        # llama.cpp's server says where its time went (`timings`): prompt tokens read and their ms,
        # tokens generated and their ms, summed over the requests that reported them
        self.timings = {"prompt_n": 0, "prompt_ms": 0.0, "predicted_n": 0, "predicted_ms": 0.0}
        self._lock = threading.Lock()

    def complete(self, messages: list[dict], max_tokens: int, source: str | None = None,
                 extra: dict | None = None) -> str:
        """The chat completion's text (greedy). `extra`: more request fields a server understands
        (llama.cpp's `grammar`)."""
        t0 = time.perf_counter()
        data = self.post(self.url, {"model": self.model, "messages": messages, "max_tokens": max_tokens,
                                    "temperature": 0, "stream": False, **(extra or {})})
        try:
            text = data["choices"][0]["message"]["content"] or ""
        except (KeyError, IndexError, TypeError) as exc:
            raise EndpointError(f"unexpected answer from {self.url}: {exc!r}",
                                "Is it an OpenAI-compatible chat endpoint?") from None
        used = (data.get("usage") or {}).get("completion_tokens")
        timings = data.get("timings") if isinstance(data.get("timings"), dict) else {}
        with self._lock:
            for k in self.timings:
                if isinstance(timings.get(k), (int, float)):
                    self.timings[k] += timings[k]
            self.requests += 1
            self.seconds += time.perf_counter() - t0
            self.generated_tokens += int(used) if used is not None else len(text.split())
        return text.strip()

    def post(self, url: str, payload: dict, retries: int | None = None) -> dict:
        """`payload` as JSON to `url`; the answer's JSON. Retried as the module says (`retries`
        overrides the generator's count)."""
        body = json.dumps(payload).encode("utf-8")
        headers = {"Content-Type": "application/json"}
        if self.key:
            headers["Authorization"] = f"Bearer {self.key}"
        tries = (self.retries if retries is None else retries) + 1
        last, status = "", None
        for attempt in range(tries):
            if attempt:
                with self._lock:
                    self.retried += 1
            wait = self.backoff * (2 ** attempt)
            try:
                req = urllib.request.Request(url, data=body, headers=headers, method="POST")
                with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                    data = json.loads(resp.read().decode("utf-8"))
                if not isinstance(data, dict):
                    raise ValueError("not a JSON object")
                return data
            except urllib.error.HTTPError as exc:
                detail = exc.read().decode("utf-8", "replace")[:200]
                last, status = f"HTTP {exc.code} from {url}: {detail}", exc.code
                if exc.code not in RETRY_STATUS:
                    raise EndpointError(last, "Check the model name and the API key variable.", exc.code) from None
                after = exc.headers.get("Retry-After") if exc.headers else None
                if after and after.isdigit():
                    wait = max(wait, float(after))
            except (urllib.error.URLError, TimeoutError, ConnectionError, OSError) as exc:
                last, status = f"cannot reach {url}: {getattr(exc, 'reason', exc)}", None
            except ValueError as exc:
                last, status = f"unexpected answer from {url}: {exc!r}", 200
            if attempt < tries - 1:
                time.sleep(wait)
        raise EndpointError(last + f" (after {tries} tries)",
                            "Check that the server is running and the URL is right.", status)
