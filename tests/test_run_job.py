"""The main job (`spgg run`) end to end with a tiny random model: files and their contents."""

from __future__ import annotations

import json

import pytest
import torch

from spgg_env import cli
from spgg_env.agents.run_job import read_transcripts, run_job
from spgg_env.agents.tiny_lm import save_tiny_lm
from spgg_env.seeding import episode_seed
from spgg_env.spec import GameSpec
from spgg_env.tasks import make_task

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return str(save_tiny_lm(tmp_path_factory.mktemp("tiny"), max_position_embeddings=2048))


@pytest.fixture(scope="module")
def both_run(tiny, tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "both"
    code = cli.main(["run", "--task", "arith", "--episodes", "3", "--observation", "both",
                     "--out", str(out), "--model", tiny, "--max-new-tokens", "8",
                     "--batch-size", "2", "--seed", "4", "--tensorboard", "--no-progress"])
    assert code == 0
    return out


def test_writes_transcripts_summary_meta_and_tensorboard(both_run):
    for name in ("transcripts.jsonl", "summary.json", "run_meta.json"):
        assert (both_run / name).is_file()
    for mode in ("partial", "full"):
        assert list((both_run / "tensorboard" / mode).glob("events.out.tfevents.*"))


def test_transcripts_hold_every_episode_of_both_modes(both_run):
    records = list(read_transcripts(both_run / "transcripts.jsonl"))
    assert [(r["observation"], r["episode"]) for r in records] == [
        ("partial", 0), ("partial", 1), ("partial", 2), ("full", 0), ("full", 1), ("full", 2)]
    problems = make_task("arith", difficulty="easy").problems("test")
    for r in records:
        assert r["seed"] == episode_seed(4, r["episode"])
        assert r["reference"] == problems[r["episode"]].answer
        assert r["problem_uid"] == problems[r["episode"]].uid
        assert r["error"] is None and 0.0 <= r["group_score"] <= 1.0
        assert [s["name"] for s in r["agents"]] == ["solver", "checker", "finaliser"]
        for s in r["agents"]:
            assert problems[r["episode"]].question in s["prompt"][-1]["content"]
            assert s["prompt"][0]["role"] == "system"
            assert s["completion_tokens"] <= 8 and s["params"]["max_new_tokens"] == 8
            assert "extracted" in s and "score" in s
            assert set(s["reward_components"]) >= {"cost", "synergy", "public_share",
                                                   "penalty", "total"}
    po = {r["episode"]: r for r in records if r["observation"] == "partial"}
    fo = {r["episode"]: r for r in records if r["observation"] == "full"}
    for e in range(3):
        first = po[e]["agents"][0]["contribution"]
        assert po[e]["agents"][2]["n_visible"] == 1 and fo[e]["agents"][2]["n_visible"] == 2
        if first.strip():  # FO's last agent sees agent 1's text; PO's does not
            assert "Agent 1 wrote" in fo[e]["agents"][2]["prompt"][-1]["content"]
            assert "Agent 1 wrote" not in po[e]["agents"][2]["prompt"][-1]["content"]


def test_summary_matches_the_transcripts(both_run):
    summary = json.loads((both_run / "summary.json").read_text())
    records = list(read_transcripts(both_run / "transcripts.jsonl"))
    assert summary["task"] == "arith" and summary["episodes"] == 3
    for mode in ("partial", "full"):
        rows = [r for r in records if r["observation"] == mode]
        s = summary["observations"][mode]
        assert s["episodes"] == 3 and s["failed_episodes"] == 0
        assert s["group_score_mean"] == pytest.approx(sum(r["group_score"] for r in rows) / 3)
        total = sum(r["tokens"]["prompt"] + r["tokens"]["completion"] for r in rows) / 3
        assert s["tokens_per_episode"]["total"] == pytest.approx(total)
        assert summary["tokens_per_episode"][mode] == pytest.approx(total)
        for i in range(3):
            mean = sum(r["rewards"][f"agent_{i}"] for r in rows) / 3
            assert s["mean_reward_per_agent"][f"agent_{i}"] == pytest.approx(mean)
    po, fo = (summary["observations"][m]["tokens_per_episode"]["prompt"]
              for m in ("partial", "full"))
    assert po <= fo  # PO shows fewer predecessors: never more prompt tokens on these problems
    assert summary["peak_rss_mib"] > 0


def test_run_meta_identifies_data_model_and_code(both_run, tiny):
    meta = json.loads((both_run / "run_meta.json").read_text())
    # the main job's default game: easy arith, effort in the model's tokens
    assert meta["games"][0]["task_options"] == {"difficulty": "easy"}
    assert meta["task"]["split_hash"] == make_task("arith", difficulty="easy").split_hash("test")
    assert meta["settings"]["episodes"] == 3 and meta["settings"]["batch_size"] == 2
    games = [GameSpec.from_dict(g) for g in meta["games"]]
    assert [g.observation for g in games] == ["partial", "full"]
    assert games[0].token_counting == "model" and games[0].max_tokens == 128
    backends = meta["ensemble"]["backends"]
    assert len(backends) == 1 and backends[0]["model"] == tiny
    assert backends[0]["backend"] == "transformers" and backends[0]["device"] in {"cpu", "cuda"}
    assert meta["packages"]["torch"] and meta["packages"]["transformers"]
    assert "git" in meta and len(meta["prompt_template_sha256"]) == 64
    assert len(meta["ensemble_config"]["agents"]) == 3
    # the default config's two worked exemplars come from the training split, never the test one
    exemplars = meta["ensemble"]["exemplars"]
    task = make_task("arith", difficulty="easy")
    assert meta["ensemble_config"]["shots"] == 2 and len(exemplars) == 2
    assert set(exemplars) <= {p.uid for p in task.problems("train")}


def test_resume_completes_an_interrupted_run_without_duplicates(tiny, tmp_path):
    kwargs = dict(out=tmp_path, model=tiny, max_new_tokens=4, batch_size=2, progress=False)
    spec = GameSpec(task="arith", token_counting="model")
    run_job(spec, episodes=2, **kwargs)
    with pytest.raises(FileExistsError, match="--resume"):
        run_job(spec, episodes=3, **kwargs)
    summary = run_job(spec, episodes=3, resume=True, **kwargs)
    records = list(read_transcripts(tmp_path / "transcripts.jsonl"))
    assert [r["episode"] for r in records] == [0, 1, 2]
    assert summary["observations"]["partial"]["episodes"] == 3
    with pytest.raises(ValueError, match="settings"):
        run_job(spec, episodes=4, resume=True, **{**kwargs, "batch_size": 3})
    with pytest.raises(ValueError, match="games"):
        run_job(spec.replace(max_tokens=64), episodes=4, resume=True, **kwargs)


def test_bad_arguments_are_named(tiny, tmp_path):
    spec = GameSpec(task="arith")
    with pytest.raises(ValueError, match="episodes"):
        run_job(spec, episodes=0, out=tmp_path, model=tiny)
    with pytest.raises(FileNotFoundError, match="no-such-model"):
        run_job(spec, episodes=1, out=tmp_path, model=str(tmp_path / "no-such-model"))


def test_cli_reports_bad_input_without_a_traceback(tmp_path, capsys):
    missing = str(tmp_path / "no-such-model")
    code = cli.main(["run", "--episodes", "1", "--model", missing, "--out", str(tmp_path / "o"),
                     "--no-progress"])
    assert code == 2
    err = capsys.readouterr().err
    assert err.startswith("spgg run: error:") and "no-such-model" in err


def test_task_options_reach_the_task(tiny, tmp_path):
    code = cli.main(["run", "--episodes", "1", "--model", tiny, "--max-new-tokens", "2",
                     "--task-option", "difficulty=normal", "--task-option", "n_problems=5",
                     "--observation", "partial", "--out", str(tmp_path), "--no-progress"])
    assert code == 0
    record = next(iter(read_transcripts(tmp_path / "transcripts.jsonl")))
    assert "normal" in record["problem_uid"]  # the command line overrides the default (easy)
    meta = json.loads((tmp_path / "run_meta.json").read_text())
    assert meta["games"][0]["task_options"] == {"difficulty": "normal", "n_problems": 5}


@pytest.mark.parametrize(
    ("argv", "named"),
    [
        (["--task-option", "difficulty_=easy"], "difficulty_"),
        (["--task-option", "easy"], "KEY=VALUE"),
        (["--config", "no/such/config.yaml"], "no/such/config.yaml"),
        (["--task", "chess"], "chess"),
        (["--mechanism-param", "zeta=1"], "zeta"),
        (["--observation", "fog"], "fog"),
    ],
)
def test_bad_input_is_one_line_and_exit_2_before_any_model_loads(argv, named, capsys,
                                                                 monkeypatch, tmp_path):
    from spgg_env.agents import ensemble

    def no_models(*args, **kwargs):
        raise AssertionError("a model was loaded before the input was checked")

    monkeypatch.setattr(ensemble, "make_backend", no_models)
    code = cli.main(["run", "--episodes", "1", "--out", str(tmp_path / "o"), *argv])
    err = capsys.readouterr().err.strip()
    assert code == 2 and named in err
    assert err.startswith("spgg run: error:") and "\n" not in err and "Traceback" not in err


def test_two_runs_never_write_to_one_folder(tmp_path):
    import fcntl

    from spgg_env.agents.run_job import LOCK

    tmp_path.mkdir(exist_ok=True)
    with (tmp_path / LOCK).open("w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        with pytest.raises(BlockingIOError, match="another run is writing"):
            run_job(GameSpec(task="arith"), episodes=1, out=tmp_path, model="unused")


def test_failed_generations_stay_out_of_the_means_and_resume_replays_them(tmp_path, capsys):
    from fake_openai_server import FakeServer

    from spgg_env.agents.run_job import latest_records

    server = FakeServer("vllm", reply_words=4)
    try:
        config = {"defaults": {"backend": {"kind": "openai", "model": "fake",
                                           "base_url": server.url, "retry_window_s": 0},
                               "params": {"max_new_tokens": 8}},
                  "agents": [{"name": "a"}, {"name": "b"}, {"name": "c"}]}
        path = tmp_path / "http.yaml"
        path.write_text(json.dumps(config))
        argv = ["run", "--config", str(path), "--episodes", "4", "--observation", "partial",
                "--out", str(tmp_path / "out"), "--no-progress", "--batch-size", "1",
                "--schedule", "lockstep"]
        server.fail_first = 2  # the server is down for the first two calls
        assert cli.main(argv) == 3
        assert "--resume" in capsys.readouterr().err
        summary = json.loads((tmp_path / "out" / "summary.json").read_text())["observations"]
        assert summary["partial"]["failed_episodes"] == 1  # both failures hit episode 0
        assert summary["partial"]["finished_episodes"] == 3
        assert cli.main([*argv, "--resume"]) == 0
        records = latest_records(tmp_path / "out" / "transcripts.jsonl")
        assert [r["episode"] for r in records] == [0, 1, 2, 3]
        assert all(r["failed_generations"] == 0 for r in records)
        lines = (tmp_path / "out" / "transcripts.jsonl").read_text().splitlines()
        assert len(lines) == 5  # the failed episode 0, then its replay
        summary = json.loads((tmp_path / "out" / "summary.json").read_text())["observations"]
        assert summary["partial"]["failed_episodes"] == 0
    finally:
        server.stop()
