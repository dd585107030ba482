"""MAC-SPGG ensembles: n agents contribute in turn through the environment; the last answers.

Each problem is played as one episode of :class:`spgg_env.env.SPGGEnv`, reset to that problem
(``options={"problem_uid": uid}``): agent i's request is its observation's prompt (the task plus
the previous agent's contribution in partial observation, every predecessor's in full
observation) as the user message, and its reply is stepped into the env as its contribution.
The last contribution is the group's final answer. Cost: n calls per problem, one per round
(the game is sequential).

*Untrained* ensembles decode every agent with the config's parameters; *trained* ones take each
agent's generation parameters from a trained policy (``policy_checkpoint``, see
:func:`~spgg_env.baselines.methods.load_params_policy`): agent i's state is the problem
statement, its position and the contributions it sees, as in training. The checkpoint must have
been trained for the same number of agents, observation, mechanism and task (checked), and the
result file records its SHA-256 (``method.policy``).

The env's end-of-episode ``info`` (each contribution's score, the group score, the mechanism's
rewards) goes into the episode record's details; no decision uses it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from spgg_env.agents.backend import GenerationParams
from spgg_env.baselines.methods import Method, Outcome, Program, Request, load_params_policy, user
from spgg_env.env import SPGGEnv
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
        self.policy = None
        if policy_checkpoint:
            seen = observation if self.mechanism.sequential else "none"
            self.policy = load_params_policy(
                policy_checkpoint, n_agents=agents, observation=seen, mechanism=mechanism
            )

    def options(self) -> dict[str, Any]:
        return {
            "agents": self.agents,
            "observation": self.observation,
            "mechanism": self.mechanism_name,
            "mechanism_params": self.mechanism_params,
            "policy_checkpoint": self.policy_checkpoint,
        }

    def prepare(self, task: Task, problems: Sequence[Problem], rng: np.random.Generator) -> None:
        """Refuse a policy trained on another task."""
        if self.policy is not None:
            self.policy.expect(task=task.name)

    def solve(
        self, task: Task, problem: Problem, params: GenerationParams, rng: np.random.Generator
    ) -> Program:
        env = SPGGEnv(
            task=task,
            n_agents=self.agents,
            observation=self.observation,
            mechanism=self.mechanism,
        )
        env.reset(options={"problem_uid": problem.uid})
        used: list[dict[str, Any]] = []
        for position in range(self.agents):
            agent = env.agent_selection
            prompt = env.observe(agent)["prompt"]
            agent_params = params
            if self.policy is not None:  # the state: task, position and what this agent sees
                visible = [text for _, text in env.visible(position)]
                agent_params = self.policy(problem.question, visible, position, self.agents)
            (reply,) = yield [Request(user(prompt), agent_params, agent)]
            env.step(reply.text)
            used.append(agent_params.to_dict())
        infos = [env.infos[agent] for agent in env.possible_agents]
        return Outcome(
            final_text=env.contributions[-1],
            details={
                "contribution_scores": [info["score"] for info in infos],
                "group_score": infos[-1]["group_score"],
                "rewards": [info["reward_components"]["total"] for info in infos],
                "agent_params": used if self.policy else None,
            },
        )
