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


def resample_indices(n_units: int, samples: int, seed: int) -> np.ndarray:
    """``samples`` resamples of ``n_units`` unit indices, with replacement (``samples x
    n_units``; row ``b`` is what the ``b``-th of ``samples`` separate draws would give)."""
    return np.random.default_rng(seed).integers(0, n_units, size=(samples, n_units))


def percentile_interval(draws: Sequence[float] | np.ndarray, level: float = 0.95
                        ) -> tuple[float, float]:
    """The ``(1 - level) / 2`` and ``(1 + level) / 2`` percentiles of a statistic's bootstrap
    draws (NaN draws ignored: e.g. a correlation over a resample without variation)."""
    tail = (1.0 - level) / 2.0 * 100.0
    low, high = np.nanpercentile(np.asarray(draws, dtype=np.float64), [tail, 100.0 - tail])
    return float(low), float(high)


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
    return percentile_interval(x[resample_indices(x.size, samples, seed)].mean(axis=1), level)


def bootstrap_interval(
    n_units: int,
    statistic: Callable[[np.ndarray], float],
    *,
    n_boot: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> tuple[float, float]:
    """Percentile interval of any ``statistic(unit_indices)`` over resamples of ``n_units``
    units."""
    draws = [statistic(indices) for indices in resample_indices(n_units, n_boot, seed)]
    return percentile_interval(draws, level)
