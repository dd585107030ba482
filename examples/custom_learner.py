"""Plug in your own learner: tabular Q-learning on the scalar game through the PettingZoo API.

Nothing here is special to spgg_env except ``spgg_env.aec_env``: the loop is PettingZoo's
``agent_iter`` / ``last`` / ``step``. The learner follows the learner protocol every learner of
the package follows (the PPO and generation-parameter learners of the text game too):

* ``act(agent, observations, *, greedy=False) -> actions``: one action per observation;
* ``learn(episodes) -> metrics``: one update from finished episodes, each a record
  ``{agent: {"observation", "action", "reward", "info"}}``.

Each agent keeps its own Q-table over (what it observes, its level); episodes are one round, so
the target is the reward itself: ``Q[s, a] += alpha * (r - Q[s, a])``. Exploration is
epsilon-greedy from a seeded generator.

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


class QLearners:
    """Independent Q-learners, one Q-table per agent over (observation, level)."""

    def __init__(self, agents, n_levels: int, rng: np.random.Generator, alpha=0.1, epsilon=0.1):
        self.q = {agent: defaultdict(lambda: np.zeros(n_levels)) for agent in agents}
        self.rng, self.alpha, self.epsilon = rng, alpha, epsilon

    def act(self, agent: str, observations, *, greedy: bool = False) -> list[int]:
        """One level per observation: epsilon-greedy, or the best so far with ``greedy``."""
        actions = []
        for obs in observations:
            values = self.q[agent][obs.tobytes()]
            if not greedy and self.rng.random() < self.epsilon:
                actions.append(int(self.rng.integers(len(values))))
            else:
                actions.append(int(self.rng.choice(np.flatnonzero(values == values.max()))))
        return actions

    def learn(self, episodes) -> dict[str, float]:
        """Move each agent's Q-value of what it did toward the reward it got."""
        for episode in episodes:
            for agent, step in episode.items():
                values = self.q[agent][step["observation"].tobytes()]
                values[step["action"]] += self.alpha * (step["reward"] - values[step["action"]])
        return {f"{agent}/reward": float(np.mean([e[agent]["reward"] for e in episodes]))
                for agent in self.q}


def play(env, learner, greedy=False) -> dict[str, dict]:
    """One episode; returns its record (what each agent saw, did and got)."""
    env.reset()
    record = {}
    for agent in env.agent_iter():
        obs, reward, terminated, truncated, info = env.last()
        if terminated or truncated:
            record[agent].update(reward=reward, info=info)
            env.step(None)
            continue
        (action,) = learner.act(agent, [obs], greedy=greedy)
        record[agent] = {"observation": obs, "action": action}
        env.step(action)
    return record


def main(argv: list[str] | None = None) -> dict[str, list[float]]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--episodes", type=int, default=20_000)
    parser.add_argument("--levels", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    env = spgg_env.aec_env(task="scalar", n_agents=3, observation="full", levels=args.levels)
    env.reset(seed=args.seed)
    learner = QLearners(env.possible_agents, args.levels, np.random.default_rng(args.seed))
    for _ in range(args.episodes):
        learner.learn([play(env, learner)])

    grid = np.linspace(0.0, 1.0, args.levels)
    greedy = play(env, learner, greedy=True)
    learned = [float(grid[greedy[agent]["action"]]) for agent in env.possible_agents]
    spne = solve_spne(make_mechanism("mac-spgg"), 3, grid).path.tolist()
    print(f"greedy play after {args.episodes} episodes: {learned}")
    print(f"exact SPNE path:                      {spne}")
    return {"learned": learned, "spne": spne}


if __name__ == "__main__":
    main()
