"""Leaderboard: bootstrap intervals, aggregation from records, the frontier, and the board."""

from __future__ import annotations

import json

import numpy as np
import pytest
from bench_toys import arith_setup

from spgg_env import cli
from spgg_env.baselines.bench_config import BenchConfig
from spgg_env.baselines.bench_results import RESULT_FILE
from spgg_env.baselines.bench_run import run_benchmark
from spgg_env.baselines.leaderboard import aggregate, pareto_front
from spgg_env.bootstrap import bootstrap_ci
from spgg_env.splits import pin_splits


def test_bootstrap_ci_is_seeded_and_brackets_the_mean():
    x = np.random.default_rng(1).random(30)
    a = bootstrap_ci(x, samples=500, seed=3)
    assert a == bootstrap_ci(x, samples=500, seed=3)
    assert a != bootstrap_ci(x, samples=500, seed=4)
    assert a[0] < x.mean() < a[1]
    assert bootstrap_ci([0.5] * 5) == (0.5, 0.5)
    with pytest.raises(ValueError, match="at least one"):
        bootstrap_ci([])


def rec(uid, seed, score, parse_failure=False, tokens=10, calls=1):
    return {
        "uid": uid, "seed": seed, "score": score, "parse_failure": parse_failure,
        "tokens": tokens, "prompt_tokens": tokens - 2, "completion_tokens": 2, "llm_calls": calls,
    }  # fmt: skip


def test_aggregate_averages_seeds_per_problem_first():
    records = [rec("a", 0, 1.0), rec("a", 1, 0.0), rec("b", 0, 1.0, tokens=30), rec("b", 1, 1.0)]
    records.append(rec("c", 0, 0.0, parse_failure=True, calls=4))
    records.append(rec("c", 1, 0.0, parse_failure=True, calls=4))
    agg = aggregate(records, bootstrap_samples=100)
    assert agg["n_problems"] == 3 and agg["n_episodes"] == 6
    assert agg["score"] == pytest.approx((0.5 + 1.0 + 0.0) / 3)
    assert agg["parse_failure_rate"] == pytest.approx(1 / 3)
    assert agg["tokens_per_problem"] == pytest.approx(80 / 6)
    assert agg["llm_calls_per_problem"] == pytest.approx(12 / 6)
    with pytest.raises(ValueError, match="zero episode"):
        aggregate([])


def test_pareto_front_keeps_only_unbeaten_cheaper_points():
    rows = [
        {"name": "a", "tokens_per_problem": 10, "score": 0.2},
        {"name": "b", "tokens_per_problem": 50, "score": 0.1},
        {"name": "c", "tokens_per_problem": 100, "score": 0.5},
        {"name": "d", "tokens_per_problem": 5, "score": 0.2},
    ]
    assert [r["name"] for r in pareto_front(rows)] == ["d", "c"]


@pytest.fixture
def results(tmp_path):
    task, backend = arith_setup()
    splits = pin_splits([task], "small-v1", size=5, splits_dir=tmp_path / "splits")
    for method in ("single_agent", "debate"):
        config = BenchConfig(
            name=method,
            method=method,
            task="arith",
            bootstrap_samples=100,
            task_options={"n_problems": 12},
            decoding={"max_new_tokens": 8},
        )
        run_benchmark(config, tmp_path / "results", backend=backend, task=task,
                      splits_dir=splits.parent, progress=False)  # fmt: skip
    return tmp_path / "results", splits.parent


def bench(*argv) -> int:
    return cli.main(["bench", *map(str, argv)])


def test_board_regenerates_identically_from_results(tmp_path, results):
    folder, splits = results
    assert bench("leaderboard", folder, "--out", tmp_path / "b1", "--splits-dir", splits) == 0
    assert bench("leaderboard", folder, "--out", tmp_path / "b2", "--splits-dir", splits) == 0
    for name in ("leaderboard.md", "leaderboard.html", "frontier.png", "comparisons.png"):
        assert (tmp_path / "b1" / name).read_bytes() == (tmp_path / "b2" / name).read_bytes()
    assert (tmp_path / "b1" / "frontier.png").stat().st_size > 1000
    board = (tmp_path / "b1" / "leaderboard.md").read_text()
    header = json.loads((folder / "debate" / RESULT_FILE).read_text())
    assert f"| debate | {header['aggregates']['score']:.3f} |" in board
    assert (
        "## arith (small-v1, 5 problems)" in board
        and '<table class="scores" data-table="scores arith">'
        in (tmp_path / "b1" / "leaderboard.html").read_text()
    )


def test_board_refuses_a_tampered_result(tmp_path, results, capsys):
    folder, splits = results
    path = folder / "debate" / RESULT_FILE
    header = json.loads(path.read_text())
    header["aggregates"]["tokens_per_problem"] = 1.0
    path.write_text(json.dumps(header))
    assert bench("leaderboard", folder, "--out", tmp_path / "b", "--splits-dir", splits) == 1
    err = capsys.readouterr().err
    assert "aggregate 'tokens_per_problem' is 1.0 in the file" in err and "no board written" in err
    assert not (tmp_path / "b" / "leaderboard.md").exists()


def test_cli_run_writes_results_and_the_board_refuses_a_partial_one(tmp_path, monkeypatch, capsys):
    import spgg_env.baselines.bench_cli as bench_cli

    task, backend = arith_setup()
    splits = pin_splits([task], "small-v1", size=4, splits_dir=tmp_path / "splits")
    monkeypatch.setattr(bench_cli, "make_backend", lambda spec: backend)
    path = tmp_path / "cot.yaml"
    config = BenchConfig(name="cot", method="cot", task="arith", task_options={"n_problems": 12})
    path.write_text(json.dumps(config.to_dict()))  # JSON is YAML
    out = tmp_path / "results"
    common = ("--results-dir", out, "--splits-dir", splits.parent, "--no-progress")
    assert bench("run", path, *common, "--limit", 2) == 0
    assert "cot: score" in capsys.readouterr().out
    assert bench("leaderboard", out, "--out", tmp_path / "b", "--splits-dir", splits.parent) == 1
    assert "partial run (limit=2)" in capsys.readouterr().err
    assert bench("run", path, *common) == 2  # the partial result is not replaced silently
    assert "--overwrite" in capsys.readouterr().err
    assert bench("run", path, *common, "--overwrite") == 0
    assert bench("leaderboard", out, "--out", tmp_path / "b", "--splits-dir", splits.parent) == 0
    assert bench("run", path, *common, "--skip-existing") == 0
    assert "skip cot: valid result" in capsys.readouterr().out


def test_board_writes_costs_from_the_cost_file_beside_the_results(tmp_path, results, capsys):
    folder, splits = results
    cost_file = folder.with_name(folder.name + "-costs.tsv")
    cost_file.write_text("row\tuser_cpu_s\tsystem_cpu_s\tprocess_wall_s\tmax_rss_mib\n"
                         "debate\t120\t5\t130\t999\n")
    assert bench("leaderboard", folder, "--out", tmp_path / "b", "--splits-dir", splits) == 0
    costs = (tmp_path / "b" / "costs.md").read_text()
    assert "| `debate` |" in costs and "| 125 |" in costs and "| 999 |" in costs
    single = json.loads((folder / "single_agent" / RESULT_FILE).read_text())["timing"]
    assert f"| {single['process_cpu_s']:.0f} |" in costs  # no line: the run's own figures
    cost_file.write_text("row\tuser_cpu_s\ndebate\t1\ndebate\t2\n")
    assert bench("leaderboard", folder, "--out", tmp_path / "c", "--splits-dir", splits) == 2
    assert "names row 'debate' twice" in capsys.readouterr().err
