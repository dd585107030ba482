"""One pass of the judge's model over SummEval: zero-shot probabilities and hidden-state features.

For every article (in a seeded order, so that any finished prefix of the run is a random
sample of articles) the scorer (:class:`spgg_env.judge.scorer.TransformersScorer`) rates its
summaries on the four dimensions and keeps the features the learned head reads. Each article
is written to its own ``<folder>/<position>.npz`` (atomically: a temporary file renamed into
place), so a run can stop at any time and resume where it stopped:

- ``probs``: summaries x dimensions x 5, the probabilities of the tokens "1".."5" (NaN when the
  pass was run without the question rows, ``questions=False``: the learned head does not need
  them and they cost about half again the body's time);
- ``body_mean``, ``body_last``: summaries x layers x hidden;
- ``question_last``: summaries x dimensions x layers x hidden (only with the question rows);
- ``expert``: summaries x dimensions, the experts' mean scores (NaN for texts without any);
- ``article``: the article's index in the data file; ``seconds``: its wall time;
- ``prompt_version``: the judge prompt the features were read with
  (:data:`~spgg_env.judge.prompt.PROMPT_VERSION`); files of another version are refused, by
  the resumed pass and by :func:`load_features` (files from before v3 have none: v2).

The features are stored as float16 (they only feed a linear model).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from spgg_env.judge.prompt import DIMENSIONS, PROMPT_VERSION, document_piece, summary_piece


def article_order(n_articles: int, seed: int = 0) -> list[int]:
    """The seeded order in which articles are processed (``numpy`` ``default_rng(seed)``)."""
    return [int(i) for i in np.random.default_rng(seed).permutation(n_articles)]


def check_prompt_version(record: Any, path: str | os.PathLike[str]) -> None:
    """Raise unless the features file ``path`` (loaded as ``record``) was read with this
    package's judge prompt."""
    version = str(record["prompt_version"]) if "prompt_version" in record else "2"
    if version != PROMPT_VERSION:
        raise ValueError(
            f"{path} holds features read with judge prompt v{version}, this package reads "
            f"v{PROMPT_VERSION}: extract again into an empty folder "
            "(examples/train_judge.py features --features <new folder>)"
        )


def extract_article(
    scorer: Any,
    document: str,
    summaries: Sequence[str],
    *,
    max_document_chars: int = 4000,
    max_summary_chars: int = 1500,
    questions: bool = True,
) -> dict[str, np.ndarray]:
    """Probabilities and features of every summary of one article (see the module docstring)."""
    start = time.perf_counter()
    ratings = scorer.rate(
        document_piece(document, max_document_chars),
        [summary_piece(s, max_summary_chars) for s in summaries],
        DIMENSIONS if questions else (),
        features=True,
    )
    probs = (np.array([r.probs for r in ratings], dtype=np.float64) if questions
             else np.full((len(summaries), len(DIMENSIONS), 5), np.nan))
    out = {"probs": probs, "seconds": np.array(time.perf_counter() - start)}
    for key in ("body_mean", "body_last") + (("question_last",) if questions else ()):
        out[key] = np.stack([r.features[key] for r in ratings]).astype(np.float16)
    return out


def extract_dataset(
    scorer: Any,
    rows: Sequence[dict[str, Any]],
    folder: str | os.PathLike[str],
    *,
    seed: int = 0,
    limit: int | None = None,
    start: int = 0,
    questions: bool = True,
    progress: Callable[[str], None] = print,
) -> list[Path]:
    """Extract every article of ``rows`` (mteb/summeval rows) into ``folder``; resumable.

    Args:
        scorer: A :class:`~spgg_env.judge.scorer.TransformersScorer`.
        rows: The data file's rows, in file order.
        folder: Where the ``<position>.npz`` files go.
        seed: Seed of :func:`article_order`.
        limit: Stop after this many articles of the order.
        start: Begin at this position of the order (a second worker can take the far end).
        questions: Also run the dimension questions (zero-shot probabilities, ``question_last``).
        progress: Called with one line per article.

    Returns:
        The article files, in processing order (those written before included).
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    files = []
    order = article_order(len(rows), seed)[:limit]
    for position, index in enumerate(order):
        if position < start:
            continue
        path = folder / f"{position:03d}.npz"
        files.append(path)
        if path.is_file():
            check_prompt_version(np.load(path), path)
            continue
        row = rows[index]
        record = extract_article(scorer, row["text"], row["machine_summaries"],
                                 questions=questions)
        record["article"] = np.array(index)
        record["prompt_version"] = np.array(PROMPT_VERSION)
        record["expert"] = np.array([row[d] for d in DIMENSIONS], dtype=np.float64).T
        tmp = path.with_suffix(".tmp.npz")
        np.savez(tmp, **record)
        os.replace(tmp, path)
        progress(
            f"article {position + 1}/{len(order)} (row {index}): "
            f"{len(row['machine_summaries'])} summaries in {float(record['seconds']):.1f} s"
        )
    return files


def load_features(folder: str | os.PathLike[str]) -> dict[str, np.ndarray]:
    """All finished article files of ``folder``, stacked (articles x summaries x ...).

    Only the arrays every file has are kept (a pass without the question rows has no
    ``question_last``); ``probs`` is NaN for articles passed without them.
    """
    paths = sorted(p for p in Path(folder).glob("[0-9][0-9][0-9].npz"))
    if not paths:
        raise FileNotFoundError(f"no extracted articles (NNN.npz) in {folder}")
    loaded = [dict(np.load(p)) for p in paths]
    for path, item in zip(paths, loaded, strict=True):
        check_prompt_version(item, path)
    common = [key for key in loaded[0] if all(key in item for item in loaded)]
    return {key: np.stack([item[key] for item in loaded]) for key in common
            if key != "prompt_version"}


def seed_judge_cache(judge: Any, rows: Sequence[dict[str, Any]], folder: str | os.PathLike[str]
                     ) -> int:
    """Put the extracted zero-shot probabilities into ``judge``'s cache (in memory only).

    The extraction and a zero-shot :class:`~spgg_env.judge.Judge` on the same model read the
    same prompts, so a judge seeded this way scores the extracted summaries without its model.
    Returns the number of entries added.
    """
    entries = {}
    for path in sorted(Path(folder).glob("[0-9][0-9][0-9].npz")):
        record = np.load(path)
        check_prompt_version(record, path)
        if not np.isfinite(record["probs"]).all():  # passed without the question rows
            continue
        row = rows[int(record["article"])]
        for s, summary in enumerate(row["machine_summaries"]):
            for d, dim in enumerate(DIMENSIONS):
                key = judge.key(judge.prompt(dim, row["text"], summary))
                entries[key] = [float(p) for p in record["probs"][s, d]]
    judge.cache.entries.update(entries)
    return len(entries)


def expected_scores(probs: np.ndarray) -> np.ndarray:
    """The zero-shot judge's 1-5 scores from stacked probabilities (``... x 5``):
    ``sum_k k p_k / sum_k p_k`` (:func:`spgg_env.judge.core.expected_score`, vectorised)."""
    return (probs / probs.sum(-1, keepdims=True)) @ np.arange(1, probs.shape[-1] + 1)
