"""Episodes of the text game as engine programs, and the runner that plays many of them.

:func:`play_episode` is the only code in the package that steps a text env. It resets the env,
then for each agent in turn asks the **policy** for an action on the agent's observation; an
action is either the contribution text itself or a :class:`~spgg_env.agents.engine.Request`,
which the engine generates (batched with other episodes' requests) and whose text becomes the
contribution. After the last agent the env pays everyone; the program returns an
:class:`Episode` with every observation, request, generation, reward and final ``info``.

A **policy** is anything with ``act(agent, observations) -> actions`` (the learner protocol of
:mod:`spgg_env.learner`): an :class:`~spgg_env.agents.ensemble.Ensemble` of LLM agents, a
learner that picks generation parameters, a token-level PPO learner, or a scripted test policy.

Effort is counted as the spec says: ``token_counting="model"`` counts each contribution with the
tokenizer of the backend that wrote it (each env copy has its own :class:`ActingCounter`).

A failed generation is played as the empty contribution (scored 0) and recorded; an exception
while stepping ends that episode with ``error`` set. No episode is lost.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from spgg_env.agents.backend import Backend, Generation
from spgg_env.agents.engine import Engine, Program, Request
from spgg_env.env import raw_env
from spgg_env.seeding import episode_seed, generation_seed
from spgg_env.spec import GameSpec
from spgg_env.tasks import Task

log = logging.getLogger(__name__)


class Policy(Protocol):
    """Acts for the agents of the text game (see the module docstring)."""

    def act(self, agent: str, observations: Sequence[Mapping[str, Any]]) -> Sequence[Any]:
        """One action per observation: the contribution text, or a Request to generate it."""
        ...

    # Optional: ``prepare(task, spec, seed)``, called by :class:`EpisodeRunner` before a run's
    # first episode (an ensemble draws its few-shot exemplars there).


class ActingCounter:
    """An env's ``token_counter`` under ``token_counting="model"``: counts with the tokenizer of
    the backend that wrote the contribution about to be stepped."""

    def __init__(self) -> None:
        self.count: Callable[[str], int] | None = None

    def __call__(self, text: str) -> int:
        if self.count is None:
            raise ValueError("token_counting='model' needs the acting model's tokenizer, but "
                             "this contribution came from a policy without a backend")
        return self.count(text)


@dataclass
class Step:
    """One agent's turn.

    Attributes:
        agent: ``agent_i``.
        observation: What it observed.
        action: The contribution stepped into the env.
        request: The generation request, when the policy asked the engine to write it.
        generation: The engine's generation for ``request``.
        reward: Its reward for the episode (PettingZoo's reward at termination).
        info: Its final ``info`` (score, extracted answer, parse error, reward components...).
    """

    agent: str
    observation: Mapping[str, Any]
    action: str
    request: Request | None = None
    generation: Generation | None = None
    reward: float | None = None
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def position(self) -> int:
        """0-based position in the turn order."""
        return int(self.observation["position"])


@dataclass
class Episode:
    """A finished episode (see :meth:`to_record` for its JSON form)."""

    index: int
    seed: int
    spec: GameSpec
    steps: list[Step]
    problem_uid: str | None = None
    error: str | None = None
    started_s: float = 0.0
    finished_s: float = 0.0

    @property
    def finished(self) -> bool:
        """True when every agent acted and was paid."""
        return self.error is None and all(s.reward is not None for s in self.steps) and (
            len(self.steps) == self.spec.n_agents)

    @property
    def group_score(self) -> float | None:
        """The score of the group's answer (``None`` for an unfinished episode)."""
        return self.steps[-1].info.get("group_score") if self.finished else None

    @property
    def rewards(self) -> dict[str, float | None]:
        """Each agent's reward."""
        return {s.agent: s.reward for s in self.steps}

    def to_record(self) -> dict[str, Any]:
        """The episode as one JSON-ready transcript line.

        Timing fields (``timing``, each agent's ``latency_s``) are wall-clock seconds of this
        run: ``started_s``/``finished_s`` since the run began, ``elapsed_s`` between them
        (the episode's latency under batching, not its cost); a step's ``latency_s`` is the
        wall time of the backend call that produced it.
        """
        steps = [self._step_record(s) for s in self.steps]
        return {
            "episode": self.index,
            "seed": self.seed,
            "task": self.spec.task,
            "split": self.spec.split,
            "observation": self.spec.observation,
            "problem_uid": self.problem_uid,
            "reference": self.steps[-1].info.get("reference") if self.finished else None,
            "group_score": self.group_score,
            "rewards": self.rewards,
            "tokens": {
                "prompt": sum(s["prompt_tokens"] for s in steps),
                "completion": sum(s["completion_tokens"] for s in steps),
            },
            "failed_generations": sum(s["finish_reason"] == "error" for s in steps),
            "error": self.error,
            "timing": {"started_s": self.started_s, "finished_s": self.finished_s,
                       "elapsed_s": self.finished_s - self.started_s},
            "agents": steps,
        }

    @staticmethod
    def _step_record(step: Step) -> dict[str, Any]:
        gen, request, info = step.generation, step.request, step.info
        return {
            "agent": step.agent,
            "name": request.role if request is not None else step.agent,
            "position": step.position,
            "n_visible": int(sum(step.observation.get("visible", ()))),
            "prompt": request.prompt if request is not None else step.observation["prompt"],
            "params": request.params.to_dict() if request is not None else None,
            "contribution": step.action,
            "extracted": info.get("extracted"),
            "score": info.get("score"),
            "parse_error": info.get("parse_error"),
            "prompt_tokens": gen.prompt_tokens if gen else 0,
            "completion_tokens": gen.completion_tokens if gen else 0,
            "env_tokens": info.get("tokens"),
            "finish_reason": gen.finish_reason if gen else "stop",
            "generation_error": gen.error if gen else None,
            "empty_generation": not step.action.strip(),
            "prompt_truncated": bool((gen and gen.prompt_truncated)
                                     or info.get("prompt_truncated")),
            "truncated_action": info.get("truncated_action"),
            "effort": info.get("effort"),
            "reward": step.reward,
            "reward_components": info.get("reward_components"),
            "latency_s": gen.latency_s if gen else 0.0,
        }


def play_episode(
    env: Any,
    policy: Policy,
    *,
    index: int,
    seed: int,
    options: Mapping[str, Any] | None = None,
    sampling_root: int | None = None,
    backends: Mapping[str, Backend] | None = None,
    clock: Callable[[], float] = time.perf_counter,
) -> Program:
    """One episode as an engine program (see the module docstring).

    Args:
        env: A text env (wrapped or raw); its ``token_counter`` is an :class:`ActingCounter`
            when the spec counts the model's tokens.
        policy: Acts for every agent.
        index: The episode's index in the run (recorded).
        seed: The env's reset seed.
        options: Reset options (``{"problem_index": i}`` or ``{"problem_uid": uid}``).
        sampling_root: Root seed of the requests' sampling seeds: a request without a seed
            gets ``generation_seed(sampling_root, index, position)``. ``None`` leaves them to
            the engine.
        backends: The engine's backends, to count a generated text with its model's tokenizer.
        clock: Time source for the timing fields.

    Returns:
        A program whose outcome is the :class:`Episode`.
    """
    base = env.unwrapped
    counter = base.token_counter if isinstance(base.token_counter, ActingCounter) else None
    started = clock()
    steps: list[Step] = []
    error = None
    env.reset(seed=seed, options=dict(options) if options else None)
    try:
        for agent in env.agent_iter():
            observation, reward, terminated, truncated, info = env.last()
            if terminated or truncated:
                steps[base.possible_agents.index(agent)].reward = float(reward)
                steps[base.possible_agents.index(agent)].info = dict(info)
                env.step(None)
                continue
            (action,) = policy.act(agent, [observation])
            step = Step(agent, observation, "")
            if isinstance(action, Request):
                if action.seed is None and sampling_root is not None:
                    position = int(observation["position"])
                    action = replace(action, seed=generation_seed(sampling_root, index, position))
                (step.generation,) = yield [action]
                step.request = action
                failed = step.generation.finish_reason == "error"
                step.action = "" if failed else step.generation.text
                if counter is not None:
                    counter.count = (backends or {})[action.backend].count_tokens
            elif isinstance(action, str):
                step.action = action
                if counter is not None:
                    counter.count = getattr(policy, "count_tokens", None)
            else:
                raise TypeError(f"policy acted for {agent} with {type(action).__name__}; "
                                "expected the contribution (str) or a Request")
            steps.append(step)
            env.step(step.action)
    except Exception as exc:  # noqa: BLE001 - recorded in the episode, never lost
        log.exception("episode %d (seed %d) failed", index, seed)
        error = f"{env.unwrapped.agent_selection}: {type(exc).__name__}: {exc}"
    problem = base.problem
    return Episode(index, seed, base.spec, steps, problem.uid if problem else None, error,
                   started, clock())


class EpisodeRunner:
    """Plays episodes of one game with one policy on an engine, many at once.

    Args:
        spec: The game.
        policy: Acts for every agent (e.g. an :class:`~spgg_env.agents.ensemble.Ensemble`).
        engine: Generates the policy's requests (its ``backends`` must serve them).
        task: A ready instance of the spec's task shared by the env copies (default: built
            once from the spec).

    Raises:
        ValueError: If the policy plays another number of agents than the spec.
    """

    def __init__(self, spec: GameSpec, policy: Policy, engine: Engine,
                 task: Task | None = None) -> None:
        n = getattr(policy, "n_agents", None)
        if n is not None and n != spec.n_agents:
            raise ValueError(f"the policy plays {n} agents but the game has {spec.n_agents}")
        self.spec, self.policy, self.engine = spec, policy, engine
        self.task = task if task is not None else spec.make_task()
        self._free: list[Any] = []
        self.n_problems = len(self.task.problems(spec.split))

    def _prepare(self, seed: int) -> None:
        """Let the policy see the task once per run seed (``policy.prepare(task, spec, seed)``,
        when it has one: e.g. an ensemble drawing its few-shot exemplars)."""
        prepare = getattr(self.policy, "prepare", None)
        if callable(prepare):
            prepare(self.task, self.spec, seed)

    def _env(self) -> Any:
        if self._free:
            return self._free.pop()
        counter = ActingCounter() if self.spec.token_counting == "model" else None
        return raw_env(self.spec, task=self.task, token_counter=counter)

    def _program(self, index: int, root: int, options: Mapping[str, Any] | None,
                 start: float) -> Program:
        env = self._env()
        try:
            episode = yield from play_episode(
                env, self.policy, index=index, seed=episode_seed(root, index), options=options,
                sampling_root=root, backends=self.engine.backends,
                clock=lambda: time.perf_counter() - start)
        finally:
            self._free.append(env)
        return episode

    def run(self, episodes: int, *, seed: int = 0, first_episode: int = 0,
            sweep: bool = True) -> Iterator[Episode]:
        """Yield ``episodes`` finished episodes, in order.

        Episode e (counting from ``first_episode``) resets with ``episode_seed(seed, e)`` and
        samples agent i's generation with ``generation_seed(seed, e, i)``; with ``sweep`` it
        plays problem ``e mod n_problems`` of the split in order (so runs that differ in
        observation mode see the same problems), else a problem drawn with its seed.
        """
        if episodes < 0:
            raise ValueError(f"episodes must be >= 0, got {episodes!r}")
        self._prepare(seed)
        start = time.perf_counter()
        indices = range(first_episode, first_episode + episodes)
        programs = (
            self._program(e, seed, {"problem_index": e % self.n_problems} if sweep else None,
                          start)
            for e in indices
        )
        yield from self.engine.run(programs, first_index=first_episode)

    def play(self, items: Sequence[tuple[int, Mapping[str, Any] | None]], *,
             seed: int = 0) -> list[Episode]:
        """Play chosen episodes, ``(index, reset options)`` pairs (e.g. a learner's batch of
        problems); seeds as in :meth:`run` (indices should not repeat within a run)."""
        self._prepare(seed)
        start = time.perf_counter()
        programs = [self._program(i, seed, options, start) for i, options in items]
        return list(self.engine.run(programs))
