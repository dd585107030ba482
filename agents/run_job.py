"""The main job, ``spgg run``: play episodes with an ensemble and write transcripts and a summary.

Example (offline, the embedded default ensemble; these are the defaults)::

    spgg run --task arith --task-option difficulty=easy --episodes 10 --observation both

writes into ``--out`` (locked while the run writes; two runs never share a folder):

* ``run_meta.json`` (first): the game spec of each observation mode, the command's settings,
  the ensemble config, its agents and backends (model, device, dtype), package versions, the
  git commit, the task's split hash and the prompt template hash;
* ``transcripts.jsonl``: one line per episode, appended as soon as the episode ends (see
  :meth:`spgg_env.agents.episodes.Episode.to_record`: each contribution with its extracted
  answer and score, the problem's reference answer, rewards, tokens, timings);
* ``summary.json`` (last): per observation mode, the group's task score, each agent's mean
  score, reward and reward components, tokens per episode (prompt, completion, total), failed
  generations, truncated prompts, wall time and episodes per minute; with
  ``--observation both``, ``tokens_per_episode`` compares partial (PO) and full (FO)
  observation on the same problems and seeds;
* ``tensorboard/<observation>/`` with ``--tensorboard``.

Episode e plays problem ``e mod n`` of the split; its seeds derive from ``(--seed, e)``
(:mod:`spgg_env.seeding`). ``--resume`` continues a run whose transcript is incomplete (episodes
already written are kept).
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import sys
import time
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from spgg_env import prompts, provenance
from spgg_env.agents.engine import SCHEDULES, Engine
from spgg_env.agents.ensemble import (
    DEFAULT_CONFIG,
    EnsembleConfig,
    build_ensemble,
    exemplar_turns,
)
from spgg_env.agents.episodes import EpisodeRunner
from spgg_env.spec import GameSpec, parse_key_values

TRANSCRIPTS = "transcripts.jsonl"
SUMMARY = "summary.json"
META = "run_meta.json"
LOCK = ".lock"
OBSERVATIONS = ("partial", "full")
#: The main job's game: effort counted in the model's own tokens, 128 of them being effort 1
#: (the default ensemble's ``max_new_tokens``).
RUN_DEFAULTS = {"max_tokens": 128, "token_counting": "model"}
#: Task options the main job uses unless ``--task-option`` sets them: ``arith`` problems of one
#: or two steps, the easiest the game has (the embedded 135M model still rarely commits to an
#: answer in the strict format; a larger model does: see the README's main job).
RUN_TASK_OPTIONS: dict[str, dict[str, Any]] = {"arith": {"difficulty": "easy"}}


# ------------------------------------------------------------------------------- CLI
def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the ``run`` command to the ``spgg`` CLI."""
    from spgg_env.cli import SUBCOMMANDS

    summary = SUBCOMMANDS["run"][1]
    p = subparsers.add_parser(
        "run", help=summary,
        description=f"The main job: {summary}. Without options: three embedded SmolLM2-135M "
                    "agents play 10 easy arith problems in partial, then in full observation.",
    )
    p.add_argument("--episodes", type=int, default=10,
                   help="episodes per observation mode (default: 10)")
    p.add_argument("--out", type=Path, default=None,
                   help="output folder (default: runs/<task>-<observation>-<time>)")
    p.add_argument("--config", default=None,
                   help=f"ensemble YAML/JSON (default: {DEFAULT_CONFIG.name}, 3x SmolLM2-135M)")
    p.add_argument("--model", default=None,
                   help="model of every transformers agent: hub id, folder or 'embedded'")
    p.add_argument("--device", default=None, help="auto, cpu, cuda (default: auto)")
    p.add_argument("--dtype", default=None, help="auto, float32, bfloat16 (default: auto)")
    p.add_argument("--max-new-tokens", type=int, default=None,
                   help="every agent's generation cap (default: the config's)")
    p.add_argument("--batch-size", type=int, default=8,
                   help="generations decoded together (default: 8)")
    p.add_argument("--schedule", default="continuous", choices=SCHEDULES,
                   help="continuous (keep the batch full) or lockstep (one position at a time)")
    p.add_argument("--seed", type=int, default=0, help="root seed of the run (default: 0)")
    p.add_argument("--threads", type=int, default=None,
                   help="torch CPU threads (default: torch's choice; 1 on a busy machine)")
    p.add_argument("--tensorboard", action="store_true", help="log to <out>/tensorboard")
    p.add_argument("--resume", action="store_true",
                   help="continue a run in --out: play its missing and failed episodes")
    p.add_argument("--ray", nargs="?", const="local", default=None, metavar="ADDRESS",
                   help="play on Ray workers: a cluster address (auto, ray://host:10001) or, "
                        "without one, a local cluster (needs the ray extra)")
    p.add_argument("--workers", type=int, default=2,
                   help="Ray workers, each with its own engine and backends (default: 2)")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    GameSpec.add_arguments(p, **RUN_DEFAULTS, observation="both")
    defaults = ", ".join(f"{task}: {' '.join(f'{k}={v}' for k, v in options.items())}"
                         for task, options in RUN_TASK_OPTIONS.items())
    for action in p._actions:
        if action.dest == "observation":  # "both" plays the same problems in PO, then FO
            action.help = ("partial (PO), full (FO), none, or both (PO then FO, same problems; "
                           "default: both)")
        elif action.dest == "task_options":
            action.help += f" (default {defaults})"
    p.set_defaults(func=main)
    return p


def main(args: argparse.Namespace) -> int:
    """Run the job from parsed arguments; print where the results are."""
    try:
        specs = specs_from_args(args)
        config = EnsembleConfig.load(args.config)  # a missing or bad config fails before loading
        if args.threads is not None:
            import torch

            torch.set_num_threads(args.threads)
        summary = run_job(
            specs, episodes=args.episodes, out=args.out, config=config, model=args.model,
            device=args.device, dtype=args.dtype, max_new_tokens=args.max_new_tokens,
            batch_size=args.batch_size, schedule=args.schedule, seed=args.seed,
            tensorboard=args.tensorboard, resume=args.resume, progress=not args.no_progress,
            ray=args.ray, workers=args.workers,
        )
    except (ValueError, OSError, RuntimeError, ImportError) as exc:  # a message, no traceback
        from spgg_env.cli import usage_error

        return usage_error("spgg run", exc)
    print(format_summary(summary))
    failed = sum(s["failed_episodes"] for s in summary["observations"].values())
    if failed:
        print(f"spgg run: {failed} episode(s) failed (a generation or the env failed); they are "
              f"kept out of the means: rerun with --resume --out {summary['out']} to retry them",
              file=sys.stderr)
        return 3
    return 0


def specs_from_args(args: argparse.Namespace) -> list[GameSpec]:
    """The game of each observation mode the command asks for (two with ``both``), with the
    task's :data:`RUN_TASK_OPTIONS` under the given ``--task-option`` values."""
    modes = list(OBSERVATIONS) if args.observation == "both" else [args.observation]
    options = {**RUN_TASK_OPTIONS.get(args.task, {}),
               **parse_key_values(args.task_options, "--task-option")}
    return [GameSpec.from_args(args, observation=mode, task_options=options) for mode in modes]


# ------------------------------------------------------------------------------- job
def run_job(
    specs: GameSpec | Iterable[GameSpec],
    *,
    episodes: int = 10,
    out: str | Path | None = None,
    config: EnsembleConfig | str | Path | Mapping[str, Any] | None = None,
    model: str | None = None,
    device: str | None = None,
    dtype: str | None = None,
    max_new_tokens: int | None = None,
    batch_size: int = 8,
    schedule: str = "continuous",
    seed: int = 0,
    tensorboard: bool = False,
    resume: bool = False,
    progress: bool = True,
    ray: str | None = None,
    workers: int = 2,
) -> dict[str, Any]:
    """Play ``episodes`` episodes of each game (one per observation mode) and write the folder.

    With ``ray`` (``"local"`` or a cluster address) the episodes are played on ``workers`` Ray
    actors (:mod:`spgg_env.agents.distributed`) and written in the same order. An episode whose
    generation or env step failed is recorded but kept out of the means; ``resume`` plays the
    missing and the failed episodes again (the last record of an episode counts).

    Returns:
        The summary (also written to ``summary.json``), with ``"out"`` set to the folder.

    Raises:
        FileExistsError: If ``out`` already holds a transcript and ``resume`` is False.
        BlockingIOError: If another run is writing to ``out``.
        ValueError: On a bad argument (the message names it).
    """
    specs = [specs] if isinstance(specs, GameSpec) else list(specs)
    if episodes < 1:
        raise ValueError(f"episodes must be >= 1, got {episodes!r}")
    modes = [s.observation for s in specs]
    if len(set(modes)) != len(modes) or len({s.replace(observation="full") for s in specs}) != 1:
        raise ValueError("run_job plays one game in one or more observation modes")
    first = specs[0]
    label = "both" if len(specs) > 1 else first.observation
    out = Path(out) if out is not None else Path("runs") / (
        f"{first.task}-{label}-{time.strftime('%Y%m%d-%H%M%S')}")
    out.mkdir(parents=True, exist_ok=True)
    with _locked(out):
        transcript = out / TRANSCRIPTS
        if transcript.exists() and not resume:
            raise FileExistsError(
                f"{transcript} exists; pass --resume to continue that run or choose another --out"
            )
        overrides = {"model": model, "device": device, "dtype": dtype,
                     "max_new_tokens": max_new_tokens, "n_agents": first.n_agents}
        ensemble_config = EnsembleConfig.load(config)
        settings = {"episodes": episodes, "seed": seed, "batch_size": batch_size,
                    "schedule": schedule}
        todo = {m: [e for e in range(episodes)
                    if e not in (_complete_episodes(transcript).get(m, set()) if resume else ())]
                for m in modes}
        if ray is None:
            ensemble = build_ensemble(ensemble_config, **overrides)
            engine = Engine(ensemble.backend_map(), max_batch=batch_size, schedule=schedule,
                            seed=seed)
            task = first.make_task()
            runners = {s.observation: EpisodeRunner(s, ensemble, engine, task=task)
                       for s in specs}
            ensemble.prepare(task, first, seed)  # the exemplars, for run_meta.json
            meta = run_meta(specs, settings, ensemble.describe(), ensemble_config, task)
            played = _play_here(runners, todo, seed)
        else:
            from spgg_env.agents.distributed import WorkerPool

            pool = WorkerPool(specs, ensemble_config.to_dict(), workers=workers,
                              address=None if ray == "local" else ray,
                              overrides=overrides, batch_size=batch_size, schedule=schedule,
                              seed=seed)
            described = pool.ready()
            task = first.make_task()
            picked, _ = exemplar_turns(task, first, ensemble_config.shots, seed)
            meta = run_meta(specs, settings, {**described[0], "workers": described,
                                              "exemplars": [p.uid for p in picked]},
                            ensemble_config, task)
            played = _play_on_ray(pool, todo, batch_size)
        if resume and (out / META).is_file():
            _check_same_run(json.loads((out / META).read_text(encoding="utf-8")), meta)
        _write_json(out / META, meta)
        start = time.perf_counter()
        _write(played, out, todo, episodes * len(modes), first.task, tensorboard, progress)
        records = latest_records(transcript)
        summary = summarise(records, modes, episodes)
        summary.update(task=first.task, split=first.split, seed=seed,
                       wall_s=time.perf_counter() - start,
                       peak_rss_mib=provenance.process_usage()["peak_rss_mib"])
        _write_json(out / SUMMARY, summary)
    summary["out"] = str(out)
    return summary


def _play_here(runners: Mapping[str, EpisodeRunner], todo: Mapping[str, list[int]],
               seed: int) -> Iterator[tuple[str, dict[str, Any]]]:
    """Play the listed episodes of every mode in this process; yield ``(mode, record)``."""
    for mode, indices in todo.items():
        for first, count in _contiguous(indices):
            for episode in runners[mode].run(count, seed=seed, first_episode=first):
                yield mode, episode.to_record()


def _play_on_ray(pool: Any, todo: Mapping[str, list[int]],
                 batch_size: int) -> Iterator[tuple[str, dict[str, Any]]]:
    """The same episodes on Ray workers, in the same order."""
    jobs = [(mode, start + offset, min(batch_size, count - offset))
            for mode, indices in todo.items() for start, count in _contiguous(indices)
            for offset in range(0, count, batch_size)]
    try:
        yield from pool.play(jobs)
    finally:
        pool.close()


def _contiguous(indices: Iterable[int]) -> list[tuple[int, int]]:
    """``[0, 1, 2, 5, 6]`` -> ``[(0, 3), (5, 2)]``: runs of consecutive episodes."""
    runs: list[tuple[int, int]] = []
    for e in sorted(indices):
        if runs and runs[-1][0] + runs[-1][1] == e:
            runs[-1] = (runs[-1][0], runs[-1][1] + 1)
        else:
            runs.append((e, 1))
    return runs


def _write(played: Iterable[tuple[str, dict[str, Any]]], out: Path,
           todo: Mapping[str, list[int]], total: int, task: str, tensorboard: bool,
           progress: bool) -> None:
    """Append each record as soon as its episode ends; progress bar and TensorBoard."""
    from tqdm import tqdm

    writers = _tensorboard_writers(out, list(todo)) if tensorboard else {}
    bar = tqdm(total=total, desc=f"spgg run {task}", unit="ep", disable=not progress,
               initial=total - sum(len(v) for v in todo.values()))
    with (out / TRANSCRIPTS).open("a", encoding="utf-8") as sink:
        for mode, record in played:
            sink.write(json.dumps(record, default=_jsonable, ensure_ascii=False) + "\n")
            sink.flush()
            if mode in writers:
                _log_episode(writers[mode], record)
            bar.set_postfix(obs=mode, group=record["group_score"])
            bar.update(1)
    bar.close()
    for writer in writers.values():
        writer.close()


@contextlib.contextmanager
def _locked(out: Path) -> Iterator[None]:
    """Hold ``out/.lock`` for the run: a second run on the same folder fails at once."""
    with (out / LOCK).open("w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise BlockingIOError(f"another run is writing to {out}; wait for it or choose "
                                  "another --out") from None
        yield


# ---------------------------------------------------------------------------- summary
def summarise(
    records: Iterable[Mapping[str, Any]], modes: Iterable[str], episodes: int
) -> dict[str, Any]:
    """Aggregate episode records per observation mode (the first ``episodes`` of each).

    Means are over complete episodes (:func:`complete`); ``failed_episodes`` counts the others;
    ``group_score_ci95`` is the normal-approximation 95 % interval half-width
    ``1.96 * std / sqrt(n)``.
    """
    by_mode: dict[str, list[Mapping[str, Any]]] = {m: [] for m in modes}
    for r in records:
        if r["observation"] in by_mode and r["episode"] < episodes:
            by_mode[r["observation"]].append(r)
    result: dict[str, Any] = {"episodes": episodes, "observations": {}}
    for mode, rows in by_mode.items():
        result["observations"][mode] = _summarise_mode(rows)
    result["tokens_per_episode"] = {
        m: s["tokens_per_episode"]["total"] for m, s in result["observations"].items()
    }
    return result


def complete(record: Mapping[str, Any]) -> bool:
    """True for an episode that played to its end with every generation: the only kind that
    enters the means (a failed one is recorded, counted, and replayed by ``--resume``)."""
    return (record["error"] is None and record["group_score"] is not None
            and not record.get("failed_generations"))


def _summarise_mode(rows: list[Mapping[str, Any]]) -> dict[str, Any]:
    finished = [r for r in rows if complete(r)]
    steps = [s for r in finished for s in r["agents"]]
    agents = sorted({s["agent"] for s in steps}, key=lambda a: int(a.rsplit("_", 1)[1]))
    group = np.array([r["group_score"] for r in finished], dtype=float)
    prompt_tok = np.array([r["tokens"]["prompt"] for r in rows], dtype=float)
    completion_tok = np.array([r["tokens"]["completion"] for r in rows], dtype=float)
    per_agent: dict[str, Any] = {}
    for agent in agents:
        mine = [s for s in steps if s["agent"] == agent]
        components = mine[0]["reward_components"].keys() if mine else []
        per_agent[agent] = {
            "name": mine[0]["name"],
            "mean_score": _mean(s["score"] for s in mine),
            "mean_reward": _mean(s["reward"] for s in mine),
            "mean_reward_components": {c: _mean(s["reward_components"][c] for s in mine)
                                       for c in components},
            "mean_completion_tokens": _mean(s["completion_tokens"] for s in mine),
        }
    wall = (max(r["timing"]["finished_s"] for r in rows)
            - min(r["timing"]["started_s"] for r in rows)) if rows else 0.0
    return {
        "episodes": len(rows),
        "finished_episodes": len(finished),
        "failed_episodes": len(rows) - len(finished),
        "group_score_mean": float(group.mean()) if group.size else None,
        "group_score_ci95": float(1.96 * group.std(ddof=1) / np.sqrt(group.size))
        if group.size > 1 else None,
        "agents": per_agent,
        "mean_reward_per_agent": {a: v["mean_reward"] for a, v in per_agent.items()},
        "tokens_per_episode": {
            "prompt": float(prompt_tok.mean()) if rows else None,
            "completion": float(completion_tok.mean()) if rows else None,
            "total": float((prompt_tok + completion_tok).mean()) if rows else None,
        },
        "failed_generations": int(sum(r["failed_generations"] for r in rows)),
        "empty_generations": int(sum(s["empty_generation"] for r in rows for s in r["agents"])),
        "truncated_prompts": int(sum(s["prompt_truncated"] for r in rows for s in r["agents"])),
        "wall_s": wall,
        "episodes_per_min": 60.0 * len(rows) / wall if wall > 0 else None,
    }


def _mean(values: Iterable[float | None]) -> float | None:
    kept = [float(v) for v in values if v is not None]
    return float(np.mean(kept)) if kept else None


def format_summary(summary: Mapping[str, Any]) -> str:
    """A few human-readable lines."""
    lines = [f"task {summary.get('task')} ({summary.get('split')}), "
             f"{summary['episodes']} episodes per observation mode -> {summary.get('out')}"]
    for mode, s in summary["observations"].items():
        rewards = ", ".join(f"{a}={r:+.3f}" for a, r in s["mean_reward_per_agent"].items()
                            if r is not None)
        score = s["group_score_mean"]
        lines.append(
            f"  {mode:7s} group score {score if score is None else f'{score:.3f}'}  "
            f"tokens/episode {s['tokens_per_episode']['total']:.0f}  "
            f"episodes/min {s['episodes_per_min'] or 0:.1f}  mean reward {rewards}  "
            f"failed generations {s['failed_generations']}"
        )
    if "peak_rss_mib" in summary:
        lines.append(f"  peak memory {summary['peak_rss_mib']:.0f} MiB")
    return "\n".join(lines)


# ------------------------------------------------------------------------------- meta
def run_meta(specs: list[GameSpec], settings: Mapping[str, Any], ensemble: Mapping[str, Any],
             config: EnsembleConfig, task: Any) -> dict[str, Any]:
    """What a result needs to be understood and rerun."""
    split = specs[0].split
    return {
        "games": [s.to_dict() for s in specs],
        "settings": dict(settings),
        "ensemble_config": config.to_dict(),
        "ensemble": dict(ensemble),
        "task": {"name": task.name, "version": task.version, "split": split,
                 "split_hash": task.split_hash(split), "problems": len(task.problems(split))},
        "prompt_template_sha256": prompts.template_hash(specs[0].prompt_style),
        **provenance.environment(),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def read_transcripts(path: str | Path) -> Iterable[dict[str, Any]]:
    """Yield the episode records of a ``transcripts.jsonl`` (skipping a torn last line)."""
    with Path(path).open(encoding="utf-8") as lines:
        for line in lines:
            try:
                yield json.loads(line)
            except json.JSONDecodeError:
                continue


def latest_records(path: str | Path) -> list[dict[str, Any]]:
    """The last record of every ``(observation, episode)`` in a transcript (a resumed run
    appends the replay of a failed episode after it), in file order of first appearance."""
    latest: dict[tuple[str, int], dict[str, Any]] = {}
    for record in read_transcripts(path):
        latest[(record["observation"], int(record["episode"]))] = record
    return list(latest.values())


def _complete_episodes(path: Path) -> dict[str, set[int]]:
    """Per observation mode, the episodes whose latest record is complete."""
    done: dict[str, set[int]] = {}
    if path.exists():
        for record in latest_records(path):
            if complete(record):
                done.setdefault(record["observation"], set()).add(int(record["episode"]))
    return done


def _check_same_run(before: Mapping[str, Any], now: Mapping[str, Any]) -> None:
    """Refuse to resume a run whose game, settings (other than the episode count) or ensemble
    differ."""
    keys = ("games", "settings", "ensemble_config")
    old = {k: before.get(k) for k in keys}
    new = json.loads(json.dumps({k: now.get(k) for k in keys}, default=str))
    for part in (old, new):
        if part["settings"]:
            part["settings"] = {k: v for k, v in part["settings"].items() if k != "episodes"}
    if old != new:
        changed = [k for k in keys if old[k] != new[k]]
        raise ValueError(f"--resume: the run in this folder used another {', '.join(changed)}; "
                         "use the same arguments or another --out")


def _tensorboard_writers(out: Path, modes: list[str]) -> dict[str, Any]:
    from torch.utils.tensorboard import SummaryWriter

    return {m: SummaryWriter(str(out / "tensorboard" / m)) for m in modes}


def _log_episode(writer: Any, record: Mapping[str, Any]) -> None:
    step = int(record["episode"])
    if record["group_score"] is not None:
        writer.add_scalar("group_score", record["group_score"], step)
    writer.add_scalar("tokens/total", record["tokens"]["prompt"] + record["tokens"]["completion"],
                      step)
    for s in record["agents"]:
        if s.get("reward") is not None:
            writer.add_scalar(f"reward/{s['agent']}", s["reward"], step)
            writer.add_scalar(f"score/{s['agent']}", s["score"], step)


def _write_json(path: Path, data: Any) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, default=_jsonable, ensure_ascii=False) + "\n",
                   encoding="utf-8")
    tmp.replace(path)


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    return str(value)
