"""LLM agents and ensemble configs (YAML, JSON, Python), with the scripted backend."""

from __future__ import annotations

import json

import pytest
import yaml

from spgg_env.agents.backend import GenerationParams, make_backend
from spgg_env.agents.ensemble import DEFAULT_CONFIG, EnsembleConfig, build_ensemble
from spgg_env.agents.llm_agent import LLMAgent
from spgg_env.agents.scripted import ScriptedBackend

OBS = {"prompt": "What is 2 + 2?", "position": 1, "agent_index": 1, "n_visible": 1}


def scripted_config(**extra):
    return {
        "name": "trio",
        "defaults": {"backend": {"kind": "scripted", "script": "The answer is 4."},
                     "params": {"temperature": 0.5, "max_new_tokens": 32}},
        "agents": [
            {"name": "solver", "system_prompt": "Agent {agent_number} of {n_agents}."},
            {"name": "checker", "params": {"temperature": 0.0}},
            {"name": "other", "backend": {"script": "The answer is 5."}},
        ],
        **extra,
    }


# --------------------------------------------------------------------------- agents
def test_agent_chat_has_role_then_observation():
    agent = LLMAgent("a", ScriptedBackend(), system_prompt="You are agent {agent_number} of "
                     "{n_agents}.", n_agents=4)
    assert agent.chat(OBS) == [
        {"role": "system", "content": "You are agent 2 of 4."},
        {"role": "user", "content": "What is 2 + 2?"},
    ]
    plain = LLMAgent("b", ScriptedBackend())
    assert plain.chat(OBS) == [{"role": "user", "content": "What is 2 + 2?"}]


def test_agent_rejects_observation_without_prompt():
    with pytest.raises(KeyError, match="prompt"):
        LLMAgent("a", ScriptedBackend()).chat({"position": 0})


def test_agent_uses_its_params():
    backend = ScriptedBackend("one two three")
    agent = LLMAgent("a", backend, GenerationParams(max_new_tokens=2))
    assert agent.act(OBS, seed=3) == "one two"
    assert backend.calls[-1]["seed"] == 3
    assert backend.calls[-1]["params"] == [agent.params]


def test_failed_generation_is_an_empty_contribution():
    def boom(*_):
        raise RuntimeError("server down")

    backend = ScriptedBackend(boom)
    agent = LLMAgent("a", backend)
    assert agent.act(OBS) == ""
    assert len(backend.calls) == 1


# -------------------------------------------------------------------------- configs
def test_defaults_merge_under_each_agent():
    cfg = EnsembleConfig.from_dict(scripted_config())
    solver, checker, other = cfg.agents
    assert solver.params == {"temperature": 0.5, "max_new_tokens": 32}
    assert checker.params == {"temperature": 0.0, "max_new_tokens": 32}
    assert other.backend == {"kind": "scripted", "script": "The answer is 5."}
    assert EnsembleConfig.from_dict(cfg.to_dict()) == cfg


def test_yaml_and_json_files_give_the_same_config(tmp_path):
    (tmp_path / "e.yaml").write_text(yaml.safe_dump(scripted_config()))
    (tmp_path / "e.json").write_text(json.dumps(scripted_config()))
    assert EnsembleConfig.from_file(tmp_path / "e.yaml") == EnsembleConfig.from_file(
        tmp_path / "e.json")


def test_equal_backend_specs_share_one_backend():
    ensemble = build_ensemble(scripted_config())
    solver, checker, other = ensemble.agents
    assert solver.backend is checker.backend and other.backend is not solver.backend
    assert len(ensemble.backends) == 2
    assert checker.params.greedy and not solver.params.greedy
    assert [a.n_agents for a in ensemble.agents] == [3, 3, 3]
    described = ensemble.describe()
    assert [a["backend"] for a in described["agents"]] == [0, 0, 1]


@pytest.mark.parametrize(
    ("mutate", "match"),
    [
        (lambda c: c["agents"][0].update(temprature=1.0), r"agents\[0\].*temprature"),
        (lambda c: c["agents"][1].update(params={"top_p": 0.0}), r"agents\[1\].*top_p"),
        (lambda c: c["agents"][1].update(params={"topk": 3}), r"agents\[1\]\.params.*topk"),
        (lambda c: c.update(agents=[]), "non-empty list"),
        (lambda c: c.update(extra=1), "unknown keys.*extra"),
    ],
)
def test_bad_configs_name_the_bad_entry(mutate, match):
    config = scripted_config()
    mutate(config)
    with pytest.raises(ValueError, match=match):
        EnsembleConfig.from_dict(config)


def test_bad_files_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.yaml"):
        EnsembleConfig.from_file(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ValueError, match="bad.json"):
        EnsembleConfig.from_file(bad)


def test_unknown_backend_kind_is_named():
    with pytest.raises(ValueError, match="'llamacpp'"):
        make_backend({"kind": "llamacpp"})
    with pytest.raises(ValueError, match="bad arguments.*scripted"):
        make_backend({"kind": "scripted", "no_such_argument": 1})


def test_overrides_apply_to_transformers_agents_and_all_params():
    cfg = EnsembleConfig.from_dict({
        "agents": [{"backend": {"kind": "transformers", "model": "embedded"}},
                   {"backend": {"kind": "openai", "base_url": "http://x/v1", "model": "m"}}],
    })
    new = cfg.with_overrides(model="/models/tiny", dtype="bfloat16", max_new_tokens=7,
                             n_agents=5)
    assert len(new.agents) == 5
    assert new.agents[0].backend["model"] == "/models/tiny"
    assert new.agents[0].backend["dtype"] == "bfloat16"
    assert new.agents[1].backend["model"] == "m"  # openai agents keep their server model
    assert all(a.params["max_new_tokens"] == 7 for a in new.agents)
    assert new.agents[2].backend == new.agents[0].backend  # cycled


def test_default_config_is_three_embedded_agents():
    cfg = EnsembleConfig.load(None)
    assert DEFAULT_CONFIG.is_file()
    assert len(cfg.agents) == 3
    assert {a.backend["model"] for a in cfg.agents} == {"embedded"}
    assert len({a.system_prompt for a in cfg.agents}) == 3
    assert cfg.shots == 2  # worked exemplars: the 135M model then writes the answer line
    assert {a.params["repetition_penalty"] for a in cfg.agents} == {1.0}


# ------------------------------------------------------------------ few-shot exemplars
def test_shots_must_be_a_non_negative_integer():
    assert EnsembleConfig.from_dict(scripted_config(shots=2)).shots == 2
    assert EnsembleConfig.from_dict(scripted_config()).to_dict()["shots"] == 0
    for bad in (-1, 1.5, "2", True):
        with pytest.raises(ValueError, match="'shots' must be an integer >= 0"):
            EnsembleConfig.from_dict(scripted_config(shots=bad))
    # overrides keep the shots
    assert EnsembleConfig.from_dict(scripted_config(shots=1)).with_overrides(n_agents=2).shots == 1


def test_exemplars_come_from_training_problems_as_worked_turns_drawn_once_per_seed():
    from spgg_env.spec import GameSpec

    spec = GameSpec(task="arith", task_options={"difficulty": "easy"})
    task = spec.make_task()
    ensemble = build_ensemble(scripted_config(shots=2))
    ensemble.prepare(task, spec, seed=3)
    train = {p.uid: p for p in task.problems("train")}
    assert len(ensemble.exemplar_uids) == 2 and set(ensemble.exemplar_uids) <= set(train)
    chat = ensemble.agents[1].chat(OBS)
    assert [m["role"] for m in chat] == ["user", "assistant", "user", "assistant", "user"]
    first = train[ensemble.exemplar_uids[0]]
    assert first.question in chat[0]["content"] and "agent 1 of 3" in chat[0]["content"]
    assert chat[1]["content"] == task.demonstration(first)
    assert chat[1]["content"].endswith(f"The answer is {first.answer}.")
    assert chat[-1]["content"] == OBS["prompt"]
    # the system prompt stays first; every agent sees the same exemplars
    assert ensemble.agents[0].chat(OBS)[0]["role"] == "system"
    assert ensemble.agents[0].chat(OBS)[1:] == ensemble.agents[2].chat(OBS)
    # same seed, same exemplars (another ensemble, as on another worker); another seed differs
    again = build_ensemble(scripted_config(shots=2))
    again.prepare(spec.make_task(), spec, seed=3)
    assert again.exemplar_uids == ensemble.exemplar_uids
    seeds = set()
    for seed in range(4):
        again.prepare(task, spec, seed=seed)
        seeds.add(again.exemplar_uids)
    assert len(seeds) > 1
    assert ensemble.describe()["exemplars"] == list(ensemble.exemplar_uids)


def test_a_task_without_other_problems_is_played_zero_shot(caplog):
    from spgg_env.spec import GameSpec

    spec = GameSpec(task="arith", split="test")
    task = spec.make_task()
    task.splits = ("test",)  # no training split: the pool is the evaluated split minus itself
    ensemble = build_ensemble(scripted_config(shots=2))
    ensemble.prepare(task, spec, seed=0)
    assert ensemble.exemplar_uids == () and "playing zero-shot" in caplog.text
    assert [m["role"] for m in ensemble.agents[1].chat(OBS)] == ["user"]


def test_the_episode_runner_prepares_the_policy_with_its_seed():
    from spgg_env.agents.engine import Engine
    from spgg_env.agents.episodes import EpisodeRunner
    from spgg_env.spec import GameSpec

    spec = GameSpec(task="arith", task_options={"difficulty": "easy"})
    ensemble = build_ensemble(scripted_config(shots=1))
    runner = EpisodeRunner(spec, ensemble, Engine(ensemble.backend_map()))
    (episode,) = list(runner.run(1, seed=7))
    record = episode.to_record()
    uid = ensemble.exemplar_uids[0]
    question = next(p.question for p in runner.task.problems("train") if p.uid == uid)
    assert all(question in step["prompt"][0]["content"] for step in record["agents"][1:])
    assert question in record["agents"][0]["prompt"][1]["content"]  # after the system prompt
