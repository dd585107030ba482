"""GSM8K: grade-school math word problems, scored by the final number.

Data, in order of precedence: ``data_path=`` (a folder with ``train.jsonl``/``test.jsonl`` or one
JSONL file), the environment variable ``SPGG_GSM8K_PATH`` (same shapes), else the Hugging Face
dataset ``openai/gsm8k`` (config ``main``) through ``datasets``. Rows have the official fields
``question`` and ``answer`` (a worked solution ending in ``#### <number>``).

Score of a text (``answer_format="strict"``, the default): 1 when it commits to exactly one
final answer, canonically a last line ``#### N`` ("The answer is N", ``\\boxed{N}``,
"Final answer: N" are accepted too), and that number equals the gold answer exactly (exact
rational comparison: ``1,150``, ``1150.00`` and ``$1,150`` match 1150). Two different answers
(``####`` and the answer phrase disagreeing), several numbers or a range in the answer, or no
committed answer score 0 and say why in ``Score.error``. ``answer_format="lenient"`` is the
papers' baseline reading (the last number of the text when nothing else). Both are
:func:`spgg_env.extract.extract_number`.

Version history: 2 (strict answer format by default, exact comparison; the instruction's last
line states the format); 1 (lenient extraction, tolerance 1e-6).
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

from spgg_env.extract import check_answer_format, grade_number, parse_number, plain_number
from spgg_env.tasks.base import Problem, Score, Task
from spgg_env.tasks.data import load_hf_rows, local_split_file, read_jsonl

ENV_VAR = "SPGG_GSM8K_PATH"
HF_DATASET = ("openai/gsm8k", "main")
#: The canonical answer format, named in the instruction and in "no committed answer" errors.
ANSWER_LINE = "#### N"


_ANNOTATION = re.compile(r"<<[^<>]*>>")


def gold_answer(solution: str) -> int | float:
    """The number after ``####`` in a GSM8K solution, as an int when it is whole.

    Raises:
        ValueError: If the solution has no ``####`` line with a number.
    """
    if "####" not in solution:
        raise ValueError(f"GSM8K solution has no '#### <answer>' line: {solution[-80:]!r}")
    value = parse_number(solution.rsplit("####", 1)[1])
    if value is None:
        raise ValueError(f"GSM8K solution has no number after '####': {solution[-80:]!r}")
    return plain_number(value)


class GSM8KTask(Task):
    """GSM8K word problems (test: 1,319; train: 7,473).

    Args:
        data_path: Local data (folder of ``<split>.jsonl`` or one ``.jsonl`` file); defaults to
            ``$SPGG_GSM8K_PATH``, then to the Hugging Face hub.
        answer_format: ``"strict"`` (the reward: one committed answer) or ``"lenient"`` (the
            papers' baseline extraction); see :mod:`spgg_env.extract`.
    """

    name: ClassVar[str] = "gsm8k"
    version: ClassVar[str] = "2"
    splits: ClassVar[tuple[str, ...]] = ("test", "train")
    instruction: ClassVar[str] = (
        "Solve the math word problem. Reason step by step; the final answer is one number.\n"
        f"End with '{ANSWER_LINE}'."
    )

    def __init__(
        self, data_path: str | os.PathLike[str] | None = None, answer_format: str = "strict"
    ) -> None:
        super().__init__()
        self.answer_format = check_answer_format(answer_format)
        path = data_path if data_path is not None else os.environ.get(ENV_VAR) or None
        self.data_path = Path(path) if path is not None else None

    def load_split(self, split: str) -> Sequence[Problem]:
        """Load ``split`` from the local path if one is set, else from the hub."""
        if self.data_path is not None:
            rows = read_jsonl(local_split_file(self.data_path, split))
        else:
            rows = load_hf_rows(
                *HF_DATASET,
                split,
                hint=f"Offline? Point {ENV_VAR} (or data_path=) at a folder with "
                "train.jsonl/test.jsonl from the official GSM8K release.",
            )
        return [self._problem(split, index, row) for index, row in enumerate(rows)]

    @staticmethod
    def _problem(split: str, index: int, row: dict[str, Any]) -> Problem:
        try:
            question, solution = row["question"], row["answer"]
        except KeyError as error:
            raise ValueError(
                f"GSM8K row {index} of split {split!r} lacks field {error}; "
                "expected 'question' and 'answer'"
            ) from error
        return Problem(
            uid=f"gsm8k/{split}/{index}",
            question=question,
            answer=gold_answer(solution),
            metadata={"solution": solution},
        )

    def demonstration(self, problem: Problem) -> str:
        """A worked answer for few-shot prompts in the instruction's format: the reference
        solution without its calculator annotations (``<<48/2=24>>``), its ``#### N`` line
        replaced by ``The answer is N.``"""
        solution = problem.metadata.get("solution")
        if not isinstance(solution, str) or "####" not in solution:
            return f"The answer is {problem.answer}."
        steps = _ANNOTATION.sub("", solution.rsplit("####", 1)[0]).strip()
        return f"{steps}\nThe answer is {problem.answer}."

    def score(self, problem: Problem, text: str) -> Score:
        """1 when ``text`` commits to the gold answer, else 0 and why (never raises)."""
        return Score(*grade_number(text, problem.answer, self.answer_format, ANSWER_LINE))
