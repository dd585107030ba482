"""The learners and the transformers backend on every device: CPU always, CUDA when available.

On CUDA the PPO base runs in bf16 (dtype "auto"), as it would for a real run; a checkpoint
written there must resume on the CPU.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from spgg_env.agents.backend import GenerationParams
from spgg_env.agents.genparam_learner import GenParamConfig, GenParamLearner
from spgg_env.agents.ppo import CHECKPOINT, PPOConfig, PPOLearner
from spgg_env.agents.tiny_lm import save_tiny_lm
from spgg_env.agents.transformers_backend import TransformersBackend
from spgg_env.spec import GameSpec

DEVICES = [
    "cpu",
    pytest.param(
        "cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
    ),
]


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> str:
    return str(save_tiny_lm(tmp_path_factory.mktemp("tiny"), max_position_embeddings=512))


def ppo_config(model: str, out: Path, device: str, **overrides) -> PPOConfig:
    base = dict(
        model=model,
        game=GameSpec(task="arith", task_options={"difficulty": "easy", "n_problems": 40},
                      split="train", n_agents=2, max_tokens=6, token_counting="model"),
        episodes=2,
        minibatch_size=1,
        epochs=2,
        max_new_tokens=6,
        max_prompt_tokens=256,
        eval_size=2,
        eval_every=0,
        save_every=1,
        updates=2,
        lr=1e-2,
        dtype="auto" if device != "cpu" else "float32",  # bf16 on the GPU, fp32 on the CPU
        device=device,
        out=str(out),
    )
    return PPOConfig(**(base | overrides))


def trainable(learner: PPOLearner) -> dict[str, torch.Tensor]:
    out = {n: p.detach().cpu().clone() for n, p in learner.lora.items()}
    heads = learner.heads.named_parameters()
    return out | {f"head.{n}": p.detach().cpu().clone() for n, p in heads}


@pytest.mark.parametrize("device", DEVICES)
def test_ppo_updates_on_device_and_resume_on_cpu(device: str, tiny_dir: str, tmp_path: Path):
    learner = PPOLearner(ppo_config(tiny_dir, tmp_path / "run", device))
    base = learner.model.get_base_model()
    assert {p.device.type for p in learner.model.parameters()} == {device}
    assert {p.device.type for p in learner.heads.parameters()} == {device}
    assert base.model.embed_tokens.weight.dtype == (torch.float32 if device == "cpu"
                                                    else torch.bfloat16)
    assert {p.dtype for p in learner.lora.values()} == {torch.float32}  # adapters stay fp32
    before = trainable(learner)
    history = learner.train(progress=False)
    losses = [row["ppo/loss"] for row in history if "ppo/loss" in row]
    assert len(losses) == 2 and all(math.isfinite(x) for x in losses)
    after = trainable(learner)
    changed = [n for n in before if not torch.equal(before[n], after[n])]
    assert any("lora_B" in n for n in changed), "no LoRA weight moved"
    assert any(n.startswith("head.") for n in changed), "no value head moved"

    # the checkpoint written on `device` resumes on the CPU: same weights, one more update
    resumed = PPOLearner(ppo_config(tiny_dir, tmp_path / "run", "cpu", updates=3))
    resumed.load(tmp_path / "run" / CHECKPOINT)
    for name, value in trainable(resumed).items():
        torch.testing.assert_close(value, after[name], rtol=0, atol=0, msg=name)
    moments = [s["exp_avg"] for s in resumed.optimizer.state.values()]
    assert moments and {m.device.type for m in moments} == {"cpu"}
    resumed.train(resume=True, progress=False)
    assert resumed.update == 3
    last = [row for row in resumed.history if "ppo/loss" in row][-1]
    assert last["update"] == 3 and math.isfinite(last["ppo/loss"])


def genparam_config(model: str, out: Path, device: str, **overrides) -> GenParamConfig:
    game = GameSpec(task="arith", n_agents=2, observation="full", max_tokens=24,
                    token_counting="model")
    base = dict(game=game, model=model, episodes=2, updates=1, device=device, out=str(out))
    return GenParamConfig(**(base | overrides))


@pytest.mark.parametrize("device", DEVICES)
def test_genparam_update_on_device(device: str, tiny_dir: str, tmp_path: Path):
    learner = GenParamLearner.from_config(genparam_config(tiny_dir, tmp_path / "run", device))
    assert learner.backend.device.type == device
    assert learner.encoder.embedder.device.type == device
    assert {p.device.type for p in learner.networks.parameters()} == {device}
    before = [p.detach().cpu().clone() for p in learner.networks.parameters()]
    (row,) = learner.train(progress=False)
    assert row["update"] == 1
    for i in range(2):
        assert math.isfinite(row[f"agent_{i}/reward"])
        assert math.isfinite(row[f"agent_{i}/value_loss"])
        assert 16 <= row[f"agent_{i}/max_new_tokens"] <= 24
    after = [p.detach().cpu().clone() for p in learner.networks.parameters()]
    assert any(not torch.equal(a, b) for a, b in zip(before, after, strict=True))

    on_cpu = GenParamLearner.from_config(
        genparam_config(tiny_dir, tmp_path / "run", "cpu", seed=1, updates=2))
    on_cpu.load(tmp_path / "run" / "checkpoint.pt")
    for a, b in zip(after, on_cpu.networks.parameters(), strict=True):
        torch.testing.assert_close(b.detach(), a, rtol=0, atol=0)
    assert on_cpu.update == 1 and on_cpu.train_step()["update"] == 2


@pytest.mark.parametrize("device", DEVICES)
def test_backend_greedy_matches_transformers_generate_on_device(device: str, tiny_dir: str):
    backend = TransformersBackend(tiny_dir, device=device, dtype="float32", seed=0)
    assert backend.describe()["device"].startswith(device)
    prompt = [{"role": "user", "content": "2 + 3 = ?"}]
    ours = backend.generate([prompt], GenerationParams(temperature=0.0, max_new_tokens=12))[0]
    ids = backend.tokenizer(backend.render(prompt), add_special_tokens=False,
                            return_tensors="pt").to(backend.device)
    ref = backend.model.generate(**ids, do_sample=False, max_new_tokens=12,
                                 pad_token_id=backend.tokenizer.pad_token_id)
    ref_ids = ref[0, ids["input_ids"].shape[1]:].tolist()
    eos = backend.tokenizer.eos_token_id
    ref_ids = ref_ids[: ref_ids.index(eos)] if eos in ref_ids else ref_ids
    assert ours.completion_tokens == len(ref_ids) > 0
    assert ours.text == backend.tokenizer.decode(ref_ids, skip_special_tokens=True)
