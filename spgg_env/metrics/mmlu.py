"""MMLU accuracy as a Hugging Face ``evaluate`` metric, scored exactly as in the env.

``predictions`` are model outputs (free text); ``references`` are the keys, a letter ``"A"``..
``"D"`` or an index ``"0"``..``"3"``. The chosen option is read by
:func:`spgg_env.extract.extract_choice` with the env's rules: by default
(``answer_format="strict"``) an output must commit to exactly one option ("Answer: C", "The
answer is (C)", ...); several letters or differing statements choose none. Pass ``choices=``
(the four option texts per question) to also recognise an answer statement naming an
option's text and to catch a letter followed by another option's text:

    accuracy = (1/N) * sum_i [the option prediction_i commits to == key_i]

``answer_format="lenient"`` is the papers' baseline reading. Also returned: ``correct`` (0/1
per prediction), ``extracted`` (the letter read, or None) and ``errors`` (why none, or None).
"""

from __future__ import annotations

from collections.abc import Sequence

import evaluate

from spgg_env.extract import LETTERS, check_answer_format, grade_choice
from spgg_env.metrics._common import graded, text_metric_info
from spgg_env.tasks.mmlu import ANSWER_LINE

_DESCRIPTION = "MMLU accuracy: the option each output chooses against the key."
_CITATION = """@inproceedings{hendrycks2021mmlu,
  title={Measuring Massive Multitask Language Understanding},
  author={Hendrycks, Dan and others},
  booktitle={ICLR},
  year={2021}
}"""
_INPUTS = """
Args:
    predictions (list of str): model outputs.
    references (list of str): keys, "A".."D" (or "0".."3").
    choices (list of list of str, optional): the four option texts of each question.
    answer_format (str): "strict" (default, as the env's reward) or "lenient".
Returns:
    accuracy (float), correct (list of int), extracted (list of str or None),
    errors (list of str or None).
"""


def _key(reference: str) -> str:
    key = reference.strip().upper()
    key = LETTERS[int(key)] if key in {"0", "1", "2", "3"} else key
    if key not in LETTERS:
        raise ValueError(f"MMLU reference {reference!r} is not a key; use 'A'..'D' or '0'..'3'")
    return key


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _INPUTS)
class MMLU(evaluate.Metric):
    """MMLU multiple-choice accuracy."""

    def _info(self) -> evaluate.MetricInfo:
        return text_metric_info(
            _DESCRIPTION, _CITATION, _INPUTS, "https://github.com/hendrycks/test"
        )

    def _compute(
        self,
        predictions: list[str],
        references: list[str],
        choices: Sequence[Sequence[str]] | None = None,
        answer_format: str = "strict",
    ) -> dict:
        check_answer_format(answer_format)
        if choices is not None and len(choices) != len(predictions):
            raise ValueError(f"choices has {len(choices)} rows for {len(predictions)} predictions")
        options = choices if choices is not None else [None] * len(predictions)
        return graded(
            grade_choice(p or "", _key(r), c, answer_format, ANSWER_LINE)
            for p, r, c in zip(predictions, references, options, strict=True)
        )
