"""The comparison methods: call counts, what each call sees, voting, and option checks."""

from __future__ import annotations

import pytest
from bench_toys import arith_setup

from spgg_env.agents.backend import GenerationParams
from spgg_env.baselines.bench_run import run_episode
from spgg_env.baselines.methods import majority_vote, make_method
from spgg_env.baselines.trained_policy import load_params_policy
from spgg_env.spec import GameSpec

GREEDY = GenerationParams(max_new_tokens=32)
#: The game of the MAC-SPGG ensembles below (arith_setup's task).
GAME = GameSpec(task="arith", task_options={"n_problems": 12}, n_agents=3, max_tokens=128,
                token_counting="model")


def solve(name: str, **options):
    task, backend = arith_setup()
    problem = task.problems("test")[0]
    record = run_episode(make_method(name, **options), task, problem, backend, GREEDY, seed=0)
    return task, problem, backend, record


def contents(prompt):
    return "\n".join(m["content"] for m in prompt)


def test_zero_shot_is_one_call_with_the_task_and_its_format():
    task, problem, backend, record = solve("single_agent")
    assert record["llm_calls"] == 1 == len(backend.prompts)
    assert problem.question in contents(backend.prompts[0])
    assert task.instruction in contents(backend.prompts[0])
    assert record["tokens"] == record["prompt_tokens"] + record["completion_tokens"] > 0
    assert record["final_answer"] == record["calls"][0]["text"]


def test_few_shot_exemplars_come_from_train_and_precede_the_problem():
    task, problem, backend, record = solve("single_agent", shots=2)
    prompt = backend.prompts[0]
    assert [m["role"] for m in prompt] == ["user", "assistant", "user", "assistant", "user"]
    train = {p.uid for p in task.problems("train")}
    assert len(record["details"]["exemplars"]) == 2
    assert set(record["details"]["exemplars"]) <= train
    assert problem.question in prompt[-1]["content"]


def test_cot_asks_for_steps():
    _, _, backend, _ = solve("cot")
    assert "step by step" in contents(backend.prompts[0])


def test_self_consistency_samples_k_and_returns_the_majority():
    task, problem, backend, record = solve("self_consistency", samples=5, temperature=0.8)
    assert record["llm_calls"] == 5 and backend.calls == [5]
    assert all(p.temperature == 0.8 for p in backend.params)
    texts = [c["text"] for c in record["calls"]]
    chosen, votes = majority_vote(task, problem, texts)
    assert record["final_answer"] == texts[chosen]
    if votes:
        key_counts = sorted(votes.values())
        assert record["details"]["votes"] == votes and key_counts[-1] >= 1


def test_majority_vote_ignores_unreadable_answers_and_breaks_ties_by_order():
    task, backend = arith_setup()
    problem = task.problems("test")[0]
    texts = ["no idea", "The answer is 7", "The answer is 9", "so, answer: 9", "The answer is 7"]
    chosen, votes = majority_vote(task, problem, texts)
    assert chosen == 1 and votes == {"7": 2, "9": 2}
    assert majority_vote(task, problem, ["none", "nothing"])[0] == 0
    with pytest.raises(ValueError, match="at least one"):
        majority_vote(task, problem, [])


def test_debate_runs_agents_times_rounds_and_shows_others_answers():
    _, _, backend, record = solve("debate", agents=3, rounds=2)
    assert record["llm_calls"] == 6 and backend.calls == [3, 3]
    first_round = [c["text"] for c in record["calls"][:3]]
    revise = contents(backend.prompts[3])  # debater 1, round 2
    assert "Agent 2:" in revise and "Agent 3:" in revise and "Agent 1:" not in revise
    assert first_round[1].strip() in revise


def test_econ_strategy_executors_commitment():
    overrides = [{"temperature": 0.1}, {"temperature": 0.5}]
    _, _, backend, record = solve("econ", executors=2, executor_params=overrides)
    assert backend.calls == [1, 2, 1] and record["llm_calls"] == 4
    assert [c["role"] for c in record["calls"]] == [
        "coordinator", "executor_1", "executor_2", "commitment",
    ]  # fmt: skip
    assert [p.temperature for p in backend.params] == [0.0, 0.1, 0.5, 0.0]
    strategy = record["calls"][0]["text"].strip()
    assert strategy in contents(backend.prompts[1])
    assert record["calls"][2]["text"].strip() in contents(backend.prompts[3])
    assert record["final_answer"] == record["calls"][3]["text"]


@pytest.mark.parametrize("observation, seen_by_third", [("partial", 1), ("full", 2)])
def test_spgg_ensemble_observation(observation, seen_by_third):
    _, _, backend, record = solve("spgg", game=GAME.replace(observation=observation))
    assert backend.calls == [1, 1, 1]
    third = contents(backend.prompts[2])
    assert third.count(" wrote:") == seen_by_third
    assert len(record["details"]["rewards"]) == 3
    assert record["final_answer"] == record["calls"][2]["text"]


def test_spgg_few_shot_shows_every_agent_the_same_train_exemplars_as_spgg_run():
    from spgg_env.agents.ensemble import game_exemplar_chat

    task, problem, backend, record = solve("spgg", game=GAME, shots=2)
    train = {p.uid for p in task.problems("train")}
    uids = record["details"]["exemplars"]
    assert len(uids) == 2 and set(uids) <= train and problem.uid not in uids
    by_uid = {p.uid: p for p in task.problems("train")}
    # the turns an ensemble with ``shots`` shows in ``spgg run``, then the agent's observation
    turns = game_exemplar_chat(task, GAME, [by_uid[uid] for uid in uids])
    assert [m["role"] for m in turns] == ["user", "assistant"] * 2
    for prompt in backend.prompts:
        assert prompt[:4] == turns and len(prompt) == 5
        assert problem.question in prompt[-1]["content"]
    assert "The answer is" in turns[1]["content"]
    # the board's single-agent few-shot row of the same seed sees the same exemplars, so the
    # paired comparison of the two rows compares the methods, not the draws
    assert solve("single_agent", shots=2)[3]["details"]["exemplars"] == uids


@pytest.mark.parametrize(
    "name, options, match",
    [
        ("nope", {}, "unknown method 'nope'"),
        ("single_agent", {"shot": 1}, "unknown option"),
        ("self_consistency", {"samples": 0}, "samples must be"),
        ("debate", {"agents": 1}, "agents must be"),
        ("econ", {"executors": 3, "executor_params": [{}]}, "one mapping per executor"),
        ("spgg", {"game": {"task": "arith", "observation": "some"}}, "observation must be"),
        ("spgg", {}, "give its spec as `game`"),
        ("spgg", {"game": GAME, "agents": 3}, "unknown option"),
        ("spgg", {"game": GAME, "shots": -1}, "shots must be"),
    ],
)
def test_bad_options_are_named(name, options, match):
    with pytest.raises(ValueError, match=match):
        make_method(name, **options)


def test_missing_policy_checkpoint_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_params_policy(tmp_path / "none.pt")
    with pytest.raises(FileNotFoundError, match="policy_checkpoint"):
        make_method("econ", policy_checkpoint=str(tmp_path / "none.pt"))


class FakePolicy:
    """Stands in for a trained checkpoint: temperature 0.1 * (position + 1); records its calls.
    Its game: :data:`GAME` in ``observation`` with ``n_agents`` (any split)."""

    def __init__(self, path, n_agents=3, observation="partial", **changes):
        self.game = GAME.replace(split="train", n_agents=n_agents, observation=observation,
                                 **changes)
        self.seen = []

    def __call__(self, task_text, visible, position, n_agents):
        self.seen.append((task_text, list(visible), position, n_agents))
        return GenerationParams(temperature=0.1 * (position + 1))

    def describe(self):
        return {"task": "arith", "iterations": 3}


@pytest.fixture
def trained(monkeypatch, tmp_path):
    """Both trained methods load FakePolicy(**facts) from an existing checkpoint file."""
    import spgg_env.baselines.econ as econ
    import spgg_env.baselines.spgg_ensemble as spgg_ensemble

    facts = {}
    monkeypatch.setattr(spgg_ensemble, "load_params_policy", lambda p: FakePolicy(p, **facts))
    monkeypatch.setattr(econ, "load_params_policy", lambda p: FakePolicy(p, **facts))
    checkpoint = tmp_path / "trained.pt"
    checkpoint.write_bytes(b"weights")
    return str(checkpoint), facts


def test_trained_variants_take_each_agents_params_from_the_policy(trained):
    from spgg_env.provenance import file_sha256

    checkpoint, _ = trained
    method = make_method("spgg", game=GAME, policy_checkpoint=checkpoint)
    task, backend = arith_setup()
    problem = task.problems("test")[0]
    record = run_episode(method, task, problem, backend, GREEDY, seed=0)
    assert method.describe()["policy"] == {"task": "arith", "iterations": 3,
                                           "checkpoint": checkpoint,
                                           "sha256": file_sha256(checkpoint)}
    assert [p.temperature for p in backend.params] == pytest.approx([0.1, 0.2, 0.3])
    assert [p["temperature"] for p in record["details"]["agent_params"]] == pytest.approx(
        [0.1, 0.2, 0.3]
    )
    # the state: the problem statement, the position, and (partial observation) agent i-1's text
    texts = [call["text"] for call in record["calls"]]
    assert method.policy.seen == [(problem.question, [], 0, 3), (problem.question, texts[:1], 1, 3),
                                  (problem.question, texts[1:2], 2, 3)]

    method = make_method("econ", executors=2, policy_checkpoint=checkpoint)
    trained[1].update(n_agents=2, observation="none")
    task, backend = arith_setup()
    run_episode(method, task, problem, backend, GREEDY, seed=0)
    assert [p.temperature for p in backend.params] == pytest.approx([0.0, 0.1, 0.2, 0.0])
    assert method.policy.seen == [(problem.question, [], 0, 2), (problem.question, [], 1, 2)]


@pytest.mark.parametrize(
    "facts, named",
    [
        ({"max_tokens": 512, "token_counting": "approx"},
         "max_tokens: 128 vs 512; token_counting: 'model' vs 'approx'"),
        ({"observation": "full"}, "observation: 'partial' vs 'full'"),
        ({"n_agents": 2}, "n_agents: 3 vs 2"),
        ({"mechanism_params": {"B": 0.5}}, "mechanism_params"),
    ],
)
def test_a_policy_trained_in_another_game_is_refused_naming_the_fields(trained, facts, named):
    checkpoint, policy_facts = trained
    policy_facts.update(facts)
    method = make_method("spgg", game=GAME, policy_checkpoint=checkpoint)
    task, backend = arith_setup()
    with pytest.raises(ValueError, match="was made for another game") as info:
        run_episode(method, task, task.problems("test")[0], backend, GREEDY, seed=0)
    assert named in str(info.value) and "split" not in str(info.value)
    assert backend.calls == []


def test_econ_refuses_a_policy_of_another_setting(trained):
    checkpoint, facts = trained
    facts.update(n_agents=3, observation="partial")
    method = make_method("econ", executors=2, policy_checkpoint=checkpoint)
    task, backend = arith_setup()
    with pytest.raises(ValueError, match="n_agents=2 .trained with 3.*observation='none'"):
        run_episode(method, task, task.problems("test")[0], backend, GREEDY, seed=0)


def test_legacy_checkpoint_facts_give_the_policys_game():
    from spgg_env.baselines.trained_policy import policy_game

    class Legacy:
        spec = {"task": "mmlu", "split": "test", "observation": "partial", "mechanism":
                "mac-spgg", "n_agents": 3, "max_tokens": 128, "state_dim": 9}

    game = policy_game(Legacy())
    assert game == GameSpec(task="mmlu", n_agents=3, observation="partial", max_tokens=128,
                            token_counting="model")
    with pytest.raises(ValueError, match="does not say which game"):
        policy_game(object())
def test_few_shot_pool_falls_back_to_unevaluated_test_problems(monkeypatch):
    from spgg_env.tasks.exemplars import exemplar_pool

    task, _ = arith_setup()
    real = task.problems

    def problems(split=None):
        if split == "train":
            raise ValueError("source has only the test split")
        return real(split)

    monkeypatch.setattr(task, "problems", problems)
    evaluated = real("test")[:3]
    pool = exemplar_pool(task, evaluated)
    assert len(pool) == len(real("test")) - 3
    assert not {p.uid for p in evaluated} & {p.uid for p in pool}
