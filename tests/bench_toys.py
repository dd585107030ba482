"""Test doubles for the benchmark tests: a scripted backend that half-knows the answers.

Its replies are a pure function of (prompt, the row's own seed), so runs are reproducible and
independent of batching; greedy rows ignore the seed, sampled rows do not.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence

from spgg_env.agents.backend import Generation, GenerationParams, per_prompt_seeds
from spgg_env.tasks import make_task


class ScriptedBackend:
    """Answers "The answer is N": the gold N for a third of the prompts, a wrong one for a third,
    no number for the rest (a parse failure)."""

    def __init__(self, gold: Mapping[str, object]) -> None:
        self.gold = dict(gold)
        self.calls: list[int] = []
        self.prompts: list[list[dict[str, str]]] = []
        self.params: list[GenerationParams] = []

    def describe(self) -> dict:
        return {"backend": "scripted", "model": "scripted"}

    def count_tokens(self, text: str) -> int:
        return len(text.split())

    def generate(
        self,
        prompts: Sequence[list[dict[str, str]]],
        params: Sequence[GenerationParams] | GenerationParams,
        *,
        seed: int | Sequence[int] | None = None,
    ) -> list[Generation]:
        if isinstance(params, GenerationParams):
            params = [params] * len(prompts)
        self.calls.append(len(prompts))
        self.prompts += list(prompts)
        self.params += list(params)
        out = []
        seeds = per_prompt_seeds(len(prompts), seed)
        for prompt, p, row_seed in zip(prompts, params, seeds, strict=True):
            text = "\n".join(m["content"] for m in prompt)
            salt = "" if p.greedy else f"|{row_seed}"
            h = int(hashlib.sha256((text + salt).encode()).hexdigest(), 16)
            gold = next((a for q, a in self.gold.items() if q in text), None)
            if h % 3 == 0:
                reply = "I am not sure."
            elif h % 3 == 1 and gold is not None:
                reply = f"The answer is {gold}"
            else:
                reply = f"The answer is {h % 997 + 1000}"
            out.append(Generation(reply, len(text.split()), len(reply.split())))
        return out


def arith_setup(n: int = 12):
    """A small arith task and a scripted backend that knows its answers."""
    task = make_task("arith", n_problems=n)
    gold = {p.question: p.answer for p in task.problems("test")}
    return task, ScriptedBackend(gold)
