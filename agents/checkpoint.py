"""What a learner's run writes: checkpoints (atomically), ``config.json`` and ``run_meta.json``.

Both text-game learners (:mod:`~spgg_env.agents.ppo` and
:mod:`~spgg_env.agents.genparam_learner`) save and read their runs through this module, so a
checkpoint is always whole (``torch.save`` to a temp file in the same folder, then
``os.replace``: a crash leaves the previous checkpoint, never half of one) and always names its
game: every checkpoint, ``config.json`` and ``run_meta.json`` embeds the run's
:class:`~spgg_env.spec.GameSpec` under ``"game"``, and :func:`load_checkpoint` refuses a
checkpoint made for another game, naming every differing field (:meth:`GameSpec.require`).
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from spgg_env import provenance
from spgg_env.spec import GameSpec


def save_checkpoint(path: str | Path, state: Mapping[str, Any]) -> Path:
    """Write ``state`` with ``torch.save`` to a temp file beside ``path``, then rename it over
    ``path`` (atomic on POSIX: readers see the old file or the new one, never a partial one).

    Returns:
        ``path``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp",
                                     delete=False) as tmp:
        try:
            torch.save(dict(state), tmp)
        except BaseException:
            os.unlink(tmp.name)
            raise
    os.replace(tmp.name, path)
    return path


def write_text(path: str | Path, text: str) -> Path:
    """Write ``text`` atomically (a temp file beside ``path``, then ``os.replace``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
    return path


def write_json(path: str | Path, data: Any) -> Path:
    """Write ``data`` as indented JSON, atomically (:func:`write_text`)."""
    return write_text(path, json.dumps(data, indent=2, default=str) + "\n")


def load_checkpoint(path: str | Path, game: GameSpec | None = None, *,
                    what: str = "checkpoint") -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint` (tensors land on the CPU).

    Args:
        path: The checkpoint file.
        game: The game it must have been made for; ``None`` skips the check.
        what: How to name the file in errors (e.g. ``"PPO checkpoint runs/a/checkpoint.pt"``).

    Raises:
        FileNotFoundError: If there is no such file.
        ValueError: If it stores no game spec or another game (every differing field named).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what} {str(path)!r} does not exist")
    state = torch.load(path, map_location="cpu", weights_only=False)
    if game is not None:
        checkpoint_game(state, path, what).require(game, what=f"{what} {str(path)!r}")
    return state


def checkpoint_game(state: Mapping[str, Any], path: str | Path, what: str) -> GameSpec:
    """The game spec a checkpoint's ``config`` embeds.

    Raises:
        ValueError: If the checkpoint has none (written before game specs existed).
    """
    config = state.get("config") if isinstance(state, Mapping) else None
    game = config.get("game") if isinstance(config, Mapping) else None
    if game is None:
        raise ValueError(f"{what} {str(path)!r} names no game spec (config.game): it was "
                         "written by an older version; start a new run")
    return GameSpec.from_dict(game, source=f"{what} {str(path)!r}")


def write_run_files(out: str | Path, config: Mapping[str, Any], game: GameSpec,
                    **facts: Any) -> None:
    """Write ``config.json`` (the run's whole config, game included) and ``run_meta.json``
    (the game, its fingerprint, the split's hash, package versions, git commit, command line,
    and ``facts``) into ``out``."""
    out = Path(out)
    task = game.make_task()
    meta = {
        **provenance.environment(),
        "game": game.to_dict(),
        "game_fingerprint": game.fingerprint(),
        "task_version": task.version,
        "split_hash": task.split_hash(game.split),
        **facts,
    }
    write_json(out / "config.json", dict(config))
    write_json(out / "run_meta.json", meta)
