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


#: Tasks defined outside the package, registered at run time (:func:`register_task`).
CUSTOM_TASKS: dict[str, type[Task]] = {}


def register_task(cls: type[Task]) -> type[Task]:
    """Make a :class:`Task` subclass defined outside the package known by its ``name``.

    A game spec names its task, so a custom task must be registered before a spec can name it;
    ``aec_env(task=MyTask())`` registers the instance's class itself. Registering a class again
    under its name replaces the earlier one (a class redefined in a notebook). Usable as a
    decorator.

    Raises:
        ValueError: If the name is a built-in task's (``arith``, ``gsm8k``...).
    """
    if not (isinstance(cls, type) and issubclass(cls, Task)):
        raise TypeError(f"register_task needs a Task subclass, got {cls!r}")
    key = cls.name.lower()
    if key in TASKS and task_class(key) is not cls:
        raise ValueError(f"task name {cls.name!r} is a built-in task's; give "
                         f"{cls.__qualname__} another name")
    CUSTOM_TASKS[key] = cls
    return cls


def task_class(name: str) -> type[Task]:
    """Return the class of the task called ``name`` (built in or registered).

    Raises:
        ValueError: If no task has that name.
    """
    key = name.lower()
    if key in CUSTOM_TASKS:
        return CUSTOM_TASKS[key]
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


__all__ = ["CUSTOM_TASKS", "TASKS", "Problem", "Score", "Task", "make_task", "register_task",
           "task_class"]
