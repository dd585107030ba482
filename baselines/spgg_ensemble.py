"""MAC-SPGG ensembles: n agents contribute in turn, as in the environment, the last answers.

Agent i (0-based) sees the prompt the environment would show it,
``task.render_prompt(problem, visible, i, n)``, where ``visible`` is the previous agent's
contribution in partial observation (``observation: partial``) or every predecessor's in full
observation (``observation: full``). The last contribution is the group's final answer. Cost: n
calls per problem, one per round (the game is sequential).

*Untrained* ensembles decode every agent with the config's parameters; *trained* ones take each
agent's generation parameters from a trained policy (``policy_checkpoint``, see
:func:`~spgg_env.baselines.methods.load_params_policy`).

For the record only (never for a decision), each contribution is scored with ``task.score`` and
the episode's MAC-SPGG rewards are computed with
:func:`spgg_env.mechanism.make_mechanism` (contributions c_i = scores, group score G = the last
contribution's score, effort e_i = completion tokens / ``max_new_tokens``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from spgg_env.agents.backend import GenerationParams
from spgg_env.baselines.methods import Method, Outcome, Program, Request, load_params_policy, user

from spgg_env.mechanism import make_mechanism
from spgg_env.prompts import TEMPLATE
from spgg_env.tasks.base import Problem, Task

OBSERVATIONS = ("partial", "full")


class SpggEnsemble(Method):
    """Sequential public goods game ensemble.

    Options:
        agents: Number of agents n (>= 1).
        observation: ``"partial"`` (see the previous agent) or ``"full"`` (see all).
        mechanism: Reward mechanism name for the recorded rewards.
        mechanism_params: Its parameters (defaults: the mechanism's own).
        policy_checkpoint: A trained generation-parameter policy (the trained ensembles).
    """

    name = "spgg"
    templates = {"env_prompt": TEMPLATE}

    def __init__(
        self,
        agents: int = 3,
        observation: str = "partial",
        mechanism: str = "mac-spgg",
        mechanism_params: Mapping[str, Any] | None = None,
        policy_checkpoint: str | None = None,
        **options: Any,
    ) -> None:
        super().__init__(**options)
        if not isinstance(agents, int) or agents < 1:
            raise ValueError(f"agents must be an int >= 1, got {agents!r}")
        if observation not in OBSERVATIONS:
            raise ValueError(f"observation must be one of {OBSERVATIONS}, got {observation!r}")
        self.agents, self.observation = agents, observation
        self.mechanism_name = mechanism
        self.mechanism_params = dict(mechanism_params or {})
        self.mechanism = make_mechanism(mechanism, **self.mechanism_params)
        self.policy_checkpoint = policy_checkpoint
        self.policy = load_params_policy(policy_checkpoint) if policy_checkpoint else None

    def options(self) -> dict[str, Any]:
        return {
            "agents": self.agents,
            "observation": self.observation,
            "mechanism": self.mechanism_name,
            "mechanism_params": self.mechanism_params,
            "policy_checkpoint": self.policy_checkpoint,
        }

    def solve(
        self, task: Task, problem: Problem, params: GenerationParams, rng: np.random.Generator
    ) -> Program:
        texts: list[str] = []
        effort: list[float] = []
        used: list[dict[str, Any]] = []
        for position in range(self.agents):
            seen = list(enumerate(texts))
            visible = seen if self.observation == "full" else seen[-1:]
            prompt = task.render_prompt(problem, visible, position, self.agents)
            agent_params = self.policy(prompt, position, self.agents) if self.policy else params
            (reply,) = yield [Request(user(prompt), agent_params, f"agent_{position}")]
            texts.append(reply.text)
            effort.append(min(1.0, reply.completion_tokens / agent_params.max_new_tokens))
            used.append(agent_params.to_dict())
        scores = [score.value for score in task.score_many(problem, texts)]
        rewards = self.mechanism(
            np.asarray(scores), np.asarray(scores[-1]), effort=np.asarray(effort)
        )
        return Outcome(
            final_text=texts[-1],
            details={
                "contribution_scores": scores,
                "rewards": [float(r) for r in rewards.total],
                "agent_params": used if self.policy else None,
            },
        )
