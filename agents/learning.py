"""What the text-game learners share around their algorithms: problem draws, the steps an agent
learns from, episode metrics, and the greedy view of a learner.

A text-game learner (:class:`~spgg_env.agents.ppo.PPOLearner`,
:class:`~spgg_env.agents.genparam_learner.GenParamLearner`) follows the learner protocol:

* ``act(agent, observations, *, greedy=False) -> list[Request]``: one generation request per
  observation (the engine generates the contribution; see :mod:`spgg_env.agents.episodes`);
* ``learn(episodes) -> metrics``: one update from finished
  :class:`~spgg_env.agents.episodes.Episode` objects, whose steps carry the request, the exact
  generation (``prompt_ids``, ``token_ids``) and the reward the episode paid.

Its own train loop is ``learn(runner.play(this update's problems))`` repeated; a learner board can
drive the two methods itself.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import field, fields
from typing import Any

import numpy as np

from spgg_env.agents.episodes import Episode, Step
from spgg_env.seeding import LEARNER, rng
from spgg_env.spec import GameSpec

#: The reward's parts that the env reports in ``info["reward_components"]``.
REWARD_PARTS = ("cost", "synergy", "public_share", "penalty")


def option(default: Any, text: str) -> Any:
    """A learner config field whose command-line flag says ``text`` (``default`` may be a
    zero-argument factory, e.g. of the default game)."""
    if callable(default):
        return field(default_factory=default, metadata={"help": text})
    return field(default=default, metadata={"help": text})


class LearnerConfig:
    """What the learners' config dataclasses share: a ``game`` field holding a
    :class:`~spgg_env.spec.GameSpec` (a mapping is read as one), the JSON form, and checks."""

    def __post_init__(self) -> None:
        self.game = GameSpec.from_dict(self.game, source=f"{type(self).__name__}.game")

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready mapping (``config.json``, checkpoints)."""
        out = {f.name: getattr(self, f.name) for f in fields(self)}  # type: ignore[arg-type]
        return out | {"game": self.game.to_dict()} | {
            k: list(v) for k, v in out.items() if isinstance(v, list | tuple)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Any:
        """Build from a mapping (``game`` as a spec mapping), naming any unknown key."""
        known = {f.name for f in fields(cls)}  # type: ignore[arg-type]
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown {cls.__name__} key(s) {sorted(unknown)}; valid: "
                             f"{sorted(known)}")
        return cls(**data)

    def resumed(self, saved: Mapping[str, Any]) -> Any:
        """This config continuing a run whose checkpoint stored the config ``saved``: the
        seed (the root of every random stream) is the checkpoint's, so the resumed run draws
        what the uninterrupted one would have."""
        if saved["seed"] == self.seed:  # type: ignore[attr-defined]
            return self
        print(f"[resume] the run's seed is the checkpoint's ({saved['seed']}), not "
              f"{self.seed}", flush=True)  # type: ignore[attr-defined]
        return dataclasses.replace(self, seed=int(saved["seed"]))  # type: ignore[type-var]

    def require_positive(self, names: Iterable[str]) -> None:
        """Raise ``ValueError`` naming the first of ``names`` that is not an integer >= 1."""
        for name in names:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}")


def draw_problems(seed: int, update: int, count: int, pool: int) -> list[int]:
    """Indices into a pool of ``pool`` problems for one update's ``count`` episodes.

    Drawn from the stream ``(seed, LEARNER, "problems", update)``, without replacement when the
    pool is large enough (so no update plays a problem twice), with replacement otherwise. A
    resumed run draws the same problems as an uninterrupted one.

    Raises:
        ValueError: If the pool is empty.
    """
    if pool < 1:
        raise ValueError("no problems to draw from")
    generator = rng(seed, LEARNER, "problems", update)
    return [int(i) for i in generator.choice(pool, size=count, replace=count > pool)]


def agent_steps(episodes: Sequence[Episode], agent: str) -> list[Step]:
    """``agent``'s steps in the finished episodes (an episode that failed is skipped: its
    rewards are incomplete)."""
    return [s for e in episodes if e.finished for s in e.steps if s.agent == agent]


def episode_metrics(episodes: Sequence[Episode], prefix: str = "") -> dict[str, float]:
    """Means over finished episodes: per agent the reward (``step.reward``) and its parts, the
    contribution's score and tokens; the group's task score, parse-error rate, and how many
    episodes failed.

    Keys: ``{prefix}/agent_{i}/reward``, ``.../reward_{part}``, ``.../score``, ``.../tokens``,
    ``{prefix}/reward``, ``{prefix}/task_score``, ``{prefix}/parse_error_rate``,
    ``{prefix}/failed_episodes`` (no ``{prefix}/`` when ``prefix`` is empty).
    """
    head = f"{prefix}/" if prefix else ""
    done = [e for e in episodes if e.finished]
    out: dict[str, float] = {f"{head}failed_episodes": float(len(episodes) - len(done))}
    if not done:
        return out
    steps = [s for e in done for s in e.steps]
    for agent in dict.fromkeys(s.agent for s in steps):
        mine = [s for s in steps if s.agent == agent]
        out[f"{head}{agent}/reward"] = _mean(s.reward for s in mine)
        for part in REWARD_PARTS:
            out[f"{head}{agent}/reward_{part}"] = _mean(
                _components(s).get(part, np.nan) for s in mine)
        out[f"{head}{agent}/score"] = _mean(s.info.get("score", np.nan) for s in mine)
        out[f"{head}{agent}/tokens"] = _mean(s.info.get("tokens", np.nan) for s in mine)
    out[f"{head}reward"] = _mean(s.reward for s in steps)
    out[f"{head}task_score"] = _mean(e.group_score for e in done)
    out[f"{head}parse_error_rate"] = _mean(s.info.get("parse_error") is not None for s in steps)
    return out


def model_path(name: str) -> str:
    """A model folder or hub id as given; ``"embedded"`` is the folder of the offline
    SmolLM2-135M-Instruct."""
    if str(name) == "embedded":
        from spgg_env.embedded_model import embedded_model_path

        return str(embedded_model_path())
    return str(name)


class Greedy:
    """A learner's best guess without exploration, as a policy of the episode engine
    (``act(agent, observations)`` calls the learner's ``act(..., greedy=True)``): how a
    learner is evaluated."""

    def __init__(self, learner: Any) -> None:
        self.learner = learner
        self.n_agents = getattr(learner, "n_agents", None)

    def act(self, agent: str, observations: Sequence[Mapping[str, Any]]) -> Sequence[Any]:
        """The learner's greedy actions."""
        return self.learner.act(agent, observations, greedy=True)


def _components(step: Step) -> Mapping[str, float]:
    return step.info.get("reward_components") or {}


def _mean(values: Any) -> float:
    return float(np.mean([float(v) for v in values]))
