"""A trained generation-parameter checkpoint at inference: rebuilt from the file alone, the
learner's mean action, used by the trained MAC-SPGG ensembles and ECON-learned, and refused with
a clear message when it does not fit (tiny random LM: plumbing, not quality); the nine trained
leaderboard policies (the format before game specs) verify under their exact game spec."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from bench_toys import arith_setup

from spgg_env.agents.backend import GenerationParams
from spgg_env.agents.genparam_inference import (
    export_policy,
    file_sha256,
    legacy_game,
    load_inference_policy,
)
from spgg_env.agents.genparam_learner import GenParamConfig, GenParamLearner
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


def game(observation: str, n_agents: int = 2) -> GameSpec:
    return GameSpec(task="arith", n_agents=n_agents, observation=observation, max_tokens=24,
                    token_counting="model")


def train(folder, model: str, observation: str, n_agents: int = 2, **options) -> GenParamLearner:
    """One PPO update on arith with the tiny model; checkpoint at folder/checkpoint.pt."""
    config = GenParamConfig(game=game(observation, n_agents), model=model, episodes=2,
                            updates=1, out=str(folder))
    learner = GenParamLearner.from_config(config, **options)
    learner.train(progress=False)
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
    z, _, _ = learner.networks[position].act(states, deterministic=True)
    return z, learner.ranges.to_params(z)[0]


def test_loaded_policy_gives_the_learners_mean_action(trained, tmp_path):
    learner, path = trained["partial"]
    policy = load_inference_policy(path)
    assert policy.n_agents == 2 and policy.iterations == 1
    assert policy.game == game("partial")
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
    for other, named in ((GAME.replace(n_agents=3), "n_agents: 3 vs 2"),
                        (GAME.replace(observation="full"), "observation: 'full' vs 'partial'"),
                        (GAME.replace(max_tokens=512, token_counting="approx"),
                         "max_tokens: 512 vs 24; token_counting: 'approx' vs 'model'")):
        method = make_method("spgg", game=other, policy_checkpoint=str(partial))
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
    with pytest.raises(ValueError, match="unknown game field"):
        policy.expect(agents=2)
    # the whole game: every differing field named; another split is fine (train -> test)
    policy.require(game("partial").replace(split="train"))
    with pytest.raises(ValueError, match=r"another game \(max_tokens: 24 vs 32; "
                                         r"token_counting: 'model' vs 'approx'\)"):
        load_inference_policy(partial, game=game("partial").replace(
            max_tokens=32, token_counting="approx"))


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


def test_training_keeps_benchmark_problems_out(trained, tmp_path):
    from spgg_env.agents.genparam_learner import training_uids
    from spgg_env.tasks import make_task

    humaneval = make_task("humaneval")
    pinned = set(pinned_splits("tiny-v1")["tasks"]["humaneval"]["uids"])
    uids = training_uids(humaneval, "test", ["tiny-v1"])
    assert len(uids) == 164 - 5 and not pinned & set(uids)
    assert training_uids(humaneval, "test", []) is None

    task_uids = [p.uid for p in make_task("arith").problems("test")]
    model = str(save_tiny_lm(tmp_path / "tiny"))
    learner = train(tmp_path / "run", model, "partial", train_uids=task_uids[3:5])
    for _ in range(3):
        assert {e.problem_uid for e in learner.play_update()} == set(task_uids[3:5])
        learner.update += 1
    spec = learner.inference_spec()["train_problems"]
    assert spec["n"] == 2 and len(spec["uids_sha256"]) == 64
    with pytest.raises(ValueError, match="not in split"):
        train(tmp_path / "bad", model, "partial", train_uids=["nope"])


def test_cli_writes_a_loadable_inference_policy(tmp_path):
    import json

    from spgg_env.agents import train_cli

    model = str(save_tiny_lm(tmp_path / "tiny"))
    out = tmp_path / "run"
    assert train_cli.cli(["genparam", "--model", model, "--n-agents", "2", "--episodes", "2",
                          "--updates", "1", "--max-tokens", "24", "--observation", "none",
                          "--out", str(out), "--no-progress"]) == 0
    policy = load_inference_policy(out / "policy.pt", n_agents=2, observation="none")
    assert policy.inference["embedder"] == {"model": model,
                                            "dtype": policy.inference["embedder"]["dtype"],
                                            "max_length": 256}
    assert 16 <= policy(TASK_TEXT, [], 1, 2).max_new_tokens <= 24
    meta = json.loads((out / "run_meta.json").read_text())
    pinned = set()  # arith's pinned benchmark problems (tiny-v1, small-v1) stay out of training
    for version in ("tiny-v1", "small-v1"):
        pinned |= set(pinned_splits(version)["tasks"]["arith"]["uids"])
    assert meta["game"]["split"] == "test" and meta["held_out_problems"] == len(pinned) > 0


#: The nine trained leaderboard policies: (task, setting) -> the game they were trained for,
#: written out from leaderboard/policies/README.md and train.sh (not read from the files).
POLICIES = Path(__file__).resolve().parents[1] / "leaderboard" / "policies"
SETTINGS = {"spgg-po": (3, "partial"), "spgg-fo": (3, "full"), "econ": (2, "none")}


def expected_game(task: str, setting: str) -> GameSpec:
    n_agents, observation = SETTINGS[setting]
    return GameSpec(task=task, split="train" if task == "gsm8k" else "test", n_agents=n_agents,
                    observation=observation, mechanism="mac-spgg",
                    max_tokens=192 if task == "humaneval" else 128, token_counting="model")


def test_trained_leaderboard_policies_verify_under_their_game():
    files = sorted(POLICIES.glob("*/*/policy.pt"))
    assert len(files) == 9
    embedder = None
    for path in files:
        task, setting = path.parent.parent.name, path.parent.name
        expected = expected_game(task, setting)
        state = torch.load(path, weights_only=True)
        assert state["inference"]["format"] == "spgg-genparam/1"
        assert legacy_game(state["inference"]) == expected, path
        policy = load_inference_policy(path, game=expected.replace(split="test"),
                                       embedder=embedder)
        embedder = policy.encoder.embedder  # the nine name the same embedder
        assert state["inference"]["embedder"] == {"model": "embedded", "dtype": "bfloat16",
                                                  "max_length": 256}
        assert policy.game == expected and policy.iterations == state["iteration"] > 0
        assert policy.describe()["game"] == expected.to_dict()
        params = policy(TASK_TEXT, [], 0, expected.n_agents)
        assert 16 <= params.max_new_tokens <= expected.max_tokens
        classic = expected.replace(mechanism="spgg", mechanism_params={})
        for wrong, field in ((expected.replace(n_agents=4), "n_agents"),
                             (expected.replace(token_counting="approx"), "token_counting"),
                             (classic, "mechanism: 'mac-spgg' vs 'spgg'")):
            with pytest.raises(ValueError, match=f"another game .*{field}"):
                policy.require(wrong)
