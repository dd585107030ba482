"""Pinned benchmark splits: fixed, versioned subsets of a task's problems, pinned by uid and hash.

A task's own split (``test``) is its full data; a *pinned* split (``small-v1``, ``tiny-v1``...) is a
subset written once to ``spgg_env/splits/<version>.json`` (shipped inside the package, so a wheel
install finds it) and checked against the data's content hash on every use: if the data behind a
pinned uid changes, :func:`resolve_split` refuses it.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from spgg_env.tasks.base import Problem, Task, problems_hash

#: Pinned split files ship inside the package, so a wheel install finds them too.
SPLITS_DIR = Path(__file__).resolve().parent / "splits"


def pinned_splits(version: str, splits_dir: str | Path | None = None) -> dict[str, Any]:
    """Read a pinned split version file (``<splits_dir>/<version>.json``).

    Raises:
        ValueError: If there is no such version.
    """
    path = Path(splits_dir or SPLITS_DIR) / f"{version}.json"
    if not path.is_file():
        available = sorted(p.stem for p in path.parent.glob("*.json"))
        raise ValueError(
            f"no pinned split {version!r} in {str(path.parent)!r} (have {available}); "
            "or name one of the task's own splits, e.g. 'test'"
        )
    return json.loads(path.read_text(encoding="utf-8"))


def make_pinned_split(task: Task, size: int, seed: int, source_split: str = "test") -> dict:
    """Draw a pinned subset: ``size`` problems of ``source_split`` chosen with
    ``numpy.random.default_rng(seed)``, kept in their original order."""
    pool = task.problems(source_split)
    size = min(size, len(pool))
    picks = sorted(np.random.default_rng(seed).choice(len(pool), size=size, replace=False))
    chosen = [pool[int(i)] for i in picks]
    return {
        "source_split": source_split,
        "task_version": task.version,
        "seed": seed,
        "uids": [p.uid for p in chosen],
        "hash": problems_hash(chosen),
    }


def pin_splits(
    tasks: Sequence[Task],
    version: str,
    *,
    size: int = 20,
    seed: int = 0,
    source_split: str = "test",
    splits_dir: str | Path | None = None,
) -> Path:
    """Write the pinned split file ``<splits_dir>/<version>.json`` for ``tasks``
    (see :func:`make_pinned_split`)."""
    path = Path(splits_dir or SPLITS_DIR) / f"{version}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    content = {
        "version": version,
        "rule": f"{size} problems of each task's {source_split!r} split drawn with "
        f"numpy.random.default_rng({seed}).choice(n, {size}, replace=False), in split order",
        "tasks": {t.name: make_pinned_split(t, size, seed, source_split) for t in tasks},
    }
    path.write_text(json.dumps(content, indent=1) + "\n", encoding="utf-8")
    return path


def resolve_split(
    task: Task, split: str, splits_dir: str | Path | None = None
) -> tuple[tuple[Problem, ...], str]:
    """The problems of ``split`` and their content hash.

    Raises:
        ValueError: If the split is unknown, or the task's data no longer matches the pin.
    """
    if split in task.splits:
        return task.problems(split), task.split_hash(split)
    entry = pinned_splits(split, splits_dir).get("tasks", {}).get(task.name)
    if entry is None:
        raise ValueError(f"pinned split {split!r} has no entry for task {task.name!r}")
    by_uid = {p.uid: p for p in task.problems(entry["source_split"])}
    absent = [uid for uid in entry["uids"] if uid not in by_uid]
    if absent:
        raise ValueError(f"split {split!r} pins uids missing from {task.name!r}: {absent[:5]}")
    chosen = tuple(by_uid[uid] for uid in entry["uids"])
    digest = problems_hash(chosen)
    if digest != entry["hash"]:
        raise ValueError(
            f"the data of {task.name!r} changed: split {split!r} pins hash {entry['hash']} "
            f"but the problems give {digest}"
        )
    return chosen, digest
