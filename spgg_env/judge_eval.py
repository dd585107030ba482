"""Meta-evaluation of a summary judge against SummEval's experts, as the field reports it.

Inputs are arrays ``articles x summaries`` per dimension (a judge's scores and the experts'
mean scores) and, for system-level figures, the system id of every summary.

- **Summary level** (G-Eval, UniEval, SummEval's own tables): for each article, the rank
  correlation between the judge and the experts over that article's summaries; then the mean
  over articles. An article where either side is constant has no correlation and is left out
  of the mean (the count is reported).
- **System level**: each system's mean score over the articles, for the judge and for the
  experts; then the correlation over the systems.
- **Bootstrap 95% intervals**: articles are drawn with replacement (``n_boot`` times, seeded);
  the statistic is recomputed on each draw; the interval is its 2.5th and 97.5th percentiles.
- **Folds by article**: :func:`article_folds` splits articles (never summaries), so no
  article is both trained and evaluated on.

Spearman's rho is the Pearson correlation of average ranks (ties share the mean of their
ranks); Kendall's tau-b is ``sum_{i<j} sign(dx_ij) sign(dy_ij) / sqrt(n_x n_y)`` with
``n_x``, ``n_y`` the pairs not tied in x, in y (scipy's ``kendalltau`` default).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from spgg_env.bootstrap import bootstrap_interval
from spgg_env.judge.prompt import DIMENSIONS

#: Published summary-level correlations on SummEval (per article, averaged over articles):
#: G-Eval-4 from Liu et al. (2023), Table 1; UniEval's mean Spearman; ROUGE-L as G-Eval lists it.
PUBLISHED: dict[str, dict[str, dict[str, float]]] = {
    "G-Eval (GPT-4)": {
        "spearman": {"coherence": 0.582, "consistency": 0.507, "fluency": 0.455,
                     "relevance": 0.547, "mean": 0.514},
        "kendall": {"coherence": 0.457, "consistency": 0.425, "fluency": 0.378,
                    "relevance": 0.433, "mean": 0.418},
    },
    "UniEval": {"spearman": {"mean": 0.47}, "kendall": {}},
    "ROUGE-L": {"spearman": {"mean": 0.17}, "kendall": {"mean": 0.13}},
}

Correlation = Callable[[np.ndarray, np.ndarray], float]


def average_ranks(values: Sequence[float] | np.ndarray) -> np.ndarray:
    """Ranks 1..n, ties sharing the mean of their ranks."""
    _, inverse, counts = np.unique(np.asarray(values), return_inverse=True, return_counts=True)
    mean_rank = np.cumsum(counts) - (counts - 1) / 2.0
    return mean_rank[inverse]


def spearman(x: Sequence[float] | np.ndarray, y: Sequence[float] | np.ndarray) -> float:
    """Spearman's rho; NaN when either side is constant."""
    rx, ry = average_ranks(x), average_ranks(y)
    if np.ptp(rx) == 0 or np.ptp(ry) == 0:
        return float("nan")
    return float(np.corrcoef(rx, ry)[0, 1])


def kendall_tau_b(x: Sequence[float] | np.ndarray, y: Sequence[float] | np.ndarray) -> float:
    """Kendall's tau-b; NaN when either side is constant."""
    dx = np.sign(np.subtract.outer(np.asarray(x, float), np.asarray(x, float)))
    dy = np.sign(np.subtract.outer(np.asarray(y, float), np.asarray(y, float)))
    untied = np.sqrt(np.abs(dx).sum() * np.abs(dy).sum())
    return float((dx * dy).sum() / untied) if untied else float("nan")


CORRELATIONS: dict[str, Correlation] = {"spearman": spearman, "kendall": kendall_tau_b}


def per_article(judge: np.ndarray, expert: np.ndarray, corr: Correlation) -> np.ndarray:
    """The correlation within each article (``articles``; NaN where undefined)."""
    return np.array([corr(j, e) for j, e in zip(judge, expert, strict=True)])


def system_means(scores: np.ndarray, systems: np.ndarray) -> tuple[list[str], np.ndarray]:
    """Each system's mean score over the articles (``systems`` holds a label per summary)."""
    names = sorted(set(systems.ravel().tolist()))
    return names, np.array([scores[systems == name].mean() for name in names])


def system_level(
    judge: np.ndarray, expert: np.ndarray, systems: np.ndarray, corr: Correlation
) -> float:
    """Correlation between the judge's and the experts' per-system means."""
    _, j = system_means(judge, systems)
    _, e = system_means(expert, systems)
    return corr(j, e)


def article_folds(n_articles: int, k: int, seed: int = 0) -> list[np.ndarray]:
    """``k`` disjoint folds of article indices (a seeded permutation cut into near-equal parts)."""
    if not 2 <= k <= n_articles:
        raise ValueError(f"k must be in [2, {n_articles}], got {k!r}")
    order = np.random.default_rng(seed).permutation(n_articles)
    return [np.sort(part) for part in np.array_split(order, k)]


@dataclass(frozen=True)
class Figure:
    """One correlation with its bootstrap interval and the number of articles it rests on."""

    value: float
    low: float
    high: float
    n: int

    def __str__(self) -> str:
        return f"{self.value:.3f} [{self.low:.2f}, {self.high:.2f}]"


def summary_level_figures(
    judge: Mapping[str, np.ndarray],
    expert: Mapping[str, np.ndarray],
    *,
    dimensions: Sequence[str] = DIMENSIONS,
    n_boot: int = 1000,
    seed: int = 0,
) -> dict[str, dict[str, Figure]]:
    """Summary-level figures: ``{correlation: {dimension or "mean": Figure}}``.

    The ``"mean"`` row is the mean over dimensions of the per-dimension figures (as G-Eval
    reports it); its interval comes from the same article resamples.
    """
    out: dict[str, dict[str, Figure]] = {}
    for name, corr in CORRELATIONS.items():
        values = {d: per_article(judge[d], expert[d], corr) for d in dimensions}
        stacked = np.stack([values[d] for d in dimensions])  # dimensions x articles
        n_articles = stacked.shape[1]
        row: dict[str, Figure] = {}
        for i, dim in enumerate(dimensions):
            v = stacked[i]
            low, high = bootstrap_interval(
                n_articles, lambda idx, v=v: float(np.nanmean(v[idx])), n_boot=n_boot, seed=seed
            )
            row[dim] = Figure(float(np.nanmean(v)), low, high, int(np.isfinite(v).sum()))
        def means(idx: np.ndarray, stacked: np.ndarray = stacked) -> float:
            return float(np.mean(np.nanmean(stacked[:, idx], axis=1)))

        low, high = bootstrap_interval(n_articles, means, n_boot=n_boot, seed=seed)
        row["mean"] = Figure(means(np.arange(n_articles)), low, high, n_articles)
        out[name] = row
    return out


def paired_difference(
    judge_a: Mapping[str, np.ndarray],
    judge_b: Mapping[str, np.ndarray],
    expert: Mapping[str, np.ndarray],
    *,
    dimensions: Sequence[str] = DIMENSIONS,
    corr: str = "spearman",
    n_boot: int = 1000,
    seed: int = 0,
) -> dict[str, Figure]:
    """Judge A minus judge B on the same articles: the difference of their summary-level
    correlations per dimension and of the mean, each with a **paired** bootstrap interval (one
    resample of articles serves both judges, so what the articles share cancels)."""
    function = CORRELATIONS[corr]
    a = np.stack([per_article(judge_a[d], expert[d], function) for d in dimensions])
    b = np.stack([per_article(judge_b[d], expert[d], function) for d in dimensions])
    n_articles = a.shape[1]
    out: dict[str, Figure] = {}
    for i, dim in enumerate([*dimensions, "mean"]):
        def delta(idx: np.ndarray, i: int = i) -> float:
            if i == len(dimensions):
                return float(np.mean(np.nanmean(a[:, idx], axis=1))
                             - np.mean(np.nanmean(b[:, idx], axis=1)))
            return float(np.nanmean(a[i, idx]) - np.nanmean(b[i, idx]))

        low, high = bootstrap_interval(n_articles, delta, n_boot=n_boot, seed=seed)
        out[dim] = Figure(delta(np.arange(n_articles)), low, high, n_articles)
    return out


def system_level_figures(
    judge: Mapping[str, np.ndarray],
    expert: Mapping[str, np.ndarray],
    systems: np.ndarray,
    *,
    dimensions: Sequence[str] = DIMENSIONS,
    n_boot: int = 1000,
    seed: int = 0,
) -> dict[str, dict[str, Figure]]:
    """System-level figures, same layout as :func:`summary_level_figures`."""
    out: dict[str, dict[str, Figure]] = {}
    n_articles = systems.shape[0]
    for name, corr in CORRELATIONS.items():
        row: dict[str, Figure] = {}

        def stat(idx: np.ndarray, dims: Sequence[str], corr: Correlation = corr) -> float:
            return float(np.mean([
                system_level(judge[d][idx], expert[d][idx], systems[idx], corr) for d in dims
            ]))

        for dim in (*dimensions, "mean"):
            dims = dimensions if dim == "mean" else (dim,)
            low, high = bootstrap_interval(
                n_articles, lambda idx, dims=dims: stat(idx, dims), n_boot=n_boot, seed=seed
            )
            row[dim] = Figure(stat(np.arange(n_articles), dims), low, high, n_articles)
        out[name] = row
    return out


def markdown_rows(
    label: str, figures: Mapping[str, Mapping[str, Figure]], dimensions: Sequence[str] = DIMENSIONS
) -> list[str]:
    """Two table rows (Spearman, Kendall) of one judge: ``| label | corr | dims... | mean |``."""
    rows = []
    for name in ("spearman", "kendall"):
        cells = [str(figures[name][d]) for d in (*dimensions, "mean")]
        n = figures[name]["mean"].n
        rows.append(f"| {label} | {name} | " + " | ".join(cells) + f" | {n} |")
    return rows


def published_rows(dimensions: Sequence[str] = DIMENSIONS) -> list[str]:
    """The published references as rows of the same table (blank where not published)."""
    rows = []
    for label, figures in PUBLISHED.items():
        for name in ("spearman", "kendall"):
            values = figures.get(name, {})
            if not values:
                continue
            cells = [f"{values[d]:.3f}" if d in values else "" for d in (*dimensions, "mean")]
            rows.append(f"| {label} (published) | {name} | " + " | ".join(cells) + " | 100 |")
    return rows
