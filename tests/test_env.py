"""Behaviour of the text game: visibility, scoring, rewards, bad input, options, rendering."""

import warnings

import numpy as np
import pettingzoo
import pytest

import spgg_env
from spgg_env import prompts
from spgg_env.env import MAX_PROMPT_CHARS, REPLACEMENT, SPGGEnv, approx_token_count
from spgg_env.mechanism import make_mechanism
from spgg_env.tasks import Problem, Score, Task


def make(**kwargs) -> SPGGEnv:
    kwargs.setdefault("task_options", {"n_problems": 20})
    env = spgg_env.raw_env(**kwargs)
    env.reset(seed=0)
    return env


def play(env, texts):
    """Step each live agent with its text; return the final (reward, info) per agent."""
    finals = {}
    for agent in env.agent_iter():
        _, reward, terminated, truncated, info = env.last()
        if terminated or truncated:
            finals[agent] = (reward, info)
            env.step(None)
        else:
            env.step(texts[env.possible_agents.index(agent)])
    return finals


def answer(env) -> str:
    return f"The answer is {env.problem.answer}."


@pytest.mark.parametrize(
    ("observation", "seen_by_last"), [("partial", ["B-text"]), ("full", ["A-text", "B-text"])]
)
def test_visibility(observation, seen_by_last):
    env = make(observation=observation)
    env.step("A-text")
    env.step("B-text")
    obs = env.observe("agent_2")
    assert obs["position"] == 2
    assert int(obs["visible"].sum()) == len(seen_by_last)
    for j, text in enumerate(("A-text", "B-text")):
        assert (text in obs["prompt"]) == (text in seen_by_last)
        assert obs["contributions"][j] == (text if text in seen_by_last else "")
        assert obs["visible"][j] == (text in seen_by_last)
    assert obs["contributions"][2] == "" and obs["visible"][2] == 0
    assert obs["task"] == env.unwrapped.problem.question
    assert obs["task"] in obs["prompt"]
    assert env.observation_space("agent_2").contains(obs)


@pytest.mark.parametrize(("observation", "seen_by_last"),
                         [("partial", ["B-text"]), ("full", ["A-text", "B-text"])])
def test_compact_prompt_is_the_task_the_visible_contributions_and_the_format_line(
    observation, seen_by_last
):
    env = make(observation=observation, prompt_style="compact")
    question = env.unwrapped.problem.question
    format_line = "\n\nEnd with 'The answer is N'."
    assert env.observe("agent_0")["prompt"] == question + format_line
    env.step("A-text")
    env.step("B-text")
    prompt = env.observe("agent_2")["prompt"]
    blocks = "".join(f"\n\nAnother agent answered:\n{t}" for t in seen_by_last)
    assert prompt == question + blocks + format_line
    default = make(observation=observation)
    assert env.task.instruction in default.observe("agent_0")["prompt"]
    assert prompts.template_hash("compact") != prompts.template_hash()


def test_simultaneous_mechanism_hides_predecessors():
    env = make(observation="full", mechanism="pgg")
    env.step("A-text")
    obs = env.observe("agent_1")
    assert env.observation_mode == "none" and not obs["visible"].any()
    assert obs["contributions"] == ("", "", "")
    assert "A-text" not in obs["prompt"]


def test_rewards_are_the_mechanism_of_scores_group_score_and_effort():
    env = make(max_tokens=10, mechanism_params={"B": 0.5})
    texts = [answer(env), "I do not know", "a b c d e f g h i j k l " + answer(env)]
    finals = play(env, texts)
    scores = [finals[a][1]["score"] for a in env.possible_agents]
    assert scores == [1.0, 0.0, 1.0]
    effort = np.minimum(1.0, [approx_token_count(t) / 10 for t in texts])
    expected = make_mechanism("mac-spgg", B=0.5)(scores, group_score=1.0, effort=effort).total
    for i, agent in enumerate(env.possible_agents):
        reward, info = finals[agent]
        assert reward == pytest.approx(expected[i])
        assert info["reward_components"]["total"] == pytest.approx(expected[i])
        assert info["group_score"] == 1.0 and info["effort"] == pytest.approx(effort[i])
        assert info["contribution"] == texts[i] and info["problem_uid"] == env.problem.uid
    assert finals["agent_1"][1]["parse_error"] == "no committed answer (expected 'The answer is N')"
    assert finals["agent_2"][1]["effort"] == 1.0


def test_wrong_final_answer_triggers_the_penalty():
    env = make()
    finals = play(env, [answer(env), answer(env), "The answer is -1"])
    assert all(info["group_score"] == 0.0 for _, info in finals.values())
    assert all(info["reward_components"]["penalty"] == 1.5 for _, info in finals.values())


@pytest.mark.parametrize("bad", [None, 3, b"bytes", ["list"], np.array([0.5])])
def test_non_string_action_raises_type_error_and_the_game_goes_on(bad):
    env = make()
    with pytest.raises(TypeError, match=rf"agent_0.*{type(bad).__name__}"):
        env.step(bad)
    assert env.agent_selection == "agent_0" and env.contributions == []
    env.step("fine")
    assert env.agent_selection == "agent_1"


def test_long_action_is_cut_and_flagged():
    env = make(max_action_chars=50)
    env.step("x" * 120)
    assert env.contributions == ["x" * 50]
    info = env.infos["agent_0"]
    assert info["truncated_action"] is True and info["chars"] == 50


def test_characters_outside_the_observation_charset_are_replaced_and_flagged():
    env = make()
    env.step("emoji \U0001f600 and a lone surrogate \ud800")
    obs = env.observe("agent_1")
    assert "\U0001f600" not in obs["prompt"] and obs["prompt"].count(REPLACEMENT) == 2
    assert env.observation_space("agent_1").contains(obs)
    env.step("ok")
    assert env.infos["agent_1"]["prompt_replaced_chars"] == 2


def test_huge_prompt_is_cut_to_the_space():
    env = make(observation="full", max_action_chars=MAX_PROMPT_CHARS)
    env.step("y" * MAX_PROMPT_CHARS)
    obs = env.observe("agent_1")
    assert len(obs["prompt"]) == MAX_PROMPT_CHARS
    env.step("z")
    assert env.infos["agent_1"]["prompt_truncated"] is True


def test_seeded_reset_and_problem_options():
    a, b = make(), make()
    assert a.problem == b.problem
    uids = set()
    for seed in range(10):
        a.reset(seed=seed)
        uids.add(a.problem.uid)
    assert len(uids) > 3
    problems = a.task.problems(a.split)
    a.reset(options={"problem_index": 7})
    assert a.problem == problems[7]
    a.reset(options={"problem_uid": problems[3].uid})
    assert a.problem == problems[3]
    with pytest.raises(ValueError, match="problem_index.*99"):
        a.reset(options={"problem_index": 99})
    with pytest.raises(ValueError, match="nope"):
        a.reset(options={"problem_uid": "nope"})


class EchoTask(Task):
    """Scores the text's length parity; counts score_many calls; can be told to crash."""

    name = "echo"
    instruction = "Write something."

    def __init__(self, crash: bool = False) -> None:
        super().__init__()
        self.crash = crash
        self.batches: list[list[str]] = []

    def load_split(self, split):
        return [Problem(uid=f"echo/{i}", question=f"Echo {i}", answer=i) for i in range(3)]

    def score(self, problem, text):
        if self.crash:
            raise RuntimeError("boom")
        return Score(float(len(text) % 2), len(text))

    def score_many(self, problem, texts):
        self.batches.append(list(texts))
        return super().score_many(problem, texts)


def test_any_task_instance_plugs_in_and_is_scored_in_one_batch():
    task = EchoTask()
    env = spgg_env.aec_env(task=task, n_agents=2, token_counter=len, max_tokens=4)
    env.reset(seed=1)
    finals = play(env, ["odd", "even"])
    assert task.batches == [["odd", "even"]]
    assert finals["agent_0"][1]["score"] == 1.0 and finals["agent_1"][1]["score"] == 0.0
    assert finals["agent_0"][1]["tokens"] == 3 and finals["agent_1"][1]["effort"] == 1.0


class StrictFinalTask(EchoTask):
    """The group's answer is judged differently from a contribution."""

    def score_final(self, problem, text):
        return Score(1.0 if text == "final" else 0.0, text)


def test_final_answer_is_scored_once_unless_the_task_judges_it_differently():
    counted = EchoTask()
    scored = []
    counted.score = lambda problem, text: scored.append(text) or Score(1.0, text)
    env = spgg_env.aec_env(task=counted, n_agents=2)
    env.reset(seed=0)
    finals = play(env, ["a", "b"])
    assert scored == ["a", "b"]  # the last contribution is not scored a second time
    assert finals["agent_0"][1]["group_score"] == 1.0

    env = spgg_env.aec_env(task=StrictFinalTask(), n_agents=2)
    env.reset(seed=0)
    finals = play(env, ["x", "final"])
    assert finals["agent_0"][1]["group_score"] == 1.0
    assert finals["agent_1"][1]["score"] == 1.0  # "final" has odd length 5


def test_a_crashing_scorer_is_a_recorded_zero_not_a_crash():
    env = spgg_env.aec_env(task=EchoTask(crash=True), n_agents=2)
    env.reset(seed=0)
    with pytest.warns(UserWarning, match="boom"):
        finals = play(env, ["a", "b"])
    assert all(info["score"] == 0.0 for _, info in finals.values())
    assert "boom" in finals["agent_0"][1]["parse_error"]


def test_stepping_after_the_end():
    env = spgg_env.aec_env(task="arith", task_options={"n_problems": 5})
    env.reset(seed=0)
    play(env, ["1", "2", "3"])
    with warnings.catch_warnings(record=True):
        env.step(None)  # PettingZoo's OrderEnforcingWrapper warns, nothing breaks
    raw = make()
    for text in ("1", "2", "3"):
        raw.step(text)
    assert raw.agent_selection == "agent_0" and raw.terminations["agent_0"]
    with pytest.raises(ValueError, match="None"):
        raw.step("late")  # a dead agent's only valid action is None


def test_render_ansi_shows_the_transcript():
    env = make(render_mode="ansi")
    finals = play(env, ["first words", "second words", answer(env)])
    text = env.render()
    assert env.problem.question in text and "second words" in text
    group = finals["agent_0"][1]["group_score"]
    assert group == 1.0 and text.endswith(f"=== group score {group:g} ===")  # after the loop


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"n_agents": 0}, "n_agents"),
        ({"observation": "peek"}, "peek"),
        ({"max_action_chars": -1}, "max_action_chars"),
        ({"mechanism": "nope"}, "nope"),
        ({"task": "chess"}, "chess"),
        ({"render_mode": "rgb_array"}, "rgb_array"),
        ({"split": "valid"}, "valid"),
        ({"prompt_style": "terse"}, "terse"),
    ],
)
def test_bad_constructor_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        spgg_env.aec_env(**{"task_options": {"n_problems": 5}, **kwargs})


def test_registered_with_pettingzoo():
    for env_id in (
        "spgg/Arith-v1",
        "spgg/HumanEval-v1",
        "spgg/MMLU-v1",
        "spgg/GSM8K-v1",
        "spgg/SummEval-v1",
        "spgg/Scalar-v0",
    ):
        assert env_id in pettingzoo.aec_registry and env_id in pettingzoo.parallel_registry
    env = pettingzoo.make("aec", "spgg/Arith-v1", n_agents=2, task_options={"n_problems": 5})
    env.reset(seed=0)
    assert env.unwrapped.task.name == "arith" and env.possible_agents == ["agent_0", "agent_1"]
    par = pettingzoo.make("parallel", "spgg/Scalar-v0", levels=3)
    obs, _ = par.reset(seed=0)
    assert set(obs) == {"agent_0", "agent_1", "agent_2"}


@pytest.mark.parametrize("count", [-1, 2.5, "3"])
def test_a_bad_token_count_is_a_clear_error_and_the_turn_is_kept(count):
    env = make(token_counter=lambda text: count)
    with pytest.raises(ValueError, match=f"token_counter.*{count!r}.*agent_0"):
        env.step("hello")
    assert env.contributions == [] and env.agent_selection == "agent_0"


def test_a_single_agent_game():
    env = make(n_agents=1)
    finals = play(env, [answer(env)])
    reward, info = finals["agent_0"]
    assert info["score"] == 1.0 and info["group_score"] == 1.0
    assert reward == pytest.approx(info["reward_components"]["total"])
