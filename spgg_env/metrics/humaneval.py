"""HumanEval pass@1 as a Hugging Face ``evaluate`` metric, scored exactly as in the env.

Loads from the installed package, with no hub access::

    from spgg_env import metrics
    metric = metrics.load("humaneval")  # = evaluate.load(<package>/metrics/humaneval.py)
    metric.compute(predictions=["```python\\ndef add(a, b): ...```"], references=["HumanEval/0"])

``predictions`` are model outputs (free text: fenced or raw code, whole function or body);
``references`` are HumanEval task ids (``"HumanEval/0"``, or just ``"0"``). Each prediction is
graded across the sandbox's process boundary (:mod:`spgg_env.tasks.humaneval`): its code serves
calls from the sandbox, the problem's tests run in a trusted process; ``tests="plus"`` adds the
seeded extra inputs of :mod:`spgg_env.tasks.humaneval_plus`:

    pass@1 = (1/N) * sum_i passed_i

Also returned: ``passed`` (0/1 per prediction) and ``errors`` (why each failed, or ``None``).
"""

from __future__ import annotations

import evaluate

from spgg_env.metrics._common import accuracy, text_metric_info
from spgg_env.tasks.humaneval import HumanEvalTask

_DESCRIPTION = "HumanEval functional correctness (pass@1), run in the spgg_env sandbox."
_CITATION = """@article{chen2021codex,
  title={Evaluating Large Language Models Trained on Code},
  author={Chen, Mark and others},
  journal={arXiv preprint arXiv:2107.03374},
  year={2021}
}"""
_INPUTS = """
Args:
    predictions (list of str): model outputs, one per reference.
    references (list of str): HumanEval task ids ("HumanEval/12" or "12").
    timeout_s (float): wall-clock limit of one prediction's whole check (default 10).
    workers (int): parallel sandboxed checks (default: CPU count).
    tests (str): "base" (the problems' own tests, default) or "plus" (those and extra inputs).
Returns:
    pass@1 (float), passed (list of int), errors (list of str or None).
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _INPUTS)
class HumanEval(evaluate.Metric):
    """HumanEval pass@1 of one sample per problem."""

    def _info(self) -> evaluate.MetricInfo:
        return text_metric_info(
            _DESCRIPTION, _CITATION, _INPUTS, "https://github.com/openai/human-eval"
        )

    def _compute(
        self,
        predictions: list[str],
        references: list[str],
        timeout_s: float = 10.0,
        workers: int | None = None,
        tests: str = "base",
    ) -> dict:
        task = HumanEvalTask(tests=tests, timeout_s=timeout_s, workers=workers)
        by_uid = {problem.uid: problem for problem in task.problems()}
        items = []
        for prediction, reference in zip(predictions, references, strict=True):
            uid = reference if reference.startswith("HumanEval/") else f"HumanEval/{reference}"
            if uid not in by_uid:
                raise ValueError(
                    f"unknown HumanEval reference {reference!r}; use a task id from "
                    "'HumanEval/0' to 'HumanEval/163'"
                )
            items.append((by_uid[uid], prediction or ""))
        scores = task.score_batch(items)
        passed = [int(score.value) for score in scores]
        return {
            "pass@1": accuracy(passed),
            "passed": passed,
            "errors": [score.error for score in scores],
        }
