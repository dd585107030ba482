"""Batched rollouts: K copies of the environment in lockstep, one backend call per position.

The game is sequential, so agent i+1's prompt needs agent i's contribution: the generations of one
episode cannot be batched. Those of K episodes can. :class:`RolloutRunner` keeps K copies of the
environment (built with the same arguments), resets copy k with seed ``seed_k``, and at each
position i gathers the K observations of ``agent_i``, turns them into chat prompts with the
ensemble's agent i, makes **one** ``generate`` call for the K prompts, and steps every copy with
its text. K episodes cost n batched calls instead of n * K single ones.

Every copy's ``token_counter`` is the acting agent's backend's ``count_tokens``, so the env's
cost uses real tokens. Each episode yields one JSON-ready record (:meth:`RolloutRunner.play`):
problem uid, group score, rewards, token totals, wall time, and per agent the chat prompt, the
generation parameters, the contribution, prompt/completion tokens, finish reason and error,
prompt truncation, score, extracted answer, parse error, reward and its components. A failed
generation is played as the empty contribution (scored 0) and recorded; an exception while
stepping one copy ends that episode with ``"error"`` set in its record. No episode is dropped.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from spgg_env.agents.backend import Backend, Generation, GenerationParams
from spgg_env.agents.ensemble import Ensemble
from spgg_env.agents.llm_agent import LLMAgent
from spgg_env.env import aec_env
from spgg_env.tasks import make_task

log = logging.getLogger(__name__)

#: ``(episode_seed, position, observation) -> GenerationParams``: per-episode parameters, e.g.
#: from a learned generation-parameter policy; ``None`` keeps each agent's own.
ParamsChooser = Callable[[int, int, Mapping[str, Any]], GenerationParams]


class ActingCounter:
    """The env's ``token_counter``: counts with the backend of the agent about to step."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend

    def __call__(self, text: str) -> int:
        return self.backend.count_tokens(text)


class RolloutRunner:
    """Plays episodes of the text game with an ensemble, ``batch_size`` at a time.

    Args:
        ensemble: The agents (an :class:`Ensemble` or a list of :class:`LLMAgent`); agent i
            plays ``agent_i``, so the game has ``len(ensemble)`` agents.
        batch_size: K, the number of environment copies played in lockstep.
        choose_params: Optional per-episode generation parameters (see :data:`ParamsChooser`).
        **env_kwargs: Arguments of :func:`spgg_env.aec_env` (``task``, ``task_options``,
            ``observation``, ``mechanism``, ``split``, ``max_tokens``...), the same for every
            copy; the task is built once and shared by the copies.
    """

    def __init__(
        self,
        ensemble: Ensemble | Sequence[LLMAgent],
        *,
        batch_size: int = 8,
        choose_params: ParamsChooser | None = None,
        **env_kwargs: Any,
    ) -> None:
        agents = list(ensemble.agents if isinstance(ensemble, Ensemble) else ensemble)
        if not agents:
            raise ValueError("the ensemble has no agents")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size!r}")
        n = env_kwargs.pop("n_agents", len(agents))
        if n != len(agents):
            raise ValueError(f"n_agents={n} but the ensemble has {len(agents)} agents")
        for key in ("token_counter", "render_mode"):
            if key in env_kwargs:
                raise ValueError(f"{key} is set by the runner; do not pass it")
        self.agents = agents
        self.batch_size = int(batch_size)
        self.choose_params = choose_params
        self.env_kwargs = dict(env_kwargs)
        # One task instance (data, scorer, judge model) serves every copy.
        env_kwargs["task"] = make_task(env_kwargs.pop("task", "arith"),
                                       **dict(env_kwargs.pop("task_options", None) or {}))
        self.counter = ActingCounter(agents[0].backend)
        self.envs = [aec_env(n_agents=len(agents), token_counter=self.counter, **env_kwargs)
                     for _ in range(self.batch_size)]
        base = self.envs[0].unwrapped
        self.task, self.split = base.task, base.split
        self.observation = base.observation_mode

    @property
    def n_problems(self) -> int:
        """Problems in the split the episodes draw from."""
        return len(self.task.problems(self.split))

    # ------------------------------------------------------------------- play
    def play(
        self, seeds: Sequence[int], options: Sequence[Mapping[str, Any] | None] | None = None
    ) -> list[dict[str, Any]]:
        """Play ``len(seeds) <= batch_size`` episodes in lockstep; one record per episode.

        Args:
            seeds: Episode seeds (env copy k is reset with ``seeds[k]``).
            options: Per-episode reset options (e.g. ``{"problem_index": i}``).
        """
        if not 1 <= len(seeds) <= self.batch_size:
            raise ValueError(f"play takes 1..{self.batch_size} seeds, got {len(seeds)}")
        options = list(options) if options is not None else [None] * len(seeds)
        start = time.perf_counter()
        envs = self.envs[: len(seeds)]
        errors: list[str | None] = [None] * len(seeds)
        for env, seed, option in zip(envs, seeds, options, strict=True):
            env.reset(seed=int(seed), options=dict(option) if option else None)
        steps: list[list[dict[str, Any]]] = [[] for _ in seeds]
        for position, agent in enumerate(self.agents):
            live = [k for k in range(len(seeds)) if errors[k] is None]
            if not live:
                break
            name = f"agent_{position}"
            observations = [envs[k].observe(name) for k in live]
            params = (
                [self.choose_params(int(seeds[k]), position, o)
                 for k, o in zip(live, observations, strict=True)]
                if self.choose_params else [agent.params] * len(live)
            )
            call_seed = int(np.random.SeedSequence([*map(int, seeds), position])
                            .generate_state(1)[0])
            generations = agent.act_batch(observations, params=params, seed=call_seed)
            self.counter.backend = agent.backend
            for k, obs, gp, gen in zip(live, observations, params, generations, strict=True):
                steps[k].append(_step_record(agent, name, position, obs, gp, gen))
                try:
                    envs[k].step(gen.text if gen.finish_reason != "error" else "")
                except Exception as exc:  # noqa: BLE001 - recorded in the episode, never lost
                    log.exception("episode with seed %s failed at %s", seeds[k], name)
                    errors[k] = f"{name}: {type(exc).__name__}: {exc}"
        wall = time.perf_counter() - start
        return [
            self._episode_record(envs[k], int(seeds[k]), steps[k], errors[k], wall, len(seeds))
            for k in range(len(seeds))
        ]

    def run(
        self, episodes: int, *, seed: int = 0, sweep: bool = True, first_episode: int = 0
    ) -> Iterator[dict[str, Any]]:
        """Yield ``episodes`` records, playing ``batch_size`` episodes per batch.

        Episode e (counting from ``first_episode``) has seed ``seed + e``; with ``sweep`` it
        plays problem ``e mod n_problems`` of the split in order (so runs with different
        observation modes see the same problems), else a problem drawn with its seed.
        """
        if episodes < 0:
            raise ValueError(f"episodes must be >= 0, got {episodes!r}")
        todo = list(range(first_episode, first_episode + episodes))
        for begin in range(0, len(todo), self.batch_size):
            batch = todo[begin: begin + self.batch_size]
            options = ([{"problem_index": e % self.n_problems} for e in batch]
                       if sweep else None)
            for e, record in zip(batch, self.play([seed + e for e in batch], options),
                                 strict=True):
                yield {"episode": e, **record}

    # ---------------------------------------------------------------- records
    def _episode_record(
        self, env: Any, seed: int, steps: list[dict[str, Any]], error: str | None,
        wall: float, batch: int,
    ) -> dict[str, Any]:
        base = env.unwrapped
        finished = error is None and len(steps) == len(self.agents)
        for position, step in enumerate(steps):
            info = base.infos.get(f"agent_{position}", {})
            step["env_tokens"] = info.get("tokens")
            step["truncated_action"] = info.get("truncated_action")
            step["prompt_truncated"] = bool(step["prompt_truncated"]
                                            or info.get("prompt_truncated"))
            if finished:
                step.update(
                    score=info["score"], extracted=info["extracted"],
                    parse_error=info["parse_error"], effort=info["effort"],
                    reward=info["reward_components"]["total"],
                    reward_components=info["reward_components"],
                )
        last = base.infos.get(f"agent_{len(self.agents) - 1}", {})
        return {
            "seed": seed,
            "task": self.task.name,
            "split": self.split,
            "observation": self.observation,
            "problem_uid": base.problem.uid if base.problem is not None else None,
            "group_score": last.get("group_score") if finished else None,
            "rewards": {f"agent_{i}": s.get("reward") for i, s in enumerate(steps)},
            "tokens": {
                "prompt": sum(s["prompt_tokens"] for s in steps),
                "completion": sum(s["completion_tokens"] for s in steps),
            },
            "failed_generations": sum(s["finish_reason"] == "error" for s in steps),
            "error": error,
            "wall_s": wall / batch,
            "batch_wall_s": wall,
            "batch_size": batch,
            "agents": steps,
        }


def _step_record(
    agent: LLMAgent, name: str, position: int, observation: Mapping[str, Any],
    params: GenerationParams, gen: Generation,
) -> dict[str, Any]:
    return {
        "agent": name,
        "name": agent.name,
        "position": position,
        "n_visible": int(observation.get("n_visible", 0)),
        "prompt": agent.chat(observation),
        "params": params.to_dict(),
        "contribution": gen.text if gen.finish_reason != "error" else "",
        "prompt_tokens": gen.prompt_tokens,
        "completion_tokens": gen.completion_tokens,
        "finish_reason": gen.finish_reason,
        "generation_error": gen.error,
        "empty_generation": not gen.text.strip(),
        "prompt_truncated": gen.prompt_truncated,
        "latency_s": gen.latency_s,
    }
