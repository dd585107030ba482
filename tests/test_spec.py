"""The game spec: validated, normalised, serialisable, compared field by field, one CLI."""

from __future__ import annotations

import argparse
import json

import pytest

import spgg_env
from spgg_env.spec import GameSpec, parse_key_values


def test_defaults_are_filled_in_so_equal_games_are_equal_specs():
    bare = GameSpec(task="arith")
    explicit = GameSpec(task="arith", split="test", mechanism_params={"B": 0.85, "kappa": 1.28})
    assert bare == explicit and bare.fingerprint() == explicit.fingerprint()
    assert bare.split == "test"
    assert bare.mechanism_params["gamma"] == 1.5  # the mechanism's defaults are stored in full
    assert GameSpec(mechanism="pgg", observation="full").observation == "none"


def test_round_trips_through_json():
    spec = GameSpec(task="arith", task_options={"difficulty": "easy", "n_problems": 7},
                    n_agents=2, observation="full", mechanism_params={"kappa": 0.2},
                    max_tokens=32, token_counting="model", prompt_style="compact")
    again = GameSpec.from_dict(json.loads(json.dumps(spec.to_dict())))
    assert again == spec and again.to_json() == spec.to_json()
    with pytest.raises(TypeError):
        spec.task_options["difficulty"] = "normal"  # frozen all the way down
    with pytest.raises(AttributeError):
        spec.n_agents = 4


@pytest.mark.parametrize(
    ("fields", "match"),
    [
        ({"task": "chess"}, "chess"),
        ({"task_options": {"difficulty_": "easy"}},
         r"difficulty_.*valid: \['answer_format', 'difficulty'"),
        ({"split": "validation"}, "validation"),
        ({"n_agents": 0}, "n_agents"),
        ({"n_agents": True}, "n_agents"),
        ({"observation": "peek"}, "peek"),
        ({"mechanism": "nope"}, "nope"),
        ({"mechanism_params": {"kappa": -1}}, "kappa"),
        ({"mechanism_params": {"zeta": 1}}, "zeta"),
        ({"token_counting": "bytes"}, "bytes"),
        ({"prompt_style": "fancy"}, "fancy"),
        ({"max_tokens": 0}, "max_tokens"),
    ],
)
def test_bad_values_are_named(fields, match):
    with pytest.raises(ValueError, match=match):
        GameSpec(**fields)


def test_unknown_keys_in_a_config_are_named_with_the_source():
    with pytest.raises(ValueError, match=r"my.yaml: unknown game spec key\(s\) \['agents'\]"):
        GameSpec.from_dict({"task": "arith", "agents": 3}, source="my.yaml")


def test_require_names_every_differing_field():
    trained = GameSpec(task="arith", observation="full", max_tokens=128,
                       token_counting="model")
    GameSpec.from_dict(trained.to_dict()).require(trained)
    with pytest.raises(ValueError) as error:
        GameSpec(task="arith").require(trained, what="policy.pt")
    message = str(error.value)
    assert message.startswith("policy.pt was made for another game")
    for name in ("observation", "max_tokens", "token_counting"):
        assert name in message
    assert "mechanism" not in message


def test_command_line_flags_come_from_the_fields():
    parser = argparse.ArgumentParser()
    GameSpec.add_arguments(parser)
    args = parser.parse_args(["--task", "arith", "--task-option", "difficulty=easy",
                              "--task-option", "n_problems=9", "--n-agents", "2",
                              "--mechanism-param", "kappa=0.2", "--token-counting", "model"])
    spec = GameSpec.from_args(args)
    assert spec.task_options == {"difficulty": "easy", "n_problems": 9}
    assert spec.n_agents == 2 and spec.mechanism_params["kappa"] == 0.2
    assert spec.token_counting == "model"
    for action in parser._actions[1:]:
        assert action.help and "``" not in action.help  # every flag has plain help text
    bad = parser.parse_args(["--task-option", "difficulty"])
    with pytest.raises(ValueError, match="--task-option needs KEY=VALUE"):
        GameSpec.from_args(bad)


def test_key_values_are_read_as_yaml_scalars():
    assert parse_key_values(["a=1", "b=true", "c=x y", "d=[1, 2]", "e="], "--o") == {
        "a": 1, "b": True, "c": "x y", "d": [1, 2], "e": ""}


def test_the_env_is_built_from_a_spec_and_says_which():
    spec = GameSpec(task="arith", task_options={"n_problems": 4}, n_agents=2)
    env = spgg_env.aec_env(spec)
    assert env.unwrapped.spec == spec
    assert spgg_env.aec_env(task="arith", task_options={"n_problems": 4},
                            n_agents=2).unwrapped.spec == spec
    with pytest.raises(ValueError, match="not both"):
        spgg_env.raw_env(spec, n_agents=3)


def test_model_token_counting_needs_the_models_counter():
    spec = GameSpec(task="arith", token_counting="model")
    with pytest.raises(ValueError, match="token_counter"):
        spgg_env.aec_env(spec)
    env = spgg_env.aec_env(spec, token_counter=len)
    env.reset(seed=0)
    env.step("abcd")
    assert env.unwrapped.infos["agent_0"]["tokens"] == 4
