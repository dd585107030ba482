"""ECON (Yi et al., ICML 2025, "From Debate to Equilibrium"): strategy, independent executors,
commitment.

1. The *coordinator* writes a short strategy for the task without solving it.
2. ``executors`` executors each answer the task independently, given the strategy (one batch).
3. The coordinator reads the executors' answers and writes the *commitment*: one final answer
   in the task's format, which is the group's answer.

Cost: ``executors + 2`` calls per problem. **ECON-static** gives every executor fixed sampling
parameters (the config's decoding parameters, optionally overridden per executor with
``executor_params``). **ECON-learned** takes per-executor parameters from a trained
generation-parameter policy (``policy_checkpoint``; see :mod:`spgg_env.baselines.trained_policy`):
executor i is agent i of a checkpoint trained on the same task with ``executors`` agents and
observation ``"none"`` (executors answer independently); its state is the problem statement and
its position (see :meth:`Econ.executor_generation_params`). ECON plays no game of ours, so
only those three facts of the policy's game are checked. The original paper's belief networks
and QMIX mixer are the learner's business; this module is the inference protocol.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from spgg_env.agents.backend import GenerationParams
from spgg_env.agents.engine import Program, Request
from spgg_env.baselines.debate import clip
from spgg_env.baselines.methods import (
    BASE_TEMPLATE,
    Method,
    Outcome,
    SolveContext,
    base_prompt,
    user,
)
from spgg_env.baselines.trained_policy import (
    check_checkpoint,
    describe_policy,
    load_params_policy,
    policy_game,
)
from spgg_env.tasks.base import Problem, Task

STRATEGY_TEMPLATE = """{task}

### Your role
You are the coordinator of a team. Do NOT solve the task and do NOT give the answer. Write a \
short strategy (at most three sentences) that tells your team how to solve it."""

EXECUTOR_TEMPLATE = """{task}

### Strategy from your coordinator
{strategy}

### Your turn
Follow the strategy and give your complete answer in the required format."""

COMMIT_TEMPLATE = """{task}

### Your team's answers
{answers}

### Your role
You are the coordinator. Compare the answers, resolve any disagreement, and write the team's \
final answer in the required format."""


class Econ(Method):
    """Coordinator strategy, independent executors, coordinator commitment.

    Options:
        executors: Number of executors (>= 1).
        executor_params: Optional list (one per executor) of generation-parameter overrides,
            e.g. ``[{temperature: 0.2}, {temperature: 0.7}, {temperature: 1.0}]``.
        policy_checkpoint: Path of a trained generation-parameter policy that sets each
            executor's parameters (ECON-learned); excludes ``executor_params``.
        max_chars: Each quoted answer is cut to this many characters.
    """

    name = "econ"
    templates = {
        "base": BASE_TEMPLATE,
        "strategy": STRATEGY_TEMPLATE,
        "executor": EXECUTOR_TEMPLATE,
        "commit": COMMIT_TEMPLATE,
    }

    def __init__(
        self,
        executors: int = 3,
        executor_params: Sequence[Mapping[str, Any]] | None = None,
        policy_checkpoint: str | None = None,
        max_chars: int = 1200,
        **options: Any,
    ) -> None:
        super().__init__(**options)
        if not isinstance(executors, int) or executors < 1:
            raise ValueError(f"executors must be an int >= 1, got {executors!r}")
        if executor_params is not None and len(executor_params) != executors:
            raise ValueError(
                f"executor_params has {len(executor_params)} entries for {executors} executors; "
                "give one mapping per executor"
            )
        if executor_params is not None and policy_checkpoint is not None:
            raise ValueError("give executor_params (ECON-static) or policy_checkpoint, not both")
        self.executors = executors
        self.executor_params = [dict(p) for p in executor_params] if executor_params else None
        self.policy_checkpoint = check_checkpoint(policy_checkpoint)
        self.policy: Any = None
        self.max_chars = int(max_chars)

    def options(self) -> dict[str, Any]:
        return {
            "executors": self.executors,
            "executor_params": self.executor_params,
            "policy_checkpoint": self.policy_checkpoint,
            "max_chars": self.max_chars,
        }

    def prepare(self, task: Task, problems: Sequence[Problem], rng: np.random.Generator) -> None:
        """Load the trained policy (once); refuse one trained for another task, number of
        agents or observation.

        Raises:
            ValueError: Naming each fact that differs.
        """
        if self.policy_checkpoint is None or self.policy is not None:
            return
        policy = load_params_policy(self.policy_checkpoint)
        game = policy_game(policy)
        wanted = {"task": task.name, "n_agents": self.executors, "observation": "none"}
        wrong = [f"{key}={value!r} (trained with {getattr(game, key)!r})"
                 for key, value in wanted.items() if getattr(game, key) != value]
        if wrong:
            raise ValueError(
                f"policy checkpoint {self.policy_checkpoint!r} does not fit ECON with "
                f"{self.executors} executors: it needs " + ", ".join(wrong) + "; train one with "
                f"`spgg train genparam --task {task.name} --agents {self.executors} "
                "--observation none`")
        self.policy = policy

    def describe(self) -> dict[str, Any]:
        """As :meth:`Method.describe`, with the trained policy's identity (``policy``)."""
        out = super().describe()
        if self.policy_checkpoint is not None:
            out["policy"] = describe_policy(self.policy_checkpoint, self.policy)
        return out

    def executor_generation_params(
        self, task: Task, problem: Problem, params: GenerationParams
    ) -> list[GenerationParams]:
        """Each executor's generation parameters (static overrides or the learned policy).

        The learned policy's state for executor i is the problem statement, position i and no
        visible contribution: executors answer independently, none sees another's answer, so
        the policy is trained as ``executors`` agents with observation ``"none"``. The
        coordinator's strategy is not part of the state (no training env has a coordinator).
        """
        if self.policy is not None:
            return [self.policy(problem.question, [], i, self.executors)
                    for i in range(self.executors)]
        if self.executor_params is not None:
            return [dataclasses.replace(params, **over) for over in self.executor_params]
        return [params] * self.executors

    def solve(self, ctx: SolveContext) -> Program:
        task, problem, params = ctx.task, ctx.problem, ctx.params
        task_text = base_prompt(task, problem)
        (strategy,) = yield [
            Request(user(STRATEGY_TEMPLATE.format(task=task_text)), params, "coordinator")
        ]
        executor_text = EXECUTOR_TEMPLATE.format(
            task=task_text, strategy=clip(strategy.text, self.max_chars)
        )
        executor_params = self.executor_generation_params(task, problem, params)
        replies = yield [
            Request(user(executor_text), p, f"executor_{i + 1}")
            for i, p in enumerate(executor_params)
        ]
        answers = "\n\n".join(
            f"Executor {i + 1}:\n{clip(reply.text, self.max_chars)}"
            for i, reply in enumerate(replies)
        )
        (commitment,) = yield [
            Request(
                user(COMMIT_TEMPLATE.format(task=task_text, answers=answers)), params, "commitment"
            )
        ]
        return Outcome(
            final_text=commitment.text,
            details={
                "strategy": strategy.text,
                "executor_params": [p.to_dict() for p in executor_params],
            },
        )
