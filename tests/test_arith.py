"""The arith task: seeded generation, disjoint splits, exact-match scoring."""

import pytest

from spgg_env.tasks import make_task
from spgg_env.tasks.arith import ArithTask, extract_number


def test_generation_is_seeded_and_splits_are_disjoint():
    a, b = ArithTask(n_problems=200, seed=1), ArithTask(n_problems=200, seed=1)
    assert a.problems("test") == b.problems("test")
    assert a.split_hash("train") == b.split_hash("train")
    assert ArithTask(n_problems=200, seed=2).split_hash("test") != a.split_hash("test")
    test_q = {p.question for p in a.problems("test")}
    assert not test_q & {p.question for p in a.problems("train")}
    uids = [p.uid for p in a.problems("test") + a.problems("train")]
    assert len(set(uids)) == len(uids)


@pytest.mark.parametrize("difficulty", ["normal", "easy"])
def test_answers_are_nonnegative_integers_and_correct_text_scores_one(difficulty):
    task = ArithTask(n_problems=300, difficulty=difficulty)
    for problem in task.problems("train"):
        assert isinstance(problem.answer, int) and problem.answer >= 0
        assert problem.question.endswith("have now?")
        assert task.score(problem, f"So... The answer is {problem.answer}.").value == 1.0
        assert task.score(problem, f"The answer is {problem.answer + 1}").value == 0.0
    if difficulty == "easy":
        assert max(p.metadata["steps"] for p in task.problems("train")) <= 2
        assert max(p.answer for p in task.problems("train")) <= 10 + 10 + 10
        assert not any("buys" in p.question or "splits" in p.question for p in task.problems())


def test_make_task_by_name():
    task = make_task("arith", n_problems=5, seed=3)
    assert isinstance(task, ArithTask) and len(task.problems()) == 5


@pytest.mark.parametrize(
    ("text", "number"),
    [
        ("The answer is 1,234.", 1234),
        ("first 7 then #### 12", 12),
        ("3 apples and 4 pears, the answer is 9, not 10", 9),
        ("x 3 y 4", 4),
        ("The answer is: 12.0", 12),
        ("answer is -5", -5),
    ],
)
def test_extract_number(text, number):
    assert extract_number(text) == number


@pytest.mark.parametrize("text", ["", "no digits here", "\x00\ufffd", "1" * 6000, "١٢٣"])
def test_score_is_total(text):
    task = ArithTask(n_problems=3)
    score = task.score(task.problems()[0], text)
    assert 0.0 <= score.value <= 1.0
    if not any(ch.isascii() and ch.isdigit() for ch in text):
        assert score.error == "no number found" and score.value == 0.0


@pytest.mark.parametrize(
    "kwargs",
    [{"n_problems": 0}, {"min_steps": 3, "max_steps": 2}, {"difficulty": "hard"}],
)
def test_bad_options_raise(kwargs):
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        ArithTask(**kwargs)
