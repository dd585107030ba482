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
