"""The learner protocol and its episode loop (spgg_env.learner)."""

from __future__ import annotations

import numpy as np
import pytest

import spgg_env
from spgg_env.learner import Learner, load, play_episodes
from spgg_env.mechanism import make_mechanism


class Scripted:
    """Plays fixed level indices; records every act call."""

    def __init__(self, levels_by_agent: dict[str, int]):
        self.levels_by_agent = levels_by_agent
        self.calls: list[tuple[str, int, bool]] = []

    def act(self, agent, observations, *, greedy=False):
        self.calls.append((agent, len(observations), greedy))
        return [self.levels_by_agent[agent]] * len(observations)

    def learn(self, episodes):
        return {}


def scalar_envs(copies: int, **kwargs):
    return [spgg_env.aec_env(task="scalar", levels=5, **kwargs) for _ in range(copies)]


def test_records_hold_each_agents_decision_and_its_mechanism_reward():
    learner = Scripted({"agent_0": 1, "agent_1": 4, "agent_2": 2})
    envs = scalar_envs(3, observation="full")
    records = play_episodes(envs, learner, seeds=[0, 1, 2])
    expected = make_mechanism("mac-spgg")([0.25, 1.0, 0.5]).total
    assert len(records) == 3
    for record in records:
        assert list(record) == ["agent_0", "agent_1", "agent_2"]
        assert [record[a]["action"] for a in record] == [1, 4, 2]
        assert [record[a]["reward"] for a in record] == pytest.approx(expected, abs=1e-12)
        assert record["agent_2"]["info"]["contribution"] == 0.5
        # agent 2 saw both predecessors' contributions under full observation
        np.testing.assert_allclose(record["agent_2"]["observation"][:3], [0.25, 1.0, 0.0])
    # one act call per agent for the whole batch, in turn order
    assert learner.calls == [("agent_0", 3, False), ("agent_1", 3, False), ("agent_2", 3, False)]


def test_greedy_is_passed_to_act_and_envs_are_reusable():
    learner = Scripted({"agent_0": 0, "agent_1": 0, "agent_2": 0})
    envs = scalar_envs(2)
    play_episodes(envs, learner)
    records = play_episodes(envs, learner, greedy=True)
    assert all(greedy for _, _, greedy in learner.calls[-3:])
    assert all(r["agent_0"]["info"]["group_score"] == 0.0 for r in records)


def test_wrong_number_of_actions_is_a_clear_error():
    class Short(Scripted):
        def act(self, agent, observations, *, greedy=False):
            return [0]

    with pytest.raises(ValueError, match=r"returned 1 actions for 2 observations"):
        play_episodes(scalar_envs(2), Short({}))


def test_a_game_in_which_an_agent_acts_twice_is_refused():
    from pettingzoo.classic import rps_v2

    class Rock:
        def act(self, agent, observations, *, greedy=False):
            return [0] * len(observations)

        def learn(self, episodes):
            return {}

    with pytest.raises(ValueError, match="acted twice"):
        play_episodes([rps_v2.env()], Rock())


def test_built_in_learners_satisfy_the_protocol():
    from spgg_env.baselines.bandit_play import BanditLearner

    env = spgg_env.aec_env(task="scalar", levels=4)
    assert isinstance(BanditLearner(env, seed=0), Learner)
    assert isinstance(Scripted({}), Learner)
    assert not isinstance(object(), Learner)


def test_load_resolves_module_attr_and_names_what_is_wrong():
    assert load("spgg_env.learner:play_episodes") is play_episodes
    assert load("spgg_env.mechanism:MacSpgg.name") == "mac-spgg"
    for bad, match in [("play_episodes", "module:attr"), ("no_such_module_x:f", "cannot import"),
                       ("spgg_env.learner:nope", "no attribute")]:
        with pytest.raises(ValueError, match=match):
            load(bad)
