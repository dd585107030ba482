"""SummEval task: the fixture in the mteb/summeval format, judge-based scoring, PettingZoo API."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest
from pettingzoo.test import api_test, seed_test

import spgg_env
from spgg_env.judge import Judge
from spgg_env.tasks.summeval import SummEvalTask, clean_summary

FIXTURE = Path(__file__).parent / "fixtures" / "summeval_mini.jsonl"
HONEST = "the bridge was opened to the public on a sunny day"


class WordCountScorer:
    """Rates a summary by its number of words: 5 words -> "1", ..., 9+ words -> "5"."""

    identity = "word-count@test"

    def __init__(self) -> None:
        self.prompts = []

    def distributions(self, prompts):
        self.prompts += prompts
        out = []
        for prompt in prompts:
            probs = [0.0] * 5
            n_words = sum(any(c.isalnum() for c in w) for w in prompt.summary.split())
            probs[min(max(n_words - 5, 0), 4)] = 0.5  # mass 0.5: renormalised
            out.append(probs)
        return out


@pytest.fixture
def task() -> SummEvalTask:
    return SummEvalTask(FIXTURE, judge=Judge(scorer=WordCountScorer()))


def test_fixture_loads_in_mteb_format(task: SummEvalTask) -> None:
    problems = task.problems()
    assert [p.uid for p in problems] == [f"summeval/fx-{i}" for i in range(1, 6)]
    first = problems[0]
    assert first.question.startswith("Article:\nThe town of Millbrook")
    assert len(first.metadata["machine_summaries"]) == 4
    assert set(first.metadata["expert_scores"]) == {
        "coherence",
        "consistency",
        "fluency",
        "relevance",
    }
    assert all(len(v) == 4 for v in first.metadata["expert_scores"].values())
    assert len(first.answer) == 2  # human reference summaries
    assert task.split_hash() == SummEvalTask(FIXTURE).split_hash()


def test_scores_follow_the_judge(task: SummEvalTask) -> None:
    problem = task.problems()[0]
    texts = [
        "A new bridge opened.",
        "Summary: a new bridge opened in the town",
        "The town has a new bridge, which opened on Saturday after two years of work.",
        "   ",
        "A new bridge opened in the town.",
        "A new bridge opened in the town.",
    ]
    scores = task.score_many(problem, texts)
    assert [s.value for s in scores] == [0.0, 0.5, 1.0, 0.0, 0.5, 0.5]
    assert scores[1].extracted == "a new bridge opened in the town"
    assert scores[3].error == "empty summary" and scores[3].extracted is None
    assert scores[0].error == "judge guard: too_short" and scores[0].details["scores"]
    assert scores[1].details["scores"]["fluency"] == 3.0
    assert scores[1].details["mass"]["coherence"] == 0.5
    # 3 distinct admitted summaries x 4 dimensions; the repeat, the blank and the too short
    # one cost nothing
    assert len(task.judge.scorer.prompts) == 12
    assert task.score_final(problem, "A new bridge opened in the town.").value == 0.5
    assert len(task.judge.scorer.prompts) == 12


def test_clean_summary() -> None:
    assert clean_summary("**Summary:** The bridge opened.") == "The bridge opened."
    assert clean_summary("TL;DR: short") == "short"
    assert clean_summary("Summary of events: none") == "Summary of events: none"


def test_bad_data_and_options(tmp_path: Path, monkeypatch) -> None:
    with pytest.raises(ValueError, match="either judge"):
        SummEvalTask(FIXTURE, judge=Judge(scorer=WordCountScorer()), judge_options={"x": 1})
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"id": "a", "text": ""}) + "\n")
    with pytest.raises(ValueError, match="non-empty 'text'"):
        SummEvalTask(bad).problems()
    bad.write_text(json.dumps({"text": "x", "machine_summaries": ["a"], "fluency": [1, 2]}))
    with pytest.raises(ValueError, match="2 fluency scores for 1 machine summaries"):
        SummEvalTask(bad).problems()

    import datasets

    def offline(*args, **kwargs):
        raise ConnectionError("offline")

    monkeypatch.setattr(datasets, "load_dataset", offline)
    with pytest.raises(RuntimeError, match="mteb/summeval.*data_path="):
        SummEvalTask().problems()


def test_judge_built_lazily_from_options() -> None:
    task = SummEvalTask(FIXTURE, judge_options={"scorer": WordCountScorer()})
    assert task._judge is None
    assert task.score(task.problems()[1], HONEST).value == 1.0
    assert isinstance(task.judge, Judge)


def test_pettingzoo_api_and_seed(task: SummEvalTask) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        api_test(spgg_env.aec_env(task=task, max_action_chars=100), num_cycles=20)
        seed_test(lambda: spgg_env.aec_env(task=task, max_action_chars=100), num_cycles=10)


def test_episode_rewards_from_judge_scores(task: SummEvalTask) -> None:
    env = spgg_env.aec_env(task=task, n_agents=2)
    env.reset(seed=5)
    final = {}
    for agent in env.agent_iter():
        _, _, terminated, truncated, info = env.last()
        if terminated or truncated:
            final[agent] = info["score"]
        env.step(
            None
            if terminated or truncated
            else (HONEST if agent == "agent_0" else "")
        )
    assert final == {"agent_0": 1.0, "agent_1": 0.0}


def test_judge_names_and_default() -> None:
    from spgg_env.tasks.summeval import make_judge

    assert SummEvalTask(FIXTURE, judge="zero-shot").judge.method == "zero-shot"
    trained = SummEvalTask(FIXTURE, judge="trained", judge_options={"cache_path": None}).judge
    assert trained.method == "head" and trained.head is not None
    assert SummEvalTask(FIXTURE).judge.method == "head"  # the measured better judge
    assert make_judge(model="embedded").method == "zero-shot"  # a head fits one model only
    with pytest.raises(ValueError, match="unknown judge"):
        SummEvalTask(FIXTURE, judge="vibes")
    with pytest.raises(ValueError, match="method once"):
        SummEvalTask(FIXTURE, judge="trained", judge_options={"method": "zero-shot"})


def test_benchmark_results_and_the_board_name_the_judge(task: SummEvalTask, tmp_path) -> None:
    """A SummEval result records what scored it, and the board says so under the task."""
    from spgg_env.agents.scripted import ScriptedBackend
    from spgg_env.baselines.bench_config import BenchConfig
    from spgg_env.baselines.bench_results import RESULT_FILE
    from spgg_env.baselines.bench_run import run_benchmark
    from spgg_env.cli import main as spgg
    from spgg_env.splits import pin_splits

    splits = pin_splits([task], "judged-v1", size=3, seed=0, splits_dir=tmp_path / "splits")
    cfg = BenchConfig.from_dict({
        "name": "summeval-zero-shot", "method": "single_agent", "task": "summeval",
        "task_options": {"data_path": str(FIXTURE)}, "split": "judged-v1", "seeds": [0],
        "decoding": {"max_new_tokens": 16}, "bootstrap_samples": 50})
    path = run_benchmark(cfg, tmp_path / "results", backend=ScriptedBackend(HONEST), task=task,
                         splits_dir=splits.parent, progress=False)
    judge = json.loads((path / RESULT_FILE).read_text())["judge"]
    assert judge["model"] == "word-count@test" and judge["method"] == "zero-shot"
    assert judge["guard"] and "cache_hits" not in judge  # what scored, not how often cached
    assert spgg(["bench", "leaderboard", str(tmp_path / "results"), "--out",
                 str(tmp_path / "board"), "--splits-dir", str(splits.parent)]) == 0
    board = (tmp_path / "board" / "leaderboard.md").read_text()
    assert "Scored by: g-eval expected score (zero-shot) on word-count@test" in board
    assert 'class="judge"' in (tmp_path / "board" / "leaderboard.html").read_text()
