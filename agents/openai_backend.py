"""Any OpenAI-compatible chat server (vLLM, llama.cpp, TGI, OpenAI) behind the Backend interface.

Every prompt is one ``POST {base_url}/chat/completions`` request; a thread pool sends up to
``concurrency`` of them at once. A request that fails with a connection error, a timeout, HTTP
429 or HTTP 5xx is retried up to ``max_retries`` times after ``backoff_s * 2**attempt`` seconds
(plus up to 10 % jitter from the backend's own seeded generator). Any other HTTP error, or a
request that still fails after its retries, becomes a ``Generation`` with
``finish_reason="error"`` whose ``error`` names the URL, so an episode is never lost. The
constructor checks that the server answers (``GET {base_url}/models``) and raises a
``ConnectionError`` naming the URL when it does not.

Parameters map to the request body as ``temperature``, ``top_p``, ``max_tokens`` and
``presence_penalty``; ``top_k`` and ``repetition_penalty`` are not part of the OpenAI API, so
they are sent (as vLLM and llama.cpp accept them) only when they differ from their neutral value
(0 and 1.0). Each prompt is sent its own seed (:func:`~spgg_env.agents.backend.per_prompt_seeds`).

Token counts come from the server's ``usage``; :meth:`OpenAIBackend.count_tokens` uses a local
tokenizer when one is named (``tokenizer=``), else a words-and-punctuation approximation.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
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


class OpenAIBackend:
    """Chat completions over HTTP from an OpenAI-compatible server.

    Args:
        base_url: The API root, e.g. ``"http://127.0.0.1:8000/v1"``.
        model: Model name the server knows (sent as ``"model"``).
        api_key: Sent as ``Authorization: Bearer``; local servers usually need none.
        timeout_s: Per-request timeout in seconds.
        max_retries: Retries after the first try, for connection errors, timeouts, 429, 5xx.
        backoff_s: Base of the exponential backoff between retries.
        concurrency: Requests in flight at once.
        logprobs: Ask for completion-token log-probabilities (vLLM and OpenAI give them).
        tokenizer: Optional hub id or folder of a tokenizer for :meth:`count_tokens`.
        check: Check at construction that the server answers.
        seed: Seeds the backoff jitter.

    Raises:
        ConnectionError: If ``check`` and the server at ``base_url`` cannot be reached.
    """

    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        api_key: str | None = None,
        timeout_s: float = 120.0,
        max_retries: int = 3,
        backoff_s: float = 0.5,
        concurrency: int = 8,
        logprobs: bool = False,
        tokenizer: str | None = None,
        check: bool = True,
        seed: int = 0,
    ) -> None:
        if not base_url.startswith(("http://", "https://")):
            raise ValueError(f"base_url must start with http:// or https://, got {base_url!r}")
        if max_retries < 0 or concurrency < 1 or timeout_s <= 0:
            raise ValueError(
                f"need max_retries >= 0, concurrency >= 1, timeout_s > 0; got {max_retries}, "
                f"{concurrency}, {timeout_s}"
            )
        self.base_url = base_url.rstrip("/")
        self.url = f"{self.base_url}/chat/completions"
        self.model = model
        self.max_retries = int(max_retries)
        self.backoff_s = float(backoff_s)
        self.concurrency = int(concurrency)
        self.logprobs = bool(logprobs)
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = httpx.Client(timeout=timeout_s, headers=headers)
        self._rng = random.Random(seed)
        self._count = _token_counter(tokenizer)
        self._tokenizer_name = tokenizer
        if check:
            self.check()

    def check(self) -> None:
        """Raise ``ConnectionError`` naming the URL if the server does not answer."""
        url = f"{self.base_url}/models"
        try:
            self._client.get(url)
        except httpx.HTTPError as exc:
            raise ConnectionError(
                f"cannot reach the OpenAI-compatible server at {url} ({type(exc).__name__}: "
                f"{exc}); start it (e.g. `vllm serve MODEL` or llama.cpp `llama-server`) or fix "
                "base_url"
            ) from exc

    def describe(self) -> dict[str, Any]:
        """Server URL and model name, for result files."""
        return {"backend": "openai", "model": self.model, "base_url": self.base_url,
                "tokenizer": self._tokenizer_name}

    def count_tokens(self, text: str) -> int:
        """Tokens of ``text`` (local tokenizer if named, else an approximation)."""
        return self._count(text)

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

    def close(self) -> None:
        """Close the HTTP connection pool."""
        self._client.close()

    # ----------------------------------------------------------------- helpers
    def body(self, prompt: ChatPrompt, params: GenerationParams, seed: int | None) -> dict:
        """The JSON body of one request."""
        body: dict[str, Any] = {
            "model": self.model,
            "messages": list(prompt),
            "temperature": params.temperature,
            "top_p": params.top_p,
            "max_tokens": params.max_new_tokens,
            "presence_penalty": params.presence_penalty,
        }
        if params.top_k:
            body["top_k"] = params.top_k
        if params.repetition_penalty != 1.0:
            body["repetition_penalty"] = params.repetition_penalty
        if seed is not None:
            body["seed"] = seed
        if self.logprobs:
            body["logprobs"] = True
        return body

    def _one(self, prompt: ChatPrompt, params: GenerationParams, seed: int | None) -> Generation:
        start = time.perf_counter()
        body = self.body(prompt, params, seed)
        problem = ""
        for attempt in range(self.max_retries + 1):
            if attempt:
                delay = self.backoff_s * 2 ** (attempt - 1)
                time.sleep(delay * (1.0 + 0.1 * self._rng.random()))
            try:
                response = self._client.post(self.url, json=body)
            except httpx.HTTPError as exc:  # connection refused, timeouts, protocol errors
                problem = f"{type(exc).__name__}: {exc}"
                continue
            if response.status_code in RETRY_STATUSES:
                problem = f"HTTP {response.status_code}: {response.text[:300]}"
                continue
            if response.status_code != 200:
                problem = f"HTTP {response.status_code}: {response.text[:300]}"
                break
            try:
                result = _parse(response.json())
            except (ValueError, KeyError, IndexError, TypeError) as exc:
                problem = f"malformed response ({type(exc).__name__}: {exc}): {response.text[:300]}"
                break
            result.latency_s = time.perf_counter() - start
            return result
        tries = attempt + 1
        return Generation(
            "", 0, 0, finish_reason="error",
            error=f"POST {self.url} failed after {tries} tries: {problem}",
            latency_s=time.perf_counter() - start,
        )


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
    )


def _token_counter(tokenizer: str | None) -> Callable[[str], int]:
    if tokenizer is None:
        from spgg_env.env import approx_token_count

        return approx_token_count
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tokenizer)
    return lambda text: len(tok(text, add_special_tokens=False)["input_ids"])
