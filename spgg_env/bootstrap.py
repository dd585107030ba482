"""Percentile bootstrap intervals: the one resampling used by every interval the package reports
(the task board's scores and differences, the learner boards' cells, the judge's correlations).

Resampling units are whatever the caller's figures rest on (problems, seeds, articles): draw as
many units as there are, with replacement, ``samples`` times from ``numpy``'s
``default_rng(seed)``, and take the ``(1 - level) / 2`` and ``(1 + level) / 2`` percentiles of
the statistic over the draws.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np


def bootstrap_ci(
    values: Sequence[float], *, samples: int = 1000, seed: int = 0, level: float = 0.95
) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of ``values``.

    Args:
        values: One value per resampling unit (problem).
        samples: Number of bootstrap resamples.
        seed: Seed of the resampling generator.
        level: Coverage of the interval.

    Raises:
        ValueError: If ``values`` is empty or ``samples`` < 1.
    """
    x = np.asarray(values, dtype=np.float64)
    if x.size == 0:
        raise ValueError("bootstrap_ci needs at least one value")
    if samples < 1:
        raise ValueError(f"bootstrap samples must be >= 1, got {samples!r}")
    rng = np.random.default_rng(seed)
    means = x[rng.integers(0, x.size, size=(samples, x.size))].mean(axis=1)
    tail = (1.0 - level) / 2.0 * 100.0
    low, high = np.percentile(means, [tail, 100.0 - tail])
    return float(low), float(high)


def bootstrap_interval(
    n_units: int,
    statistic: Callable[[np.ndarray], float],
    *,
    n_boot: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> tuple[float, float]:
    """Percentile interval of any ``statistic(unit_indices)`` over resamples of ``n_units``
    units (NaN draws ignored: e.g. a correlation over a resample without variation)."""
    rng = np.random.default_rng(seed)
    draws = [statistic(rng.integers(0, n_units, n_units)) for _ in range(n_boot)]
    tail = (1.0 - level) / 2.0 * 100.0
    low, high = np.nanpercentile(draws, [tail, 100.0 - tail])
    return float(low), float(high)
