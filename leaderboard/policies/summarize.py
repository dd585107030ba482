"""Summarise the trained generation-parameter policies behind the trained leaderboard rows.

``python leaderboard/policies/summarize.py`` prints one Markdown table row per policy
(``leaderboard/policies/<task>/<setting>/``): PPO iterations done, the mean reward and task
score of the first and last training batch (mean over agents), and each agent's mean
generation parameters on the last batch (``history.json``: the policy's mean action over the
batch's states, before that batch's update), against the untrained policy's starting point
(``ParamRanges.initial``, with ``max_new_tokens`` at the middle of its range). With
``--results`` it adds, per trained submission, the mean parameters its agents really played
on the benchmark problems (from the episode records).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
SHORT = {"temperature": "T", "top_p": "top_p", "top_k": "top_k", "max_new_tokens": "max_new",
         "repetition_penalty": "rep", "presence_penalty": "pres"}
SUBMISSIONS = {"spgg-po": "spgg-po-trained", "spgg-fo": "spgg-fo-trained", "econ": "econ-learned"}


def params_text(values: dict[str, float]) -> str:
    """``T 0.72, top_p 0.89, ...`` in :data:`SHORT` order."""
    return ", ".join(f"{short} {values[name]:.3g}" for name, short in SHORT.items())


def training_row(folder: Path) -> str:
    """The Markdown row of one policy folder."""
    import torch

    state = torch.load(folder / "policy.pt", map_location="cpu", weights_only=True)
    spec, history = state["inference"], json.loads((folder / "history.json").read_text())
    n = spec["n_agents"]

    def mean(row: dict, key: str) -> float:
        return float(np.mean([row[f"agent_{i}/{key}"] for i in range(n)]))

    initial = dict(spec["ranges"]["initial"])
    last = [params_text({k: history[-1][f"agent_{i}/{k}"] for k in SHORT}) for i in range(n)]
    return (
        f"| {spec['task']} | {folder.name} | {state['iteration']} | "
        f"{mean(history[0], 'reward'):.2f} -> {mean(history[-1], 'reward'):.2f} | "
        f"{mean(history[0], 'score'):.2f} -> {mean(history[-1], 'score'):.2f} | "
        f"{'<br>'.join(last)} | {params_text(initial)} |"
    )


def played_row(result: Path) -> str | None:
    """Mean parameters each agent / executor played in a trained submission's episodes."""
    if not (result / "episodes.jsonl").exists():
        return None
    records = [json.loads(line) for line in (result / "episodes.jsonl").read_text().splitlines()]
    per_agent = [r["details"].get("agent_params") or r["details"].get("executor_params")
                 for r in records]
    agents = zip(*per_agent, strict=True)
    means = [params_text({k: float(np.mean([p[k] for p in played])) for k in SHORT})
             for played in agents]
    return f"| {result.name} | {len(records)} | {'<br>'.join(means)} |"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--results", type=Path, default=None,
                        help="leaderboard result folders (e.g. leaderboard/results)")
    args = parser.parse_args(argv)
    print("| task | setting | PPO iterations | reward first -> last | score first -> last | "
          "last-batch mean params per agent | untrained start |")
    print("|---|---|---|---|---|---|---|")
    for folder in sorted(HERE.glob("*/*/")):
        if (folder / "policy.pt").exists():
            print(training_row(folder))
    if args.results is not None:
        print("\n| submission | episodes | mean params played per agent (benchmark) |")
        print("|---|---|---|")
        for folder in sorted(HERE.glob("*/*/")):
            name = f"{folder.parent.name}-{SUBMISSIONS[folder.name]}"
            row = played_row(args.results / name)
            if row:
                print(row)


if __name__ == "__main__":
    main()
