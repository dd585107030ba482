"""What the metric modules share: the ``MetricInfo`` of a text-vs-text metric, and accuracy."""

from __future__ import annotations

from collections.abc import Sequence

import datasets
import evaluate


def text_metric_info(description: str, citation: str, inputs: str, url: str) -> evaluate.MetricInfo:
    """``MetricInfo`` of a metric whose predictions and references are both strings."""
    return evaluate.MetricInfo(
        description=description,
        citation=citation,
        inputs_description=inputs,
        features=datasets.Features(
            {"predictions": datasets.Value("string"), "references": datasets.Value("string")}
        ),
        reference_urls=[url],
    )


def accuracy(correct: Sequence[int]) -> float:
    """Mean of 0/1 outcomes (0.0 for none)."""
    return sum(correct) / len(correct) if correct else 0.0
