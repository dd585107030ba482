"""Train the paper's generation-parameter policy with frozen LLMs on a real task.

Three agents share one frozen LLM (default: the embedded SmolLM2-135M-Instruct, offline) and
play the text game on a real task; each agent's small policy network picks the six generation
parameters per episode and is trained with PPO on its MAC-SPGG reward. The state embedding comes
from the same frozen LLM (mean-pooled hidden states), so nothing else is loaded.

Run (about 10 minutes on 2 busy CPU cores)::

    python examples/train_genparam.py --task arith --iterations 6 --envs 8 --threads 1 \
        --out runs/genparam

It prints each agent's mean generation parameters at the first and the last iteration, writes
``history.json``, ``params.png`` (parameter trajectories), TensorBoard logs and a checkpoint
(re-running the command resumes from it).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch
from matplotlib.figure import Figure

from spgg_env.agents.genparam_policy import PARAM_NAMES, GenParamConfig, GenParamLearner


def main(argv: list[str] | None = None) -> dict[str, dict[str, float]]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--task", default="arith", help="arith, gsm8k, mmlu, humaneval...")
    parser.add_argument("--model", default="embedded", help="model folder, hub id or 'embedded'")
    parser.add_argument("--agents", type=int, default=3)
    parser.add_argument("--envs", type=int, default=8, help="episodes per PPO iteration")
    parser.add_argument("--iterations", type=int, default=8)
    parser.add_argument("--max-tokens", type=int, default=128, help="env tokens at effort 1")
    parser.add_argument("--minibatch", type=int, default=4, help="PPO minibatch size")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("runs/genparam"))
    parser.add_argument("--threads", type=int, default=None,
                        help="torch CPU threads (1 is much faster on a shared, busy CPU)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    learner = GenParamLearner.for_task(
        args.task, model=args.model, n_agents=args.agents, n_envs=args.envs,
        max_tokens=args.max_tokens, seed=args.seed,
        config=GenParamConfig(minibatch_size=args.minibatch),
    )
    args.out.mkdir(parents=True, exist_ok=True)
    history = learner.train(args.iterations, log_dir=args.out / "tb",
                            checkpoint=args.out / "checkpoint.pt")
    (args.out / "history.json").write_text(json.dumps(history, indent=1))

    first, last = history[0], history[-1]
    print(f"{'agent/param':28s} {'iteration 0':>12s} {f'iteration {len(history) - 1}':>14s}")
    for i in range(args.agents):
        for name in (*PARAM_NAMES, "reward", "score"):
            key = f"agent_{i}/{name}"
            print(f"{key:28s} {first[key]:12.3f} {last[key]:14.3f}")
    plot(history, args.agents, args.out / "params.png")
    print(f"wrote {args.out / 'history.json'} and {args.out / 'params.png'}")
    return {"first": first, "last": last}


def plot(history: list[dict], n_agents: int, path: Path) -> None:
    """One panel per generation parameter (plus the reward): each agent's mean per iteration."""
    fig = Figure(figsize=(12, 6))
    axes = fig.subplots(2, 4).ravel()
    steps = np.arange(len(history))
    for ax, name in zip(axes, [*PARAM_NAMES, "reward"], strict=False):
        for i in range(n_agents):
            ax.plot(steps, [row[f"agent_{i}/{name}"] for row in history], label=f"agent {i}")
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("PPO iteration", fontsize=8)
    axes[0].legend(fontsize=7)
    axes[-1].axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=100)


if __name__ == "__main__":
    main()
