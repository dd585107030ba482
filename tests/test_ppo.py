"""The PPO LLM learner on a tiny random Llama with the real env on ``arith``."""

from __future__ import annotations

import json
import math
import runpy
import sys
from pathlib import Path

import pytest
import torch
from transformers import ByT5Tokenizer, LlamaConfig, LlamaForCausalLM

from spgg_env.agents.learning import agent_steps
from spgg_env.agents.ppo import (
    CHECKPOINT,
    PPOConfig,
    PPOLearner,
    Rollout,
    forward,
    gae,
    learnable,
    rollout_tensors,
    token_rewards,
    whiten,
)
from spgg_env.spec import GameSpec

CHAT = (
    "{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}assistant: {% endif %}"
)


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A 2-layer random Llama over ByT5's byte vocabulary, saved as a transformers folder."""
    path = tmp_path_factory.mktemp("tiny")
    tokenizer = ByT5Tokenizer()
    tokenizer.chat_template = CHAT
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=2048,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    LlamaForCausalLM(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return str(path)


GAME = GameSpec(task="arith", task_options={"difficulty": "easy", "n_problems": 40},
                split="train", n_agents=2, max_tokens=4, token_counting="model")


def config(model: str, out: Path, **overrides) -> PPOConfig:
    base = dict(
        model=model,
        game=GAME,
        episodes=2,
        minibatch_size=1,
        epochs=2,
        max_new_tokens=4,
        max_prompt_tokens=256,
        eval_size=2,
        eval_every=0,
        save_every=1,
        updates=3,
        lr=1e-2,
        dtype="float32",
        out=str(out),
    )
    return PPOConfig(**(base | overrides))


def weights(learner: PPOLearner) -> dict[str, torch.Tensor]:
    out = {n: p.detach().clone() for n, p in learner.lora.items()}
    out |= {f"head.{n}": p.detach().clone() for n, p in learner.heads.named_parameters()}
    return out


def test_updates_change_loss_lora_and_value_heads(tiny_model: str, tmp_path: Path) -> None:
    learner = PPOLearner(config(tiny_model, tmp_path / "run"))
    before = weights(learner)
    history = learner.train(progress=False)
    losses = [row["ppo/loss"] for row in history if "ppo/loss" in row]
    assert len(losses) == 3 and all(math.isfinite(x) for x in losses)
    assert len(set(losses)) > 1, "the loss did not change between updates"
    after = weights(learner)
    for agent in ("agent_0", "agent_1"):
        lora_b = [n for n in before if f".{agent}." in n and "lora_B" in n]
        assert lora_b, f"no LoRA weights found for {agent}"
        assert any(not torch.equal(before[n], after[n]) for n in lora_b), f"{agent} LoRA unchanged"
        head = f"head.{agent}.weight"
        assert not torch.equal(before[head], after[head]), f"{agent} value head unchanged"
    rows = {row["update"] for row in history}
    assert rows == {0, 1, 2, 3}  # the eval before training, then one row per update
    assert (tmp_path / "run" / "checkpoint.pt").exists()
    meta = json.loads((tmp_path / "run" / "run_meta.json").read_text())
    assert meta["packages"]["peft"] and meta["git"].keys() == {"commit", "dirty"}
    assert all(len(h) == 64 for h in meta["split_hashes"].values())
    assert (tmp_path / "run" / "metrics.csv").read_text().startswith("update,")
    assert not list((tmp_path / "run").glob(".*tmp*")), "a temp checkpoint file was left behind"
    # the game is recorded once, whole, in every file of the run
    assert meta["game"] == GAME.to_dict() and meta["game_fingerprint"] == GAME.fingerprint()
    config_json = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config_json["game"] == GAME.to_dict()
    assert PPOConfig.from_dict(config_json) == learner.cfg  # config.json rebuilds the run's config
    saved = torch.load(tmp_path / "run" / CHECKPOINT, weights_only=False)
    assert saved["config"]["game"] == GAME.to_dict() and saved["update"] == 3


def test_resume_gives_the_same_run(tiny_model: str, tmp_path: Path) -> None:
    straight = PPOLearner(config(tiny_model, tmp_path / "a", updates=2))
    straight.train(progress=False)

    PPOLearner(config(tiny_model, tmp_path / "b", updates=1)).train(progress=False)
    # a different seed: the data order must come from the checkpoint, not the config
    resumed = PPOLearner(config(tiny_model, tmp_path / "b", updates=2, seed=123))
    resumed.train(resume=True, progress=False)

    assert resumed.update == straight.update == 2
    train = [r for r in straight.history if "ppo/loss" in r]
    again = [r for r in resumed.history if "ppo/loss" in r]
    assert [r["train/reward"] for r in train] == [r["train/reward"] for r in again]
    assert [r["ppo/loss"] for r in train] == pytest.approx([r["ppo/loss"] for r in again])
    a, b = weights(straight), weights(resumed)
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=1e-5, atol=1e-6, msg=name)


def test_gae_and_token_rewards_by_hand() -> None:
    mask = torch.tensor([[1.0, 1.0, 0.0]])
    batch = Rollout(
        input_ids=torch.zeros(1, 3, dtype=torch.long),
        attention_mask=torch.ones(1, 3, dtype=torch.long),
        mask=mask,
        rewards=torch.tensor([2.0]),
        old_logp=torch.tensor([[-1.0, -2.0, -9.0]]),
        ref_logp=torch.tensor([[-1.5, -2.0, -9.0]]),
    )
    r = token_rewards(batch, beta=0.1)
    torch.testing.assert_close(r, torch.tensor([[-0.05, 2.0, 0.0]]))
    values = torch.tensor([[0.5, 1.0, 7.0]])
    adv, ret = gae(r, values, mask, gamma=1.0, lam=0.5)
    d1 = 2.0 - 1.0  # last token: r + 0 - V
    d0 = -0.05 + 1.0 - 0.5
    torch.testing.assert_close(adv, torch.tensor([[d0 + 0.5 * d1, d1, 0.0]]))
    torch.testing.assert_close(ret, adv + values * mask)
    w = whiten(adv, mask)
    torch.testing.assert_close(w, torch.tensor([[-1.0, 1.0, 0.0]]))  # two tokens: +-1


def test_rollout_scores_exactly_the_sampled_tokens(tiny_model: str, tmp_path: Path) -> None:
    """The episodes come from the engine; PPO's tensors are each step's prompt_ids and
    token_ids (+ EOS when it stopped), and the log-probabilities PPO computes on them are those
    the backend sampled from (full softmax at temperature tau: no top-k, no top-p)."""
    learner = PPOLearner(config(tiny_model, tmp_path / "run", max_new_tokens=12, episodes=3,
                                temperature=0.9))
    episodes = learner.play_update()
    assert [e.index for e in episodes] == [0, 1, 2] and all(e.finished for e in episodes)
    for name in ("agent_0", "agent_1"):
        steps = learnable(agent_steps(episodes, name))
        assert [s.request.backend for s in steps] == [name] * 3
        assert {s.request.params.temperature for s in steps} == {0.9}
        batch = rollout_tensors(steps, learner.pad_id, learner.eos_id, learner.device)
        with torch.no_grad():
            learner.model.set_adapter(name)
            learner.model.eval()
            logp, _, _ = forward(learner.model, learner.heads[name], batch, slice(None),
                                 learner.cfg)
        T = batch.mask.shape[1]
        for row, step in enumerate(steps):
            gen = step.generation
            tokens = gen.token_ids + ([learner.eos_id] if gen.finish_reason == "stop" else [])
            ids = batch.input_ids[row].tolist()
            assert ids[-T:][: len(tokens)] == tokens  # the exact sampled tokens
            assert gen.prompt_ids == [i for i, a in zip(ids, batch.attention_mask[row].tolist(),
                                                        strict=True) if a][: len(gen.prompt_ids)]
            assert batch.mask[row].sum() == len(tokens) and batch.rewards[row] == step.reward
            torch.testing.assert_close(logp[row, : len(gen.token_ids)],
                                       torch.tensor(gen.logprobs), rtol=0, atol=1e-4)


def test_learn_refuses_episodes_it_did_not_generate(tiny_model: str, tmp_path: Path) -> None:
    from spgg_env.agents.engine import Engine
    from spgg_env.agents.episodes import EpisodeRunner

    class Writes:
        def act(self, agent, observations):
            return ["The answer is 3."] * len(observations)

    learner = PPOLearner(config(tiny_model, tmp_path / "run"))
    text_game = GAME.replace(token_counting="approx")
    episodes = EpisodeRunner(text_game, Writes(), Engine({}, max_batch=2)).play([(0, None)])
    assert episodes[0].finished
    with pytest.raises(ValueError, match="no generated token ids"):
        learner.learn(episodes)


def test_greedy_evaluation_is_deterministic(tiny_model: str, tmp_path: Path) -> None:
    learner = PPOLearner(config(tiny_model, tmp_path / "run", eval_size=3, max_new_tokens=8))
    first, episodes = learner.evaluate()
    again, repeat = learner.evaluate()
    assert [s.action for e in episodes for s in e.steps] == [
        s.action for e in repeat for s in e.steps]
    assert first == again and first["eval/failed_episodes"] == 0.0
    assert {s.request.params.temperature for e in episodes for s in e.steps} == {0.0}
    assert [e.problem_uid for e in episodes] == [
        p.uid for p in learner.eval_runner.task.problems("test")[:3]]


def test_checkpoint_of_another_game_is_refused(tiny_model: str, tmp_path: Path) -> None:
    run = tmp_path / "run"
    PPOLearner(config(tiny_model, run, updates=1)).train(progress=False)
    other = config(tiny_model, run, game=GAME.replace(max_tokens=9, observation="full"))
    with pytest.raises(ValueError, match=r"another game \(max_tokens: 4 vs 9; observation"):
        PPOLearner(other).load(run / CHECKPOINT)
    with pytest.raises(ValueError, match="lora_r: 8 vs 4"):
        PPOLearner(config(tiny_model, run, lora_r=4)).load(run / CHECKPOINT)
    state = torch.load(run / CHECKPOINT, weights_only=False)
    del state["config"]["game"]
    torch.save(state, tmp_path / "old.pt")
    with pytest.raises(ValueError, match="names no game spec"):
        PPOLearner(config(tiny_model, run)).load(tmp_path / "old.pt")


@pytest.mark.parametrize(
    ("key", "value"),
    [("episodes", 0), ("temperature", 0.0), ("lam", 1.5), ("minibatch_size", 99),
     ("eval_split", "validation")],
)
def test_bad_config_names_the_value(key: str, value: float) -> None:
    with pytest.raises(ValueError, match=key if key != "eval_split" else "validation"):
        PPOConfig(**{key: value})


def test_unknown_config_key_is_named() -> None:
    with pytest.raises(ValueError, match="learning_rate"):
        PPOConfig.from_dict({"learning_rate": 1e-3})
    with pytest.raises(ValueError, match="n_agent"):
        PPOConfig.from_dict({"game": {"n_agent": 2}})


def parser():
    import argparse

    from spgg_env.agents import train_cli

    out = argparse.ArgumentParser()
    train_cli.add_parser(out.add_subparsers())
    return out


def test_cli_options_map_onto_the_config(tmp_path: Path) -> None:
    from spgg_env.agents import train_cli

    file = tmp_path / "run.json"
    file.write_text(json.dumps({"updates": 7, "lr": 0.5, "game": GAME.to_dict()}))
    args = parser().parse_args(
        ["train", "ppo", "--config", str(file), "--lr", "0.01", "--dtype", "float32",
         "--task-option", "max_steps=1", "--n-agents", "3", "--time-limit-s", "60",
         "--batch-size", "5", "--minibatch-size", "2", "--entropy-coef", "0.1"]
    )
    cfg = train_cli.config_from_args(PPOConfig, args, {"episodes": 4})
    assert (cfg.updates, cfg.lr, cfg.dtype, cfg.episodes, cfg.batch_size) == (
        7, 0.01, "float32", 4, 5)
    assert (cfg.minibatch_size, cfg.entropy_coef, cfg.time_limit_s) == (2, 0.1, 60.0)
    # the file's game, with the given game flags on top
    assert cfg.game == GAME.replace(n_agents=3, task_options={**GAME.task_options,
                                                              "max_steps": 1})
    assert args.func is train_cli.main_ppo
    # no flag: PPO's default game; another task drops the base task's split
    assert train_cli.config_from_args(PPOConfig, parser().parse_args(["train", "ppo"])).game \
        == PPOConfig().game
    mmlu = parser().parse_args(["train", "ppo", "--task", "mmlu", "--eval-split", "dev"])
    assert train_cli.config_from_args(PPOConfig, mmlu).game.split == "test"
    with pytest.raises(SystemExit):
        parser().parse_args(["train", "ppo", "--episodes", "many"])
    with pytest.raises(ValueError, match="unknown dtype 'bf15'"):
        PPOConfig(dtype="bf15")


@pytest.mark.parametrize("learner", ["ppo", "genparam"])
def test_every_flag_has_help_without_markup(learner: str, capsys) -> None:
    with pytest.raises(SystemExit):
        parser().parse_args(["train", learner, "--help"])
    text = capsys.readouterr().out
    assert "``" not in text
    sub = parser()._subparsers._group_actions[0].choices["train"]
    command = sub._subparsers._group_actions[0].choices[learner]
    for action in command._actions:
        assert action.help, f"{action.option_strings} has no help"
    flags = ["--task-option", "--n-agents", "--max-tokens", "--batch-size", "--episodes",
             "--updates", "--minibatch-size", "--entropy-coef", "--value-coef", "--out"]
    if learner == "ppo":  # the genparam learner's network chooses max_new_tokens
        flags.append("--max-new-tokens")
    for flag in flags:
        assert flag in text, flag


def test_cli_refuses_bad_input_before_loading_a_model(tmp_path: Path, capsys) -> None:
    from spgg_env.agents import train_cli

    run = tmp_path / "run"
    run.mkdir()
    (run / CHECKPOINT).write_bytes(b"x")
    cases = [
        (["--n-agents", "0"], "n_agents must be an integer >= 1"),
        (["--task-option", "difficulty"], "--task-option needs KEY=VALUE"),
        (["--out", str(run)], "pass --resume"),
        (["--config", str(tmp_path / "missing.json")], "missing.json"),
    ]
    for learner in ("ppo", "genparam"):
        for argv, message in cases:
            args = parser().parse_args(["train", learner, *argv])
            assert args.func(args) == 2
            err = capsys.readouterr().err
            assert err.startswith(f"spgg train {learner}: error:") and message in err, err
    assert train_cli.cli(["ppo", "--episodes", "0"]) == 2


def test_train_ppo_arith_example_runs(tiny_model: str, tmp_path: Path, capsys) -> None:
    """examples/train_ppo_arith.py as written, shrunk by its own options, then its plot."""
    script = Path(__file__).resolve().parents[1] / "examples" / "train_ppo_arith.py"
    example = runpy.run_path(str(script))
    run = tmp_path / "run"
    argv = ["--model", tiny_model, "--updates", "1", "--episodes", "2", "--minibatch-size", "1",
            "--eval-size", "2", "--max-new-tokens", "3", "--threads", "1", "--dtype", "float32",
            "--out", str(run), "--no-progress"]
    threads = torch.get_num_threads()
    try:
        assert example["main"](argv) == 0
    finally:
        torch.set_num_threads(threads)
    config = json.loads((run / "config.json").read_text())
    assert config["game"] == example["GAME"].to_dict() and config["episodes"] == 2
    assert "eval/task_score: update 0" in capsys.readouterr().out
    assert example["main"](["--plot", str(run)]) == 0
    assert (run / "learning_curve.png").stat().st_size > 10_000


def test_prompt_styles_example_measures_every_style(tiny_model: str, monkeypatch, capsys) -> None:
    """examples/prompt_styles.py on the tiny model: one row per style, scores in [0, 1]."""
    script = Path(__file__).resolve().parents[1] / "examples" / "prompt_styles.py"
    monkeypatch.setattr(sys, "argv", [str(script), "--model", tiny_model, "--problems", "3",
                                      "--max-new-tokens", "3", "--threads", "1"])
    threads = torch.get_num_threads()
    try:
        runpy.run_path(str(script), run_name="__main__")
    finally:
        torch.set_num_threads(threads)
    results = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert list(results) == ["default", "compact"]
    for row in results.values():
        assert 0.0 <= row["group_score"] <= 1.0
        assert 0.0 < row["tokens"] <= 3.0
        assert row["reward"] < 0.0  # the untrained random model pays costs and the penalty
