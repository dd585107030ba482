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

#: Splits that may provide few-shot exemplars, in order of preference.
EXEMPLAR_SPLITS = ("train", "dev", "validation")
#: Metadata keys that may hold a worked answer, in order of preference.
DEMO_KEYS = ("demonstration", "solution", "canonical_solution", "rationale", "reference")

COT_SUFFIX = (
    "\n\nThink step by step: write your reasoning first, then give the final answer in the "
    "required format."
)


def demonstration(task: Task, problem: Problem) -> str:
    """A worked answer to ``problem`` for few-shot prompts.

    Uses ``task.demonstration(problem)`` when the task defines it, else the first of
    :data:`DEMO_KEYS` in the problem's metadata, else the gold answer as ``Answer: ...``.
    """
    custom = getattr(task, "demonstration", None)
    if callable(custom):
        return str(custom(problem))
    for key in DEMO_KEYS:
        value = problem.metadata.get(key)
        if isinstance(value, str) and value.strip():
            return value
    return f"Answer: {problem.answer}"


def exemplar_pool(task: Task, evaluated: Sequence[Problem]) -> tuple[Problem, ...]:
    """The problems few-shot exemplars may come from (never an evaluated one)."""
    taken = {problem.uid for problem in evaluated}
    for split in (*[s for s in EXEMPLAR_SPLITS if s in task.splits], task.default_split):
        try:
            pool = task.problems(split)
        except (ValueError, RuntimeError, OSError):  # listed but not loadable from this source
            continue
        return tuple(p for p in pool if p.uid not in taken)
    return ()


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
        if not self.shots:
            return
        pool = exemplar_pool(task, problems)
        if len(pool) < self.shots:
            raise ValueError(
                f"task {task.name!r} has only {len(pool)} problems outside the evaluated ones "
                f"for {self.shots} few-shot exemplars; lower `shots`"
            )
        picks = sorted(rng.choice(len(pool), size=self.shots, replace=False).tolist())
        self.exemplars = tuple(pool[i] for i in picks)

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
