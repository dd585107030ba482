"""The sequential public goods game on a real task, as a PettingZoo AEC environment.

The game is defined by a :class:`~spgg_env.spec.GameSpec` (``aec_env(spec)``, or keyword
arguments that build one: ``aec_env(task="humaneval", n_agents=3, observation="partial")``).
An episode is one problem of the spec's task. Agents ``agent_0 .. agent_{n-1}`` act once each,
in that order. Agent i observes the task plus its predecessors' contributions (agent i-1's only
in ``observation="partial"``, all of them in ``"full"``, none in ``"none"`` or when the mechanism
is simultaneous) and writes its contribution as a string.

Observation (a ``Dict``): ``prompt`` (the rendered text an LLM reads: task, visible
contributions, role), ``task`` (the problem statement alone), ``position`` (0-based),
``contributions`` (a tuple of n texts: agent j's contribution where this agent sees it, else
``""``) and ``visible`` (``MultiBinary(n)``: 1 where ``contributions[j]`` is seen). A learner
needs nothing else; nothing in ``env.unwrapped`` is part of the interface.

``info`` after an agent acts: ``chars``, ``tokens``, ``truncated_action``,
``prompt_replaced_chars``, ``prompt_truncated``. After the last agent, every agent's ``info``
adds ``score`` (its ``c_i``), ``extracted`` (the answer the scorer read), ``parse_error`` (why the
contribution scored 0, or ``None``), ``effort``, ``cost``, ``reward_components``,
``group_score``, ``reference`` (the problem's reference answer), ``problem_uid`` and
``contribution``.

When the last agent has acted, the task scores every contribution (``c_i``, with
``task.score_many``) and the last one as the group's answer (``G``, with ``task.score_final``);
the effort is ``e_i = min(1, tokens_i / max_tokens)``; the mechanism turns ``(c, G, e)`` into one
reward per agent, paid at that step (PettingZoo's ``_cumulative_rewards``), and every agent
terminates. See :mod:`spgg_env.mechanism` for the reward formulas.

Any ``str`` is a valid action: an unparseable one scores 0 and says why in ``info["parse_error"]``;
one longer than ``max_action_chars`` is cut and flagged (``info["truncated_action"]``). A
non-``str`` action raises ``TypeError``.

``parallel_env`` is the simultaneous-move game: every agent sees only the task and all act at
once (the classic PGG's information structure), for any mechanism.

Version history (PettingZoo ids ``spgg/<Task>-v1``):

* v1: the game is a :class:`~spgg_env.spec.GameSpec`; the observation adds ``task``,
  ``contributions`` and ``visible`` and drops ``agent_index`` (always equal to ``position``) and
  ``n_visible`` (``sum(visible)``); ``info`` adds ``reference``; ``render()`` after the episode
  shows the group score; ``token_counting="model"`` refuses to run without the model's counter.
* v0: first release.
"""

from __future__ import annotations

import copy
import re
import string
import warnings
from collections.abc import Callable, Mapping
from functools import lru_cache
from typing import Any

import numpy as np
from gymnasium import spaces
from gymnasium.utils import seeding
from pettingzoo import AECEnv
from pettingzoo.utils import AgentSelector, wrappers
from pettingzoo.utils.conversions import aec_to_parallel

from spgg_env.mechanism import Mechanism, make_mechanism
from spgg_env.scalar_env import ScalarSPGGEnv, check_choice, integer_at_least
from spgg_env.spec import GameSpec
from spgg_env.tasks import Problem, Score, Task, register_task

#: Longest prompt an observation holds; longer prompts are cut (``info["prompt_truncated"]``).
MAX_PROMPT_CHARS = 1 << 20
#: What replaces a character outside the observation charset (astral-plane characters).
REPLACEMENT = "\ufffd"
_OUTSIDE_BMP = re.compile("[\ud800-\udfff\U00010000-\U0010ffff]")
_TOKEN = re.compile(r"\w+|[^\w\s]")


@lru_cache(maxsize=1)
def prompt_charset() -> frozenset[str]:
    """Every Basic Multilingual Plane character except surrogates (built once per process)."""
    return frozenset(chr(i) for i in range(0x10000) if not 0xD800 <= i <= 0xDFFF)


@lru_cache(maxsize=1)
def _prompt_space_template() -> spaces.Text:
    """The prompt space, built once per process (its 63k-character tables take ~0.15 s)."""
    return spaces.Text(MAX_PROMPT_CHARS, min_length=0, charset=prompt_charset())


def prompt_space() -> spaces.Text:
    """A fresh prompt space: a shallow copy of the template (own RNG, shared read-only tables)."""
    return copy.copy(_prompt_space_template())


def approx_token_count(text: str) -> int:
    """Default token count: words plus punctuation marks (``\\w+`` runs and other symbols).

    A tokenizer-free approximation that is close to BPE counts on English text (usually within
    ~30%). The LLM runner passes its tokenizer's exact count as ``token_counter`` instead.
    """
    return len(_TOKEN.findall(text))


def sanitize_prompt(text: str) -> tuple[str, int, bool]:
    """Fit ``text`` into the observation space.

    Returns:
        The text with every character outside the BMP replaced by U+FFFD and cut to
        :data:`MAX_PROMPT_CHARS`, how many characters were replaced, and whether it was cut.
    """
    text, replaced = _OUTSIDE_BMP.subn(REPLACEMENT, text)
    cut = len(text) > MAX_PROMPT_CHARS
    return (text[:MAX_PROMPT_CHARS] if cut else text), replaced, cut


def _safe_scores(task: Task, problem: Problem, texts: list[str]) -> list[Score]:
    """Score ``texts``; a scorer that raises (a task bug) yields a zero score, not a crash."""
    try:
        scores = list(task.score_many(problem, texts))
        if len(scores) != len(texts):
            raise RuntimeError(f"score_many returned {len(scores)} scores for {len(texts)} texts")
        return scores
    except Exception as error:  # noqa: BLE001 - the game must go on; the error is recorded
        warnings.warn(f"task {task.name!r} failed to score: {error!r}", stacklevel=3)
        return [Score(0.0, None, f"scorer error: {error!r}") for _ in texts]


def _safe_final(task: Task, problem: Problem, text: str) -> Score:
    """The group's score of the final answer; a scorer that raises yields zero."""
    try:
        return task.score_final(problem, text)
    except Exception as error:  # noqa: BLE001 - the game must go on; the error is recorded
        warnings.warn(
            f"task {task.name!r} failed to score the final answer: {error!r}", stacklevel=3
        )
        return Score(0.0, None, f"scorer error: {error!r}")


class SPGGEnv(AECEnv):
    """The text game (see the module docstring); build it with :func:`aec_env` or :func:`raw_env`.

    Args:
        spec: The game. ``None`` builds one from ``spec_fields``.
        task: A ready instance of the spec's task, shared by several env copies (one copy of
            the data, one judge model); default: ``spec.make_task()``. Without a spec, a task
            name (a spec field) or an instance (its class is registered under its name, and
            ``task_options`` then only describe it).
        token_counter: ``text -> tokens`` for the effort; required when
            ``spec.token_counting == "model"`` (the acting model's counter), else
            :func:`approx_token_count`.
        render_mode: ``None``, ``"human"`` (print the transcript) or ``"ansi"`` (return it).
        **spec_fields: :class:`~spgg_env.spec.GameSpec` fields, when ``spec`` is ``None``.

    ``reset(seed, options)`` draws a problem with ``self.np_random``; ``options`` may name one
    with ``{"problem_index": i}`` or ``{"problem_uid": uid}`` (to sweep a whole split).

    Raises:
        ValueError: On an invalid spec, a task instance that is not the spec's task, or
            ``token_counting="model"`` without a ``token_counter``.
    """

    metadata = {
        "name": "spgg_text_v1",
        "render_modes": ["human", "ansi"],
        "is_parallelizable": True,
    }

    def __init__(
        self,
        spec: GameSpec | None = None,
        *,
        task: str | Task | None = None,
        token_counter: Callable[[str], int] | None = None,
        render_mode: str | None = None,
        **spec_fields: Any,
    ) -> None:
        super().__init__()
        if isinstance(task, str):  # a task name is a spec field
            spec_fields["task"], task = task, None
        elif isinstance(task, Task) and spec is None:
            register_task(type(task))
            spec_fields["task"] = task.name
        if spec is not None and spec_fields:
            raise ValueError(f"give a spec or spec fields, not both (got {sorted(spec_fields)})")
        self.spec = spec if spec is not None else GameSpec(**spec_fields)
        check_choice("render_mode", render_mode, (None, *self.metadata["render_modes"]))
        if token_counter is not None and not callable(token_counter):
            raise TypeError(f"token_counter must be callable, got {type(token_counter).__name__}")
        if token_counter is None and self.spec.token_counting == "model":
            raise ValueError(
                "this game counts effort in the acting model's tokens (token_counting='model'): "
                "pass token_counter= (the episode engine passes each agent's backend counter), "
                "or use token_counting='approx'"
            )
        if task is not None and task.name != self.spec.task:
            raise ValueError(f"task instance {task.name!r} is not the spec's task "
                             f"{self.spec.task!r}")
        self.task: Task = task if task is not None else self.spec.make_task()
        self.n_agents = self.spec.n_agents
        self.split = self.spec.split
        self._problems = self.task.problems(self.split)
        self.mechanism: Mechanism = make_mechanism(self.spec.mechanism,
                                                   **self.spec.mechanism_params)
        self.observation_mode = self.spec.observation
        self.max_tokens = self.spec.max_tokens
        self.max_action_chars = self.spec.max_action_chars
        self.token_counter = token_counter or approx_token_count
        self.render_mode = render_mode

        self.possible_agents = [f"agent_{i}" for i in range(self.n_agents)]
        self._index = {agent: i for i, agent in enumerate(self.possible_agents)}
        self.observation_spaces = {
            agent: spaces.Dict(
                {
                    "prompt": prompt_space(),
                    "task": prompt_space(),
                    "position": spaces.Discrete(self.n_agents),
                    "contributions": spaces.Tuple([prompt_space() for _ in range(self.n_agents)]),
                    "visible": spaces.MultiBinary(self.n_agents),
                }
            )
            for agent in self.possible_agents
        }
        action_charset = frozenset(string.printable)
        self.action_spaces = {
            agent: spaces.Text(self.max_action_chars, min_length=0, charset=action_charset)
            for agent in self.possible_agents
        }
        self.np_random, self.np_random_seed = seeding.np_random(None)
        self.problem: Problem | None = None
        self.contributions: list[str] = []
        self.group_score: float | None = None

    # ------------------------------------------------------------------ spaces
    def observation_space(self, agent: str) -> spaces.Dict:
        """The observation space of ``agent`` (the same object every call)."""
        return self.observation_spaces[agent]

    def action_space(self, agent: str) -> spaces.Text:
        """The action space of ``agent``: text of printable characters (any str is accepted)."""
        return self.action_spaces[agent]

    # ------------------------------------------------------------------- reset
    def _pick_problem(self, options: Mapping[str, Any] | None) -> Problem:
        options = dict(options or {})
        if "problem_index" in options:
            index = options.pop("problem_index")
            valid = isinstance(index, int | np.integer) and not isinstance(index, bool)
            if not valid or not 0 <= index < len(self._problems):
                raise ValueError(
                    f"problem_index must be an integer in [0, {len(self._problems)}), got {index!r}"
                )
            problem = self._problems[int(index)]
        elif "problem_uid" in options:
            uid = options.pop("problem_uid")
            problem = self._by_uid().get(uid)
            if problem is None:
                raise ValueError(f"no problem with uid {uid!r} in split {self.split!r}")
        else:
            problem = self._problems[int(self.np_random.integers(len(self._problems)))]
        if options:
            warnings.warn(
                f"ignored unknown reset options {sorted(options)}; known: problem_index, "
                "problem_uid",
                stacklevel=3,
            )
        return problem

    def _by_uid(self) -> dict[str, Problem]:
        if getattr(self, "_uids", None) is None:
            self._uids = {p.uid: p for p in self._problems}
        return self._uids

    def reset(self, seed: int | None = None, options: dict[str, Any] | None = None) -> None:
        """Start an episode: draw a problem (seeded by ``seed`` when given)."""
        if seed is not None:
            self.np_random, self.np_random_seed = seeding.np_random(seed)
        self.problem = self._pick_problem(options)
        self.contributions = []
        self.group_score = None
        self._prompts: dict[tuple[int, int], tuple[str, int, bool]] = {}
        self.agents = self.possible_agents[:]
        self.rewards = dict.fromkeys(self.agents, 0.0)
        self._cumulative_rewards = dict.fromkeys(self.agents, 0.0)
        self.terminations = dict.fromkeys(self.agents, False)
        self.truncations = dict.fromkeys(self.agents, False)
        self.infos: dict[str, dict[str, Any]] = {agent: {} for agent in self.agents}
        self._selector = AgentSelector(self.agents)
        self.agent_selection = self._selector.reset()

    # ----------------------------------------------------------------- observe
    def visible(self, position: int) -> list[tuple[int, str]]:
        """``(position, text)`` of the predecessors the agent at ``position`` sees now."""
        if self.observation_mode == "none" or position == 0:
            return []
        done = min(position, len(self.contributions))
        first = 0 if self.observation_mode == "full" else position - 1
        return [(j, self.contributions[j]) for j in range(first, done)]

    def _prompt(self, position: int) -> tuple[str, int, bool]:
        visible = self.visible(position)
        key = (position, len(visible))
        if key not in self._prompts:
            assert self.problem is not None
            text = self.task.render_prompt(
                self.problem, visible, position, self.n_agents, style=self.spec.prompt_style
            )
            self._prompts[key] = sanitize_prompt(text)
        return self._prompts[key]

    def observe(self, agent: str) -> dict[str, Any]:
        """The agent's observation (see the module docstring)."""
        position = self._index[agent]
        prompt, _, _ = self._prompt(position)
        assert self.problem is not None
        texts = [""] * self.n_agents
        seen = np.zeros(self.n_agents, dtype=np.int8)
        for j, text in self.visible(position):
            texts[j] = sanitize_prompt(text)[0]
            seen[j] = 1
        return {
            "prompt": prompt,
            "task": sanitize_prompt(self.problem.question)[0],
            "position": position,
            "contributions": tuple(texts),
            "visible": seen,
        }

    # -------------------------------------------------------------------- step
    def step(self, action: str | None) -> None:
        """Record the acting agent's contribution; score and pay everyone after the last one.

        Raises:
            TypeError: If a live agent's action is not a ``str`` (the message names the agent).
            ValueError: If a terminated agent's action is not ``None``, or ``token_counter``
                returns something other than an integer >= 0 (the turn is not consumed).
        """
        agent = self.agent_selection
        if self.terminations[agent] or self.truncations[agent]:
            self._was_dead_step(action)
            return
        if not isinstance(action, str):
            raise TypeError(
                f"{agent}'s action must be a str (its contribution text), "
                f"got {type(action).__name__}: {action!r:.80}"
            )
        position = self._index[agent]
        _, replaced, prompt_cut = self._prompt(position)
        cut = len(action) > self.max_action_chars
        text = action[: self.max_action_chars]
        tokens = self.token_counter(text)
        if isinstance(tokens, bool) or not isinstance(tokens, int | np.integer) or tokens < 0:
            raise ValueError(
                f"token_counter must return an integer >= 0, got {tokens!r} for {agent}'s text"
            )
        self.contributions.append(text)
        self.infos[agent] = {
            "chars": len(text),
            "tokens": int(tokens),
            "truncated_action": cut,
            "prompt_replaced_chars": replaced,
            "prompt_truncated": prompt_cut,
        }
        self._cumulative_rewards[agent] = 0.0
        self._clear_rewards()
        if position == self.n_agents - 1:
            self._finish()
        self.agent_selection = self._selector.next()
        self._accumulate_rewards()
        if self.render_mode == "human":
            print(self._transcript_line(position))

    def _finish(self) -> None:
        """Score all contributions, pay the rewards and end the episode."""
        assert self.problem is not None
        scores = _safe_scores(self.task, self.problem, self.contributions)
        if type(self.task).score_final is Task.score_final:  # the final answer scores as a
            final = scores[-1]  # contribution: reuse it (HumanEval would run it twice)
        else:
            final = _safe_final(self.task, self.problem, self.contributions[-1])
        c = np.array([s.value for s in scores], dtype=np.float64)
        tokens = np.array([self.infos[a]["tokens"] for a in self.agents], dtype=np.float64)
        effort = np.minimum(1.0, tokens / self.max_tokens)
        breakdown = self.mechanism(c, group_score=final.value, effort=effort)
        self.group_score = float(final.value)
        reference = self.task.reference_answer(self.problem)
        for i, agent in enumerate(self.agents):
            parts = breakdown.agent(i)
            self.rewards[agent] = parts["total"]
            self.infos[agent].update(
                score=float(c[i]),
                extracted=scores[i].extracted,
                parse_error=scores[i].error,
                cost=parts["cost"],
                effort=float(effort[i]),
                group_score=self.group_score,
                reward_components=parts,
                reference=reference,
                problem_uid=self.problem.uid,
                contribution=self.contributions[i],
            )
            self.terminations[agent] = True

    # ------------------------------------------------------------------ render
    def _transcript_line(self, position: int) -> str:
        return f"--- agent_{position} ---\n{self.contributions[position]}"

    def render(self) -> str | None:
        """The transcript so far, and the group score once the episode has ended
        (``"ansi"``: returned; ``"human"``: printed)."""
        if self.render_mode is None:
            warnings.warn("render() called with render_mode=None; nothing to show", stacklevel=2)
            return None
        if self.problem is None:
            return None
        lines = [f"=== {self.problem.uid} ===", self.problem.question]
        lines += [self._transcript_line(i) for i in range(len(self.contributions))]
        if self.group_score is not None:
            lines.append(f"=== group score {self.group_score:g} ===")
        text = "\n".join(lines)
        if self.render_mode == "human":
            print(text)
            return None
        return text

    def close(self) -> None:
        """Nothing to release."""


def raw_env(spec: GameSpec | None = None, **kwargs: Any) -> AECEnv:
    """The unwrapped environment: :class:`SPGGEnv`, or the scalar game for ``task="scalar"``.

    Args:
        spec: The game; or give :class:`~spgg_env.spec.GameSpec` fields as keywords.
        **kwargs: Spec fields, :class:`SPGGEnv`'s ``token_counter`` and ``render_mode``, the
            scalar game's arguments (``task="scalar"``), and PettingZoo's ``max_cycles``
            (accepted for ``pettingzoo.make``; every episode is one cycle, so any value >= 1
            changes nothing).

    Raises:
        ValueError: If ``max_cycles`` is given and is not an integer >= 1.
    """
    if kwargs.get("max_cycles") is not None:
        integer_at_least("max_cycles", kwargs["max_cycles"], 1)  # an episode is one cycle
    kwargs.pop("max_cycles", None)
    task = kwargs.get("task")
    if spec is None and isinstance(task, str) and task.lower() == "scalar":
        kwargs.pop("task")
        return ScalarSPGGEnv(**kwargs)
    return SPGGEnv(spec, **kwargs)


def aec_env(spec: GameSpec | None = None, **kwargs: Any) -> AECEnv:
    """The game as a PettingZoo AEC env, wrapped to enforce PettingZoo's call order.

    Example:
        >>> env = aec_env(task="arith", n_agents=3, observation="partial")
        >>> env.reset(seed=0)
    """
    return wrappers.OrderEnforcingWrapper(raw_env(spec, **kwargs))


#: PettingZoo's conventional name for the wrapped constructor.
env = aec_env


def parallel_env(spec: GameSpec | None = None, **kwargs: Any):
    """The simultaneous-move game: all agents act at once, each seeing only the task.

    Every mechanism is allowed (the classic PGG is the natural one). ``kwargs`` are those of
    :func:`raw_env` except ``observation``, which is ``"none"`` here.

    Raises:
        ValueError: If ``observation`` is given as anything but ``"none"``.
    """
    observation = spec.observation if spec is not None else kwargs.pop("observation", "none")
    if observation != "none":
        raise ValueError(
            f"parallel_env is the simultaneous game: agents see no predecessors, so observation "
            f"must be 'none', got {observation!r}; use aec_env for the sequential game"
        )
    if spec is None:
        kwargs["observation"] = "none"
    return aec_to_parallel(raw_env(spec, **kwargs))
