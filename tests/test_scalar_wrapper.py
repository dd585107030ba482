"""The single-learner Gymnasium wrapper of the scalar game, with stable-baselines3."""

import runpy
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from stable_baselines3 import PPO
from stable_baselines3.common.env_checker import check_env

from spgg_env.mechanism import make_mechanism
from spgg_env.wrappers import SingleLearnerEnv


@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.parametrize(
    "kwargs",
    [{}, {"levels": 11}, {"seat": "random", "co_players": "random"}, {"observation": "full"}],
)
def test_passes_sb3_check_env(kwargs):
    check_env(SingleLearnerEnv(**kwargs))


def test_episode_is_one_decision_paid_its_final_reward():
    env = SingleLearnerEnv(seat=1, co_players=[0.2, None, lambda obs: np.array([0.8])])
    obs, info = env.reset(seed=0)
    assert info["seat"] == 1
    np.testing.assert_allclose(obs, [0.2, 0, 0, 1, 0, 0, 0, 1, 0], atol=1e-7)
    obs, reward, terminated, truncated, info = env.step(np.array([0.5], dtype=np.float32))
    assert terminated and not truncated
    assert reward == pytest.approx(make_mechanism("mac-spgg")([0.2, 0.5, 0.8]).total[1])
    assert info["contribution"] == pytest.approx(0.5)
    with pytest.raises(RuntimeError, match="reset"):
        env.step(np.array([0.5]))


def test_random_seat_is_seeded_and_covers_every_seat():
    def seats(seed):
        env = SingleLearnerEnv(seat="random", co_players=0.5)
        env.reset(seed=seed)
        return [env.reset()[1]["seat"] for _ in range(60)]

    assert seats(1) == seats(1) and seats(1) != seats(2)
    assert set(seats(1)) == {0, 1, 2}


def test_self_play_co_players_call_the_learners_policy():
    env = SingleLearnerEnv(seat=2, co_players="self", levels=3)
    calls = []
    env.set_policy(lambda obs: calls.append(obs.copy()) or 2)
    env.reset(seed=0)
    _, _, _, _, info = env.step(0)
    assert len(calls) == 2 and calls[1][6:].tolist() == [0, 1, 0]
    assert env.game.contributions.tolist() == [1.0, 1.0, 0.0]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"seat": 3}, "seat"),
        ({"seat": "last"}, "seat"),
        ({"co_players": [0.5, 0.5]}, "co-player"),
        ({"co_players": 1.5}, "co-player"),
        ({"co_players": "greedy"}, "greedy"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        SingleLearnerEnv(**kwargs)


@pytest.mark.parametrize(("mechanism", "best_level"), [("mac-spgg", 10), ("spgg", 0)])
def test_ppo_learns_to_reach_the_threshold_or_free_ride(mechanism, best_level):
    """Last seat, co-players at 0.8: MAC-SPGG pays for reaching B (needs c = 1), classic SPGG
    pays for free-riding (c = 0). A short PPO run must find each."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        env = SingleLearnerEnv(seat=-1, co_players=0.8, mechanism=mechanism, levels=11)
        model = PPO(
            "MlpPolicy", env, n_steps=256, batch_size=64, n_epochs=5, learning_rate=1e-3,
            ent_coef=0.01, seed=0, device="cpu",
        )  # fmt: skip
        model.learn(2048)
    finally:
        torch.set_num_threads(threads)
    obs, _ = env.reset(seed=0)
    assert int(model.predict(obs, deterministic=True)[0]) == best_level


def test_sb3_example_runs(monkeypatch, capsys):
    """examples/sb3_scalar.py (smoke test with a tiny budget)."""
    script = Path(__file__).resolve().parents[1] / "examples" / "sb3_scalar.py"
    monkeypatch.setattr(sys, "argv", [str(script), "--steps", "512"])
    threads = torch.get_num_threads()
    try:
        runpy.run_path(str(script), run_name="__main__")
    finally:
        torch.set_num_threads(threads)
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("mechanism") and [line.split()[0] for line in lines[1:]] == [
        "mac-spgg",
        "spgg",
    ]
    assert "[0. 0. 0.]" in lines[2]  # the classic SPGG's SPNE is full free-riding
