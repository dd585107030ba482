"""The Task interface every task of the game follows.

A task owns three things: its data (fixed, ordered splits of :class:`Problem`), how a problem is
shown to the agents (:meth:`Task.render_prompt`), and how a text is scored into [0, 1]
(:meth:`Task.score` for one agent's contribution, :meth:`Task.score_final` for the group's
answer). The environment knows nothing else about a task.

Every split has a SHA-256 content hash (:meth:`Task.split_hash`) over the canonical JSON of its
problems, so a result file can say exactly which data it ran on.
"""

from __future__ import annotations

import hashlib
import json
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from spgg_env import prompts


@dataclass(frozen=True)
class Problem:
    """One task instance.

    Attributes:
        uid: Stable identifier, unique within the task (e.g. ``"HumanEval/0"``).
        question: The task text as the agents see it.
        answer: The gold answer (JSON-serialisable): a number, an option letter, test code...
        metadata: Anything else the scorer needs (entry point, subject, choices...),
            JSON-serialisable.
    """

    uid: str
    question: str
    answer: Any
    metadata: Mapping[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """Return the problem as a plain JSON-serialisable dict."""
        return {
            "uid": self.uid,
            "question": self.question,
            "answer": self.answer,
            "metadata": dict(self.metadata),
        }


@dataclass(frozen=True)
class Score:
    """The score of one text.

    Attributes:
        value: Quality in [0, 1] (1 = correct).
        extracted: What the scorer read out of the text (a number, an option letter, code),
            or ``None`` when nothing could be read.
        error: Why the text could not be parsed or run, or ``None``. A text with an error
            scores 0 and the game goes on.
        details: Scorer-specific extras (e.g. per-dimension judge scores), JSON-serialisable.
    """

    value: float
    extracted: Any = None
    error: str | None = None
    details: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not 0.0 <= float(self.value) <= 1.0:
            raise ValueError(f"Score.value must be in [0, 1], got {self.value!r}")


def problems_hash(problems: Sequence[Problem]) -> str:
    """SHA-256 (hex) of the problems' canonical JSON lines, in order (a split's content hash)."""
    digest = hashlib.sha256()
    for problem in problems:
        line = json.dumps(problem.to_json(), sort_keys=True, ensure_ascii=False)
        digest.update(line.encode("utf-8"))
        digest.update(b"\n")
    return digest.hexdigest()


class Task(ABC):
    """Base class of every task.

    Subclasses set :attr:`name`, :attr:`version`, :attr:`splits`, :attr:`instruction`, and
    implement :meth:`load_split` and :meth:`score`.
    """

    #: Short lower-case name used in ``aec_env(task=...)``.
    name: ClassVar[str]
    #: Bumped whenever data, prompts or scoring change in a way that changes results.
    version: ClassVar[str] = "0"
    #: Names of the splits this task offers; the first is the default.
    splits: ClassVar[tuple[str, ...]] = ("test",)
    #: How the answer must be given, shown to every agent.
    instruction: ClassVar[str] = ""

    def __init__(self) -> None:
        self._cache: dict[str, tuple[Problem, ...]] = {}
        self._hashes: dict[str, str] = {}

    @property
    def default_split(self) -> str:
        """The split used when none is named."""
        return self.splits[0]

    # ----------------------------------------------------------------- data
    @abstractmethod
    def load_split(self, split: str) -> Sequence[Problem]:
        """Load a split as a fixed, ordered sequence of problems (called once per split)."""

    def problems(self, split: str | None = None) -> tuple[Problem, ...]:
        """Return the problems of ``split`` (cached), in their fixed order.

        Raises:
            ValueError: If the split is unknown or empty.
        """
        split = split or self.default_split
        if split not in self._cache:
            if split not in self.splits:
                raise ValueError(
                    f"unknown split {split!r} for task {self.name!r}; choose one of {self.splits}"
                )
            loaded = tuple(self.load_split(split))
            if not loaded:
                raise ValueError(f"split {split!r} of task {self.name!r} is empty")
            self._cache[split] = loaded
        return self._cache[split]

    def split_hash(self, split: str | None = None) -> str:
        """SHA-256 (hex) of the canonical JSON lines of a split's problems, in order."""
        split = split or self.default_split
        if split not in self._hashes:
            self._hashes[split] = problems_hash(self.problems(split))
        return self._hashes[split]

    # ------------------------------------------------------------- prompting
    def render_prompt(
        self,
        problem: Problem,
        visible: Sequence[tuple[int, str]],
        position: int,
        n_agents: int,
        style: str = "default",
    ) -> str:
        """Render what the agent at ``position`` sees.

        Args:
            problem: The episode's problem.
            visible: ``(agent_position, contribution_text)`` of the predecessors this agent
                may see (the previous one in partial observation, all in full observation).
            position: 0-based position of the acting agent.
            n_agents: Number of agents in the game.
            style: One of :data:`spgg_env.prompts.PROMPT_STYLES`.
        """
        return prompts.render(
            instruction=self.instruction,
            question=problem.question,
            visible=visible,
            position=position,
            n_agents=n_agents,
            style=style,
        )

    # --------------------------------------------------------------- scoring
    @abstractmethod
    def score(self, problem: Problem, text: str) -> Score:
        """Score one agent's contribution into [0, 1]. Must never raise on any string."""

    def score_final(self, problem: Problem, text: str) -> Score:
        """Score the group's final answer. Defaults to :meth:`score`."""
        return self.score(problem, text)

    def reference_answer(self, problem: Problem) -> Any:
        """The problem's reference answer as a reader wants it next to a contribution (the
        gold number, the key's letter, a reference solution...). Defaults to ``answer``."""
        return problem.answer

    def score_many(self, problem: Problem, texts: Sequence[str]) -> list[Score]:
        """Score several contributions to one problem (override to parallelise)."""
        return [self.score(problem, text) for text in texts]

    def judge_description(self) -> dict[str, Any] | None:
        """What scores this task's texts beyond its code and version, for result files: a
        judged task names its judge (method, model, head, prompt version...); ``None``, the
        default, when :meth:`score` is all there is."""
        return None
