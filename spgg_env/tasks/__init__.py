"""Task registry: ``make_task("gsm8k")`` builds a task by name; modules load lazily."""

from __future__ import annotations

import importlib
from typing import Any

from spgg_env.tasks.base import Problem, Score, Task

#: name -> ("module:Class", PettingZoo registry name)
TASKS: dict[str, tuple[str, str]] = {
    "arith": ("spgg_env.tasks.arith:ArithTask", "Arith"),
    "humaneval": ("spgg_env.tasks.humaneval:HumanEvalTask", "HumanEval"),
    "mmlu": ("spgg_env.tasks.mmlu:MMLUTask", "MMLU"),
    "gsm8k": ("spgg_env.tasks.gsm8k:GSM8KTask", "GSM8K"),
    "summeval": ("spgg_env.tasks.summeval:SummEvalTask", "SummEval"),
}


def task_class(name: str) -> type[Task]:
    """Return the class of the task called ``name``.

    Raises:
        ValueError: If no task has that name.
    """
    key = name.lower()
    if key not in TASKS:
        raise ValueError(f"unknown task {name!r}; choose one of {sorted(TASKS)} or 'scalar'")
    module_name, class_name = TASKS[key][0].split(":")
    return getattr(importlib.import_module(module_name), class_name)


def make_task(name: str | Task, **kwargs: Any) -> Task:
    """Build a task by name (or return a ready :class:`Task` unchanged)."""
    if isinstance(name, Task):
        if kwargs:
            raise ValueError("task options cannot be given with a ready Task instance")
        return name
    return task_class(name)(**kwargs)


__all__ = ["TASKS", "Problem", "Score", "Task", "make_task", "task_class"]
