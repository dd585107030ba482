"""How well does the LLM judge agree with expert scores? Summary-level rank correlations.

For every machine summary of every document, the judge (:mod:`spgg_env.judge`) gives an
expected 1-5 score per dimension; this script prints Spearman's rho and Kendall's tau between
those and the expert scores, per dimension and for the mean of the four ("overall"), pooled over
all summaries (as G-Eval reports them), plus the mean probability mass on the score tokens.

    python examples/judge_correlation.py                      # fixture, embedded SmolLM2-135M
    python examples/judge_correlation.py --hf --limit 20      # mteb/summeval (needs the hub)
    python examples/judge_correlation.py --model Qwen/Qwen2.5-1.5B-Instruct --cache-path j.jsonl

The default data is the project's hand-written 5-article fixture (20 summaries): a plumbing
check, far too small for claims about judge quality.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from spgg_env.judge import DIMENSIONS, Judge
from spgg_env.tasks.summeval import SummEvalTask

FIXTURE = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "summeval_mini.jsonl"


def average_ranks(values: list[float]) -> np.ndarray:
    """Ranks 1..n, ties sharing the mean of their ranks."""
    unique, inverse, counts = np.unique(values, return_inverse=True, return_counts=True)
    mean_rank = np.cumsum(counts) - (counts - 1) / 2.0
    return mean_rank[inverse]


def spearman(x: list[float], y: list[float]) -> float:
    """Spearman's rho: the Pearson correlation of the average ranks."""
    return float(np.corrcoef(average_ranks(x), average_ranks(y))[0, 1])


def kendall_tau_b(x: list[float], y: list[float]) -> float:
    """Kendall's tau-b: ``sum_{i<j} sign(dx) sign(dy) / sqrt(n_x * n_y)``, n_. untied pairs."""
    dx = np.sign(np.subtract.outer(x, x))
    dy = np.sign(np.subtract.outer(y, y))
    untied = np.sqrt(np.abs(dx).sum() * np.abs(dy).sum())
    return float((dx * dy).sum() / untied) if untied else float("nan")


def collect(task: SummEvalTask, judge: Judge, limit: int | None) -> tuple[dict, dict, list]:
    """Judge and expert scores per dimension, over every machine summary with expert scores."""
    judged: dict[str, list[float]] = {dim: [] for dim in DIMENSIONS}
    expert: dict[str, list[float]] = {dim: [] for dim in DIMENSIONS}
    masses: list[float] = []
    for problem in task.problems()[:limit]:
        summaries = problem.metadata["machine_summaries"]
        experts = problem.metadata["expert_scores"]
        if not summaries or not all(experts.values()):
            continue
        verdicts = judge.score_many([(problem.metadata["document"], s) for s in summaries])
        for i, verdict in enumerate(verdicts):
            for dim in DIMENSIONS:
                judged[dim].append(verdict.scores[dim])
                expert[dim].append(experts[dim][i])
            masses.append(float(np.mean(list(verdict.mass.values()))))
    judged["overall"] = list(np.mean([judged[d] for d in DIMENSIONS], axis=0))
    expert["overall"] = list(np.mean([expert[d] for d in DIMENSIONS], axis=0))
    return judged, expert, masses


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=FIXTURE, help="mteb/summeval-format JSONL")
    parser.add_argument("--hf", action="store_true", help="load mteb/summeval through datasets")
    parser.add_argument("--model", default="embedded", help="hub id, folder, or 'embedded'")
    parser.add_argument("--limit", type=int, default=None, help="first N documents only")
    parser.add_argument("--cache-path", type=Path, default=None, help="judge cache (JSONL)")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()

    judge = Judge(
        args.model, cache_path=args.cache_path, batch_size=args.batch_size, device=args.device
    )
    task = SummEvalTask(None if args.hf else args.data, judge=judge)
    start = time.perf_counter()
    judged, expert, masses = collect(task, judge, args.limit)
    seconds = time.perf_counter() - start
    n = len(judged["overall"])
    if n < 3:
        raise SystemExit(f"only {n} summaries with expert scores: too few to correlate")

    print(
        f"data: {'mteb/summeval' if args.hf else args.data} (split hash "
        f"{task.split_hash()[:12]}), {n} summaries"
    )
    print(
        f"judge: {judge.identity}; {judge.misses} prompts scored, {judge.hits} from cache, "
        f"{seconds:.1f} s; mean mass on score tokens {np.mean(masses):.3f}"
    )
    print(
        f"{'dimension':<12} {'spearman':>9} {'kendall':>9} {'judge mean':>11} {'expert mean':>12}"
    )
    for dim in (*DIMENSIONS, "overall"):
        rho = spearman(judged[dim], expert[dim])
        tau = kendall_tau_b(judged[dim], expert[dim])
        print(
            f"{dim:<12} {rho:>9.3f} {tau:>9.3f} {np.mean(judged[dim]):>11.2f} "
            f"{np.mean(expert[dim]):>12.2f}"
        )


if __name__ == "__main__":
    main()
