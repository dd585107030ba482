"""Leaderboard: aggregates with bootstrap confidence intervals, and the board's files.

Every number on the board is recomputed here from the per-episode records of verified result
files (:func:`spgg_env.baselines.bench_results.load_result`); no aggregate typed into a file is
trusted.

Aggregates of one result (records of P problems x S seeds; x_p is problem p's value averaged
over the seeds):

* ``score``: mean task score of the final answers, mean_p x_p, with a 95% percentile bootstrap
  interval: resample the P problems with replacement ``bootstrap_samples`` times (a seeded
  ``numpy`` generator), take the 2.5th and 97.5th percentiles of the resampled means;
* ``parse_failure_rate``: share of episodes whose final answer had no readable answer, with
  the same interval;
* ``llm_calls``, ``tokens`` (prompt + completion), ``prompt_tokens``, ``completion_tokens``:
  means per problem.

The board has a Markdown table, an HTML page, and a PNG of task score against tokens per
problem with the cost-quality (Pareto) frontier of each task: the methods that no cheaper
method beats.
"""

from __future__ import annotations

import html
import math
from collections import defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

#: How the board names the offline default model.
EMBEDDED_LABEL = "SmolLM2-135M-Instruct (embedded)"
#: Per-episode fields averaged into the cost aggregates.
COST_FIELDS = ("llm_calls", "tokens", "prompt_tokens", "completion_tokens")


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


def aggregate(
    records: Sequence[Mapping[str, Any]], *, bootstrap_samples: int = 1000, bootstrap_seed: int = 0
) -> dict[str, Any]:
    """Aggregate per-episode records (formulas in the module docstring).

    Raises:
        ValueError: If there are no records.
    """
    if not records:
        raise ValueError("cannot aggregate zero episode records")
    by_problem: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
    for record in records:
        by_problem[record["uid"]].append(record)

    def per_problem(key: str) -> list[float]:
        return [float(np.mean([float(r[key]) for r in rs])) for rs in by_problem.values()]

    out: dict[str, Any] = {
        "n_episodes": len(records),
        "n_problems": len(by_problem),
        "bootstrap_samples": bootstrap_samples,
        "bootstrap_seed": bootstrap_seed,
    }
    for key in ("score", "parse_failure"):
        values = per_problem(key)
        name = "parse_failure_rate" if key == "parse_failure" else key
        out[name] = float(np.mean(values))
        out[f"{name}_ci95"] = list(
            bootstrap_ci(values, samples=bootstrap_samples, seed=bootstrap_seed)
        )
    for key in COST_FIELDS:
        out[f"{key}_per_problem"] = float(np.mean([float(r[key]) for r in records]))
    return out


def compare_aggregates(
    stored: Mapping[str, Any], recomputed: Mapping[str, Any], *, rel_tol: float = 1e-9
) -> list[str]:
    """Differences between stored and recomputed aggregates, one readable line each."""
    problems = []
    for key in sorted(set(stored) | set(recomputed)):
        a, b = stored.get(key), recomputed.get(key)
        if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
            same = all(_close(x, y, rel_tol) for x, y in zip(a, b, strict=True))
        else:
            same = _close(a, b, rel_tol)
        if not same:
            problems.append(f"aggregate {key!r} is {a!r} in the file but {b!r} from the records")
    return problems


def _close(a: Any, b: Any, rel_tol: float) -> bool:
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return math.isclose(float(a), float(b), rel_tol=rel_tol, abs_tol=1e-12)
    return a == b


# ----------------------------------------------------------------------------- the board
def result_task(header: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    """The task name and options of a result header (from its game spec when it has one)."""
    config = header["config"]
    source = config.get("game") or config
    return source["task"], dict(source.get("task_options") or {})


def board_rows(results: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """One row per verified result: labels from its header, numbers from its records.

    Each result is what :func:`spgg_env.baselines.bench_results.load_result` returns (header and
    records).
    """
    rows = []
    for result in results:
        header = result["header"]
        boot = header["config"]
        agg = aggregate(
            result["records"],
            bootstrap_samples=boot["bootstrap_samples"],
            bootstrap_seed=boot["bootstrap_seed"],
        )
        model = header.get("backend", {}).get("model") or header["config"]["backend"].get("model")
        wall = header["timing"]["wall_s"] / max(1, agg["n_episodes"])
        rows.append(
            {
                "task": result_task(header)[0],
                "split": header["split"]["name"],
                "name": header["config"]["name"],
                "method": header["config"]["method"],
                "model": EMBEDDED_LABEL if model == "embedded" else str(model),
                "policy": header.get("method", {}).get("policy"),
                "wall_s_per_problem": wall,
                **agg,
            }
        )
    rows.sort(key=lambda r: (r["task"], -r["score"], r["tokens_per_problem"], r["name"]))
    return rows


def pareto_front(rows: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """Rows no cheaper-or-equal row beats on score, by ascending tokens per problem."""
    front: list[Mapping[str, Any]] = []
    for row in sorted(rows, key=lambda r: (r["tokens_per_problem"], -r["score"])):
        if not front or row["score"] > front[-1]["score"]:
            front.append(row)
    return front


COLUMNS = (
    ("name", "Submission", "{}"),
    ("model", "Model", "{}"),
    ("score", "Score", "{:.3f}"),
    ("score_ci95", "95% CI", "[{:.3f}, {:.3f}]"),
    ("parse_failure_rate", "Parse fail", "{:.2f}"),
    ("llm_calls_per_problem", "Calls/problem", "{:.1f}"),
    ("tokens_per_problem", "Tokens/problem", "{:.0f}"),
    ("wall_s_per_problem", "Wall s/episode*", "{:.1f}"),
    ("n_problems", "Problems", "{}"),
)


def _cell(row: Mapping[str, Any], key: str, fmt: str) -> str:
    value = row[key]
    return fmt.format(*value) if isinstance(value, list) else fmt.format(value)


def _by_task(rows: Sequence[Mapping[str, Any]]) -> dict[str, list[Mapping[str, Any]]]:
    groups: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
    for row in rows:
        groups[f"{row['task']} ({row['split']})"].append(row)
    return dict(groups)


NOTE = (
    "Every number is recomputed from the per-episode records of the verified result files. "
    "Score: mean task score of the final answers, with a 95% bootstrap interval over problems. "
    "Tokens: prompt + completion tokens per problem. *Wall time is as measured by the run "
    "(batched, shared CPU); it cannot be recomputed and is indicative only."
)


#: The trained-policy table: title and cell of each column.
POLICY_COLUMNS = (
    ("Submission", lambda row, p: row["name"]),
    ("Policy checkpoint", lambda row, p: p["checkpoint"]),
    ("SHA-256 (verified)", lambda row, p: p["sha256"][:16]),
    ("Trained on", lambda row, p: f"{p['task']} {p['split']}{_problems(p)}, "
                                  f"{p['observation']} obs., {p['n_agents']} agents, "
                                  f"{p['iterations']} PPO iterations"),
)


def _problems(policy: Mapping[str, Any]) -> str:
    """`` (N problems)`` when the policy says how many problems it trained on."""
    train = policy.get("train_problems")
    return f" ({train['n']:,} problems)" if train else ""


def _policy_rows(rows: Sequence[Mapping[str, Any]]) -> list[list[str]]:
    """One line of :data:`POLICY_COLUMNS` cells per submission that used a trained policy."""
    return [[cell(row, row["policy"]) for _, cell in POLICY_COLUMNS]
            for row in rows if row.get("policy")]


def render_markdown(rows: Sequence[Mapping[str, Any]]) -> str:
    """The board as Markdown: one table per task; then, if any submission used a trained
    policy, which checkpoint (its SHA-256, checked against the file by the verification)."""
    lines = ["# spgg_env leaderboard", "", NOTE, "", "![cost-quality frontier](frontier.png)", ""]
    for task, group in _by_task(rows).items():
        lines += [f"## {task}", ""]
        lines.append("| " + " | ".join(title for _, title, _ in COLUMNS) + " |")
        lines.append("|" + "---|" * len(COLUMNS))
        for row in group:
            lines.append("| " + " | ".join(_cell(row, k, f) for k, _, f in COLUMNS) + " |")
        lines.append("")
    policies = _policy_rows(rows)
    if policies:
        lines += ["## Trained policies", ""]
        lines.append("| " + " | ".join(title for title, _ in POLICY_COLUMNS) + " |")
        lines.append("|" + "---|" * len(POLICY_COLUMNS))
        lines += ["| " + " | ".join(cells) + " |" for cells in policies]
        lines.append("")
    return "\n".join(lines)


def render_html(rows: Sequence[Mapping[str, Any]]) -> str:
    """The board as a self-contained HTML page (the plot is linked as ``frontier.png``)."""
    parts = [
        "<!DOCTYPE html>",
        '<html><head><meta charset="utf-8"><title>spgg_env leaderboard</title>',
        "<style>body{font-family:sans-serif;max-width:70em;margin:auto}"
        "table{border-collapse:collapse;margin-bottom:2em}"
        "td,th{border:1px solid #ccc;padding:.3em .6em;text-align:right}"
        "td:first-child,td:nth-child(2){text-align:left}</style></head><body>",
        "<h1>spgg_env leaderboard</h1>",
        f"<p>{html.escape(NOTE)}</p>",
        '<img src="frontier.png" alt="task score against tokens per problem" width="100%">',
    ]
    for task, group in _by_task(rows).items():
        parts.append(f"<h2>{html.escape(task)}</h2><table><tr>")
        parts += [f"<th>{html.escape(title)}</th>" for _, title, _ in COLUMNS]
        parts.append("</tr>")
        for row in group:
            cells = "".join(f"<td>{html.escape(_cell(row, k, f))}</td>" for k, _, f in COLUMNS)
            parts.append(f"<tr>{cells}</tr>")
        parts.append("</table>")
    policies = _policy_rows(rows)
    if policies:
        parts.append("<h2>Trained policies</h2><table><tr>")
        parts += [f"<th>{html.escape(title)}</th>" for title, _ in POLICY_COLUMNS]
        parts.append("</tr>")
        for cells in policies:
            parts.append("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in cells) + "</tr>")
        parts.append("</table>")
    parts.append("</body></html>")
    return "\n".join(parts)


def _short(row: Mapping[str, Any]) -> str:
    """A submission's name without its task prefix (the panel names the task)."""
    return row["name"].removeprefix(f"{row['task']}-")


def plot_frontier(rows: Sequence[Mapping[str, Any]], path: Path) -> None:
    """Scatter task score (with 95% CI) against tokens per problem, one panel per task, with
    each task's Pareto frontier."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = _by_task(rows)
    labels = sorted({_short(row) for row in rows})
    colours = {label: plt.get_cmap("tab20")(i % 20) for i, label in enumerate(labels)}
    fig, axes = plt.subplots(1, len(groups), figsize=(5 * len(groups), 4.2), squeeze=False)
    for ax, (task, group) in zip(axes[0], groups.items(), strict=True):
        for row in group:
            low, high = row["score_ci95"]
            ax.errorbar(
                row["tokens_per_problem"],
                row["score"],
                yerr=[[row["score"] - low], [high - row["score"]]],
                fmt="o",
                capsize=3,
                color=colours[_short(row)],
                label=_short(row),
            )
        front = pareto_front(group)
        ax.step(
            [r["tokens_per_problem"] for r in front],
            [r["score"] for r in front],
            where="post",
            color="black",
            linewidth=0.8,
            linestyle="--",
        )
        ax.set_xscale("log")
        ax.set_ylim(-0.05, 1.05)
        ax.set_title(task)
        ax.set_xlabel("tokens per problem (log)")
        ax.set_ylabel("task score")
        ax.legend(fontsize=6, loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=110, metadata={"Software": None})
    plt.close(fig)


def write_board(results: Sequence[Mapping[str, Any]], out_dir: str | Path) -> list[Path]:
    """Write ``leaderboard.md``, ``leaderboard.html`` and ``frontier.png`` into ``out_dir``.

    Args:
        results: Verified results (:func:`spgg_env.baselines.bench_results.load_result`).
        out_dir: Where to write.

    Returns:
        The written paths.

    Raises:
        ValueError: If ``results`` is empty.
    """
    if not results:
        raise ValueError("no results to put on the leaderboard")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rows = board_rows(results)
    paths = [out / "leaderboard.md", out / "leaderboard.html", out / "frontier.png"]
    paths[0].write_text(render_markdown(rows) + "\n", encoding="utf-8")
    paths[1].write_text(render_html(rows) + "\n", encoding="utf-8")
    plot_frontier(rows, paths[2])
    return paths
