"""Plug in your own learner: tabular Q-learning on the scalar game through the PettingZoo API.

Nothing here is special to spgg_env except ``spgg_env.aec_env``: the loop is PettingZoo's
``agent_iter`` / ``last`` / ``step``. Each agent keeps its own Q-table over (what it observes,
its level); episodes are one round, so the target is the reward itself:
``Q[s, a] += alpha * (r - Q[s, a])``. Exploration is epsilon-greedy from a seeded generator.

Run::

    python examples/custom_learner.py --episodes 20000

It prints the greedy play after training next to the exact SPNE path from the solver.
"""

from __future__ import annotations

import argparse
from collections import defaultdict

import numpy as np

import spgg_env
from spgg_env.equilibrium import solve_spne
from spgg_env.mechanism import make_mechanism


class QLearner:
    """One agent's Q-table over (observation, level)."""

    def __init__(self, n_levels: int, rng: np.random.Generator, alpha=0.1, epsilon=0.1):
        self.q = defaultdict(lambda: np.zeros(n_levels))
        self.rng, self.alpha, self.epsilon = rng, alpha, epsilon

    def act(self, obs: np.ndarray, greedy: bool = False) -> int:
        values = self.q[obs.tobytes()]
        if not greedy and self.rng.random() < self.epsilon:
            return int(self.rng.integers(len(values)))
        return int(self.rng.choice(np.flatnonzero(values == values.max())))

    def learn(self, obs: np.ndarray, action: int, reward: float) -> None:
        values = self.q[obs.tobytes()]
        values[action] += self.alpha * (reward - values[action])


def play(env, learners, greedy=False):
    """One episode; returns the levels played. Learners update unless ``greedy``."""
    env.reset()
    seen, levels = {}, {}
    for agent in env.agent_iter():
        obs, reward, terminated, truncated, _ = env.last()
        if terminated or truncated:
            if not greedy:
                learners[agent].learn(*seen[agent], reward)
            env.step(None)
            continue
        action = learners[agent].act(obs, greedy)
        seen[agent], levels[agent] = (obs, action), action
        env.step(action)
    return [levels[a] for a in env.possible_agents]


def main(argv: list[str] | None = None) -> dict[str, list[float]]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--episodes", type=int, default=20_000)
    parser.add_argument("--levels", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    env = spgg_env.aec_env(task="scalar", n_agents=3, observation="full", levels=args.levels)
    env.reset(seed=args.seed)
    rng = np.random.default_rng(args.seed)
    learners = {agent: QLearner(args.levels, rng) for agent in env.possible_agents}
    for _ in range(args.episodes):
        play(env, learners)

    grid = np.linspace(0.0, 1.0, args.levels)
    learned = grid[play(env, learners, greedy=True)].tolist()
    spne = solve_spne(make_mechanism("mac-spgg"), 3, grid).path.tolist()
    print(f"greedy play after {args.episodes} episodes: {learned}")
    print(f"exact SPNE path:                      {spne}")
    return {"learned": learned, "spne": spne}


if __name__ == "__main__":
    main()
