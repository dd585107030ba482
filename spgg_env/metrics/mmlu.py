"""MMLU accuracy as a Hugging Face ``evaluate`` metric, scored exactly as in the env.

``predictions`` are model outputs (free text); ``references`` are the keys, a letter ``"A"``..
``"D"`` or an index ``"0"``..``"3"``. The chosen option is read by
:func:`spgg_env.extract.extract_choice` (an output naming two options chooses none); pass
``choices=`` (the four option texts per question) to also recognise answers given as text:

    accuracy = (1/N) * sum_i [extract_choice(prediction_i) == key_i]

Also returned: ``correct`` (0/1 per prediction) and ``extracted`` (the letter read, or None).
"""

from __future__ import annotations

from collections.abc import Sequence

import evaluate

from spgg_env.extract import LETTERS, extract_choice
from spgg_env.metrics._common import accuracy, text_metric_info

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
Returns:
    accuracy (float), correct (list of int), extracted (list of str or None).
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
    ) -> dict:
        if choices is not None and len(choices) != len(predictions):
            raise ValueError(f"choices has {len(choices)} rows for {len(predictions)} predictions")
        options = choices if choices is not None else [None] * len(predictions)
        extracted = [extract_choice(p or "", c) for p, c in zip(predictions, options, strict=True)]
        correct = [int(e == _key(r)) for e, r in zip(extracted, references, strict=True)]
        return {
            "accuracy": accuracy(correct),
            "correct": correct,
            "extracted": extracted,
        }
