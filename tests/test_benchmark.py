"""The benchmark runner and result verification: determinism, tampering, configs, splits."""

from __future__ import annotations

import json

import pytest
import yaml
from bench_toys import arith_setup

from spgg_env.baselines.benchmark import (
    EPISODES_FILE,
    RESULT_FILE,
    BenchConfig,
    ResultError,
    load_result,
    records_hash,
    run_benchmark,
)
from spgg_env.splits import pin_splits, resolve_split


@pytest.fixture
def pinned(tmp_path):
    task, _ = arith_setup()
    return pin_splits([task], "small-v1", size=6, seed=0, splits_dir=tmp_path / "splits")


def config(**over) -> BenchConfig:
    base = {
        "name": "sc",
        "method": "self_consistency",
        "method_options": {"samples": 3},
        "task": "arith",
        "task_options": {"n_problems": 12},
        "decoding": {"max_new_tokens": 16},
        "seeds": [0, 1],
        "batch_size": 4,
        "bootstrap_samples": 200,
    }
    return BenchConfig.from_dict({**base, **over})


def run(tmp_path, pinned, out="results", **over):
    task, backend = arith_setup()
    path = run_benchmark(
        config(**over), tmp_path / out, backend=backend, task=task,
        splits_dir=pinned.parent, progress=False,
    )  # fmt: skip
    return path, backend


def test_same_config_and_seed_give_identical_records_and_aggregates(tmp_path, pinned):
    first, _ = run(tmp_path, pinned, out="a")
    second, _ = run(tmp_path, pinned, out="b")
    assert (first / EPISODES_FILE).read_bytes() == (second / EPISODES_FILE).read_bytes()
    a, b = (
        load_result(first, splits_dir=pinned.parent),
        load_result(second, splits_dir=pinned.parent),
    )
    assert a["header"]["aggregates"] == b["header"]["aggregates"]
    assert len(a["records"]) == 2 * 6  # two seeds x six problems
    # sampled seeds differ from each other (the seed reaches the backend)
    texts = {s: [r["final_answer"] for r in a["records"] if r["seed"] == s] for s in (0, 1)}
    assert texts[0] != texts[1]


def test_result_header_carries_provenance(tmp_path, pinned):
    path, backend = run(tmp_path, pinned)
    header = load_result(path, splits_dir=pinned.parent)["header"]
    entry = json.loads(pinned.read_text())["tasks"]["arith"]
    assert header["split"]["hash"] == entry["hash"] and header["split"]["uids"] == entry["uids"]
    assert header["env_id"] == "spgg/Arith-v0" and header["seeds"] == [0, 1]
    assert {"env", "base", "cot_suffix"} <= set(header["prompt_template_hashes"])
    assert header["config"]["method_options"] == {"samples": 3}
    agg = header["aggregates"]
    assert agg["n_problems"] == 6 and agg["llm_calls_per_problem"] == 3.0
    low, high = agg["score_ci95"]
    assert low <= agg["score"] <= high
    # problems share backend batches across episodes, capped at batch_size
    assert max(backend.calls) == 4 and sum(backend.calls) == 2 * 6 * 3


def tamper(path, edit):
    header = json.loads((path / RESULT_FILE).read_text())
    lines = (path / EPISODES_FILE).read_text().splitlines()
    edit(header, lines)
    (path / RESULT_FILE).write_text(json.dumps(header))
    (path / EPISODES_FILE).write_text("".join(line + "\n" for line in lines))


def rejected(path, pinned) -> str:
    with pytest.raises(ResultError) as info:
        load_result(path, splits_dir=pinned.parent)
    return str(info.value)


def test_edited_aggregate_is_rejected(tmp_path, pinned):
    path, _ = run(tmp_path, pinned)
    tamper(path, lambda h, _: h["aggregates"].update(score=0.99))
    message = rejected(path, pinned)
    assert "aggregate 'score' is 0.99 in the file" in message


def test_missing_episode_is_rejected(tmp_path, pinned):
    path, _ = run(tmp_path, pinned)
    gone = json.loads((path / EPISODES_FILE).read_text().splitlines()[2])
    tamper(path, lambda h, lines: lines.pop(2))
    message = rejected(path, pinned)
    assert "does not match its hash" in message
    assert f"missing episode seed={gone['seed']} uid={gone['uid']!r}" in message


def test_edited_record_with_a_fixed_hash_is_still_caught(tmp_path, pinned):
    path, _ = run(tmp_path, pinned)

    def edit(header, lines):
        records = [json.loads(line) for line in lines]
        for record in records:
            record["score"] = 1.0
        lines[:] = [json.dumps(r, sort_keys=True, separators=(",", ":")) for r in records]
        header["records_sha256"] = records_hash(records)

    tamper(path, edit)
    assert "aggregate 'score'" in rejected(path, pinned)


def test_changed_split_hash_is_rejected(tmp_path, pinned):
    path, _ = run(tmp_path, pinned)
    tamper(path, lambda h, _: h["split"].update(hash="0" * 64))
    assert "split hash 0000" in rejected(path, pinned)


def test_partial_run_is_refused_unless_allowed(tmp_path, pinned):
    path, _ = run(tmp_path, pinned, limit=2)
    assert "partial run (limit=2)" in rejected(path, pinned)
    assert len(load_result(path, splits_dir=pinned.parent, allow_partial=True)["records"]) == 4


def test_pinned_split_detects_changed_data(tmp_path, pinned):
    other = arith_setup()[0].__class__(n_problems=12, seed=5)
    with pytest.raises(ValueError, match="changed|missing"):
        resolve_split(other, "small-v1", pinned.parent)
    with pytest.raises(ValueError, match="no pinned split 'small-v9'"):
        resolve_split(other, "small-v9", pinned.parent)


def test_config_from_yaml_and_its_errors(tmp_path):
    good = tmp_path / "good.yaml"
    good.write_text(yaml.safe_dump(config().to_dict()))
    assert BenchConfig.from_yaml(good) == config()
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({**config().to_dict(), "sedes": [1]}))
    with pytest.raises(ValueError, match=r"unknown config key\(s\) \['sedes'\]"):
        BenchConfig.from_yaml(bad)
    with pytest.raises(ValueError, match="temperature must be >= 0"):
        config(decoding={"temperature": -1})
    with pytest.raises(ValueError, match="bad decoding key"):
        config(decoding={"temp": 1})
    with pytest.raises(ValueError, match="lacks required"):
        BenchConfig.from_dict({"name": "x", "method": "cot"})


def test_header_without_its_fields_is_rejected(tmp_path, pinned):
    path, _ = run(tmp_path, pinned)
    tamper(path, lambda h, _: h.pop("split"))
    assert "the header lacks ['split']" in rejected(path, pinned)


@pytest.mark.slow
def test_real_decoding_is_reproducible_with_a_tiny_model(tmp_path, pinned):
    from spgg_env.agents.tiny_lm import save_tiny_lm
    from spgg_env.agents.transformers_backend import TransformersBackend

    model = save_tiny_lm(tmp_path / "tiny", max_position_embeddings=1024)
    episodes = []
    for out in ("a", "b"):  # a fresh backend each time: nothing carries over
        task, _ = arith_setup()
        backend = TransformersBackend(str(model), device="cpu", dtype="float32")
        cfg = config(name="sc", decoding={"max_new_tokens": 6}, limit=3, seeds=[0])
        path = run_benchmark(cfg, tmp_path / out, backend=backend, task=task,
                             splits_dir=pinned.parent, progress=False)  # fmt: skip
        episodes.append((path / EPISODES_FILE).read_bytes())
        result = load_result(path, splits_dir=pinned.parent, allow_partial=True)
        assert result["header"]["aggregates"]["llm_calls_per_problem"] == 3.0
    assert episodes[0] == episodes[1]
    samples = [r["calls"] for r in map(json.loads, episodes[0].decode().splitlines())]
    assert any(len({c["text"] for c in calls}) > 1 for calls in samples)  # really sampled
