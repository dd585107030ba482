"""The text-game learner board (spgg_env.baselines.text_learner_board) on a tiny random model:
seed runs and their files, resume, reproducibility, the board's figures and picture, the CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from spgg_env.agents.tiny_lm import save_tiny_lm
from spgg_env.baselines import text_learner_board as tb
from spgg_env.baselines.text_learner_board import GAME, TextBoardConfig
from spgg_env.bootstrap import bootstrap_ci
from spgg_env.cli import main as spgg


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> str:
    return str(save_tiny_lm(tmp_path_factory.mktemp("tiny")))


def board_config(model: str, learner: str = "ppo", **overrides) -> TextBoardConfig:
    """Two updates of two episodes, evaluated on three problems before, after one and after two
    updates (PPO's minibatch must fit the update's two episodes)."""
    options = {"minibatch_size": 2, "lr": 1e-2} if learner == "ppo" else {"minibatch_size": 2}
    base = dict(learner=learner, model=model, seeds=(0,), episodes=4, episodes_per_update=2,
                checkpoints=2, eval_size=3, batch_size=8, options=options)
    return TextBoardConfig(**(base | overrides))


@pytest.fixture(scope="module")
def results(tiny: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """PPO seeds 0 and 1, genparam seed 0."""
    out = tmp_path_factory.mktemp("text-board")
    tb.run_board(board_config(tiny, seeds=(0, 1)), out)
    tb.run_board(board_config(tiny, "genparam"), out)
    return out


def read(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


# ------------------------------------------------------------------------------ seed runs
def test_a_seed_file_holds_the_protocol_curve_data_hashes_and_provenance(results: Path) -> None:
    data = read(results / "ppo" / "seed-0.json")
    assert (data["board"], data["learner"], data["seed"]) == ("text-learners", "ppo", 0)
    assert data["protocol"]["game"] == GAME.to_dict()
    assert data["protocol"]["episodes"] == 4 and "seeds" not in data["protocol"]
    assert [(p["update"], p["episodes"]) for p in data["curve"]] == [(0, 0), (1, 2), (2, 4)]
    for point in data["curve"]:
        assert len(point["problem_scores"]) == 3
        assert point["task_score"] == pytest.approx(np.mean(point["problem_scores"]))
        assert point["failed_episodes"] == 0
    assert [len(row["problems"]) for row in data["train"]] == [2, 2]
    assert "ppo/kl_ref" in data["train"][0]["learner_metrics"]
    config = data["learner_config"]
    assert (config["seed"], config["episodes"], config["max_new_tokens"]) == (0, 2, 32)
    task = GAME.make_task()
    assert data["data"]["train_split_sha256"] == task.split_hash("train")
    assert data["data"]["eval_split_sha256"] == task.split_hash("test")
    assert data["data"]["game_fingerprint"] == GAME.fingerprint()
    assert set(data["provenance"]) >= {"packages", "git", "command"}
    assert data["cost"]["cpu_seconds"] > 0 and data["cost"]["threads"] == 1


def test_genparam_rows_are_played_with_the_policys_parameters(results: Path) -> None:
    data = read(results / "genparam" / "seed-0.json")
    assert data["learner_config"]["episodes"] == 2
    assert "agent_0/max_new_tokens" in data["train"][0]["learner_metrics"]
    assert len(data["curve"]) == 3


@pytest.mark.parametrize("learner", ["ppo", "genparam"])
def test_same_seed_same_numbers_other_seed_other_numbers(tiny: str, tmp_path: Path,
                                                         results: Path, learner: str) -> None:
    again = tb.run_board(board_config(tiny, learner), tmp_path)[0]
    first, second = read(results / learner / "seed-0.json"), read(again)
    assert second["curve"] == first["curve"]
    assert second["train"] == first["train"]
    other = tb.run_board(board_config(tiny, learner, seeds=(1,)), tmp_path)[0]
    third = read(other)
    assert [r["problems"] for r in third["train"]] != [r["problems"] for r in first["train"]]
    assert [r["reward"] for r in third["train"]] != [r["reward"] for r in first["train"]]


def test_a_killed_run_resumes_without_rerunning_finished_seeds(tiny: str, tmp_path: Path,
                                                               monkeypatch, results: Path) -> None:
    real = tb.run_seed
    calls = []

    def killed_at_seed_1(config, seed, **kwargs):
        calls.append(seed)
        if seed == 1:
            raise KeyboardInterrupt  # the run dies inside seed 1
        return real(config, seed, **kwargs)

    monkeypatch.setattr(tb, "run_seed", killed_at_seed_1)
    config = board_config(tiny, seeds=(0, 1))
    with pytest.raises(KeyboardInterrupt):
        tb.run_board(config, tmp_path)
    assert sorted(p.name for p in (tmp_path / "ppo").iterdir()) == ["seed-0.json"]
    monkeypatch.setattr(tb, "run_seed", lambda c, s, **k: (calls.append(s), real(c, s, **k))[1])
    paths = tb.run_board(config, tmp_path)
    assert calls == [0, 1, 1]  # seed 0 not rerun
    for path in paths:  # the resumed board equals the uninterrupted one
        assert read(path)["curve"] == read(results / "ppo" / path.name)["curve"]


def test_a_seed_file_of_another_protocol_is_refused(tiny: str, results: Path) -> None:
    with pytest.raises(ValueError, match=r"another protocol.*'episodes'"):
        tb.run_board(board_config(tiny, episodes=6), results)


@pytest.mark.parametrize("overrides, message", [
    ({"episodes": 5}, "multiple of episodes_per_update"),
    ({"checkpoints": 3}, "at least as many updates"),
    ({"seeds": (0, 0)}, "distinct seeds"),
    ({"eval_split": "dev"}, "unknown split"),
    ({"learner": "sarsa"}, "unknown learner"),
])
def test_bad_configs_are_named(tiny: str, overrides: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        tb.factory(board_config(tiny, **overrides))


# ------------------------------------------------------------------------------ the board
def fake(learner: str, seed: int, scores: list[float], rewards: list[float],
         **protocol) -> dict:
    """A seed result whose checkpoints have the given task scores and rewards."""
    curve = [{"update": u, "episodes": 8 * u, "task_score": s, "reward": r}
             for u, (s, r) in enumerate(zip(scores, rewards, strict=True))]
    base = TextBoardConfig(learner=learner, model="m").protocol() | protocol
    return {"board": "text-learners", "learner": learner, "seed": seed, "curve": curve,
            "protocol": json.loads(json.dumps(base)), "cost": {"cpu_seconds": 100.0 + seed},
            "learner_config": {"lr": 0.1}, "provenance": {"git": {"commit": "abc"}}}


def test_board_rows_pair_before_and_after_per_seed() -> None:
    rows = tb.board_rows([fake("ppo", 0, [0.1, 0.3, 0.2], [-2.0, -1.0, -1.5]),
                          fake("ppo", 1, [0.5, 0.6, 0.9], [-1.0, 0.0, 0.5]),
                          fake("genparam", 0, [0.2, 0.2], [-2.0, -1.8])])
    ppo = rows[0]
    assert (ppo["learner"], ppo["seeds"], ppo["budget"]) == ("ppo", [0, 1], 96)
    assert ppo["task_score_before"][0] == pytest.approx(0.3)
    assert ppo["task_score_after"][0] == pytest.approx(0.55)
    assert ppo["task_score_change"][0] == pytest.approx(0.25)  # (0.1 + 0.4) / 2
    assert ppo["task_score_change"][1:] == pytest.approx(bootstrap_ci([0.1, 0.4], samples=2000))
    assert ppo["reward_change"][0] == pytest.approx(1.0)  # (0.5 + 1.5) / 2
    assert ppo["cpu_seconds"][0] == pytest.approx(100.5)
    assert rows[1]["learner"] == "genparam" and rows[1]["reward_change"][0] == pytest.approx(0.2)


def test_one_board_ranks_one_protocol() -> None:
    with pytest.raises(ValueError, match="different games or held-out sets"):
        tb.board_rows([fake("ppo", 0, [0, 1], [0, 1]),
                       fake("genparam", 0, [0, 1], [0, 1], eval_size=64)])
    with pytest.raises(ValueError, match="different protocols"):
        tb.board_rows([fake("ppo", 0, [0, 1], [0, 1]),
                       fake("ppo", 1, [0, 1], [0, 1], episodes=48)])


def test_the_board_shows_every_figure_of_the_result_files(results: Path, tmp_path: Path) -> None:
    md, png = tb.write_board(tb.load_results([results]), tmp_path)
    text = md.read_text(encoding="utf-8")
    seeds = [read(results / "ppo" / f"seed-{s}.json") for s in (0, 1)]
    before = [d["curve"][0]["task_score"] for d in seeds]
    after = [d["curve"][-1]["reward"] for d in seeds]
    (ppo_line,) = [line for line in text.splitlines() if line.startswith("| ppo | 2 |")]
    cells = [c.strip() for c in ppo_line.strip("|").split("|")]
    assert cells[:3] == ["ppo", "2", "4 (2)"]
    low, high = bootstrap_ci(before, samples=2000)
    assert cells[3] == f"{np.mean(before):.3f} [{low:.3f}, {high:.3f}]"
    assert cells[7].startswith(f"{np.mean(after):.3f} [")
    assert "| genparam | 1 |" in text
    first, last = seeds[1]["curve"][0], seeds[1]["curve"][-1]
    assert (f"| ppo | 1 | {first['task_score']:.3f} -> {last['task_score']:.3f} | "
            f"{first['reward']:.3f} -> {last['reward']:.3f} | {first['tokens']:.1f} -> ") in text
    assert seeds[0]["provenance"]["platform"] in text and "1 torch thread(s)" in text
    assert "difficulty=easy, max_steps=1" in text and "3 agents, mac-spgg" in text
    assert "partial observation" in text and "first of `arith` `test`" in text
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    from matplotlib.image import imread

    assert imread(png).shape[:2] == (420, 1100)


def test_load_results_refuses_foreign_files_and_duplicates(tmp_path: Path, results: Path) -> None:
    (tmp_path / "seed-0.json").write_text(json.dumps({"board": "learners"}))
    with pytest.raises(ValueError, match="not a text-learner board result"):
        tb.load_results([tmp_path])
    with pytest.raises(ValueError, match="two results for learner 'ppo', seed 0"):
        tb.load_results([results / "ppo" / "seed-0.json", results / "ppo"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no text-learner board results"):
        tb.load_results([tmp_path / "empty"])


# ------------------------------------------------------------------------------ command
def test_cli_runs_resumes_and_writes_the_board(tiny: str, tmp_path: Path, capsys) -> None:
    run = ["text-learners", "run", "--learner", "ppo", "--model", tiny, "--seeds", "1",
           "--episodes", "2", "--episodes-per-update", "2", "--checkpoints", "1",
           "--eval-size", "2", "--batch-size", "4", "--options", '{"minibatch_size": 2}',
           "--out", str(tmp_path / "results")]
    assert spgg(run) == 0
    assert spgg(run) == 0
    assert "done already" in capsys.readouterr().out
    assert spgg(["text-learners", "board", str(tmp_path / "results"), "--out",
                 str(tmp_path)]) == 0
    assert (tmp_path / "text_learners.md").exists() and (tmp_path / "curves.png").exists()


@pytest.mark.parametrize("argv, message", [
    (["run", "--learner", "sarsa"], "unknown learner 'sarsa'"),
    (["run", "--learner", "ppo", "--learner", "genparam", "--name", "x"], "exactly one"),
    (["run", "--learner", "ppo", "--episodes", "12"], "multiple of episodes_per_update"),
    (["board", "no/such/folder"], "no result file or folder 'no/such/folder'"),
])
def test_cli_bad_input_is_one_line_and_exit_2(argv: list[str], message: str, capsys) -> None:
    assert spgg(["text-learners", *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"spgg text-learners {argv[0]}: error:") and message in err
    assert "\n" not in err


def test_spgg_help_does_not_import_the_board() -> None:
    code = ("import sys; from spgg_env import cli; cli.build_parser().format_help(); "
            "print('spgg_env.baselines.text_learner_board' in sys.modules or 'torch' in "
            "sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.strip()
    assert out == "False"
