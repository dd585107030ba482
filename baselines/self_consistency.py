"""Self-consistency (majority voting): k sampled answers, the most common answer wins.

Following Wang et al. (2023), the k samples use the chain-of-thought prompt and temperature
sampling; each sample's answer is read with the task's extractor and the most common answer is
the final one (:func:`~spgg_env.baselines.methods.majority_vote`). With ``cot=False`` the
samples use the plain prompt (plain majority voting). Cost: k calls per problem, sent as one
batch.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from spgg_env.agents.engine import Program, Request
from spgg_env.baselines.methods import Outcome, SolveContext, majority_vote
from spgg_env.baselines.single_agent import ChainOfThought


class SelfConsistency(ChainOfThought):
    """Majority vote over k samples.

    Options:
        samples: k, the number of samples (>= 1).
        temperature: Sampling temperature of the samples (> 0 for diverse samples).
        cot: Use the chain-of-thought prompt (default) or the plain one.
        shots, system: As :class:`~spgg_env.baselines.single_agent.SingleAgent`.
    """

    name = "self_consistency"

    def __init__(
        self, samples: int = 5, temperature: float = 0.7, cot: bool = True, **options: Any
    ) -> None:
        super().__init__(**options)
        if not isinstance(samples, int) or samples < 1:
            raise ValueError(f"samples must be an int >= 1, got {samples!r}")
        if temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {temperature!r}")
        self.samples = samples
        self.temperature = float(temperature)
        self.cot = bool(cot)
        if not self.cot:
            self.suffix = ""

    def options(self) -> dict[str, Any]:
        return {
            **super().options(),
            "samples": self.samples,
            "temperature": self.temperature,
            "cot": self.cot,
        }

    def solve(self, ctx: SolveContext) -> Program:
        sample_params = dataclasses.replace(ctx.params, temperature=self.temperature)
        prompt = self.prompt(ctx.task, ctx.problem)
        answers = yield [Request(prompt, sample_params) for _ in range(self.samples)]
        texts = [answer.text for answer in answers]
        chosen, votes = majority_vote(ctx.task, ctx.problem, texts)
        return Outcome(final_text=texts[chosen], details={"chosen": chosen, "votes": votes})
