"""Prepacked linear weights (bfloat16 on CPU): the same products, bit for bit, and never stale.

On a tiny random bfloat16 model: forwards and whole sessions' texts and log-probabilities equal
the plain path's; a weight changed in place or replaced is repacked; autograd still gets its
gradients inside the block; the plain forward is back after it; float32 is left alone.
"""

from __future__ import annotations

import pytest
import torch

from spgg_env.agents.backend import GenerationParams
from spgg_env.agents.packed_linear import PackedLinears, packing_supported
from spgg_env.agents.tiny_lm import save_tiny_lm
from spgg_env.agents.transformers_backend import TransformersBackend

needs_packing = pytest.mark.skipif(
    not packing_supported(torch.nn.Linear(4, 4).to(torch.bfloat16)),
    reason="this PyTorch/CPU has no oneDNN bfloat16 kernels; the backend uses plain linears",
)


@pytest.fixture(scope="module")
def tiny_path(tmp_path_factory):
    return save_tiny_lm(tmp_path_factory.mktemp("tiny"), hidden_size=64)


def chat(text: str) -> list[dict[str, str]]:
    return [{"role": "system", "content": "You add numbers."}, {"role": "user", "content": text}]


def test_float32_and_empty_models_are_not_packed():
    assert not packing_supported(torch.nn.Linear(4, 4))
    assert not packing_supported(torch.nn.Sequential())
    layer = torch.nn.Linear(4, 4)
    packed = PackedLinears(layer)
    with packed.active():
        assert "forward" not in vars(layer)


@needs_packing
def test_products_equal_the_plain_path_bit_for_bit():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(96, 320), torch.nn.Linear(320, 40, bias=False))
    model.to(torch.bfloat16)
    packed = PackedLinears(model)
    for rows in (1, 3, 8, 67):
        x = torch.randn(2, rows, 96, dtype=torch.bfloat16)
        with torch.inference_mode():
            plain = model(x)
            with packed.active():
                assert "forward" in vars(model[0])
                fast = model(x)
                strided = model(x.transpose(0, 1).contiguous().transpose(0, 1))
        assert fast.shape == plain.shape == (2, rows, 40)
        assert torch.equal(fast, plain)
        assert torch.equal(strided, plain)
    assert "forward" not in vars(model[0]) and "forward" not in vars(model[1])


@needs_packing
def test_a_changed_weight_is_repacked():
    torch.manual_seed(1)
    layer = torch.nn.Linear(64, 32).to(torch.bfloat16)
    packed = PackedLinears(layer)
    x = torch.randn(5, 64, dtype=torch.bfloat16)
    with torch.no_grad(), packed.active():
        before = layer(x)
        layer.weight.mul_(-2)  # in place: an optimizer step
        assert torch.equal(layer(x), torch.nn.functional.linear(x, layer.weight, layer.bias))
        assert not torch.equal(layer(x), before)
        layer.weight = torch.nn.Parameter(torch.randn(32, 64, dtype=torch.bfloat16))  # replaced
        assert torch.equal(layer(x), torch.nn.functional.linear(x, layer.weight, layer.bias))


@needs_packing
def test_autograd_takes_the_plain_path_inside_the_block():
    torch.manual_seed(2)
    layer = torch.nn.Linear(16, 8).to(torch.bfloat16)
    x = torch.randn(3, 16, dtype=torch.bfloat16)
    layer(x).float().square().sum().backward()
    expected = layer.weight.grad.clone()
    layer.weight.grad = None
    packed = PackedLinears(layer)
    with packed.active():
        layer(x).float().square().sum().backward()
    assert torch.equal(layer.weight.grad, expected)


@needs_packing
def test_nested_blocks_keep_the_packed_path_until_the_outer_one_ends():
    layer = torch.nn.Linear(8, 8).to(torch.bfloat16)
    packed = PackedLinears(layer)
    with packed.active():
        with packed.active():
            pass
        assert "forward" in vars(layer)
    assert "forward" not in vars(layer)


@needs_packing
def test_sessions_write_the_same_texts_with_and_without_packing(tiny_path):
    backend = TransformersBackend(str(tiny_path), device="cpu", dtype="bfloat16", seed=0)
    assert backend.packed_linears.enabled
    prompts = [chat(f"question {i}: " + "seven plus " * i) for i in range(6)]
    params = [GenerationParams(temperature=0.0 if i % 2 else 0.8, top_k=(0, 20)[i % 2],
                               max_new_tokens=12 + 3 * i, repetition_penalty=1.1)
              for i in range(6)]
    seeds = list(range(100, 106))
    packed = backend.generate(prompts, params, seed=seeds)
    backend.packed_linears.enabled = False
    plain = backend.generate(prompts, params, seed=seeds)
    backend.packed_linears.enabled = True
    assert [g.token_ids for g in packed] == [g.token_ids for g in plain]
    assert [g.logprobs for g in packed] == [g.logprobs for g in plain]
    assert all(g.finish_reason in ("stop", "length") for g in packed)
    assert all("forward" not in vars(m) for m in backend.packed_linears.layers)


@needs_packing
@pytest.mark.parametrize("adapters_in_float32", [True, False])
def test_a_learners_lora_model_matches_the_plain_path_across_adapters_and_updates(
        adapters_in_float32):
    """The PPO learner's setting: bfloat16 base with one LoRA adapter per agent, trained between
    rollouts; the packed forward follows the active adapter and every optimizer step. peft keeps
    adapters in float32 by default (they take the plain path); in bfloat16 they are packed too
    and must be repacked after each step."""
    from peft import LoraConfig, get_peft_model
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(3)
    config = LlamaConfig(vocab_size=300, hidden_size=64, intermediate_size=128,
                         num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2)
    base = LlamaForCausalLM(config).to(torch.bfloat16)
    lora = LoraConfig(r=4, lora_alpha=8, lora_dropout=0.0, target_modules="all-linear")
    model = get_peft_model(base, lora, adapter_name="agent_0",
                           autocast_adapter_dtype=adapters_in_float32)
    model.add_adapter("agent_1", lora)
    packed = PackedLinears(model)
    assert packed.enabled and len(packed.layers) > 2 * 7 * 2  # base layers and both adapters
    ids = torch.randint(0, 300, (2, 9))
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.5)

    def logits() -> tuple[torch.Tensor, torch.Tensor]:
        with torch.inference_mode():
            plain = model(input_ids=ids).logits
            with packed.active():
                fast = model(input_ids=ids).logits
        return plain, fast

    seen = []
    for step in range(2):
        for name in ("agent_0", "agent_1"):
            model.set_adapter(name)
            plain, fast = logits()
            assert torch.equal(plain, fast), (step, name)
            seen.append(plain)
        model.set_adapter("agent_0")
        model(input_ids=ids).logits.float().square().mean().backward()  # outside the block
        optimizer.step()
        optimizer.zero_grad()
    assert not torch.equal(seen[0], seen[2])  # the update changed agent_0's outputs
    lora_dtypes = {p.dtype for n, p in model.named_parameters() if "lora" in n and "agent_0" in n}
    assert lora_dtypes == {torch.float32 if adapters_in_float32 else torch.bfloat16}
