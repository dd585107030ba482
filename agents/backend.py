"""The one interface every LLM backend follows, and the paper's six generation parameters.

A backend turns a batch of chat prompts, each with its own :class:`GenerationParams`, into a
batch of :class:`Generation` results. Implementations: ``transformers_backend`` (local models,
the embedded SmolLM2 default), ``openai_backend`` (any OpenAI-compatible server: vLLM,
llama.cpp, TGI) and ``scripted`` (unit tests only).
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol, runtime_checkable

#: A chat prompt: a list of ``{"role": "system"|"user"|"assistant", "content": str}``.
ChatPrompt = list[dict[str, str]]


@dataclass(frozen=True)
class GenerationParams:
    """The six generation parameters of the MAC-SPGG paper.

    Attributes:
        temperature: Softmax temperature; 0 means greedy decoding.
        top_p: Nucleus sampling mass in (0, 1].
        top_k: Keep the k most likely tokens; 0 disables.
        max_new_tokens: Cap on generated tokens (>= 1).
        repetition_penalty: Multiplicative penalty on seen tokens (1.0 = off), as in CTRL.
        presence_penalty: Additive penalty on the logit of every token already generated
            (0.0 = off), as in the OpenAI API.
    """

    temperature: float = 0.0
    top_p: float = 1.0
    top_k: int = 0
    max_new_tokens: int = 256
    repetition_penalty: float = 1.0
    presence_penalty: float = 0.0

    def __post_init__(self) -> None:
        checks = {
            "temperature": (self.temperature >= 0.0, ">= 0"),
            "top_p": (0.0 < self.top_p <= 1.0, "in (0, 1]"),
            "top_k": (self.top_k >= 0, ">= 0"),
            "max_new_tokens": (self.max_new_tokens >= 1, ">= 1"),
            "repetition_penalty": (self.repetition_penalty > 0.0, "> 0"),
            "presence_penalty": (-2.0 <= self.presence_penalty <= 2.0, "in [-2, 2]"),
        }
        for name, (ok, valid) in checks.items():
            if not ok:
                raise ValueError(f"{name} must be {valid}, got {getattr(self, name)!r}")

    @property
    def greedy(self) -> bool:
        """True when decoding is deterministic (temperature 0)."""
        return self.temperature == 0.0

    def to_dict(self) -> dict[str, Any]:
        """Plain dict, for configs and transcripts."""
        return asdict(self)


@dataclass
class Generation:
    """One completion.

    Attributes:
        text: The completion text (may be empty).
        prompt_tokens: Tokens in the rendered prompt, after any truncation.
        completion_tokens: Tokens generated.
        logprobs: Log-probability of each completion token under the sampling distribution,
            where the backend can give them, else ``None``.
        finish_reason: ``"stop"``, ``"length"`` or ``"error"``.
        prompt_truncated: True when the prompt was cut from the left to fit the context.
        error: What went wrong for an ``"error"`` finish, else ``None``.
        latency_s: Wall time of the call that produced this generation.
        prompt_ids: The prompt's token ids as the model read them (after truncation), where
            the backend has them (learners re-score completions from these).
        token_ids: The completion's token ids (``EOS`` excluded), where the backend has them.
        extra: Backend-specific extras.
    """

    text: str
    prompt_tokens: int
    completion_tokens: int
    logprobs: list[float] | None = None
    finish_reason: str = "stop"
    prompt_truncated: bool = False
    error: str | None = None
    latency_s: float = 0.0
    prompt_ids: list[int] | None = None
    token_ids: list[int] | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@runtime_checkable
class Backend(Protocol):
    """Generates completions for a batch of chat prompts."""

    #: A short description for transcripts and result files (model id, revision, dtype...).
    def describe(self) -> dict[str, Any]: ...

    def generate(
        self,
        prompts: Sequence[ChatPrompt],
        params: Sequence[GenerationParams] | GenerationParams,
        *,
        seed: int | Sequence[int] | None = None,
    ) -> list[Generation]:
        """Generate one completion per prompt.

        Args:
            prompts: The chat prompts.
            params: One :class:`GenerationParams` for all prompts, or one per prompt.
            seed: One seed per prompt (each prompt samples from its own stream, so its text
                does not depend on what else is in the batch), or one seed for the call, or
                ``None``.

        Returns:
            One :class:`Generation` per prompt, in order. A failed prompt yields a
            ``Generation`` with ``finish_reason="error"`` and ``error`` set rather than
            raising, so that no episode is lost; configuration errors (bad model id,
            unreachable server at start) raise.
        """
        ...

    def count_tokens(self, text: str) -> int:
        """Number of tokens of ``text`` under this backend's tokenizer."""
        ...


def per_prompt_params(
    prompts: Sequence[ChatPrompt], params: Sequence[GenerationParams] | GenerationParams
) -> list[GenerationParams]:
    """One :class:`GenerationParams` per prompt (a single one is repeated).

    Raises:
        ValueError: If a sequence of params does not match the number of prompts.
    """
    if isinstance(params, GenerationParams):
        return [params] * len(prompts)
    if len(params) != len(prompts):
        raise ValueError(f"got {len(prompts)} prompts but {len(params)} GenerationParams")
    return list(params)


def per_prompt_seeds(n: int, seed: int | Sequence[int] | None) -> list[int | None]:
    """One seed (or ``None``) per prompt: a sequence as given, a call seed ``s`` as
    ``derive_seed(s, i)`` for prompt ``i``.

    Raises:
        ValueError: If a sequence does not have ``n`` seeds.
    """
    from spgg_env.seeding import derive_seed

    if seed is None:
        return [None] * n
    if isinstance(seed, int):
        return [derive_seed(seed, i) for i in range(n)]
    seeds = [int(s) for s in seed]
    if len(seeds) != n:
        raise ValueError(f"got {n} prompts but {len(seeds)} seeds")
    return seeds


#: Backend kinds for configs: kind -> "module:Class".
BACKENDS: dict[str, str] = {
    "transformers": "spgg_env.agents.transformers_backend:TransformersBackend",
    "openai": "spgg_env.agents.openai_backend:OpenAIBackend",
    "scripted": "spgg_env.agents.scripted:ScriptedBackend",
}


def make_backend(spec: Mapping[str, Any]) -> Backend:
    """Build a backend from a config mapping: ``kind`` plus the backend's keyword arguments.

    Example: ``make_backend({"kind": "transformers", "model": "embedded", "dtype": "bfloat16"})``.

    Raises:
        ValueError: On an unknown kind or a bad argument, naming both.
    """
    spec = dict(spec)
    kind = spec.pop("kind", "transformers")
    if kind not in BACKENDS:
        raise ValueError(f"unknown backend kind {kind!r}; choose one of {sorted(BACKENDS)}")
    module_name, class_name = BACKENDS[kind].split(":")
    cls = getattr(importlib.import_module(module_name), class_name)
    try:
        return cls(**spec)
    except TypeError as error:
        raise ValueError(f"bad arguments {spec} for the {kind!r} backend: {error}") from error
