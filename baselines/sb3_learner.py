"""Independent stable-baselines3 PPO learners, one per agent (a :class:`~spgg_env.learner.Learner`).

**How the agents are independent.** Agent i owns its own SB3 ``PPO`` model (its own
``MlpPolicy``, optimiser and rollout buffer) and learns only from its own decisions and rewards.
All agents learn *at the same time* from the same stream of episodes, exactly as the independent
bandits do: no agent is frozen while another trains, and no parameters are shared. (The other
schemes, training one seat at a time with the others frozen, or one shared-parameter policy in
every seat as ``examples/sb3_scalar.py`` does, change the problem: the first is a best-response
iteration and the second a symmetric self-play; neither is "independent learners".)

**How SB3 is driven.** SB3's ``learn()`` wants to own the env loop; here the board owns it.
:meth:`SB3PPOLearner.act` samples from each agent's policy (``deterministic=greedy``);
:meth:`SB3PPOLearner.learn` adds every finished decision to the agent's ``RolloutBuffer``, with
the value and log-probability its policy gives it (the policy has not changed since it acted:
updates happen only here), and once the buffer holds ``n_steps`` decisions runs SB3's own
``PPO.train()`` on it. Every episode is one decision per agent, so each transition is terminal:
the advantage is ``reward - V(obs)`` and the return is the reward (GAE reduces to that).

Each model is built on a placeholder ``gymnasium.Env`` that only carries the agent's spaces (SB3
needs one; it is never stepped). Set ``torch.set_num_threads(1)`` on a shared CPU: ``spgg learners
run`` does.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import gymnasium
import numpy as np
import torch
from stable_baselines3 import PPO
from stable_baselines3.common.logger import Logger

#: PPO settings of the scalar-game learner (per agent): an update every 128 decisions.
PPO_OPTIONS: dict[str, Any] = {
    "n_steps": 128,
    "batch_size": 64,
    "n_epochs": 5,
    "learning_rate": 1e-3,
    "ent_coef": 0.01,
    "gamma": 1.0,
}


class _Spaces(gymnasium.Env):
    """A placeholder env with one agent's spaces, for SB3's constructor; never stepped."""

    def __init__(self, observation_space: gymnasium.Space, action_space: gymnasium.Space):
        self.observation_space, self.action_space = observation_space, action_space

    def reset(self, *, seed: int | None = None, options: dict | None = None):  # noqa: D102
        raise NotImplementedError("the learner board drives the game; SB3 never steps this env")

    def step(self, action: Any):  # noqa: D102
        raise NotImplementedError("the learner board drives the game; SB3 never steps this env")


class SB3PPOLearner:
    """One SB3 PPO model per agent, all learning at once (see the module docstring).

    Args:
        env: Any PettingZoo AEC env whose agents have a SB3-compatible observation and action
            space (e.g. the scalar game with ``levels=K``).
        seed: Agent i's model is seeded ``seed * 1000 + i``.
        options: PPO keyword arguments, over :data:`PPO_OPTIONS`.
    """

    def __init__(self, env: Any, *, seed: int, options: Mapping[str, Any] | None = None) -> None:
        settings = {**PPO_OPTIONS, **(options or {})}
        self.models: dict[str, PPO] = {}
        for i, agent in enumerate(env.possible_agents):
            spaces = _Spaces(env.observation_space(agent), env.action_space(agent))
            model = PPO("MlpPolicy", spaces, seed=seed * 1000 + i, device="cpu", **settings)
            model.set_logger(Logger(folder=None, output_formats=[]))
            model.rollout_buffer.reset()
            self.models[agent] = model

    def act(self, agent: str, observations: Sequence[Any], *, greedy: bool = False) -> list[Any]:
        """Sample (or, with ``greedy``, take the mode of) ``agent``'s policy per observation."""
        policy = self.models[agent].policy
        policy.set_training_mode(False)
        with torch.no_grad():
            obs, _ = policy.obs_to_tensor(np.asarray(observations))
            actions = policy.get_distribution(obs).get_actions(deterministic=greedy).cpu().numpy()
        return actions.tolist()

    def learn(self, episodes: Sequence[Mapping[str, Any]]) -> dict[str, float]:
        """Add each agent's decisions to its rollout buffer; train each full buffer."""
        metrics: dict[str, float] = {}
        for agent, model in self.models.items():
            steps = [episode[agent] for episode in episodes]
            obs = np.asarray([step["observation"] for step in steps])
            actions = np.asarray([step["action"] for step in steps])
            rewards = np.asarray([step["reward"] for step in steps], dtype=np.float32)
            with torch.no_grad():
                obs_tensor, _ = model.policy.obs_to_tensor(obs)
                values, log_probs, _ = model.policy.evaluate_actions(
                    obs_tensor, torch.as_tensor(actions, device=model.device)
                )
            buffer = model.rollout_buffer
            for j in range(len(steps)):
                buffer.add(
                    obs[j : j + 1], actions[j : j + 1].reshape(1, -1), rewards[j : j + 1],
                    np.ones(1, dtype=np.float32), values[j : j + 1], log_probs[j : j + 1],
                )  # fmt: skip
                if buffer.full:
                    buffer.compute_returns_and_advantage(
                        last_values=torch.zeros(1, 1), dones=np.ones(1, dtype=np.float32)
                    )
                    model.train()
                    buffer.reset()
                    metrics[f"{agent}/updates"] = float(model._n_updates)
            metrics[f"{agent}/reward"] = float(rewards.mean())
        return metrics
