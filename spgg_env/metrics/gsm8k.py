"""GSM8K accuracy as a Hugging Face ``evaluate`` metric, scored exactly as in the env.

``predictions`` are model outputs (free text); ``references`` are the gold answers, either the
number (``"18"``, ``"1,150"``) or a whole official solution ending in ``#### 18``. The final
number of each prediction is read by :func:`spgg_env.extract.extract_number` and compared
numerically (tolerance 1e-6):

    accuracy = (1/N) * sum_i [extract_number(prediction_i) == gold_i]

Also returned: ``correct`` (0/1 per prediction) and ``extracted`` (the number read, or None).
"""

from __future__ import annotations

import evaluate

from spgg_env.extract import extract_number, numbers_match, parse_number
from spgg_env.metrics._common import accuracy, text_metric_info
from spgg_env.tasks.gsm8k import gold_answer

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
Returns:
    accuracy (float), correct (list of int), extracted (list of float or None).
"""


def _gold(reference: str) -> float:
    value = gold_answer(reference) if "####" in reference else parse_number(reference)
    if value is None:
        raise ValueError(f"GSM8K reference {reference!r} holds no number")
    return float(value)


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _INPUTS)
class GSM8K(evaluate.Metric):
    """GSM8K exact numeric match."""

    def _info(self) -> evaluate.MetricInfo:
        return text_metric_info(
            _DESCRIPTION, _CITATION, _INPUTS, "https://github.com/openai/grade-school-math"
        )

    def _compute(self, predictions: list[str], references: list[str]) -> dict:
        extracted = [extract_number(p or "") for p in predictions]
        correct = [
            int(numbers_match(value, _gold(ref)))
            for value, ref in zip(extracted, references, strict=True)
        ]
        return {
            "accuracy": accuracy(correct),
            "correct": correct,
            "extracted": extracted,
        }
