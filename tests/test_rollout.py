"""The batched runner: lockstep batching, records, failures, and batched == sequential."""

from __future__ import annotations

import re

import pytest
import torch

from spgg_env.agents.backend import GenerationParams
from spgg_env.agents.llm_agent import LLMAgent
from spgg_env.agents.rollout import RolloutRunner
from spgg_env.agents.scripted import ScriptedBackend
from spgg_env.agents.tiny_lm import save_tiny_lm
from spgg_env.agents.transformers_backend import TransformersBackend
from spgg_env.tasks import make_task

torch.set_num_threads(1)

ANSWERS = {p.question: p.answer for p in make_task("arith").problems("test")}


def solve(prompt, params, index):
    """Answers the arith question found in the prompt correctly."""
    question = re.search(r"### Task\n(.*?)\n", prompt[-1]["content"]).group(1)
    return f"Step by step. The answer is {ANSWERS[question]}."


def trio(backend, **kwargs):
    return [LLMAgent(f"a{i}", backend, **kwargs) for i in range(3)]


def test_one_backend_call_per_position_per_batch():
    backend = ScriptedBackend(solve)
    runner = RolloutRunner(trio(backend), batch_size=4, task="arith")
    records = list(runner.run(10, seed=0))
    assert [r["episode"] for r in records] == list(range(10))
    assert [len(c["prompts"]) for c in backend.calls] == [4] * 3 + [4] * 3 + [2] * 3
    assert [r["batch_size"] for r in records] == [4] * 8 + [2] * 2
    tasks = {id(env.unwrapped.task) for env in runner.envs}
    assert len(tasks) == 1  # one task (data, scorer) shared by the copies


def test_records_hold_prompts_contributions_scores_rewards_tokens():
    runner = RolloutRunner(trio(ScriptedBackend(solve)), batch_size=2, task="arith")
    record = next(runner.run(1, seed=5))
    problem = make_task("arith").problems("test")[0]  # sweep: episode 0 plays problem 0
    assert record["problem_uid"] == problem.uid and record["seed"] == 5
    assert record["group_score"] == 1.0 and record["error"] is None
    assert len(record["agents"]) == 3
    for i, step in enumerate(record["agents"]):
        assert step["agent"] == f"agent_{i}" and step["position"] == i
        assert problem.question in step["prompt"][-1]["content"]
        assert step["contribution"].endswith(f"The answer is {problem.answer}.")
        assert step["score"] == 1.0 and step["extracted"] == problem.answer
        assert step["reward"] == record["rewards"][f"agent_{i}"]
        assert step["reward"] == pytest.approx(step["reward_components"]["total"])
        assert step["prompt_tokens"] > 0 and step["completion_tokens"] == 7
        assert step["params"] == GenerationParams().to_dict()
    assert record["tokens"]["completion"] == 21


def test_partial_and_full_observation_show_different_predecessors():
    def echo_position(prompt, params, index):
        return f"I am {prompt[-1]['content'].count('Agent ')} deep. The answer is 1."

    partial = RolloutRunner(trio(ScriptedBackend(echo_position)), batch_size=1, task="arith",
                            observation="partial")
    full = RolloutRunner(trio(ScriptedBackend(echo_position)), batch_size=1, task="arith",
                         observation="full")
    po, fo = next(partial.run(1)), next(full.run(1))
    assert [s["n_visible"] for s in po["agents"]] == [0, 1, 1]
    assert [s["n_visible"] for s in fo["agents"]] == [0, 1, 2]
    assert "Agent 1 wrote" not in po["agents"][2]["prompt"][-1]["content"]
    assert "Agent 1 wrote" in fo["agents"][2]["prompt"][-1]["content"]
    assert po["tokens"]["prompt"] < fo["tokens"]["prompt"]
    assert po["problem_uid"] == fo["problem_uid"]


def test_env_cost_counts_with_the_acting_agents_backend():
    class Counting(ScriptedBackend):
        def count_tokens(self, text):
            return 100

    agents = [LLMAgent("a", ScriptedBackend("one two")), LLMAgent("b", Counting("one two"))]
    record = next(RolloutRunner(agents, batch_size=1, task="arith").run(1))
    assert [s["env_tokens"] for s in record["agents"]] == [2, 100]


def test_failed_generation_is_played_as_empty_and_recorded():
    def flaky(prompt, params, index):
        if "Agent 1 wrote" in prompt[-1]["content"] and index == 0:
            raise TimeoutError("no answer in time")
        return "The answer is 3."

    records = list(RolloutRunner(trio(ScriptedBackend(flaky)), batch_size=2,
                                 task="arith").run(2))
    bad, good = records[0]["agents"][1], records[1]["agents"][1]
    assert bad["finish_reason"] == "error" and "no answer in time" in bad["generation_error"]
    assert bad["contribution"] == "" and bad["score"] == 0.0 and bad["empty_generation"]
    assert records[0]["failed_generations"] == 1 and records[0]["group_score"] is not None
    assert good["finish_reason"] == "stop"


def test_env_exception_ends_only_that_episode_and_is_recorded(monkeypatch):
    runner = RolloutRunner(trio(ScriptedBackend("The answer is 3.")), batch_size=2, task="arith")
    broken = runner.envs[1]
    original = broken.step

    def step(action):
        if broken.unwrapped.agent_selection == "agent_1":
            raise RuntimeError("scorer exploded")
        original(action)

    monkeypatch.setattr(broken, "step", step)
    ok, failed = list(runner.run(2))
    assert ok["error"] is None and ok["group_score"] is not None
    assert "scorer exploded" in failed["error"] and failed["group_score"] is None
    assert len(failed["agents"]) == 2 and failed["rewards"]["agent_0"] is None


def test_runs_are_reproducible_and_chosen_params_are_used():
    def chooser(seed, position, obs):
        return GenerationParams(temperature=0.1 * position, max_new_tokens=1 + seed)

    def play():
        backend = ScriptedBackend("a b c d e f")
        runner = RolloutRunner(trio(backend), batch_size=3, task="arith", choose_params=chooser)
        return list(runner.run(3, seed=1, sweep=False)), backend

    (first, backend), (second, _) = play(), play()
    strip = [{k: v for k, v in r.items() if "wall" not in k} for r in first]
    strip2 = [{k: v for k, v in r.items() if "wall" not in k} for r in second]
    for rec in (strip, strip2):
        for r in rec:
            for s in r["agents"]:
                s.pop("latency_s")
    assert strip == strip2
    assert [s["completion_tokens"] for s in first[2]["agents"]] == [4, 4, 4]  # seed 3
    assert backend.calls[1]["params"][0].temperature == pytest.approx(0.1)


def test_bad_runner_arguments_are_named():
    agents = trio(ScriptedBackend())
    with pytest.raises(ValueError, match="n_agents=2"):
        RolloutRunner(agents, n_agents=2, task="arith")
    with pytest.raises(ValueError, match="batch_size"):
        RolloutRunner(agents, batch_size=0, task="arith")
    with pytest.raises(ValueError, match="token_counter"):
        RolloutRunner(agents, token_counter=len, task="arith")


def test_batched_equals_sequential_under_greedy_decoding(tmp_path):
    """K=3 lockstep batches give the same texts as one episode at a time (tiny model)."""
    backend = TransformersBackend(str(save_tiny_lm(tmp_path, max_position_embeddings=1024)),
                                  device="cpu", dtype="float32")
    agents = trio(backend, params=GenerationParams(max_new_tokens=6))
    batched = list(RolloutRunner(agents, batch_size=3, task="arith").run(3))
    sequential = list(RolloutRunner(agents, batch_size=1, task="arith").run(3))
    texts = [[s["contribution"] for s in r["agents"]] for r in batched]
    assert texts == [[s["contribution"] for s in r["agents"]] for r in sequential]
    assert [r["problem_uid"] for r in batched] == [r["problem_uid"] for r in sequential]
    assert all(s["env_tokens"] == backend.count_tokens(s["contribution"])
               for r in batched for s in r["agents"])
