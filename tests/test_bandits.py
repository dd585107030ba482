"""Scalar bandits: the algorithms on stationary problems, reward scaling, and convergence of
independent (contextual) bandits to the solver's SPNE under MAC-SPGG and to free riding under
PGG."""

from __future__ import annotations

import numpy as np
import pytest

from spgg_env.baselines.bandit_play import (
    context_index,
    play_scalar,
    reward_bounds,
)
from spgg_env.baselines.bandits import ALGORITHMS, EXP3, UCB1, make_bandit, scale_rewards
from spgg_env.equilibrium import solve, solve_spne
from spgg_env.mechanism import make_mechanism

NAMES = sorted(ALGORITHMS)
LEVELS = np.linspace(0.0, 1.0, 5)


@pytest.mark.parametrize("name", NAMES)
def test_finds_best_arm_of_a_stationary_problem(name: str) -> None:
    means = np.array([0.2, 0.5, 0.8])
    bandit = make_bandit(name, 3, contexts=2, runs=8, seed=1)
    rng = np.random.default_rng(0)
    for t in range(1500):
        ctx = np.full(8, t % 2)
        arms = bandit.select(ctx)
        bandit.update(ctx, arms, (rng.random(8) < means[arms]).astype(float))
    assert (bandit.greedy() == 2).all()
    # most plays go to the best arm once learning is done
    assert bandit.counts[..., 2].sum() > 0.6 * bandit.counts.sum()


@pytest.mark.parametrize("name", NAMES)
def test_same_seed_same_plays_other_seed_other_plays(name: str) -> None:
    def plays(seed: int) -> list[int]:
        bandit = make_bandit(name, 4, runs=1, seed=seed)
        out = []
        for _ in range(60):
            arm = bandit.select([0])
            bandit.update([0], arm, [0.5 if arm[0] == 1 else 0.4])
            out.append(int(arm[0]))
        return out

    assert plays(3) == plays(3)
    assert plays(3) != plays(4)


def test_ucb1_tries_every_arm_first() -> None:
    bandit = UCB1(6, runs=3, seed=0)
    first = []
    for _ in range(6):
        first.append(bandit.select(np.zeros(3, int)))
        bandit.update(np.zeros(3, int), first[-1], np.zeros(3))
    assert (bandit.counts[:, 0] == 1).all()
    # random tie breaking: the runs do not all try the arms in the same order
    assert len({tuple(a) for a in np.stack(first, axis=1)}) > 1


def test_discount_bounds_the_memory() -> None:
    bandit = make_bandit("ucb1", 2, runs=1, seed=0, discount=0.9)
    for _ in range(500):
        arm = bandit.select([0])
        bandit.update([0], arm, [1.0])
    assert bandit.counts.sum() == pytest.approx(1 / (1 - 0.9), rel=1e-6)
    assert bandit.plays[0, 0] == 500


def test_exp3_probabilities_mix_in_uniform_exploration() -> None:
    bandit = EXP3(4, runs=2, seed=0, gamma=0.2)
    bandit.log_weights[:, 0, 0] = 50.0
    probs = bandit.probabilities([0, 0])
    np.testing.assert_allclose(probs.sum(axis=-1), 1.0)
    np.testing.assert_allclose(probs[:, 1:], 0.2 / 4)


def test_bad_input_is_named() -> None:
    bandit = make_bandit("thompson", 3, runs=2)
    with pytest.raises(ValueError, match=r"\[0, 1\].*scale_rewards"):
        bandit.update([0, 0], [0, 1], [0.5, 1.7])
    with pytest.raises(ValueError, match="contexts must be in"):
        bandit.select([0, 5])
    with pytest.raises(ValueError, match="unknown bandit 'ucb2'"):
        make_bandit("ucb2", 3)
    with pytest.raises(ValueError, match="bad option"):
        make_bandit("ucb1", 3, epsilon=0.1)
    with pytest.raises(ValueError, match="discount"):
        make_bandit("exp3", 3, discount=0.0)
    with pytest.raises(ValueError, match="low < high"):
        scale_rewards([1.0], 2.0, 2.0)


def test_reward_bounds_are_exact_on_the_grid_and_cover_the_text_game() -> None:
    mech = make_mechanism("mac-spgg")
    low, high = reward_bounds(mech, 3, LEVELS)
    grid = np.stack(np.meshgrid(LEVELS, LEVELS, LEVELS, indexing="ij"), -1).reshape(-1, 3)
    totals = mech(grid).total
    assert (low, high) == (totals.min(), totals.max())
    text_low, text_high = reward_bounds(mech, 3)
    # text game: worst is full effort, no contribution and the penalty; best is zero effort
    # with everyone's contribution and the full synergy bonus
    assert text_low == pytest.approx(-mech.kappa - mech.P)
    assert text_high == pytest.approx(mech.gamma + mech.rho)
    rng = np.random.default_rng(0)
    c, e, g = rng.random((500, 3)), rng.random((500, 3)), rng.random(500)
    sampled = mech(c, group_score=g, effort=e).total
    assert text_low <= sampled.min() and sampled.max() <= text_high
    np.testing.assert_allclose(scale_rewards([low, high], low, high), [0.0, 1.0])


def test_full_context_index_matches_the_solver_table_layout() -> None:
    eq = solve_spne(make_mechanism("mac-spgg"), 3, LEVELS)
    chosen = np.array([[3, 1, 0]])
    flat = eq.policy[2].reshape(-1)
    assert flat[context_index(chosen, 2, 5, "full")[0]] == eq.policy[2][3, 1]
    assert context_index(chosen, 2, 5, "partial")[0] == 1
    assert context_index(chosen, 2, 5, "none")[0] == 0


def test_contextual_bandits_reach_the_spne_of_mac_spgg() -> None:
    """Full observation, K = 5 levels: the solver's unique SPNE path is (0.75, 1, 1).

    Criterion: in at least 3 of the 4 algorithms, at least 6 of 8 seeded runs end with a greedy
    path equal to the SPNE path; in all 4, the greedy contributions are within 0.2 of the SPNE
    on average over runs (EXP3 is the slowest)."""
    eq = solve_spne(make_mechanism("mac-spgg"), 3, LEVELS)
    assert eq.unique and eq.all_positive
    exact = {}
    for name in NAMES:
        result = play_scalar(name, "mac-spgg", levels=5, rounds=10_000, runs=8, seed=0)
        path = result.greedy_path()
        exact[name] = int((path == np.array(eq.path_index)).all(axis=1).sum())
        assert np.abs(LEVELS[path].mean(axis=0) - eq.path).max() <= 0.2, name
        # the last mover's table agrees with its best response after the SPNE's first moves
        table = result.greedy_table(2)[:, eq.path_index[0]]
        assert (table[:, eq.path_index[1]] == eq.policy[2][eq.path_index[:2]]).mean() >= 0.75
    assert sum(count >= 6 for count in exact.values()) >= 3, exact


def test_bandits_free_ride_under_classic_pgg() -> None:
    """Classic PGG is simultaneous: context-free bandits; 0 is the dominant level.

    Deterministic UCB1 is the known exception: its learners correlate their exploration and
    drift to full contribution (see docs/learners.md), so 3 of 4 algorithms must free-ride."""
    eq = solve(make_mechanism("pgg"), 3, LEVELS)
    assert eq.path_index == (0, 0, 0)
    free_riding = {}
    for name in NAMES:
        result = play_scalar(name, "pgg", levels=5, rounds=3000, runs=8, seed=0)
        assert result.observation == "none"
        free_riding[name] = float((result.greedy_path() == 0).all(axis=1).mean())
    assert sum(share >= 0.75 for share in free_riding.values()) >= 3, free_riding


def test_learning_curve_shape_and_values() -> None:
    result = play_scalar("thompson", "pgg", levels=3, rounds=50, runs=2, seed=0)
    curve = result.mean_level(window=10)
    assert curve.shape == (41, 3)
    assert ((curve >= 0) & (curve <= 1)).all()
    assert result.rewards.shape == (50, 2, 3)
    with pytest.raises(ValueError, match="unknown observation"):
        play_scalar("ucb1", levels=3, rounds=5, observation="hidden")


def test_learning_curve_example_writes_its_plot(tmp_path) -> None:
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "examples" / "bandits_scalar.py"
    spec = importlib.util.spec_from_file_location("bandits_scalar_example", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    out = tmp_path / "curves.png"
    summary = module.main(["--rounds", "300", "--runs", "2", "--out", str(out)])
    assert out.stat().st_size > 10_000
    assert set(summary) == {f"{m}/{a}" for m in ("mac-spgg", "pgg") for a in NAMES}
    assert all(0.0 <= row["share_on_path"] <= 1.0 for row in summary.values())


@pytest.mark.parametrize("name", NAMES)
def test_greedy_at_a_context_is_the_greedy_table_there(name: str) -> None:
    bandit = make_bandit(name, 4, contexts=6, runs=5, seed=2)
    rng = np.random.default_rng(1)
    for _ in range(200):
        ctx = rng.integers(0, 6, 5)
        bandit.update(ctx, bandit.select(ctx), rng.random(5))
    ctx = np.array([0, 5, 2, 2, 3])
    np.testing.assert_array_equal(bandit.greedy(ctx), bandit.greedy()[np.arange(5), ctx])
    np.testing.assert_array_equal(bandit.means(ctx), bandit.means()[np.arange(5), ctx])


@pytest.mark.parametrize("observation", ["full", "partial", "none"])
def test_bandit_learner_reads_the_context_play_scalar_uses_from_the_observation(observation):
    import spgg_env
    from spgg_env.baselines.bandit_play import BanditLearner, context_counts

    env = spgg_env.aec_env(task="scalar", n_agents=4, levels=5, observation=observation)
    learner = BanditLearner(env, seed=0)
    chosen = np.array([[3, 1, 4, 0]])
    env.reset()
    for i, agent in enumerate(env.possible_agents):
        ctx = learner.contexts([env.observe(agent)])
        assert ctx[0] == context_index(chosen, i, 5, observation)[0]
        assert ctx[0] < context_counts(4, 5, observation)[i]
        env.step(int(chosen[0, i]))


def test_bandit_learner_refuses_a_continuous_game_and_odd_batches() -> None:
    import spgg_env
    from spgg_env.baselines.bandit_play import BanditLearner

    with pytest.raises(ValueError, match="levels"):
        BanditLearner(spgg_env.aec_env(task="scalar"), seed=0)
    learner = BanditLearner(spgg_env.aec_env(task="scalar", levels=3), seed=0, runs=2)
    obs = spgg_env.aec_env(task="scalar", levels=3).observation_space("agent_0").sample()
    with pytest.raises(ValueError, match="multiple of runs=2"):
        learner.act("agent_0", [obs] * 3)
