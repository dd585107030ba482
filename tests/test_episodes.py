"""Episodes of the text game on the engine: records, visibility, effort, failures, schedules."""

from __future__ import annotations

import re

import pytest
import torch

from spgg_env.agents.backend import GenerationParams
from spgg_env.agents.engine import Engine, Request
from spgg_env.agents.ensemble import Ensemble
from spgg_env.agents.episodes import EpisodeRunner
from spgg_env.agents.llm_agent import LLMAgent
from spgg_env.agents.scripted import ScriptedBackend
from spgg_env.agents.tiny_lm import save_tiny_lm
from spgg_env.agents.transformers_backend import TransformersBackend
from spgg_env.seeding import episode_seed
from spgg_env.spec import GameSpec
from spgg_env.tasks import make_task

torch.set_num_threads(1)

ANSWERS = {p.question: p.answer for p in make_task("arith").problems("test")}
ARITH = GameSpec(task="arith", token_counting="model", max_tokens=64)


def solve(prompt, params, index):
    """Answers the arith question found in the prompt correctly."""
    question = re.search(r"### Task\n(.*?)\n", prompt[-1]["content"]).group(1)
    return f"Step by step. The answer is {ANSWERS[question]}."


def trio(backend, **kwargs) -> Ensemble:
    return Ensemble([LLMAgent(f"a{i}", backend, **kwargs) for i in range(3)])


def runner(ensemble, spec=ARITH, **engine_kwargs) -> EpisodeRunner:
    return EpisodeRunner(spec, ensemble, Engine(ensemble.backend_map(), **engine_kwargs))


def test_records_hold_prompts_contributions_answers_scores_rewards_tokens():
    record = next(runner(trio(ScriptedBackend(solve)), max_batch=2).run(1, seed=5)).to_record()
    problem = make_task("arith").problems("test")[0]  # sweep: episode 0 plays problem 0
    assert record["problem_uid"] == problem.uid and record["seed"] == episode_seed(5, 0)
    assert record["reference"] == problem.answer
    assert record["group_score"] == 1.0 and record["error"] is None
    assert len(record["agents"]) == 3
    for i, step in enumerate(record["agents"]):
        assert step["agent"] == f"agent_{i}" and step["position"] == i and step["name"] == f"a{i}"
        assert problem.question in step["prompt"][-1]["content"]
        assert step["contribution"].endswith(f"The answer is {problem.answer}.")
        assert step["score"] == 1.0 and step["extracted"] == problem.answer
        assert step["reward"] == record["rewards"][f"agent_{i}"]
        assert step["reward"] == pytest.approx(step["reward_components"]["total"])
        assert step["prompt_tokens"] > 0 and step["completion_tokens"] == 7
        assert step["env_tokens"] == 7  # model counting: the scripted backend's words
        assert step["params"] == GenerationParams().to_dict()
    assert record["tokens"]["completion"] == 21
    assert record["timing"]["elapsed_s"] >= 0


def test_partial_and_full_observation_show_different_predecessors():
    def echo_position(prompt, params, index):
        return f"I am {prompt[-1]['content'].count('Agent ')} deep. The answer is 1."

    po = next(runner(trio(ScriptedBackend(echo_position))).run(1)).to_record()
    fo = next(runner(trio(ScriptedBackend(echo_position)),
                     ARITH.replace(observation="full")).run(1)).to_record()
    assert [s["n_visible"] for s in po["agents"]] == [0, 1, 1]
    assert [s["n_visible"] for s in fo["agents"]] == [0, 1, 2]
    assert "Agent 1 wrote" not in po["agents"][2]["prompt"][-1]["content"]
    assert "Agent 1 wrote" in fo["agents"][2]["prompt"][-1]["content"]
    assert po["tokens"]["prompt"] < fo["tokens"]["prompt"]
    assert po["problem_uid"] == fo["problem_uid"]


def test_effort_counts_with_the_writing_agents_backend_or_approximately():
    class Counting(ScriptedBackend):
        def count_tokens(self, text):
            return 100

    ensemble = Ensemble([LLMAgent("a", ScriptedBackend("one two")),
                         LLMAgent("b", Counting("one two"))])
    spec = ARITH.replace(n_agents=2)
    record = next(runner(ensemble, spec).run(1)).to_record()
    assert [s["env_tokens"] for s in record["agents"]] == [2, 100]
    approx = next(runner(ensemble, spec.replace(token_counting="approx")).run(1)).to_record()
    assert [s["env_tokens"] for s in approx["agents"]] == [2, 2]


def test_failed_generation_is_played_as_empty_and_recorded():
    problems = make_task("arith").problems("test")
    unlucky = {problems[1].question, problems[4].question}

    def flaky(prompt, params, index):
        content = prompt[-1]["content"]
        if "Agent 1 wrote" in content and any(q in content for q in unlucky):
            raise TimeoutError("no answer in time")
        return "The answer is 3."

    records = [e.to_record() for e in runner(trio(ScriptedBackend(flaky)), max_batch=2).run(6)]
    failed = [r for r in records if r["failed_generations"]]
    assert [r["episode"] for r in failed] == [1, 4]
    for r in failed:
        bad = r["agents"][1]
        assert bad["finish_reason"] == "error" and "no answer in time" in bad["generation_error"]
        assert bad["contribution"] == "" and bad["score"] == 0.0 and bad["empty_generation"]
        assert r["group_score"] is not None and r["error"] is None  # scored all the same


def test_env_exception_ends_only_that_episode_and_is_recorded(monkeypatch):
    import importlib

    env_module = importlib.import_module("spgg_env.env")

    original = env_module.SPGGEnv.step

    def step(self, action):
        if self.problem.uid.endswith("-1") and self.agent_selection == "agent_1":
            raise RuntimeError("scorer exploded")
        original(self, action)

    monkeypatch.setattr(env_module.SPGGEnv, "step", step)
    ok, failed = runner(trio(ScriptedBackend("The answer is 3.")), max_batch=2).run(2)
    assert ok.error is None and ok.group_score is not None
    assert "scorer exploded" in failed.error and failed.group_score is None
    record = failed.to_record()
    assert len(record["agents"]) == 2 and record["rewards"]["agent_0"] is None


def test_a_policy_may_act_with_text_directly():
    class Echo:
        n_agents = 3

        def act(self, agent, observations):
            return [f"{agent} says: the answer is 1." for _ in observations]

        def count_tokens(self, text):
            return 3

    episode = next(EpisodeRunner(ARITH, Echo(), Engine(ScriptedBackend())).run(1))
    assert [s.action for s in episode.steps] == [f"agent_{i} says: the answer is 1."
                                                 for i in range(3)]
    assert all(s.request is None and s.info["tokens"] == 3 for s in episode.steps)


def test_episodes_are_reproducible_and_seeds_reach_the_backend():
    def play():
        backend = ScriptedBackend("a b c")
        return [e.to_record() for e in runner(trio(backend), max_batch=3).run(4, seed=1)], backend

    (first, backend), (second, _) = play(), play()
    for records in (first, second):
        for r in records:
            r.pop("timing")
            for s in r["agents"]:
                s.pop("latency_s")
    assert first == second
    assert len({seed for call in backend.calls for seed in call["seed"]}) == 12  # all distinct


def test_policy_and_game_must_agree_on_the_number_of_agents():
    with pytest.raises(ValueError, match="plays 3 agents but the game has 2"):
        runner(trio(ScriptedBackend()), ARITH.replace(n_agents=2))


def test_continuous_equals_lockstep_under_greedy_decoding(tmp_path):
    """Same seeds, same texts: keeping the batch full changes nothing a record says."""
    backend = TransformersBackend(str(save_tiny_lm(tmp_path, max_position_embeddings=1024)),
                                  device="cpu", dtype="float32")
    ensemble = trio(backend, params=GenerationParams(max_new_tokens=6))
    spec = ARITH.replace(observation="full")

    def texts(schedule: str, max_batch: int) -> list[list[str]]:
        episodes = runner(ensemble, spec, schedule=schedule, max_batch=max_batch).run(5)
        return [[s.action for s in e.steps] for e in episodes]

    lockstep = texts("lockstep", 3)
    assert texts("continuous", 3) == lockstep == texts("lockstep", 1)
    episode = next(runner(ensemble, spec).run(1))
    assert all(s.info["tokens"] == backend.count_tokens(s.action) for s in episode.steps)
    assert all(isinstance(s.request, Request) and s.generation.token_ids is not None
               for s in episode.steps)
