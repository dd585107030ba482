"""The exact solver: cross-checked against a plain recursive solver, and what it shows
about the mechanisms (Theorems 1 and 2 of the MAC-SPGG paper, on our formula and grid)."""

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from spgg_env.equilibrium import solve, solve_nash, solve_spne, spne_policy, sweep
from spgg_env.mechanism import ClassicPgg, MacSpgg, RewardBreakdown, make_mechanism


def _reference_spne(mech, n, grid, prefix=()):
    """Textbook backward induction, one node at a time: (payoffs, {prefix: choice})."""
    if len(prefix) == n:
        return mech(np.array(prefix, dtype=float)).total, {}
    policy, options = {}, []
    for k in range(len(grid)):
        value, sub = _reference_spne(mech, n, grid, (*prefix, grid[k]))
        policy.update(sub)
        options.append(value)
    mover = len(prefix)
    choice = int(np.argmax([v[mover] for v in options]))
    policy[prefix] = choice
    return options[choice], policy


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_vectorised_spne_equals_textbook_backward_induction(seed):
    rng = np.random.default_rng(seed)
    mech = MacSpgg(
        B=float(rng.uniform(0.3, 0.9)),
        gamma=float(rng.uniform(0, 3)),
        rho=float(rng.uniform(0, 3)),
        P=float(rng.uniform(0, 2)),
        kappa=float(rng.uniform(0.3, 2)),
    )
    grid = np.sort(rng.choice(np.linspace(0, 1, 21), size=4, replace=False))
    eq = solve_spne(mech, 3, grid)
    assert eq.unique  # random parameters: no exact ties, so argmax choices are the SPNE
    payoffs, policy = _reference_spne(mech, 3, grid)
    np.testing.assert_allclose(eq.payoffs, payoffs)
    for prefix, choice in policy.items():
        indices = tuple(int(np.flatnonzero(grid == c)[0]) for c in prefix)
        assert eq.action(len(prefix), indices) == choice


@pytest.mark.parametrize("n", [2, 3, 4, 5])
def test_theorem1_default_mac_spgg_has_unique_cooperative_spne(n):
    eq = solve(make_mechanism("mac-spgg"), n)
    assert eq.concept == "spne"
    assert eq.unique and eq.n_ties == 0
    assert eq.all_positive
    assert eq.reaches_threshold and eq.group_score >= 0.85 - 1e-9


def test_default_spne_path_and_the_penalty_is_what_reaches_B():
    eq = solve(make_mechanism("mac-spgg"), 3)
    np.testing.assert_allclose(eq.path, [0.6, 1.0, 1.0])
    np.testing.assert_allclose(eq.payoffs, [1.0992, 1.18, 1.48])
    free = solve(make_mechanism("mac-spgg", P=0.0), 3)
    assert not free.reaches_threshold  # without P the group stops short of B
    np.testing.assert_allclose(free.path, [0.5, 0.6, 0.6])


@pytest.mark.parametrize("n", [2, 3, 4, 5])
def test_classic_games_free_ride(n):
    nash = solve(make_mechanism("pgg"), n)
    assert nash.concept == "nash" and nash.unique
    assert nash.equilibria.tolist() == [[0] * n]  # the only pure NE: nobody contributes
    spne = solve(make_mechanism("spgg"), n)
    assert spne.concept == "spne" and spne.unique
    assert not spne.path.any() and not spne.payoffs.any()


def test_ties_are_detected_and_broken_toward_the_lowest_level():
    indifferent = ClassicPgg(rho=3.0, kappa=1.0)  # rho / n == kappa for n = 3
    spne = solve_spne(indifferent, 3, np.linspace(0, 1, 5))
    assert not spne.unique
    assert spne.n_ties == 1 + 5 + 25  # every decision node
    assert not spne.path.any()
    nash = solve_nash(indifferent, 3, np.linspace(0, 1, 5))
    assert not nash.unique and len(nash.equilibria) == 5**3


@dataclass(frozen=True)
class _Coordination:
    """A user-defined simultaneous mechanism: each agent wants to match the others' mean."""

    sequential: bool = False

    def __call__(self, contributions, group_score=None, effort=None):
        c = np.asarray(contributions, dtype=float)
        others = (c.sum(-1, keepdims=True) - c) / (c.shape[-1] - 1)
        zero = np.zeros_like(c)
        return RewardBreakdown(
            cost=(c - others) ** 2, synergy=zero, public_share=zero, penalty=zero
        )


def test_any_mechanism_object_works_and_all_pure_nash_are_listed():
    nash = solve(_Coordination(), 3, [0.0, 0.5, 1.0])
    assert nash.equilibria.tolist() == [[0, 0, 0], [1, 1, 1], [2, 2, 2]]
    assert not nash.unique and nash.threshold == 0.0 and nash.reaches_threshold
    with pytest.raises(ValueError, match="action"):
        nash.action(0)


def test_policy_tables_have_one_entry_per_history():
    policy = spne_policy(make_mechanism("mac-spgg"), 3)
    assert [p.shape for p in policy] == [(), (11,), (11, 11)]
    eq = solve(make_mechanism("mac-spgg"), 3)
    assert eq.action(0) == 6 and eq.action(2, (6, 10)) == 10
    # the last agent, facing predecessors too low to reach B, stops paying for it
    assert eq.action(2, (0, 0)) < 10
    with pytest.raises(ValueError, match="agent 2 sees 2 predecessors, got 1"):
        eq.action(2, (6,))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"levels": [0.0, 0.5, 0.5]}, "strictly increasing"),
        ({"levels": [0.3]}, "at least 2 values"),
        ({"n_agents": 0}, "n_agents must be a positive integer"),
        ({"n_agents": 7}, r"11\*\*7 = 19487171 profiles, above max_leaves"),
    ],
)
def test_bad_solver_arguments_raise(kwargs, message):
    with pytest.raises(ValueError, match=message):
        solve(make_mechanism("mac-spgg"), **kwargs)


def test_sweep_maps_where_the_cooperative_spne_holds():
    table = sweep("mac-spgg", {"gamma": [0.0, 1.5, 3.0], "P": [0.0, 1.5]}, n_agents=3)
    assert table["welfare"].shape == (3, 2) and table["path"].shape == (3, 2, 3)
    np.testing.assert_array_equal(table["P"][0], [0.0, 1.5])
    assert not table["reaches_B"][:, 0].any()  # no penalty: B is missed for every gamma
    assert table["cooperative"][:, 1].all()
    assert table["welfare"][1, 1] == pytest.approx(solve(MacSpgg(), 3).welfare)
    fixed = sweep("mac-spgg", {"P": [1.5]}, n_agents=3, fixed={"B": 0.3})
    assert fixed["group_score"][0] < 0.85
    with pytest.raises(ValueError, match="param_grid must name"):
        sweep("mac-spgg", {})


def _welfare(param, values, n, **fixed):
    return sweep("mac-spgg", {param: values}, n_agents=n, fixed=fixed)["welfare"]


@pytest.mark.parametrize("n", [2, 3, 4, 5])
@pytest.mark.parametrize(
    ("param", "values"), [("gamma", [0, 0.75, 1.5, 2.25, 3]), ("rho", [0.5, 1.0, 1.8, 2.5, 3.0])]
)
def test_theorem2_welfare_rises_with_gamma_and_rho(n, param, values):
    assert np.all(np.diff(_welfare(param, values, n)) > 0)


def test_theorem2_in_B_holds_only_where_B_starts_to_bind_or_stops_being_reachable():
    """Our formula's welfare in B (n = 3, defaults) is flat while B is slack, falls where B
    starts to bind (the first mover drops to the least its followers will complete), then
    *rises* while the SPNE still reaches B (B pushes the first mover towards the efficient
    all-max profile), and falls again once B is out of reach (every agent pays P)."""
    grid = np.linspace(0.0, 1.0, 21)
    table = sweep("mac-spgg", {"B": grid}, n_agents=3)
    welfare, path = table["welfare"], table["path"]
    slack = grid < 0.375  # B in 0, 0.05, ..., 0.35
    assert np.ptp(welfare[slack]) == 0 and np.allclose(path[slack], [0.5, 0.6, 0.6])
    onset = int(np.argmax(~slack))
    assert welfare[onset] < welfare[onset - 1] and path[onset, 0] == 0.0
    assert table["reaches_B"][onset:].all() and np.all(np.diff(welfare[onset:]) > 0)
    # with a small penalty B = 1 is out of reach: welfare falls below every reached level
    weak = sweep("mac-spgg", {"B": [0.85, 0.9, 0.95, 1.0]}, n_agents=3, fixed={"P": 0.1})
    assert weak["reaches_B"].tolist() == [True, True, True, False]
    assert weak["welfare"][-1] < weak["welfare"][:-1].min()


def test_example_script_draws_the_map(tmp_path):
    script = Path(__file__).resolve().parents[1] / "examples" / "equilibrium_map.py"
    out = tmp_path / "map.png"
    run = subprocess.run(
        [sys.executable, str(script), "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "n=3: path [0.6, 1.0, 1.0]" in run.stdout and "unique=False" not in run.stdout
