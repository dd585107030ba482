"""GSM8K task: loading (local folder, file, env var, hub fallback), scoring, PettingZoo API."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest
from pettingzoo.test import api_test, seed_test

import spgg_env
from spgg_env.tasks import make_task
from spgg_env.tasks.gsm8k import ENV_VAR, GSM8KTask, gold_answer

DATA = Path(__file__).parents[1].parent / "shared/data/gsm8k"
needs_data = pytest.mark.skipif(not DATA.is_dir(), reason=f"GSM8K data not at {DATA}")

ROWS = [
    {"question": "Tom has 3 apples and buys 4 more. How many?", "answer": "3+4=7\n#### 7"},
    {"question": "A book costs $1,200 less $50. Price?", "answer": "1200-50=1150\n#### 1,150"},
]


@pytest.fixture
def tiny_file(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.jsonl"
    path.write_text("\n".join(json.dumps(row) for row in ROWS) + "\n")
    return path


def test_gold_answer() -> None:
    assert gold_answer("so 9*2=18\n#### 18") == 18
    assert gold_answer("#### 1,150") == 1150
    assert gold_answer("#### -2.5") == -2.5
    with pytest.raises(ValueError, match="####"):
        gold_answer("no final line")


def test_local_file_and_scoring(tiny_file: Path) -> None:
    task = make_task("gsm8k", data_path=tiny_file)
    problems = task.problems("test")
    assert [p.uid for p in problems] == ["gsm8k/test/0", "gsm8k/test/1"]
    assert [p.answer for p in problems] == [7, 1150]
    assert task.score(problems[1], "1200 - 50 = 1150, so the answer is $1,150.").value == 1.0
    assert task.score(problems[1], "The answer is $1,200.").value == 0.0
    missing = task.score(problems[0], "I cannot solve this.")
    assert (missing.value, missing.extracted) == (0.0, None)
    assert missing.error == "no committed answer (expected '#### N')"
    # the group's answer and batches are scored the same way; "so 7 apples" commits to nothing
    # under the strict format (a whole reply "7 apples" does), the lenient reading pays both
    texts = ["#### 7", "7 apples", "so 7 apples", "\\boxed{8}", "The answer is 7 or 8"]
    assert [s.value for s in task.score_many(problems[0], texts)] == [1.0, 1.0, 0.0, 0.0, 0.0]
    lenient = make_task("gsm8k", data_path=tiny_file, answer_format="lenient")
    assert [s.value for s in lenient.score_many(problems[0], texts)] == [1, 1, 1, 0, 1]


def test_env_var_and_bad_rows(tiny_file: Path, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv(ENV_VAR, str(tiny_file))
    assert len(GSM8KTask().problems()) == 2
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"q": "x"}) + "\n")
    with pytest.raises(ValueError, match="lacks field 'question'"):
        GSM8KTask(bad).problems()
    with pytest.raises(FileNotFoundError, match="train.jsonl"):
        GSM8KTask(tmp_path).problems("train")


def test_hub_fallback_error_says_what_to_do(monkeypatch) -> None:
    import datasets

    monkeypatch.delenv(ENV_VAR, raising=False)

    def offline(*args, **kwargs):
        raise ConnectionError("offline")

    monkeypatch.setattr(datasets, "load_dataset", offline)
    with pytest.raises(RuntimeError, match=ENV_VAR):
        GSM8KTask().problems()


@needs_data
def test_official_release() -> None:
    task = GSM8KTask(DATA)
    test, train = task.problems("test"), task.problems("train")
    assert (len(test), len(train)) == (1319, 7473)
    assert test[0].answer == 18 and "Janet" in test[0].question
    # every official worked solution commits to its own answer under the strict format
    failures = [p.uid for p in test if task.score(p, p.metadata["solution"]).value != 1.0]
    assert failures == []
    assert task.split_hash("test") == GSM8KTask(DATA).split_hash("test")
    assert task.split_hash("test") != task.split_hash("train")


@needs_data
def test_pettingzoo_api_and_seed() -> None:
    task = GSM8KTask(DATA)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        api_test(spgg_env.aec_env(task=task, max_action_chars=200), num_cycles=20)
        seed_test(lambda: spgg_env.aec_env(task=task, max_action_chars=200), num_cycles=10)


@needs_data
def test_reset_seed_draws_the_same_problem_and_scores_group() -> None:
    envs = [spgg_env.aec_env(task="gsm8k", task_options={"data_path": DATA}) for _ in range(2)]
    for env in envs:
        env.reset(seed=11)
    first, second = (env.unwrapped.problem for env in envs)
    assert first.uid == second.uid
    env, final = envs[0], {}
    for agent in env.agent_iter():
        _, _, terminated, truncated, info = env.last()
        if terminated or truncated:
            final[agent] = (info["score"], info["group_score"])
        env.step(None if terminated or truncated else f"So the answer is {first.answer}.")
    assert final == dict.fromkeys(env.possible_agents, (1.0, 1.0))


def test_instruction_and_version() -> None:
    assert GSM8KTask.instruction.splitlines()[-1] == "End with '#### N'."
    assert GSM8KTask.version == "2"
    with pytest.raises(ValueError, match="answer_format"):
        GSM8KTask(answer_format="loose")


def test_registered_id() -> None:
    import pettingzoo

    assert "spgg/GSM8K-v1" in pettingzoo.aec_registry


def test_demonstration_is_the_solution_in_the_instructions_format(tiny_file: Path) -> None:
    task = GSM8KTask(tiny_file)
    for problem in task.problems("test"):
        demo = task.demonstration(problem)
        assert demo.endswith(f"The answer is {problem.answer}.")
        assert "####" not in demo and "<<" not in demo
        assert task.score(problem, demo).value == 1.0


@needs_data
def test_every_official_solution_makes_a_demonstration_that_scores_one() -> None:
    task = GSM8KTask(DATA)
    for problem in task.problems("train"):
        demo = task.demonstration(problem)
        assert "<<" not in demo and task.score(problem, demo).value == 1.0, problem.uid
