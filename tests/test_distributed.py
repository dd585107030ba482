"""Episodes on a local Ray cluster equal the single-process episodes; dead workers lose nothing."""

from __future__ import annotations

import json

import pytest

ray = pytest.importorskip("ray", reason='Ray is optional: pip install -e ".[ray]"')

from fake_openai_server import FakeServer  # noqa: E402

from spgg_env.agents.distributed import play_distributed, resources, worker_config  # noqa: E402
from spgg_env.agents.engine import Engine  # noqa: E402
from spgg_env.agents.ensemble import build_ensemble  # noqa: E402
from spgg_env.agents.episodes import EpisodeRunner  # noqa: E402
from spgg_env.agents.tiny_lm import save_tiny_lm  # noqa: E402
from spgg_env.spec import GameSpec  # noqa: E402

SPECS = [GameSpec(task="arith", token_counting="model", max_tokens=16, observation=mode)
         for mode in ("partial", "full")]


@pytest.fixture(scope="module")
def cluster():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def config(tmp_path_factory):
    tiny = str(save_tiny_lm(tmp_path_factory.mktemp("tiny"), max_position_embeddings=1024))
    return {"name": "tiny-trio",
            "defaults": {"backend": {"kind": "transformers", "model": tiny, "device": "cpu",
                                     "dtype": "float32"},
                         "params": {"temperature": 0.0, "max_new_tokens": 5}},
            "agents": [{"name": "a"}, {"name": "b"}, {"name": "c"}]}


def strip(record: dict) -> str:
    """A record without its timing fields, as canonical JSON."""
    record = json.loads(json.dumps(record))
    record.pop("timing")
    for step in record["agents"]:
        step.pop("latency_s")
    return json.dumps(record, sort_keys=True)


def single_process(config: dict, episodes: int) -> list[tuple[str, str]]:
    ensemble = build_ensemble(config)
    engine = Engine(ensemble.backend_map(), max_batch=4)
    out = []
    for spec in SPECS:
        runner = EpisodeRunner(spec, ensemble, engine)
        out += [(spec.observation, strip(e.to_record())) for e in runner.run(episodes, seed=3)]
    return out


def test_distributed_records_equal_the_single_process_ones(cluster, config):
    expected = single_process(config, 7)
    got = [(mode, strip(r)) for mode, r in play_distributed(
        SPECS, config, episodes=7, workers=2, batch_size=4, seed=3, chunk=2)]
    assert got == expected


def test_a_worker_that_dies_is_replaced_and_nothing_is_lost(cluster, config, tmp_path,
                                                            monkeypatch):
    monkeypatch.setenv("SPGG_TEST_WORKER_DIES", f"{tmp_path / 'died'}:2")
    got = [(mode, strip(r)) for mode, r in play_distributed(
        SPECS, config, episodes=5, workers=2, batch_size=4, seed=3, chunk=2)]
    assert (tmp_path / "died").exists()  # a worker did die, at episode 2
    assert got == single_process(config, 5)


def test_resume_plays_only_the_missing_episodes(cluster, config):
    got = list(play_distributed(SPECS, config, episodes=4, done={"partial": 4, "full": 1},
                                workers=2, batch_size=4, seed=3))
    assert [(m, r["episode"]) for m, r in got] == [("full", 1), ("full", 2), ("full", 3)]


def test_http_workers_keep_to_their_own_server_and_ask_for_little_cpu(cluster):
    servers = [FakeServer("vllm", reply_words=3), FakeServer("vllm", reply_words=3)]
    try:
        config = {"defaults": {"backend": {"kind": "openai", "model": "fake",
                                           "base_url": [s.url for s in servers]},
                               "params": {"max_new_tokens": 8}},
                  "agents": [{"name": "a"}, {"name": "b"}, {"name": "c"}]}
        assert resources(config) == {"num_cpus": 0.25}
        assert worker_config(config, 1)["defaults"]["backend"]["prefer"] == 1
        records = [r for _, r in play_distributed(SPECS[:1], config, episodes=8, workers=2,
                                                  batch_size=2, chunk=2)]
        assert len(records) == 8 and all(r["group_score"] is not None for r in records)
        assert len(servers[0].requests) > 0 and len(servers[1].requests) > 0
    finally:
        for server in servers:
            server.stop()


def test_local_models_ask_for_a_cpu_or_a_gpu():
    cpu = {"defaults": {"backend": {"kind": "transformers", "model": "embedded"}}}
    gpu = {"defaults": {"backend": {"kind": "transformers", "device": "cuda"}}}
    assert resources(cpu) == {"num_cpus": 1}
    assert resources(gpu) == {"num_cpus": 1, "num_gpus": 1}


def test_spgg_run_on_ray_writes_the_single_process_transcript(cluster, config, tmp_path):
    from spgg_env import cli

    path = tmp_path / "tiny.json"
    path.write_text(json.dumps(config))
    common = ["run", "--config", str(path), "--episodes", "5", "--task-option", "n_problems=9",
              "--max-tokens", "16", "--batch-size", "2", "--no-progress"]
    assert cli.main([*common, "--out", str(tmp_path / "one")]) == 0
    assert cli.main([*common, "--out", str(tmp_path / "ray"), "--ray", "--workers", "2"]) == 0
    one, two = ((tmp_path / d / "transcripts.jsonl").read_text().splitlines()
                for d in ("one", "ray"))
    assert [strip(json.loads(x)) for x in one] == [strip(json.loads(x)) for x in two]
    meta = json.loads((tmp_path / "ray" / "run_meta.json").read_text())
    assert len(meta["ensemble"]["workers"]) == 2


def test_benchmark_pairs_on_ray_write_the_serial_result(cluster, config, tmp_path):
    from spgg_env.baselines.bench_config import BenchConfig
    from spgg_env.baselines.bench_results import EPISODES_FILE, RESULT_FILE, load_result
    from spgg_env.baselines.bench_run import run_benchmark, run_benchmarks_on_ray

    bench = BenchConfig.from_dict({
        "name": "tiny-cot", "method": "cot", "task": "arith", "task_options": {"n_problems": 6},
        "split": "test", "backend": config["defaults"]["backend"],
        "decoding": {"max_new_tokens": 6, "temperature": 0.8}, "seeds": [0, 1, 2],
        "batch_size": 4, "bootstrap_samples": 100})
    serial = run_benchmark(bench, tmp_path / "serial", progress=False)
    (distributed,) = run_benchmarks_on_ray([bench], tmp_path / "ray", progress=False)
    assert (serial / EPISODES_FILE).read_bytes() == (distributed / EPISODES_FILE).read_bytes()
    headers = [json.loads((p / RESULT_FILE).read_text()) for p in (serial, distributed)]
    for header in headers:
        for volatile in ("timing", "git", "environment"):
            header.pop(volatile)
    assert headers[0] == headers[1]
    assert len(load_result(distributed)["records"]) == 18
