"""GSM8K: grade-school math word problems, scored by the final number.

Data, in order of precedence: ``data_path=`` (a folder with ``train.jsonl``/``test.jsonl`` or one
JSONL file), the environment variable ``SPGG_GSM8K_PATH`` (same shapes), else the Hugging Face
dataset ``openai/gsm8k`` (config ``main``) through ``datasets``. Rows have the official fields
``question`` and ``answer`` (a worked solution ending in ``#### <number>``).

Score of a text: 1 if :func:`spgg_env.extract.extract_number` reads a number equal to the gold
answer (tolerance 1e-6), else 0.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

from spgg_env.extract import extract_number, numbers_match, parse_number
from spgg_env.tasks.base import Problem, Score, Task
from spgg_env.tasks.data import load_hf_rows, local_split_file, read_jsonl

ENV_VAR = "SPGG_GSM8K_PATH"
HF_DATASET = ("openai/gsm8k", "main")


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
    return int(value) if value.is_integer() else value


class GSM8KTask(Task):
    """GSM8K word problems (test: 1,319; train: 7,473).

    Args:
        data_path: Local data (folder of ``<split>.jsonl`` or one ``.jsonl`` file); defaults to
            ``$SPGG_GSM8K_PATH``, then to the Hugging Face hub.
    """

    name: ClassVar[str] = "gsm8k"
    version: ClassVar[str] = "1"
    splits: ClassVar[tuple[str, ...]] = ("test", "train")
    instruction: ClassVar[str] = (
        "Solve the math word problem. Reason step by step, then give the final answer as a "
        "single number on the last line, in the form '#### <number>'."
    )

    def __init__(self, data_path: str | os.PathLike[str] | None = None) -> None:
        super().__init__()
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

    def score(self, problem: Problem, text: str) -> Score:
        """1 when the final number of ``text`` equals the gold answer, else 0."""
        value = extract_number(text) if isinstance(text, str) else None
        if value is None:
            return Score(0.0, None, error="no number found in the text")
        return Score(float(numbers_match(value, float(problem.answer))), value)
