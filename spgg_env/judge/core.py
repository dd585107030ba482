"""The judge: guard, then model, then a 1-5 score per dimension; cached.

For each (document, summary) pair:

1. the guard (:mod:`spgg_env.judge.guard`) checks the summary; a text that breaks a rule
   scores 0 on every dimension, with ``error`` naming the rule, and never reaches the model;
2. the model rates it, by one of two methods:

   - ``"zero-shot"`` (G-Eval style): for each dimension the next-token probabilities of "1".."5"
     after the dimension's question; with ``p_k`` renormalised over the five digits,
     ``s = sum_k k * p_k`` (expected score in [1, 5]); ``mass = sum_k p_k`` (unnormalised)
     says how sure the model was to answer with a digit at all;
   - ``"head"``: a linear head fitted on SummEval's expert scores reads the model's hidden
     states and gives the four scores at once (:mod:`spgg_env.judge.head`);
   - ``"lora"``: the zero-shot questions, asked of the model with a LoRA adapter fine-tuned on
     SummEval's expert scores merged into it (as the MAC-SPGG paper's evaluator;
     :func:`spgg_env.judge_train.train_lora`);

3. the pair's value is ``mean_d (s_d - 1) / 4`` in [0, 1].

Determinism and cost: no sampling; the article's prefix is computed once for all its
summaries (:mod:`spgg_env.judge.scorer`), and scores do not depend on how pairs are batched.
Every result is cached under ``sha256(identity + prompt version + dimension + document +
summary)``, in memory and, with ``cache_path=``, in a JSONL file that several processes may
share (:mod:`spgg_env.judge.cache`); a repeated score costs nothing and loads no model.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from spgg_env.judge.cache import ScoreCache
from spgg_env.judge.guard import GuardReport, inspect_summary
from spgg_env.judge.head import TRAINED_HEAD, LinearHead, feature_vector
from spgg_env.judge.prompt import DIMENSIONS, PROMPT_VERSION, RatingPrompt, rating_prompt
from spgg_env.judge.scorer import TransformersScorer, adapter_digest, model_identity

METHODS = ("zero-shot", "head", "lora")



@dataclass(frozen=True)
class JudgeScore:
    """The judge's verdict on one summary.

    Attributes:
        value: Mean normalised score over the dimensions, in [0, 1] (0 when ``error``).
        scores: Score in [1, 5] per dimension (1 when the guard rejected the text).
        mass: Zero-shot only: probability the model put on the five score tokens.
        error: Why the guard rejected the text, or ``None``.
        guard: What the guard measured (see :class:`~spgg_env.judge.guard.GuardReport`).
    """

    value: float
    scores: Mapping[str, float]
    mass: Mapping[str, float] = field(default_factory=dict)
    error: str | None = None
    guard: Mapping[str, Any] = field(default_factory=dict)

    @property
    def normalised(self) -> dict[str, float]:
        """Per-dimension scores mapped to [0, 1] by ``(s - 1) / 4``."""
        return {name: (score - 1.0) / 4.0 for name, score in self.scores.items()}

    def to_json(self) -> dict[str, Any]:
        """Plain dict for ``Score.details`` and result files."""
        return {
            "value": self.value,
            "scores": dict(self.scores),
            "normalised": self.normalised,
            "mass": dict(self.mass),
            "error": self.error,
            "guard": dict(self.guard),
        }


def expected_score(probs: Sequence[float]) -> tuple[float, float]:
    """Expected score over ``1..K`` from the (unnormalised) probabilities of the K score tokens.

    Returns:
        ``(sum_k k * p_k / sum_k p_k, sum_k p_k)``; a zero mass gives the middle score.
    """
    p = np.asarray(probs, dtype=np.float64)
    mass = float(p.sum())
    if not mass > 0.0:
        return (len(p) + 1) / 2.0, 0.0
    return float(np.dot(np.arange(1, len(p) + 1), p / mass)), mass


class Judge:
    """Scores summaries of documents on SummEval's four dimensions (see the module docstring).

    Args:
        model: Hub id, local folder, ``"embedded"`` (default), or a loaded causal LM (then
            give ``tokenizer``). Loaded on the first score that misses the cache.
        tokenizer: The tokenizer of a loaded ``model``.
        method: ``"zero-shot"`` (default), ``"head"`` or ``"lora"``.
        head: With ``method="head"``: a :class:`~spgg_env.judge.head.LinearHead`, a path to
            one, or ``"trained"`` (default: the head shipped in the package, fitted for the
            embedded model).
        adapter: With ``method="lora"`` (required): a LoRA adapter folder, as
            ``examples/train_judge.py lora --adapter-out`` writes one. None is shipped: the one
            trained on SummEval for the embedded model ranks summaries far worse than the head
            (docs/judge.md).
        cache_path: JSONL file that keeps results across runs and processes.
        dimensions: Which of :data:`DIMENSIONS` to score (zero-shot; the head gives all four).
        guard: Apply the guard (default); ``False`` only to measure what it prevents.
        max_document_chars: Longer documents are cut (a mark shows the cut).
        max_summary_chars: Longer summaries are cut.
        scorer: Anything with ``identity: str`` and ``distributions(prompts) -> [[p1..p5]]``
            (e.g. :class:`~spgg_env.judge.scorer.OpenAIScorer`), instead of a local model.
        **model_options: Options of :class:`~spgg_env.judge.scorer.TransformersScorer`
            (``revision``, ``device``, ``dtype``).
    """

    def __init__(
        self,
        model: Any = "embedded",
        tokenizer: Any = None,
        *,
        method: str = "zero-shot",
        head: LinearHead | str | os.PathLike[str] | None = None,
        adapter: str | os.PathLike[str] | None = None,
        cache_path: str | os.PathLike[str] | None = None,
        dimensions: Sequence[str] = DIMENSIONS,
        guard: bool = True,
        max_document_chars: int = 4000,
        max_summary_chars: int = 1500,
        scorer: Any = None,
        **model_options: Any,
    ) -> None:
        if method not in METHODS:
            raise ValueError(f"unknown judge method {method!r}; choose from {METHODS}")
        unknown = [d for d in dimensions if d not in DIMENSIONS]
        if unknown or not dimensions:
            raise ValueError(
                f"unknown or no dimensions {list(dimensions)}; choose from {DIMENSIONS}"
            )
        for name, value in (
            ("max_document_chars", max_document_chars),
            ("max_summary_chars", max_summary_chars),
        ):
            if value < 1:
                raise ValueError(f"{name} must be >= 1, got {value!r}")
        unknown_options = set(model_options) - {"revision", "device", "dtype"}
        if unknown_options:
            raise ValueError(
                f"unknown Judge options {sorted(unknown_options)}; model options are revision, "
                "device, dtype"
            )
        if method == "head" and head is None:
            head = "trained"
        if method != "head" and head is not None:
            raise ValueError("head= needs method='head'")
        if method == "lora" and adapter is None:
            raise ValueError("method='lora' needs adapter=<folder>: train one with "
                             "examples/train_judge.py lora --adapter-out <folder> (none is "
                             "shipped; docs/judge.md#lora-examplestrain_judgepy-lora)")
        if method != "lora" and adapter is not None:
            raise ValueError("adapter= needs method='lora'")
        if adapter is not None:
            if scorer is not None:
                raise ValueError("a LoRA adapter adapts a local model: give no scorer=")
            adapter = Path(adapter)
        if isinstance(head, str | os.PathLike):
            head = LinearHead.load(TRAINED_HEAD if str(head) == "trained" else Path(head))
        fitted_on = head.card.get("prompt_version") if head is not None else None
        if fitted_on is not None and str(fitted_on) != PROMPT_VERSION:
            raise ValueError(
                f"the head was fitted on judge prompt v{fitted_on}, this package reads prompts "
                f"v{PROMPT_VERSION}: its features would not mean what it learned; refit it "
                "(examples/train_judge.py features, then head; docs/judge.md#training)"
            )
        if head is not None and scorer is not None:
            raise ValueError("the head reads a local model's hidden states: give no scorer=")
        self.method = method
        self.head: LinearHead | None = head
        self.dimensions = tuple(DIMENSIONS if head is not None else dimensions)
        self.guard = bool(guard)
        self.max_document_chars = int(max_document_chars)
        self.max_summary_chars = int(max_summary_chars)
        self._model_args = {"model": model, "tokenizer": tokenizer, **model_options}
        if adapter is not None:
            self._model_args["adapter"] = adapter
        if head is not None:  # the head reads the layers it was fitted on, and no deeper
            layers = tuple(head.card["feature_layers"])
            self._model_args["feature_layers"] = layers
            if "question_last" not in head.blocks:
                self._model_args["depth"] = max(layers[i] for _, i in head.spec)
        self._scorer = scorer
        self.cache = ScoreCache(cache_path)
        self.cache_path = self.cache.path
        self.hits = 0
        self.misses = 0

    # --------------------------------------------------------------- model
    @property
    def scorer(self) -> Any:
        """The model behind the judge, loaded on first use."""
        if self._scorer is None:
            self._scorer = TransformersScorer(**self._model_args)
        return self._scorer

    @property
    def identity(self) -> str:
        """Model (and head) identity the cache keys include (known without loading the model)."""
        if self._scorer is not None:
            name = self._scorer.identity
        else:
            name = model_identity(self._model_args["model"], self._model_args.get("revision"))
        if self.head is not None:
            name += f"+head:{self.head.digest[:16]}"
        adapter = self._model_args.get("adapter")
        if adapter is not None and self._scorer is None:
            name += f"+lora:{adapter_digest(adapter)[:16]}"
        return name

    def describe(self) -> dict[str, Any]:
        """Method, model identity, dimensions, limits and cache counts, for result files."""
        return {
            "judge": {"zero-shot": "g-eval expected score", "head": "linear head",
                      "lora": "g-eval expected score, LoRA-tuned model"}[self.method],
            "method": self.method,
            "model": self.identity,
            "prompt_version": PROMPT_VERSION,
            "guard": self.guard,
            "dimensions": list(self.dimensions),
            "max_document_chars": self.max_document_chars,
            "max_summary_chars": self.max_summary_chars,
            "head": dict(self.head.card) if self.head is not None else None,
            "cache_entries": len(self.cache),
            "cache_hits": self.hits,
            "cache_misses": self.misses,
        }

    # ------------------------------------------------------------- prompts
    def prompt(self, dimension: str, document: str, summary: str) -> RatingPrompt:
        """The rating prompt of one dimension (document and summary cut and neutralised)."""
        return rating_prompt(
            document, summary, dimension, self.max_document_chars, self.max_summary_chars
        )

    def key(self, prompt: RatingPrompt, dimension: str | None = None) -> str:
        """Cache key: ``sha256(identity, prompt version, dimension, document, summary)``."""
        parts = (self.identity, PROMPT_VERSION, dimension or prompt.dimension,
                 prompt.document, prompt.summary)
        return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()

    # ------------------------------------------------------------- scoring
    def score(self, document: str, summary: str) -> JudgeScore:
        """Score one summary of ``document``."""
        return self.score_many([(document, summary)])[0]

    def score_many(self, pairs: Sequence[tuple[str, str]]) -> list[JudgeScore]:
        """Score many ``(document, summary)`` pairs; cache misses share the model's passes."""
        reports = [
            inspect_summary(d, s) if self.guard else GuardReport((), {}) for d, s in pairs
        ]
        admitted = [i for i, report in enumerate(reports) if report.ok]
        self.cache.refresh()
        if self.head is None:
            results = self._zero_shot([pairs[i] for i in admitted])
        else:
            results = self._with_head([pairs[i] for i in admitted])
        verdicts: list[JudgeScore] = []
        by_index = dict(zip(admitted, results, strict=True))
        for i, report in enumerate(reports):
            if i in by_index:
                scores, mass = by_index[i]
                value = float(np.mean([(s - 1.0) / 4.0 for s in scores.values()]))
                verdicts.append(JudgeScore(min(max(value, 0.0), 1.0), scores, mass,
                                           None, report.to_json()))
            else:
                floor = {dim: 1.0 for dim in self.dimensions}
                verdicts.append(JudgeScore(0.0, floor, {}, report.error, report.to_json()))
        return verdicts

    def _zero_shot(self, pairs: Sequence[tuple[str, str]]) -> list[tuple[dict, dict]]:
        # the pieces (cut, neutralised, the summary in SummEval's form) once per pair
        bases = [self.prompt(self.dimensions[0], d, s) for d, s in pairs]
        prompts = [[replace(base, dimension=dim) for dim in self.dimensions] for base in bases]
        keys = [[self.key(p) for p in row] for row in prompts]
        todo: dict[str, RatingPrompt] = {}
        for row_keys, row in zip(keys, prompts, strict=True):
            for key, prompt in zip(row_keys, row, strict=True):
                if key not in self.cache and key not in todo:
                    todo[key] = prompt
        self._count(sum(len(row) for row in keys), len(todo))
        if todo:
            probs = self.scorer.distributions(list(todo.values()))
            self.cache.update(dict(zip(todo, probs, strict=True)))
        out = []
        for row_keys in keys:
            scores, mass = {}, {}
            for dim, key in zip(self.dimensions, row_keys, strict=True):
                scores[dim], mass[dim] = expected_score(self.cache[key])
            out.append((scores, mass))
        return out

    def _with_head(self, pairs: Sequence[tuple[str, str]]) -> list[tuple[dict, dict]]:
        prompts = [self.prompt(DIMENSIONS[0], d, s) for d, s in pairs]
        keys = [self.key(p, "head") for p in prompts]
        todo: dict[str, RatingPrompt] = {}
        for key, prompt in zip(keys, prompts, strict=True):
            if key not in self.cache and key not in todo:
                todo[key] = prompt
        self._count(len(keys), len(todo))
        by_document: dict[str, list[str]] = {}
        for key, prompt in todo.items():
            by_document.setdefault(prompt.document, []).append(key)
        questions = DIMENSIONS if "question_last" in self.head.blocks else ()
        fresh = {}
        for document, doc_keys in by_document.items():
            ratings = self.scorer.rate(
                document, [todo[k].summary for k in doc_keys], questions, features=True
            )
            x = np.stack([feature_vector(r.features, self.head.spec) for r in ratings])
            for key, row in zip(doc_keys, self.head.predict(x), strict=True):
                fresh[key] = [float(v) for v in row]
        self.cache.update(fresh)
        return [(dict(zip(DIMENSIONS, self.cache[k], strict=True)), {}) for k in keys]

    def _count(self, asked: int, missed: int) -> None:
        self.misses += missed
        self.hits += asked - missed
