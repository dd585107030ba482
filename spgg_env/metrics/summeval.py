"""The SummEval judge score as a Hugging Face ``evaluate`` metric, scored as in the env.

``predictions`` are summaries; ``references`` are the source documents they summarise (the judge
reads the document, not a reference summary). Each summary gets the judge's 1-5 score per
dimension (see :mod:`spgg_env.judge`); its value is the mean of ``(s - 1) / 4`` over the
dimensions (0 for an empty text or one the judge's guard rejects), and

    score = (1/N) * sum_i value_i

Also returned: ``values`` (per summary), ``errors`` (the guard's reason per summary, or
``None``) and the mean 1-5 score of each dimension over the admitted summaries. Pass ``judge=`` a
ready :class:`spgg_env.judge.Judge`, or judge options (``method=``, ``model=``,
``cache_path=``, ``device=``...); the default judge is the task's (the embedded SmolLM2 with the
trained head).
"""

from __future__ import annotations

from typing import Any

import evaluate

from spgg_env.metrics._common import text_metric_info
from spgg_env.tasks.summeval import clean_summary

_DESCRIPTION = "SummEval-style LLM-judge score (G-Eval expected score) of summaries."
_CITATION = """@article{fabbri2021summeval,
  title={SummEval: Re-evaluating Summarization Evaluation},
  author={Fabbri, Alexander R and others},
  journal={TACL},
  year={2021}
}"""
_INPUTS = """
Args:
    predictions (list of str): summaries.
    references (list of str): the source documents.
    judge (spgg_env.judge.Judge, optional): the judge to use.
    **judge_options: options of a new Judge (method, model, cache_path, device, dtype).
Returns:
    score (float), values (list of float), and per dimension the mean 1-5 score.
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _INPUTS)
class SummEval(evaluate.Metric):
    """LLM-judge score of summaries against their source documents."""

    def _info(self) -> evaluate.MetricInfo:
        return text_metric_info(
            _DESCRIPTION, _CITATION, _INPUTS, "https://github.com/Yale-LILY/SummEval"
        )

    def _compute(
        self,
        predictions: list[str],
        references: list[str],
        judge: Any = None,
        **judge_options: Any,
    ) -> dict:
        from spgg_env.tasks.summeval import make_judge

        if judge is None:
            judge = make_judge(**judge_options)
        elif judge_options:
            raise ValueError("give either judge= or judge options, not both")
        summaries = [clean_summary(p or "") for p in predictions]
        pairs = [(doc, s) for doc, s in zip(references, summaries, strict=True) if s]
        verdicts = iter(judge.score_many(pairs))
        results = [next(verdicts) if s else None for s in summaries]
        values = [r.value if r is not None else 0.0 for r in results]
        out: dict[str, Any] = {"score": sum(values) / len(values) if values else 0.0}
        admitted = [r for r in results if r is not None and r.error is None]
        for dim in judge.dimensions:
            rated = [r.scores[dim] for r in admitted]
            out[dim] = sum(rated) / len(rated) if rated else None
        out["values"] = values
        out["errors"] = [
            "empty summary" if r is None else r.error for r in results
        ]
        return out
