"""A scripted backend for unit tests only: replies come from a function, never from a model.

It records every call (prompts, params, seed) so that tests can check batching, and counts tokens
as whitespace-separated words. It is never a default anywhere.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from spgg_env.agents.backend import ChatPrompt, Generation, GenerationParams, per_prompt_params

#: ``(prompt, params, index_in_batch) -> reply``; raise to simulate a failed generation.
Script = Callable[[ChatPrompt, GenerationParams, int], str]


class ScriptedBackend:
    """Replies with ``script(prompt, params, index)``, or a fixed string.

    Args:
        script: A function of ``(prompt, params, index_in_batch)`` or a constant reply. A script
            that raises yields a ``finish_reason="error"`` generation, like a real failure.
        name: Shown by :meth:`describe`.
    """

    def __init__(self, script: Script | str = "The answer is 0.", name: str = "scripted") -> None:
        self.script: Script = script if callable(script) else (lambda *_: script)
        self.name = name
        self.calls: list[dict[str, Any]] = []

    def describe(self) -> dict[str, Any]:
        """Identifies the backend as scripted."""
        return {"backend": "scripted", "model": self.name}

    def count_tokens(self, text: str) -> int:
        """Whitespace-separated words."""
        return len(text.split())

    def generate(
        self,
        prompts: Sequence[ChatPrompt],
        params: Sequence[GenerationParams] | GenerationParams,
        *,
        seed: int | Sequence[int] | None = None,
    ) -> list[Generation]:
        """Reply to each prompt from the script, cut to ``max_new_tokens`` words."""
        params = per_prompt_params(prompts, params)
        self.calls.append({"prompts": list(prompts), "params": list(params), "seed": seed})
        out = []
        for i, (prompt, gp) in enumerate(zip(prompts, params, strict=True)):
            prompt_tokens = sum(self.count_tokens(m["content"]) for m in prompt)
            try:
                text = str(self.script(prompt, gp, i))
            except Exception as exc:  # noqa: BLE001 - a scripted failure, recorded
                out.append(Generation("", prompt_tokens, 0, finish_reason="error",
                                      error=f"{type(exc).__name__}: {exc}"))
                continue
            words = text.split()
            cut = len(words) > gp.max_new_tokens
            if cut:
                text = " ".join(words[: gp.max_new_tokens])
            out.append(Generation(text, prompt_tokens, self.count_tokens(text),
                                  finish_reason="length" if cut else "stop"))
        return out
