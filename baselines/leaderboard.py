"""Leaderboard: aggregates with bootstrap intervals, paired comparisons, and the board's files.

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

**Rows.** A board row is one submission: the results whose configs agree on everything but
their ``name`` and ``seeds`` (a seeded method is run one seed per result, ``<task>-<method>-
seed<N>``, so that a killed run loses one seed at most), merged; its label is the name without
the task prefix and the seed suffix.

**Paired comparisons** of row X against row Y, over the problems both solved (x_p, y_p: the
seed-averaged scores of problem p, N problems):

* the mean difference d = mean_p (x_p - y_p), with a paired 95% percentile bootstrap interval
  (resample the N problems, the same ones for X and Y); X and Y are *separated* when the
  interval excludes 0;
* the probability of improvement of rliable (Agarwal et al., 2021), over pairs of problems:
  P(X > Y) = 1/N^2 sum_i sum_j S(x_i, y_j), with S(a, b) = 1 if a > b, 1/2 if a = b, 0
  otherwise (the Mann-Whitney U statistic over N^2), with the interval of the same paired
  bootstrap. 0.5 means neither tends to score higher.

Each task compares every row with the reference (:data:`REFERENCE`, single-agent zero-shot) and
with MAC-SPGG (:data:`MAC_SPGG`), and all pairs in a matrix. A row whose hardware and software
setup (device, dtype, machine, torch and transformers versions) differs from the board's (the
most common one) is marked and kept out of the wall-time column.

The board: ``leaderboard.md``, ``leaderboard.html`` (the same tables), ``frontier.png`` (task
score against tokens per problem, with each task's cost-quality frontier: the methods that no
cheaper method beats), ``comparisons.png`` (the paired differences with the reference) and
``costs.md`` (what each row cost, :mod:`spgg_env.baselines.board_costs`).
Each method has one colour on every plot and page (:data:`METHOD_COLOURS`).
"""

from __future__ import annotations

import hashlib
import html
import math
import os
import re
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from spgg_env.baselines.board_costs import cost_table
from spgg_env.bootstrap import bootstrap_ci, percentile_interval, resample_indices

#: Per-episode fields averaged into the cost aggregates.
COST_FIELDS = ("llm_calls", "tokens", "prompt_tokens", "completion_tokens")


def mean_ci(values: Sequence[float], *, samples: int = 2000, seed: int = 0
            ) -> tuple[float, float, float]:
    """``(mean, low, high)``: the mean of ``values`` and its :func:`bootstrap_ci` interval
    (the learner boards' cells: one value per seed)."""
    low, high = bootstrap_ci(values, samples=samples, seed=seed)
    return float(np.mean(values)), low, high


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


# ----------------------------------------------------------------------------- paired comparisons
def probability_of_improvement(x: Sequence[float], y: Sequence[float]) -> float:
    """rliable's P(X > Y) over all pairs: mean of S(x_i, y_j) (1 if greater, 1/2 if equal).

    Raises:
        ValueError: If either sequence is empty.
    """
    xs, ys = np.asarray(x, dtype=np.float64), np.sort(np.asarray(y, dtype=np.float64))
    if xs.size == 0 or ys.size == 0:
        raise ValueError("probability_of_improvement needs values on both sides")
    below = np.searchsorted(ys, xs, side="left")
    equal = np.searchsorted(ys, xs, side="right") - below
    return float((below + 0.5 * equal).sum() / (xs.size * ys.size))


def paired_comparison(
    x: Mapping[str, float], y: Mapping[str, float], *, samples: int = 1000, seed: int = 0
) -> dict[str, Any]:
    """Compare X with Y over the problems both have (formulas in the module docstring).

    Args:
        x: Problem uid -> X's seed-averaged score.
        y: Problem uid -> Y's seed-averaged score.
        samples: Bootstrap resamples (the same problem draws for both statistics).
        seed: Seed of the resampling generator.

    Returns:
        ``n`` (problems paired), ``diff`` and ``diff_ci95``, ``p_improve`` and
        ``p_improve_ci95``, ``separated`` (the difference's interval excludes 0).

    Raises:
        ValueError: If X and Y share no problem.
    """
    common = [uid for uid in x if uid in y]
    if not common:
        raise ValueError("the two rows share no problem: nothing to pair")
    xs = np.array([x[uid] for uid in common], dtype=np.float64)
    ys = np.array([y[uid] for uid in common], dtype=np.float64)
    n = len(common)
    draws = resample_indices(n, samples, seed)
    diffs = (xs - ys)[draws].mean(axis=1)
    # P(X>Y) of a resample: w' S w / n^2, w the resample's count of each problem and
    # S[i, j] = S(x_i, y_j); every resample at once.
    wins = (xs[:, None] > ys[None, :]) + 0.5 * (xs[:, None] == ys[None, :])
    counts = np.zeros((samples, n))
    np.add.at(counts, (np.arange(samples)[:, None], draws), 1.0)
    improve = np.einsum("bi,ij,bj->b", counts, wins, counts) / n**2
    low, high = percentile_interval(diffs)
    return {
        "n": n,
        "diff": float((xs - ys).mean()),
        "diff_ci95": [low, high],
        "p_improve": float(wins.mean()),
        "p_improve_ci95": list(percentile_interval(improve)),
        "separated": bool(low > 0 or high < 0),
    }


def problem_scores(records: Sequence[Mapping[str, Any]]) -> dict[str, float]:
    """Problem uid -> its score averaged over the seeds, in first-seen order."""
    by_problem: dict[str, list[float]] = defaultdict(list)
    for record in records:
        by_problem[record["uid"]].append(float(record["score"]))
    return {uid: float(np.mean(values)) for uid, values in by_problem.items()}


# ----------------------------------------------------------------------------- rows
#: The row every method is compared with, and MAC-SPGG (partial observation).
REFERENCE = "zero-shot"
MAC_SPGG = "spgg-po"
#: Score of answering at random, where a task has one: task -> (score, why).
CHANCE = {"mmlu": (0.25, "4 options")}
#: What each method label means (the board's glossary).
GLOSSARY = {
    "zero-shot": "single agent: the task's instruction and the question, one call (reference)",
    "few-shot": "single agent with 2 solved exemplars drawn per seed from outside the split",
    "cot": "chain of thought: one call asked to reason step by step before answering",
    "self-consistency": "3 chain-of-thought samples at temperature 0.7, majority vote",
    "debate": "multi-agent debate: 2 agents, 2 rounds at temperature 0.7, majority vote",
    "econ-static": "ECON: coordinator strategy, 2 independent executors, coordinator commits",
    "econ-learned": "ECON with per-executor sampling parameters from a trained policy",
    "spgg-po": "MAC-SPGG: 3 agents in sequence, each sees its predecessor (partial obs.)",
    "spgg-fo": "MAC-SPGG: 3 agents in sequence, each sees all predecessors (full obs.)",
    "spgg-po-few-shot": "MAC-SPGG (partial obs.), every agent first shown 2 solved exemplars "
                        "drawn per seed (the game of `spgg run`)",
    "spgg-fo-few-shot": "MAC-SPGG (full obs.), every agent first shown 2 solved exemplars drawn "
                        "per seed",
    "spgg-po-trained": "MAC-SPGG (partial) with sampling parameters from a trained policy",
    "spgg-fo-trained": "MAC-SPGG (full) with sampling parameters from a trained policy",
}
#: One colour per method, the same on every task, plot and page.
METHOD_COLOURS = {
    "zero-shot": "#1f77b4", "few-shot": "#17becf", "cot": "#2ca02c",
    "self-consistency": "#8c564b", "debate": "#9467bd", "econ-static": "#e377c2",
    "econ-learned": "#c5b0d5", "spgg-po": "#d62728", "spgg-fo": "#ff7f0e",
    "spgg-po-trained": "#ff9896", "spgg-fo-trained": "#ffbb78",
    "spgg-po-few-shot": "#7b1113", "spgg-fo-few-shot": "#e6ab02",
}  # fmt: skip
#: Colours of labels the glossary does not know, picked by a stable hash of the label.
OTHER_COLOURS = ("#7f7f7f", "#bcbd22", "#393b79", "#637939", "#8c6d31", "#843c39")
#: How the board names the offline default model.
EMBEDDED_LABEL = "SmolLM2-135M-Instruct (embedded)"
SEED_SUFFIX = re.compile(r"-seed\d+$")
#: Config keys that may differ between the results merged into one row.
PER_RESULT_KEYS = ("name", "seeds")


def colour(label: str) -> str:
    """The method's fixed colour (:data:`METHOD_COLOURS`, else a stable hash of its label)."""
    if label in METHOD_COLOURS:
        return METHOD_COLOURS[label]
    digest = int(hashlib.sha256(label.encode()).hexdigest(), 16)
    return OTHER_COLOURS[digest % len(OTHER_COLOURS)]


def submission_label(name: str, task: str) -> str:
    """A result's row label: its name without the ``<task>-`` prefix and ``-seed<N>`` suffix."""
    return SEED_SUFFIX.sub("", name).removeprefix(f"{task}-")


def result_task(header: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    """The task name and options of a result header (from its game spec when it has one)."""
    config = header["config"]
    source = config.get("game") or config
    return source["task"], dict(source.get("task_options") or {})


def merge_submissions(results: Sequence[Mapping[str, Any]]) -> list[list[Mapping[str, Any]]]:
    """Group results into board rows: same task, split and label, configs equal but for
    :data:`PER_RESULT_KEYS`, disjoint seeds. Groups come in first-seen order.

    Raises:
        ValueError: If two results of one label differ in anything else, or share a seed.
    """
    groups: dict[tuple[str, str, str], list[Mapping[str, Any]]] = {}
    for result in results:
        header = result["header"]
        task = result_task(header)[0]
        key = (task, header["split"]["name"], submission_label(header["config"]["name"], task))
        group = groups.setdefault(key, [])
        if group:
            first = group[0]["header"]
            differing = _config_difference(first["config"], header["config"])
            if differing:
                raise ValueError(f"results {first['config']['name']!r} and "
                                 f"{header['config']['name']!r} share the row {key[2]!r} of "
                                 f"{task} but differ in {differing}")
            seen = {s for r in group for s in r["header"]["seeds"]}
            if seen & set(header["seeds"]):
                raise ValueError(f"row {key[2]!r} of {task} has seed(s) "
                                 f"{sorted(seen & set(header['seeds']))} twice")
        group.append(result)
    return list(groups.values())


def _config_difference(a: Mapping[str, Any], b: Mapping[str, Any]) -> list[str]:
    keys = (set(a) | set(b)) - set(PER_RESULT_KEYS)
    return sorted(k for k in keys if a.get(k) != b.get(k))


def decoding_text(config: Mapping[str, Any]) -> str:
    """The decoding settings of a submission in a few words (the method's own sampling too)."""
    decoding = dict(config.get("decoding") or {})
    temperature = float(decoding.get("temperature", 0.0))
    parts = ["greedy" if temperature == 0 else f"T={temperature:g}"]
    if temperature > 0:
        parts += [f"top-p {decoding.get('top_p', 1.0):g}", f"top-k {decoding.get('top_k', 0)}"]
    for key, neutral in (("repetition_penalty", 1.0), ("presence_penalty", 0.0)):
        if float(decoding.get(key, neutral)) != neutral:
            parts.append(f"{key.replace('_', ' ')} {decoding[key]:g}")
    parts.append(f"{decoding.get('max_new_tokens', 256)} new tokens")
    options = config.get("method_options") or {}
    if "temperature" in options:
        parts.append(f"method samples at T={float(options['temperature']):g}")
    if options.get("policy_checkpoint"):
        parts.append("per-agent parameters from the trained policy")
    return ", ".join(parts)


def setup_text(header: Mapping[str, Any]) -> str:
    """The hardware and software setup a result ran on (rows of one setup compare timings)."""
    backend = header.get("backend") or {}
    packages = (header.get("environment") or {}).get("packages") or {}
    versions = ", ".join(f"{name} {packages[name]}" for name in ("torch", "transformers")
                         if packages.get(name)) or "versions not recorded"
    device = f"{backend.get('device', '?')} {backend.get('dtype', '?')}"
    return f"{device}; {header['timing'].get('machine', '?')}; {versions}"


def _commit_text(header: Mapping[str, Any]) -> str:
    git = header.get("git") or {}
    if not git.get("commit"):
        return "unknown"
    return git["commit"][:10] + (" (dirty)" if git.get("dirty") else "")


def _row(group: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """One board row from the results of one submission."""
    headers = [r["header"] for r in group]
    first = headers[0]
    config = first["config"]
    records = [record for r in group for record in r["records"]]
    agg = aggregate(records, bootstrap_samples=config["bootstrap_samples"],
                    bootstrap_seed=config["bootstrap_seed"])
    task = result_task(first)[0]
    model = first.get("backend", {}).get("model") or config["backend"].get("model")
    setups = sorted({setup_text(h) for h in headers})
    return {
        "task": task,
        "split": first["split"]["name"],
        "label": submission_label(config["name"], task),
        "names": [h["config"]["name"] for h in headers],
        "sources": [str(r.get("path", "")) for r in group],
        "method": config["method"],
        "model": EMBEDDED_LABEL if model == "embedded" else str(model),
        "policy": first.get("method", {}).get("policy"),
        "seeds": sorted(s for h in headers for s in h["seeds"]),
        "decoding": decoding_text(config),
        "commit": ", ".join(sorted({_commit_text(h) for h in headers})),
        "date": ", ".join(sorted({h["timing"]["started_utc"][:10] for h in headers})),
        "setup": " | ".join(setups),
        "wall_s_per_problem": sum(h["timing"]["wall_s"] for h in headers) / agg["n_episodes"],
        "judge": judge_text(first.get("judge")),
        "scores": problem_scores(records),
        **agg,
    }


def judge_text(judge: Mapping[str, Any] | None) -> str | None:
    """One line naming the judge that scored a result (``None`` for tasks without one)."""
    if not judge:
        return None
    text = f"{judge.get('judge', 'judge')} ({judge.get('method', '?')}) on {judge.get('model')}"
    return text + f", judge prompt v{judge.get('prompt_version', '?')}"


def _judges(group: Sequence[Mapping[str, Any]]) -> str | None:
    """The line under a task's title naming the judge(s) of its rows, if any."""
    judges = sorted({row["judge"] for row in group if row.get("judge")})
    unjudged = [row["label"] for row in group if not row.get("judge")]
    if not judges:
        return None
    text = "Scored by: " + "; ".join(judges)
    return text + (f" (no judge recorded: {', '.join(unjudged)})" if unjudged else "")


def board_rows(results: Sequence[Mapping[str, Any]], *, board_setup: str | None = None
               ) -> list[dict[str, Any]]:
    """The board's rows: one per submission (seeds merged), with labels from the headers,
    numbers from the records, the paired comparison with every other row of its task
    (``versus``: label -> :func:`paired_comparison`), those with the reference and with
    MAC-SPGG (``vs_reference``, ``vs_spgg``; ``None`` for the row itself or when that row is
    absent), and ``other_setup`` for rows run elsewhere than ``board_setup``
    (default: the setup of most rows).

    Each result is what :func:`spgg_env.baselines.bench_results.load_result` returns.
    """
    rows = [_row(group) for group in merge_submissions(results)]
    if board_setup is None and rows:
        board_setup = Counter(row["setup"] for row in rows).most_common(1)[0][0]
    by_task: dict[str, dict[str, dict[str, Any]]] = defaultdict(dict)
    for row in rows:
        row["other_setup"] = row["setup"] != board_setup
        by_task[row["task"]][row["label"]] = row
    for row in rows:
        row["versus"] = {label: paired_comparison(row["scores"], other["scores"],
                                                  samples=row["bootstrap_samples"],
                                                  seed=row["bootstrap_seed"])
                         for label, other in by_task[row["task"]].items() if other is not row}
        row["vs_reference"] = row["versus"].get(REFERENCE)
        row["vs_spgg"] = row["versus"].get(MAC_SPGG)
    rows.sort(key=lambda r: (r["task"], -r["score"], r["tokens_per_problem"], r["label"]))
    return rows


def separated_pairs(rows: Sequence[Mapping[str, Any]]) -> tuple[list[str], list[str]]:
    """One task's pairs whose difference's interval excludes 0 (``"X > Y (+0.12)"``, each
    pair once, the better first) and those it does not (``"X ~ Y"``)."""
    apart, together = [], []
    for row in rows:
        for y, result in row["versus"].items():
            x = row["label"]
            if result["diff"] < 0 or (result["diff"] == 0 and x > y):
                continue  # each unordered pair once, from the side that scores higher
            if result["separated"]:
                apart.append(f"{x} > {y} ({result['diff']:+.3f})")
            else:
                together.append(f"{x} ~ {y}")
    return apart, together


def pareto_front(rows: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """Rows no cheaper-or-equal row beats on score, by ascending tokens per problem."""
    front: list[Mapping[str, Any]] = []
    for row in sorted(rows, key=lambda r: (r["tokens_per_problem"], -r["score"])):
        if not front or row["score"] > front[-1]["score"]:
            front.append(row)
    return front


def _by_task(rows: Sequence[Mapping[str, Any]]) -> dict[str, list[Mapping[str, Any]]]:
    groups: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
    for row in rows:
        groups[row["task"]].append(row)
    return dict(groups)


# ----------------------------------------------------------------------------- tables
def _interval(values: Sequence[float], digits: int = 3) -> str:
    return f"[{values[0]:.{digits}f}, {values[1]:.{digits}f}]"


def _versus(comparison: Mapping[str, Any] | None) -> str:
    if comparison is None:
        return "—"
    mark = " *" if comparison["separated"] else ""
    return f"{comparison['diff']:+.3f} {_interval(comparison['diff_ci95'])}{mark}"


def _improve(comparison: Mapping[str, Any] | None) -> str:
    if comparison is None:
        return "—"
    return f"{comparison['p_improve']:.2f} {_interval(comparison['p_improve_ci95'], 2)}"


def _wall(row: Mapping[str, Any]) -> str:
    return "other setup †" if row["other_setup"] else f"{row['wall_s_per_problem']:.2f}"


#: The score table: (title, cell).
SCORE_COLUMNS = (
    ("Score", lambda r: f"{r['score']:.3f}"),
    ("95% CI", lambda r: _interval(r["score_ci95"])),
    (f"Δ vs {REFERENCE} [95% CI]", lambda r: _versus(r["vs_reference"])),
    (f"P(X>{REFERENCE})", lambda r: _improve(r["vs_reference"])),
    (f"Δ vs {MAC_SPGG} [95% CI]", lambda r: _versus(r["vs_spgg"])),
    (f"P(X>{MAC_SPGG})", lambda r: _improve(r["vs_spgg"])),
    ("Parse fail", lambda r: f"{r['parse_failure_rate']:.2f}"),
    ("Calls/problem", lambda r: f"{r['llm_calls_per_problem']:.1f}"),
    ("Tokens/problem", lambda r: f"{r['tokens_per_problem']:.0f}"),
    ("Wall s/episode", _wall),
    ("Problems", lambda r: str(r["n_problems"])),
    ("Seeds", lambda r: str(len(r["seeds"]))),
)
#: The provenance table: (title, cell); the config links are added by the renderers.
PROVENANCE_COLUMNS = (
    ("Decoding", lambda r: r["decoding"]),
    ("Seeds", lambda r: ", ".join(map(str, r["seeds"]))),
    ("Commit", lambda r: r["commit"]),
    ("Date (UTC)", lambda r: r["date"]),
    ("Setup", lambda r: r["setup"] + (" †" if r["other_setup"] else "")),
)


def config_links(row: Mapping[str, Any], out_dir: Path, repo_root: Path) -> list[tuple[str, str]]:
    """``(name, href)`` per result of a row, relative to ``out_dir``: the submission YAML when
    ``benchmarks/configs`` holds one of that name, else the result file (it holds the config)."""
    links = []
    for name, source in zip(row["names"], row["sources"], strict=True):
        found = sorted((repo_root / "benchmarks" / "configs").rglob(f"{name}.yaml"))
        target = found[0] if found else Path(source) / "result.json"
        links.append((name, os.path.relpath(target.resolve(), out_dir.resolve())))
    return links


def _seed_name(name: str) -> str:
    match = SEED_SUFFIX.search(name)
    return match.group(0).lstrip("-") if match else "config"


def versus_chance(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    """One task's rows whose score interval lies above or below the task's chance score
    (``"zero-shot below chance"``); nothing for a task without a chance line."""
    if not rows or rows[0]["task"] not in CHANCE:
        return []
    chance = CHANCE[rows[0]["task"]][0]
    out = []
    for row in rows:
        low, high = row["score_ci95"]
        side = "above" if low > chance else "below" if high < chance else "not separated from"
        out.append(f"{row['label']} {side} chance")
    return out


def _chance(task: str, group: Sequence[Mapping[str, Any]] = ()) -> str:
    if task not in CHANCE:
        return "no chance line (free-form answers)"
    value, why = CHANCE[task]
    verdicts = versus_chance(group)
    return f"chance: {value:.2f} ({why})" + (f"; {'; '.join(verdicts)} (95% CI)" if verdicts
                                               else "")


NOTE = (
    "Every number is recomputed from the per-episode records of the verified result files. "
    "Score: mean task score of the final answers (seeds averaged per problem first), with a 95% "
    "percentile bootstrap interval over problems. Δ: paired mean difference with the row named, "
    "over the same problems, with its paired bootstrap 95% interval; * marks an interval that "
    "excludes 0 (the two are separated). P(X>Y): rliable's probability of improvement over "
    "pairs of problems (0.5: no tendency), with its bootstrap interval. Tokens: prompt + "
    "completion tokens per problem. Wall time: as measured by the run; † marks a row from "
    "another hardware/software setup, kept out of the timing comparison."
)


# ----------------------------------------------------------------------------- rendering
def _task_title(task: str, group: Sequence[Mapping[str, Any]]) -> str:
    return f"{task} ({group[0]['split']}, {max(r['n_problems'] for r in group)} problems)"


def _pair_matrix(group: Sequence[Mapping[str, Any]]) -> tuple[list[str], list[list[str]]]:
    """Titles and cells of a task's pairwise matrix: row X, column Y, X's mean difference with
    Y (``*``: separated)."""
    labels = [row["label"] for row in group]
    cells = [[x["label"]] + ["" if x["label"] == y else f"{x['versus'][y]['diff']:+.3f}"
                             + (" *" if x["versus"][y]["separated"] else "") for y in labels]
             for x in group]
    return ["X \\ Y", *labels], cells


def render_markdown(rows: Sequence[Mapping[str, Any]], links: Mapping[str, list[tuple[str, str]]]
                    ) -> str:
    """The board as Markdown (``links``: row key -> its config links, see :func:`row_key`)."""
    lines = ["# spgg_env task board", "", NOTE, "", f"**Setup of the board:** {_setup(rows)}",
             "", "![score against tokens](frontier.png)", "",
             f"![paired differences with {REFERENCE}](comparisons.png)", "", "## Glossary", "",
             "| Method | Colour | What it is |", "|---|---|---|"]
    lines += [f"| {label} | `{colour(label)}` | {text} |"
              for label, text in _glossary(rows).items()]
    for task, group in _by_task(rows).items():
        judges = _judges(group)
        lines += ["", f"## {_task_title(task, group)}", "", _chance(task, group), ""]
        lines += [judges, ""] if judges else []
        lines += _md_table(["Method", *(t for t, _ in SCORE_COLUMNS)],
                           [[row["label"], *(cell(row) for _, cell in SCORE_COLUMNS)]
                            for row in group])
        apart, together = separated_pairs(group)
        lines += ["", f"**Separated** (paired 95% interval excludes 0): "
                  f"{'; '.join(apart) or 'none'}.", "",
                  f"**Not separated:** {'; '.join(together) or 'none'}.", "",
                  "Pairwise mean differences (row minus column; * separated):", ""]
        lines += _md_table(*_pair_matrix(group))
        lines += ["", "Provenance:", ""]
        lines += _md_table(
            ["Method", *(t for t, _ in PROVENANCE_COLUMNS), "Config"],
            [[row["label"], *(cell(row) for _, cell in PROVENANCE_COLUMNS),
              " ".join(f"[{_seed_name(n)}]({href})" for n, href in links[row_key(row)])]
             for row in group])
    lines += _md_policies(rows)
    return "\n".join(lines) + "\n"


def _md_table(titles: Sequence[str], cells: Sequence[Sequence[str]]) -> list[str]:
    out = ["| " + " | ".join(titles) + " |", "|" + "---|" * len(titles)]
    return out + ["| " + " | ".join(line) + " |" for line in cells]


def _md_policies(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    policies = _policy_rows(rows)
    if not policies:
        return []
    return ["", "## Trained policies", "", *_md_table([t for t, _ in POLICY_COLUMNS], policies)]


def render_html(rows: Sequence[Mapping[str, Any]], links: Mapping[str, list[tuple[str, str]]]
                ) -> str:
    """The board as a self-contained HTML page (plots linked as ``frontier.png`` and
    ``comparisons.png``); every method row carries ``data-method`` and its colour swatch."""
    esc = html.escape
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8"><title>spgg_env task board</title>',
        "<style>body{font-family:sans-serif;max-width:90em;margin:auto;padding:0 1em}"
        "table{border-collapse:collapse;margin-bottom:1.5em}"
        "td,th{border:1px solid #ccc;padding:.25em .5em;text-align:right}"
        "td:first-child{text-align:left;white-space:nowrap}"
        ".glossary td,.provenance td{text-align:left}"
        ".swatch{display:inline-block;width:.9em;height:.9em;margin-right:.4em;"
        "vertical-align:middle;border:1px solid #333}.sep{font-weight:bold}"
        "img{max-width:100%}</style></head><body>",
        "<h1>spgg_env task board</h1>",
        f"<p>{esc(NOTE)}</p>",
        f'<p><b>Setup of the board:</b> <span id="setup">{esc(_setup(rows))}</span></p>',
        '<img src="frontier.png" alt="task score against tokens per problem, per task">',
        f'<img src="comparisons.png" alt="paired differences with {REFERENCE}, per task">',
        '<h2 id="glossary">Glossary</h2><table class="glossary"><tr><th>Method</th>'
        "<th>What it is</th></tr>",
    ]
    parts += [f'<tr data-method="{esc(label)}"><td>{_swatch(label)}{esc(label)}</td>'
              f"<td>{esc(text)}</td></tr>" for label, text in _glossary(rows).items()]
    parts.append("</table>")
    for task, group in _by_task(rows).items():
        judges = _judges(group)
        parts.append(f'<h2 id="{esc(task)}">{esc(_task_title(task, group))}</h2>'
                     f'<p class="chance">{esc(_chance(task, group))}</p>'
                     + (f'<p class="judge">{esc(judges)}</p>' if judges else ""))
        parts.append(_html_table(
            f"scores {task}", ["Method", *(t for t, _ in SCORE_COLUMNS)],
            [(row["label"], [cell(row) for _, cell in SCORE_COLUMNS]) for row in group]))
        apart, together = separated_pairs(group)
        parts.append(f'<p class="separated"><b>Separated</b> (paired 95% interval excludes 0): '
                     f"{esc('; '.join(apart) or 'none')}.</p>"
                     f"<p><b>Not separated:</b> {esc('; '.join(together) or 'none')}.</p>"
                     "<p>Pairwise mean differences (row minus column; * separated):</p>")
        titles, cells = _pair_matrix(group)
        parts.append(_html_table(f"pairs {task}", titles, [(c[0], c[1:]) for c in cells]))
        parts.append("<p>Provenance:</p>")
        parts.append(_html_table(
            f"provenance {task}", ["Method", *(t for t, _ in PROVENANCE_COLUMNS), "Config"],
            [(row["label"], [cell(row) for _, cell in PROVENANCE_COLUMNS]
              + [" ".join(f'<a href="{esc(href)}">{esc(_seed_name(n))}</a>'
                          for n, href in links[row_key(row)])])
             for row in group], raw_last=True))
    policies = _policy_rows(rows)
    if policies:
        parts.append("<h2>Trained policies</h2>")
        parts.append(_html_table("policies", [t for t, _ in POLICY_COLUMNS],
                                 [(p[0], p[1:]) for p in policies]))
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def _swatch(label: str) -> str:
    return f'<span class="swatch" style="background:{colour(label)}"></span>'


def _html_table(kind: str, titles: Sequence[str], rows: Sequence[tuple[str, Sequence[str]]],
                *, raw_last: bool = False) -> str:
    """A table whose first cell names a method (its swatch and ``data-method``); ``raw_last``:
    the last cell is already HTML (links)."""
    esc = html.escape
    out = [f'<table class="{esc(kind.split()[0])}" data-table="{esc(kind)}"><tr>'
           + "".join(f"<th>{esc(t)}</th>" for t in titles) + "</tr>"]
    for label, cells in rows:
        tds = [f'<td class="sep">{esc(c)}</td>' if c.endswith(" *") else f"<td>{esc(c)}</td>"
               for c in (cells[:-1] if raw_last else cells)]
        if raw_last:
            tds.append(f"<td>{cells[-1]}</td>")
        out.append(f'<tr data-method="{esc(label)}"><td>{_swatch(label)}{esc(label)}</td>'
                   + "".join(tds) + "</tr>")
    return "\n".join(out) + "\n</table>"


def _glossary(rows: Sequence[Mapping[str, Any]]) -> dict[str, str]:
    """The glossary entries of the labels on the board, in glossary order."""
    present = {row["label"] for row in rows}
    known = {label: text for label, text in GLOSSARY.items() if label in present}
    return known | {label: "(not in the glossary)" for label in sorted(present - set(GLOSSARY))}


def _setup(rows: Sequence[Mapping[str, Any]]) -> str:
    setups = [row["setup"] for row in rows if not row["other_setup"]]
    return setups[0] if setups else "none"


def row_key(row: Mapping[str, Any]) -> str:
    """A row's unique key on the board: ``<task>/<split>/<label>``."""
    return f"{row['task']}/{row['split']}/{row['label']}"


#: The trained-policy table: title and cell of each column.
POLICY_COLUMNS = (
    ("Submission", lambda row, p: row["label"]),
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
    """One line of :data:`POLICY_COLUMNS` cells per row that used a trained policy."""
    return [[cell(row, row["policy"]) for _, cell in POLICY_COLUMNS]
            for row in rows if row.get("policy")]


# ----------------------------------------------------------------------------- plots
def _figure(n_panels: int, height: float) -> tuple[Any, list[Any]]:
    from matplotlib.figure import Figure

    columns = min(3, n_panels)
    lines = math.ceil(n_panels / columns)
    fig = Figure(figsize=(5.2 * columns, height * lines + 1.0))
    axes = fig.subplots(lines, columns, squeeze=False).flatten()
    for ax in axes[n_panels:]:
        ax.set_visible(False)
    return fig, list(axes[:n_panels])


def plot_frontier(rows: Sequence[Mapping[str, Any]], path: Path) -> None:
    """Task score (95% CI) against tokens per problem, one panel per task, each task's Pareto
    frontier dashed, its chance line dotted; one legend for all panels."""
    groups = _by_task(rows)
    fig, axes = _figure(len(groups), 3.6)
    for ax, (task, group) in zip(axes, groups.items(), strict=True):
        for row in group:
            low, high = row["score_ci95"]
            ax.errorbar(row["tokens_per_problem"], row["score"],
                        yerr=[[row["score"] - low], [high - row["score"]]], fmt="o", ms=6,
                        capsize=3, color=colour(row["label"]), label=row["label"])
        front = pareto_front(group)
        ax.step([r["tokens_per_problem"] for r in front], [r["score"] for r in front],
                where="post", color="black", linewidth=0.8, linestyle="--")
        if task in CHANCE:
            ax.axhline(CHANCE[task][0], color="grey", linestyle=":", linewidth=1.2,
                       label="chance")
        ax.set_xscale("log")
        highest = max([r["score_ci95"][1] for r in group] + [CHANCE.get(task, (0.0,))[0]])
        ax.set_ylim(-0.02, min(1.05, max(0.25, highest + 0.1)))  # low scores stay readable
        ax.set_title(_task_title(task, group), fontsize=11)
        ax.set_xlabel("tokens per problem (log)", fontsize=10)
        ax.set_ylabel("task score", fontsize=10)
        ax.grid(alpha=0.3)
    _shared_legend(fig, axes)
    fig.savefig(path, dpi=100, metadata={"Software": None})


def plot_comparisons(rows: Sequence[Mapping[str, Any]], path: Path) -> None:
    """Each method's paired mean difference with the reference (95% CI), one panel per task;
    method names on the axis, so no legend is needed."""
    groups = {task: [r for r in group if r["vs_reference"] is not None]
              for task, group in _by_task(rows).items()}
    groups = {task: group for task, group in groups.items() if group}
    if not groups:
        groups = {"no comparison": []}
    fig, axes = _figure(len(groups), 3.0)
    for ax, (task, group) in zip(axes, groups.items(), strict=True):
        for y, row in enumerate(group):
            comparison = row["vs_reference"]
            low, high = comparison["diff_ci95"]
            ax.errorbar(comparison["diff"], y, xerr=[[comparison["diff"] - low],
                                                     [high - comparison["diff"]]],
                        fmt="o", ms=6, capsize=3, color=colour(row["label"]))
        ax.axvline(0.0, color="black", linewidth=0.8)
        ax.set_yticks(range(len(group)), [row["label"] for row in group], fontsize=10)
        ax.set_ylim(-0.6, max(len(group), 1) - 0.4)
        ax.invert_yaxis()
        ax.set_title(task, fontsize=11)
        ax.set_xlabel(f"score minus {REFERENCE} (paired, 95% CI)", fontsize=10)
        ax.grid(alpha=0.3, axis="x")
    fig.tight_layout()
    fig.savefig(path, dpi=100, metadata={"Software": None})


def _shared_legend(fig: Any, axes: Sequence[Any]) -> None:
    handles: dict[str, Any] = {}
    for ax in axes:
        for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
            handles.setdefault(label, handle)
    order = [label for label in [*GLOSSARY, "chance"] if label in handles]
    order += sorted(set(handles) - set(order))
    fig.tight_layout(rect=(0, 0.1, 1, 1))
    fig.legend([handles[label] for label in order], order, loc="lower center",
               ncol=min(6, len(order)), fontsize=11, frameon=False)


def write_board(results: Sequence[Mapping[str, Any]], out_dir: str | Path,
                *, repo_root: str | Path | None = None,
                costs: Mapping[str, Mapping[str, str]] | None = None) -> list[Path]:
    """Write ``leaderboard.md``, ``leaderboard.html``, ``frontier.png``,
    ``comparisons.png`` and ``costs.md`` (what each row cost) into ``out_dir``.

    Args:
        results: Verified results (:func:`spgg_env.baselines.bench_results.load_result`).
        out_dir: Where to write.
        repo_root: Where ``benchmarks/configs`` is looked for (the config links); default:
            the repository this module is in.
        costs: Cost-file lines by row (:func:`spgg_env.baselines.board_costs.load_cost_file`);
            rows without one show the cost their result records.

    Returns:
        The written paths.

    Raises:
        ValueError: If ``results`` is empty, or two results of one row disagree.
    """
    if not results:
        raise ValueError("no results to put on the leaderboard")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    root = Path(repo_root) if repo_root is not None else Path(__file__).resolve().parents[1]
    rows = board_rows(results)
    links = {row_key(row): config_links(row, out, root) for row in rows}
    paths = [out / "leaderboard.md", out / "leaderboard.html", out / "frontier.png",
             out / "comparisons.png", out / "costs.md"]
    paths[0].write_text(render_markdown(rows, links), encoding="utf-8")
    paths[1].write_text(render_html(rows, links), encoding="utf-8")
    plot_frontier(rows, paths[2])
    plot_comparisons(rows, paths[3])
    paths[4].write_text(cost_table(results, costs or {}), encoding="utf-8")
    return paths
