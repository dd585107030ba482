"""Behaviour of the scalar game: observation layout, rewards, levels, bad actions."""

import math

import numpy as np
import pytest

import spgg_env
from spgg_env.mechanism import MacSpgg, RewardBreakdown, make_mechanism
from spgg_env.scalar_env import ScalarSPGGEnv, one_game_payoffs


def finish(env, actions):
    for action in actions:
        env.step(action)
    return {a: (env._cumulative_rewards[a], env.infos[a]) for a in env.possible_agents}


@pytest.mark.parametrize(
    ("observation", "mask_last"),
    [("partial", [0, 1, 0]), ("full", [1, 1, 0]), ("none", [0, 0, 0])],
)
def test_observation_layout(observation, mask_last):
    env = ScalarSPGGEnv(observation=observation)
    env.reset(seed=0)
    env.step(np.array([0.25], dtype=np.float32))
    env.step(0.5)
    obs = env.observe("agent_2")
    assert obs.dtype == np.float32 and obs.shape == (9,)
    np.testing.assert_array_equal(obs[3:6], mask_last)
    np.testing.assert_allclose(obs[:3], np.array([0.25, 0.5, 0.0]) * mask_last)
    np.testing.assert_array_equal(obs[6:], [0, 0, 1])
    # a later agent's not-yet-made contributions stay hidden
    fresh = ScalarSPGGEnv(observation=observation)
    fresh.reset()
    assert not fresh.observe("agent_2")[:6].any()


@pytest.mark.parametrize("mechanism", ["mac-spgg", "spgg", "pgg"])
def test_rewards_match_the_mechanism(mechanism):
    env = ScalarSPGGEnv(n_agents=4, mechanism=mechanism, mechanism_params={"rho": 2.0})
    env.reset(seed=0)
    c = [0.9, 0.1, 0.6, 1.0]
    finals = finish(env, c)
    expected = make_mechanism(mechanism, rho=2.0)(c)
    for i, agent in enumerate(env.possible_agents):
        reward, info = finals[agent]
        assert reward == pytest.approx(expected.total[i], abs=1e-12)
        assert info["reward_components"] == pytest.approx(expected.agent(i))
        assert info["contribution"] == pytest.approx(c[i])
        assert info["group_score"] == pytest.approx(np.mean(c))
        assert env.terminations[agent]


def test_discrete_levels_map_to_contributions():
    env = ScalarSPGGEnv(levels=5)
    env.reset()
    finals = finish(env, [0, np.int64(2), np.array(4)])
    assert [finals[a][1]["contribution"] for a in env.possible_agents] == [0.0, 0.5, 1.0]


@pytest.mark.parametrize("bad", [1.5, -0.01, math.nan, np.array([2.0], dtype=np.float32)])
def test_out_of_range_contribution_raises_value_error(bad):
    env = spgg_env.aec_env(task="scalar")
    env.reset()
    env.step(0.3)
    with pytest.raises(ValueError, match=r"agent_1.*\[0, 1\].*(nan|2\.0|1\.5|-0\.01)"):
        env.step(bad)
    env.step(0.3)  # still agent_1's turn: the game goes on
    assert env.agent_selection == "agent_2"


@pytest.mark.parametrize(
    ("levels", "bad", "error"),
    [
        (None, "0.5", TypeError),
        (None, [0.5], TypeError),
        (None, np.array([0.1, 0.2]), TypeError),
        (None, True, TypeError),
        (5, 0.5, TypeError),
        (5, 5, ValueError),
        (5, -1, ValueError),
    ],
)
def test_bad_actions_name_the_agent(levels, bad, error):
    env = ScalarSPGGEnv(levels=levels)
    env.reset()
    with pytest.raises(error, match="agent_0"):
        env.step(bad)


@pytest.mark.parametrize(
    "kwargs",
    [{"n_agents": 0}, {"levels": 1}, {"observation": "x"}, {"render_mode": "rgb_array"}],
)
def test_bad_constructor_arguments(kwargs):
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        ScalarSPGGEnv(**kwargs)


def test_box_samples_are_seeded_and_in_range():
    a, b = ScalarSPGGEnv().action_space("agent_0"), ScalarSPGGEnv().action_space("agent_0")
    a.seed(3)
    b.seed(3)
    xs = np.array([a.sample() for _ in range(200)])
    assert np.array_equal(xs, np.array([b.sample() for _ in range(200)]))
    assert all(a.contains(x) for x in xs) and xs.std() > 0.2


def test_render_ansi():
    env = ScalarSPGGEnv(render_mode="ansi")
    env.reset()
    env.step(0.5)
    assert env.render() == "agent_0=0.500"


def test_simultaneous_mechanism_hides_predecessors():
    env = ScalarSPGGEnv(observation="full", mechanism="pgg")
    env.reset()
    env.step(0.7)
    env.step(0.2)
    assert env.observation_mode == "none" and not env.observe("agent_2")[:6].any()


def test_state_holds_every_contribution_so_far():
    env = ScalarSPGGEnv(observation="partial")
    env.reset()
    env.step(0.25)
    env.step(0.5)
    np.testing.assert_allclose(env.state(), [0.25, 0.5, 0, 1, 1, 0])
    assert env.state_space.contains(env.state())


@pytest.mark.parametrize("mechanism", ["mac-spgg", "spgg", "pgg"])
def test_one_game_payoffs_equal_the_vectorised_mechanism_bit_for_bit(mechanism):
    """The env's plain-float payoffs are the mechanism's, to the last bit (n = 1..12, random
    parameters, random profiles and grid profiles whose mean sits exactly at B)."""
    rng = np.random.default_rng(0)
    for n in range(1, 13):
        params = {"rho": float(rng.uniform(0, 3)), "kappa": float(rng.uniform(0.1, 2))}
        if mechanism == "mac-spgg":
            params |= {"gamma": float(rng.uniform(0, 3)), "P": 1.5, "B": 0.85}
        mech = make_mechanism(mechanism, **params)
        grid = np.linspace(0, 1, 21)
        profiles = [rng.random(n) for _ in range(50)]
        profiles += [grid[rng.integers(15, 21, n)] for _ in range(50)]
        for c in profiles:
            group, parts = one_game_payoffs(mech, c)
            expected = mech(c)
            assert group == float(c.mean())
            for got, want in zip(parts, (expected.cost, expected.synergy,
                                         expected.public_share, expected.penalty), strict=True):
                assert got == want.tolist()


def test_one_game_payoffs_call_any_other_mechanism_as_it_is():
    class Doubled(MacSpgg):
        def __call__(self, contributions, group_score=None, effort=None):
            b = super().__call__(contributions, group_score, effort)
            return RewardBreakdown(2 * b.cost, 2 * b.synergy, 2 * b.public_share, 2 * b.penalty)

    env = ScalarSPGGEnv(mechanism=Doubled())
    env.reset()
    finals = finish(env, [0.2, 0.4, 0.9])
    expected = 2 * MacSpgg()([0.2, 0.4, 0.9]).total
    assert [finals[a][0] for a in env.possible_agents] == pytest.approx(expected, abs=1e-12)


def test_observations_are_fresh_arrays():
    env = ScalarSPGGEnv(observation="full")
    env.reset()
    env.step(0.4)
    first = env.observe("agent_1")
    first[:] = 7.0
    expected = np.array([0.4, 0, 0, 1, 0, 0, 0, 1, 0], dtype=np.float32)
    np.testing.assert_array_equal(env.observe("agent_1"), expected)
