"""What the metric modules share: the ``MetricInfo`` of a text-vs-text metric, accuracy, and
the result of graded answers."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

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


def graded(grades: Iterable[tuple[float, Any, str | None]]) -> dict[str, Any]:
    """``accuracy``, ``correct``, ``extracted`` and ``errors`` of ``(score, extracted, error)``
    triples, as the tasks' graders return them."""
    rows = list(grades)
    correct = [int(score) for score, _, _ in rows]
    return {
        "accuracy": accuracy(correct),
        "correct": correct,
        "extracted": [extracted for _, extracted, _ in rows],
        "errors": [error for _, _, error in rows],
    }
