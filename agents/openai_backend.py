"""OpenAI-compatible chat servers (vLLM, llama.cpp, OpenAI) behind the Backend interface.

One ``POST {base_url}/chat/completions`` per prompt, ``concurrency`` in flight at once. With a
**pool** of servers (``base_url=[url_0, url_1, ...]``) the backend keeps to one of them
(``prefer=i``: worker i of a Ray run uses server ``i mod n``, so that server's prefix cache
helps) and moves a request to the next server when its own fails.

**Start-up check** (:meth:`OpenAIBackend.check`): ``GET {base_url}/models`` must answer 200 and
list the model. A 404 means the URL lacks ``/v1``; a 503 or a refused connection means the
server is still loading, so the check waits (up to ``startup_timeout_s``); a model name the
server does not list is an error naming the ones it does (llama.cpp would otherwise answer any
name with whatever it loaded). The served model's id and the server's kind are recorded
(:meth:`describe`).

**Parameters are sent explicitly, in each server's own names**, because a parameter left out
takes the server's default (llama-cpp-python applies repeat penalty 1.1, top-k 40 and min-p 0.05;
llama.cpp calls the repetition penalty ``repeat_penalty`` and ignores ``repetition_penalty``):

============== ================================ ====================================
server         repetition penalty / top-k off   also sent
============== ================================ ====================================
``vllm``       ``repetition_penalty``, -1       ``min_p=0``
``llama.cpp``  ``repeat_penalty``, 0            ``min_p=0``, ``typical_p=1``,
                                                ``top_logprobs=1`` with ``logprobs``
``openai``     cannot honour either: a warning  (official API)
============== ================================ ====================================

plus ``temperature`` (0 = greedy), ``top_p``, ``max_tokens``, ``presence_penalty`` and a seed per
prompt. ``server="auto"`` reads the kind from ``/models`` (``owned_by``).

**Failures.** A connection error, a timeout, HTTP 408/409/429 or 5xx is retried with
exponential backoff (``backoff_s * 2**k``, at most 10 s apart, with seeded jitter) on the
servers of the pool in turn, until ``retry_window_s`` has passed (long enough for a server to
restart). Any other HTTP error, or a request still failing at the end of the window, becomes a
``Generation`` with ``finish_reason="error"`` whose ``error`` names every URL tried: the episode
records it as failed (see :mod:`spgg_env.agents.episodes`), nothing is lost. ``timeout_s`` is
the whole request's limit, server queue included; ``connect_timeout_s`` only the connection's.

**Token counts.** Completion and prompt tokens come from the server's ``usage``.
:meth:`count_tokens` (the effort the env charges under ``token_counting="model"``) asks the
server's own tokenizer (``/tokenize`` of vLLM and llama.cpp), so effort is counted in the served
model's tokens on every backend; a local ``tokenizer=`` is used instead when named; for the
official API the ``usage`` count of a text this backend generated is used.
"""

from __future__ import annotations

import random
import threading
import time
import warnings
from collections import OrderedDict
from collections.abc import Callable, Hashable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import Any

import httpx

from spgg_env.agents.backend import (
    ChatPrompt,
    Generation,
    GenerationParams,
    per_prompt_params,
    per_prompt_seeds,
)

#: HTTP statuses worth retrying.
RETRY_STATUSES = frozenset({408, 409, 429, 500, 502, 503, 504})
SERVER_KINDS = ("auto", "vllm", "llama.cpp", "openai")
#: ``owned_by`` of ``/models`` entries -> server kind.
OWNERS = {"vllm": "vllm", "llamacpp": "llama.cpp", "llama.cpp": "llama.cpp", "me": "llama.cpp",
          "openai": "openai", "system": "openai", "openai-internal": "openai"}
MAX_BACKOFF_S = 10.0


class OpenAIBackend:
    """Chat completions over HTTP from one or several OpenAI-compatible servers.

    Args:
        base_url: The API root (``"http://127.0.0.1:8000/v1"``), or a list of them (a pool of
            servers of the same model).
        model: The model name the servers list (sent as ``"model"``).
        server: ``"auto"``, ``"vllm"``, ``"llama.cpp"`` or ``"openai"`` (see the module table).
        api_key: Sent as ``Authorization: Bearer``; local servers usually need none.
        timeout_s: Limit of one request, server queue included.
        connect_timeout_s: Limit of opening a connection.
        retry_window_s: How long a failing request keeps being retried (over the pool).
        backoff_s: Base of the exponential backoff between tries.
        concurrency: Requests in flight at once.
        logprobs: Ask for completion-token log-probabilities.
        tokenizer: Hub id or folder of a local tokenizer for :meth:`count_tokens`.
        check: Check at construction that the servers answer and list ``model``.
        startup_timeout_s: How long :meth:`check` waits for a server that is still loading.
        prefer: Index of the server to keep to (rotates the pool).
        seed: Seeds the backoff jitter.
        transport: An ``httpx`` transport (tests).

    Raises:
        ValueError: On a malformed URL or setting, or a server that does not list ``model``.
        ConnectionError: If ``check`` and no server of the pool answers in time.
    """

    def __init__(
        self,
        base_url: str | Sequence[str],
        model: str,
        *,
        server: str = "auto",
        api_key: str | None = None,
        timeout_s: float = 600.0,
        connect_timeout_s: float = 10.0,
        retry_window_s: float = 120.0,
        backoff_s: float = 0.5,
        concurrency: int = 8,
        logprobs: bool = False,
        tokenizer: str | None = None,
        check: bool = True,
        startup_timeout_s: float = 300.0,
        prefer: int = 0,
        seed: int = 0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        urls = [base_url] if isinstance(base_url, str) else list(base_url)
        bad = [u for u in urls if not str(u).startswith(("http://", "https://"))]
        if not urls or bad:
            raise ValueError(f"base_url must be http(s) URLs, got {bad or urls!r}")
        if server not in SERVER_KINDS:
            raise ValueError(f"server must be one of {SERVER_KINDS}, got {server!r}")
        if concurrency < 1 or timeout_s <= 0 or retry_window_s < 0 or connect_timeout_s <= 0:
            raise ValueError(
                f"need concurrency >= 1, timeout_s > 0, connect_timeout_s > 0 and "
                f"retry_window_s >= 0; got {concurrency}, {timeout_s}, {connect_timeout_s}, "
                f"{retry_window_s}"
            )
        urls = [u.rstrip("/") for u in urls]
        shift = prefer % len(urls)
        self.base_urls = urls[shift:] + urls[:shift]
        self.model = model
        self.kind = server
        self.served_model: str | None = None
        self.retry_window_s = float(retry_window_s)
        self.backoff_s = float(backoff_s)
        self.concurrency = int(concurrency)
        self.logprobs = bool(logprobs)
        self.startup_timeout_s = float(startup_timeout_s)
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        timeout = httpx.Timeout(timeout_s, connect=connect_timeout_s)
        self._client = httpx.Client(timeout=timeout, headers=headers, transport=transport,
                                    limits=httpx.Limits(max_connections=concurrency * 2))
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self._tokenizer_name = tokenizer
        self._local_count = _local_counter(tokenizer) if tokenizer else None
        self._generated: OrderedDict[str, int] = OrderedDict()  # text -> usage tokens
        self._counts: OrderedDict[str, int] = OrderedDict()  # text -> /tokenize count
        self._unsupported: set[str] = set()
        if check:
            self.check()
        elif self.kind == "auto":
            self.kind = "openai"  # nothing known: send only the official API's fields

    @property
    def base_url(self) -> str:
        """The server this backend keeps to."""
        return self.base_urls[0]

    # ------------------------------------------------------------- start-up
    def check(self) -> None:
        """Check every server of the pool (see the module docstring); at least one must
        answer and list the model.

        Raises:
            ValueError: If a server answers 404 (no ``/v1``?) or does not list the model.
            ConnectionError: If no server answers within ``startup_timeout_s``.
        """
        problems = []
        for url in self.base_urls:
            try:
                listed = self._listed_models(url)
            except ConnectionError as error:
                problems.append(str(error))
                continue
            ids = [str(m.get("id")) for m in listed]
            match = next((m for m in listed if m.get("id") == self.model), None)
            if match is None:
                raise ValueError(f"{url}/models does not list model {self.model!r} (it serves "
                                 f"{ids}); use one of those names")
            if self.served_model is None:
                self.served_model = str(match["id"])
                if self.kind == "auto":
                    self.kind = OWNERS.get(str(match.get("owned_by", "")).lower(), "openai")
        if self.served_model is None:
            raise ConnectionError("; ".join(problems))
        if problems:
            warnings.warn(f"some servers of the pool are down: {'; '.join(problems)}",
                          stacklevel=2)

    def _listed_models(self, url: str) -> list[dict[str, Any]]:
        """``GET {url}/models``, waiting while the server loads."""
        deadline = time.monotonic() + self.startup_timeout_s
        delay = 0.25
        while True:
            try:
                response = self._client.get(f"{url}/models")
                problem = f"HTTP {response.status_code}: {response.text[:200]}"
                if response.status_code == 200:
                    return list(response.json().get("data") or [])
                if response.status_code == 404:
                    raise ValueError(f"{url}/models answered 404: is base_url the API root? "
                                     "It usually ends in /v1 (e.g. http://127.0.0.1:8000/v1)")
                if response.status_code not in RETRY_STATUSES:
                    raise ValueError(f"{url}/models answered {problem}")
            except httpx.HTTPError as error:
                problem = f"{type(error).__name__}: {error}"
            if time.monotonic() + delay > deadline:
                raise ConnectionError(
                    f"the OpenAI-compatible server at {url}/models did not become ready in "
                    f"{self.startup_timeout_s:g} s ({problem}); start it (e.g. `vllm serve "
                    "MODEL` or `llama-server -m MODEL.gguf`) or fix base_url")
            time.sleep(delay)  # 503 "loading model" or not listening yet
            delay = min(delay * 2, MAX_BACKOFF_S)

    def describe(self) -> dict[str, Any]:
        """Servers, kind, requested and served model, for result files."""
        return {"backend": "openai", "model": self.model, "served_model": self.served_model,
                "server": self.kind, "base_urls": list(self.base_urls),
                "tokenizer": self._tokenizer_name, "unsupported_params": sorted(self._unsupported)}

    # --------------------------------------------------------------- tokens
    def count_tokens(self, text: str) -> int:
        """Tokens of ``text`` in the served model's tokenizer (see the module docstring)."""
        if self._local_count is not None:
            return self._local_count(text)
        with self._lock:
            if text in self._counts:
                return self._counts[text]
            if self.kind == "openai" and text in self._generated:
                return self._generated[text]
        count = self._tokenize(text)
        with self._lock:
            _remember(self._counts, text, count)
        return count

    def _tokenize(self, text: str) -> int:
        if self.kind == "openai":
            raise ValueError("the official OpenAI API has no tokenizer endpoint and this text "
                             "was not generated here: name a local tokenizer= (e.g. the model's "
                             "hub id) or use token_counting='approx'")
        root = self.base_url.removesuffix("/v1")
        body = ({"model": self.served_model or self.model, "prompt": text,
                 "add_special_tokens": False} if self.kind == "vllm"
                else {"content": text, "add_special": False})
        response = self._client.post(f"{root}/tokenize", json=body)
        if response.status_code != 200:
            raise RuntimeError(f"POST {root}/tokenize: HTTP {response.status_code}: "
                               f"{response.text[:200]}")
        payload = response.json()
        return int(payload["count"]) if "count" in payload else len(payload["tokens"])

    # ------------------------------------------------------------- generate
    def generate(
        self,
        prompts: Sequence[ChatPrompt],
        params: Sequence[GenerationParams] | GenerationParams,
        *,
        seed: int | Sequence[int] | None = None,
    ) -> list[Generation]:
        """One request per prompt, ``concurrency`` at a time; failures are recorded, not raised."""
        params = per_prompt_params(prompts, params)
        seeds = per_prompt_seeds(len(prompts), seed)
        with ThreadPoolExecutor(max_workers=self.concurrency) as pool:
            return list(pool.map(self._one, prompts, params, seeds))

    def session(self, max_batch: int) -> _HttpSession:
        """A session for the engine's continuous schedule: ``min(max_batch, concurrency)``
        requests in flight; each freed slot is refilled as soon as a reply arrives."""
        return _HttpSession(self, min(max_batch, self.concurrency))

    def close(self) -> None:
        """Close the HTTP connection pool."""
        self._client.close()

    def body(self, prompt: ChatPrompt, params: GenerationParams, seed: int | None) -> dict:
        """The JSON body of one request, in the server's own parameter names."""
        body: dict[str, Any] = {
            "model": self.model,
            "messages": list(prompt),
            "temperature": params.temperature,
            "top_p": params.top_p,
            "max_tokens": params.max_new_tokens,
            "presence_penalty": params.presence_penalty,
        }
        if seed is not None:
            body["seed"] = seed
        if self.kind == "vllm":
            body |= {"top_k": params.top_k or -1, "min_p": 0.0,
                     "repetition_penalty": params.repetition_penalty}
        elif self.kind == "llama.cpp":
            body |= {"top_k": params.top_k, "min_p": 0.0, "typical_p": 1.0,
                     "repeat_penalty": params.repetition_penalty, "cache_prompt": True}
        else:
            for name, neutral in (("top_k", 0), ("repetition_penalty", 1.0)):
                if getattr(params, name) != neutral and name not in self._unsupported:
                    self._unsupported.add(name)
                    warnings.warn(f"{name}={getattr(params, name)} cannot be sent to the official"
                                  " OpenAI API; it is ignored (recorded in describe())",
                                  stacklevel=3)
        if self.logprobs:
            body["logprobs"] = True
            if self.kind == "llama.cpp":
                body["top_logprobs"] = 1  # llama.cpp returns log-probs only with top_logprobs
        return body

    def _one(self, prompt: ChatPrompt, params: GenerationParams, seed: int | None) -> Generation:
        start = time.perf_counter()
        body = self.body(prompt, params, seed)
        problems: list[str] = []
        attempt = 0
        while True:
            url = self.base_urls[attempt % len(self.base_urls)]
            retry, problem, result = self._post(url, body)
            if result is not None:
                result.latency_s = time.perf_counter() - start
                result.extra["server"] = url
                if self.kind == "openai":
                    with self._lock:
                        _remember(self._generated, result.text, result.completion_tokens)
                return result
            problems.append(f"{url}: {problem}")
            delay = min(self.backoff_s * 2**attempt, MAX_BACKOFF_S)
            delay *= 1.0 + 0.1 * self._rng.random()
            attempt += 1
            if not retry or time.perf_counter() - start + delay > self.retry_window_s:
                break
            time.sleep(delay)
        return Generation(
            "", 0, 0, finish_reason="error",
            error=f"chat completion failed after {attempt} tries: " + " | ".join(problems[-4:]),
            latency_s=time.perf_counter() - start,
        )

    def _post(self, url: str, body: dict) -> tuple[bool, str, Generation | None]:
        """One try: ``(worth retrying, problem, generation or None)``."""
        try:
            response = self._client.post(f"{url}/chat/completions", json=body)
        except httpx.HTTPError as exc:  # connection refused, timeouts, protocol errors
            return True, f"{type(exc).__name__}: {exc}", None
        if response.status_code != 200:
            problem = f"HTTP {response.status_code}: {response.text[:300]}"
            return response.status_code in RETRY_STATUSES, problem, None
        try:
            return False, "", _parse(response.json())
        except (ValueError, KeyError, IndexError, TypeError) as exc:
            return False, f"malformed response ({type(exc).__name__}: {exc}): " \
                          f"{response.text[:300]}", None


class _HttpSession:
    """The engine's :class:`~spgg_env.agents.engine.Session` over an HTTP backend."""

    def __init__(self, backend: OpenAIBackend, slots: int) -> None:
        self.backend, self.slots = backend, slots
        self.pool = ThreadPoolExecutor(max_workers=slots)
        self.running: dict[Future, Hashable] = {}

    def room(self) -> int:
        return self.slots - len(self.running)

    def submit(self, key: Hashable, prompt: ChatPrompt, params: GenerationParams,
               seed: int) -> None:
        self.running[self.pool.submit(self.backend._one, prompt, params, seed)] = key

    def poll(self) -> list[tuple[Hashable, Generation]]:
        if not self.running:
            return []
        done, _ = wait(list(self.running), return_when=FIRST_COMPLETED)
        return [(self.running.pop(f), f.result()) for f in done]


def _parse(payload: dict[str, Any]) -> Generation:
    """A ``Generation`` from a chat completion JSON payload."""
    choice = payload["choices"][0]
    text = choice["message"].get("content") or ""
    usage = payload.get("usage") or {}
    logprobs = None
    content = (choice.get("logprobs") or {}).get("content")
    if content:
        logprobs = [float(item["logprob"]) for item in content]
    finish = choice.get("finish_reason") or "stop"
    return Generation(
        text=text,
        prompt_tokens=int(usage.get("prompt_tokens", 0)),
        completion_tokens=int(usage.get("completion_tokens", len(logprobs or []))),
        logprobs=logprobs,
        finish_reason="length" if finish == "length" else "stop",
        extra={"served_model": payload.get("model")},
    )


def _remember(cache: OrderedDict[str, int], text: str, count: int, size: int = 4096) -> None:
    cache[text] = count
    cache.move_to_end(text)
    if len(cache) > size:
        cache.popitem(last=False)


def _local_counter(tokenizer: str) -> Callable[[str], int]:
    from transformers import AutoTokenizer

    from spgg_env.models import token_counter

    return token_counter(AutoTokenizer.from_pretrained(tokenizer))


__all__ = ["OpenAIBackend", "SERVER_KINDS"]
