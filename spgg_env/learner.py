"""The learner protocol: what a learner must offer to play, and be ranked on, any spgg game.

A learner controls every agent of a game (independent learners are one object holding one policy
per agent). It sees only what the env gives: observations and actions are the env's own types
(the scalar game's float32 vector and its ``Discrete``/``Box`` action; the text game's dict
observation and its text action). The loop, for a batch of env copies::

    records = play_episodes(envs, learner)      # learner.act(agent, observations) per turn
    metrics = learner.learn(records)            # then learn from the finished episodes

An **episode record** is a plain dict with one entry per agent that acted::

    {"agent_0": {"observation": obs, "action": action, "reward": 1.23, "info": {...}}, ...}

``observation`` and ``action`` are the agent's decision, ``reward`` its return for the episode
(every reward PettingZoo's ``last()`` gave it, summed) and ``info`` the info of its final
``last()`` (the scalar game puts the contribution and the reward's parts there). In the public
goods games every agent decides once per episode; :func:`play_episodes` refuses a game in which
an agent acts twice rather than silently keep one decision.

``act(..., greedy=True)`` asks for the learner's current best guess without exploration (argmax
of a policy, the highest mean of a bandit, greedy decoding of an LLM): the learner board reads
it to decide whether the learners have reached an equilibrium. Episodes played greedily are not
training data, and the board never passes them to ``learn``.

A **learner factory** builds a learner for one game and one seed: ``make(env, seed=seed)``,
where ``env`` is an env of the game, given for its agents and spaces (the factory must not keep
stepping it; the board plays its own copies). A class whose ``__init__(self, env, *, seed)``
fits is a factory. :func:`load` resolves ``"module:attr"`` to one, so that commands can take a
user's learner by name.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

from pettingzoo import AECEnv

Episode = dict[str, dict[str, Any]]


@runtime_checkable
class Learner(Protocol):
    """Acts for every agent of a game, on a batch of env copies, and learns from episodes."""

    def act(
        self, agent: str, observations: Sequence[Any], *, greedy: bool = False
    ) -> Sequence[Any]:
        """Actions of ``agent`` for a batch of its observations (one per env copy).

        Args:
            agent: The acting agent's name (``env.agent_selection``).
            observations: One observation per env copy in which ``agent`` is to act.
            greedy: Return the current best guess, without exploration (evaluation).

        Returns:
            One action per observation, in the same order, each in ``env.action_space(agent)``.
        """
        ...

    def learn(self, episodes: Sequence[Mapping[str, Any]]) -> Mapping[str, float]:
        """Learn from finished episode records (module docstring); return metrics to log."""
        ...


class LearnerFactory(Protocol):
    """Builds a :class:`Learner` for the game of ``env`` (read for its agents and spaces)."""

    def __call__(self, env: AECEnv, *, seed: int) -> Learner: ...


def play_episodes(
    envs: Sequence[AECEnv],
    learner: Learner,
    *,
    greedy: bool = False,
    seeds: Sequence[int] | None = None,
) -> list[Episode]:
    """Play one episode on every env copy in lockstep and return its records.

    At each turn the copies are grouped by the agent to act, and the learner gets one
    ``act(agent, observations)`` call per group (one call per agent per round in the public
    goods games, whose turn order is fixed).

    Args:
        envs: PettingZoo AEC envs of one game (not necessarily reset).
        learner: Chooses every action.
        greedy: Passed to ``act``: evaluation play.
        seeds: Reset seed per copy (``None``: reset without reseeding).

    Returns:
        One episode record per env copy (module docstring).

    Raises:
        ValueError: If the learner returns the wrong number of actions, or an agent acts twice
            in one episode (the record holds one decision per agent).
    """
    if seeds is not None and len(seeds) != len(envs):
        raise ValueError(f"need one seed per env copy ({len(envs)}), got {len(seeds)}")
    records: list[Episode] = [{} for _ in envs]
    for i, env in enumerate(envs):
        env.reset(seed=None if seeds is None else seeds[i])
    waiting = {i: _next_decision(env, records[i]) for i, env in enumerate(envs)}
    while waiting:
        turns: dict[str, list[int]] = {}
        for i, (agent, _) in waiting.items():
            turns.setdefault(agent, []).append(i)
        for agent, copies in turns.items():
            observations = [waiting[i][1] for i in copies]
            actions = list(learner.act(agent, observations, greedy=greedy))
            if len(actions) != len(copies):
                raise ValueError(
                    f"{type(learner).__name__}.act({agent!r}, ...) returned {len(actions)} "
                    f"actions for {len(copies)} observations"
                )
            for i, observation, action in zip(copies, observations, actions, strict=True):
                record = records[i].setdefault(agent, {"reward": 0.0, "info": {}})
                if "action" in record:
                    raise ValueError(
                        f"{agent} acted twice in one episode; an episode record holds one "
                        "decision per agent"
                    )
                record["observation"], record["action"] = observation, action
                envs[i].step(action)
        waiting = {}
        for i, env in enumerate(envs):
            decision = _next_decision(env, records[i])
            if decision is not None:
                waiting[i] = decision
    return records


def _next_decision(env: AECEnv, record: Episode) -> tuple[str, Any] | None:
    """Advance ``env`` to the next agent to act and return it with its observation, or ``None``
    when the episode is over; record every reward and info on the way.

    Once every remaining agent is done, their final rewards (``_cumulative_rewards``, what
    ``last()`` would return) and infos are recorded without the dead steps PettingZoo's loop
    would take: the episode is over and the next ``reset`` clears them.
    """
    while env.agents:
        agent = env.agent_selection
        live = not (env.terminations[agent] or env.truncations[agent])
        if not live and all(env.terminations[a] or env.truncations[a] for a in env.agents):
            for done in env.agents:
                _add(record, done, env._cumulative_rewards[done], env.infos[done])
            return None
        observation, reward, _, _, info = env.last(observe=live)
        _add(record, agent, reward, info)
        if live:
            return agent, observation
        env.step(None)
    return None


def _add(record: Episode, agent: str, reward: float, info: dict[str, Any]) -> None:
    """Add a reward to ``agent``'s return in ``record`` and keep its latest info."""
    entry = record.setdefault(agent, {"reward": 0.0, "info": {}})
    entry["reward"] += float(reward)
    entry["info"] = info


def load(spec: str) -> Any:
    """The object named by ``"package.module:attr"`` (e.g. a learner factory).

    Raises:
        ValueError: If ``spec`` is not of that form, or the module or attribute is missing.
    """
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise ValueError(f"expected 'module:attr', got {spec!r}")
    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
        raise ValueError(f"cannot import {module_name!r} (from {spec!r}): {err}") from err
    target: Any = module
    for part in attr.split("."):
        if not hasattr(target, part):
            raise ValueError(f"{module_name!r} has no attribute {attr!r} (from {spec!r})")
        target = getattr(target, part)
    return target
