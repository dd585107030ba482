"""A trained generation-parameter checkpoint at inference: rebuilt from the file alone, the
learner's mean action, used by the trained MAC-SPGG ensembles and ECON-learned, and refused with
a clear message when it does not fit (tiny random LM: plumbing, not quality)."""

from __future__ import annotations

import pytest
import torch
from bench_toys import arith_setup

from spgg_env.agents.backend import GenerationParams
from spgg_env.agents.genparam_inference import (
    export_policy,
    file_sha256,
    load_inference_policy,
)
from spgg_env.agents.genparam_policy import GenParamLearner
from spgg_env.agents.tiny_lm import save_tiny_lm
from spgg_env.baselines.bench_config import BenchConfig
from spgg_env.baselines.bench_results import ResultError, load_result
from spgg_env.baselines.bench_run import run_benchmark, run_episode
from spgg_env.baselines.leaderboard import write_board
from spgg_env.baselines.methods import make_method
from spgg_env.spec import GameSpec
from spgg_env.splits import pinned_splits

GREEDY = GenerationParams(max_new_tokens=32)
#: The game the checkpoints below are trained in (2 agents, effort in model tokens, 24 at 1).
GAME = GameSpec(task="arith", n_agents=2, observation="partial", max_tokens=24,
                token_counting="model")
TASK_TEXT = "Ann has 3 apples and buys 4 more. How many apples does she have?"


def train(folder, model: str, observation: str, n_agents: int = 2) -> GenParamLearner:
    """One PPO iteration on arith with the tiny model; checkpoint at folder/checkpoint.pt."""
    learner = GenParamLearner.for_task(
        "arith", model=model, n_agents=n_agents, n_envs=2, observation=observation,
        max_tokens=24,
    )
    learner.train(1, checkpoint=folder / "checkpoint.pt", progress=False)
    return learner


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """(learner, checkpoint) of 2 agents in partial observation and of 2 in observation none."""
    root = tmp_path_factory.mktemp("genparam")
    model = str(save_tiny_lm(root / "tiny"))
    out = {}
    for observation in ("partial", "none"):
        folder = root / observation
        out[observation] = (train(folder, model, observation), folder / "checkpoint.pt")
    return out


def learner_mean_params(learner: GenParamLearner, visible: list[str], position: int):
    states = learner.encoder.encode([TASK_TEXT], [position], [visible])
    z, _, _ = learner.policies[position].act(states, deterministic=True)
    return z, learner.ranges.to_params(z)[0]


def test_loaded_policy_gives_the_learners_mean_action(trained, tmp_path):
    learner, path = trained["partial"]
    policy = load_inference_policy(path)
    assert policy.n_agents == 2 and policy.iterations == 1
    assert policy.spec["observation"] == "partial" and policy.spec["task"] == "arith"
    for position, visible in ((0, []), (1, ["I think it is 7."])):
        z, params = learner_mean_params(learner, visible, position)
        torch.testing.assert_close(policy.mean_z([TASK_TEXT], [visible], position), z)
        assert policy(TASK_TEXT, visible, position, 2) == params
    # the state matters: what the agent sees changes its parameters
    assert policy.mean_z([TASK_TEXT], [["7"]], 1).ne(policy.mean_z([TASK_TEXT], [[]], 1)).any()
    # trained, not initial: PPO moved the mean away from the ranges' starting point
    start = learner.ranges.initial_logits()
    assert not torch.allclose(policy.mean_z([TASK_TEXT], [[]], 0)[0], start, atol=1e-4)

    # the inference-only export: same policy, smaller file, its own hash
    small = export_policy(path, tmp_path / "policy.pt")
    exported = load_inference_policy(small)
    assert exported(TASK_TEXT, ["7"], 1, 2) == policy(TASK_TEXT, ["7"], 1, 2)
    assert small.stat().st_size < 0.6 * path.stat().st_size
    assert exported.sha256 == file_sha256(small) != policy.sha256
    assert exported.describe()["checkpoint"] == str(small)


def test_trained_spgg_ensemble_plays_the_policys_params(trained):
    _, path = trained["partial"]
    policy = load_inference_policy(path)
    task, backend = arith_setup()
    problem = task.problems("test")[0]
    method = make_method("spgg", game=GAME, policy_checkpoint=str(path))
    record = run_episode(method, task, problem, backend, GREEDY, seed=0)
    first = record["calls"][0]["text"]
    expected = [policy(problem.question, [], 0, 2), policy(problem.question, [first], 1, 2)]
    assert record["details"]["agent_params"] == [p.to_dict() for p in expected]
    assert backend.params == expected
    assert all(p != GREEDY and p.temperature > 0 for p in expected)  # not the untrained decoding
    untrained = run_episode(make_method("spgg", game=GAME), task, problem, *arith_setup()[1:],
                            GREEDY, seed=0)
    assert untrained["details"]["agent_params"] is None
    assert {c["params"]["temperature"] for c in untrained["calls"]} == {0.0}
    described = method.describe()["policy"]
    assert described["sha256"] == file_sha256(path) and described["n_agents"] == 2


def test_econ_learned_executors_play_the_policys_params(trained):
    _, path = trained["none"]
    policy = load_inference_policy(path)
    task, backend = arith_setup()
    problem = task.problems("test")[0]
    method = make_method("econ", executors=2, policy_checkpoint=str(path))
    record = run_episode(method, task, problem, backend, GREEDY, seed=0)
    expected = [policy(problem.question, [], i, 2) for i in range(2)]
    assert record["details"]["executor_params"] == [p.to_dict() for p in expected]
    assert backend.params == [GREEDY, *expected, GREEDY]  # coordinator calls stay as configured
    assert expected[0] != expected[1]  # one network per executor


def test_result_file_identifies_and_verifies_the_policy(trained, tmp_path):
    _, original = trained["partial"]
    path = tmp_path / "policy.pt"
    path.write_bytes(original.read_bytes())
    task, backend = arith_setup()
    config = BenchConfig(
        name="arith-spgg-trained", method="spgg", split="test",
        game=GAME.replace(task_options={"n_problems": 12}),
        method_options={"policy_checkpoint": str(path)}, decoding={"max_new_tokens": 32},
    )
    out = run_benchmark(config, tmp_path / "results", backend=backend, task=task, progress=False)
    result = load_result(out)
    policy = result["header"]["method"]["policy"]
    assert policy["sha256"] == file_sha256(path) and policy["checkpoint"] == str(path)
    board = tmp_path / "board"
    write_board([result], board)
    markdown = (board / "leaderboard.md").read_text()
    assert "## Trained policies" in markdown and policy["sha256"][:16] in markdown
    assert "partial obs., 2 agents, 1 PPO iterations" in markdown
    # the checkpoint changed after the run: the result no longer verifies
    torch.save({"policies": {}}, path)
    with pytest.raises(ResultError, match="the policy changed since the run"):
        load_result(out)
    path.unlink()
    with pytest.raises(ResultError, match="cannot be verified"):
        load_result(out)


def test_checkpoint_that_does_not_fit_is_refused_with_the_reason(trained, tmp_path):
    _, partial = trained["partial"]
    task, backend = arith_setup()
    problem = task.problems("test")[0]
    for game, named in ((GAME.replace(n_agents=3), "n_agents: 3 vs 2"),
                        (GAME.replace(observation="full"), "observation: 'full' vs 'partial'"),
                        (GAME.replace(max_tokens=512, token_counting="approx"),
                         "max_tokens: 512 vs 24; token_counting: 'approx' vs 'model'")):
        method = make_method("spgg", game=game, policy_checkpoint=str(partial))
        with pytest.raises(ValueError, match="was made for another game") as info:
            run_episode(method, task, problem, backend, GREEDY)
        assert named in str(info.value)
    with pytest.raises(ValueError, match="observation='none'"):
        run_episode(make_method("econ", executors=2, policy_checkpoint=str(partial)), task,
                    problem, backend, GREEDY)
    assert backend.calls == []
    policy = load_inference_policy(partial)
    with pytest.raises(ValueError, match="n_agents=4"):
        policy(TASK_TEXT, [], 0, 4)
    with pytest.raises(ValueError, match="position"):
        policy(TASK_TEXT, [], 2, 2)
    with pytest.raises(ValueError, match="task='gsm8k'"):
        policy.expect(task="gsm8k")


def test_bad_checkpoint_files_are_named(trained, tmp_path):
    _, partial = trained["partial"]
    with pytest.raises(FileNotFoundError, match="spgg train genparam"):
        load_inference_policy(tmp_path / "missing.pt")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        make_method("spgg", game=GAME, policy_checkpoint=str(tmp_path / "missing.pt"))
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="cannot read policy checkpoint"):
        load_inference_policy(garbage)
    state = torch.load(partial, weights_only=True)
    torch.save({"something": 1}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="no 'policies'"):
        load_inference_policy(tmp_path / "other.pt")
    torch.save({k: v for k, v in state.items() if k != "inference"}, tmp_path / "old.pt")
    with pytest.raises(ValueError, match="lacks its 'inference' block"):
        load_inference_policy(tmp_path / "old.pt")
    wrong = {**state, "inference": {**state["inference"], "state_dim": 999}}
    torch.save(wrong, tmp_path / "wrong_dim.pt")
    with pytest.raises(ValueError, match="states of size 999"):
        load_inference_policy(tmp_path / "wrong_dim.pt")
    no_source = {**state, "inference": {**state["inference"], "embedder": None}}
    torch.save(no_source, tmp_path / "no_source.pt")
    with pytest.raises(ValueError, match="embedder="):
        load_inference_policy(tmp_path / "no_source.pt")


def test_training_keeps_benchmark_problems_out(trained):
    from spgg_env.agents.genparam_cli import training_uids
    from spgg_env.tasks import make_task

    humaneval = make_task("humaneval")
    pinned = set(pinned_splits("tiny-v1")["tasks"]["humaneval"]["uids"])
    uids = training_uids(humaneval, "test", ["tiny-v1"])
    assert len(uids) == 164 - 5 and not pinned & set(uids)
    assert training_uids(humaneval, "test", []) is None

    learner, _ = trained["partial"]
    task_uids = [p.uid for p in learner.envs[0].unwrapped.task.problems("test")]
    saved = learner.train_uids, learner.iteration
    learner.train_uids = task_uids[3:5]
    try:
        for _ in range(3):
            learner.collect(deterministic=True)
            assert {env.unwrapped.problem.uid for env in learner.envs} <= set(task_uids[3:5])
            learner.iteration += 1
        spec = learner.inference_spec()["train_problems"]
        assert spec["n"] == 2 and len(spec["uids_sha256"]) == 64
    finally:
        learner.train_uids, learner.iteration = saved


def test_cli_writes_a_loadable_inference_policy(tmp_path):
    import json

    from spgg_env.agents import genparam_cli

    model = str(save_tiny_lm(tmp_path / "tiny"))
    out = tmp_path / "run"
    assert genparam_cli.cli(["--model", model, "--agents", "2", "--envs", "2", "--iterations",
                             "1", "--max-tokens", "24", "--observation", "none",
                             "--out", str(out), "--no-progress"]) == 0
    policy = load_inference_policy(out / "policy.pt", n_agents=2, observation="none")
    assert policy.spec["embedder"] == {"model": model, "dtype": policy.spec["embedder"]["dtype"],
                                       "max_length": 256}
    assert 16 <= policy(TASK_TEXT, [], 1, 2).max_new_tokens <= 24
    meta = json.loads((out / "run_meta.json").read_text())
    pinned = set()  # arith's pinned benchmark problems (tiny-v1, small-v1) stay out of training
    for version in ("tiny-v1", "small-v1"):
        pinned |= set(pinned_splits(version)["tasks"]["arith"]["uids"])
    assert meta["split"] == "test" and meta["held_out_problems"] == len(pinned) > 0
