"""The paper's generation-parameter policy: bounded map, frozen embedder, PPO direction,
checkpoints; and the preset bandits of the text game (both with a scripted backend)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from transformers import ByT5Tokenizer, LlamaConfig, LlamaModel

import spgg_env
from spgg_env.agents.backend import GenerationParams
from spgg_env.agents.genparam_policy import (
    PARAM_NAMES,
    GenParamConfig,
    GenParamLearner,
    ParamRanges,
    TextEmbedder,
    play_text_episodes,
)
from spgg_env.agents.scripted import ScriptedBackend
from spgg_env.baselines.bandit_play import PRESETS, play_text


def LengthBackend() -> ScriptedBackend:  # noqa: N802 - reads like the class it builds
    """Scripted backend (tests only): its text is exactly ``max_new_tokens`` words."""
    return ScriptedBackend("word " * 600, name="length")


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny networks run ~20x faster on one thread than on a shared, oversubscribed CPU."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def embedder() -> TextEmbedder:
    torch.manual_seed(0)
    tokenizer = ByT5Tokenizer()
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64,
                         num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=4)
    return TextEmbedder(LlamaModel(config), tokenizer, max_length=64)


def test_bounded_map_starts_at_the_initial_values_and_stays_in_range() -> None:
    ranges = ParamRanges()
    start = ranges.to_params(ranges.initial_logits()[None])[0]
    for name in PARAM_NAMES:
        assert getattr(start, name) == pytest.approx(ranges.initial[name], rel=1e-4)
    extreme = ranges.to_params(torch.tensor([[-50.0] * 6, [50.0] * 6]))
    for params, side in zip(extreme, (0, 1), strict=True):
        for name in PARAM_NAMES:
            assert getattr(params, name) == pytest.approx(getattr(ranges, name)[side], abs=1e-4)
    assert isinstance(extreme[1].top_k, int) and isinstance(extreme[1].max_new_tokens, int)


def test_bad_ranges_are_named() -> None:
    with pytest.raises(ValueError, match="top_p"):
        ParamRanges(top_p=(0.9, 0.5))
    with pytest.raises(ValueError, match="initial temperature"):
        ParamRanges(initial={**ParamRanges().initial, "temperature": 3.0})
    with pytest.raises(ValueError, match="lr"):
        GenParamConfig(lr=0.0)


def test_embedder_is_frozen_normalised_and_cached(embedder: TextEmbedder) -> None:
    vectors = embedder.embed(["two plus two", "a longer text about apples", "two plus two"])
    assert vectors.shape == (3, 32)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-5)
    np.testing.assert_array_equal(vectors[0], vectors[2])
    assert not np.allclose(vectors[0], vectors[1])
    assert not any(p.requires_grad for p in embedder.model.parameters())


def test_state_holds_position_and_context(embedder: TextEmbedder) -> None:
    envs = [spgg_env.aec_env(task="arith", n_agents=3, observation="full")]
    learner = GenParamLearner(envs, LengthBackend(), embedder, seed=0)
    states = learner.encoder.encode(["task", "task"], [0, 2], [[], ["a b c", "d e"]])
    assert states.shape == (2, 2 * 32 + 3 + 2)
    assert states[0, 32:35].tolist() == [1.0, 0.0, 0.0]
    assert states[1, 32:35].tolist() == [0.0, 0.0, 1.0]
    assert states[0, 35] == 0.0 and states[1, 35] == 1.0  # share of predecessors visible
    assert states[1, 36] > 0.0  # visible length
    assert torch.all(states[0, 37:] == 0) and torch.any(states[1, 37:] != 0)


def test_lockstep_rollout_pays_every_agent(embedder: TextEmbedder) -> None:
    backend = LengthBackend()
    envs = [spgg_env.aec_env(task="arith", n_agents=3) for _ in range(4)]
    steps = play_text_episodes(
        envs, backend, lambda pos, views: [GenerationParams(max_new_tokens=40 * (pos + 1))] * 4
    )
    assert len(backend.calls) == 3 and all(len(c["params"]) == 4 for c in backend.calls)
    assert [s.params.max_new_tokens for s in steps[0]] == [40, 80, 120]
    assert steps[0][2].visible  # partial observation: agent 2 sees agent 1
    for episode in steps:
        for step in episode:
            assert step.reward == pytest.approx(step.info["reward_components"]["total"])


def test_ppo_lowers_max_new_tokens_when_length_costs(embedder: TextEmbedder, tmp_path) -> None:
    """The scripted backend writes longer texts for larger max_new_tokens; every text scores 0,
    so the token cost is the only thing the reward depends on: PPO must cut max_new_tokens."""
    envs = [spgg_env.aec_env(task="arith", n_agents=2, max_tokens=512) for _ in range(16)]
    learner = GenParamLearner(envs, LengthBackend(), embedder, seed=0)
    before = learner.collect(deterministic=True)[0]
    start = [learner.policies[i].mean_params(before[i]["states"])["max_new_tokens"]
             for i in range(2)]
    history = learner.train(30, checkpoint=tmp_path / "ckpt.pt", progress=False)
    end = [history[-1][f"agent_{i}/max_new_tokens"] for i in range(2)]
    for i in range(2):
        assert end[i] < 0.75 * start[i], (start, end)
    first = np.mean([history[0][f"agent_{i}/reward"] for i in range(2)])
    last = np.mean([history[-1][f"agent_{i}/reward"] for i in range(2)])
    assert last > first
    for row in history:  # the paper's early stop: an update never runs past the KL target epoch
        assert 1 <= row["agent_0/epochs"] <= 4

    # resume: a new learner picks up the checkpoint and does only the remaining iterations
    again = GenParamLearner(envs, LengthBackend(), embedder, seed=0)
    again.train(31, checkpoint=tmp_path / "ckpt.pt", progress=False)
    assert again.iteration == 31 and len(again.history) == 31
    assert again.history[:30] == history


def test_preset_bandits_prefer_cheap_presets_when_only_cost_matters() -> None:
    env = spgg_env.aec_env(task="arith", n_agents=2, max_tokens=512)
    result = play_text(env, LengthBackend(), "epsilon-greedy", episodes=30, seed=0)
    assert result.chosen.shape == (30, 2) and result.rewards.shape == (30, 2)
    assert result.greedy_presets() == ["low", "low"]
    assert list(PRESETS) == result.presets
    # the preset really reached the backend
    assert (result.chosen[-10:] == 0).mean() > 0.5


@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory) -> str:
    """A tiny random causal LM saved as a local folder (loads with TransformersBackend)."""
    from transformers import LlamaForCausalLM

    folder = tmp_path_factory.mktemp("tiny")
    tokenizer = ByT5Tokenizer()
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64,
                         num_hidden_layers=1, num_attention_heads=4, num_key_value_heads=4,
                         eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    torch.manual_seed(0)
    LlamaForCausalLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return str(folder)


def test_cli_trains_a_tiny_local_model_and_resumes(tiny_model_dir, tmp_path, capsys) -> None:
    import argparse
    import json

    from spgg_env.agents import genparam_cli

    def argv(iterations: int) -> list[str]:
        return ["--model", tiny_model_dir, "--agents", "2", "--envs", "2",
                "--iterations", str(iterations), "--max-tokens", "24",
                "--out", str(tmp_path / "run"), "--no-progress"]

    assert genparam_cli.cli(argv(1)) == 0
    assert genparam_cli.cli(argv(2)) == 0  # resumes: one more iteration, not two
    history = json.loads((tmp_path / "run" / "history.json").read_text())
    assert [row["iteration"] for row in history] == [0, 1]
    assert 16 <= history[0]["agent_1/max_new_tokens"] <= 24
    assert (tmp_path / "run" / "checkpoint.pt").exists()
    meta = json.loads((tmp_path / "run" / "run_meta.json").read_text())
    assert meta["packages"]["torch"] and len(meta["split_hash"]) == 64
    assert '"last"' in capsys.readouterr().out

    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers()
    genparam_cli.add_parser(sub)
    args = parser.parse_args(["genparam", "--iterations", "0"])
    assert args.func(args) == 2  # refused before any model is loaded


def test_train_genparam_example_runs_on_a_tiny_model(tiny_model_dir, tmp_path, capsys) -> None:
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "examples" / "train_genparam.py"
    spec = importlib.util.spec_from_file_location("train_genparam_example", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    out = module.main(["--model", tiny_model_dir, "--agents", "2", "--envs", "2",
                       "--iterations", "2", "--max-tokens", "24", "--out", str(tmp_path)])
    assert out["first"]["iteration"] == 0 and out["last"]["iteration"] == 1
    assert (tmp_path / "params.png").stat().st_size > 10_000
    assert "agent_1/max_new_tokens" in capsys.readouterr().out


def test_embedder_loads_a_model_folder(tiny_model_dir) -> None:
    embedder = TextEmbedder(tiny_model_dir, max_length=32)
    assert embedder.dim == 32
    assert embedder.embed(["hello"]).shape == (1, 32)
    with pytest.raises(ValueError, match="tokenizer"):
        TextEmbedder(embedder.model)
