"""An LLM judge of summaries: G-Eval-style expected scores from the score tokens' probabilities.

For each of SummEval's four dimensions (coherence, consistency, fluency, relevance) the judge
asks the model for a 1-5 rating of a summary of a document and reads, in one forward pass and
without sampling, the next-token probabilities of the score tokens "1".."5" (summing the
variants of a digit, e.g. "3" and " 3"). With ``p_k`` those probabilities renormalised over the
five digits, the dimension's score and its normalised value are

    s = sum_k k * p_k                 (expected score in [1, 5], as G-Eval does)
    v = (s - 1) / 4                   (in [0, 1])

and a summary's overall value is the mean of ``v`` over the four dimensions. ``mass`` = the
unnormalised sum of ``p_k`` says how sure the model was to answer with a digit at all.

Determinism and cost: no sampling; prompts are batched (the four dimensions and many
summaries) with left padding; every distribution is cached under
``sha256(model identity + prompt)``, in memory and, with ``cache_path=``, in a JSONL file that
later runs read back, so a repeated score costs nothing. (A prompt scored in a different batch
may differ in the 6th decimal from padding; the cache keeps the first value.)

The model is any ``transformers`` causal LM, by hub id or folder, or the embedded
SmolLM2-135M-Instruct (``"embedded"``, the default), loaded lazily on the first cache miss; or
an OpenAI-compatible server that returns ``top_logprobs`` (:class:`OpenAIScorer`).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

DIMENSIONS: tuple[str, ...] = ("coherence", "consistency", "fluency", "relevance")
SCORE_TOKENS: tuple[str, ...] = ("1", "2", "3", "4", "5")

CRITERIA: dict[str, str] = {
    "coherence": (
        "the summary is well organised: its sentences follow a clear order and build up a "
        "connected account of the article, not a heap of loosely related facts."
    ),
    "consistency": (
        "the summary agrees with the article: every statement in it is supported by the "
        "article, and it invents no facts, names or numbers."
    ),
    "fluency": (
        "each sentence of the summary reads well: correct grammar, spelling and punctuation, "
        "natural word choice, no fragments or repetitions."
    ),
    "relevance": (
        "the summary keeps the article's most important information and leaves out minor "
        "details and repetition."
    ),
}

PROMPT = """You will read a news article and a summary written for it. Rate the summary on one \
dimension only: {name}.

{name} (1-5): {criterion}
Scale: 1 = very poor, 2 = poor, 3 = fair, 4 = good, 5 = excellent.

Article:
{document}

Summary:
{summary}

Reply with the score only: a single digit from 1 to 5."""

#: Mark put where an over-long document or summary was cut.
CUT_MARK = " [...]"


@dataclass(frozen=True)
class JudgeScore:
    """The judge's verdict on one summary.

    Attributes:
        value: Mean normalised score over the dimensions, in [0, 1].
        scores: Expected score in [1, 5] per dimension.
        mass: Probability the model put on the five score tokens, per dimension.
    """

    value: float
    scores: Mapping[str, float]
    mass: Mapping[str, float] = field(default_factory=dict)

    @property
    def normalised(self) -> dict[str, float]:
        """Per-dimension scores mapped to [0, 1] by ``(s - 1) / 4``."""
        return {name: (score - 1.0) / 4.0 for name, score in self.scores.items()}

    def to_json(self) -> dict[str, Any]:
        """Plain dict for ``Score.details`` and result files."""
        return {
            "value": self.value,
            "scores": dict(self.scores),
            "normalised": self.normalised,
            "mass": dict(self.mass),
        }


def expected_score(probs: Sequence[float]) -> tuple[float, float]:
    """Expected score over ``1..K`` from the (unnormalised) probabilities of the K score tokens.

    Returns:
        ``(sum_k k * p_k / sum_k p_k, sum_k p_k)``; a zero mass gives the middle score.
    """
    p = np.asarray(probs, dtype=np.float64)
    mass = float(p.sum())
    if not mass > 0.0:
        return (len(p) + 1) / 2.0, 0.0
    return float(np.dot(np.arange(1, len(p) + 1), p / mass)), mass


def model_identity(model: Any, revision: str | None = None) -> str:
    """``"<model name>@<revision>"``, the model part of every cache key (loads nothing)."""
    if isinstance(model, str | os.PathLike):
        name = str(model)
        if name == "embedded":
            from spgg_env.embedded_model import MODEL_NAME

            name = MODEL_NAME
    else:
        name = getattr(model, "name_or_path", "") or type(model).__name__
    return f"{name}@{revision or 'default'}"


class TransformersScorer:
    """Next-token probabilities of the score tokens under a local ``transformers`` model.

    Args:
        model: Hub id, folder, ``"embedded"``, or a loaded causal LM (then give ``tokenizer``).
        tokenizer: The tokenizer of a loaded ``model``.
        revision: Recorded in the cache identity.
        device: ``"auto"``, ``"cpu"``, ``"cuda"``...
        dtype: ``"auto"`` (bf16 on CUDA, fp32 on CPU), ``"float32"``, ``"bfloat16"``.
        batch_size: Prompts per forward pass.
    """

    def __init__(
        self,
        model: Any = "embedded",
        tokenizer: Any = None,
        *,
        revision: str | None = None,
        device: str = "auto",
        dtype: str = "auto",
        batch_size: int = 8,
    ) -> None:
        import torch

        from spgg_env.models import (
            load_model_and_tokenizer,
            resolve_device,
            resolve_dtype,
        )

        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size!r}")
        self.batch_size = int(batch_size)
        self.identity = model_identity(model, revision)
        if isinstance(model, str | os.PathLike):
            self.device = resolve_device(device)
            # A judge must not depend on how prompts are batched: bf16 rounding does (padding
            # changes the reduction order), so "auto" stays fp32 on a CPU, unlike the backends.
            on_cpu_auto = dtype == "auto" and self.device.type == "cpu"
            torch_dtype = torch.float32 if on_cpu_auto else resolve_dtype(dtype, self.device)
            self.model, self.tokenizer, _ = load_model_and_tokenizer(
                model, self.device, torch_dtype
            )
        else:
            if tokenizer is None:
                raise ValueError("a loaded model needs its tokenizer: pass tokenizer=")
            self.model, self.tokenizer = model.eval(), tokenizer
            self.device = next(model.parameters()).device
        self._torch = torch
        self.token_ids = self._score_token_ids()

    def _score_token_ids(self) -> list[list[int]]:
        """For each score digit, the ids of the tokens that spell it (with or without a space)."""
        ids = []
        for digit in SCORE_TOKENS:
            found = set()
            for text in (digit, " " + digit):
                encoded = self.tokenizer.encode(text, add_special_tokens=False)
                if encoded and self.tokenizer.decode(encoded[-1:]).strip() == digit:
                    found.add(encoded[-1])
            if not found:
                raise ValueError(f"the tokenizer has no single token for the score {digit!r}")
            ids.append(sorted(found))
        return ids

    def render(self, prompt: str) -> str:
        """The prompt as the model reads it: chat template with the assistant turn opened."""
        if getattr(self.tokenizer, "chat_template", None):
            messages = [{"role": "user", "content": prompt}]
            return self.tokenizer.apply_chat_template(
                messages, tokenize=False, add_generation_prompt=True
            )
        return f"{prompt}\nScore: "

    def distributions(self, prompts: Sequence[str]) -> list[list[float]]:
        """Probabilities of the tokens "1".."5" as the next token of each prompt.

        Prompts are batched in order of length, so that a batch wastes little on padding.
        """
        rows = [self.tokenizer.encode(self.render(p), add_special_tokens=False) for p in prompts]
        order = sorted(range(len(rows)), key=lambda i: len(rows[i]))
        out: list[list[float]] = [[] for _ in rows]
        for start in range(0, len(order), self.batch_size):
            chunk = order[start : start + self.batch_size]
            for i, probs in zip(chunk, self._batch([rows[i] for i in chunk]), strict=True):
                out[i] = probs
        return out

    def _batch(self, rows: Sequence[list[int]]) -> list[list[float]]:
        torch = self._torch
        width = max(len(r) for r in rows)
        pad = self.tokenizer.pad_token_id
        pad = 0 if pad is None else pad
        ids = torch.tensor([[pad] * (width - len(r)) + r for r in rows], device=self.device)
        mask = torch.tensor(
            [[0] * (width - len(r)) + [1] * len(r) for r in rows], device=self.device
        )
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        with torch.inference_mode():
            logits = self.model(input_ids=ids, attention_mask=mask, position_ids=positions).logits[
                :, -1, :
            ]
        probs = torch.softmax(logits.float(), dim=-1)
        return [
            [float(probs[i, token_ids].sum()) for token_ids in self.token_ids]
            for i in range(len(rows))
        ]


class OpenAIScorer:
    """Score-token probabilities from an OpenAI-compatible server's ``top_logprobs``.

    One ``POST {base_url}/chat/completions`` per prompt with ``max_tokens=1``,
    ``temperature=0``, ``logprobs=true`` and ``top_logprobs``; the probability of a digit is the
    sum of ``exp(logprob)`` over the listed tokens that spell it (a digit outside the list
    counts 0). Works with vLLM, llama.cpp's ``llama-server`` and OpenAI.

    Args:
        base_url: The API root, e.g. ``"http://127.0.0.1:8000/v1"``.
        model: The model name the server expects.
        api_key: Sent as ``Authorization: Bearer`` when given.
        top_logprobs: How many alternatives the server lists (OpenAI allows up to 20).
        timeout_s: Per-request timeout.
        transport: An ``httpx`` transport (tests use ``httpx.MockTransport``).
    """

    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        api_key: str | None = None,
        top_logprobs: int = 20,
        timeout_s: float = 60.0,
        transport: Any = None,
    ) -> None:
        import httpx

        if not base_url.startswith(("http://", "https://")):
            raise ValueError(f"base_url must start with http:// or https://, got {base_url!r}")
        self.url = base_url.rstrip("/") + "/chat/completions"
        self.model = model
        self.top_logprobs = int(top_logprobs)
        self.identity = f"{model}@{base_url.rstrip('/')}"
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = httpx.Client(timeout=timeout_s, headers=headers, transport=transport)

    def distributions(self, prompts: Sequence[str]) -> list[list[float]]:
        """Probabilities of the tokens "1".."5" as the first token of each reply.

        Raises:
            RuntimeError: If the server fails or sends no ``top_logprobs`` (the message names
                the URL).
        """
        return [self._one(prompt) for prompt in prompts]

    def _one(self, prompt: str) -> list[float]:
        body = {
            "model": self.model,
            "messages": [{"role": "user", "content": prompt}],
            "max_tokens": 1,
            "temperature": 0.0,
            "logprobs": True,
            "top_logprobs": self.top_logprobs,
        }
        response = self._client.post(self.url, json=body)
        if response.status_code != 200:
            raise RuntimeError(
                f"POST {self.url}: HTTP {response.status_code}: {response.text[:300]}"
            )
        try:
            top = response.json()["choices"][0]["logprobs"]["content"][0]["top_logprobs"]
        except (KeyError, IndexError, TypeError, ValueError) as error:
            raise RuntimeError(
                f"POST {self.url} returned no top_logprobs ({type(error).__name__}: {error}); "
                "the judge needs a server that supports logprobs"
            ) from error
        probs = [0.0] * len(SCORE_TOKENS)
        for item in top:
            token = str(item.get("token", "")).strip()
            if token in SCORE_TOKENS:
                probs[SCORE_TOKENS.index(token)] += float(np.exp(item["logprob"]))
        return probs


class Judge:
    """Scores summaries of documents on SummEval's four dimensions (see the module docstring).

    Args:
        model: Hub id, local folder, ``"embedded"`` (default), or a loaded causal LM (then
            give ``tokenizer``). Loaded on the first score that misses the cache.
        tokenizer: The tokenizer of a loaded ``model``.
        cache_path: JSONL file that keeps distributions across runs (created if missing).
        dimensions: Which of :data:`DIMENSIONS` to score.
        max_document_chars: Longer documents are cut (a mark shows the cut).
        max_summary_chars: Longer summaries are cut.
        scorer: Anything with ``identity: str`` and ``distributions(prompts) -> [[p1..p5]]``,
            used instead of a transformers model, e.g. :class:`OpenAIScorer` for a server.
        **model_options: Options of the :class:`TransformersScorer` (``revision``, ``device``,
            ``dtype``, ``batch_size``).
    """

    def __init__(
        self,
        model: Any = "embedded",
        tokenizer: Any = None,
        *,
        cache_path: str | os.PathLike[str] | None = None,
        dimensions: Sequence[str] = DIMENSIONS,
        max_document_chars: int = 4000,
        max_summary_chars: int = 1500,
        scorer: Any = None,
        **model_options: Any,
    ) -> None:
        unknown = [d for d in dimensions if d not in DIMENSIONS]
        if unknown or not dimensions:
            raise ValueError(
                f"unknown or no dimensions {list(dimensions)}; choose from {DIMENSIONS}"
            )
        for name, value in (
            ("max_document_chars", max_document_chars),
            ("max_summary_chars", max_summary_chars),
        ):
            if value < 1:
                raise ValueError(f"{name} must be >= 1, got {value!r}")
        self.dimensions = tuple(dimensions)
        self.max_document_chars = int(max_document_chars)
        self.max_summary_chars = int(max_summary_chars)
        unknown_options = set(model_options) - {"revision", "device", "dtype", "batch_size"}
        if unknown_options:
            raise ValueError(
                f"unknown Judge options {sorted(unknown_options)}; model options are revision, "
                "device, dtype, batch_size"
            )
        self._model_args = {"model": model, "tokenizer": tokenizer, **model_options}
        self._scorer = scorer
        self.cache: dict[str, list[float]] = {}
        self.cache_path = Path(cache_path) if cache_path is not None else None
        if self.cache_path is not None and self.cache_path.is_file():
            for line in self.cache_path.read_text(encoding="utf-8").splitlines():
                if line.strip():
                    entry = json.loads(line)
                    self.cache[entry["key"]] = entry["probs"]
        self.hits = 0
        self.misses = 0

    # --------------------------------------------------------------- model
    @property
    def scorer(self) -> Any:
        """The model behind the judge, loaded on first use."""
        if self._scorer is None:
            self._scorer = TransformersScorer(**self._model_args)
        return self._scorer

    @property
    def identity(self) -> str:
        """The model identity the cache keys include (known without loading the model)."""
        if self._scorer is not None:
            return self._scorer.identity
        return model_identity(self._model_args["model"], self._model_args.get("revision"))

    def describe(self) -> dict[str, Any]:
        """Model identity, dimensions, limits and cache counts, for result files."""
        return {
            "judge": "g-eval expected score",
            "model": self.identity,
            "dimensions": list(self.dimensions),
            "max_document_chars": self.max_document_chars,
            "max_summary_chars": self.max_summary_chars,
            "cache_entries": len(self.cache),
            "cache_hits": self.hits,
            "cache_misses": self.misses,
        }

    # ------------------------------------------------------------- prompts
    def prompt(self, dimension: str, document: str, summary: str) -> str:
        """The rating prompt of one dimension (document and summary cut to their limits)."""
        return PROMPT.format(
            name=dimension.capitalize(),
            criterion=CRITERIA[dimension],
            document=_cut(document.strip(), self.max_document_chars),
            summary=_cut(summary.strip(), self.max_summary_chars),
        )

    def key(self, prompt: str) -> str:
        """Cache key: ``sha256(model identity + "\\n" + prompt)``."""
        return hashlib.sha256(f"{self.identity}\n{prompt}".encode()).hexdigest()

    # ------------------------------------------------------------- scoring
    def score(self, document: str, summary: str) -> JudgeScore:
        """Score one summary of ``document``."""
        return self.score_many([(document, summary)])[0]

    def score_many(self, pairs: Sequence[tuple[str, str]]) -> list[JudgeScore]:
        """Score many ``(document, summary)`` pairs; all cache misses share batched passes."""
        prompts = [
            [self.prompt(dim, document, summary) for dim in self.dimensions]
            for document, summary in pairs
        ]
        keys = [[self.key(p) for p in row] for row in prompts]
        todo: dict[str, str] = {}
        for row_keys, row_prompts in zip(keys, prompts, strict=True):
            for key, prompt in zip(row_keys, row_prompts, strict=True):
                if key not in self.cache and key not in todo:
                    todo[key] = prompt
        self.misses += len(todo)
        self.hits += sum(len(row) for row in keys) - len(todo)
        if todo:
            fresh = dict(zip(todo, self.scorer.distributions(list(todo.values())), strict=True))
            self.cache.update(fresh)
            self._persist(fresh)
        return [self._verdict([self.cache[k] for k in row]) for row in keys]

    def _verdict(self, distributions: Sequence[Sequence[float]]) -> JudgeScore:
        scores, mass = {}, {}
        for dim, probs in zip(self.dimensions, distributions, strict=True):
            scores[dim], mass[dim] = expected_score(probs)
        value = float(np.mean([(s - 1.0) / 4.0 for s in scores.values()]))
        return JudgeScore(min(max(value, 0.0), 1.0), scores, mass)

    def _persist(self, fresh: Mapping[str, list[float]]) -> None:
        if self.cache_path is None or not fresh:
            return
        self.cache_path.parent.mkdir(parents=True, exist_ok=True)
        lines = "".join(json.dumps({"key": k, "probs": v}) + "\n" for k, v in fresh.items())
        with self.cache_path.open("a", encoding="utf-8") as handle:
            handle.write(lines)


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit].rstrip() + CUT_MARK
