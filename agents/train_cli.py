"""``spgg train ppo|genparam``: the console commands of the two text-game learners.

Every flag comes from a config, none is listed by hand:

* the game's flags from :meth:`GameSpec.add_arguments` (the names of ``spgg run``:
  ``--task``, ``--task-option KEY=VALUE``, ``--split``, ``--n-agents``, ``--observation``,
  ``--mechanism``, ``--mechanism-param KEY=VALUE``, ``--max-tokens``, ``--token-counting``,
  ``--prompt-style``, ``--max-action-chars``), defaulting to the learner's default game;
* one flag per field of the learner's config (:class:`~spgg_env.agents.ppo.PPOConfig`,
  :class:`~spgg_env.agents.genparam_learner.GenParamConfig`), with the field's help text:
  ``--episodes`` (per update), ``--batch-size`` (generations decoded together),
  ``--max-new-tokens``, ``--minibatch-size``, ``--entropy-coef``, ``--out``...

``--config FILE`` loads a JSON config first (a run's ``config.json``); flags given on the command
line win. Changing ``--task`` drops the base game's task options and split, changing
``--mechanism`` its parameters. ``--resume`` continues from ``<out>/checkpoint.pt``; without it
an existing checkpoint is refused. Bad input exits with status 2 and one line, before any model
loads. Also runnable as ``python -m spgg_env.agents.train_cli ppo|genparam ...``.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import MISSING, Field, fields
from pathlib import Path
from typing import Any

from spgg_env.spec import GameSpec, parse_key_values

#: Field annotations (strings, as the configs' modules postpone them) -> (type, nargs).
_KINDS: dict[str, tuple[Callable[[str], Any], str | None]] = {
    "int": (int, None), "int | None": (int, None),
    "float": (float, None), "float | None": (float, None),
    "str": (str, None), "str | None": (str, None),
    "list[str]": (str, "*"),
}
_SPEC_LISTS = ("task_options", "mechanism_params")


def _default(f: Field) -> Any:
    return f.default if f.default is not MISSING else f.default_factory()  # type: ignore[misc]


def add_config_arguments(parser: argparse.ArgumentParser, config_cls: type) -> None:
    """Add ``--config``, ``--resume``, ``--no-progress``, the game's flags and one flag per
    field of ``config_cls`` (a dataclass whose ``game`` field holds a :class:`GameSpec` and
    whose other fields carry their help text in ``metadata["help"]``).

    Flags default to ``None`` so that :func:`config_from_args` knows which were given; the
    help shows the config's default.
    """
    parser.add_argument("--config", metavar="FILE",
                        help="JSON file of config fields, e.g. a run's config.json (flags win)")
    parser.add_argument("--resume", action="store_true",
                        help="continue the run whose checkpoint is in --out")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    group = parser.add_argument_group("learner (the run's config)")
    for f in fields(config_cls):
        if f.name == "game":
            continue
        kind, nargs = _KINDS[str(f.type)]
        default = _default(f)
        shown = " ".join(default) if isinstance(default, list) else json.dumps(default)
        group.add_argument("--" + f.name.replace("_", "-"), dest=f.name, type=kind, nargs=nargs,
                           default=None, help=f"{f.metadata['help']} (default: {shown})")
    game = _default(next(f for f in fields(config_cls) if f.name == "game"))
    first = len(parser._actions)
    GameSpec.add_arguments(parser, **{k: v for k, v in game.to_dict().items()
                                      if k not in _SPEC_LISTS})
    for action in parser._actions[first:]:
        if action.dest not in _SPEC_LISTS:
            action.default = None  # given or not; the base game fills in the rest


def game_from_args(args: argparse.Namespace, base: GameSpec) -> GameSpec:
    """``base`` with the game flags given on the command line applied (see the module
    docstring for what a new task or mechanism drops).

    Raises:
        ValueError: On a malformed ``KEY=VALUE`` or an invalid game.
    """
    data = base.to_dict()
    names = [f.name for f in fields(GameSpec) if f.name not in _SPEC_LISTS]
    given = {n: getattr(args, n) for n in names if getattr(args, n, None) is not None}
    if given.get("task", base.task) != base.task:
        data["task_options"], data["split"] = {}, None
    if given.get("mechanism", base.mechanism) != base.mechanism:
        data["mechanism_params"] = {}
    data |= given
    data["task_options"] = {**data["task_options"], **parse_key_values(
        getattr(args, "task_options", None), "--task-option")}
    data["mechanism_params"] = {**data["mechanism_params"], **parse_key_values(
        getattr(args, "mechanism_params", None), "--mechanism-param")}
    return GameSpec.from_dict(data, source="command line")


def config_from_args(config_cls: type, args: argparse.Namespace,
                     defaults: Mapping[str, Any] | None = None) -> Any:
    """Merge ``defaults``, the ``--config`` file and the given flags into a ``config_cls``.

    Raises:
        ValueError: On an unknown key, a bad value or an unreadable ``--config`` file.
    """
    values: dict[str, Any] = dict(defaults or {})
    if getattr(args, "config", None):
        try:
            loaded = json.loads(Path(args.config).read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as error:
            raise ValueError(f"--config {args.config}: {error}") from None
        if not isinstance(loaded, dict):
            raise ValueError(f"--config {args.config}: expected a JSON object")
        values |= loaded
    names = [f.name for f in fields(config_cls) if f.name != "game"]
    values |= {n: getattr(args, n) for n in names if getattr(args, n, None) is not None}
    game_field = next(f for f in fields(config_cls) if f.name == "game")
    base = GameSpec.from_dict(values.get("game", _default(game_field)), source="config game")
    values["game"] = game_from_args(args, base)
    return config_cls.from_dict(values)


def _refuse_existing(out: str, resume: bool) -> None:
    checkpoint = Path(out) / "checkpoint.pt"
    if checkpoint.exists() and not resume:
        raise FileExistsError(f"{checkpoint} exists; pass --resume to continue that run or "
                              "choose another --out")


def _fail(command: str, error: Exception) -> int:
    print(f"spgg train {command}: error: {error}", file=sys.stderr)
    return 2


# ------------------------------------------------------------------------------------ ppo
def main_ppo(args: argparse.Namespace, defaults: Mapping[str, Any] | None = None) -> int:
    """Train the PPO learner; prints the config and the held-out metrics before and after."""
    from spgg_env.agents.ppo import PPOConfig, train

    try:
        cfg = config_from_args(PPOConfig, args, defaults)
        _refuse_existing(cfg.out, args.resume)
    except (ValueError, OSError) as error:
        return _fail("ppo", error)
    print(json.dumps(cfg.to_dict()), flush=True)
    learner = train(cfg, resume=args.resume, progress=not args.no_progress)
    evals = [row for row in learner.history if "eval/reward" in row]
    if evals:
        first, last = evals[0], evals[-1]
        for key in ("eval/reward", "eval/task_score"):
            print(f"{key}: update {first['update']} {first[key]:.4f} -> "
                  f"update {last['update']} {last[key]:.4f}")
    return 0


# ------------------------------------------------------------------------------- genparam
def main_genparam(args: argparse.Namespace,
                  defaults: Mapping[str, Any] | None = None) -> int:
    """Train the generation-parameter learner (problems pinned in the ``holdout`` split
    versions stay out of training); prints the first and last update's metrics."""
    from spgg_env.agents.genparam_learner import GenParamConfig, GenParamLearner, training_uids

    try:
        cfg = config_from_args(GenParamConfig, args, defaults)
        _refuse_existing(cfg.out, args.resume)
        task = cfg.game.make_task()
        uids = training_uids(task, cfg.game.split, cfg.holdout)
    except (ValueError, OSError) as error:
        return _fail("genparam", error)
    print(json.dumps(cfg.to_dict()), flush=True)
    learner = GenParamLearner.from_config(cfg, train_uids=uids)
    history = learner.train(resume=args.resume, progress=not args.no_progress)
    print(json.dumps({"first": history[0], "last": history[-1]}, indent=1))
    return 0


# ------------------------------------------------------------------------------- commands
def _config_class(learner: str) -> type:
    if learner == "ppo":
        from spgg_env.agents.ppo import PPOConfig

        return PPOConfig
    from spgg_env.agents.genparam_learner import GenParamConfig

    return GenParamConfig


#: Learner name -> (help, main).
LEARNERS: dict[str, tuple[str, Callable[..., int]]] = {
    "ppo": ("token-level PPO of LoRA LLM agents in the game", main_ppo),
    "genparam": ("the paper's learner: frozen LLMs, PPO over generation parameters",
                 main_genparam),
}


def add_learners(subparsers: Any) -> None:
    """Register one sub-command per learner."""
    for name, (text, main) in LEARNERS.items():
        parser = subparsers.add_parser(name, help=text, description=text)
        add_config_arguments(parser, _config_class(name))
        parser.set_defaults(func=main)


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``spgg train`` (with one sub-command per learner) on the ``spgg`` dispatcher."""
    parser = subparsers.add_parser("train", help="train LLM agents in the game")
    add_learners(parser.add_subparsers(dest="learner", required=True, metavar="LEARNER"))
    return parser


def cli(argv: Sequence[str] | None = None) -> int:
    """``python -m spgg_env.agents.train_cli ppo|genparam ...``."""
    parser = argparse.ArgumentParser(prog="spgg train", description=__doc__.split("\n\n")[0])
    add_learners(parser.add_subparsers(dest="learner", required=True, metavar="LEARNER"))
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    raise SystemExit(cli())
