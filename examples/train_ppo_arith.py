"""Train three LoRA agents of the embedded SmolLM2-135M with PPO on one-step ``arith``.

The settings of the reported run (docs/ppo.md, runs_committed/ppo_arith_compact/); any option of
``spgg train ppo`` overrides them, e.g. a quick smoke run::

    python examples/train_ppo_arith.py --updates 1 --episodes 2 --minibatch 2 --eval-size 2

Then plot the learning curve::

    python examples/train_ppo_arith.py --plot runs/ppo_arith
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from spgg_env.agents import train_cli

DEFAULTS = {
    "task": "arith",
    "task_options": {"difficulty": "easy", "max_steps": 1},
    "prompt_style": "compact",
    "n_agents": 3,
    "episodes": 16,
    "minibatch": 8,
    "epochs": 2,
    "max_new_tokens": 32,
    "temperature": 0.7,
    "lr": 3e-4,
    "beta": 0.05,
    "eval_size": 64,
    "eval_batch": 32,
    "eval_every": 10,
    "save_every": 5,
    "updates": 400,
    "time_limit_s": 3300.0,
    "threads": 2,
    "out_dir": "runs/ppo_arith",
}


def plot(run: Path) -> Path:
    """Draw mean reward and task score per update (train) and on the held-out set (eval)."""
    import csv

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = list(csv.DictReader((run / "metrics.csv").open()))
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.5))
    for ax, key, title in zip(axes, ("reward", "task_score"), ("mean reward", "task score"),
                              strict=True):
        for split, style in (("train", "-"), ("eval", "o-")):
            points = [(int(r["update"]), float(r[f"{split}/{key}"]))
                      for r in rows if r.get(f"{split}/{key}")]
            if points:
                x, y = zip(*points, strict=True)
                label = "train (sampled)" if split == "train" else "held-out (greedy)"
                ax.plot(x, y, style, label=label)
        ax.set_xlabel("PPO update")
        ax.set_title(title)
        ax.legend()
    fig.tight_layout()
    out = run / "learning_curve.png"
    fig.savefig(out, dpi=100)
    return out


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--plot":
        print(plot(Path(sys.argv[2])))
        raise SystemExit(0)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    train_cli.add_arguments(parser)
    raise SystemExit(train_cli.main(parser.parse_args(), DEFAULTS))
