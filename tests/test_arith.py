"""The arith task: seeded generation, disjoint splits, exact-match scoring."""

import pytest

import spgg_env.tasks.arith as arith
from spgg_env.tasks import make_task
from spgg_env.tasks.arith import ArithTask, worked_solution
from spgg_env.tasks.gsm8k import GSM8KTask


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
        ("The answer is: 12.0", 12),
        ("answer is -5", -5),
        ("The answer is 9 * 2 = 18", 18),  # issue 11: arith used to read 9
        ("The answer is \u22125", -5),  # issue 11: arith used to read 5
        ("The answer is 123456789012345678901234567890", 123456789012345678901234567890),
    ],
)
def test_reads_the_committed_number_exactly(text, number):
    task = ArithTask(n_problems=3)
    problem = task.problems()[0]
    assert task.score(problem, text).extracted == number
    exact = type(problem)(problem.uid, problem.question, number, problem.metadata)
    off_by_one = type(problem)(problem.uid, problem.question, number + 1, problem.metadata)
    assert task.score(exact, text).value == 1.0
    assert task.score(off_by_one, text).value == 0.0  # exact: no float rounding of 30 digits


def test_one_number_extractor_for_arith_and_gsm8k():
    """Issue 11: arith has no extractor of its own; it reads exactly as GSM8K does."""
    assert not hasattr(arith, "extract_number")
    arith_task, problem = ArithTask(n_problems=3), ArithTask(n_problems=3).problems()[0]
    gsm8k_task = GSM8KTask(data_path="unused")  # scoring reads no data
    texts = ["The answer is 9 * 2 = 18", "#### \u22125", "x 3 y 4", "The answer is 12 or 13",
             "#### 7\nThe answer is 8", "\\boxed{1,234}"]
    for text in texts:
        a, g = arith_task.score(problem, text), gsm8k_task.score(problem, text)
        assert a.extracted == g.extracted
        assert (a.error is None) == (g.error is None)


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("x 3 y 4", "no committed answer (expected 'The answer is N')"),
        ("The answer is 12 or 13", "several final answers"),
        ("The answer is 12-14", "range is not an answer"),
        ("#### 7\nThe answer is 8", "contradictory final answers: 7, 8"),
    ],
)
def test_strict_rejections_say_why(text, error):
    task = ArithTask(n_problems=3)
    score = task.score(task.problems()[0], text)
    assert score.value == 0.0 and score.extracted is None and error in score.error


def test_lenient_answer_format_is_an_option():
    strict, lenient = ArithTask(n_problems=3), ArithTask(n_problems=3, answer_format="lenient")
    problem = strict.problems()[0]
    guess = f"Numbers: {problem.answer + 1}, {problem.answer}"  # the last-number fallback
    assert lenient.score(problem, guess).value == 1.0
    assert strict.score(problem, guess).value == 0.0
    with pytest.raises(ValueError, match="answer_format"):
        ArithTask(answer_format="loose")


def test_instruction_ends_with_the_format_line():
    assert ArithTask.instruction.splitlines()[-1] == "End with 'The answer is N'."
    assert ArithTask.version == "2"


@pytest.mark.parametrize(
    ("text", "extracted", "error"),
    [
        ("", None, "no committed answer (expected 'The answer is N')"),
        ("no digits here", None, "no committed answer (expected 'The answer is N')"),
        ("\x00\ufffd", None, "no committed answer (expected 'The answer is N')"),
        ("1" * 6000, None, "unreadable number: '" + "1" * 40 + "'"),  # not cut, not rounded
        ("\u0661\u0662\u0663", 123, None),  # Arabic-Indic digits: a whole reply of one number
    ],
)
def test_score_is_total(text, extracted, error):
    task = ArithTask(n_problems=3)
    score = task.score(task.problems()[0], text)
    assert (score.value, score.extracted, score.error) == (0.0, extracted, error)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"n_problems": 0},
        {"min_steps": 3, "max_steps": 2},
        {"difficulty": "hard"},
        {"answer_format": "loose"},
    ],
)
def test_bad_options_raise(kwargs):
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        ArithTask(**kwargs)


@pytest.mark.parametrize(
    "piece",
    ["TEMPLATE", "DEFAULT_CONTEXT", "DEFAULT_BLOCK", "FIRST_HINT", "LATER_HINT",
     "COMPACT_TEMPLATE", "COMPACT_BLOCK", "COMPACT_FORMAT_LINE"],
)
def test_template_hash_changes_with_every_template_piece(piece, monkeypatch):
    """The compact prompt shows the task's format line: its framing is part of the hash too."""
    from spgg_env import prompts

    before = {style: prompts.template_hash(style) for style in prompts.PROMPT_STYLES}
    monkeypatch.setattr(prompts, piece, getattr(prompts, piece) + " ")
    after = {style: prompts.template_hash(style) for style in prompts.PROMPT_STYLES}
    assert sum(before[s] != after[s] for s in before) == 1
    assert prompts.format_line(ArithTask.instruction) == "End with 'The answer is N'."
    assert prompts.format_line("One line only.") == ""


# ------------------------------------------------------------ worked solutions (few-shot)
@pytest.mark.parametrize("options", [{}, {"difficulty": "easy"}])
def test_worked_solution_of_every_generated_problem_reaches_its_answer(options):
    task = ArithTask(n_problems=300, **options)
    for split in task.splits:
        for problem in task.problems(split):
            demo = task.demonstration(problem)
            assert demo.endswith(f"The answer is {problem.answer}.")
            assert task.score(problem, demo).value == 1.0  # the strict scorer accepts it
            assert demo.count(" = ") == problem.metadata["steps"]  # one equation per step


def test_worked_solution_shows_each_operation():
    assert worked_solution(
        "Kim has 28 pencils. Kim finds 1 more pencils. Kim buys 2 jars of 5 pencils. "
        "Then Kim doubles the number of pencils. Kim gives 3 pencils to a friend. "
        "Kim splits the pencils equally among 5 people, Kim included, and keeps one share. "
        "How many pencils does Kim have now?"
    ) == ("28 + 1 = 29. 29 + 2 x 5 = 39. 39 x 2 = 78. 78 - 3 = 75. 75 / 5 = 15. "
          "The answer is 15.")


@pytest.mark.parametrize("question", ["", "What is 2 + 2?",
                                      "Ann has 3 apples. Ann eats 2 apples. How many?"])
def test_worked_solution_refuses_text_the_generator_did_not_write(question):
    with pytest.raises(ValueError, match="not a generated arith"):
        worked_solution(question)
