"""The one number extractor and the one option extractor: strict (the reward) and lenient.

The hack classes of the red team live in ``tests/test_redteam_answers.py``; here are the
formats a careful grader accepts, what each reads, exactness, and the lenient baseline reading.
"""

from __future__ import annotations

import json
import time
from fractions import Fraction
from pathlib import Path

import pytest

from spgg_env.extract import (
    Extraction,
    check_answer_format,
    extract_choice,
    extract_number,
    grade_choice,
    grade_number,
    normalise,
    numbers_match,
    parse_number,
    plain_number,
)

TASKS = ("arith", "gsm8k", "mmlu")

# ------------------------------------------------------------------------ strict: accepted
STRICT_NUMBERS = [
    # the canonical formats and their documented variants
    ("She makes 9 * 2 = $<<9*2=18>>18 every day.\n#### 18", 18),
    ("#### 1,234", 1234),
    ("#### -7", -7),
    ("Step 1: 16 - 3 - 4 = 9 eggs.\nStep 2: 9 * 2 = 18.\nThe answer is $18.", 18),
    ("The final answer is: $1,234.50 per month.", Fraction("1234.5")),
    ("Final answer: 42 km", 42),
    ("**Answer:** 70,000", 70000),
    ("**Answer: 12**", 12),
    ("The answer is:\n\n18", 18),
    (r"So the total is $3 + 4 = 7$, hence $\boxed{7}$.", 7),
    (r"The final answer is $\boxed{18}$.", 18),
    (r"The probability is \boxed{\frac{3}{4}}.", Fraction(3, 4)),
    (r"\boxed{\dfrac{1}{8}} of the pie", Fraction(1, 8)),
    # a computation ends on its result; a justification may follow; a rejected alternative
    ("The answer is 9 * 2 = 18 dollars.", 18),
    ("Answer = 7 + 8 = 15", 15),
    ("The answer is 18, because 9 * 2 = 18.", 18),
    ("The answer is 18 (9 × 2).", 18),
    ("The answer is 13, not 12.", 13),
    ("The answer to the word problem is 13.", 13),
    ("#### N = 13", 13),
    # a whole reply that is one number and nothing else commits to it
    ("13", 13),
    ("**$13.00**", 13),
    ("13 apples.", 13),
    ("The answer is 5. Check: 2 + 2 = 4", 5),
    # numbers: signs, Unicode minus, fractions, decimals, percent, LaTeX
    ("the answer is \u22123 degrees", -3),
    ("The answer is -$5.", -5),
    ("The answer is 1 1/2 cups", Fraction(3, 2)),
    ("The answer is .5", Fraction(1, 2)),
    ("The answer is 12.0", 12),
    ("Answer: 50%", 50),
    ("The answer is \\(18\\).", 18),
    ("The answer is \\$35.", 35),
    ("The answer is 1{,}000", 1000),
    ("#### 1e3", 1000),
    # the same answer twice is one answer; working before it may hold any numbers
    ("16 - 3 - 4 = 9, 9 * 2 = 18. The answer is 18.\n#### 18", 18),
    ("Agent 1 said the answer is 12. I disagree: the answer is 13.", 13),
    ('The format is "The answer is N", so: The answer is 13.', 13),
]


@pytest.mark.parametrize(("text", "expected"), STRICT_NUMBERS)
def test_strict_number(text: str, expected: int | Fraction) -> None:
    got = extract_number(text)
    assert got == Extraction(Fraction(expected)), got


# ------------------------------------------------------------------------ strict: rejected
STRICT_NUMBER_ERRORS = [
    ("", "no committed answer (expected '#### N')"),
    ("I don't know.", "no committed answer"),
    ("The answer is unclear", "no committed answer"),
    ("He had 20 apples, gave away 2, so he has 18 apples left.", "no committed answer"),
    ("18 19", "no committed answer"),  # a whole reply commits only if it is one number
    ("6 + 1 = 7", "no committed answer"),
    ("The answer is 12 or 13", "several final answers: '12 or 13'"),
    ("#### 12 13 14", "several final answers"),
    ("The answer is 12-14.", "range is not an answer"),
    ("The answer is between 12 and 14.", "range is not an answer"),
    ("#### 12\nThe answer is 13", "contradictory final answers: 12, 13"),
    ("The answer is 9 * 2", "unevaluated expression"),
    ("The answer is 3/0", "unreadable number"),
    ("#### 1e999", "unreadable number"),
]


@pytest.mark.parametrize(("text", "error"), STRICT_NUMBER_ERRORS)
def test_strict_number_rejects(text: str, error: str) -> None:
    got = extract_number(text)
    assert got.answer is None and error in got.error


def test_expected_format_is_named_in_the_error() -> None:
    got = extract_number("no answer here", expected="The answer is N")
    assert got.error == "no committed answer (expected 'The answer is N')"


# ------------------------------------------------------------------------------ exactness
def test_numbers_are_exact() -> None:
    big = 2**100 + 1  # a float cannot hold it: float(big) == float(big - 1)
    assert extract_number(f"The answer is {big}").answer == big
    assert not numbers_match(extract_number(f"The answer is {big - 1}").answer, big)
    assert extract_number("The answer is 0.1").answer == Fraction(1, 10)
    assert numbers_match(Fraction(3, 10), 0.3)  # a float gold is read as its shortest decimal
    assert not numbers_match(Fraction("18.0000001"), 18)  # no tolerance
    assert numbers_match("1,150", 1150) and numbers_match(12, "12.00")
    assert not numbers_match(None, 18) and not numbers_match(float("nan"), 18)
    assert plain_number(Fraction(18)) == 18 and isinstance(plain_number(Fraction(18)), int)
    assert plain_number(Fraction(5, 2)) == 2.5


def test_parse_number() -> None:
    assert parse_number("$1,000.25") == Fraction("1000.25")
    assert parse_number("-3/4 cups") == Fraction(-3, 4)
    assert parse_number("no digits") is None
    assert parse_number("1" * 1001) is None  # over MAX_DIGITS: not read, not truncated


def test_normalise_reads_what_a_reader_sees() -> None:
    assert normalise("\uff11\uff18") == "18"  # fullwidth digits
    assert normalise("\u0661\u0668") == "18"  # Arabic-Indic digits
    assert normalise("1\u200b8") == "18"  # zero-width space
    assert normalise("\u22125") == "-5"  # Unicode minus
    assert normalise("\u0421") == "C"  # Cyrillic Es looks like C
    assert normalise(r"\frac{3}{4}") == "3/4"
    assert normalise("1\u00bd") == "1 1/2"  # not NFKC's 11/2
    assert normalise("3\u00b2") == "3^2"  # not NFKC's 32
    assert extract_number("The answer is 3\u00b2 = 9").answer == 9


# ------------------------------------------------------------------------- strict options
CHOICES = ["Paris", "London", "Berlin", "Madrid"]

STRICT_CHOICES = [
    ("Answer: C", "C"),
    ("answer: c", "C"),
    ("**Answer: C**", "C"),
    ("**Answer:** (C)", "C"),
    ("The answer is (D).", "D"),
    ("Final answer: **C**", "C"),
    ("Answer:\n\nC", "C"),
    ("The correct answer is: B) London", "B"),
    ("Answer: C. Berlin", "C"),
    (r"\boxed{B}", "B"),
    ("I choose A.", "A"),
    ("The answer is Madrid", "D"),
    ("The answer is C, not A.", "C"),
    ("The answer is (B) and not (C).", "B"),
    ("The answer is B and D is wrong.", "B"),
    ("The answer is B. A and C are wrong.", "B"),
    ("Agent 2 chose C. I disagree: the answer is B.", "B"),
    ("A. Paris\nB. London\nC. Berlin\nD. Madrid\n\nAnswer: A", "A"),
    ("Let's think. Option A is wrong, option D is also wrong.\nFinal answer: **C**", "C"),
    ("Answer: C\n\nSo again, Answer: C", "C"),
    # a whole reply that is one option and nothing else commits to it
    ("C", "C"),
    ("(c)", "C"),
    ("D. Madrid.", "D"),
    ("Berlin", "C"),
]


@pytest.mark.parametrize(("text", "expected"), STRICT_CHOICES)
def test_strict_choice(text: str, expected: str) -> None:
    assert extract_choice(text, CHOICES) == Extraction(expected)


STRICT_CHOICE_ERRORS = [
    ("", "no committed answer (expected 'Answer: X')"),
    ("C A", "no committed answer"),  # a whole reply commits only if it is one option
    ("A. Paris\nThe capital of France.", "no committed answer"),
    ("The capital of France is Paris.", "no committed answer"),  # no option text fallback
    ("A. Paris\nB. London\nC. Berlin\nD. Madrid", "no committed answer"),
    ("The answer is a bit unclear to me", "no committed answer"),
    ("C++ is a language", "no committed answer"),
    ("The answer is A or C.", "several letters in one answer: A, C"),
    ("Answer: B/D", "several letters"),
    ("Answer: Berlin, Madrid", "several letters in one answer: C, D"),
    ("Answer: C. Paris", "letter C with the text of option A ('Paris')"),
    ("Answer: B\nActually the answer is C", "contradictory final answers: B, C"),
]


@pytest.mark.parametrize(("text", "error"), STRICT_CHOICE_ERRORS)
def test_strict_choice_rejects(text: str, error: str) -> None:
    got = extract_choice(text, CHOICES)
    assert got.answer is None and error in got.error


def test_statement_starting_with_an_option_text() -> None:
    choices = ["A decrease in prices", "An increase in prices", "No change", "It depends"]
    assert extract_choice("I think the answer is A decrease in prices.", choices).answer == "A"
    assert extract_choice("I think the answer is An increase in prices.", choices).answer == "B"
    assert extract_choice("The answer is B. An increase in prices", choices).answer == "B"
    assert "option B" in extract_choice("Answer: A. An increase in prices", choices).error


def test_short_option_texts_do_not_shadow_the_reasoning() -> None:
    choices = ["3", "4", "5", "22"]
    assert extract_choice("Answer: B. 2 + 2 = 4", choices).answer == "B"
    assert "option A" in extract_choice("Answer: B. 3", choices).error


# ------------------------------------------------------------------------- lenient (baseline)
LENIENT_NUMBERS = [
    ("She makes 9 * 2 = $<<9*2=18>>18 every day.\n#### 18", 18),
    ("The answer is 9 * 2 = 18 dollars.", 18),
    ("the answer is \u22123 degrees", -3),
    ("He had 20 apples, gave away 5-3 of them, so he has 18 apples left.", 18),
    ("x = 10 - 4\nSo x equals 6.", 6),
    ("It costs -$5 per unit after the rebate", -5),
    ("First 3/4 of the cake, i.e. 0.75", Fraction(3, 4)),
    ("We get 12,000,000 in total", 12_000_000),
    ("The answer is 12 or 13", 12),  # lenient pays hedges: why it is not the reward
    ("#### 12\nThe answer is 13", 12),
    ("The answer is 18.\n\nVerification: 16 - 3 - 4 = 9 and 9 x 2 = 18, 2 dollars each.", 18),
]


@pytest.mark.parametrize(("text", "expected"), LENIENT_NUMBERS)
def test_lenient_number(text: str, expected: int | Fraction) -> None:
    assert extract_number(text, "lenient") == Extraction(Fraction(expected))


LENIENT_CHOICES = [
    ("C", "C"),
    ("(C)", "C"),
    ("C. Berlin", "C"),
    ("The capital of France is Paris.", "A"),
    ("After checking agent 1's reasoning, I agree: option C is correct.", "C"),
    ("B is the correct answer.", "B"),
    ("Correct option: (B)", "B"),
    ("Answer: C A B D", "C"),  # lenient reads the first letter: why it is not the reward
]


@pytest.mark.parametrize(("text", "expected"), LENIENT_CHOICES)
def test_lenient_choice(text: str, expected: str) -> None:
    assert extract_choice(text, CHOICES, "lenient") == Extraction(expected)


def test_lenient_option_text_inside_another_option() -> None:
    choices = ["Wrong, Wrong", "Wrong, Not wrong", "Not wrong, Wrong", "Not wrong, Not wrong"]
    assert extract_choice("Scenario 1 is Not wrong, Wrong", choices, "lenient").answer == "C"
    assert extract_choice("My verdict: Wrong, Wrong.", choices, "lenient").answer == "A"
    assert extract_choice("-40%", ["80%", "40%", "-40%", "-80%"], "lenient").answer == "C"


# ------------------------------------------------------------------------------- totality
ODD = ["\x00\x01", "}}}{{{\\boxed{", "####", "answer is" * 1000, "1" * 5000, "\ud800", "Answer:"]


@pytest.mark.parametrize("answer_format", ["strict", "lenient"])
def test_never_raises_on_odd_strings(answer_format: str) -> None:
    for text in ODD:
        assert isinstance(extract_number(text, answer_format), Extraction)
        assert isinstance(extract_choice(text, CHOICES, answer_format), Extraction)
    assert extract_number(42).error == "expected a str, got int"  # type: ignore[arg-type]


def test_long_inputs_are_read_in_linear_time() -> None:
    text = ("The answer is the sum of 3 and 4; " * 2000) + "Answer: " + "9 " * 3000
    start = time.perf_counter()
    extract_number(text)
    extract_choice(text.replace("9", "C"), CHOICES)
    assert time.perf_counter() - start < 5.0


def test_unknown_answer_format() -> None:
    with pytest.raises(ValueError, match="answer_format must be one of"):
        check_answer_format("loose")
    with pytest.raises(ValueError, match="'loose'"):
        extract_number("#### 1", "loose")


# ------------------------------------------------------ real model outputs, labelled by hand
FIXTURES = Path(__file__).parent / "fixtures"


def _read(name: str) -> list[dict]:
    lines = (FIXTURES / name).read_text("utf-8").splitlines()
    return [json.loads(line) for line in lines if line]


def _corpus() -> list[tuple[dict, dict]]:
    """(output, label) pairs of tests/fixtures/model_outputs*.jsonl, joined on ``id``."""
    labels = {row["id"]: row for row in _read("model_outputs_labels.jsonl")}
    return [(row, labels[row["id"]]) for row in _read("model_outputs.jsonl")]


def _strict(row: dict) -> tuple[float, object, str | None]:
    if row["task"] == "mmlu":
        return grade_choice(row["text"], row["gold"], row["choices"])
    return grade_number(row["text"], row["gold"])


def test_corpus_is_real_and_fully_labelled() -> None:
    corpus = _corpus()
    per_task = {task: sum(row["task"] == task for row, _ in corpus) for task in TASKS}
    assert all(count >= 60 for count in per_task.values()), per_task
    assert len({row["id"] for row, _ in corpus}) == len(corpus)
    assert all(label["score"] in (0, 1) and label["why"] for _, label in corpus)


def test_strict_scorer_agrees_with_the_hand_labels() -> None:
    """What a careful grader reads in each real output (the committed answer, or none) is what
    the strict scorer reads, and so it pays the same."""
    disagreements = []
    for row, label in _corpus():
        score, extracted, _ = _strict(row)
        if (score, extracted) != (label["score"], label["answer"]):
            disagreements.append((row["id"], score, extracted, label))
    assert disagreements == []
