"""The one seed derivation: stable, independent streams named by paths."""

from __future__ import annotations

import numpy as np
import pytest

from spgg_env.seeding import EPISODE, GENERATION, derive_seed, episode_seed, generation_seed, rng


def test_a_path_always_gives_the_same_seed_and_different_paths_differ():
    assert derive_seed(0, EPISODE, 3) == derive_seed(0, EPISODE, 3) == episode_seed(0, 3)
    seeds = {derive_seed(root, *path) for root in (0, 1, 2**40)
             for path in [(), (EPISODE, 0), (EPISODE, 1), (GENERATION, 0, 0, 0), ("ppo",),
                          ("ppo", 1), (1, 23), (12, 3), (123,)]}
    assert len(seeds) == 27  # no collision, and (1, 23) is not (12, 3) nor (123,)
    assert all(0 <= s < 2**63 for s in seeds)


def test_pinned_values_so_a_refactor_cannot_silently_change_every_run():
    assert episode_seed(0, 0) == derive_seed(0, EPISODE, 0) == 8918656092699349677
    assert generation_seed(7, 2, 1) == derive_seed(7, GENERATION, 2, 1, 0)


def test_streams_look_independent():
    a = rng(0, EPISODE, 0).random(20_000)
    b = rng(0, EPISODE, 1).random(20_000)
    assert abs(np.corrcoef(a, b)[0, 1]) < 0.03


@pytest.mark.parametrize("bad", [-1, 1.5, None, True])
def test_bad_path_elements_are_named(bad):
    with pytest.raises((TypeError, ValueError), match="seed path"):
        derive_seed(0, bad)
