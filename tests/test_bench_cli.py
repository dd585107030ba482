"""``spgg bench``: bad input is one line and exit status 2, found before any model loads."""

from __future__ import annotations

import json

import pytest
from bench_toys import arith_setup

from spgg_env import cli
from spgg_env.baselines.bench_config import BenchConfig
from spgg_env.baselines.bench_run import run_benchmark
from spgg_env.splits import pin_splits

GOOD = {"name": "cot", "method": "cot", "task": "arith", "task_options": {"n_problems": 12}}


@pytest.fixture
def no_models(monkeypatch):
    """Any model load fails the test."""
    import spgg_env.baselines.bench_cli as bench_cli

    def refuse(*args, **kwargs):
        raise AssertionError("a model was loaded before the input was checked")

    monkeypatch.setattr(bench_cli, "make_backend", refuse)


def write(tmp_path, **changes) -> str:
    path = tmp_path / "config.yaml"
    path.write_text(json.dumps({**GOOD, **changes}))  # JSON is YAML
    return str(path)


def one_line_exit_2(argv, capsys, prefix="spgg bench run: error:") -> str:
    code = cli.main(["bench", *argv])
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert err.startswith(prefix) and "\n" not in err and "Traceback" not in err
    return err


def test_a_missing_config_file(tmp_path, capsys, no_models):
    err = one_line_exit_2(["run", str(tmp_path / "none.yaml")], capsys)
    assert "no such config file" in err and "none.yaml" in err


def test_an_unknown_task(tmp_path, capsys, no_models):
    err = one_line_exit_2(["run", write(tmp_path, task="chess", task_options={})], capsys)
    assert "unknown task 'chess'" in err


def test_an_unknown_method(tmp_path, capsys, no_models):
    assert "unknown method 'vote'" in one_line_exit_2(["run", write(tmp_path, method="vote")],
                                                      capsys)


def test_a_bad_task_option_key_in_the_config(tmp_path, capsys, no_models):
    err = one_line_exit_2(["run", write(tmp_path, task_options={"n_problem": 3})], capsys)
    assert "unknown option(s) ['n_problem'] for task 'arith'" in err


def test_a_bad_task_option_key_on_the_command_line(tmp_path, capsys, no_models):
    err = one_line_exit_2(["run", write(tmp_path), "--task-option", "difficulty_=easy"], capsys)
    assert "difficulty_" in err


def test_a_malformed_task_option(tmp_path, capsys, no_models):
    assert "KEY=VALUE" in one_line_exit_2(["run", write(tmp_path), "--task-option", "easy"],
                                          capsys)


def test_a_bad_method_option(tmp_path, capsys, no_models):
    err = one_line_exit_2(["run", write(tmp_path, method_options={"shot": 1})], capsys)
    assert "unknown option(s) ['shot']" in err


def test_a_missing_policy_checkpoint(tmp_path, capsys, no_models):
    err = one_line_exit_2(["run", write(tmp_path, method="econ",
                                        method_options={"policy_checkpoint": "no/such.pt"})],
                          capsys)
    assert "no/such.pt" in err and "does not exist" in err


def test_a_bad_limit(tmp_path, capsys, no_models):
    assert "--limit must be >= 1" in one_line_exit_2(["run", write(tmp_path), "--limit", "0"],
                                                     capsys)


def test_an_existing_result_is_not_replaced(tmp_path, capsys, no_models):
    task, backend = arith_setup()
    splits = pin_splits([task], "small-v1", size=3, splits_dir=tmp_path / "splits")
    run_benchmark(BenchConfig.from_dict(GOOD), tmp_path / "results", backend=backend, task=task,
                  splits_dir=splits.parent, progress=False)
    before = (tmp_path / "results" / "cot" / "episodes.jsonl").read_bytes()
    err = one_line_exit_2(["run", write(tmp_path), "--results-dir", str(tmp_path / "results"),
                           "--splits-dir", str(splits.parent)], capsys)
    assert "already holds a result" in err and "--overwrite" in err
    assert (tmp_path / "results" / "cot" / "episodes.jsonl").read_bytes() == before


def test_leaderboard_of_a_missing_folder(tmp_path, capsys):
    err = one_line_exit_2(["leaderboard", str(tmp_path / "nothing")], capsys,
                          prefix="spgg bench leaderboard: error:")
    assert "no such results folder" in err


def test_leaderboard_of_a_folder_without_results(tmp_path, capsys):
    err = one_line_exit_2(["leaderboard", str(tmp_path)], capsys,
                          prefix="spgg bench leaderboard: error:")
    assert "no result folders" in err


def test_leaderboard_with_a_missing_splits_dir(tmp_path, capsys):
    err = one_line_exit_2(["leaderboard", str(tmp_path), "--splits-dir", str(tmp_path / "x")],
                          capsys, prefix="spgg bench leaderboard: error:")
    assert "--splits-dir" in err
