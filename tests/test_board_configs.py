"""The task board's pinned split (board-v1) and its submissions (benchmarks/make_*.py)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import yaml

from spgg_env.baselines.bench_config import BenchConfig
from spgg_env.splits import pinned_splits, resolve_split
from spgg_env.tasks import make_task

ROOT = Path(__file__).resolve().parents[1]
BOARD = ROOT / "benchmarks" / "configs" / "board-v1"


def load_script(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_board_split_pins_at_least_150_problems_where_the_set_allows():
    tasks = pinned_splits("board-v1")["tasks"]
    sizes = {task: len(entry["uids"]) for task, entry in tasks.items()}
    assert sizes == {"humaneval": 164, "summeval": 100, "gsm8k": 150, "arith": 150, "mmlu": 150}
    assert all(len(set(entry["uids"])) == len(entry["uids"]) for entry in tasks.values())
    assert tasks["arith"]["task_options"] == {"difficulty": "easy"}


def test_board_arith_split_resolves_only_with_the_easy_task():
    problems, _ = resolve_split(make_task("arith", difficulty="easy"), "board-v1")
    assert len(problems) == 150 and all(p.uid.startswith("arith-easy-") for p in problems)
    with pytest.raises(ValueError):  # the normal task has other problems under other uids
        resolve_split(make_task("arith"), "board-v1")


def test_split_rules_describe_every_version():
    make_splits = load_script("make_splits")
    assert make_splits.rule("tiny-v1") == pinned_splits("tiny-v1")["rule"]
    assert make_splits.rule("board-v1") == pinned_splits("board-v1")["rule"]
    assert "mmlu 150" in make_splits.rule("board-v1")
    entry = make_splits.pinned_entry("board-v1", "arith", None)
    assert entry == pinned_splits("board-v1")["tasks"]["arith"]  # rerunning reproduces the pin


def test_board_submissions_seed_the_seeded_methods_three_times():
    make_configs = load_script("make_configs")
    configs = make_configs.board_submissions()
    names = [c["name"] for c in configs]
    # 5 greedy methods per task, 5 seeded ones x 3 seeds; no few-shot method (single agent,
    # MAC-SPGG PO/FO) on HumanEval and SummEval, which evaluate every problem they have
    assert len(names) == len(set(names)) == 3 * (5 + 5 * 3) + 2 * (5 + 2 * 3)
    few_shot = ("few-shot", "spgg-po-few-shot", "spgg-fo-few-shot")
    for task in ("arith", "mmlu", "gsm8k", "humaneval", "summeval"):
        for label in ("self-consistency", "debate", *few_shot):
            seeded = [c for c in configs if c["name"].startswith(f"{task}-{label}-seed")]
            runs = task not in ("humaneval", "summeval") or label not in few_shot
            assert sorted(s for c in seeded for s in c["seeds"]) == ([0, 1, 2] if runs else [])
            assert all(c["method_options"].get("shots", 2) == 2 for c in seeded)
        for label in ("zero-shot", "cot", "econ-static", "spgg-po", "spgg-fo"):
            (config,) = [c for c in configs if c["name"] == f"{task}-{label}"]
            assert config["seeds"] == [0]
    for config in configs:  # every decoding setting written out
        assert set(config["decoding"]) == {"temperature", "top_p", "top_k", "max_new_tokens",
                                           "repetition_penalty", "presence_penalty"}
        assert config["split"] == "board-v1" and config["backend"]["dtype"] == "float32"
        assert "policy_checkpoint" not in config["method_options"]


def test_committed_board_configs_are_what_the_script_writes_and_all_load():
    make_configs = load_script("make_configs")
    written = {c["name"]: c for c in make_configs.board_submissions()}
    files = sorted(BOARD.glob("*.yaml"))
    assert {p.stem for p in files} == set(written)
    for path in files:
        assert yaml.safe_load(path.read_text()) == written[path.stem]
        config = BenchConfig.from_yaml(path)
        if config.task == "arith":
            assert dict(config.task_options) == {"difficulty": "easy"}
        if config.method == "spgg":
            assert config.game.observation == ("partial" if "spgg-po" in path.stem else "full")
