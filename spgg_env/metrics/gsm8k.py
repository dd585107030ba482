"""GSM8K accuracy as a Hugging Face ``evaluate`` metric, scored exactly as in the env.

``predictions`` are model outputs (free text); ``references`` are the gold answers, either the
number (``"18"``, ``"1,150"``) or a whole official solution ending in ``#### 18``. Each
prediction is read by :func:`spgg_env.extract.extract_number` with the env's rules: by default
(``answer_format="strict"``) it must commit to exactly one final answer (``#### N``, "The answer
is N", ...), and that number must equal the gold exactly:

    accuracy = (1/N) * sum_i [the answer prediction_i commits to == gold_i]

``answer_format="lenient"`` is the papers' baseline reading (the last number when nothing
else). Also returned: ``correct`` (0/1 per prediction), ``extracted`` (the number read, or
None) and ``errors`` (why nothing was read, or None).
"""

from __future__ import annotations

import evaluate

from spgg_env.extract import check_answer_format, grade_number, parse_number
from spgg_env.metrics._common import graded, text_metric_info
from spgg_env.tasks.gsm8k import ANSWER_LINE, gold_answer

_DESCRIPTION = "GSM8K accuracy: the final number of each output against the gold answer."
_CITATION = """@article{cobbe2021gsm8k,
  title={Training Verifiers to Solve Math Word Problems},
  author={Cobbe, Karl and others},
  journal={arXiv preprint arXiv:2110.14168},
  year={2021}
}"""
_INPUTS = """
Args:
    predictions (list of str): model outputs.
    references (list of str): gold answers: a number, or a solution ending in '#### <number>'.
    answer_format (str): "strict" (default, as the env's reward) or "lenient".
Returns:
    accuracy (float), correct (list of int), extracted (list of int, float or None),
    errors (list of str or None).
"""


def _gold(reference: str) -> int | float:
    value = gold_answer(reference) if "####" in reference else parse_number(reference)
    if value is None:
        raise ValueError(f"GSM8K reference {reference!r} holds no number")
    return value


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _INPUTS)
class GSM8K(evaluate.Metric):
    """GSM8K exact numeric match."""

    def _info(self) -> evaluate.MetricInfo:
        return text_metric_info(
            _DESCRIPTION, _CITATION, _INPUTS, "https://github.com/openai/grade-school-math"
        )

    def _compute(
        self, predictions: list[str], references: list[str], answer_format: str = "strict"
    ) -> dict:
        check_answer_format(answer_format)
        return graded(
            grade_number(p or "", _gold(r), answer_format, ANSWER_LINE)
            for p, r in zip(predictions, references, strict=True)
        )
