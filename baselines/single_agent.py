"""Single-agent baselines: one LLM call per problem, zero-shot, few-shot, or chain-of-thought.

Zero-shot sends the task's answer instruction and the question. Few-shot (``shots=k``) puts k
solved exemplars before it as earlier chat turns (user: exemplar task, assistant: its worked
answer). Exemplars come from a training split when the task has one (``train``, ``dev`` or
``validation``), otherwise from the evaluated split minus the evaluated problems; they are drawn
once per run with the run's seeded generator, so every problem sees the same exemplars.

Chain-of-thought adds a request to reason step by step before the final answer, in the task's
answer format.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from spgg_env.agents.backend import ChatPrompt
from spgg_env.agents.engine import Program, Request
from spgg_env.baselines.methods import BASE_TEMPLATE, Method, Outcome, SolveContext, base_prompt
from spgg_env.tasks.base import Problem, Task
from spgg_env.tasks.exemplars import demonstration, draw_exemplars

COT_SUFFIX = (
    "\n\nThink step by step: write your reasoning first, then give the final answer in the "
    "required format."
)


class SingleAgent(Method):
    """One call per problem.

    Options:
        shots: Number of few-shot exemplars (0 = zero-shot).
        system: Optional system prompt.
    """

    name = "single_agent"
    suffix = ""
    templates = {"base": BASE_TEMPLATE}

    def __init__(self, shots: int = 0, system: str | None = None, **options: Any) -> None:
        super().__init__(**options)
        if not isinstance(shots, int) or shots < 0:
            raise ValueError(f"shots must be an int >= 0, got {shots!r}")
        self.shots = shots
        self.system = system
        self.exemplars: tuple[Problem, ...] = ()

    def options(self) -> dict[str, Any]:
        return {"shots": self.shots, "system": self.system}

    def prepare(self, task: Task, problems: Sequence[Problem], rng: np.random.Generator) -> None:
        self.exemplars = draw_exemplars(task, self.shots, problems, rng)

    def prompt(self, task: Task, problem: Problem) -> ChatPrompt:
        """The chat prompt: system, exemplar turns, then the problem."""
        messages: ChatPrompt = []
        if self.system:
            messages.append({"role": "system", "content": self.system})
        for example in self.exemplars:
            messages.append({"role": "user", "content": base_prompt(task, example) + self.suffix})
            messages.append({"role": "assistant", "content": demonstration(task, example)})
        messages.append({"role": "user", "content": base_prompt(task, problem) + self.suffix})
        return messages

    def solve(self, ctx: SolveContext) -> Program:
        (answer,) = yield [Request(self.prompt(ctx.task, ctx.problem), ctx.params)]
        return Outcome(
            final_text=answer.text, details={"exemplars": [p.uid for p in self.exemplars]}
        )


class ChainOfThought(SingleAgent):
    """One call per problem, asking for step-by-step reasoning before the answer.

    Options: as :class:`SingleAgent`.
    """

    name = "cot"
    suffix = COT_SUFFIX
    templates = {"base": BASE_TEMPLATE, "cot_suffix": COT_SUFFIX}
