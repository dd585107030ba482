"""The shape every comparison method shares, the shared prompt pieces, and the method registry.

A method solves one problem as a *program* of the episode engine
(:mod:`spgg_env.agents.engine`): a generator that yields a list of
:class:`~spgg_env.agents.engine.Request` objects, receives the matching list of ``Generation``
results, and finally returns an :class:`Outcome` (the group's final answer). The benchmark hands
the programs of every problem to one :class:`~spgg_env.agents.engine.Engine`, so calls from
different problems share backend batches, while each method reads as straight-line code::

    def solve(self, ctx):
        first = yield [Request(prompt, ctx.params)]                # one call
        more = yield [Request(p, ctx.params) for p in prompts]     # a parallel round of calls
        return Outcome(final_text=more[0].text)

A request without a seed samples with the engine's derived seed
``derive_seed(run seed, GENERATION, problem index, request number)``
(:mod:`spgg_env.seeding`): it never depends on batching or on the other problems.

Every method reports the same metrics through the benchmark: the final answer's task score,
parse failure, LLM calls and tokens per problem. Methods never see the gold answer; the only
scorer use allowed inside a method is :func:`majority_vote`, which reads the *extracted* answer
(what the scorer parsed out of a text), never its value.
"""

from __future__ import annotations

import hashlib
import importlib
import json
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from spgg_env import seeding
from spgg_env.agents.backend import Backend, ChatPrompt, GenerationParams
from spgg_env.agents.engine import Program
from spgg_env.tasks.base import Problem, Task


@dataclass
class Outcome:
    """What a method returns for one problem.

    Attributes:
        final_text: The group's final answer, scored with ``Task.score_final``.
        details: Method-specific extras for the episode record (votes, rewards...),
            JSON-serialisable.
    """

    final_text: str
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class SolveContext:
    """What a method is given to solve one problem.

    Attributes:
        task: The task.
        problem: The problem to solve.
        params: The run's decoding parameters (the config's ``decoding``).
        index: The problem's index in the evaluated split (the engine's program index).
        seed: The run seed.
        backends: The engine's backends by key (a benchmark run has one, ``"default"``).
    """

    task: Task
    problem: Problem
    params: GenerationParams
    index: int
    seed: int
    backends: Mapping[str, Backend] = field(default_factory=dict)

    @property
    def rng(self) -> np.random.Generator:
        """The problem's own generator: ``seeding.rng(seed, METHOD, index)``."""
        return seeding.rng(self.seed, seeding.METHOD, self.index)


#: The plain task prompt shared by the single-call methods: the answer format, then the task.
BASE_TEMPLATE = "{instruction}\n\n### Task\n{question}"


def user(content: str) -> ChatPrompt:
    """A one-message chat prompt."""
    return [{"role": "user", "content": content}]


def base_prompt(task: Task, problem: Problem) -> str:
    """The task's answer instruction followed by the question."""
    return BASE_TEMPLATE.format(
        instruction=task.instruction.strip(), question=problem.question.strip()
    )


class Method(ABC):
    """Base class of every comparison method.

    Subclasses set :attr:`name` and :attr:`templates` (every text template they send, so that
    result files can carry their hashes) and implement :meth:`solve`. Options come in as
    keyword arguments and are validated in ``__init__`` without loading any model; unknown
    options raise. A method that plays the game itself sets :attr:`plays_game` and takes the
    game spec as its ``game`` option.
    """

    #: Registry name, as written in a benchmark config.
    name: ClassVar[str]
    #: Every prompt template the method sends, by name.
    templates: ClassVar[dict[str, str]] = {"base": BASE_TEMPLATE}
    #: True when the method plays the text game (its config then holds a ``game`` spec).
    plays_game: ClassVar[bool] = False

    def __init__(self, **options: Any) -> None:
        if options:
            raise ValueError(
                f"unknown option(s) {sorted(options)} for method {self.name!r}; "
                f"see the docstring of {type(self).__name__}"
            )

    def prepare(  # noqa: B027 - a hook: most methods need no preparation
        self, task: Task, problems: Sequence[Problem], rng: np.random.Generator
    ) -> None:
        """Called once per run seed before any problem (e.g. to pick few-shot exemplars, or
        to load a trained policy)."""

    @abstractmethod
    def solve(self, ctx: SolveContext) -> Program:
        """The program that solves ``ctx.problem`` (see the module docstring)."""

    def options(self) -> dict[str, Any]:
        """The method's options as given, for result files."""
        return {}

    def describe(self) -> dict[str, Any]:
        """Name, options and prompt-template hashes, for result files."""
        return {
            "name": self.name,
            "options": self.options(),
            "template_hashes": template_hashes(self.templates),
        }


def template_hashes(templates: Mapping[str, str]) -> dict[str, str]:
    """SHA-256 (hex) of each template."""
    return {key: hashlib.sha256(text.encode()).hexdigest() for key, text in templates.items()}


def answer_key(extracted: Any) -> str | None:
    """A hashable, canonical key of an extracted answer (``None`` when nothing was read)."""
    if extracted is None:
        return None
    if isinstance(extracted, str):
        extracted = " ".join(extracted.split())
        if not extracted:
            return None
    return json.dumps(extracted, sort_keys=True, default=str)


def majority_vote(task: Task, problem: Problem, texts: Sequence[str]) -> tuple[int, dict[str, int]]:
    """Pick the text whose extracted answer is the most common one.

    Answers are read with ``task.score(problem, text).extracted`` (the score's value is not
    used). Texts with no readable answer do not vote. Ties go to the answer seen first; when no
    text has a readable answer the first text wins.

    Args:
        task: The task (its scorer extracts answers).
        problem: The problem.
        texts: The candidate texts (at least one).

    Returns:
        The index of the chosen text and the vote count of each answer key.

    Raises:
        ValueError: If ``texts`` is empty.
    """
    if not texts:
        raise ValueError("majority_vote needs at least one text")
    keys = [answer_key(task.score(problem, text).extracted) for text in texts]
    votes = Counter(key for key in keys if key is not None)
    if not votes:
        return 0, {}
    best = max(votes.values())
    winner = next(key for key in keys if key is not None and votes[key] == best)
    return keys.index(winner), dict(votes)


#: name -> "module:Class" (modules load lazily).
METHODS: dict[str, str] = {
    "single_agent": "spgg_env.baselines.single_agent:SingleAgent",
    "cot": "spgg_env.baselines.single_agent:ChainOfThought",
    "self_consistency": "spgg_env.baselines.self_consistency:SelfConsistency",
    "debate": "spgg_env.baselines.debate:Debate",
    "econ": "spgg_env.baselines.econ:Econ",
    "spgg": "spgg_env.baselines.spgg_ensemble:SpggEnsemble",
}


def method_class(name: str) -> type[Method]:
    """The class registered under ``name``.

    Raises:
        ValueError: If no method has that name.
    """
    if name not in METHODS:
        raise ValueError(f"unknown method {name!r}; choose one of {sorted(METHODS)}")
    module_name, class_name = METHODS[name].split(":")
    return getattr(importlib.import_module(module_name), class_name)


def make_method(name: str, **options: Any) -> Method:
    """Build a method by registry name (no model is loaded here).

    Raises:
        ValueError: If no method has that name, or an option is bad.
        FileNotFoundError: If a named policy checkpoint does not exist.
    """
    return method_class(name)(**options)
