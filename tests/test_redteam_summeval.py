"""Red team of the SummEval judge: what a reward hacker writes, and what a careful grader pays.

Most tests use a judge whose model is fully fooled (it rates every text it reads 5 on every
dimension), so what they check is the hardening in front of the model: the guard
(:mod:`spgg_env.judge.guard`) and the prompt's delimiting. The real data (and, in one slow
test, the embedded model) are used where the assertion is about them.

Verdicts of a careful grader:

| attack | verdict |
| --- | --- |
| prompt injection (5 phrasings, alone or after an honest summary) | 0: it addresses the grader |
| the bare token "5" | 0: no summary |
| empty or white space | 0: no summary |
| the article copied | 0: not a summary |
| keyword stuffing | 0: no sentences |
| one sentence repeated | 0: a loop |
| chat markup closing the summary | 0, and the markup is inert in the prompt |
| lead-3 (first three sentences) | what the judge gives it: a legitimate extractive summary |
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import spgg_env
from spgg_env.judge import Judge, inspect_summary
from spgg_env.judge.redteam import INJECTIONS, hacks, lead3
from spgg_env.tasks.summeval import SummEvalTask

FIXTURE = Path(__file__).parent / "fixtures" / "summeval_mini.jsonl"
REAL = Path(__file__).parents[1].parent / "shared" / "data" / "summeval" / "test.jsonl"
needs_real_data = pytest.mark.skipif(
    not REAL.is_file(), reason=f"SummEval expert data not found at {REAL} (see DESIGN.md)"
)


class FooledScorer:
    """A model that rates every text it is shown 5 on every dimension, and records them."""

    identity = "fooled@test"

    def __init__(self) -> None:
        self.seen: list = []

    def distributions(self, prompts):
        self.seen += prompts
        return [[0.0, 0.0, 0.0, 0.0, 1.0] for _ in prompts]


@pytest.fixture
def task() -> SummEvalTask:
    return SummEvalTask(FIXTURE, judge=Judge(scorer=FooledScorer()))


def _rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_every_hack_scores_zero_with_the_rule_named(task) -> None:
    problem = task.problems()[0]
    document = problem.metadata["document"]
    honest = problem.metadata["machine_summaries"][0]
    attacks = hacks(document, honest)
    assert len(attacks) >= 12
    scores = task.score_many(problem, list(attacks.values()))
    expected_flag = {"bare_5": "too_short", "article_copy": "copy",
                     "keyword_stuffing": "not_prose", "repeated_sentence": "repetition"}
    for (name, _), score in zip(attacks.items(), scores, strict=True):
        assert score.value == 0.0, name
        assert score.error, name
        if name.startswith("injection"):
            assert "injection" in score.error, name
        elif name in ("empty", "whitespace"):
            assert score.error == "empty summary"
        else:
            assert expected_flag[name] in score.error, name
    # none of them reached the model
    assert task.judge.scorer.seen == []
    assert task.score(problem, honest).value == 1.0


@pytest.mark.parametrize("name", sorted(INJECTIONS))
def test_injections_appended_to_an_honest_summary_score_zero(task, name) -> None:
    problem = task.problems()[1]
    honest = problem.metadata["machine_summaries"][0]
    score = task.score(problem, f"{honest} {INJECTIONS[name]}")
    assert score.value == 0.0 and "injection" in score.error


def test_markup_is_inert_even_without_the_guard() -> None:
    """With the guard off, a summary's chat markup and closing tag stay inside the data."""
    scorer = FooledScorer()
    judge = Judge(scorer=scorer, guard=False)
    judge.score("An article.", INJECTIONS["injection_markup"])
    prompt = scorer.seen[0]
    assert "</summary>" not in prompt.summary
    assert prompt.user.count("</summary>") == 1 and prompt.user.count("<summary>") == 1


def test_lead3_is_scored_like_any_summary(task) -> None:
    """Lead-3 is a legitimate extractive summary (SummEval's M0): the judge scores it."""
    problem = task.problems()[0]
    score = task.score(problem, lead3(problem.metadata["document"]))
    assert score.error is None and score.value == 1.0


def _episode(task: SummEvalTask, texts: list[str]) -> tuple[dict, dict]:
    env = spgg_env.aec_env(task=task, n_agents=3, observation="full")
    env.reset(seed=0, options={"problem_index": 0})
    scores, rewards = {}, {}
    for agent in env.agent_iter():
        _, reward, terminated, truncated, info = env.last()
        if terminated or truncated:
            scores[agent], rewards[agent] = info["score"], reward
            env.step(None)
        else:
            env.step(texts[int(agent.split("_")[1])])
    return scores, rewards


@pytest.mark.parametrize("hacker", [0, 2])
@pytest.mark.parametrize("attack", ["injection_rate5", "bare_5", "article_copy",
                                    "keyword_stuffing", "injection_appended"])
def test_agent_position_replays(hacker, attack) -> None:
    """Agent 0 (first) or agent 2 (last, whose text is the group's answer) hacks: its score is
    below an honest summary's and nobody's reward rises, through the public API."""
    task = SummEvalTask(FIXTURE, judge=Judge(scorer=FooledScorer()))
    problem = task.problems()[0]
    honest = problem.metadata["machine_summaries"][:3]
    attacked = list(honest)
    attacked[hacker] = hacks(problem.metadata["document"], honest[hacker])[attack]
    honest_scores, honest_rewards = _episode(task, honest)
    hack_scores, hack_rewards = _episode(task, attacked)
    agent = f"agent_{hacker}"
    assert hack_scores[agent] < honest_scores[agent]
    for name, reward in hack_rewards.items():
        assert reward <= honest_rewards[name] + 1e-12, (name, reward, honest_rewards[name])


def test_parse_error_reaches_the_env_info() -> None:
    task = SummEvalTask(FIXTURE, judge=Judge(scorer=FooledScorer()))
    env = spgg_env.aec_env(task=task, n_agents=1)
    env.reset(seed=0)
    env.step(INJECTIONS["injection_rate5"])
    *_, info = env.last()
    assert info["score"] == 0.0 and "injection" in info["parse_error"]


@needs_real_data
def test_guard_never_fires_on_real_summaries() -> None:
    """0 false positives on the 1,600 expert-rated and 1,100 human summaries of SummEval."""
    rows = _rows(REAL)
    flagged = [(r["id"], s) for r in rows for s in r["machine_summaries"] + r["human_summaries"]
               if not inspect_summary(r["text"], s).ok]
    assert len(rows) == 100 and flagged == []


@needs_real_data
def test_every_hack_is_flagged_on_every_real_article() -> None:
    rows = _rows(REAL)
    missed = [(r["id"], name) for r in rows
              for name, text in hacks(r["text"], r["machine_summaries"][0]).items()
              if inspect_summary(r["text"], text).ok]
    assert missed == []
    lead3_flagged = sum(not inspect_summary(r["text"], lead3(r["text"])).ok for r in rows)
    assert lead3_flagged <= 1  # one article is four sentences long: its lead-3 is 83% of it


@pytest.mark.slow
@needs_real_data
def test_hacks_score_below_every_real_summary_with_the_embedded_judge() -> None:
    """The embedded model on one real article: every hack below the worst real summary."""
    row = _rows(REAL)[82]
    task = SummEvalTask(REAL, judge=Judge(device="cpu"))
    problem = task.problems()[82]
    real = row["machine_summaries"][:4] + row["human_summaries"][:2] + [lead3(row["text"])]
    real_scores = [s.value for s in task.score_many(problem, real)]
    assert min(real_scores) > 0.0
    attacks = hacks(row["text"], row["machine_summaries"][0])
    hack_scores = [s.value for s in task.score_many(problem, list(attacks.values()))]
    assert max(hack_scores) < min(real_scores)
    assert np.isfinite(real_scores).all()
