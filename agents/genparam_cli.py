"""``spgg train genparam``: train the paper's generation-parameter policy on a task.

Frozen LLM (default: the embedded SmolLM2-135M-Instruct), one small PPO policy per agent over the
six generation parameters (see :mod:`spgg_env.agents.genparam_policy`). Writes
``history.json``, TensorBoard logs under ``tb/``, ``checkpoint.pt`` (resumable) and ``policy.pt``
(the same policy without optimiser state, for inference: ``policy_checkpoint`` of the trained
benchmark methods) into ``--out``; running the same command again resumes from the checkpoint.
Also runnable as ``python -m spgg_env.agents.genparam_cli ...``.

Training never sees a benchmark problem: the problems pinned in ``--holdout`` split versions
(default ``tiny-v1`` and ``small-v1``, read from ``spgg_env/splits``) are removed from the
training split when they were drawn from it.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from spgg_env import provenance
from spgg_env.agents.genparam_inference import export_policy
from spgg_env.agents.genparam_policy import GenParamLearner
from spgg_env.tasks.base import Task


def add_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The options of the ``genparam`` command."""
    parser.add_argument("--task", default="arith", help="arith, gsm8k, mmlu, humaneval, summeval")
    parser.add_argument("--model", default="embedded", help="model folder, hub id or 'embedded'")
    parser.add_argument("--agents", type=int, default=3)
    parser.add_argument("--observation", default="full", choices=("partial", "full", "none"))
    parser.add_argument("--mechanism", default="mac-spgg", choices=("mac-spgg", "pgg", "spgg"))
    parser.add_argument("--envs", type=int, default=8, help="episodes per PPO iteration")
    parser.add_argument("--iterations", type=int, default=20)
    parser.add_argument("--max-tokens", type=int, default=192, help="env tokens at effort 1")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--split", default=None, help="training split (default: the task's first)")
    parser.add_argument("--holdout", nargs="*", default=["tiny-v1", "small-v1"],
                        help="pinned split versions whose problems are kept out of training")
    parser.add_argument("--out", type=Path, default=Path("runs/genparam"))
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    return parser


def training_uids(task: Task, split: str, holdout: Sequence[str]) -> list[str] | None:
    """The uids of ``split`` minus those pinned in the ``holdout`` split versions that were
    drawn from ``split``; ``None`` when nothing is held out (train on the whole split)."""
    from spgg_env.splits import pinned_splits

    held: set[str] = set()
    for version in holdout:
        entry = pinned_splits(version).get("tasks", {}).get(task.name)
        if entry is not None and entry["source_split"] == split:
            held |= set(entry["uids"])
    if not held:
        return None
    return [p.uid for p in task.problems(split) if p.uid not in held]


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the ``genparam`` command to a CLI's subparsers (e.g. those of ``spgg train``)."""
    parser = subparsers.add_parser(
        "genparam", help="train the paper's generation-parameter policy (PPO, frozen LLMs)"
    )
    add_arguments(parser)
    parser.set_defaults(func=main)
    return parser


def main(args: argparse.Namespace) -> int:
    """Train as ``args`` says; print the first and last iteration's metrics."""
    for name in ("agents", "envs", "iterations", "max_tokens"):
        if getattr(args, name) < 1:
            print(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}",
                  file=sys.stderr)
            return 2
    from spgg_env.tasks import make_task

    task = make_task(args.task)
    split = args.split or task.default_split
    uids = training_uids(task, split, args.holdout)
    learner = GenParamLearner.for_task(
        args.task, model=args.model, n_agents=args.agents, n_envs=args.envs,
        observation=args.observation, mechanism=args.mechanism, max_tokens=args.max_tokens,
        seed=args.seed, split=split, train_uids=uids,
    )
    args.out.mkdir(parents=True, exist_ok=True)
    env = learner.envs[0].unwrapped
    meta = {**provenance.environment(), "arguments": vars(args), "task": env.task.name,
            "task_version": env.task.version, "split": env.split,
            "split_hash": env.task.split_hash(env.split),
            "train_problems": len(uids) if uids is not None else len(env.task.problems(split)),
            "held_out_problems": len(env.task.problems(split)) - len(uids) if uids else 0}
    (args.out / "run_meta.json").write_text(json.dumps(meta, indent=2, default=str))
    history = learner.train(args.iterations, log_dir=args.out / "tb",
                            checkpoint=args.out / "checkpoint.pt",
                            progress=not args.no_progress)
    (args.out / "history.json").write_text(json.dumps(history, indent=1))
    export_policy(args.out / "checkpoint.pt", args.out / "policy.pt")
    print(json.dumps({"first": history[0], "last": history[-1]}, indent=1))
    return 0


def cli(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m spgg_env.agents.genparam_cli``."""
    parser = add_arguments(argparse.ArgumentParser(prog="spgg train genparam",
                                                   description=__doc__.split("\n\n")[0]))
    return main(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(cli())
