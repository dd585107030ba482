"""MAC-SPGG ensembles: n agents contribute in turn through the environment; the last answers.

Each problem is one episode of the text game, played by
:func:`spgg_env.agents.episodes.play_episode` (the one loop that steps a text env) as this
method's engine program. The game is the config's :class:`~spgg_env.spec.GameSpec` (agents,
observation, mechanism and its parameters, effort budget and token counting, prompt style); the
env resets to the problem (``options={"problem_uid": uid}``, seed
``episode_seed(run seed, problem index)``). Agent i acts from its observation alone
(:class:`ObservationPolicy`): the observation's ``prompt`` (the task plus the contributions it
sees) is the user message, after ``shots`` solved exemplars when the method has them (the
game's first-turn prompt of each, then its worked answer: the turns ``spgg run`` shows an
ensemble with ``shots``). The last contribution is the group's final answer. Cost: n calls per
problem, one per turn (the game is sequential).

*Untrained* ensembles decode every agent with the config's parameters; *trained* ones take each
agent's generation parameters from a trained policy (``policy_checkpoint``, see
:mod:`spgg_env.baselines.trained_policy`), whose state is built from the observation as in
training: the problem statement (``task``), the position and the contributions it sees. The
policy must have been trained in the config's game (any split): the same task, agents,
observation, mechanism, effort budget and token counting, else the run is refused naming every
differing field. The result file records the checkpoint's SHA-256 (``method.policy``).

The env's final ``info`` of each agent (score, effort, tokens, reward and its parts) goes into
the episode record's details; no decision uses it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from spgg_env import prompts
from spgg_env.agents.backend import GenerationParams
from spgg_env.agents.engine import Program, Request
from spgg_env.agents.ensemble import game_exemplar_chat
from spgg_env.agents.episodes import ActingCounter, play_episode
from spgg_env.baselines.methods import Method, Outcome, SolveContext, user
from spgg_env.baselines.trained_policy import (
    ParamsPolicy,
    check_checkpoint,
    describe_policy,
    load_params_policy,
    require_game,
)
from spgg_env.env import raw_env
from spgg_env.seeding import episode_seed
from spgg_env.spec import GameSpec
from spgg_env.tasks.base import Problem, Task
from spgg_env.tasks.exemplars import draw_exemplars


class ObservationPolicy:
    """Each agent's request built from its observation only: the observation's prompt as the
    user message, decoded with fixed parameters or with a trained policy's parameters for the
    agent's state (the problem statement, its position, the contributions it sees)."""

    def __init__(self, params: GenerationParams, n_agents: int,
                 params_policy: ParamsPolicy | None = None, backend: str = "default",
                 exemplars: Sequence[Mapping[str, str]] = ()) -> None:
        self.params, self.n_agents = params, n_agents
        self.params_policy, self.backend = params_policy, backend
        self.exemplars = [dict(turn) for turn in exemplars]

    def act(self, agent: str, observations: Sequence[Mapping[str, Any]]) -> list[Request]:
        """One request per observation (the engine generates the contribution): the few-shot
        turns, if any, then the observation's prompt."""
        return [Request([*self.exemplars, *user(o["prompt"])], self.agent_params(o), role=agent,
                        backend=self.backend) for o in observations]

    def agent_params(self, observation: Mapping[str, Any]) -> GenerationParams:
        """The parameters of the agent that observes ``observation``."""
        if self.params_policy is None:
            return self.params
        seen = [text for text, shown in zip(observation["contributions"], observation["visible"],
                                            strict=True) if shown]
        return self.params_policy(observation["task"], seen, int(observation["position"]),
                                  self.n_agents)


class SpggEnsemble(Method):
    """Sequential public goods game ensemble.

    Options:
        game: The game (a :class:`~spgg_env.spec.GameSpec` or its mapping): task, agents,
            observation, mechanism, effort budget, token counting, prompt style. A benchmark
            config gives it as its top-level ``game``.
        policy_checkpoint: A trained generation-parameter policy (the trained ensembles).
        shots: Solved exemplars every agent sees before its turn (0: none), drawn once per run
            seed from outside the evaluated problems, shown as the game's first-turn prompt of
            the exemplar then its worked answer (as an ensemble config's ``shots`` in
            ``spgg run``).
    """

    name = "spgg"
    plays_game = True
    templates = {"env_prompt": prompts.TEMPLATE, "env_prompt_compact": prompts.COMPACT_TEMPLATE}

    def __init__(self, game: GameSpec | Mapping[str, Any] | None = None,
                 policy_checkpoint: str | None = None, shots: int = 0, **options: Any) -> None:
        super().__init__(**options)
        if not isinstance(shots, int) or isinstance(shots, bool) or shots < 0:
            raise ValueError(f"shots must be an int >= 0, got {shots!r}")
        self.shots = shots
        self.exemplars: tuple[Problem, ...] = ()
        if game is None:
            raise ValueError("method 'spgg' plays the game: give its spec as `game` (a benchmark "
                             "config's top-level `game:` mapping)")
        self.game = GameSpec.from_dict(game, source="game of method 'spgg'")
        self.policy_checkpoint = check_checkpoint(policy_checkpoint)
        self.policy: ParamsPolicy | None = None

    def options(self) -> dict[str, Any]:
        return {"policy_checkpoint": self.policy_checkpoint, "shots": self.shots}

    def describe(self) -> dict[str, Any]:
        """As :meth:`Method.describe`, with the game's fingerprint and, for a trained ensemble,
        the policy's identity (``policy``)."""
        out = {**super().describe(), "game_fingerprint": self.game.fingerprint()}
        if self.policy_checkpoint is not None:
            out["policy"] = describe_policy(self.policy_checkpoint, self.policy)
        return out

    def prepare(self, task: Task, problems: Sequence[Problem], rng: np.random.Generator) -> None:
        """Check the task against the game; draw the run seed's exemplars (``shots``); load the
        trained policy (once) and refuse it unless it was trained in this game.

        Raises:
            ValueError: On another task, or a policy trained in another game (every
                differing field named).
        """
        if task.name != self.game.task:
            raise ValueError(f"method 'spgg' plays {self.game.task!r} but the run's task is "
                             f"{task.name!r}")
        self.exemplars = draw_exemplars(task, self.shots, problems, rng)
        if self.policy_checkpoint is None or self.policy is not None:
            return
        policy = load_params_policy(self.policy_checkpoint)
        require_game(policy, self.game, what=f"policy checkpoint {self.policy_checkpoint!r}")
        self.policy = policy

    def solve(self, ctx: SolveContext) -> Program:
        counter = ActingCounter() if self.game.token_counting == "model" else None
        env = raw_env(self.game, task=ctx.task, token_counter=counter)
        policy = ObservationPolicy(ctx.params, self.game.n_agents, self.policy,
                                   exemplars=game_exemplar_chat(ctx.task, self.game,
                                                                self.exemplars))
        episode = yield from play_episode(
            env, policy, index=ctx.index, seed=episode_seed(ctx.seed, ctx.index),
            options={"problem_uid": ctx.problem.uid}, backends=ctx.backends,
        )
        steps = episode.steps
        return Outcome(
            final_text=steps[-1].action if steps else "",
            details={
                "contribution_scores": [s.info.get("score") for s in steps],
                "group_score": episode.group_score,
                "effort": [s.info.get("effort") for s in steps],
                "env_tokens": [s.info.get("tokens") for s in steps],
                "rewards": [s.reward for s in steps],
                "reward_components": [s.info.get("reward_components") for s in steps],
                "agent_params": ([s.request.params.to_dict() for s in steps if s.request]
                                 if self.policy is not None else None),
                "episode_error": episode.error,
                "exemplars": [p.uid for p in self.exemplars],
            },
        )
