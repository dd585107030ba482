"""Pin the versioned benchmark splits: ``python benchmarks/make_splits.py [TASK...]``.

Each version draws, per task, ``size`` problems of the task's ``test`` split with
``numpy.random.default_rng(0)`` (all of them when the split is no larger), kept in split order,
pinned by uid list and content hash in ``spgg_env/splits/<version>.json``:

* ``small-v1``: 20 problems per task; ``tiny-v1``: 5 problems per task (the first boards);
* ``board-v1``: the task board (issue 15): every HumanEval problem (164), every SummEval
  article (100), 150 GSM8K problems, 150 easy ``arith`` problems and 150 MMLU questions (on
  this CPU one MMLU call costs about 300 tokens, so 150 rather than more). A paired
  difference of 0.10 between two methods is detectable at this size; the entry of a task
  built with options (``arith``: ``difficulty: easy``) records them under ``task_options``,
  and a config must build its task with the same options (the content hash refuses any
  other).

Rerunning adds tasks to the files and checks that pinned entries still match the data (a
mismatch is an error: bump the version). GSM8K needs ``SPGG_GSM8K_PATH`` offline; SummEval
needs its data (``--summeval-path``).
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from spgg_env.splits import SPLITS_DIR, make_pinned_split
from spgg_env.tasks import make_task

ALL_TASKS = ("humaneval", "mmlu", "gsm8k", "arith", "summeval")
#: version -> task -> problems pinned (capped at the split's size).
SIZES: dict[str, dict[str, int]] = {
    "small-v1": dict.fromkeys(("humaneval", "mmlu", "gsm8k", "arith"), 20),
    "tiny-v1": dict.fromkeys(("humaneval", "mmlu", "gsm8k", "arith"), 5),
    "board-v1": {"humaneval": 164, "summeval": 100, "gsm8k": 150, "arith": 150, "mmlu": 150},
}
#: version -> task -> the task options its problems are drawn with.
OPTIONS: dict[str, dict[str, dict[str, Any]]] = {"board-v1": {"arith": {"difficulty": "easy"}}}


def rule(version: str) -> str:
    """The drawing rule written into a version's file."""
    sizes = SIZES[version]
    if len(set(sizes.values())) == 1:
        size = next(iter(sizes.values()))
        return (f"{size} problems of each task's 'test' split drawn with "
                f"numpy.random.default_rng(0).choice(n, {size}, replace=False), in split order")
    listed = ", ".join(f"{task} {size}" for task, size in sizes.items())
    return (f"per task ({listed}; all problems when the split is smaller) of the task's 'test' "
            "split, built with the entry's task_options, drawn with "
            "numpy.random.default_rng(0).choice(n, size, replace=False), in split order")


def pinned_entry(version: str, name: str, summeval_path: str | None) -> dict[str, Any]:
    """The pinned entry of task ``name`` in ``version`` (loads the task's data)."""
    options = OPTIONS.get(version, {}).get(name, {})
    data = {"data_path": summeval_path} if name == "summeval" else {}
    entry = make_pinned_split(make_task(name, **options, **data), SIZES[version][name], seed=0)
    return {**entry, "task_options": options} if options else entry


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("tasks", nargs="*", default=["humaneval", "mmlu", "gsm8k", "arith"],
                        choices=ALL_TASKS, metavar="TASK", help=f"tasks to pin ({ALL_TASKS})")
    parser.add_argument("--versions", nargs="+", default=list(SIZES), choices=list(SIZES),
                        help="versions to write (default: all)")
    parser.add_argument("--summeval-path", default=None, help="mteb/summeval-format JSONL")
    args = parser.parse_args()
    for version in args.versions:
        path = SPLITS_DIR / f"{version}.json"
        content = json.loads(path.read_text()) if path.exists() else {"version": version}
        content["rule"] = rule(version)
        entries = content.setdefault("tasks", {})
        for name in args.tasks:
            if name not in SIZES[version]:
                continue
            entry = pinned_entry(version, name, args.summeval_path)
            if name in entries and entries[name] != entry:
                raise SystemExit(f"{version}/{name}: the data changed; pin a new version")
            entries[name] = entry
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(content, indent=1) + "\n", encoding="utf-8")
        print(path, sorted(entries))


if __name__ == "__main__":
    main()
