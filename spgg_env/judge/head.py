"""The learned judge: a linear head on the frozen model's hidden states, four outputs.

With ``x`` the concatenated features of one (article, summary) pair (see
:class:`~spgg_env.judge.scorer.Rating`: for each named block, the listed layers), standardised
with the training data's mean ``mu`` and scale ``sigma``, the predicted 1-5 score of dimension
``d`` is

    s_d = clip(b_d + sum_j W_jd * (x_j - mu_j) / sigma_j, 1, 5)

fitted by ridge regression (``W`` minimises ``||X W - (Y - b)||^2 + alpha ||W||^2``, ``b`` the
training means) on SummEval's expert scores (``spgg_env.judge_train``). A head is a ``.npz``
file (arrays ``mean``, ``scale``, ``weights``, ``bias``) plus a ``.json`` card beside it with the
feature spec, the training config, the data hash and the run's provenance.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

#: The head that ships with the package (``examples/train_judge.py head`` writes it).
TRAINED_HEAD = Path(__file__).resolve().parent / "trained" / "head.npz"


def feature_vector(
    features: Mapping[str, np.ndarray], spec: Sequence[tuple[str, int]]
) -> np.ndarray:
    """Concatenate the ``(block, layer position)`` pieces of one pair's features.

    ``features[block]`` is ``layers x hidden`` (``body_mean``, ``body_last``) or
    ``dimensions x layers x hidden`` (``question_last``: all dimensions are taken).
    """
    parts = []
    for block, layer in spec:
        values = np.asarray(features[block], dtype=np.float64)
        parts.append(values[..., layer, :].reshape(-1))
    return np.concatenate(parts)


@dataclass(frozen=True)
class LinearHead:
    """A fitted head (see the module docstring).

    Attributes:
        spec: The feature pieces, ``(block, index into the scorer's feature layers)``.
        mean: Feature means (standardisation).
        scale: Feature scales (standardisation; zeros replaced by 1).
        weights: ``features x 4`` coefficients.
        bias: The four intercepts (training means of the expert scores).
        card: Training config, data hash and provenance (JSON); ``card["feature_layers"]``
            are the scorer's feature layers the spec's positions index.
    """

    spec: tuple[tuple[str, int], ...]
    mean: np.ndarray
    scale: np.ndarray
    weights: np.ndarray
    bias: np.ndarray
    card: Mapping[str, Any]

    @property
    def blocks(self) -> set[str]:
        """The feature blocks the head reads (``question_last`` needs the question rows)."""
        return {block for block, _ in self.spec}

    @property
    def digest(self) -> str:
        """SHA-256 of the coefficients, part of the judge's cache identity."""
        digest = hashlib.sha256()
        for array in (self.mean, self.scale, self.weights, self.bias):
            digest.update(np.ascontiguousarray(array, dtype=np.float64).tobytes())
        digest.update(json.dumps(self.spec).encode())
        return digest.hexdigest()

    def predict(self, x: np.ndarray) -> np.ndarray:
        """1-5 scores (``n x 4``) of feature rows ``x`` (``n x features``)."""
        z = (np.atleast_2d(x) - self.mean) / self.scale
        return np.clip(self.bias + z @ self.weights, 1.0, 5.0)

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write ``path`` (``.npz``) and its card ``path`` with ``.json``; return the npz."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez(path, mean=self.mean.astype(np.float32), scale=self.scale.astype(np.float32),
                 weights=self.weights.astype(np.float32), bias=self.bias)
        card = {**self.card, "spec": [list(item) for item in self.spec]}
        path.with_suffix(".json").write_text(json.dumps(card, indent=2) + "\n", encoding="utf-8")
        return path

    @classmethod
    def load(cls, path: str | os.PathLike[str] = TRAINED_HEAD) -> LinearHead:
        """Read a head written by :meth:`save`.

        Raises:
            FileNotFoundError: If the ``.npz`` or its ``.json`` card is missing.
        """
        path = Path(path)
        card_path = path.with_suffix(".json")
        if not path.is_file() or not card_path.is_file():
            raise FileNotFoundError(
                f"no judge head at {path} (+ .json card); train one with "
                "`python examples/train_judge.py head`"
            )
        arrays = np.load(path, allow_pickle=False)
        card = json.loads(card_path.read_text(encoding="utf-8"))
        spec = tuple((str(block), int(layer)) for block, layer in card["spec"])
        return cls(spec, arrays["mean"].astype(np.float64), arrays["scale"].astype(np.float64),
                   arrays["weights"].astype(np.float64), arrays["bias"].astype(np.float64), card)
