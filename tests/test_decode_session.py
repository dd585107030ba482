"""The transformers backend's continuous-batching session, on a tiny random float32 model.

Scheduling (admission order, nothing lost or duplicated, per-row parameters, failures), the
equality of greedy and seeded texts across schedules and batch compositions, log-probabilities
against a from-scratch computation, the sampler's distribution, prefix reuse, and the cache's
memory staying bounded.
"""

from __future__ import annotations

import gc
import math
import weakref
from collections import Counter

import pytest
import torch

from spgg_env.agents.backend import GenerationParams
from spgg_env.agents.tiny_lm import save_tiny_lm
from spgg_env.agents.transformers_backend import (
    CAPACITY_STEP,
    WINDOW_SLACK,
    TransformersBackend,
    _choose,
    _full_attention_layers,
    _mask_kind,
    _mix32,
    _stream,
)


def chat(text: str, system: str = "You add numbers.") -> list[dict[str, str]]:
    return [{"role": "system", "content": system}, {"role": "user", "content": text}]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    path = save_tiny_lm(tmp_path_factory.mktemp("tiny"), max_position_embeddings=512)
    return TransformersBackend(str(path), device="cpu", dtype="float32", seed=0)


#: Ten requests of different lengths and parameters (greedy, top-k, top-p, penalties).
PROMPTS = [chat(f"question {i}: " + "seven plus " * (i % 4) + "?") for i in range(10)]
PARAMS = [
    GenerationParams(temperature=0.0 if i % 3 == 0 else 0.9, top_k=(0, 5, 40)[i % 3],
                     top_p=(1.0, 0.8, 0.95)[i % 3], max_new_tokens=6 + 5 * i,
                     repetition_penalty=1.0 + 0.2 * (i % 2),
                     presence_penalty=0.5 if i % 3 == 1 else 0.0)
    for i in range(10)
]
SEEDS = [1000 + i for i in range(10)]


def alone(backend, i: int):
    """Request i generated on its own."""
    return backend.generate([PROMPTS[i]], [PARAMS[i]], seed=[SEEDS[i]])[0]


def staggered(backend, order: list[int], max_batch: int, submit_per_poll: int = 2):
    """Requests ``order`` (indices into PROMPTS) fed to a session the way the engine does, a
    few at a time as room frees; the generations by position in ``order``."""
    session = backend.session(max_batch)
    waiting, done = list(enumerate(order)), {}
    while waiting or session.n or session.queue:
        for _ in range(min(submit_per_poll, session.room())):
            if waiting:
                key, i = waiting.pop(0)
                session.submit(key, PROMPTS[i], PARAMS[i], SEEDS[i])
        for key, generation in session.poll():
            assert key not in done, f"request {key} came back twice"
            done[key] = generation
    return done, session


@pytest.fixture(scope="module")
def solo(tiny):
    return [alone(tiny, i) for i in range(10)]


# ------------------------------------------------------------------------------ scheduling
def test_requests_are_admitted_in_submission_order(tiny, monkeypatch):
    session = tiny.session(2)
    admitted = []
    admit = session._admit
    monkeypatch.setattr(session, "_admit", lambda key, *a: (admitted.append(key),
                                                           admit(key, *a)))
    for i in range(5):
        session.submit(i, PROMPTS[i], PARAMS[i], SEEDS[i])
    assert session.room() == -3  # more queued than rows: nothing more is taken
    done = {}
    while len(done) < 5:
        done.update(session.poll())
        assert session.n <= 2
    assert admitted == [0, 1, 2, 3, 4]


def test_no_generation_is_lost_or_duplicated_and_each_equals_its_solo_text(tiny, solo):
    done, session = staggered(tiny, list(range(10)), max_batch=3)
    assert sorted(done) == list(range(10))  # keys are positions, here equal to the requests
    for i in range(10):
        assert done[i].text == solo[i].text, f"request {i}"
        assert done[i].token_ids == solo[i].token_ids
        assert done[i].logprobs == pytest.approx(solo[i].logprobs, abs=1e-4)
    assert session.n == 0 and not session.queue


def test_per_row_parameters_are_respected(tiny, solo):
    out = tiny.generate(PROMPTS, PARAMS, seed=SEEDS)
    for g, p in zip(out, PARAMS, strict=True):
        assert g.completion_tokens <= p.max_new_tokens
        assert g.finish_reason in {"stop", "length"}
        assert g.completion_tokens == len(g.token_ids) == len(g.logprobs)
        if g.finish_reason == "length":
            assert g.completion_tokens == p.max_new_tokens
    assert [g.text for g in out] == [g.text for g in solo]
    greedy = GenerationParams(max_new_tokens=PARAMS[4].max_new_tokens)
    assert out[4].text != tiny.generate([PROMPTS[4]], greedy)[0].text  # sampled row sampled
    # a point-mass row (top-k 1) is greedy whatever its temperature
    one = tiny.generate([PROMPTS[2]], GenerationParams(temperature=1.5, top_k=1,
                                                       max_new_tokens=8), seed=9)[0]
    assert one.text == tiny.generate([PROMPTS[2]], GenerationParams(max_new_tokens=8))[0].text


def test_a_failing_request_is_recorded_while_the_others_finish(tiny, solo, monkeypatch):
    render = tiny.render

    def fragile(prompt):
        if "boom" in prompt[-1]["content"]:
            raise RuntimeError("template exploded")
        return render(prompt)

    monkeypatch.setattr(tiny, "render", fragile)
    session = tiny.session(3)
    session.submit("bad", chat("boom"), PARAMS[0], 1)
    for i in (1, 2, 3):
        session.submit(i, PROMPTS[i], PARAMS[i], SEEDS[i])
    done = {}
    while len(done) < 4:
        done.update(session.poll())
    assert done["bad"].finish_reason == "error" and "template exploded" in done["bad"].error
    assert [done[i].text for i in (1, 2, 3)] == [solo[i].text for i in (1, 2, 3)]


def test_a_failing_decoding_step_fails_its_rows_and_the_session_goes_on(tiny, solo,
                                                                         monkeypatch):
    session = tiny.session(2)
    session.submit(0, PROMPTS[5], PARAMS[5], SEEDS[5])
    session.submit(1, PROMPTS[6], PARAMS[6], SEEDS[6])
    forward = tiny.model.forward
    calls = {"n": 0}

    def flaky(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 4:  # two prefills, one step, then out of memory
            raise RuntimeError("simulated out of memory")
        return forward(*args, **kwargs)

    monkeypatch.setattr(tiny.model, "forward", flaky)
    done = dict(session.poll())
    assert {k: g.finish_reason for k, g in done.items()} == {0: "error", 1: "error"}
    assert "simulated out of memory" in done[0].error and session.n == 0
    session.submit(2, PROMPTS[7], PARAMS[7], SEEDS[7])
    while 2 not in done:
        done.update(session.poll())
    assert done[2].text == solo[7].text


def test_generate_records_a_model_failure_instead_of_raising(tiny, monkeypatch):
    def boom(*args, **kwargs):
        raise RuntimeError("simulated out of memory")

    monkeypatch.setattr(tiny.model, "forward", boom)
    out = tiny.generate([chat("a"), chat("b")], GenerationParams(max_new_tokens=4))
    assert [g.finish_reason for g in out] == ["error", "error"]
    assert "simulated out of memory" in out[0].error


# ------------------------------------------------------------------------------- equality
def test_greedy_texts_are_the_same_one_at_a_time_in_a_batch_and_continuous(tiny):
    params = [GenerationParams(max_new_tokens=6 + 5 * i) for i in range(10)]
    singles = [tiny.generate([p], [q])[0].text for p, q in zip(PROMPTS, params, strict=True)]
    batch = [g.text for g in tiny.generate(PROMPTS, params)]
    session = tiny.session(4)
    for i in reversed(range(10)):  # admitted in another order, rows come and go
        session.submit(i, PROMPTS[i], params[i], 0)
    done = {}
    while len(done) < 10:
        done.update(session.poll())
    assert singles == batch == [done[i].text for i in range(10)]


def test_sampled_text_does_not_depend_on_the_batch_it_is_in(tiny, solo):
    target = 4
    crowd = [0, 1, 2, 3, 5, 6, 7, 8, 9]
    with_others = tiny.generate([PROMPTS[i] for i in [*crowd[:4], target, *crowd[4:]]],
                                [PARAMS[i] for i in [*crowd[:4], target, *crowd[4:]]],
                                seed=[SEEDS[i] for i in [*crowd[:4], target, *crowd[4:]]])[4]
    done, _ = staggered(tiny, [*crowd, target], max_batch=2, submit_per_poll=1)
    assert with_others.text == done[len(crowd)].text == solo[target].text
    reseeded = tiny.generate([PROMPTS[target]], [PARAMS[target]], seed=[SEEDS[target] + 1])[0]
    assert reseeded.text != solo[target].text  # the seed, and only the seed, decides


# ------------------------------------------------------------------------------ log-probs
def reference_logprobs(backend, generation, params: GenerationParams) -> list[float]:
    """Each completion token's log-probability recomputed from one full forward pass, with the
    penalties, temperature, top-k and top-p applied by hand, row by row."""
    ids = generation.prompt_ids + generation.token_ids
    with torch.no_grad():
        logits = backend.model(input_ids=torch.tensor([ids])).logits[0].double()
    out = []
    for j, token in enumerate(generation.token_ids):
        z = logits[len(generation.prompt_ids) - 1 + j, : backend.vocab].clone()
        seen = set(generation.prompt_ids) | set(generation.token_ids[:j])
        r = params.repetition_penalty
        for t in seen:
            z[t] = z[t] / r if z[t] > 0 else z[t] * r
        for t in set(generation.token_ids[:j]):
            z[t] -= params.presence_penalty
        if params.temperature == 0:
            out.append(float(torch.log_softmax(z, -1)[token]))
            continue
        z = z / params.temperature
        order = torch.argsort(z, descending=True)
        if params.top_k:
            order = order[: params.top_k]
        probs = torch.softmax(z[order], -1)
        kept, mass = [], 0.0
        for t, p in zip(order.tolist(), probs.tolist(), strict=True):
            if mass >= params.top_p:
                break
            kept.append(t)
            mass += p
        assert token in kept, f"token {token} at {j} is outside the sampling set"
        out.append(float(torch.log_softmax(z[kept], -1)[kept.index(token)]))
    return out


@pytest.mark.parametrize("i", [0, 1, 2, 4, 5])
def test_logprobs_match_a_reference_computation(tiny, solo, i):
    generation = solo[i]
    assert generation.completion_tokens > 0
    reference = reference_logprobs(tiny, generation, PARAMS[i])
    assert generation.logprobs == pytest.approx(reference, abs=2e-4)


# ------------------------------------------------------------------------------- sampler
def test_gumbel_sampler_draws_from_the_filtered_distribution():
    """20,000 rows, each its own stream: token frequencies match the distribution after
    temperature, top-k and top-p (chi-square test, 5 categories)."""
    logits = torch.tensor([2.0, 1.5, 1.0, 0.5, 0.0, -1.0, -3.0])
    n = 20_000
    temperature, top_k, top_p = 0.8, 5, 0.97
    scaled = logits / temperature
    probs = torch.softmax(scaled[:top_k], -1)  # sorted already; top-k = 5
    keep = (probs.cumsum(-1) - probs) < top_p
    expected = torch.softmax(scaled[:top_k].masked_fill(~keep, float("-inf")), -1)
    keys = _mix32(torch.arange(n) * 7919 + 17)
    tokens, logprobs = _choose(
        logits.repeat(n, 1), torch.full((n,), temperature), torch.full((n,), top_k),
        torch.full((n,), top_p), keys, _mix32(torch.arange(7) ^ 12345))
    counts = Counter(tokens.tolist())
    assert set(counts) <= set(range(top_k))
    chi2 = sum((counts.get(t, 0) - n * float(p)) ** 2 / (n * float(p))
               for t, p in enumerate(expected) if p > 0)
    assert chi2 < 20.5  # 99.9% quantile of chi-square with 4 degrees of freedom is 18.5
    assert torch.allclose(logprobs, expected.log()[tokens], atol=1e-5)


def test_sampler_rows_are_independent_of_their_neighbours():
    torch.manual_seed(0)
    logits = torch.randn(6, 50)
    args = (torch.tensor([0.7, 0.0, 1.2, 0.9, 0.5, 1.0]), torch.tensor([5, 0, 0, 30, 50, 2]),
            torch.tensor([0.9, 1.0, 1.0, 0.5, 0.99, 1.0]), _mix32(torch.arange(6) + 99))
    hashes = _mix32(torch.arange(50) ^ 7)
    together = _choose(logits, *args, hashes)
    for i in range(6):
        single = _choose(logits[i : i + 1], *(a[i : i + 1] for a in args), hashes)
        assert int(single[0][0]) == int(together[0][i])
        assert float(single[1][0]) == pytest.approx(float(together[1][i]), abs=1e-6)


def test_stream_keys_differ_between_seeds():
    keys = {_stream(s) for s in range(10_000)} | {_stream(2**40 + s) for s in range(10_000)}
    assert len(keys) > 19_900  # 32-bit keys: a few collisions at most
    assert all(0 <= k < 2**32 for k in keys)


# ------------------------------------------------------------------------- prefix reuse
def test_shared_prompt_heads_are_reused_and_change_no_text(tmp_path):
    path = save_tiny_lm(tmp_path, max_position_embeddings=512)
    system = "You are agent 1 of 3 in a team that solves tasks in turn. Be brief."
    prompts = [chat(f"What is {i} + {i}?", system=system) for i in range(6)]
    params = GenerationParams(max_new_tokens=8)
    reusing = TransformersBackend(str(path), device="cpu", dtype="float32")
    fresh = TransformersBackend(str(path), device="cpu", dtype="float32", prefix_cache_mib=0)
    a = reusing.generate(prompts, params)
    b = fresh.generate(prompts, params)
    assert [g.text for g in a] == [g.text for g in b]
    for x, y in zip(a, b, strict=True):
        assert x.logprobs == pytest.approx(y.logprobs, abs=1e-4)
    head = len(reusing._encode(reusing.render(prompts[0]))) - 12  # the question differs
    assert reusing.stats["reused_tokens"] >= 5 * head * 0.9
    assert fresh.stats["reused_tokens"] == 0


# ---------------------------------------------------------------------------- memory
def test_the_cache_does_not_grow_with_the_requests_served(tiny):
    session = tiny.session(3)
    sizes, served = [], 0
    for wave in range(8):
        for i in range(10):
            session.submit((wave, i), PROMPTS[i], PARAMS[i], SEEDS[i] + wave)
        done = {}
        while len(done) < 10:
            done.update(session.poll())
        served += len(done)
        sizes.append(sum(t.numel() for t in session.cache.buffers()))
    assert served == 80
    assert sizes[-1] == sizes[1]  # after the first wave, no growth at all
    longest = max(len(tiny._prompt_ids(p, q.max_new_tokens)[0]) + q.max_new_tokens
                  for p, q in zip(PROMPTS, PARAMS, strict=True))
    assert session.cache.capacity % CAPACITY_STEP == 0
    assert session.cache.capacity <= -(-(longest + WINDOW_SLACK) // CAPACITY_STEP) * CAPACITY_STEP
    assert session.store.bytes <= session.store.max_bytes


def test_a_finished_session_frees_its_cache_without_the_garbage_collector(tiny):
    """No reference cycle holds the buffers: the next session must not allocate beside them."""
    gc.disable()
    try:
        session = tiny.session(2)
        for i in range(3):
            session.submit(i, PROMPTS[i], PARAMS[i], SEEDS[i])
        done = {}
        while len(done) < 3:
            done.update(session.poll())
        buffers = [weakref.ref(t) for t in session.cache.buffers()]
        assert buffers
        del session
        assert all(ref() is None for ref in buffers)
    finally:
        gc.enable()


def test_window_moves_keep_texts_intact(tiny, solo):
    """Many decoding steps through a short buffer: the window moves back many times."""
    order = [9, 8, 7, 6, 5, 4, 3, 2, 1, 0] * 2
    moves = tiny.stats["window_moves"]
    done, session = staggered(tiny, order, max_batch=3, submit_per_poll=1)
    assert tiny.stats["window_moves"] - moves >= 5
    assert sorted(done) == list(range(len(order)))
    assert all(done[k].text == solo[i].text for k, i in enumerate(order))


# ------------------------------------------------------------------------ what it refuses
def test_unsupported_attention_and_layers_are_named(tmp_path):
    from types import SimpleNamespace

    from transformers import Qwen2Config

    flash = SimpleNamespace(config=SimpleNamespace(_attn_implementation="flash_attention_2"))
    with pytest.raises(ValueError, match="flash_attention_2"):
        _mask_kind(flash)
    config = Qwen2Config(num_hidden_layers=2, use_sliding_window=True, sliding_window=16,
                         max_window_layers=0, layer_types=["sliding_attention"] * 2)
    with pytest.raises(ValueError, match="SlidingWindow"):
        _full_attention_layers(SimpleNamespace(config=config))


def test_session_rejects_a_bad_batch_size(tiny):
    with pytest.raises(ValueError, match="max_batch"):
        tiny.session(0)


def test_logprobs_are_finite_and_nonpositive(solo):
    for g in solo:
        assert all(math.isfinite(x) and x <= 1e-6 for x in g.logprobs)


# ------------------------------------------------------------------------------------ cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_session_on_cuda_matches_solo_texts_and_transformers_greedy(tmp_path):
    path = save_tiny_lm(tmp_path, max_position_embeddings=512)
    backend = TransformersBackend(str(path), device="cuda", dtype="float32")
    solo = [alone(backend, i) for i in range(10)]
    done, session = staggered(backend, list(range(10)), max_batch=3)
    assert [done[i].text for i in range(10)] == [g.text for g in solo]
    assert session.cache.buffers()[0].device.type == "cuda"
    ids = backend.tokenizer(backend.render(PROMPTS[3]), add_special_tokens=False,
                            return_tensors="pt").to("cuda")
    greedy = backend.generate([PROMPTS[3]], GenerationParams(max_new_tokens=12))[0]
    ref = backend.model.generate(**ids, do_sample=False, max_new_tokens=12,
                                 pad_token_id=backend.tokenizer.pad_token_id)
    ref_ids = ref[0, ids["input_ids"].shape[1]:].tolist()
    eos = backend.tokenizer.eos_token_id
    assert greedy.token_ids == (ref_ids[: ref_ids.index(eos)] if eos in ref_ids else ref_ids)


def test_decode_step_profile_accounts_for_attention_and_every_linear_layer(tiny):
    """benchmarks/decode_step_profile.py on the tiny model: the runner-shaped steps run in the
    backend's window cache, and the profile names attention and each kind of linear layer."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).parents[1] / "benchmarks" / "decode_step_profile.py"
    spec = importlib.util.spec_from_file_location("decode_step_profile", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    result = module.decode_step_profile(tiny, rows=3, columns=20, steps=2)
    kinds = {"gate_proj/up_proj", "down_proj", "o_proj/q_proj", "k_proj/v_proj", "lm_head"}
    assert set(module.linear_kinds(tiny.model).values()) == kinds
    assert set(result["profiled_ms_by_group"]) == {
        "attention (sdpa)", "other", *(f"linear {kind}" for kind in kinds)}
    assert sum(result["share_by_group"].values()) == pytest.approx(1.0)
    assert result["plain_ms_per_step"] > 0
