"""SummEval: summarise a news article; an LLM judge scores the summary on four dimensions.

Each problem is one document. Agents write summaries; :class:`spgg_env.judge.Judge` rates a
summary's coherence, consistency, fluency and relevance on 1-5 and the contribution's score is
the mean of the four normalised scores ``(s - 1) / 4``, in [0, 1]. A text the judge's guard
rejects (empty, too short or long, a prompt injection, a copy of the article, a keyword list,
a loop; :mod:`spgg_env.judge.guard`) scores 0 and its ``Score.error`` (the env's
``info["parse_error"]``) names the rule.

The judge: ``judge="zero-shot"`` (the embedded model read G-Eval style), ``judge="trained"``
(the linear head fitted on SummEval's experts, :mod:`spgg_env.judge.head`), ``judge="lora"``
(G-Eval style on the embedded model with a LoRA adapter merged in: ``judge_options={"adapter":
folder}``, none is shipped), a ready
:class:`~spgg_env.judge.Judge`, or ``judge_options`` for one built on first use.

Data: a local JSONL file (``data_path=``) or the Hugging Face dataset ``mteb/summeval`` (split
``test``, 100 CNN/DailyMail articles) through ``datasets``, both in the mteb format: ``id``,
``text`` (the article), ``machine_summaries`` (list), ``human_summaries`` (list), and per machine
summary the averaged expert scores ``coherence``, ``consistency``, ``fluency``, ``relevance``
(lists of floats in [1, 5]). Only ``text`` is required; the expert scores are kept in
``Problem.metadata`` so that the judge can be checked against them
(``examples/judge_correlation.py``).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

from spgg_env.judge import DIMENSIONS, Judge
from spgg_env.tasks.base import Problem, Score, Task
from spgg_env.tasks.data import load_hf_rows, read_jsonl

HF_DATASET = "mteb/summeval"
#: ``judge=`` names and the judge method each selects.
JUDGE_NAMES = {"zero-shot": "zero-shot", "trained": "head", "lora": "lora"}
#: The method of the judge built when none is named: the trained head, which agrees with
#: SummEval's experts far better than the zero-shot reading of the same model (docs/judge.md).
#: It was fitted on the embedded model, so it is the default only for that model.
DEFAULT_METHOD = "head"


def make_judge(**options: Any) -> Judge:
    """A :class:`~spgg_env.judge.Judge` from options; without ``method``, ``model`` or
    ``scorer`` it is the embedded model with the trained head (:data:`DEFAULT_METHOD`)."""
    if not {"method", "model", "scorer", "tokenizer"} & set(options):
        options = {"method": DEFAULT_METHOD, **options}
    return Judge(**options)
_LABEL_RE = re.compile(r"^\s*\**\s*(?:summary|tl;?dr)\s*\**\s*:\s*\**", re.IGNORECASE)


def clean_summary(text: str) -> str:
    """The summary in a contribution: stripped, without a leading "Summary:" label."""
    return _LABEL_RE.sub("", text.strip(), count=1).strip()


class SummEvalTask(Task):
    """Summarisation judged by an LLM.

    Args:
        data_path: A local JSONL file in the mteb/summeval format; else the hub.
        judge: A ready :class:`~spgg_env.judge.Judge` (share one between tasks and scripts),
            or a name: ``"zero-shot"``, ``"trained"`` or ``"lora"`` (the judge method;
            combine it with ``judge_options`` such as ``cache_path``).
        judge_options: Keyword arguments of the :class:`~spgg_env.judge.Judge` built on first
            use (e.g. ``{"method": "head", "cache_path": "judge.jsonl"}``).
    """

    name: ClassVar[str] = "summeval"
    version: ClassVar[str] = "2"
    splits: ClassVar[tuple[str, ...]] = ("test",)
    instruction: ClassVar[str] = (
        "Summarise the news article in two to four sentences of plain prose. Keep its most "
        "important facts, add nothing that it does not say, and reply with the summary only."
    )

    def __init__(
        self,
        data_path: str | os.PathLike[str] | None = None,
        judge: Judge | str | None = None,
        judge_options: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.judge_options = dict(judge_options or {})
        if isinstance(judge, str):
            if judge not in JUDGE_NAMES:
                raise ValueError(f"unknown judge {judge!r}; choose from {sorted(JUDGE_NAMES)}")
            if "method" in self.judge_options:
                raise ValueError("give the judge method once: judge= or judge_options['method']")
            self.judge_options["method"] = JUDGE_NAMES[judge]
            judge = None
        elif judge is not None and judge_options:
            raise ValueError("give either judge= or judge_options=, not both")
        self.data_path = Path(data_path) if data_path is not None else None
        self._judge = judge

    @property
    def judge(self) -> Judge:
        """The judge (built on first use from ``judge_options``)."""
        if self._judge is None:
            self._judge = make_judge(**self.judge_options)
        return self._judge

    def judge_description(self) -> dict[str, Any]:
        """The judge's :meth:`~spgg_env.judge.Judge.describe` without its run-dependent cache
        counts (what scored the texts, not how often a score came from the cache)."""
        described = dict(self.judge.describe())
        for key in ("cache_entries", "cache_hits", "cache_misses"):
            described.pop(key, None)
        return described

    def load_split(self, split: str) -> Sequence[Problem]:
        """Load the documents, in file (or dataset) order."""
        if self.data_path is not None:
            rows = read_jsonl(self.data_path)
        else:
            rows = load_hf_rows(
                HF_DATASET,
                None,
                split,
                hint="Offline? Pass data_path= a JSONL file in the mteb/summeval format "
                "(fields id, text, machine_summaries, human_summaries and expert scores).",
            )
        return [self._problem(index, row) for index, row in enumerate(rows)]

    @staticmethod
    def _problem(index: int, row: Mapping[str, Any]) -> Problem:
        text = row.get("text")
        if not isinstance(text, str) or not text.strip():
            raise ValueError(f"SummEval row {index} needs a non-empty 'text' (the article)")
        machine = list(row.get("machine_summaries") or [])
        experts = {dim: [float(x) for x in row.get(dim) or []] for dim in DIMENSIONS}
        for dim, values in experts.items():
            if values and len(values) != len(machine):
                raise ValueError(
                    f"SummEval row {index}: {len(values)} {dim} scores for {len(machine)} "
                    "machine summaries"
                )
        return Problem(
            uid=f"summeval/{row.get('id', index)}",
            question=f"Article:\n{text.strip()}",
            answer=list(row.get("human_summaries") or []),
            metadata={
                "document": text.strip(),
                "machine_summaries": machine,
                "expert_scores": experts,
            },
        )

    def reference_answer(self, problem: Problem) -> str | None:
        """The first human-written reference summary (``None`` when the row has none)."""
        return problem.answer[0] if problem.answer else None

    def score(self, problem: Problem, text: str) -> Score:
        """The judge's mean normalised score of the summary in ``text``."""
        return self.score_many(problem, [text])[0]

    def score_many(self, problem: Problem, texts: Sequence[str]) -> list[Score]:
        """Score several summaries of one document in shared batched judge passes."""
        summaries = [clean_summary(t) if isinstance(t, str) else "" for t in texts]
        wanted = sorted({s for s in summaries if s})
        document = problem.metadata["document"]
        verdicts = dict(
            zip(wanted, self.judge.score_many([(document, s) for s in wanted]), strict=True)
        )
        scores = []
        for summary in summaries:
            if not summary:
                scores.append(Score(0.0, None, error="empty summary"))
                continue
            verdict = verdicts[summary]
            scores.append(
                Score(verdict.value, summary, error=verdict.error, details=verdict.to_json())
            )
        return scores
