"""``spgg train ppo ...``: the console command of the PPO LLM learner (:mod:`.ppo`).

Every :class:`~spgg_env.agents.ppo.PPOConfig` field is an option (``--episodes 8``,
``--task-options '{"difficulty": "easy"}'``); ``--config run.json`` loads a config file first
(the command line wins); ``--resume`` continues from ``<out-dir>/checkpoint.pt``.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import MISSING, asdict, fields
from typing import Any

from spgg_env.agents import genparam_cli

#: Types of the fields whose default is None (their type cannot be read off the default).
_OPTIONAL_TYPES: dict[str, type] = {
    "model": str,
    "system_prompt": str,
    "threads": int,
    "time_limit_s": float,
}


def _json_dict(text: str) -> dict[str, Any]:
    value = json.loads(text)
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"expected a JSON object, got {text!r}")
    return value


def _bool(text: str) -> bool:
    if text.lower() in ("1", "true", "yes", "on"):
        return True
    if text.lower() in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add one option per config field, plus ``--config`` and ``--resume``."""
    from spgg_env.agents.ppo import PPOConfig

    parser.add_argument("--config", help="JSON file of PPOConfig fields (options override it)")
    parser.add_argument("--resume", action="store_true", help="continue from the checkpoint")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    for f in fields(PPOConfig):
        default = f.default if f.default is not MISSING else f.default_factory()  # type: ignore[misc]
        if isinstance(default, dict):
            kind: Any = _json_dict
        elif isinstance(default, bool):
            kind = _bool
        elif default is None:
            kind = _OPTIONAL_TYPES[f.name]
        else:
            kind = type(default)
        parser.add_argument(
            "--" + f.name.replace("_", "-"),
            dest=f.name,
            type=kind,
            default=None,
            help=f"(default: {json.dumps(default)})",
        )


def add_ppo_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``ppo`` among the learners of ``spgg train``."""
    parser = subparsers.add_parser("ppo", help="token-level PPO of LoRA LLM agents in the game")
    add_arguments(parser)
    parser.set_defaults(func=main)
    return parser


#: Learner name -> function that registers its parser among ``spgg train``'s learners.
LEARNERS = {"ppo": add_ppo_parser, "genparam": genparam_cli.add_parser}


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``spgg train`` (with one sub-command per learner) on the ``spgg`` dispatcher."""
    parser = subparsers.add_parser("train", help="train LLM agents in the game")
    learners = parser.add_subparsers(dest="learner", required=True, metavar="LEARNER")
    for register in LEARNERS.values():
        register(learners)
    return parser


def config_from_args(args: argparse.Namespace, defaults: dict[str, Any] | None = None):
    """Merge ``defaults``, the ``--config`` file and the given options into a PPOConfig."""
    from spgg_env.agents.ppo import PPOConfig

    values: dict[str, Any] = dict(defaults or {})
    if args.config:
        with open(args.config) as fh:
            values |= json.load(fh)
    names = {f.name for f in fields(PPOConfig)}
    values |= {k: v for k, v in vars(args).items() if k in names and v is not None}
    return PPOConfig.from_dict(values)


def main(args: argparse.Namespace, defaults: dict[str, Any] | None = None) -> int:
    """Run the learner; prints the config and the final held-out metrics."""
    from spgg_env.agents.ppo import train

    cfg = config_from_args(args, defaults)
    print(json.dumps(asdict(cfg)), flush=True)
    trainer = train(cfg, resume=args.resume, progress=not args.no_progress)
    evals = [row for row in trainer.history if "eval/reward" in row]
    if evals:
        first, last = evals[0], evals[-1]
        for key in ("eval/reward", "eval/task_score"):
            print(f"{key}: update {first['update']} {first[key]:.4f} -> "
                  f"update {last['update']} {last[key]:.4f}")
    return 0


if __name__ == "__main__":
    cli = argparse.ArgumentParser(prog="spgg train ppo")
    add_arguments(cli)
    raise SystemExit(main(cli.parse_args()))
