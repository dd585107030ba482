"""``arith``: procedurally generated multi-step arithmetic word problems.

Offline, seeded and unlimited: a split is ``n_problems`` problems drawn from a generator seeded
by ``(seed, split)``; ``train`` and ``test`` use different generator seeds, and any question of
``test`` that the train generator also produces is dropped from ``train``, so the splits share
no question. Every answer is a non-negative integer.

A problem starts from a quantity ("Ann has 12 apples.") and applies ``min_steps..max_steps``
operations (buy ``k`` bags of ``m``, give away ``k``, find ``k``, double, split equally...),
each kept integral and non-negative. ``difficulty="easy"`` uses 1-2 steps, numbers up to 10
and only addition and subtraction (find ``k``, give away ``k``), for learners built on a
135M model (which, zero-shot, rarely gets even these right).

Scoring (``answer_format="strict"``, the default): a contribution must commit to exactly one
final answer, canonically a last line ``The answer is N`` (``#### N``, ``\\boxed{N}``,
"Final answer: N" are accepted too); it scores 1 when that number equals the answer exactly
(``1,234``, ``12.0`` and ``+7`` are numbers; ``-5`` and ``−5`` are minus five). Two different
answers, a range ("12-14"), a hedge ("12 or 13") or no committed answer score 0 and say why
in ``Score.error``. ``answer_format="lenient"`` reads the papers' baseline way (the last
number of the text when nothing else): see :mod:`spgg_env.extract`, the one number extractor.

Version history: 2 (strict answer format by default; the instruction's last line states the
format); 1 (lenient extraction: "The answer is N", else "#### N", else the last number).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import ClassVar

import numpy as np

from spgg_env.extract import check_answer_format, grade_number
from spgg_env.tasks.base import Problem, Score, Task

NAMES = ("Ann", "Ben", "Cara", "Dev", "Eli", "Fay", "Gus", "Hana", "Ivo", "Jun", "Kim", "Lea")
ITEMS = ("apples", "marbles", "stickers", "books", "coins", "pencils", "cards", "shells")
CONTAINERS = ("bags", "boxes", "packs", "jars")

#: The canonical answer format, named in the instruction and in "no committed answer" errors.
ANSWER_LINE = "The answer is N"

Rng = np.random.Generator
#: An operation: (rng, current value, name, items, easy) -> (sentence, new value), or None
#: when it does not apply to the current value.
Operation = Callable[[Rng, int, str, str, bool], "tuple[str, int] | None"]


def _small(rng: Rng, easy: bool, low: int = 2) -> int:
    return int(rng.integers(low, 10 if easy else 20, endpoint=True))


def _buy_bags(rng: Rng, value: int, name: str, items: str, easy: bool) -> tuple[str, int]:
    bags = int(rng.integers(2, 6, endpoint=True))
    per_bag = _small(rng, easy)
    container = CONTAINERS[int(rng.integers(len(CONTAINERS)))]
    return f"{name} buys {bags} {container} of {per_bag} {items}.", value + bags * per_bag


def _find(rng: Rng, value: int, name: str, items: str, easy: bool) -> tuple[str, int]:
    k = _small(rng, easy, 1)
    return f"{name} finds {k} more {items}.", value + k


def _give_away(rng: Rng, value: int, name: str, items: str, easy: bool) -> tuple[str, int] | None:
    if value < 2:
        return None
    k = int(rng.integers(1, value))  # leaves at least one
    return f"{name} gives {k} {items} to a friend.", value - k


def _multiply(rng: Rng, value: int, name: str, items: str, easy: bool) -> tuple[str, int] | None:
    if easy or value > 200:
        return None
    factor = int(rng.integers(2, 3, endpoint=True))
    word = {2: "doubles", 3: "triples"}[factor]
    return f"Then {name} {word} the number of {items}.", value * factor


def _share(rng: Rng, value: int, name: str, items: str, easy: bool) -> tuple[str, int] | None:
    if easy:
        return None
    parts = [d for d in range(2, 7) if value % d == 0 and value // d >= 1]
    if not parts:
        return None
    d = parts[int(rng.integers(len(parts)))]
    sentence = (
        f"{name} splits the {items} equally among {d} people, {name} included, and keeps one share."
    )
    return sentence, value // d


OPERATIONS: tuple[Operation, ...] = (_buy_bags, _find, _give_away, _multiply, _share)
EASY_OPERATIONS: tuple[Operation, ...] = (_find, _give_away)


def generate_problem(rng: Rng, uid: str, min_steps: int, max_steps: int, easy: bool) -> Problem:
    """Generate one word problem with its integer answer from ``rng``."""
    name = NAMES[int(rng.integers(len(NAMES)))]
    items = ITEMS[int(rng.integers(len(ITEMS)))]
    value = _small(rng, easy) if easy else int(rng.integers(5, 50, endpoint=True))
    sentences = [f"{name} has {value} {items}."]
    operations = EASY_OPERATIONS if easy else OPERATIONS
    n_steps = int(rng.integers(min_steps, max_steps, endpoint=True))
    while len(sentences) <= n_steps:
        step = operations[int(rng.integers(len(operations)))](rng, value, name, items, easy)
        if step is not None:
            sentence, value = step
            sentences.append(sentence)
    sentences.append(f"How many {items} does {name} have now?")
    return Problem(
        uid=uid,
        question=" ".join(sentences),
        answer=value,
        metadata={"steps": n_steps, "difficulty": "easy" if easy else "normal"},
    )


_START = re.compile(r"^\w+ has (\d+) ")
_STEPS: tuple[tuple[re.Pattern[str], Callable[[int, re.Match[str]], tuple[str, int]]], ...] = (
    (re.compile(r" buys (\d+) \w+ of (\d+) "),
     lambda v, m: (f"{v} + {m[1]} x {m[2]} = {v + int(m[1]) * int(m[2])}",
                   v + int(m[1]) * int(m[2]))),
    (re.compile(r" finds (\d+) more "), lambda v, m: (f"{v} + {m[1]} = {v + int(m[1])}",
                                                        v + int(m[1]))),
    (re.compile(r" gives (\d+) .* to a friend"),
     lambda v, m: (f"{v} - {m[1]} = {v - int(m[1])}", v - int(m[1]))),
    (re.compile(r" (doubles|triples) the number"),
     lambda v, m: (f"{v} x {2 if m[1] == 'doubles' else 3} = {v * (2 if m[1] == 'doubles' else 3)}",
                   v * (2 if m[1] == "doubles" else 3))),
    (re.compile(r" equally among (\d+) people"),
     lambda v, m: (f"{v} / {m[1]} = {v // int(m[1])}", v // int(m[1]))),
)


def worked_solution(question: str) -> str:
    """The step-by-step solution of a generated question: one equation per operation, then
    ``The answer is N``. Raises ``ValueError`` for a question this generator did not write."""
    sentences = [s for s in re.split(r"(?<=[.?])\s+", question.strip()) if s]
    start = _START.match(sentences[0]) if sentences else None
    if start is None:
        raise ValueError(f"not a generated arith question: {question[:80]!r}")
    value, lines = int(start[1]), []
    for sentence in sentences[1:-1]:
        for pattern, apply in _STEPS:
            match = pattern.search(sentence)
            if match:
                line, value = apply(value, match)
                lines.append(line + ".")
                break
        else:
            raise ValueError(f"not a generated arith step: {sentence!r}")
    return " ".join([*lines, f"The answer is {value}."])


class ArithTask(Task):
    """Seeded multi-step arithmetic word problems, scored by exact numeric match.

    Args:
        n_problems: Problems per split (any positive number: generation is cheap).
        min_steps: Fewest operations after the starting quantity.
        max_steps: Most operations after the starting quantity.
        seed: Base seed of the generators; each split adds its own index.
        difficulty: ``"normal"`` or ``"easy"`` (1-2 steps, numbers up to 10, + and - only;
            ``min_steps``/``max_steps`` are then capped at 1 and 2).
        answer_format: ``"strict"`` (the reward: one committed answer) or ``"lenient"`` (the
            papers' baseline extraction); see :mod:`spgg_env.extract`.

    Raises:
        ValueError: For a non-positive ``n_problems``, bad step bounds, an unknown difficulty
            or an unknown answer format.
    """

    name: ClassVar[str] = "arith"
    version: ClassVar[str] = "2"
    splits: ClassVar[tuple[str, ...]] = ("test", "train")
    instruction: ClassVar[str] = (
        "Solve the arithmetic word problem. Think step by step; the answer is a whole number.\n"
        f"End with '{ANSWER_LINE}'."
    )

    def __init__(
        self,
        n_problems: int = 1000,
        min_steps: int = 2,
        max_steps: int = 4,
        seed: int = 0,
        difficulty: str = "normal",
        answer_format: str = "strict",
    ) -> None:
        super().__init__()
        self.answer_format = check_answer_format(answer_format)
        if int(n_problems) < 1:
            raise ValueError(f"n_problems must be >= 1, got {n_problems!r}")
        if difficulty not in ("normal", "easy"):
            raise ValueError(f"difficulty must be 'normal' or 'easy', got {difficulty!r}")
        if difficulty == "easy":
            min_steps, max_steps = min(min_steps, 1), min(max_steps, 2)
        if not 1 <= int(min_steps) <= int(max_steps):
            raise ValueError(
                f"need 1 <= min_steps <= max_steps, got min_steps={min_steps!r}, "
                f"max_steps={max_steps!r}"
            )
        self.n_problems = int(n_problems)
        self.min_steps = int(min_steps)
        self.max_steps = int(max_steps)
        self.seed = int(seed)
        self.difficulty = difficulty

    def _generate(self, split: str, n: int, exclude: frozenset[str]) -> list[Problem]:
        rng = np.random.default_rng([self.seed, self.splits.index(split)])
        out: list[Problem] = []
        attempts = 0
        while len(out) < n:
            attempts += 1
            if attempts > 100 * n + 1000:
                raise ValueError(
                    f"could not generate {n} {split!r} problems distinct from the test split; "
                    "lower n_problems or raise max_steps"
                )
            uid = f"arith-{self.difficulty}-s{self.seed}-{split}-{len(out)}"
            problem = generate_problem(
                rng, uid, self.min_steps, self.max_steps, self.difficulty == "easy"
            )
            if problem.question not in exclude:
                out.append(problem)
        return out

    def load_split(self, split: str) -> Sequence[Problem]:
        """Generate ``split``; ``train`` never repeats a question of ``test``."""
        exclude: frozenset[str] = frozenset()
        if split == "train":
            exclude = frozenset(p.question for p in self.problems("test"))
        return self._generate(split, self.n_problems, exclude)

    def demonstration(self, problem: Problem) -> str:
        """A worked answer to ``problem`` in the task's format, for few-shot prompts:
        one equation per sentence, then the answer line, e.g. ``"3 + 4 = 7. 7 - 2 = 5.
        The answer is 5."`` (read back from the generated sentences)."""
        return worked_solution(problem.question)

    def score(self, problem: Problem, text: str) -> Score:
        """1.0 if ``text`` commits to the answer (exactly), else 0.0 and why (never raises)."""
        return Score(*grade_number(text, problem.answer, self.answer_format, ANSWER_LINE))
