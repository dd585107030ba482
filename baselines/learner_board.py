"""The learner board: do independent learners find the equilibrium of the scalar game, and how fast?

**The standard protocol** (``spgg learners run``). For each mechanism (MAC-SPGG, classic SPGG,
classic PGG) and each number of agents n (3, 5, 10), on the scalar game with ``K`` contribution
levels (default 4: 0, 1/3, 2/3, 1) and full observation (agent i sees every predecessor's
level; the simultaneous PGG hides them), a learner (:class:`spgg_env.learner.Learner`) controls
every agent and plays ``episodes`` training episodes, for each of ``seeds`` seeds (a fresh
learner per seed). An episode is one environment round: each agent contributes once and is paid.
``copies`` env copies are played per ``act`` call (a batch); the episodes of a round are then
passed to ``learn``.

At ``checkpoints`` evenly spaced points the learner plays one **greedy** episode
(``act(..., greedy=True)``, not learnt from): its contributions are the *greedy path*. The exact
equilibrium comes from :func:`spgg_env.equilibrium.solve` on the same grid (the SPNE of the
sequential game; for the simultaneous PGG its pure Nash equilibrium, unique here).

* **reached**: the greedy path at the last checkpoint equals the equilibrium path;
* **episodes to reach**: the training episodes at the first checkpoint of the final unbroken
  run of on-path checkpoints (the path was reached there and stayed for the rest of the run);
* **welfare**: the sum of the agents' payoffs on the final greedy path, reported as a share of
  the efficient profile's welfare (the grid profile with the largest sum of payoffs), beside
  the equilibrium's share.

Across seeds the board shows how many reached the path, the mean episodes to reach (over the
seeds that reached it) and the mean welfare share, each mean with a 95% percentile bootstrap
interval over seeds (:func:`spgg_env.bootstrap.bootstrap_ci`, seeded: the board is
the same on every rebuild).

**Learners.** Built in: the bandits ``epsilon-greedy``, ``ucb1``, ``thompson``, ``exp3``
(:class:`~spgg_env.baselines.bandit_play.BanditLearner`; the seeds of one cell run vectorised
in one object, each seed an independent run of its own statistics), ``sb3-ppo``
(:class:`~spgg_env.baselines.sb3_learner.SB3PPOLearner`) and ``rllib-ppo``
(:class:`~spgg_env.baselines.rllib_learner.RLlibPPOLearner`, needs the ``rllib`` extra). Any
other learner is given as ``module:attr``, a factory ``make(env, seed=seed) -> Learner``. A
learner that owns its sampling loop (RLlib) offers ``fit(episodes)`` instead of ``learn``; the
board then asks it to train until the next checkpoint.

**Files.** ``spgg learners run`` writes ``<out>/<name>.json``: the config, the seeds, the
equilibrium and efficient profiles of each cell, every checkpoint of every seed, and
:func:`spgg_env.provenance.environment` (versions, git commit, command); the same command gives
the same bytes. Wall-clock time goes beside it in ``<name>.cost.json``. ``spgg learners board
RESULTS... --out DIR`` recomputes every aggregate from those files and writes
``learners.md``, ``learners.html`` and ``curves.png``.
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import html
import json
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

import spgg_env
from spgg_env.baselines.leaderboard import mean_ci
from spgg_env.equilibrium import solve
from spgg_env.learner import load, play_episodes
from spgg_env.mechanism import make_mechanism
from spgg_env.provenance import environment

BANDITS = ("epsilon-greedy", "ucb1", "thompson", "exp3")
#: Every built-in learner, in board order, with its fixed plot colour.
COLOURS = {
    "epsilon-greedy": "#1f77b4",
    "ucb1": "#ff7f0e",
    "thompson": "#2ca02c",
    "exp3": "#d62728",
    "sb3-ppo": "#9467bd",
    "rllib-ppo": "#8c564b",
}
#: Colours for learners that are not built in (picked by a hash of the name: stable).
OTHER_COLOURS = ("#e377c2", "#7f7f7f", "#bcbd22", "#17becf", "#000000", "#aec7e8")
MECHANISM_LABELS = {"mac-spgg": "MAC-SPGG", "spgg": "classic SPGG", "pgg": "classic PGG"}


@dataclass(frozen=True)
class BoardConfig:
    """One run of the standard protocol for one learner.

    Attributes:
        learner: A built-in name (:data:`COLOURS`) or ``"module:attr"`` (a learner factory).
        name: The learner's name on the board (default: ``learner``, or ``attr``).
        game: The game; only ``"scalar"`` so far.
        mechanisms: Mechanism names.
        agents: Numbers of agents n.
        levels: Contribution levels K of the grid (actions are ``Discrete(K)``).
        observation: What a sequential game's agents see (``"full"``: every predecessor).
        seeds: One fresh learner per seed.
        episodes: Training episodes (environment rounds) per seed.
        copies: Env copies per round (the batch an ``act`` call gets).
        checkpoints: Greedy evaluations, evenly spaced over the run.
        options: Keyword arguments for the learner factory.
    """

    learner: str
    name: str = ""
    game: str = "scalar"
    mechanisms: tuple[str, ...] = ("mac-spgg", "spgg", "pgg")
    agents: tuple[int, ...] = (3, 5, 10)
    levels: int = 4
    observation: str = "full"
    seeds: tuple[int, ...] = tuple(range(8))
    episodes: int = 10_000
    copies: int = 1
    checkpoints: int = 50
    options: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.game != "scalar":
            raise ValueError(f"the board runs only the scalar game so far, not {self.game!r}")
        if not self.name:
            object.__setattr__(self, "name", self.learner.rpartition(":")[2])
        for label, value in (("episodes", self.episodes), ("copies", self.copies),
                             ("checkpoints", self.checkpoints), ("levels", self.levels - 1)):
            if value < 1:
                raise ValueError(f"{label} must be >= 1 (levels >= 2), got {value}")
        if self.episodes < self.checkpoints * self.copies:
            raise ValueError(
                f"episodes={self.episodes} is too few for {self.checkpoints} checkpoints of "
                f"{self.copies} copies each"
            )
        if not self.seeds:
            raise ValueError("need at least one seed")


# ------------------------------------------------------------------------------ learners
def factory(spec: str, options: Mapping[str, Any]) -> Callable[..., Any]:
    """The learner factory ``make(env, seed=...)`` for a built-in name or ``module:attr``."""
    if spec in BANDITS:
        from spgg_env.baselines.bandit_play import BanditLearner

        return functools.partial(BanditLearner, algorithm=spec, **options)
    if spec == "sb3-ppo":
        from spgg_env.baselines.sb3_learner import SB3PPOLearner

        return functools.partial(SB3PPOLearner, **options)
    if spec == "rllib-ppo":
        try:
            from spgg_env.baselines.rllib_learner import RLlibPPOLearner
        except ModuleNotFoundError as err:
            raise ValueError(f"rllib-ppo needs the rllib extra (pip install 'spgg-env[rllib]'): "
                             f"{err}") from err
        return functools.partial(RLlibPPOLearner, **options)
    if ":" not in spec:
        raise ValueError(f"unknown learner {spec!r}: use one of {list(COLOURS)} or 'module:attr'")
    make = load(spec)
    return functools.partial(make, **options) if options else make


def _groups(config: BoardConfig, make_env: Callable[[], Any]) -> list[tuple[Any, list[int]]]:
    """(learner, seeds it serves): one vectorised bandit for all seeds, else one per seed."""
    seeds = list(config.seeds)
    make = factory(config.learner, config.options)
    if config.learner in BANDITS:
        return [(make(make_env(), seed=seeds[0], runs=len(seeds)), seeds)]
    return [(make(make_env(), seed=seed), [seed]) for seed in seeds]


# ------------------------------------------------------------------------------ one cell
def efficient_profile(mechanism: Any, n_agents: int, grid: np.ndarray) -> tuple[float, list[float]]:
    """The grid profile with the largest welfare (sum of payoffs) and that welfare."""
    mesh = np.meshgrid(*([grid] * n_agents), indexing="ij")
    profiles = np.stack(mesh, axis=-1).reshape(-1, n_agents)
    welfare = mechanism(profiles).total.sum(axis=-1)
    best = int(welfare.argmax())
    return float(welfare[best]), profiles[best].tolist()


def _greedy(learner: Any, envs: Sequence[Any], k: int) -> tuple[list[list[int]], list[float]]:
    """Greedy path (level indices, read from the env's info) and welfare of each env copy."""
    paths, welfare = [], []
    for record in play_episodes(envs, learner, greedy=True):
        steps = [record[agent] for agent in envs[0].possible_agents]
        paths.append([round(step["info"]["contribution"] * (k - 1)) for step in steps])
        welfare.append(float(sum(step["reward"] for step in steps)))
    return paths, welfare


def run_cell(config: BoardConfig, mechanism: str, n_agents: int) -> dict[str, Any]:
    """Train and evaluate the learner on one (mechanism, n) cell for every seed."""
    grid = np.linspace(0.0, 1.0, config.levels)
    mech = make_mechanism(mechanism)
    eq = solve(mech, n_agents, grid)
    efficient, efficient_path = efficient_profile(mech, n_agents, grid)

    def make_env() -> Any:
        return spgg_env.raw_env(
            task="scalar", n_agents=n_agents, levels=config.levels,
            observation=config.observation, mechanism=mechanism,
        )  # fmt: skip

    per_round = config.copies
    marks = [
        per_round * round(j * config.episodes / (config.checkpoints * per_round))
        for j in range(1, config.checkpoints + 1)
    ]
    seeds_out: dict[int, dict[str, Any]] = {}
    for learner, seeds in _groups(config, make_env):
        envs = [make_env() for _ in range(len(seeds) * per_round)]
        eval_envs = [make_env() for _ in seeds]
        env_seeds = [1000 * seed + c for c in range(per_round) for seed in seeds]
        curves: dict[int, list[list[Any]]] = {seed: [] for seed in seeds}
        played, first = 0, True
        for mark in marks:
            if hasattr(learner, "fit"):
                played = learner.fit(mark - played)
            while played < mark:
                reset_seeds = env_seeds if first else None
                learner.learn(play_episodes(envs, learner, seeds=reset_seeds))
                played, first = played + per_round, False
            paths, welfare = _greedy(learner, eval_envs, config.levels)
            for seed, path, w in zip(seeds, paths, welfare, strict=True):
                curves[seed].append([played, path, w])
        if hasattr(learner, "close"):
            learner.close()
        for seed in seeds:
            seeds_out[seed] = _seed_summary(seed, curves[seed], list(eq.path_index))
    return {
        "mechanism": mechanism,
        "n_agents": n_agents,
        "concept": eq.concept,
        "equilibrium_path": list(eq.path_index),
        "equilibrium_unique": eq.unique,
        "equilibrium_welfare": eq.welfare,
        "efficient_welfare": efficient,
        "efficient_path": [round(c * (config.levels - 1)) for c in efficient_path],
        "seeds": [seeds_out[s] for s in config.seeds],
    }


def _seed_summary(seed: int, curve: list[list[Any]], target: list[int]) -> dict[str, Any]:
    """Checkpoints of one seed and when it reached the target path for good."""
    on_path = [path == target for _, path, _ in curve]
    reached_at = None
    if on_path[-1]:
        j = len(on_path) - 1
        while j > 0 and on_path[j - 1]:
            j -= 1
        reached_at = curve[j][0]
    return {
        "seed": seed,
        "reached_at": reached_at,
        "final_path": curve[-1][1],
        "final_welfare": curve[-1][2],
        "checkpoints": {
            "episodes": [e for e, _, _ in curve],
            "path": [p for _, p, _ in curve],
            "welfare": [w for _, _, w in curve],
        },
    }


def run_board(config: BoardConfig, out_dir: str | Path) -> tuple[Path, dict[str, Any]]:
    """Run every cell and write ``<out_dir>/<name>.json`` and ``<name>.cost.json``.

    Returns:
        The result file's path and its content (as read back from the file).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    provenance = environment()  # the code as the run starts
    cells, cost = [], {}
    for mechanism in config.mechanisms:
        for n in config.agents:
            start = time.perf_counter()
            cells.append(run_cell(config, mechanism, n))
            cost[f"{mechanism}/n={n}"] = round(time.perf_counter() - start, 1)
    result = {
        "board": "learners",
        "learner": config.name,
        "config": {**asdict(config), "options": dict(config.options)},
        "cells": cells,
        "provenance": provenance,
    }
    path = out / f"{config.name}.json"
    text = _dumps(result)
    path.write_text(text, encoding="utf-8")
    cost_file = out / f"{config.name}.cost.json"
    cost_file.write_text(json.dumps({"wall_seconds": cost}, indent=1) + "\n", encoding="utf-8")
    return path, json.loads(text)  # as the board will read it (lists, not tuples)


def _dumps(data: Any) -> str:
    """JSON with sorted keys, one key per line, and each list of numbers on one line."""
    text = json.dumps(data, indent=1, sort_keys=True)
    return re.sub(r"\[[-0-9.eE+,\s]*\]", lambda m: re.sub(r"\s+", "", m.group()), text) + "\n"


# ------------------------------------------------------------------------------ the board
def board_rows(results: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """One row per (learner, mechanism, n), every aggregate recomputed from the checkpoints."""
    rows = []
    for result in results:
        config = result["config"]
        for cell in result["cells"]:
            seeds = cell["seeds"]
            efficient = cell["efficient_welfare"]
            reached = [s["reached_at"] for s in seeds if s["reached_at"] is not None]
            rows.append({
                "learner": result["learner"],
                "mechanism": cell["mechanism"],
                "n_agents": cell["n_agents"],
                "concept": cell["concept"],
                "equilibrium_path": cell["equilibrium_path"],
                "equilibrium_share": cell["equilibrium_welfare"] / efficient,
                "seeds": len(seeds),
                "reached": len(reached),
                "episodes_to_reach": mean_ci(reached) if reached else None,
                "welfare_share": mean_ci([s["final_welfare"] / efficient for s in seeds]),
                "budget": config["episodes"],
                "levels": config["levels"],
                "curve": _on_path_curve(seeds, cell["equilibrium_path"]),
            })  # fmt: skip
    order = {name: i for i, name in enumerate(COLOURS)}
    rows.sort(key=lambda r: (list(MECHANISM_LABELS).index(r["mechanism"]) if r["mechanism"] in
                             MECHANISM_LABELS else 9, r["mechanism"], r["n_agents"],
                             order.get(r["learner"], len(order)), r["learner"]))
    return rows


def _on_path_curve(seeds: Sequence[Mapping[str, Any]], target: list[int]) -> list[list[float]]:
    """(episodes, share of seeds whose greedy path is the equilibrium path) per checkpoint."""
    episodes = np.mean([s["checkpoints"]["episodes"] for s in seeds], axis=0)
    on_path = np.mean([[p == target for p in s["checkpoints"]["path"]] for s in seeds], axis=0)
    return [[float(e), float(share)] for e, share in zip(episodes, on_path, strict=True)]


def _contributions(path: Sequence[int], levels: int) -> str:
    """Level indices as contributions, e.g. ``0.67 1 1``."""
    return " ".join(f"{k / (levels - 1):.2g}" for k in path)


def _fmt(stat: tuple[float, float, float] | None, spec: str) -> str:
    if stat is None:
        return "-"
    mean, low, high = stat
    return f"{mean:{spec}} [{low:{spec}}, {high:{spec}}]"


COLUMNS = (
    ("n", lambda r: str(r["n_agents"])),
    ("equilibrium path", lambda r: _contributions(r["equilibrium_path"], r["levels"])),
    ("equilibrium welfare / efficient", lambda r: f"{r['equilibrium_share']:.3f}"),
    ("learner", lambda r: r["learner"]),
    ("reached", lambda r: f"{r['reached']}/{r['seeds']}"),
    ("episodes to reach, mean [95% CI]", lambda r: _fmt(r["episodes_to_reach"], ",.0f")),
    ("welfare / efficient, mean [95% CI]", lambda r: _fmt(r["welfare_share"], ".3f")),
    ("episodes per seed", lambda r: f"{r['budget']:,}"),
)

NOTE = (
    "Independent learners, one per agent, on the scalar game (K levels, full observation). "
    "Reached: seeds whose greedy path equals the exact equilibrium path at the last checkpoint. "
    "Episodes to reach: training episodes until the greedy path reached it and stayed. "
    "Welfare: sum of payoffs on the final greedy path over the efficient profile's. "
    "Intervals: 95% percentile bootstrap over seeds. See docs/learners.md."
)


def _by_mechanism(rows: Sequence[Mapping[str, Any]]) -> dict[str, list[Mapping[str, Any]]]:
    groups: dict[str, list[Mapping[str, Any]]] = {}
    for row in rows:
        groups.setdefault(row["mechanism"], []).append(row)
    return groups


def render_markdown(rows: Sequence[Mapping[str, Any]]) -> str:
    """The board as Markdown: one table per mechanism."""
    lines = ["# Learner board: the scalar game", "", NOTE, "", "![learning curves](curves.png)"]
    for mechanism, group in _by_mechanism(rows).items():
        lines += ["", f"## {MECHANISM_LABELS.get(mechanism, mechanism)} ({group[0]['concept']})",
                  "", "| " + " | ".join(title for title, _ in COLUMNS) + " |",
                  "|" + "---|" * len(COLUMNS)]
        lines += ["| " + " | ".join(cell(row) for _, cell in COLUMNS) + " |" for row in group]
    return "\n".join(lines) + "\n"


def render_html(rows: Sequence[Mapping[str, Any]]) -> str:
    """The board as a standalone HTML page."""
    parts = [
        "<!DOCTYPE html>",
        '<html><head><meta charset="utf-8"><title>spgg_env learner board</title>',
        "<style>body{font-family:sans-serif;max-width:70em;margin:auto}"
        "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:2px 6px}</style>",
        "</head><body><h1>Learner board: the scalar game</h1>",
        f"<p>{html.escape(NOTE)}</p>",
        '<img src="curves.png" alt="learning curves" style="max-width:100%">',
    ]
    for mechanism, group in _by_mechanism(rows).items():
        title = f"{MECHANISM_LABELS.get(mechanism, mechanism)} ({group[0]['concept']})"
        parts.append(f"<h2>{html.escape(title)}</h2><table><tr>")
        parts += [f"<th>{html.escape(t)}</th>" for t, _ in COLUMNS]
        parts.append("</tr>")
        for row in group:
            cells = "".join(f"<td>{html.escape(cell(row))}</td>" for _, cell in COLUMNS)
            parts.append(f"<tr>{cells}</tr>")
        parts.append("</table>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def colour(learner: str) -> str:
    """The learner's fixed plot colour (built-in, or picked by a stable hash of its name)."""
    if learner in COLOURS:
        return COLOURS[learner]
    digest = int(hashlib.sha256(learner.encode()).hexdigest(), 16)
    return OTHER_COLOURS[digest % len(OTHER_COLOURS)]


def plot_curves(rows: Sequence[Mapping[str, Any]], path: Path) -> None:
    """Share of seeds on the equilibrium path against training episodes, one panel per cell."""
    from matplotlib.figure import Figure

    mechanisms = list(_by_mechanism(rows))
    agents = sorted({r["n_agents"] for r in rows})
    fig = Figure(figsize=(4.2 * len(agents), 3.2 * len(mechanisms)))
    axes = fig.subplots(len(mechanisms), len(agents), squeeze=False, sharey=True)
    for row in rows:
        ax = axes[mechanisms.index(row["mechanism"]), agents.index(row["n_agents"])]
        x, y = zip(*row["curve"], strict=True)
        ax.plot(x, y, color=colour(row["learner"]), label=row["learner"], lw=1.5, alpha=0.85)
    for i, mechanism in enumerate(mechanisms):
        for j, n in enumerate(agents):
            ax = axes[i, j]
            ax.set_title(f"{MECHANISM_LABELS.get(mechanism, mechanism)}, n = {n}", fontsize=10)
            ax.set_ylim(-0.05, 1.05)
            ax.grid(alpha=0.3)
            if i == len(mechanisms) - 1:
                ax.set_xlabel("training episodes")
            if j == 0:
                ax.set_ylabel("share of seeds on the\nequilibrium path (greedy)")
    handles = {}
    for ax in axes.flat:
        for line in ax.get_lines():
            handles.setdefault(line.get_label(), line)
    fig.legend(handles.values(), handles.keys(), loc="upper center", ncol=len(handles),
               frameon=False)
    fig.tight_layout(rect=(0, 0, 1, 0.95))
    fig.savefig(path, dpi=100, metadata={"Software": None})


def load_results(paths: Sequence[str | Path]) -> list[dict[str, Any]]:
    """Result files named directly or found in the given folders and their subfolders
    (``*.cost.json`` skipped).

    One learner's cells may come from several files (a board run in sittings, e.g.
    ``--agents 3`` then ``--agents 5 10`` into a subfolder); each row keeps its own file's
    budget and provenance.

    Raises:
        ValueError: If a file is not a learner-board result, or two files hold the same cell
            (learner, mechanism, n).
    """
    files: list[Path] = []
    for path in map(Path, paths):
        files += sorted(path.rglob("*.json")) if path.is_dir() else [path]
    results, cells = [], {}
    for file in files:
        if file.name.endswith(".cost.json"):
            continue
        data = json.loads(file.read_text(encoding="utf-8"))
        if data.get("board") != "learners":
            raise ValueError(f"{file} is not a learner-board result file")
        for cell in data["cells"]:
            key = (data["learner"], cell["mechanism"], cell["n_agents"])
            if key in cells:
                raise ValueError(f"two result files for learner {key[0]!r}, {key[1]} n={key[2]}: "
                                 f"{cells[key]} and {file}; keep one")
            cells[key] = file
        results.append(data)
    if not results:
        raise ValueError(f"no learner-board result files in {[str(p) for p in paths]}")
    return results


def write_board(results: Sequence[Mapping[str, Any]], out_dir: str | Path) -> list[Path]:
    """Write ``learners.md``, ``learners.html`` and ``curves.png`` into ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rows = board_rows(results)
    paths = [out / "learners.md", out / "learners.html", out / "curves.png"]
    paths[0].write_text(render_markdown(rows), encoding="utf-8")
    paths[1].write_text(render_html(rows), encoding="utf-8")
    plot_curves(rows, paths[2])
    return paths


# ------------------------------------------------------------------------------ command
def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add ``spgg learners run`` and ``spgg learners board``."""
    from spgg_env.cli import SUBCOMMANDS

    parser = subparsers.add_parser("learners", help=SUBCOMMANDS["learners"][1],
                                   description="Rank learners on the scalar game by whether and "
                                   "how fast they find its exact equilibrium (docs/learners.md).")
    commands = parser.add_subparsers(dest="learners_command", required=True)
    run = commands.add_parser("run", help="run the standard protocol for learners")
    run.add_argument("--game", default="scalar", choices=["scalar"],
                     help="the game the board ranks on (only the scalar game today)")
    run.add_argument("--learner", action="append", required=True,
                     help=f"built-in ({', '.join(COLOURS)}) or module:attr; repeatable")
    run.add_argument("--name", default="", help="board name (one --learner only)")
    run.add_argument("--mechanisms", nargs="+", default=list(BoardConfig.mechanisms),
                     help="reward mechanisms, one cell each (default: all three)")
    run.add_argument("--agents", nargs="+", type=int, default=list(BoardConfig.agents),
                     help="group sizes, one cell each")
    run.add_argument("--levels", type=int, default=BoardConfig.levels,
                     help="contribution levels K of the scalar game")
    run.add_argument("--seeds", type=int, default=len(BoardConfig.seeds), help="seeds 0..N-1")
    run.add_argument("--episodes", type=int, default=BoardConfig.episodes,
                     help="training episodes per seed and cell")
    run.add_argument("--copies", type=int, default=BoardConfig.copies,
                     help="env copies stepped together (episodes per learner call)")
    run.add_argument("--checkpoints", type=int, default=BoardConfig.checkpoints,
                     help="greedy-path checkpoints per run (the learning curve's points)")
    run.add_argument("--options", type=json.loads, default={},
                     help='learner factory keyword arguments as JSON, e.g. \'{"options": {}}\'')
    run.add_argument("--threads", type=int, default=1, help="torch threads (shared CPU: 1)")
    run.add_argument("--out", type=Path, default=Path("leaderboard/learners/results"),
                     help="folder for the result files (one per learner)")
    board = commands.add_parser("board", help="write the board from result files")
    board.add_argument("results", nargs="+", type=Path, help="result files or folders")
    board.add_argument("--out", type=Path, default=Path("leaderboard/learners"),
                     help="folder for learners.md, learners.html and curves.png")
    parser.set_defaults(func=main)
    return parser


def main(args: argparse.Namespace) -> int:
    """Run ``spgg learners run`` or ``spgg learners board``."""
    if args.learners_command == "board":
        for path in write_board(load_results(args.results), args.out):
            print(f"wrote {path}")
        return 0
    import torch

    torch.set_num_threads(args.threads)
    if args.name and len(args.learner) > 1:
        raise SystemExit("--name needs exactly one --learner")
    for spec in args.learner:
        config = BoardConfig(
            learner=spec, name=args.name, game=args.game, mechanisms=tuple(args.mechanisms),
            agents=tuple(args.agents), levels=args.levels, seeds=tuple(range(args.seeds)),
            episodes=args.episodes, copies=args.copies, checkpoints=args.checkpoints,
            options=args.options,
        )  # fmt: skip
        path, _ = run_board(config, args.out)
        print(f"wrote {path}")
    return 0
