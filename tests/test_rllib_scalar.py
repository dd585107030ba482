"""RLlib on the scalar game (the ``rllib`` extra): skipped cleanly without Ray."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

pytest.importorskip("ray.rllib", reason="RLlib is the optional 'rllib' extra: pip install .[rllib]")

import spgg_env  # noqa: E402
from spgg_env.baselines.learner_board import BoardConfig, board_rows, run_board  # noqa: E402

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "rllib_scalar.py"


def test_example_smoke_run_prints_rllib_next_to_the_bandits(capsys):
    spec = importlib.util.spec_from_file_location("rllib_scalar_example", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    shares = module.main(["--episodes", "16", "--seeds", "1", "--checkpoints", "1",
                          "--mechanisms", "pgg", "--train-batch", "48"])
    assert set(shares) == {"pgg"}
    assert set(shares["pgg"]) == {"rllib-ppo", "epsilon-greedy", "exp3", "thompson", "ucb1"}
    assert all(0.0 <= v <= 1.0 for row in shares.values() for v in row.values())
    out = capsys.readouterr().out
    assert "rllib-ppo seed 0:" in out and "greedy path" in out


def test_rllib_learner_on_the_board_is_self_driven_and_acts_in_the_action_space(tmp_path):
    config = BoardConfig(learner="rllib-ppo", mechanisms=("pgg",), agents=(2,), seeds=(0,),
                         episodes=40, checkpoints=1)
    _, result = run_board(config, tmp_path)
    (seed,) = result["cells"][0]["seeds"]
    assert seed["checkpoints"]["episodes"][0] >= 40  # RLlib samples whole iterations
    assert all(0 <= level < 4 for level in seed["final_path"])
    assert board_rows([result])[0]["learner"] == "rllib-ppo"


def test_rllib_learner_samples_and_takes_the_mode():
    from spgg_env.baselines.rllib_learner import RLlibPPOLearner

    env = spgg_env.aec_env(task="scalar", n_agents=2, levels=4, observation="full")
    learner = RLlibPPOLearner(env, seed=0)
    try:
        env.reset()
        obs = [env.observe("agent_0")] * 64
        greedy = learner.act("agent_0", obs, greedy=True)
        sampled = learner.act("agent_0", obs)
        assert len(set(greedy)) == 1 and len(set(sampled)) > 1  # untrained: near uniform
        assert all(0 <= a < 4 for a in sampled)
    finally:
        learner.close()
