"""The paper's generation-parameter learner on the episode engine: bounded map, frozen
embedder, state from the observation, PPO direction, checkpoints; and the preset bandits of the
text game (both with a scripted backend)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from transformers import ByT5Tokenizer, LlamaConfig, LlamaModel

from spgg_env.agents.backend import GenerationParams
from spgg_env.agents.genparam_learner import GenParamConfig, GenParamLearner
from spgg_env.agents.genparam_ranges import PARAM_NAMES, ParamRanges
from spgg_env.agents.genparam_state import TextEmbedder, observed
from spgg_env.agents.scripted import ScriptedBackend
from spgg_env.baselines.bandit_play import PRESETS, play_text
from spgg_env.spec import GameSpec


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


def learner(embedder, tmp_path, **overrides) -> GenParamLearner:
    """A learner on arith with the scripted length backend."""
    game = GameSpec(task="arith", n_agents=overrides.pop("n_agents", 3),
                    observation=overrides.pop("observation", "partial"), max_tokens=512)
    config = GenParamConfig(game=game, out=str(tmp_path), **overrides)
    return GenParamLearner(config, LengthBackend(), embedder)


def test_state_holds_position_and_context(embedder: TextEmbedder, tmp_path) -> None:
    encoder = learner(embedder, tmp_path).encoder
    states = encoder.encode(["task", "task"], [0, 2], [[], ["a b c", "d e"]])
    assert states.shape == (2, 2 * 32 + 3 + 2)
    assert states[0, 32:35].tolist() == [1.0, 0.0, 0.0]
    assert states[1, 32:35].tolist() == [0.0, 0.0, 1.0]
    assert states[0, 35] == 0.0 and states[1, 35] == 1.0  # share of predecessors visible
    assert states[1, 36] > 0.0  # visible length
    assert torch.all(states[0, 37:] == 0) and torch.any(states[1, 37:] != 0)


def test_state_comes_from_the_observation_only(embedder: TextEmbedder, tmp_path) -> None:
    """The v1 observation's task, position and visible contributions, nothing else."""
    observation = {"prompt": "ignored", "task": "What is 2 + 3?", "position": 2,
                   "contributions": ("", "I say 5.", "hidden"), "visible": np.array([0, 1, 0])}
    assert observed(observation) == ("What is 2 + 3?", 2, ["I say 5."])
    encoder = learner(embedder, tmp_path).encoder
    torch.testing.assert_close(encoder.observations([observation]),
                               encoder.encode(["What is 2 + 3?"], [2], [["I say 5."]]))
    changed = {**observation, "prompt": "another rendering"}
    torch.testing.assert_close(encoder.observations([changed]),
                               encoder.observations([observation]))


def test_act_chooses_params_and_carries_its_choice(embedder: TextEmbedder, tmp_path) -> None:
    gp = learner(embedder, tmp_path)
    observation = {"prompt": "Solve: 2 + 3", "task": "2 + 3", "position": 1,
                   "contributions": ("5", "", ""), "visible": np.array([1, 0, 0])}
    (request,) = gp.act("agent_1", [observation])
    assert request.backend == "model" and request.role == "agent_1"
    assert request.prompt[-1] == {"role": "user", "content": "Solve: 2 + 3"}
    z = request.meta["z"]
    assert request.params == gp.ranges.to_params(z[None])[0]
    with torch.no_grad():
        dist, _ = gp.networks[1](request.meta["state"][None])
    assert request.meta["log_prob"] == pytest.approx(float(dist.log_prob(z).sum()), abs=1e-5)
    (greedy,) = gp.act("agent_1", [observation], greedy=True)
    torch.testing.assert_close(greedy.meta["z"], dist.mean[0])
    assert gp.act("agent_1", [observation], greedy=True)[0].params == greedy.params


def test_episodes_on_the_engine_pay_every_agent(embedder: TextEmbedder, tmp_path) -> None:
    backend_calls = []
    gp = learner(embedder, tmp_path, episodes=4, batch_size=4)
    original = gp.backend.generate

    def spy(prompts, params, *, seed=None):
        backend_calls.append(len(prompts))
        return original(prompts, params, seed=seed)

    gp.backend.generate = spy
    episodes = gp.play_update()
    assert backend_calls == [4, 4, 4]  # one lockstep call per position
    assert [e.index for e in episodes] == [0, 1, 2, 3] and all(e.finished for e in episodes)
    for episode in episodes:
        for step in episode.steps:
            assert step.reward == pytest.approx(step.info["reward_components"]["total"])
            assert len(step.action.split()) == step.request.params.max_new_tokens
        assert episode.steps[2].observation["visible"].tolist() == [0, 1, 0]  # partial obs.


def test_ppo_lowers_max_new_tokens_when_length_costs(embedder: TextEmbedder, tmp_path) -> None:
    """The scripted backend writes longer texts for larger max_new_tokens; every text scores 0,
    so the token cost is the only thing the reward depends on: PPO must cut max_new_tokens."""
    gp = learner(embedder, tmp_path, n_agents=2, episodes=16, updates=30)
    history = gp.train(progress=False)
    start = ParamRanges.for_budget(512).initial["max_new_tokens"]
    end = [history[-1][f"agent_{i}/max_new_tokens"] for i in range(2)]
    for i in range(2):
        assert history[0][f"agent_{i}/max_new_tokens"] == pytest.approx(start, rel=0.02)
        assert end[i] < 0.75 * start, (start, end)
    first = np.mean([history[0][f"agent_{i}/reward"] for i in range(2)])
    last = np.mean([history[-1][f"agent_{i}/reward"] for i in range(2)])
    assert last > first
    for row in history:  # the paper's early stop: an update never runs past the KL target epoch
        assert 1 <= row["agent_0/epochs"] <= 4
    assert [row["update"] for row in history] == list(range(1, 31))
    for name in ("checkpoint.pt", "policy.pt", "history.json", "config.json", "run_meta.json"):
        assert (tmp_path / name).is_file(), name

    # resume: a new learner picks up the checkpoint and does only the remaining update
    again = learner(embedder, tmp_path, n_agents=2, episodes=16, updates=31)
    with pytest.raises(FileExistsError, match="resume"):
        again.train(progress=False)
    again.train(resume=True, progress=False)
    assert again.update == 31 and len(again.history) == 31
    assert again.history[:30] == history


def test_resumed_run_equals_an_uninterrupted_one(embedder: TextEmbedder, tmp_path) -> None:
    """z noise, problems and minibatch order derive from (seed, update): stop and resume is
    the same run, to the bit."""
    straight = learner(embedder, tmp_path / "a", n_agents=2, episodes=4, updates=3)
    straight.train(progress=False)
    learner(embedder, tmp_path / "b", n_agents=2, episodes=4, updates=1).train(progress=False)
    resumed = learner(embedder, tmp_path / "b", n_agents=2, episodes=4, updates=3)
    resumed.train(resume=True, progress=False)
    assert resumed.history == straight.history
    for a, b in zip(straight.networks.parameters(), resumed.networks.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    other = learner(embedder, tmp_path / "b", n_agents=2, episodes=4, updates=4,
                    observation="full")
    with pytest.raises(ValueError, match="observation: 'partial' vs 'full'"):
        other.load(tmp_path / "b" / "checkpoint.pt")


def test_learn_refuses_episodes_it_did_not_choose(embedder: TextEmbedder, tmp_path) -> None:
    from spgg_env.agents.engine import Engine, Request
    from spgg_env.agents.episodes import EpisodeRunner
    from spgg_env.agents.llm_agent import LLMAgent

    gp = learner(embedder, tmp_path, n_agents=2)

    class Fixed:
        def act(self, agent, observations):
            return [Request(LLMAgent(agent, None).chat(o), GenerationParams(), backend="model")
                    for o in observations]

    episodes = EpisodeRunner(gp.config.game, Fixed(),
                             Engine({"model": gp.backend})).play([(0, None)])
    with pytest.raises(ValueError, match="carry no chosen parameters"):
        gp.learn(episodes)


def test_preset_bandits_prefer_cheap_presets_when_only_cost_matters() -> None:
    backend = LengthBackend()
    game = GameSpec(task="arith", n_agents=2, max_tokens=512)
    result = play_text(game, backend, "epsilon-greedy", episodes=30, seed=0)
    assert result.chosen.shape == (30, 2) and result.rewards.shape == (30, 2)
    assert result.greedy_presets() == ["low", "low"]
    assert list(PRESETS) == result.presets
    # the preset really reached the backend, and the reward is the one the episode paid
    played = [p for call in backend.calls for p in call["params"]]
    assert played == [PRESETS[result.presets[k]] for k in result.chosen.ravel()]
    assert (result.chosen[-10:] == 0).mean() > 0.5
    assert [e.rewards for e in result.episodes] == [
        dict(zip(["agent_0", "agent_1"], row, strict=True)) for row in result.rewards.tolist()]
    again = play_text(game, LengthBackend(), "epsilon-greedy", episodes=30, seed=0)
    np.testing.assert_array_equal(again.chosen, result.chosen)  # seeded


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
    import json

    from spgg_env.agents import train_cli

    def argv(updates: int, *more: str) -> list[str]:
        return ["genparam", "--model", tiny_model_dir, "--n-agents", "2", "--episodes", "2",
                "--updates", str(updates), "--max-tokens", "24", "--out", str(tmp_path / "run"),
                "--no-progress", *more]

    assert train_cli.cli(argv(1)) == 0
    assert train_cli.cli(argv(2, "--resume")) == 0  # resumes: one more update, not two
    history = json.loads((tmp_path / "run" / "history.json").read_text())
    assert [row["update"] for row in history] == [1, 2]
    assert 16 <= history[0]["agent_1/max_new_tokens"] <= 24
    assert (tmp_path / "run" / "checkpoint.pt").exists()
    meta = json.loads((tmp_path / "run" / "run_meta.json").read_text())
    assert meta["packages"]["torch"] and len(meta["split_hash"]) == 64
    game = GameSpec(task="arith", n_agents=2, observation="full", max_tokens=24,
                    token_counting="model")
    assert meta["game"] == game.to_dict()
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["game"] == game.to_dict() and config["updates"] == 2
    assert '"last"' in capsys.readouterr().out
    assert train_cli.cli(["genparam", "--updates", "0"]) == 2  # before any model is loaded


def test_train_genparam_example_runs_on_a_tiny_model(tiny_model_dir, tmp_path, capsys) -> None:
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "examples" / "train_genparam.py"
    spec = importlib.util.spec_from_file_location("train_genparam_example", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    out = module.main(["--model", tiny_model_dir, "--n-agents", "2", "--episodes", "2",
                       "--updates", "2", "--max-tokens", "24", "--out", str(tmp_path)])
    assert out["first"]["update"] == 1 and out["last"]["update"] == 2
    assert (tmp_path / "params.png").stat().st_size > 10_000
    assert "agent_1/max_new_tokens" in capsys.readouterr().out


def test_embedder_loads_a_model_folder(tiny_model_dir) -> None:
    embedder = TextEmbedder(tiny_model_dir, max_length=32)
    assert embedder.dim == 32
    assert embedder.embed(["hello"]).shape == (1, 32)
    with pytest.raises(ValueError, match="tokenizer"):
        TextEmbedder(embedder.model)
