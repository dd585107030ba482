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
