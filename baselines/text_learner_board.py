"""The text-game learner board: what a fixed budget of training episodes buys a text learner.

**The standard protocol** (``spgg text-learners run``). The game is :data:`GAME`: easy one-step
``arith`` (``difficulty=easy``, ``max_steps=1``, the setting of ``examples/train_ppo_arith.py``),
3 agents, MAC-SPGG with its default parameters, partial observation, the compact prompt, effort
counted in the acting model's tokens (32 tokens = effort 1). For each seed a fresh learner
(:class:`TextBoardConfig` ``learner``) controls all three agents and trains for ``episodes``
episodes of ``arith``'s ``train`` split, ``episodes_per_update`` per call of ``learn``:

* update ``u`` plays the problems ``draw_problems(seed, u, K, n_train)``
  (:func:`spgg_env.agents.learning.draw_problems`) as episodes ``u*K .. u*K+K-1`` through the
  learner's own :class:`~spgg_env.agents.episodes.EpisodeRunner` (``learner.runner.play``: the
  same problems and sampling seeds for every learner of a seed), then calls
  ``learner.learn(episodes)``;
* **held-out evaluation**, before training and at ``checkpoints`` evenly spaced updates (the last
  one at the end): the first ``eval_size`` problems of ``arith``'s ``test`` split (no question in
  common with ``train``), played once each by the learner's greedy policy
  (``act(..., greedy=True)``, :class:`~spgg_env.agents.learning.Greedy`) on the learner's engine,
  episodes reset and sampled from the root ``derive_seed(seed, LEARNER, "eval")``. Recorded:

  - **task score**: mean over the problems of the group's score (the last agent's answer
    graded by the task: 1 right, 0 wrong);
  - **reward**: mean over problems and agents of the mechanism's reward;
  - per problem the group score (for paired comparisons), the parse-error rate and the mean
    tokens of a contribution.

The board reports per learner, over seeds, the held-out task score and reward **before** (the
untrained policy: the no-learning reference) and **after** the budget, and the change
``after - before`` (paired per seed), each as a mean with a 95 % percentile bootstrap interval
over seeds (:func:`spgg_env.bootstrap.bootstrap_ci`, 2,000 resamples, seeded), and
the CPU seconds a seed took (``time.process_time`` of the run: model load, training and
evaluations). With three seeds an interval is a coarse summary of three numbers; the per-seed
values are in the result files.

**Learners.** Built in: ``ppo`` (:class:`spgg_env.agents.ppo.PPOLearner`, token-level PPO on
one LoRA adapter per agent) and ``genparam`` (:class:`spgg_env.agents.genparam_learner.
GenParamLearner`, the paper's policy over generation parameters of the frozen LLM), each with
its own defaults except the board's settings (model, ``max_new_tokens``, episodes per update,
batch size, seed, threads) and ``options`` (config fields, JSON). Any other learner is given as
``module:attr``, a factory ``make(config: TextBoardConfig, seed: int) -> learner`` where the
learner has ``act(agent, observations, *, greedy=False)`` (requests or texts), ``learn(episodes)``
and ``runner``, an :class:`~spgg_env.agents.episodes.EpisodeRunner` of ``config.game`` whose
policy is the learner (its engine's backends also serve the greedy evaluation).

**Files and resume.** Each finished seed is written atomically to
``<out>/<learner>/seed-<k>.json``: the protocol, the learner's config, every evaluation and every
update's training metrics, the CPU and wall seconds, the data hashes (the game's fingerprint,
the train and test split hashes, the hash of the evaluated problems' uids) and
:func:`spgg_env.provenance.environment` (versions, git commit, command). A rerun of the same
command skips every seed whose file exists (and refuses one written under another protocol), so
a killed run resumes at the seed it was in. ``spgg text-learners board RESULTS --out DIR``
recomputes every figure from those files and writes ``text_learners.md`` and ``curves.png``.
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import json
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np

from spgg_env.agents.checkpoint import write_text
from spgg_env.agents.learning import option
from spgg_env.baselines import learner_board as scalar_board
from spgg_env.baselines.leaderboard import mean_ci
from spgg_env.spec import GameSpec

#: The board's game: one-step easy arith, 3 agents, MAC-SPGG, partial observation.
GAME = GameSpec(task="arith", task_options={"difficulty": "easy", "max_steps": 1},
                split="train", n_agents=3, observation="partial", mechanism="mac-spgg",
                prompt_style="compact", max_tokens=32, token_counting="model")
#: Built-in learners, in board order, with their fixed plot colours and labels.
COLOURS = {"ppo": "#d62728", "genparam": "#1f77b4"}
LABELS = {"ppo": "PPO (token-level, LoRA per agent)",
          "genparam": "genparam (PPO over generation parameters)"}
#: ``format`` of a result file.
FORMAT = "spgg-text-learners/1"


@dataclass(frozen=True)
class TextBoardConfig:
    """One run of the standard protocol for one learner (each field's text is its help on the
    command line, where ``seeds`` is a count: seeds 0..N-1)."""

    learner: str = option("ppo", "'ppo', 'genparam' or 'module:attr' (a learner factory)")
    name: str = option("", "the learner's name on the board (empty: the learner, or attr)")
    game: GameSpec = option(GAME, "the game trained on, its split the training split")
    seeds: tuple[int, ...] = option((0, 1, 2), "one fresh learner per seed")
    episodes: int = option(96, "training episodes per seed (the budget)")
    episodes_per_update: int = option(8, "training episodes per learn call")
    checkpoints: int = option(4, "held-out evaluations after training starts, evenly spaced "
                                 "(one more before)")
    eval_split: str = option("test", "the held-out split")
    eval_size: int = option(32, "held-out problems: the first this many of the held-out split")
    model: str = option("embedded", "transformers folder or hub id; 'embedded' is "
                                    "SmolLM2-135M-Instruct")
    max_new_tokens: int = option(32, "generation cap of every contribution")
    batch_size: int = option(32, "generations decoded together")
    threads: int | None = option(1, "torch CPU threads (1 on a shared machine)")
    options: Mapping[str, Any] = option(dict, "config fields of the built-in learner, or "
                                              "keyword arguments of a factory")

    def __post_init__(self) -> None:
        if not self.name:
            object.__setattr__(self, "name", self.learner.rpartition(":")[2])
        object.__setattr__(self, "game", GameSpec.from_dict(self.game))
        object.__setattr__(self, "seeds", tuple(int(s) for s in self.seeds))
        for label in ("episodes", "episodes_per_update", "checkpoints", "eval_size",
                      "max_new_tokens", "batch_size"):
            value = getattr(self, label)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{label} must be an integer >= 1, got {value!r}")
        if self.episodes % self.episodes_per_update:
            raise ValueError(f"episodes ({self.episodes}) must be a multiple of "
                             f"episodes_per_update ({self.episodes_per_update})")
        if self.checkpoints > self.updates:
            raise ValueError(f"{self.checkpoints} checkpoints need at least as many updates, "
                             f"got {self.updates}")
        if not self.seeds or len(set(self.seeds)) != len(self.seeds):
            raise ValueError(f"need distinct seeds, got {self.seeds!r}")
        self.game.replace(split=self.eval_split)  # names an unknown split

    @property
    def updates(self) -> int:
        """Calls of ``learn`` per seed."""
        return self.episodes // self.episodes_per_update

    @property
    def marks(self) -> list[int]:
        """The updates after which the held-out set is evaluated (the last is the end)."""
        return [round(j * self.updates / self.checkpoints) for j in range(1, self.checkpoints + 1)]

    def protocol(self) -> dict[str, Any]:
        """What a seed's figures depend on besides the seed (JSON-ready; compared on resume)."""
        out = {f.name: getattr(self, f.name) for f in fields(self)
               if f.name not in ("seeds", "name")}
        return out | {"game": self.game.to_dict(), "options": dict(self.options)}


# ------------------------------------------------------------------------------ learners
def make_ppo(config: TextBoardConfig, seed: int) -> Any:
    """A :class:`~spgg_env.agents.ppo.PPOLearner` with the board's settings."""
    from spgg_env.agents.ppo import PPOConfig, PPOLearner

    return PPOLearner(PPOConfig(**_settings(config, seed), eval_split=config.eval_split,
                                eval_size=config.eval_size, max_new_tokens=config.max_new_tokens,
                                **config.options))


def make_genparam(config: TextBoardConfig, seed: int) -> Any:
    """A :class:`~spgg_env.agents.genparam_learner.GenParamLearner` with the board's settings
    (its ``max_new_tokens`` is one of its actions, in ``[16, game.max_tokens]``)."""
    from spgg_env.agents.genparam_learner import GenParamConfig, GenParamLearner

    if config.max_new_tokens != config.game.max_tokens:
        raise ValueError(f"genparam chooses max_new_tokens up to the game's max_tokens "
                         f"({config.game.max_tokens}); set max_new_tokens to match, got "
                         f"{config.max_new_tokens}")
    return GenParamLearner.from_config(GenParamConfig(**_settings(config, seed),
                                                      **config.options))


def _settings(config: TextBoardConfig, seed: int) -> dict[str, Any]:
    """The config fields both built-in learners take from the board (``out`` is never written:
    the board drives ``act`` and ``learn`` itself)."""
    return {"game": config.game, "model": config.model, "episodes": config.episodes_per_update,
            "batch_size": config.batch_size, "threads": config.threads, "seed": seed,
            "dtype": "float32", "out": os.devnull}


BUILT_IN: dict[str, Callable[[TextBoardConfig, int], Any]] = {
    "ppo": make_ppo, "genparam": make_genparam}


def factory(config: TextBoardConfig) -> Callable[[TextBoardConfig, int], Any]:
    """The learner factory ``make(config, seed)`` for a built-in name or ``module:attr``."""
    if config.learner in BUILT_IN:
        return BUILT_IN[config.learner]
    if ":" not in config.learner:
        raise ValueError(f"unknown learner {config.learner!r}: use one of {list(BUILT_IN)} or "
                         "'module:attr'")
    from spgg_env.learner import load

    make = load(config.learner)
    return functools.partial(make, **config.options) if config.options else make


def learner_config(learner: Any) -> dict[str, Any] | None:
    """The learner's own config as JSON (``cfg`` or ``config`` with ``to_dict``), if it has one."""
    for attr in ("cfg", "config"):
        value = getattr(learner, attr, None)
        if hasattr(value, "to_dict"):
            return value.to_dict()
    return None


# ------------------------------------------------------------------------------ one seed
def evaluate(learner: Any, config: TextBoardConfig, seed: int, update: int) -> dict[str, Any]:
    """Greedy play of the held-out problems on the learner's backends (decoded
    ``batch_size`` at a time, every problem admitted at once); the checkpoint's figures."""
    from spgg_env.agents.engine import Engine
    from spgg_env.agents.episodes import EpisodeRunner
    from spgg_env.agents.learning import Greedy, episode_metrics
    from spgg_env.seeding import LEARNER, derive_seed

    trained = learner.runner.engine  # its backends; the whole held-out set in one batch
    engine = Engine(trained.backends, max_batch=config.batch_size, schedule=trained.schedule,
                    max_programs=max(config.eval_size, trained.max_programs), seed=trained.seed)
    runner = EpisodeRunner(config.game.replace(split=config.eval_split), Greedy(learner), engine,
                           task=learner.runner.task)
    items = [(i, {"problem_index": i}) for i in range(min(config.eval_size, runner.n_problems))]
    episodes = runner.play(items, seed=derive_seed(seed, LEARNER, "eval"))
    metrics = episode_metrics(episodes)
    tokens = [s.info.get("tokens", np.nan) for e in episodes if e.finished for s in e.steps]
    return {
        "update": update,
        "episodes": update * config.episodes_per_update,
        "task_score": metrics.get("task_score"),
        "reward": metrics.get("reward"),
        "parse_error_rate": metrics.get("parse_error_rate"),
        "tokens": float(np.mean(tokens)) if tokens else None,
        "failed_episodes": int(metrics["failed_episodes"]),
        "problem_scores": [e.group_score for e in episodes],
    }


def train_update(learner: Any, config: TextBoardConfig, seed: int, update: int) -> dict[str, Any]:
    """Play update ``update``'s training episodes and learn from them; the update's row."""
    from spgg_env.agents.learning import draw_problems, episode_metrics

    k = config.episodes_per_update
    problems = draw_problems(seed, update, k, learner.runner.n_problems)
    items = [(update * k + e, {"problem_index": p}) for e, p in enumerate(problems)]
    episodes = learner.runner.play(items, seed=seed)
    played = episode_metrics(episodes)
    learned = learner.learn(episodes) or {}
    return {"update": update + 1, "reward": played.get("reward"),
            "task_score": played.get("task_score"), "problems": problems,
            "learner_metrics": {k: _finite(v) for k, v in learned.items()}}


def _finite(value: Any) -> Any:
    """A metric as JSON allows it: a non-finite float becomes ``None``."""
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


def run_seed(config: TextBoardConfig, seed: int, *, log: Callable[[str], None] = print
             ) -> dict[str, Any]:
    """Train a fresh learner for the budget, evaluating at the checkpoints; the seed's result."""
    import torch

    from spgg_env.provenance import environment

    provenance = environment()  # the code as the run starts
    if config.threads:
        torch.set_num_threads(config.threads)
    cpu, wall = time.process_time(), time.perf_counter()
    learner = factory(config)(config, seed)
    task = learner.runner.task
    spent = {"load": time.process_time() - cpu, "train": 0.0, "eval": 0.0}

    def timed(phase: str, work: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        start = time.process_time()
        out = work()
        spent[phase] += time.process_time() - start
        return out

    curve = [timed("eval", lambda: evaluate(learner, config, seed, 0))]
    log(_progress(config, seed, curve[-1]))
    train = []
    for update in range(config.updates):
        train.append(timed("train", lambda u=update: train_update(learner, config, seed, u)))
        log(f"[{config.name} seed {seed}] update {update + 1}/{config.updates}: training "
            f"reward {train[-1]['reward']}, CPU s so far {time.process_time() - cpu:.0f}")
        if update + 1 in config.marks:
            curve.append(timed("eval", lambda u=update: evaluate(learner, config, seed, u + 1)))
            log(_progress(config, seed, curve[-1]))
    uids = [p.uid for p in task.problems(config.eval_split)[: config.eval_size]]
    return {
        "board": "text-learners",
        "format": FORMAT,
        "learner": config.name,
        "seed": seed,
        "protocol": config.protocol(),
        "learner_config": learner_config(learner),
        "curve": curve,
        "train": train,
        "cost": {"cpu_seconds": round(time.process_time() - cpu, 1),
                 "wall_seconds": round(time.perf_counter() - wall, 1),
                 "threads": config.threads}
                | {f"{phase}_cpu_seconds": round(s, 1) for phase, s in spent.items()},
        "data": {
            "game_fingerprint": config.game.fingerprint(),
            "train_split_sha256": task.split_hash(config.game.split),
            "eval_split_sha256": task.split_hash(config.eval_split),
            "eval_uids_sha256": hashlib.sha256("\n".join(uids).encode()).hexdigest(),
        },
        "provenance": provenance,
    }


def _progress(config: TextBoardConfig, seed: int, point: Mapping[str, Any]) -> str:
    return (f"[{config.name} seed {seed}] update {point['update']}/{config.updates}: held-out "
            f"task score {point['task_score']}, reward {point['reward']}")


def seed_file(out_dir: str | Path, name: str, seed: int) -> Path:
    """Where seed ``seed`` of learner ``name`` is written."""
    return Path(out_dir) / name / f"seed-{seed}.json"


def run_board(config: TextBoardConfig, out_dir: str | Path, *,
              log: Callable[[str], None] = print) -> list[Path]:
    """Run every seed that has no result file yet; return all the seeds' files.

    Raises:
        ValueError: If an existing seed file was written under another protocol (naming the
            differing fields).
    """
    paths = []
    for seed in config.seeds:
        path = seed_file(out_dir, config.name, seed)
        if path.exists():
            saved = json.loads(path.read_text(encoding="utf-8"))["protocol"]
            mine = json.loads(json.dumps(config.protocol()))
            differing = sorted(k for k in mine.keys() | saved.keys()
                               if mine.get(k) != saved.get(k))
            if differing:
                raise ValueError(f"{path} was run under another protocol (differs in "
                                 f"{differing}); use another --out or remove it")
            log(f"[{config.name} seed {seed}] done already: {path}")
        else:
            write_text(path, json.dumps(run_seed(config, seed, log=log), indent=1,
                                           sort_keys=True) + "\n")
            log(f"[{config.name} seed {seed}] wrote {path}")
        paths.append(path)
    return paths


# ------------------------------------------------------------------------------ the board
def load_results(paths: Sequence[str | Path]) -> list[dict[str, Any]]:
    """Seed files named directly or found (recursively) in the given folders.

    Raises:
        ValueError: If a path is missing, a file is not a text-board seed result, a (learner,
            seed) appears twice, or none is found.
    """
    files: list[Path] = []
    for path in map(Path, paths):
        if not path.exists():
            raise ValueError(f"no result file or folder {str(path)!r}")
        files += sorted(path.rglob("seed-*.json")) if path.is_dir() else [path]
    results, seen = [], set()
    for file in files:
        data = json.loads(file.read_text(encoding="utf-8"))
        if data.get("board") != "text-learners":
            raise ValueError(f"{file} is not a text-learner board result")
        key = (data["learner"], data["seed"])
        if key in seen:
            raise ValueError(f"two results for learner {key[0]!r}, seed {key[1]} ({file})")
        seen.add(key)
        results.append(data)
    if not results:
        raise ValueError(f"no text-learner board results in {[str(p) for p in paths]}")
    return results


#: The protocol fields every row of one board must share (the game and the held-out set).
SHARED = ("game", "eval_split", "eval_size", "model", "max_new_tokens")


def board_rows(results: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """One row per learner, every figure recomputed from the seeds' checkpoints.

    Raises:
        ValueError: If the results mix games or held-out sets, or one learner's seeds were run
            under different protocols.
    """
    by_learner: dict[str, list[Mapping[str, Any]]] = {}
    for result in results:
        by_learner.setdefault(result["learner"], []).append(result)
    shared = {json.dumps({k: r["protocol"][k] for k in SHARED}, sort_keys=True) for r in results}
    if len(shared) > 1:
        raise ValueError(f"the results were run on different games or held-out sets ({SHARED}); "
                         "one board ranks one protocol")
    rows = []
    for name, seeds in by_learner.items():
        seeds = sorted(seeds, key=lambda r: r["seed"])
        if len({json.dumps(r["protocol"], sort_keys=True) for r in seeds}) > 1:
            raise ValueError(f"learner {name!r}'s seeds were run under different protocols")
        protocol = seeds[0]["protocol"]
        row: dict[str, Any] = {"learner": name, "seeds": [r["seed"] for r in seeds],
                               "budget": protocol["episodes"],
                               "episodes_per_update": protocol["episodes_per_update"],
                               "cpu_seconds": mean_ci([r["cost"]["cpu_seconds"] for r in seeds]),
                               "curves": [r["curve"] for r in seeds]}
        for key in ("task_score", "reward"):
            before = [r["curve"][0][key] for r in seeds]
            after = [r["curve"][-1][key] for r in seeds]
            row[f"{key}_before"] = mean_ci(before)
            row[f"{key}_after"] = mean_ci(after)
            row[f"{key}_change"] = mean_ci([a - b for a, b in zip(after, before, strict=True)])
        rows.append(row)
    rows.sort(key=lambda r: (_order(r["learner"]), r["learner"]))
    return rows


def _order(learner: str) -> int:
    """Board order: the built-in learners first."""
    return list(COLOURS).index(learner) if learner in COLOURS else len(COLOURS)


def _fmt(stat: tuple[float, float, float], spec: str = ".3f") -> str:
    mean, low, high = stat
    return f"{mean:{spec}} [{low:{spec}}, {high:{spec}}]"


COLUMNS = (
    ("learner", lambda r: r["learner"]),
    ("seeds", lambda r: str(len(r["seeds"]))),
    ("training episodes per seed (per update)",
     lambda r: f"{r['budget']:,} ({r['episodes_per_update']})"),
    ("task score before", lambda r: _fmt(r["task_score_before"])),
    ("task score after", lambda r: _fmt(r["task_score_after"])),
    ("task score change", lambda r: _fmt(r["task_score_change"], "+.3f")),
    ("reward before", lambda r: _fmt(r["reward_before"])),
    ("reward after", lambda r: _fmt(r["reward_after"])),
    ("reward change", lambda r: _fmt(r["reward_change"], "+.3f")),
    ("CPU s per seed", lambda r: _fmt(r["cpu_seconds"], ",.0f")),
)


def render_markdown(rows: Sequence[Mapping[str, Any]], results: Sequence[Mapping[str, Any]]
                    ) -> str:
    """The board as Markdown: the protocol, the table, the curves, the provenance."""
    protocol = results[0]["protocol"]
    game = GameSpec.from_dict(protocol["game"])
    options = ", ".join(f"{k}={v}" for k, v in game.task_options.items())
    commits = sorted({str(r["provenance"]["git"]["commit"])[:10] for r in results})
    lines = [
        "# Learner board: the text game",
        "",
        f"Protocol (docs/learners.md, `spgg text-learners`): `{game.task}` ({options}), "
        f"{game.n_agents} agents, {game.mechanism} ({_params(game)}), {game.observation} "
        f"observation, {game.prompt_style} prompt, effort: {game.max_tokens} "
        f"{game.token_counting} tokens = 1. Model: `{protocol['model']}`, at most "
        f"{protocol['max_new_tokens']} new tokens per contribution, "
        f"{protocol['eval_size']} held-out problems (the first of `{game.task}` "
        f"`{protocol['eval_split']}`), greedy policy of each learner.",
        "",
        "Task score: the group's held-out score (share of problems whose final answer is "
        "right). Reward: mean mechanism reward over agents and problems. Before: the untrained "
        "policy (the no-learning reference); after: at the end of the budget; change: after - "
        "before, paired per seed. Each cell: mean over seeds [95% percentile bootstrap "
        "interval over seeds, 2,000 resamples]; with 3 seeds the interval is a coarse summary "
        "of three numbers. CPU s: process CPU seconds per seed (model load, training, "
        "evaluations).",
        "",
        "| " + " | ".join(title for title, _ in COLUMNS) + " |",
        "|" + "---|" * len(COLUMNS),
    ]
    lines += ["| " + " | ".join(cell(row) for _, cell in COLUMNS) + " |" for row in rows]
    lines += ["", "Per seed, held-out before -> after:", "",
              "| learner | seed | task score | reward | tokens per contribution | parse errors "
              "| CPU s: load / training / evaluation |", "|" + "---|" * 7]
    for result in sorted(results, key=lambda r: (_order(r["learner"]), r["seed"])):
        first, last, cost = result["curve"][0], result["curve"][-1], result["cost"]
        lines.append(
            f"| {result['learner']} | {result['seed']} | "
            + " | ".join(f"{_num(first.get(k), spec)} -> {_num(last.get(k), spec)}"
                         for k, spec in (("task_score", ".3f"), ("reward", ".3f"),
                                         ("tokens", ".1f"), ("parse_error_rate", ".2f")))
            + " | " + " / ".join(f"{cost.get(f'{p}_cpu_seconds', float('nan')):,.0f}"
                                 for p in ("load", "train", "eval")) + " |")
    lines += ["", "![held-out learning curves](curves.png)", "",
              "Curves: thick lines the mean over seeds, thin lines each seed.", "",
              "Learner settings:"]
    for row in rows:
        first = next(r for r in results if r["learner"] == row["learner"])
        lines.append(f"* `{row['learner']}`: {_learner_settings(first)}")
    platforms = sorted({str(r["provenance"].get("platform")) for r in results})
    threads = sorted({str(r["cost"].get("threads")) for r in results})
    lines += ["", f"Code: commit(s) {', '.join(commits)}. Machine: {'; '.join(platforms)}, "
              f"{'/'.join(threads)} torch thread(s). Per-seed configs, versions and data hashes "
              "are in the result files."]
    return "\n".join(lines) + "\n"


def _num(value: float | None, spec: str) -> str:
    return "-" if value is None else f"{value:{spec}}"


def _params(game: GameSpec) -> str:
    return ", ".join(f"{k}={v:g}" for k, v in game.mechanism_params.items())


#: Learner config fields shown on the board (the others are in the result files).
SHOWN = ("episodes", "minibatch_size", "epochs", "lr", "temperature", "beta", "lora_r",
         "entropy_coef", "target_kl", "clip", "threads", "dtype")


def _learner_settings(result: Mapping[str, Any]) -> str:
    config = result.get("learner_config") or {}
    shown = [f"{k}={config[k]}" for k in SHOWN if k in config]
    return ", ".join(shown) or "(no config recorded)"


def colour(learner: str) -> str:
    """The learner's fixed plot colour (a built-in's, else the scalar board's stable pick)."""
    return COLOURS.get(learner) or scalar_board.colour(learner)


def plot_curves(rows: Sequence[Mapping[str, Any]], path: Path) -> None:
    """Held-out task score and reward against training episodes: each seed thin, the mean
    over seeds thick."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(11, 4.2))
    axes = fig.subplots(1, 2)
    titles = ("held-out task score (greedy policy)", "held-out mean reward (greedy policy)")
    for ax, key, title in zip(axes, ("task_score", "reward"), titles, strict=True):
        for row in rows:
            tint = colour(row["learner"])
            for curve in row["curves"]:
                ax.plot([p["episodes"] for p in curve], [p[key] for p in curve], color=tint,
                        lw=0.8, alpha=0.35)
            x = [p["episodes"] for p in row["curves"][0]]
            mean = np.mean([[p[key] for p in curve] for curve in row["curves"]], axis=0)
            n = len(row["seeds"])
            label = f"{LABELS.get(row['learner'], row['learner'])}: mean of {n} seed{'s' * (n > 1)}"
            ax.plot(x, mean, color=tint, lw=2.2, marker="o", label=label)
        ax.set_title(title, fontsize=12)
        ax.set_xlabel("training episodes", fontsize=11)
        ax.grid(alpha=0.3)
        ax.tick_params(labelsize=10)
    axes[0].set_ylim(-0.03, 1.03)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="upper center", ncol=len(labels), fontsize=11,
               frameon=False)
    fig.tight_layout(rect=(0, 0, 1, 0.9))
    fig.savefig(path, dpi=100, metadata={"Software": None})


def write_board(results: Sequence[Mapping[str, Any]], out_dir: str | Path) -> list[Path]:
    """Write ``text_learners.md`` and ``curves.png`` into ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rows = board_rows(results)
    paths = [out / "text_learners.md", out / "curves.png"]
    paths[0].write_text(render_markdown(rows, results), encoding="utf-8")
    plot_curves(rows, paths[1])
    return paths


# ------------------------------------------------------------------------------ command
#: Config fields that are flags of ``spgg text-learners run`` as they are.
FLAGS = ("name", "episodes", "episodes_per_update", "checkpoints", "eval_split", "eval_size",
         "model", "max_new_tokens", "batch_size", "threads")


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add ``spgg text-learners run`` and ``spgg text-learners board``."""
    from spgg_env.cli import SUBCOMMANDS

    parser = subparsers.add_parser(
        "text-learners", help=SUBCOMMANDS["text-learners"][1],
        description="Rank text-game learners by their held-out task score and reward after a "
                    "fixed budget of training episodes on easy arith (docs/learners.md).")
    commands = parser.add_subparsers(dest="text_learners_command", required=True)
    run = commands.add_parser("run", help="run the standard protocol for learners")
    run.add_argument("--learner", action="append", required=True,
                     help=f"built-in ({', '.join(BUILT_IN)}) or module:attr; repeatable")
    run.add_argument("--seeds", type=int, default=3, help="seeds 0..N-1 (default: 3)")
    for f in fields(TextBoardConfig):
        if f.name in FLAGS:
            run.add_argument("--" + f.name.replace("_", "-"), default=f.default,
                             type=int if f.type.startswith("int") else str,
                             help=f"{f.metadata['help']} (default: {f.default})")
    run.add_argument("--options", type=json.loads, default={},
                     help='learner config fields as JSON, e.g. \'{"lr": 0.0001}\'')
    run.add_argument("--out", type=Path, default=Path("leaderboard/learners/text/results"),
                     help="folder for the result files (one folder per learner)")
    board = commands.add_parser("board", help="write the board from result files")
    board.add_argument("results", nargs="+", type=Path, help="result files or folders")
    board.add_argument("--out", type=Path, default=Path("leaderboard/learners/text"),
                       help="folder for text_learners.md and curves.png")
    parser.set_defaults(func=main)
    return parser


def main(args: argparse.Namespace) -> int:
    """Run ``spgg text-learners run`` or ``spgg text-learners board``."""
    from spgg_env.cli import usage_error

    prog = f"spgg text-learners {args.text_learners_command}"
    if args.text_learners_command == "board":
        try:
            results = load_results(args.results)
        except (OSError, ValueError) as error:
            return usage_error(prog, error)
        for path in write_board(results, args.out):
            print(f"wrote {path}")
        return 0
    if args.name and len(args.learner) > 1:
        return usage_error(prog, "--name needs exactly one --learner")
    try:
        configs = [TextBoardConfig(learner=spec, seeds=tuple(range(args.seeds)),
                                   options=args.options, **{k: getattr(args, k) for k in FLAGS})
                   for spec in args.learner]
        for config in configs:
            factory(config)
    except ValueError as error:
        return usage_error(prog, error)
    for config in configs:
        run_board(config, args.out)
    return 0
