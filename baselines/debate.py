"""Multi-agent debate (Du et al., 2023): several agents answer, read each other, and revise.

Round 1: each of the ``agents`` debaters answers the task independently. Rounds 2..R: each
debater sees its own previous answer and the other debaters' previous answers and gives an
updated answer. The final answer is the majority vote over the last round's answers
(:func:`~spgg_env.baselines.methods.majority_vote`). Cost: ``agents * rounds`` calls per problem,
one batch per round. Debaters sample at ``temperature`` so that greedy decoding does not make
them identical copies.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from spgg_env.agents.engine import Program, Request
from spgg_env.baselines.methods import (
    BASE_TEMPLATE,
    Method,
    Outcome,
    SolveContext,
    base_prompt,
    majority_vote,
    user,
)

REVISE_TEMPLATE = """{task}

### Your previous answer
{own}

### The other agents' answers
{others}

### Your turn
Use the other agents' reasoning as advice: check every answer, then give your updated answer in \
the required format."""


def clip(text: str, limit: int) -> str:
    """Keep the first ``limit`` characters of a contribution, marking any cut."""
    text = text.strip()
    return text if len(text) <= limit else text[:limit] + " [...]"


class Debate(Method):
    """Several debaters, several rounds, a majority-vote final answer.

    Options:
        agents: Number of debaters (>= 2).
        rounds: Number of rounds (>= 1; 1 is plain majority voting).
        temperature: The debaters' sampling temperature.
        max_chars: Each quoted answer is cut to this many characters (keeps prompts short).
    """

    name = "debate"
    templates = {"base": BASE_TEMPLATE, "revise": REVISE_TEMPLATE}

    def __init__(
        self,
        agents: int = 3,
        rounds: int = 2,
        temperature: float = 0.7,
        max_chars: int = 1200,
        **options: Any,
    ) -> None:
        super().__init__(**options)
        if not isinstance(agents, int) or agents < 2:
            raise ValueError(f"agents must be an int >= 2, got {agents!r}")
        if not isinstance(rounds, int) or rounds < 1:
            raise ValueError(f"rounds must be an int >= 1, got {rounds!r}")
        if temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {temperature!r}")
        self.agents, self.rounds = agents, rounds
        self.temperature, self.max_chars = float(temperature), int(max_chars)

    def options(self) -> dict[str, Any]:
        return {
            "agents": self.agents,
            "rounds": self.rounds,
            "temperature": self.temperature,
            "max_chars": self.max_chars,
        }

    def revise_prompt(self, task_text: str, answers: list[str], me: int) -> str:
        """The prompt of debater ``me`` in a revision round."""
        others = "\n\n".join(
            f"Agent {j + 1}:\n{clip(text, self.max_chars)}"
            for j, text in enumerate(answers)
            if j != me
        )
        return REVISE_TEMPLATE.format(
            task=task_text, own=clip(answers[me], self.max_chars), others=others
        )

    def solve(self, ctx: SolveContext) -> Program:
        params = dataclasses.replace(ctx.params, temperature=self.temperature)
        task_text = base_prompt(ctx.task, ctx.problem)
        prompts = [user(task_text)] * self.agents
        history: list[list[str]] = []
        for round_index in range(self.rounds):
            roles = [f"debater_{i + 1}_round_{round_index + 1}" for i in range(self.agents)]
            replies = yield [
                Request(p, params, role) for p, role in zip(prompts, roles, strict=True)
            ]
            answers = [reply.text for reply in replies]
            history.append(answers)
            prompts = [user(self.revise_prompt(task_text, answers, i)) for i in range(self.agents)]
        chosen, votes = majority_vote(ctx.task, ctx.problem, history[-1])
        return Outcome(final_text=history[-1][chosen], details={"chosen": chosen, "votes": votes})
