"""Answer extractors on realistic model outputs, hard cases included."""

from __future__ import annotations

import pytest

from spgg_env.extract import extract_choice, extract_number, numbers_match, parse_number

NUMBER_CASES = [
    # GSM8K's own solution format
    ("She makes 9 * 2 = $<<9*2=18>>18 every day.\n#### 18", 18),
    ("#### 1,234", 1234),
    ("#### -7", -7),
    # \boxed{}, nested braces, fractions
    (r"So the total is $3 + 4 = 7$, hence $\boxed{7}$.", 7),
    (r"The probability is \boxed{\frac{3}{4}}.", 0.75),
    (r"\boxed{\dfrac{1}{8}} of the pie", 0.125),
    # answer phrases, with currency, commas, units, decimals
    ("Step 1: 16 - 3 - 4 = 9 eggs.\nStep 2: 9 * 2 = 18.\nThe answer is $18.", 18),
    ("The final answer is: $1,234.50 per month.", 1234.5),
    ("Answer: 42 km", 42),
    ("**Answer:** 70,000", 70000),
    ("The answer is 9 * 2 = 18 dollars.", 18),
    ("The answer is 5. Check: 2 + 2 = 4", 5),
    ("the answer is −3 degrees", -3),
    ("The answer is 1 1/2 cups", 1.5),
    ("The answer is .5", 0.5),
    ("Answer: 50%", 50),
    ("Answer = 7 + 8 = 15", 15),
    ("The answer is \\(18\\).", 18),
    ("The answer is \\$35.", 35),
    # last number fallback; subtraction is not a negative sign
    ("He had 20 apples, gave away 5-3 of them, so he has 18 apples left.", 18),
    ("x = 10 - 4\nSo x equals 6.", 6),
    ("It costs -$5 per unit after the rebate", -5),
    ("First 3/4 of the cake, i.e. 0.75", 0.75),
    ("We get 12,000,000 in total", 12_000_000),
    ("Total: 3 hours and 15 minutes is 3.25 hours.", 3.25),
]


@pytest.mark.parametrize(("text", "expected"), NUMBER_CASES)
def test_extract_number(text: str, expected: float) -> None:
    assert extract_number(text) == pytest.approx(expected)


@pytest.mark.parametrize(
    "text", ["", "I don't know.", "The answer is unclear", "$", "3/0", "\\boxed{}"]
)
def test_extract_number_none(text: str) -> None:
    assert extract_number(text) is None


def test_answer_phrase_beats_later_numbers() -> None:
    text = "The answer is 18.\n\nVerification: 16 - 3 - 4 = 9 and 9 x 2 = 18, 2 dollars each."
    assert extract_number(text) == 18


def test_parse_number_and_match() -> None:
    assert parse_number("$1,000.25") == 1000.25
    assert parse_number("no digits") is None
    assert numbers_match(18.0000000001, 18)
    assert not numbers_match(18.5, 18)
    assert not numbers_match(None, 18)
    assert not numbers_match(float("nan"), 18)


CHOICES = ["Paris", "London", "Berlin", "Madrid"]

CHOICE_CASES = [
    ("C", "C"),
    ("(C)", "C"),
    ("C.", "C"),
    ("**B**", "B"),
    ("Answer: C", "C"),
    ("answer: c", "C"),
    ("The answer is (D).", "D"),
    ("The correct answer is option B because London is the capital.", "B"),
    ("Let's think. Option A is wrong, option D is also wrong.\nFinal answer: **C**", "C"),
    ("I choose A.", "A"),
    ("After checking agent 1's reasoning, I agree: option C is correct.", "C"),
    ("C. Berlin", "C"),
    ("(B) London, since it is the capital of the UK.", "B"),
    ("The capital of France is Paris.", "A"),
    ("The answer is Madrid", "D"),
    ("The answer is C, not A.", "C"),
    ("Agent 1 said (A) but that is a mistake; the answer is B", "B"),
    # a text that restates the options and then answers
    ("A. Paris\nB. London\nC. Berlin\nD. Madrid\n\nThe answer is A.", "A"),
    ("The correct answer is: B) London", "B"),
    ("B is the correct answer.", "B"),
    ("I would choose B", "B"),
    ("Correct option: (B)", "B"),
    ("Based on the analysis, the best answer is D - Madrid", "D"),
    ("The answer is (B) and not (C).", "B"),
    ("Agent 2 chose C. I disagree: the answer is B.", "B"),
]


@pytest.mark.parametrize(("text", "expected"), CHOICE_CASES)
def test_extract_choice(text: str, expected: str) -> None:
    assert extract_choice(text, CHOICES) == expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        "The answer is A or C.",
        "Answer: B/D",
        "The answer is a bit unclear to me",
        "A. Paris\nB. London\nC. Berlin\nD. Madrid",
        "Either Paris or London",
        "I have no idea.",
        "C++ is a language",
    ],
)
def test_extract_choice_none(text: str) -> None:
    assert extract_choice(text, CHOICES) is None


def test_option_text_inside_another_option() -> None:
    choices = ["Wrong, Wrong", "Wrong, Not wrong", "Not wrong, Wrong", "Not wrong, Not wrong"]
    assert extract_choice("Scenario 1 is Not wrong, Wrong", choices) == "C"
    assert extract_choice("My verdict: Wrong, Wrong.", choices) == "A"


def test_never_raises_on_odd_strings() -> None:
    for text in ["\x00\x01", "}}}{{{\\boxed{", "####", "answer is" * 1000, "1" * 5000]:
        extract_number(text)
        extract_choice(text, CHOICES)


def test_statement_starting_with_an_option_text() -> None:
    choices = ["A decrease in prices", "An increase in prices", "No change", "It depends"]
    assert extract_choice("I think the answer is A decrease in prices.", choices) == "A"
    assert extract_choice("I think the answer is An increase in prices.", choices) == "B"
    assert extract_choice("The answer is B. An increase in prices", choices) == "B"


def test_symbols_distinguish_options() -> None:
    choices = ["80%", "40%", "-40%", "-80%"]
    assert extract_choice("-40%", choices) == "C"
    assert extract_choice("40%", choices) == "B"
