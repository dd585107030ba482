"""RLlib's PPO on a PettingZoo game, one policy per agent (needs the ``rllib`` extra).

RLlib owns its sampling loop (EnvRunners step the env through
``ray.rllib.env.wrappers.pettingzoo_env.PettingZooEnv``), so :class:`RLlibPPOLearner` is a
*self-driven* learner: instead of :meth:`~spgg_env.learner.Learner.learn` it offers
``fit(episodes)``, which trains until RLlib has sampled that many more episodes, and it offers
:meth:`act` like every learner (the learner board reads ``act(..., greedy=True)`` to check the
path). Configuration (RLlib's new API stack):

* ``multi_agent(policies=every agent, policy_mapping_fn=agent -> its own policy)``: one
  independent PPO module per agent, no parameter sharing;
* local sampling and learning in the driver (``num_env_runners=0``, ``num_learners=0``) on one
  ``ray.init(num_cpus=2)`` cluster, so a run is reproducible from ``seed``
  (``debugging(seed=...)``);
* PPO settings in :data:`PPO_SETTINGS` (a small MLP, like the SB3 learner).

The env RLlib samples from is a deep copy of the env given to the constructor, wrapped in
RLlib's PettingZoo wrapper.
"""

from __future__ import annotations

import copy
import itertools
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import ray
import torch
from ray.rllib.algorithms.ppo import PPOConfig
from ray.rllib.core.rl_module.multi_rl_module import MultiRLModuleSpec
from ray.rllib.core.rl_module.rl_module import RLModuleSpec
from ray.rllib.env.wrappers.pettingzoo_env import PettingZooEnv
from ray.tune.registry import register_env

#: PPO settings: ``train_batch_size_per_learner`` counts env steps (one agent turn each).
PPO_SETTINGS: dict[str, Any] = {
    "train_batch_size_per_learner": 384,
    "minibatch_size": 64,
    "num_epochs": 5,
    "lr": 1e-3,
    "entropy_coeff": 0.01,
    "gamma": 1.0,
}
#: The policy network of every agent.
MODEL_CONFIG: dict[str, Any] = {"fcnet_hiddens": [64, 64]}

_names = itertools.count()


def ensure_ray(num_cpus: int = 2) -> None:
    """Start a local Ray (``num_cpus`` CPUs, no dashboard) unless one is running."""
    if not ray.is_initialized():
        ray.init(num_cpus=num_cpus, include_dashboard=False, log_to_driver=False)


class RLlibPPOLearner:
    """Independent RLlib PPO policies, one per agent (see the module docstring).

    Args:
        env: A PettingZoo AEC env (copied for RLlib's sampling).
        seed: RLlib's seed (``debugging(seed=...)``).
        settings: PPO ``training()`` settings over :data:`PPO_SETTINGS`.
    """

    def __init__(self, env: Any, *, seed: int, settings: Mapping[str, Any] | None = None):
        ensure_ray()
        self.agents = list(env.possible_agents)
        name = f"spgg_rllib_{next(_names)}"
        specs = {agent: RLModuleSpec(model_config=MODEL_CONFIG) for agent in self.agents}
        register_env(name, lambda _config, env=env: PettingZooEnv(copy.deepcopy(env)))
        config = (
            PPOConfig()
            .environment(name)
            .multi_agent(
                policies=set(self.agents),
                policy_mapping_fn=lambda agent_id, episode, **kwargs: agent_id,
            )
            .rl_module(rl_module_spec=MultiRLModuleSpec(rl_module_specs=specs))
            .env_runners(num_env_runners=0, num_envs_per_env_runner=1)
            .learners(num_learners=0)
            .training(**{**PPO_SETTINGS, **(settings or {})})
            .debugging(seed=seed)
            .reporting(metrics_num_episodes_for_smoothing=1)
        )
        self.algo = config.build_algo()
        self.episodes = 0

    def fit(self, episodes: int) -> int:
        """Train (whole PPO iterations) until at least ``episodes`` more episodes are sampled.

        Returns:
            The number of episodes RLlib has sampled so far.
        """
        target = self.episodes + episodes
        while self.episodes < target:
            result = self.algo.train()
            self.episodes = int(result["env_runners"]["num_episodes_lifetime"])
        return self.episodes

    def act(self, agent: str, observations: Sequence[Any], *, greedy: bool = False) -> list[int]:
        """Actions of ``agent``'s policy: its mode with ``greedy``, else a sample."""
        module = self.algo.get_module(agent)
        with torch.no_grad():
            obs = torch.as_tensor(np.asarray(observations, dtype=np.float32))
            logits = module.forward_inference({"obs": obs})["action_dist_inputs"]
        if greedy:
            return logits.argmax(dim=-1).tolist()
        return torch.distributions.Categorical(logits=logits).sample().tolist()

    def close(self) -> None:
        """Stop the algorithm (its EnvRunner and learner)."""
        self.algo.stop()
