"""Train the paper's generation-parameter policy with frozen LLMs on a real task.

Three agents share one frozen LLM (default: the embedded SmolLM2-135M-Instruct, offline) and
play the text game on a real task through the episode engine; each agent's small policy network
picks the six generation parameters per episode from what its observation shows (task, position,
visible contributions) and is trained with PPO on its MAC-SPGG reward. The state embedding comes
from the same frozen LLM (mean-pooled hidden states), so nothing else is loaded.

Run (about 10 minutes on 2 busy CPU cores)::

    python examples/train_genparam.py --task arith --updates 6 --episodes 8 --threads 1 \
        --out runs/genparam

Every option of ``spgg train genparam`` works here. It prints each agent's mean generation
parameters at the first and the last update, and writes ``history.json``, ``params.png``
(parameter trajectories), TensorBoard logs, a checkpoint (``--resume`` continues it) and
``policy.pt`` into ``--out``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from spgg_env.agents.genparam_learner import GenParamConfig, GenParamLearner
from spgg_env.agents.genparam_ranges import PARAM_NAMES
from spgg_env.agents.train_cli import add_config_arguments, config_from_args
from spgg_env.spec import GameSpec

#: This example's settings where they differ from the learner's defaults (flags win).
DEFAULTS = {
    "game": GameSpec(task="arith", observation="full", max_tokens=128, token_counting="model"),
    "updates": 8,
    "minibatch_size": 4,
    "out": "runs/genparam",
}


def main(argv: list[str] | None = None) -> dict[str, dict[str, float]]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_config_arguments(parser, GenParamConfig)
    args = parser.parse_args(argv)
    config = config_from_args(GenParamConfig, args, DEFAULTS)

    learner = GenParamLearner.from_config(config)
    history = learner.train(resume=args.resume, progress=not args.no_progress)

    first, last = history[0], history[-1]
    n = config.game.n_agents
    title = f"update {last['update']}"
    print(f"{'agent/param':28s} {'update 1':>12s} {title:>14s}")
    for i in range(n):
        for name in (*PARAM_NAMES, "reward", "score"):
            key = f"agent_{i}/{name}"
            print(f"{key:28s} {first[key]:12.3f} {last[key]:14.3f}")
    out = Path(config.out)
    plot(history, n, out / "params.png")
    print(f"wrote {out / 'history.json'} and {out / 'params.png'}")
    return {"first": first, "last": last}


def plot(history: list[dict], n_agents: int, path: Path) -> None:
    """One panel per generation parameter (plus the reward): each agent's mean per update."""
    fig = Figure(figsize=(12, 6))
    axes = fig.subplots(2, 4).ravel()
    steps = np.array([row["update"] for row in history])
    for ax, name in zip(axes, [*PARAM_NAMES, "reward"], strict=False):
        for i in range(n_agents):
            ax.plot(steps, [row[f"agent_{i}/{name}"] for row in history], label=f"agent {i}")
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("PPO update", fontsize=8)
    axes[0].legend(fontsize=7)
    axes[-1].axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=100)


if __name__ == "__main__":
    main()
