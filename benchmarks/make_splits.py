"""Pin the versioned benchmark splits: ``python benchmarks/make_splits.py [TASK...]``.

``small-v1``: 20 problems per task, ``tiny-v1``: 5 problems per task, each drawn from the task's
``test`` split with ``numpy.random.default_rng(0)`` and kept in split order, pinned by uid list
and content hash in ``spgg_env/splits/<version>.json``. Rerunning adds tasks to the files and
checks that pinned entries still match the data (a mismatch is an error: bump the version).
GSM8K needs ``SPGG_GSM8K_PATH`` offline; SummEval needs its data (``--summeval-path``).
"""

from __future__ import annotations

import argparse
import json

from spgg_env.splits import SPLITS_DIR, make_pinned_split
from spgg_env.tasks import make_task

VERSIONS = {"small-v1": 20, "tiny-v1": 5}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("tasks", nargs="*", default=["humaneval", "mmlu", "gsm8k", "arith"])
    parser.add_argument("--summeval-path", default=None, help="mteb/summeval-format JSONL")
    args = parser.parse_args()
    for version, size in VERSIONS.items():
        path = SPLITS_DIR / f"{version}.json"
        content = json.loads(path.read_text()) if path.exists() else {"version": version}
        content["rule"] = (
            f"{size} problems of each task's 'test' split drawn with "
            f"numpy.random.default_rng(0).choice(n, {size}, replace=False), in split order"
        )
        entries = content.setdefault("tasks", {})
        for name in args.tasks:
            options = {"data_path": args.summeval_path} if name == "summeval" else {}
            entry = make_pinned_split(make_task(name, **options), size, seed=0)
            if name in entries and entries[name] != entry:
                raise SystemExit(f"{version}/{name}: the data changed; pin a new version")
            entries[name] = entry
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(content, indent=1) + "\n", encoding="utf-8")
        print(path, sorted(entries))


if __name__ == "__main__":
    main()
