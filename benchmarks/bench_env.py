"""Speed of the scalar AEC env next to PettingZoo's ``rps_v2``, and of the vectorised mechanism.

Run::

    python benchmarks/bench_env.py            # ~45 s
    python benchmarks/bench_env.py --seconds 1 --repeats 1   # quick look

Agent-steps per second use PettingZoo's own ``performance_benchmark`` loop (``last()``, sample
an action from the action space, ``step()``, reset when every agent is done), on the wrapped
envs users get (``spgg_env.aec_env(task="scalar")`` and ``pettingzoo.make("aec",
"classic/rps-v2")``; rps needs ``pygame``), measured in alternation in one process. The
``x rps_v2`` column is the median over ``--repeats`` of each repeat's ratio to the rps_v2 run
just before it (robust to a shared machine's changing load); agent-steps/s are medians too.
The goal is >= 1.0x: the scalar env must not be the slow part of a learner's loop. Reward
evaluations per second time one call of the mechanism on a batch of random contribution
profiles (one profile = one game of n agents; agent rewards/s is n times that).
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import pettingzoo

import spgg_env
from spgg_env.mechanism import make_mechanism


def agent_steps_per_second(env, seconds: float) -> float:
    """PettingZoo's ``performance_benchmark`` loop; returns agent-steps (turns) per second."""
    turns = 0
    env.reset(seed=0)
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        for agent in env.agent_iter(env.num_agents):
            _, _, terminated, truncated, _ = env.last()
            env.step(None if terminated or truncated else env.action_space(agent).sample())
            turns += 1
            if all(env.terminations.values()) or all(env.truncations.values()):
                env.reset()
    return turns / (time.perf_counter() - start)


def reward_evaluations_per_second(mechanism: str, batch: int, n_agents: int) -> float:
    """Contribution profiles scored per second by one vectorised call of the mechanism."""
    rng = np.random.default_rng(0)
    contributions = rng.random((batch, n_agents))
    reward = make_mechanism(mechanism)
    reward(contributions[:10])  # warm up
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        _ = reward(contributions).total
        best = min(best, time.perf_counter() - start)
    return batch / best


def main() -> None:
    """Print the table: agent-steps/s and the ratio to rps_v2; reward evaluations/s."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=2.0, help="per measurement")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--batch", type=int, default=1_000_000)
    args = parser.parse_args()

    envs = {
        "rps_v2 (PettingZoo)": lambda: pettingzoo.make("aec", "classic/rps-v2"),
        "spgg scalar, Box action": lambda: spgg_env.aec_env(task="scalar"),
        "spgg scalar, levels=11": lambda: spgg_env.aec_env(task="scalar", levels=11),
    }
    runs: dict[str, list[float]] = {name: [] for name in envs}
    for _ in range(args.repeats):
        for name, make in envs.items():
            runs[name].append(agent_steps_per_second(make(), args.seconds))
    reference = runs["rps_v2 (PettingZoo)"]
    print(f"{'environment':<28}{'agent-steps/s':>15}{'x rps_v2':>10}   x rps_v2 per repeat")
    for name, values in runs.items():
        # each repeat's ratio compares two measurements taken seconds apart (same machine load)
        ratios = [v / r for v, r in zip(values, reference, strict=True)]
        print(
            f"{name:<28}{statistics.median(values):>15,.0f}{statistics.median(ratios):>10.2f}"
            f"   {' '.join(f'{x:.2f}' for x in ratios)}"
        )

    print(f"\n{'mechanism (n=3)':<28}{'profiles/s':>15}{'agent rewards/s':>18}")
    for mechanism in ("mac-spgg", "spgg"):
        rate = reward_evaluations_per_second(mechanism, args.batch, 3)
        print(f"{mechanism:<28}{rate:>15,.0f}{3 * rate:>18,.0f}")


if __name__ == "__main__":
    main()
