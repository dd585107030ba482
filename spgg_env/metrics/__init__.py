"""The task metrics as Hugging Face ``evaluate`` modules that load from the installed package.

``load("gsm8k")`` is ``evaluate.load(<this folder>/gsm8k.py)``: no hub access, so it works with
``HF_HUB_OFFLINE=1``. Every module scores exactly as the environment does::

    from spgg_env import metrics
    metrics.load("gsm8k").compute(predictions=["... #### 18"], references=["18"])
    metrics.load("mmlu").compute(predictions=["Answer: C"], references=["C"])
    metrics.load("summeval").compute(predictions=[summary], references=[article])
    metrics.load("humaneval").compute(predictions=[code], references=["HumanEval/0"])
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

FOLDER = Path(__file__).parent


def available() -> list[str]:
    """Names of the metric modules shipped with the package."""
    return sorted(p.stem for p in FOLDER.glob("*.py") if not p.stem.startswith("_"))


def load(name: str, **kwargs: Any) -> Any:
    """Load the ``evaluate`` metric of a task by name (``"gsm8k"``, ``"mmlu"``...).

    Args:
        name: The task's name.
        **kwargs: Passed to ``evaluate.load`` (e.g. ``experiment_id``).

    Raises:
        ValueError: If no metric has that name.
    """
    import evaluate  # deferred: importing evaluate costs seconds

    key = name.lower()
    if key not in available():
        raise ValueError(f"unknown metric {name!r}; choose one of {available()}")
    return evaluate.load(str(FOLDER / f"{key}.py"), **kwargs)


__all__ = ["available", "load"]
