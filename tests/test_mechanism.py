"""Reward mechanisms: formulas on hand-computed cases, batching, and input checks."""

import numpy as np
import pytest

from spgg_env.mechanism import ClassicPgg, ClassicSpgg, MacSpgg, make_mechanism


def test_mac_spgg_matches_the_formula_by_hand():
    mech = MacSpgg(B=0.85, gamma=1.5, rho=1.8, P=1.5, kappa=1.28)
    parts = mech([0.2, 0.4, 0.9])
    np.testing.assert_allclose(parts.cost, 1.28 * np.array([0.04, 0.16, 0.81]))
    # synergy: gamma * c_i * mean of predecessors (0 for the first agent)
    np.testing.assert_allclose(parts.synergy, [0.0, 1.5 * 0.4 * 0.2, 1.5 * 0.9 * 0.3])
    np.testing.assert_allclose(parts.public_share, [0.6 * 1.5] * 3)
    np.testing.assert_allclose(parts.penalty, [1.5] * 3)  # G = 0.5 < 0.85
    np.testing.assert_allclose(
        parts.total, -parts.cost + parts.synergy + parts.public_share - parts.penalty
    )


def test_penalty_only_below_threshold_and_exact_threshold_counts_as_reached():
    mech = MacSpgg(B=0.85)
    # (0.9 + 0.8) / 2 is 0.85 up to float rounding: the group reaches B.
    assert np.all(mech([0.9, 0.8]).penalty == 0.0)
    assert np.all(mech([0.9, 0.7]).penalty == mech.P)
    # an explicit group score overrides the mean contribution
    assert np.all(mech([1.0, 1.0], group_score=0.1).penalty == mech.P)
    assert np.all(mech([0.0, 0.0], group_score=0.9).penalty == 0.0)


def test_effort_sets_only_the_cost():
    mech = MacSpgg()
    plain, costly = mech([0.5, 0.5]), mech([0.5, 0.5], effort=[1.0, 0.0])
    np.testing.assert_allclose(costly.cost, [mech.kappa, 0.0])
    np.testing.assert_allclose(costly.synergy, plain.synergy)
    np.testing.assert_allclose(costly.public_share, plain.public_share)


@pytest.mark.parametrize("name", ["mac-spgg", "pgg", "spgg"])
def test_batched_call_equals_row_by_row(name):
    mech = make_mechanism(name)
    c = np.random.default_rng(0).random((2, 5, 4))
    batch = mech(c).total
    assert batch.shape == (2, 5, 4)
    for i in range(2):
        for j in range(5):
            np.testing.assert_allclose(batch[i, j], mech(c[i, j]).total)


def test_classic_payoffs_are_linear_cost_plus_public_share():
    parts = ClassicPgg(rho=1.8, kappa=1.0)([0.0, 0.5, 1.0])
    np.testing.assert_allclose(parts.total, 0.6 * 1.5 - np.array([0.0, 0.5, 1.0]))
    assert not parts.synergy.any() and not parts.penalty.any()
    assert ClassicPgg.sequential is False and ClassicSpgg.sequential is True
    assert make_mechanism("SPGG") == ClassicSpgg()


def test_agent_parts_are_plain_floats_that_add_up():
    parts = MacSpgg()([0.3, 0.6, 0.9]).agent(2)
    assert set(parts) == {"cost", "synergy", "public_share", "penalty", "total"}
    assert all(type(v) is float for v in parts.values())
    assert parts["total"] == pytest.approx(
        -parts["cost"] + parts["synergy"] + parts["public_share"] - parts["penalty"]
    )


@pytest.mark.parametrize(
    ("params", "named"),
    [
        ({"B": 1.5}, "B"),
        ({"gamma": -0.1}, "gamma"),
        ({"rho": float("nan")}, "rho"),
        ({"P": -1}, "P"),
        ({"kappa": 0.0}, "kappa"),
        ({"kappa": "big"}, "kappa"),
    ],
)
def test_invalid_parameters_name_the_parameter_and_range(params, named):
    with pytest.raises(ValueError, match=rf"^{named} must be"):
        make_mechanism("mac-spgg", **params)


def test_make_mechanism_rejects_unknown_names_and_parameters():
    with pytest.raises(ValueError, match="unknown mechanism 'ppg'"):
        make_mechanism("ppg")
    with pytest.raises(ValueError, match=r"unknown parameter\(s\) \['B'\] for mechanism 'pgg'"):
        make_mechanism("pgg", B=0.5)
    with pytest.raises(ValueError, match="cannot be given with a ready mechanism"):
        make_mechanism(MacSpgg(), gamma=1.0)
    ready = MacSpgg(gamma=2.0)
    assert make_mechanism(ready) is ready


def test_numeric_strings_and_numpy_scalars_are_stored_as_floats():
    mech = make_mechanism("mac-spgg", kappa="1.0", B=np.float32(0.5))
    assert type(mech.kappa) is float and type(mech.B) is float
    np.testing.assert_allclose(mech([1.0]).cost, [1.0])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"contributions": [0.5, 1.2]}, r"contributions must be in \[0.0, 1.0\].*1.2"),
        ({"contributions": [0.5, np.nan]}, "contributions must be in"),
        ({"contributions": 0.5}, "trailing agent axis"),
        ({"contributions": [0.5, 0.5], "effort": [0.5]}, "effort shape"),
        ({"contributions": [0.5, 0.5], "effort": [-1.0, 0.0]}, "effort must be in"),
        ({"contributions": [[0.5, 0.5]], "group_score": [0.1, 0.2]}, "group_score shape"),
        ({"contributions": [0.5, 0.5], "group_score": 2.0}, "group_score must be in"),
        ({"contributions": ["a", "b"]}, "contributions must be numbers"),
    ],
)
def test_bad_inputs_raise_clear_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        MacSpgg()(**kwargs)
