"""RLlib's PPO on the scalar SPGG, one policy per agent, next to the bandits (``rllib`` extra).

RLlib (new API stack) samples ``spgg_env.aec_env(task="scalar")`` through its PettingZoo wrapper
(``ray.rllib.env.wrappers.pettingzoo_env.PettingZooEnv``) on a local ``ray.init(num_cpus=2)``;
``multi_agent`` maps every agent to its own PPO policy
(:class:`spgg_env.baselines.rllib_learner.RLlibPPOLearner` holds the configuration). After every
``--episodes / --checkpoints`` training episodes each seed's greedy policies play one game; the
script prints whether that path is the exact equilibrium path
(:func:`spgg_env.equilibrium.solve`: the SPNE under MAC-SPGG, free riding under the classic PGG)
and, for the same game and budget, the same figure for the four independent contextual bandits
(:func:`spgg_env.baselines.bandit_play.play_scalar`).

Run::

    pip install -e ".[rllib]"
    python examples/rllib_scalar.py --episodes 3000 --seeds 2      # the figures in docs/learners.md
    python examples/rllib_scalar.py --episodes 16 --seeds 1 --checkpoints 1 --mechanisms pgg \
        --train-batch 48                                                   # smoke test
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

import spgg_env
from spgg_env.baselines.bandit_play import play_scalar
from spgg_env.baselines.bandits import ALGORITHMS
from spgg_env.baselines.rllib_learner import RLlibPPOLearner
from spgg_env.equilibrium import solve
from spgg_env.learner import play_episodes
from spgg_env.mechanism import make_mechanism

MECHANISMS = ("mac-spgg", "pgg")


def rllib_paths(mechanism: str, args: argparse.Namespace) -> list[list[int]]:
    """Train one RLlib learner per seed; return each seed's greedy path at every checkpoint."""
    kwargs = {"n_agents": args.agents, "levels": args.levels, "observation": "full",
              "mechanism": mechanism}  # fmt: skip
    finals = []
    for seed in range(args.seeds):
        settings = {"train_batch_size_per_learner": args.train_batch,
                    "minibatch_size": min(64, args.train_batch)}  # fmt: skip
        learner = RLlibPPOLearner(
            spgg_env.aec_env(task="scalar", **kwargs), seed=seed, settings=settings
        )
        game = spgg_env.aec_env(task="scalar", **kwargs)
        step = args.episodes // args.checkpoints
        for _ in range(args.checkpoints):
            sampled = learner.fit(step)
            record = play_episodes([game], learner, greedy=True)[0]
            path = [int(record[agent]["action"]) for agent in game.possible_agents]
            print(f"  rllib-ppo seed {seed}: {sampled:>6} episodes, greedy path {path}")
        finals.append(path)
        learner.close()
    return finals


def main(argv: list[str] | None = None) -> dict[str, dict[str, float]]:
    """Train, print the table, and return ``{"mechanism/learner": share of runs on path}``."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--episodes", type=int, default=3000, help="training episodes per seed")
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--agents", type=int, default=3)
    parser.add_argument("--levels", type=int, default=4)
    parser.add_argument("--checkpoints", type=int, default=6)
    parser.add_argument("--mechanisms", nargs="+", default=list(MECHANISMS))
    parser.add_argument("--train-batch", type=int, default=384,
                        help="env steps (agent turns) per PPO iteration")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)

    grid = np.linspace(0.0, 1.0, args.levels)
    shares: dict[str, dict[str, float]] = {}
    for mechanism in args.mechanisms:
        eq = solve(make_mechanism(mechanism), args.agents, grid)
        target = list(eq.path_index)
        print(f"{mechanism}: {eq.concept} path (level indices) {target}")
        start = time.perf_counter()
        finals = rllib_paths(mechanism, args)
        rows = {"rllib-ppo": (np.mean([p == target for p in finals]), np.mean(finals, axis=0))}
        rllib_seconds = time.perf_counter() - start
        for name in sorted(ALGORITHMS):
            result = play_scalar(name, mechanism, n_agents=args.agents, levels=grid,
                                 rounds=args.episodes, runs=max(args.seeds, 8), seed=0)
            path = result.greedy_path()
            rows[name] = ((path == np.array(target)).all(axis=1).mean(), path.mean(axis=0))
        print(f"  {'learner':<16}{'runs on the equilibrium path':>30}{'mean greedy level':>26}")
        for name, (share, mean_path) in rows.items():
            print(f"  {name:<16}{share:>30.0%}{str(np.round(mean_path, 2).tolist()):>26}")
            shares.setdefault(mechanism, {})[name] = float(share)
        print(f"  (rllib: {args.seeds} seeds x {args.episodes} episodes in {rllib_seconds:.0f} s;"
              f" bandits: {max(args.seeds, 8)} runs)")
    return shares


if __name__ == "__main__":
    main()
