"""Train three LoRA agents of the embedded SmolLM2-135M with PPO on one-step ``arith``.

The settings of the reported run (docs/ppo.md, runs_committed/ppo_arith_compact/); any option of
``spgg train ppo`` overrides them, e.g. a quick smoke run::

    python examples/train_ppo_arith.py --updates 1 --episodes 2 --minibatch-size 2 \
        --eval-size 2 --out runs/ppo_smoke

Then plot the learning curve::

    python examples/train_ppo_arith.py --plot runs/ppo_arith
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from spgg_env.agents import train_cli
from spgg_env.agents.ppo import PPOConfig
from spgg_env.spec import GameSpec

#: One-step easy arith, compact prompt, 3 agents, partial observation, MAC-SPGG defaults; a
#: contribution of 32 model tokens has effort 1 (the generation cap).
GAME = GameSpec(task="arith", task_options={"difficulty": "easy", "max_steps": 1},
                split="train", n_agents=3, prompt_style="compact", max_tokens=32,
                token_counting="model")
DEFAULTS = {
    "game": GAME,
    "episodes": 16,
    "batch_size": 32,
    "minibatch_size": 8,
    "epochs": 2,
    "max_new_tokens": 32,
    "temperature": 0.7,
    "lr": 3e-4,
    "beta": 0.05,
    "eval_size": 64,
    "eval_every": 10,
    "save_every": 5,
    "updates": 400,
    "time_limit_s": 3300.0,
    "threads": 2,
    "out": "runs/ppo_arith",
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


def main(argv: list[str] | None = None) -> int:
    """Train with :data:`DEFAULTS` under the given options (``--plot RUN`` draws a run)."""
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) == 2 and argv[0] == "--plot":
        print(plot(Path(argv[1])))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    train_cli.add_config_arguments(parser, PPOConfig)
    return train_cli.main_ppo(parser.parse_args(argv), DEFAULTS)


if __name__ == "__main__":
    raise SystemExit(main())
