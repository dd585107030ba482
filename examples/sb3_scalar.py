"""Train stable-baselines3 PPO on the scalar SPGG by shared-parameter self-play.

One PPO policy plays every seat: each episode of :class:`~spgg_env.wrappers.SingleLearnerEnv`
puts it in a random seat and lets the co-players call the same policy (``co_players="self"``).
After training, the greedy policy plays a whole game and its path is printed next to the exact
subgame-perfect equilibrium (:func:`spgg_env.equilibrium.solve_spne`), for MAC-SPGG and for the
classic SPGG, under full observation.

Run::

    python examples/sb3_scalar.py               # 20k steps per mechanism, ~1-2 min on 2 cores
    python examples/sb3_scalar.py --steps 2048  # smoke test
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
from stable_baselines3 import PPO
from stable_baselines3.common.logger import Logger

from spgg_env.equilibrium import solve_spne
from spgg_env.mechanism import make_mechanism
from spgg_env.scalar_env import ScalarSPGGEnv
from spgg_env.wrappers import SingleLearnerEnv

LEVELS = 11


def greedy_path(model: PPO, mechanism: str) -> list[float]:
    """Play one game in which every seat follows the model's greedy action."""
    game = ScalarSPGGEnv(observation="full", mechanism=mechanism, levels=LEVELS)
    game.reset(seed=0)
    for agent in game.possible_agents:
        game.step(int(model.predict(game.observe(agent), deterministic=True)[0]))
    return game.contributions.tolist()


def train(mechanism: str, steps: int, seed: int) -> PPO:
    """PPO self-play on the scalar game with ``mechanism``."""
    env = SingleLearnerEnv(
        seat="random", co_players="self", observation="full", mechanism=mechanism, levels=LEVELS
    )
    model = PPO(
        "MlpPolicy", env, n_steps=512, batch_size=128, n_epochs=5, learning_rate=1e-3,
        ent_coef=0.01, seed=seed, device="cpu",
    )  # fmt: skip
    # no log files: SB3's default logger makes an empty SB3-<date> folder in /tmp per run
    model.set_logger(Logger(folder=None, output_formats=[]))
    env.set_policy(lambda obs: model.predict(obs, deterministic=False)[0])
    env.reset(seed=seed)
    model.learn(steps)
    return model


def main() -> None:
    """Train on each mechanism and print the learned path beside the SPNE."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20_000, help="PPO steps per mechanism")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(1)

    print(f"{'mechanism':<10}{'learned contributions':>26}{'SPNE contributions':>26}")
    for mechanism in ("mac-spgg", "spgg"):
        model = train(mechanism, args.steps, args.seed)
        learned = greedy_path(model, mechanism)
        spne = solve_spne(make_mechanism(mechanism), 3, np.linspace(0, 1, LEVELS))
        target = spne.levels[list(spne.path_index)].tolist()
        print(f"{mechanism:<10}{str(np.round(learned, 1)):>26}{str(np.round(target, 1)):>26}")


if __name__ == "__main__":
    main()
