"""Independent SB3 PPO learners on the scalar game (spgg_env.baselines.sb3_learner)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import spgg_env
from spgg_env.baselines.sb3_learner import SB3PPOLearner
from spgg_env.learner import Learner, play_episodes


def game(**kwargs):
    return spgg_env.aec_env(task="scalar", levels=3, observation="full", **kwargs)


def test_one_model_per_agent_updated_on_its_own_decisions():
    learner = SB3PPOLearner(game(), seed=0, options={"n_steps": 8, "batch_size": 8})
    assert isinstance(learner, Learner)
    models = learner.models
    assert len({id(m.policy) for m in models.values()}) == 3
    before = {a: [p.detach().clone() for p in m.policy.parameters()] for a, m in models.items()}
    envs = [game() for _ in range(4)]
    metrics = learner.learn(play_episodes(envs, learner))
    assert "agent_0/updates" not in metrics  # 4 of 8 decisions: no update yet
    metrics = learner.learn(play_episodes(envs, learner))
    for agent, model in models.items():
        assert metrics[f"{agent}/updates"] >= 1
        changed = [not torch.equal(a, b) for a, b in zip(before[agent], model.policy.parameters(),
                                                          strict=True)]
        assert any(changed)
        assert model.rollout_buffer.pos == 0  # trained and emptied


def test_each_decision_is_terminal_so_the_advantage_is_reward_minus_value():
    learner = SB3PPOLearner(game(), seed=1, options={"n_steps": 4, "batch_size": 4})
    model = learner.models["agent_1"]
    model.train = lambda: None  # keep the buffer's contents for inspection
    model.rollout_buffer.reset = lambda: None
    records = play_episodes([game() for _ in range(4)], learner)
    learner.learn(records)
    buffer = model.rollout_buffer
    rewards = np.array([r["agent_1"]["reward"] for r in records], dtype=np.float32)
    np.testing.assert_allclose(buffer.returns.ravel(), rewards, rtol=1e-6)
    np.testing.assert_allclose(buffer.advantages.ravel(), rewards - buffer.values.ravel(),
                               rtol=1e-5, atol=1e-6)


def test_greedy_play_is_deterministic_and_sampling_is_not():
    learner = SB3PPOLearner(game(), seed=2)
    env = game()
    env.reset()
    obs = [env.observe("agent_0")] * 200
    assert len(set(learner.act("agent_0", obs, greedy=True))) == 1
    assert set(learner.act("agent_0", obs)) == {0, 1, 2}


@pytest.mark.slow
def test_independent_ppo_learners_free_ride_in_the_classic_pgg():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        learner = SB3PPOLearner(game(n_agents=2, mechanism="pgg"), seed=0,
                                options={"n_steps": 64, "batch_size": 32})
        envs = [game(n_agents=2, mechanism="pgg") for _ in range(8)]
        for _ in range(60):
            learner.learn(play_episodes(envs, learner))
        record = play_episodes([game(n_agents=2, mechanism="pgg")], learner, greedy=True)[0]
    finally:
        torch.set_num_threads(threads)
    assert [record[a]["action"] for a in ("agent_0", "agent_1")] == [0, 0]
