"""How fast does the SummEval judge score? Pairs per CPU-second, before and after, and bf16.

Times, on one real article (``--articles N``: N of them) and in one process with one thread:

- ``before``: the judge as it was before the KV-cache rewrite (one full prompt per summary and
  dimension, batched with left padding), loaded from a file given with ``--baseline``, e.g.
  ``git show 252cb7e:spgg_env/judge.py > /tmp/old_judge.py``; on ``--baseline-summaries``;
- ``zero-shot``: today's judge (article prefix once, body once per summary, four question
  rows), on all the article's summaries;
- ``head``: the trained head (article prefix once, body once per summary, no question rows when
  the head does not read them);
- ``bf16``: the zero-shot judge in bfloat16 against float32 on ``--bf16-summaries``: max and mean
  absolute difference of the 1-5 scores, and its speed.

CPU seconds (``time.process_time``) are reported beside wall seconds: on a shared machine they
say what the work costs, and ``1,600 pairs`` is projected from them for one dedicated core.

    nice -n 10 python examples/judge_speed.py --baseline /tmp/old_judge.py --out runs/speed.json
    python examples/judge_speed.py --judges head --article 0 --articles 100   # all 1,600 pairs
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from spgg_env.judge import DIMENSIONS, Judge
from spgg_env.judge.head import TRAINED_HEAD
from spgg_env.judge_features import article_order
from spgg_env.provenance import environment

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "summeval" / "test.jsonl"


def loaded(judge):
    """``judge`` with its model loaded (so that loading is not timed)."""
    assert judge.scorer is not None
    return judge


def timed(label: str, judge, pairs: list[tuple[str, str]]) -> tuple[dict, list]:
    """Score ``pairs`` with a fresh judge; wall and CPU seconds per pair."""
    wall, cpu = time.perf_counter(), time.process_time()
    verdicts = judge.score_many(pairs)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    row = {"judge": label, "pairs": len(pairs), "wall_s": wall, "cpu_s": cpu,
           "cpu_s_per_pair": cpu / len(pairs), "pairs_per_cpu_s": len(pairs) / cpu,
           "minutes_for_1600_pairs": 1600 * cpu / len(pairs) / 60}
    print(f"{label}: {len(pairs)} pairs, {wall:.1f} s wall, {cpu:.1f} s CPU, "
          f"{row['pairs_per_cpu_s']:.3f} pairs/CPU-s, 1,600 pairs ~ "
          f"{row['minutes_for_1600_pairs']:.1f} CPU-min", flush=True)
    return row, verdicts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--article", type=int, default=1, help="position in the seeded order")
    parser.add_argument("--articles", type=int, default=1,
                        help="how many articles from there (100 from 0: all 1,600 pairs)")
    parser.add_argument("--baseline", type=Path, default=None, help="the old judge.py")
    parser.add_argument("--baseline-summaries", type=int, default=2)
    parser.add_argument("--bf16-summaries", type=int, default=4)
    parser.add_argument("--judges", default="before,zero-shot,head,bf16",
                        help="comma-separated subset to time")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    torch.set_num_threads(1)
    rows = [json.loads(line) for line in args.data.read_text(encoding="utf-8").splitlines()]
    chosen = [rows[i] for i in article_order(len(rows))[args.article:args.article + args.articles]]
    pairs = [(row["text"], s) for row in chosen for s in row["machine_summaries"]]
    results = []
    wanted = set(args.judges.split(","))

    if args.baseline is not None and "before" in wanted:
        spec = importlib.util.spec_from_file_location("old_judge", args.baseline)
        old = importlib.util.module_from_spec(spec)
        sys.modules["old_judge"] = old  # dataclasses look their module up there
        spec.loader.exec_module(old)
        old_judge = loaded(old.Judge(device="cpu"))
        results.append(timed("before (full prompt per dimension)", old_judge,
                             pairs[: args.baseline_summaries])[0])
    if wanted & {"zero-shot", "bf16"}:
        zero = loaded(Judge(device="cpu", method="zero-shot"))
        row_zero, fp32 = timed("zero-shot (prefix KV reuse)", zero, pairs)
        results.append(row_zero)
    if TRAINED_HEAD.is_file() and "head" in wanted:
        head = loaded(Judge(device="cpu", method="head"))
        results.append(timed("trained head", head, pairs)[0])
    if "bf16" in wanted:
        bf16 = loaded(Judge(device="cpu", method="zero-shot", dtype="bfloat16"))
        row_bf16, low = timed("zero-shot bf16", bf16, pairs[: args.bf16_summaries])
        diffs = np.array([[a.scores[d] - b.scores[d] for d in DIMENSIONS]
                          for a, b in zip(fp32, low, strict=False)])
        row_bf16.update(max_abs_diff=float(np.abs(diffs).max()),
                        mean_abs_diff=float(np.abs(diffs).mean()))
        print(f"bf16 vs fp32 on {len(low)} pairs x 4 dimensions: max |diff| "
              f"{row_bf16['max_abs_diff']:.4f}, mean {row_bf16['mean_abs_diff']:.4f} (1-5)")
        results.append(row_bf16)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"articles": [row["id"] for row in chosen],
                                        "results": results,
                                        "provenance": environment()}, indent=1)
                            + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
