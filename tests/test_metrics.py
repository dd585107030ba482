"""The ``evaluate`` metrics: same scores as the tasks, clear errors, loadable offline."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from spgg_env import metrics
from spgg_env.judge import Judge


@pytest.fixture(scope="module")
def gsm8k():
    return metrics.load("gsm8k")


@pytest.fixture(scope="module")
def mmlu():
    return metrics.load("mmlu")


def test_gsm8k(gsm8k) -> None:
    out = gsm8k.compute(
        predictions=["9 * 2 = 18\n#### 18", "The answer is $1,150.", "I give up", "\\boxed{-2.5}"],
        references=["18", "1200 - 50 = 1150\n#### 1,150", "3", "-5/2"],
    )
    assert out["correct"] == [1, 1, 0, 1]
    assert out["accuracy"] == 0.75
    assert out["extracted"] == [18, 1150, None, -2.5]
    assert out["errors"] == [None, None, "no committed answer (expected '#### N')", None]
    with pytest.raises(ValueError, match="holds no number"):
        gsm8k.compute(predictions=["1"], references=["none"])


def test_gsm8k_strict_by_default_lenient_on_request(gsm8k) -> None:
    predictions = ["So 12 apples and 18 pears: 18", "The answer is 17 or 18", "#### 18\nAnswer: 17"]
    strict = gsm8k.compute(predictions=predictions, references=["18"] * 3)
    lenient = gsm8k.compute(predictions=predictions, references=["18"] * 3, answer_format="lenient")
    assert strict["correct"] == [0, 0, 0]
    assert lenient["correct"] == [1, 0, 1]  # the last-number fallback and "#### first" pay
    with pytest.raises(ValueError, match="answer_format"):
        gsm8k.compute(predictions=["#### 1"], references=["1"], answer_format="loose")


CITIES = ["Rome", "Milan", "Turin", "Naples"]


def test_mmlu(mmlu) -> None:
    out = mmlu.compute(
        predictions=["Answer: C", "Rome", "The answer is A or B", "(d)"],
        references=["C", "0", "A", "3"],
        choices=[
            ["w", "x", "y", "z"],
            ["Rome", "Milan", "Turin", "Naples"],
            ["w", "x", "y", "z"],
            ["w", "x", "y", "z"],
        ],
    )
    assert out["correct"] == [1, 1, 0, 1] and out["accuracy"] == 0.75
    assert out["extracted"] == ["C", "A", None, "D"]
    assert "several letters" in out["errors"][2]
    prose = ["I like Rome, it is in Italy.", "Answer: A\nAnswer: B"]
    strict = mmlu.compute(predictions=prose, references=["0", "1"], choices=[CITIES, CITIES])
    lenient = mmlu.compute(
        predictions=prose, references=["0", "1"], choices=[CITIES, CITIES], answer_format="lenient"
    )
    assert strict["correct"] == [0, 0] and lenient["correct"] == [1, 1]
    assert mmlu.compute(predictions=["Rome"], references=["A"])["accuracy"] == 0.0  # no choices
    with_text = mmlu.compute(
        predictions=["The answer is Rome"], references=["A"], choices=[["Rome", "x", "y", "z"]]
    )
    assert with_text["correct"] == [1]
    with pytest.raises(ValueError, match="not a key"):
        mmlu.compute(predictions=["A"], references=["E"])


class MiddleScorer:
    identity = "middle@test"

    def distributions(self, prompts):
        return [[0.0, 0.0, 1.0, 0.0, 0.0] for _ in prompts]


def test_summeval_with_a_given_judge() -> None:
    out = metrics.load("summeval").compute(
        predictions=["A library will open in the town.", "  "],
        references=["The council will open a library.", "Some article."],
        judge=Judge(scorer=MiddleScorer()),
    )
    assert out["values"] == [0.5, 0.0]
    assert out["score"] == 0.25
    assert out["coherence"] == 3.0


def test_unknown_metric() -> None:
    assert {"gsm8k", "mmlu", "summeval"} <= set(metrics.available())
    with pytest.raises(ValueError, match="unknown metric 'bleu'"):
        metrics.load("bleu")


@pytest.mark.slow
def test_loads_offline(tmp_path) -> None:
    """With the hub switched off and an empty module cache, every metric still loads."""
    code = (
        "import json; from spgg_env import metrics\n"
        "for name in ('gsm8k', 'mmlu', 'summeval'): metrics.load(name)\n"
        "print(json.dumps(metrics.load('gsm8k').compute(predictions=['#### 7'], "
        "references=['7'])))"
    )
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
        "HF_MODULES_CACHE": str(tmp_path / "modules"),
        "HF_HOME": str(tmp_path / "hf"),
    }
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=240
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout.strip().splitlines()[-1])["accuracy"] == 1.0
