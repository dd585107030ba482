"""The benchmark on the episode engine: determinism, the game spec, result files and their
verification (tampering, configs, splits, existing results)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from bench_toys import arith_setup

from spgg_env.baselines.bench_config import BenchConfig
from spgg_env.baselines.bench_results import (
    EPISODES_FILE,
    RESULT_FILE,
    ResultError,
    load_result,
    records_hash,
)
from spgg_env.baselines.bench_run import run_benchmark
from spgg_env.spec import GameSpec
from spgg_env.splits import pin_splits, resolve_split

REPO = Path(__file__).resolve().parents[1]
#: Header fields that describe when and where a run happened, not what it computed.
VOLATILE_HEADER = ("timing", "git", "environment")


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


def game_config(**over) -> BenchConfig:
    game = {"task": "arith", "task_options": {"n_problems": 12}, "n_agents": 3,
            "observation": "partial", "max_tokens": 64, "token_counting": "model"}
    base = {"name": "spgg-po", "method": "spgg", "game": game, "seeds": [0],
            "decoding": {"max_new_tokens": 16, "temperature": 0.7}, "bootstrap_samples": 200}
    return BenchConfig.from_dict({**base, **over})


def run(tmp_path, pinned, out="results", cfg=None, **over):
    task, backend = arith_setup()
    path = run_benchmark(
        cfg or config(**over), tmp_path / out, backend=backend, task=task,
        splits_dir=pinned.parent, progress=False,
    )  # fmt: skip
    return path, backend


def stable_header(path: Path) -> dict:
    header = json.loads((path / RESULT_FILE).read_text())
    return {k: v for k, v in header.items() if k not in VOLATILE_HEADER}


def test_a_rerun_gives_byte_identical_records_and_the_same_header(tmp_path, pinned):
    first, _ = run(tmp_path, pinned, out="a")
    second, _ = run(tmp_path, pinned, out="b")
    assert (first / EPISODES_FILE).read_bytes() == (second / EPISODES_FILE).read_bytes()
    assert stable_header(first) == stable_header(second)
    a = load_result(first, splits_dir=pinned.parent)
    assert len(a["records"]) == 2 * 6  # two seeds x six problems
    # sampled seeds differ from each other (the seed reaches the backend)
    texts = {s: [r["final_answer"] for r in a["records"] if r["seed"] == s] for s in (0, 1)}
    assert texts[0] != texts[1]


def test_records_do_not_depend_on_the_batch_size(tmp_path, pinned):
    one, backend_one = run(tmp_path, pinned, out="one", batch_size=1)
    many, backend_many = run(tmp_path, pinned, out="many", batch_size=5)
    assert max(backend_one.calls) == 1 and max(backend_many.calls) == 5
    assert (one / EPISODES_FILE).read_bytes() == (many / EPISODES_FILE).read_bytes()


def test_result_header_carries_provenance(tmp_path, pinned):
    path, backend = run(tmp_path, pinned)
    header = load_result(path, splits_dir=pinned.parent)["header"]
    entry = json.loads(pinned.read_text())["tasks"]["arith"]
    assert header["split"]["hash"] == entry["hash"] and header["split"]["uids"] == entry["uids"]
    assert header["env_id"] == "spgg/Arith-v1" and header["seeds"] == [0, 1]
    assert header["schema"] == "spgg-bench-result/2"
    assert header["engine"] == {"schedule": "continuous", "max_batch": 4,
                                "request_seed": "derive_seed(seed, GENERATION, problem index, "
                                                "request number)"}
    assert {"env", "base", "cot_suffix"} <= set(header["prompt_template_hashes"])
    assert header["config"]["method_options"] == {"samples": 3}
    assert header["config"]["task_options"] == {"n_problems": 12} and "game" not in header["config"]
    agg = header["aggregates"]
    assert agg["n_problems"] == 6 and agg["llm_calls_per_problem"] == 3.0
    low, high = agg["score_ci95"]
    assert low <= agg["score"] <= high
    # problems share backend batches across episodes, capped at batch_size
    assert max(backend.calls) == 4 and sum(backend.calls) == 2 * 6 * 3
    timing = header["timing"]
    assert 0 < timing["cpu_s"] and 0 < timing["wall_s"] and timing["machine"]
    # the whole process (imports, earlier tests) has used at least the episodes' CPU
    assert timing["process_cpu_s"] >= timing["cpu_s"] - 0.01 and timing["peak_rss_mib"] > 10


def test_a_game_config_plays_its_spec_and_the_result_embeds_it(tmp_path, pinned):
    cfg = game_config()
    path, backend = run(tmp_path, pinned, cfg=cfg)
    result = load_result(path, splits_dir=pinned.parent)
    game = GameSpec.from_dict(result["header"]["config"]["game"])
    assert game == cfg.game and game.max_tokens == 64 and game.token_counting == "model"
    assert "task" not in result["header"]["config"]
    assert result["header"]["method"]["game_fingerprint"] == cfg.game.fingerprint()
    for record in result["records"]:
        details = record["details"]
        assert record["llm_calls"] == 3 and details["episode_error"] is None
        # effort in the model's tokens (the scripted backend counts words) over max_tokens 64
        for call, tokens, effort in zip(record["calls"], details["env_tokens"], details["effort"],
                                        strict=True):
            assert tokens == len(call["text"].split())
            assert effort == pytest.approx(min(1.0, tokens / 64))
        assert record["final_answer"] == record["calls"][-1]["text"]
        assert len(details["rewards"]) == 3 and details["group_score"] in (0.0, 1.0)
    # partial observation: agent 3 sees agent 2's contribution only
    thirds = [p[-1]["content"] for p in backend.prompts if "agent 3 of 3" in p[-1]["content"]]
    assert len(thirds) == 6 and all(t.count(" wrote:") == 1 for t in thirds)


def test_a_game_method_needs_a_game_and_the_others_refuse_one():
    with pytest.raises(ValueError, match="plays the game: give `game`"):
        BenchConfig.from_dict({"name": "x", "method": "spgg", "task": "arith"})
    with pytest.raises(ValueError, match="does not play the game"):
        config(game={"task": "arith"})
    with pytest.raises(ValueError, match="inside `game`"):
        game_config(task_options={"n_problems": 3})
    with pytest.raises(ValueError, match="unknown game spec key"):
        game_config(game={"task": "arith", "agents": 3})


def test_the_game_must_play_the_pinned_splits_source(tmp_path, pinned):
    cfg = game_config(game={"task": "arith", "task_options": {"n_problems": 12},
                            "split": "train"})
    with pytest.raises(ValueError, match="draws from 'arith' split 'test' but the game plays "
                                         "split 'train'"):
        run(tmp_path, pinned, cfg=cfg)


def test_an_existing_result_is_kept_unless_overwritten(tmp_path, pinned):
    path, _ = run(tmp_path, pinned, limit=2)
    before = (path / EPISODES_FILE).read_bytes()
    with pytest.raises(FileExistsError, match="--overwrite"):
        run(tmp_path, pinned)
    assert (path / EPISODES_FILE).read_bytes() == before
    task, backend = arith_setup()
    run_benchmark(config(), tmp_path / "results", backend=backend, task=task,
                  splits_dir=pinned.parent, progress=False, overwrite=True)
    assert len(load_result(path, splits_dir=pinned.parent)["records"]) == 12
    assert not list(path.parent.glob(".*"))  # no temporary or old folder left behind


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


def test_duplicated_episode_is_rejected(tmp_path, pinned):
    path, _ = run(tmp_path, pinned)
    tamper(path, lambda h, lines: lines.__setitem__(3, lines[2]))
    message = rejected(path, pinned)
    assert "duplicate episode" in message and "missing episode" in message


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
    spgg = tmp_path / "spgg.yaml"
    spgg.write_text(yaml.safe_dump(game_config().to_dict()))
    assert BenchConfig.from_yaml(spgg) == game_config()
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({**config().to_dict(), "sedes": [1]}))
    with pytest.raises(ValueError, match=r"unknown config key\(s\) \['sedes'\]"):
        BenchConfig.from_yaml(bad)
    with pytest.raises(FileNotFoundError, match="no such config file"):
        BenchConfig.from_yaml(tmp_path / "none.yaml")
    with pytest.raises(ValueError, match="temperature must be >= 0"):
        config(decoding={"temperature": -1})
    with pytest.raises(ValueError, match="bad decoding key"):
        config(decoding={"temp": 1})
    with pytest.raises(ValueError, match="lacks required"):
        BenchConfig.from_dict({"name": "x", "method": "cot"})
    with pytest.raises(ValueError, match=r"unknown option\(s\) \['n_problem'\] for task 'arith'"):
        config(task_options={"n_problem": 3})
    with pytest.raises(ValueError, match="unknown task 'chess'"):
        config(task="chess")
    with pytest.raises(ValueError, match="unknown method 'vote'"):
        config(method="vote")


def test_header_without_its_fields_is_rejected(tmp_path, pinned):
    path, _ = run(tmp_path, pinned)
    tamper(path, lambda h, _: h.pop("split"))
    assert "the header lacks ['split']" in rejected(path, pinned)


def test_committed_results_verify():
    """Every result of the committed board verifies: those written on the episode engine
    (schema 2, a MAC-SPGG row with its game embedded) and those of the old loop (schema 1)."""
    folders = sorted(p.parent for p in (REPO / "leaderboard" / "results").glob("*/result.json"))
    assert len(folders) == 33
    for folder in folders:
        header = load_result(folder)["header"]
        assert header["schema"] in ("spgg-bench-result/1", "spgg-bench-result/2")
        if header["schema"] == "spgg-bench-result/2":
            assert ("game" in header["config"]) == (header["config"]["method"] == "spgg")


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
