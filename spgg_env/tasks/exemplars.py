"""Few-shot exemplars: solved problems shown before the real one, and their worked answers.

One home for what the single-agent baselines (``shots``) and the agent ensembles (an ensemble
config's ``shots``) show a model: exemplars come from a training split when the task has one
(``train``, ``dev`` or ``validation``), otherwise from the evaluated split minus the evaluated
problems; a worked answer is the task's own ``demonstration(problem)`` when it has one (arith:
one equation per step, then ``The answer is N``; GSM8K: the reference solution without its
calculator annotations, then ``The answer is N``), else a worked answer the problem's metadata
carries, else the gold answer.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from spgg_env.tasks.base import Problem, Task

#: Splits that may provide few-shot exemplars, in order of preference.
EXEMPLAR_SPLITS = ("train", "dev", "validation")
#: Metadata keys that may hold a worked answer, in order of preference.
DEMO_KEYS = ("demonstration", "solution", "canonical_solution", "rationale", "reference")


def demonstration(task: Task, problem: Problem) -> str:
    """A worked answer to ``problem`` for few-shot prompts.

    Uses ``task.demonstration(problem)`` when the task defines it, else the first of
    :data:`DEMO_KEYS` in the problem's metadata, else the gold answer as ``Answer: ...``.
    """
    custom = getattr(task, "demonstration", None)
    if callable(custom):
        return str(custom(problem))
    for key in DEMO_KEYS:
        value = problem.metadata.get(key)
        if isinstance(value, str) and value.strip():
            return value
    return f"Answer: {problem.answer}"


def exemplar_pool(task: Task, evaluated: Sequence[Problem]) -> tuple[Problem, ...]:
    """The problems few-shot exemplars may come from (never an evaluated one)."""
    taken = {problem.uid for problem in evaluated}
    for split in (*[s for s in EXEMPLAR_SPLITS if s in task.splits], task.default_split):
        try:
            pool = task.problems(split)
        except (ValueError, RuntimeError, OSError):  # listed but not loadable from this source
            continue
        return tuple(p for p in pool if p.uid not in taken)
    return ()


def draw_exemplars(task: Task, shots: int, evaluated: Sequence[Problem],
                   rng: np.random.Generator) -> tuple[Problem, ...]:
    """``shots`` distinct exemplars drawn with ``rng`` from :func:`exemplar_pool`, in pool order.

    Raises:
        ValueError: If the pool has fewer than ``shots`` problems (the message says so).
    """
    if not shots:
        return ()
    pool = exemplar_pool(task, evaluated)
    if len(pool) < shots:
        raise ValueError(
            f"task {task.name!r} has only {len(pool)} problems outside the evaluated ones "
            f"for {shots} few-shot exemplars; lower `shots`"
        )
    picks = sorted(rng.choice(len(pool), size=shots, replace=False).tolist())
    return tuple(pool[i] for i in picks)
