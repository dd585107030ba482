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

from spgg_env.agents.ppo import PPOConfig, PPOTrainer, Rollout, gae, token_rewards, whiten

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


def config(model: str, out: Path, **overrides) -> PPOConfig:
    base = dict(
        model=model,
        task_options={"difficulty": "easy", "n_problems": 40},
        n_agents=2,
        episodes=2,
        minibatch=1,
        epochs=2,
        max_new_tokens=4,
        max_prompt_tokens=256,
        eval_size=2,
        eval_batch=2,
        eval_every=0,
        save_every=1,
        updates=3,
        lr=1e-2,
        bf16=False,
        out_dir=str(out),
    )
    return PPOConfig(**(base | overrides))


def weights(trainer: PPOTrainer) -> dict[str, torch.Tensor]:
    out = {n: p.detach().clone() for n, p in trainer.lora.items()}
    out |= {f"head.{n}": p.detach().clone() for n, p in trainer.heads.named_parameters()}
    return out


def test_updates_change_loss_lora_and_value_heads(tiny_model: str, tmp_path: Path) -> None:
    trainer = PPOTrainer(config(tiny_model, tmp_path / "run"))
    before = weights(trainer)
    history = trainer.train(progress=False)
    losses = [row["ppo/loss"] for row in history if "ppo/loss" in row]
    assert len(losses) == 3 and all(math.isfinite(x) for x in losses)
    assert len(set(losses)) > 1, "the loss did not change between updates"
    after = weights(trainer)
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


def test_resume_gives_the_same_run(tiny_model: str, tmp_path: Path) -> None:
    straight = PPOTrainer(config(tiny_model, tmp_path / "a", updates=2))
    straight.train(progress=False)

    PPOTrainer(config(tiny_model, tmp_path / "b", updates=1)).train(progress=False)
    # a different seed: the data order must come from the checkpoint, not the config
    resumed = PPOTrainer(config(tiny_model, tmp_path / "b", updates=2, seed=123))
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
        texts=["x"],
        old_logp=torch.tensor([[-1.0, -2.0, -9.0]]),
        ref_logp=torch.tensor([[-1.5, -2.0, -9.0]]),
        rewards=torch.tensor([2.0]),
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


@pytest.mark.parametrize(
    ("key", "value"),
    [("episodes", 0), ("temperature", 0.0), ("lam", 1.5), ("minibatch", 99)],
)
def test_bad_config_names_the_value(key: str, value: float) -> None:
    with pytest.raises(ValueError, match=key):
        PPOConfig(**{key: value})


def test_unknown_config_key_is_named() -> None:
    with pytest.raises(ValueError, match="learning_rate"):
        PPOConfig.from_dict({"learning_rate": 1e-3})


def test_cli_options_map_onto_the_config(tmp_path: Path) -> None:
    import argparse
    import json

    from spgg_env.agents import train_cli

    file = tmp_path / "run.json"
    file.write_text(json.dumps({"updates": 7, "lr": 0.5}))
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers()
    train_cli.add_parser(sub)
    args = parser.parse_args(
        ["train", "ppo", "--config", str(file), "--lr", "0.01", "--bf16", "false",
         "--task-options", '{"difficulty": "easy"}', "--time-limit-s", "60"]
    )
    cfg = train_cli.config_from_args(args, {"episodes": 4})
    assert (cfg.updates, cfg.lr, cfg.bf16, cfg.episodes) == (7, 0.01, False, 4)
    assert cfg.task_options == {"difficulty": "easy"} and cfg.time_limit_s == 60.0
    assert args.func is train_cli.main
    with pytest.raises(SystemExit):
        parser.parse_args(["train", "ppo", "--bf16", "maybe"])


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
