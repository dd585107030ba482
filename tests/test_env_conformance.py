"""PettingZoo conformance of the text game on arith and of the scalar game."""

import warnings

import pettingzoo
import pytest
from pettingzoo.test import (
    api_test,
    parallel_api_test,
    parallel_seed_test,
    seed_test,
    state_test,
)

import spgg_env

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

CONFIGS = [
    {"task": "arith", "observation": "partial"},
    {"task": "arith", "observation": "full"},
    {"task": "arith", "observation": "full", "prompt_style": "compact"},
    {"task": "arith", "mechanism": "pgg"},
    {"task": "scalar", "observation": "partial"},
    {"task": "scalar", "observation": "full"},
    {"task": "scalar", "levels": 5},
    {"task": "scalar", "mechanism": "spgg"},
]


def _small(config: dict) -> dict:
    if config["task"] == "arith":
        return {**config, "task_options": {"n_problems": 50}, "max_action_chars": 300}
    return config


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: "-".join(map(str, c.values())))
def test_api_and_seed(config):
    kwargs = _small(config)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        api_test(spgg_env.aec_env(**kwargs), num_cycles=30)
        seed_test(lambda: spgg_env.aec_env(**kwargs), num_cycles=10)


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: "-".join(map(str, c.values())))
def test_parallel_api(config):
    kwargs = {k: v for k, v in _small(config).items() if k != "observation"}
    parallel_api_test(spgg_env.parallel_env(**kwargs), num_cycles=10)
    parallel_seed_test(lambda: spgg_env.parallel_env(**kwargs), num_cycles=10)


@pytest.mark.parametrize("task", ["arith", "scalar"])
def test_one_cycle_per_episode_then_dead_steps(task):
    """max_cycles-style: each agent acts once, then takes exactly one dead step."""
    env = spgg_env.aec_env(task=task)
    env.reset(seed=3)
    counts = dict.fromkeys(env.possible_agents, 0)
    for agent in env.agent_iter(100):
        counts[agent] += 1
        _, _, terminated, truncated, _ = env.last()
        env.step(None if terminated or truncated else env.action_space(agent).sample())
    assert counts == dict.fromkeys(env.possible_agents, 2)
    assert env.agents == []


def test_max_cycles_is_accepted_and_checked():
    """pettingzoo.make passes max_cycles through; the episode is still one cycle."""
    env = pettingzoo.make("aec", "spgg/Scalar-v0", max_cycles=4)
    env.reset(seed=0)
    steps = 0
    for agent in env.agent_iter(100):
        _, _, terminated, truncated, _ = env.last()
        env.step(None if terminated or truncated else env.action_space(agent).sample())
        steps += 1
    assert steps == 6 and env.agents == []
    with pytest.raises(ValueError, match="max_cycles.*0"):
        spgg_env.aec_env(task="scalar", max_cycles=0)


@pytest.mark.parametrize("levels", [None, 4])
def test_scalar_state(levels):
    state_test(
        spgg_env.aec_env(task="scalar", levels=levels),
        spgg_env.parallel_env(task="scalar", levels=levels),
        num_cycles=10,
    )
