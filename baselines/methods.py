"""The shape every comparison method shares, the shared prompt pieces, and the method registry.

A method solves one problem as a small *program*: a generator that yields a batch of LLM
:class:`Request` objects, receives the matching list of ``Generation`` results, and finally
returns an :class:`Outcome` (the group's final answer). The benchmark runner drives the programs
of many problems in lockstep, so calls from different problems share one backend batch, while
each method reads as straight-line code::

    def solve(self, task, problem, params, rng):
        first = yield [Request(prompt, params)]          # one call
        more = yield [Request(p, params) for p in ps]    # a parallel round of calls
        return Outcome(final_text=more[0].text)

Every method reports the same metrics through the runner: the final answer's task score, parse
failure, LLM calls and tokens per problem. Methods never see the gold answer; the only scorer
use allowed inside a method is :func:`majority_vote`, which reads the *extracted* answer
(what the scorer parsed out of a text), never its value.
"""

from __future__ import annotations

import hashlib
import importlib
import json
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Generator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Protocol

import numpy as np

from spgg_env.agents.backend import ChatPrompt, Generation, GenerationParams
from spgg_env.tasks.base import Problem, Task


@dataclass(frozen=True)
class Request:
    """One LLM call a method asks for.

    Attributes:
        prompt: The chat prompt.
        params: Its generation parameters.
        role: Who speaks (``"agent"``, ``"coordinator"``, ``"executor_1"``...), for transcripts.
    """

    prompt: ChatPrompt
    params: GenerationParams
    role: str = "agent"


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


#: A method's program for one problem.
Program = Generator[list[Request], list[Generation], Outcome]

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
    keyword arguments and are validated in ``__init__``; unknown options raise.
    """

    #: Registry name, as written in a benchmark config.
    name: ClassVar[str]
    #: Every prompt template the method sends, by name.
    templates: ClassVar[dict[str, str]] = {"base": BASE_TEMPLATE}

    def __init__(self, **options: Any) -> None:
        if options:
            raise ValueError(
                f"unknown option(s) {sorted(options)} for method {self.name!r}; "
                f"see the docstring of {type(self).__name__}"
            )

    def prepare(  # noqa: B027 - a hook: most methods need no preparation
        self, task: Task, problems: Sequence[Problem], rng: np.random.Generator
    ) -> None:
        """Called once per run before any problem (e.g. to pick few-shot exemplars)."""

    @abstractmethod
    def solve(
        self, task: Task, problem: Problem, params: GenerationParams, rng: np.random.Generator
    ) -> Program:
        """The program that solves ``problem`` (see the module docstring)."""

    def options(self) -> dict[str, Any]:
        """The method's options as given, for result files."""
        return {}

    def describe(self) -> dict[str, Any]:
        """Name, options and prompt-template hashes, for result files; and, for a method that
        uses a trained policy (``self.policy``), the policy's identity (checkpoint SHA-256)."""
        out = {
            "name": self.name,
            "options": self.options(),
            "template_hashes": template_hashes(self.templates),
        }
        policy = getattr(self, "policy", None)
        if policy is not None:
            out["policy"] = policy.describe()
        return out


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


class ParamsPolicy(Protocol):
    """A trained generation-parameter policy at inference (the learners' checkpoint).

    ``policy(task_text, visible, position, n_agents) -> GenerationParams``: ``task_text`` is the
    problem statement (``Problem.question``), ``visible`` the texts of the contributions the
    agent sees (empty when none), ``position`` its place in the order of ``n_agents``.
    """

    def __call__(
        self, task_text: str, visible: Sequence[str], position: int, n_agents: int
    ) -> GenerationParams: ...

    def expect(self, **facts: Any) -> None:
        """Raise ``ValueError`` if the policy was trained for other ``task``, ``observation``,
        ``mechanism`` or ``n_agents``."""

    def describe(self) -> dict[str, Any]:
        """Its identity for result files (checkpoint path and ``sha256``, training setting)."""


#: Where the policy loader lives (imported lazily: it needs torch and transformers).
POLICY_LOADER = "spgg_env.agents.genparam_inference:load_inference_policy"


def load_params_policy(path: str | Path, **expected: Any) -> ParamsPolicy:
    """Load a trained generation-parameter policy (the learners' checkpoint) for inference.

    Used by the "trained" MAC-SPGG ensembles and ECON-learned.

    Args:
        path: The checkpoint (relative paths are taken from the working directory).
        expected: Facts the checkpoint must have been trained for (``n_agents``,
            ``observation``, ``mechanism``, ``task``), checked now.

    Raises:
        FileNotFoundError: If the checkpoint does not exist.
        ValueError: If it is not a readable checkpoint or was trained for other facts.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(
            f"policy checkpoint {str(path)!r} does not exist (relative paths start at the "
            f"working directory {str(Path.cwd())!r}); train one with `spgg train genparam`, "
            "run from the folder the path is relative to, or remove `policy_checkpoint` from "
            "the method options"
        )
    module_name, function = POLICY_LOADER.split(":")
    loader = getattr(importlib.import_module(module_name), function)
    return loader(path, **expected)


#: name -> "module:Class" (modules load lazily).
METHODS: dict[str, str] = {
    "single_agent": "spgg_env.baselines.single_agent:SingleAgent",
    "cot": "spgg_env.baselines.single_agent:ChainOfThought",
    "self_consistency": "spgg_env.baselines.self_consistency:SelfConsistency",
    "debate": "spgg_env.baselines.debate:Debate",
    "econ": "spgg_env.baselines.econ:Econ",
    "spgg": "spgg_env.baselines.spgg_ensemble:SpggEnsemble",
}


def make_method(name: str, **options: Any) -> Method:
    """Build a method by registry name.

    Raises:
        ValueError: If no method has that name, or an option is bad.
    """
    if name not in METHODS:
        raise ValueError(f"unknown method {name!r}; choose one of {sorted(METHODS)}")
    module_name, class_name = METHODS[name].split(":")
    return getattr(importlib.import_module(module_name), class_name)(**options)
