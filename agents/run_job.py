"""The main job, ``spgg run``: play episodes with an ensemble and write transcripts and a summary.

Example (offline, the embedded default ensemble)::

    spgg run --task arith --episodes 20 --observation both --out runs/demo

writes into ``--out``:

* ``run_meta.json`` (first): the command's arguments, the ensemble config, its agents and
  backends (model, device, dtype), package versions, the git commit, the task's split hash and
  the prompt template hash;
* ``transcripts.jsonl``: one line per episode, appended as soon as the episode ends (see
  :mod:`spgg_env.agents.rollout` for the fields);
* ``summary.json`` (last): per observation mode, the group's task score, each agent's mean
  score, reward and reward components, tokens per episode (prompt, completion, total), failed
  generations, truncated prompts, wall time and episodes per minute; with
  ``--observation both``, ``tokens_per_episode`` compares partial (PO) and full (FO)
  observation on the same problems and seeds;
* ``tensorboard/<observation>/`` with ``--tensorboard``.

Episode e plays problem ``e mod n`` of the split with seed ``seed + e``. ``--resume`` continues
a run whose transcript is incomplete (episodes already written are kept).
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from spgg_env import prompts, provenance
from spgg_env.agents.ensemble import DEFAULT_CONFIG, Ensemble, build_ensemble
from spgg_env.agents.rollout import RolloutRunner
from spgg_env.tasks import make_task

TRANSCRIPTS = "transcripts.jsonl"
SUMMARY = "summary.json"
META = "run_meta.json"
OBSERVATIONS = ("partial", "full")


# ------------------------------------------------------------------------------- CLI
def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the ``run`` command to the ``spgg`` CLI."""
    p = subparsers.add_parser(
        "run", help="play episodes with an LLM ensemble; write transcripts and a summary",
        description=__doc__.split("\n\n")[0],
    )
    p.add_argument("--task", default="arith",
                   help="arith, gsm8k, mmlu, humaneval, summeval (default: arith, offline)")
    p.add_argument("--episodes", type=int, default=20, help="episodes per observation mode")
    p.add_argument("--observation", default="partial", choices=[*OBSERVATIONS, "both"],
                   help="partial (PO), full (FO) or both (PO then FO, same problems)")
    p.add_argument("--out", type=Path, default=None,
                   help="output folder (default: runs/<task>-<observation>-<time>)")
    p.add_argument("--config", default=None,
                   help=f"ensemble YAML/JSON (default: {DEFAULT_CONFIG.name}, 3x SmolLM2-135M)")
    p.add_argument("--model", default=None,
                   help="model of every transformers agent: hub id, folder or 'embedded'")
    p.add_argument("--n-agents", type=int, default=None,
                   help="number of agents (cycles the config's agents)")
    p.add_argument("--batch-size", type=int, default=8, help="episodes played in lockstep (K)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--split", default=None, help="task split (default: the task's first)")
    p.add_argument("--task-option", action="append", default=[], metavar="KEY=VALUE",
                   help="task constructor option, repeatable (e.g. difficulty=easy, "
                        "data_path=/data/gsm8k); values are read as YAML scalars")
    p.add_argument("--mechanism", default="mac-spgg", help="reward mechanism")
    p.add_argument("--device", default=None, help="auto, cpu, cuda (default: auto)")
    p.add_argument("--dtype", default=None, help="auto, float32, bfloat16 (default: auto)")
    p.add_argument("--max-new-tokens", type=int, default=None, help="every agent's cap")
    p.add_argument("--threads", type=int, default=None,
                   help="torch CPU threads (default: torch's choice; 1 on a busy machine)")
    p.add_argument("--tensorboard", action="store_true", help="log to <out>/tensorboard")
    p.add_argument("--resume", action="store_true", help="continue an incomplete run in --out")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.set_defaults(func=main)
    return p


def main(args: argparse.Namespace) -> int:
    """Run the job from parsed arguments; print where the results are."""
    if args.threads is not None:
        import torch

        torch.set_num_threads(args.threads)
    try:
        summary = _run_from_args(args)
    except (ValueError, OSError, RuntimeError) as exc:  # bad input: a message, not a traceback
        print(f"spgg run: error: {exc}", file=sys.stderr)
        return 2
    print(format_summary(summary))
    return 0


def parse_options(pairs: Iterable[str]) -> dict[str, Any]:
    """``["difficulty=easy", "n_problems=50"]`` -> ``{"difficulty": "easy", "n_problems": 50}``.

    Raises:
        ValueError: If an item has no ``=``.
    """
    import yaml

    options = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--task-option needs KEY=VALUE, got {pair!r}")
        options[key.strip()] = yaml.safe_load(value) if value.strip() else ""
    return options


def _run_from_args(args: argparse.Namespace) -> dict[str, Any]:
    return run_job(
        task=args.task, task_options=parse_options(args.task_option), episodes=args.episodes,
        observation=args.observation, out=args.out,
        config=args.config, model=args.model, n_agents=args.n_agents,
        batch_size=args.batch_size, seed=args.seed, split=args.split,
        mechanism=args.mechanism, device=args.device, dtype=args.dtype,
        max_new_tokens=args.max_new_tokens, tensorboard=args.tensorboard, resume=args.resume,
        progress=not args.no_progress,
    )


# ------------------------------------------------------------------------------- job
def run_job(
    *,
    task: str = "arith",
    task_options: Mapping[str, Any] | None = None,
    episodes: int = 20,
    observation: str = "partial",
    out: str | Path | None = None,
    config: str | Path | Mapping[str, Any] | None = None,
    model: str | None = None,
    n_agents: int | None = None,
    batch_size: int = 8,
    seed: int = 0,
    split: str | None = None,
    mechanism: str = "mac-spgg",
    device: str | None = None,
    dtype: str | None = None,
    max_new_tokens: int | None = None,
    tensorboard: bool = False,
    resume: bool = False,
    progress: bool = True,
) -> dict[str, Any]:
    """Play ``episodes`` episodes per observation mode and write the run folder.

    Returns:
        The summary (also written to ``summary.json``), with ``"out"`` set to the folder.

    Raises:
        FileExistsError: If ``out`` already holds a transcript and ``resume`` is False.
        ValueError: On a bad argument (the message names it).
    """
    if episodes < 1:
        raise ValueError(f"episodes must be >= 1, got {episodes!r}")
    modes = list(OBSERVATIONS) if observation == "both" else [observation]
    if any(m not in OBSERVATIONS for m in modes):
        raise ValueError(f"observation must be partial, full or both, got {observation!r}")
    out = Path(out) if out is not None else Path("runs") / (
        f"{task}-{observation}-{time.strftime('%Y%m%d-%H%M%S')}")
    transcript = out / TRANSCRIPTS
    if transcript.exists() and not resume:
        raise FileExistsError(
            f"{transcript} exists; pass --resume to continue that run or choose another --out"
        )
    ensemble = build_ensemble(config, model=model, device=device, dtype=dtype,
                              max_new_tokens=max_new_tokens, n_agents=n_agents)
    max_tokens = max(a.params.max_new_tokens for a in ensemble.agents)
    shared_task = make_task(task, **dict(task_options or {}))
    runners = {m: RolloutRunner(ensemble, batch_size=batch_size, task=shared_task,
                                observation=m, split=split, mechanism=mechanism,
                                max_tokens=max_tokens)
               for m in modes}
    first = runners[modes[0]]
    arguments = {"task": task, "task_options": dict(task_options or {}), "episodes": episodes,
                 "observation": observation,
                 "batch_size": batch_size, "seed": seed, "split": first.split,
                 "mechanism": mechanism, "max_tokens": max_tokens,
                 "config": str(config) if isinstance(config, str | Path) else config}
    out.mkdir(parents=True, exist_ok=True)
    if resume and (out / META).is_file():
        _check_same_run(json.loads((out / META).read_text(encoding="utf-8")), arguments, ensemble)
    done = _done_episodes(transcript) if resume else {}
    _write_json(out / META, run_meta(arguments, ensemble, first))

    writers = _tensorboard_writers(out, modes) if tensorboard else {}
    from tqdm import tqdm

    bar = tqdm(total=episodes * len(modes), desc=f"spgg run {task}", unit="ep",
               disable=not progress, initial=sum(min(done.get(m, 0), episodes) for m in modes))
    start = time.perf_counter()
    with transcript.open("a", encoding="utf-8") as sink:
        for mode in modes:
            skip = min(done.get(mode, 0), episodes)
            for record in runners[mode].run(episodes - skip, seed=seed, first_episode=skip):
                sink.write(json.dumps(record, default=_jsonable, ensure_ascii=False) + "\n")
                sink.flush()
                if mode in writers:
                    _log_episode(writers[mode], record)
                bar.set_postfix(obs=mode, group=record["group_score"])
                bar.update(1)
    bar.close()
    for writer in writers.values():
        writer.close()
    records = list(read_transcripts(transcript))
    summary = summarise(records, modes, episodes)
    summary.update(task=task, split=first.split, seed=seed,
                   wall_s=time.perf_counter() - start,
                   peak_rss_mib=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    _write_json(out / SUMMARY, summary)
    summary["out"] = str(out)
    return summary


# ---------------------------------------------------------------------------- summary
def summarise(
    records: Iterable[Mapping[str, Any]], modes: Iterable[str], episodes: int
) -> dict[str, Any]:
    """Aggregate episode records per observation mode (the first ``episodes`` of each).

    Means are over finished episodes; ``group_score_ci95`` is the normal-approximation 95 %
    interval half-width ``1.96 * std / sqrt(n)``.
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


def _summarise_mode(rows: list[Mapping[str, Any]]) -> dict[str, Any]:
    finished = [r for r in rows if r["error"] is None and r["group_score"] is not None]
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
    wall = float(sum(r["wall_s"] for r in rows))
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
        "generation_wall_s": wall,
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
def run_meta(arguments: Mapping[str, Any], ensemble: Ensemble, runner: RolloutRunner
             ) -> dict[str, Any]:
    """What a result needs to be understood and rerun."""
    return {
        "arguments": dict(arguments),
        "ensemble_config": ensemble.config.to_dict() if ensemble.config else None,
        "ensemble": ensemble.describe(),
        "task": {"name": runner.task.name, "version": runner.task.version,
                 "split": runner.split, "split_hash": runner.task.split_hash(runner.split),
                 "problems": runner.n_problems},
        "prompt_template_sha256": prompts.template_hash(),
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


def _done_episodes(path: Path) -> dict[str, int]:
    """Per observation mode, how many leading episodes the transcript already holds."""
    if not path.exists():
        return {}
    seen: dict[str, set[int]] = {}
    for record in read_transcripts(path):
        seen.setdefault(record["observation"], set()).add(int(record["episode"]))
    done = {}
    for mode, episodes in seen.items():
        n = 0
        while n in episodes:
            n += 1
        done[mode] = n
    return done


def _check_same_run(meta: Mapping[str, Any], arguments: Mapping[str, Any],
                    ensemble: Ensemble) -> None:
    """Refuse to resume a run whose settings (other than the episode count) differ."""
    before = {k: v for k, v in meta.get("arguments", {}).items() if k != "episodes"}
    now = {k: v for k, v in json.loads(json.dumps(arguments, default=str)).items()
           if k != "episodes"}
    config = ensemble.config.to_dict() if ensemble.config else None
    if before != now or meta.get("ensemble_config") != config:
        changed = sorted(k for k in set(before) | set(now) if before.get(k) != now.get(k))
        raise ValueError(
            f"--resume: the run in this folder used other settings ({changed or 'ensemble'}); "
            "use the same arguments or another --out"
        )


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
