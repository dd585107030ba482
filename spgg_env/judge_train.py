"""Training the SummEval judge on the experts' scores: a ridge head, and LoRA fine-tuning.

Both learn from (article, summary, expert mean score per dimension) and are split **by
article** (:func:`spgg_env.judge_eval.article_folds`): no article is ever both trained and
evaluated on.

**Ridge head** (:func:`fit_ridge`, :func:`select_and_fit`): features of the frozen model
(:mod:`spgg_env.judge_features`), standardised; ``W = X^T (X X^T + alpha I)^{-1} (Y - b)``
(the dual form of ridge regression, cheap when features outnumber rows), ``b`` the mean
expert scores. The feature set and ``alpha`` are chosen by inner k-fold cross-validation over
the training articles only, maximising the mean summary-level Spearman correlation; among
candidates within :data:`TIE_MARGIN` of the best, the cheapest (:data:`FEATURE_COST`) wins.

**LoRA** (:func:`train_lora`): ``peft`` adapters on every attention and MLP projection
(``q/k/v/o_proj``, ``gate/up/down_proj``). One step is one article: its prefix runs once,
then one packed sequence (:func:`packed_rows`) holds its summaries' bodies, each followed by
the four dimension questions, masked so that every question sees exactly its own prompt
(``prefix + body + question``, the scorer's inference path) and no body runs twice; the loss is the
cross-entropy, at the answer position only, between the model's distribution over the five
score tokens and the soft target that puts ``ceil(y) - y`` on ``floor(y)`` and the rest on
``ceil(y)`` (so its expectation is the expert mean ``y``). Nothing else is supervised.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from spgg_env.judge.head import LinearHead, feature_vector
from spgg_env.judge.prompt import DIMENSIONS
from spgg_env.judge_eval import article_folds, per_article, spearman

#: Candidate feature sets of the head: ``(block, position in the extracted layers)``.
FEATURE_SETS: dict[str, tuple[tuple[str, int], ...]] = {
    "body_mean_to_12": (("body_mean", 0), ("body_mean", 1)),
    "body_mean_to_18": tuple(("body_mean", i) for i in range(3)),
    "body_mean": tuple(("body_mean", i) for i in range(5)),
    "body_last": tuple(("body_last", i) for i in range(5)),
    "question_last": tuple(("question_last", i) for i in (2, 3, 4)),
    "body_mean+question_last": tuple(("body_mean", i) for i in range(5))
    + tuple(("question_last", i) for i in (2, 3, 4)),
}
def available_feature_sets(data: Mapping[str, Any]) -> dict[str, tuple[tuple[str, int], ...]]:
    """The :data:`FEATURE_SETS` whose blocks every extracted article has (a features-only pass
    has no ``question_last``)."""
    return {name: spec for name, spec in FEATURE_SETS.items()
            if all(block in data for block, _ in spec)}


#: What each feature set costs per summary, as a share of a full zero-shot pass (the layers it
#: needs out of 30; the question rows add ~0.5 of the body's cost): the order of preference
#: when candidates tie.
FEATURE_COST: dict[str, float] = {
    "body_mean_to_12": 12 / 30, "body_mean_to_18": 18 / 30, "body_mean": 1.0, "body_last": 1.0,
    "question_last": 1.5, "body_mean+question_last": 1.5,
}
#: Candidates within this inner-CV margin of the best count as tied; the cheapest wins.
TIE_MARGIN = 0.01
ALPHAS: tuple[float, ...] = (1.0, 10.0, 100.0, 1e3, 1e4, 1e5)

#: LoRA targets: every attention and MLP projection of a Llama-style block.
LORA_TARGETS: tuple[str, ...] = (
    "q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"
)


# ------------------------------------------------------------------ ridge head
def design_matrix(data: Mapping[str, np.ndarray], spec: Sequence[tuple[str, int]]) -> np.ndarray:
    """Feature rows ``(articles * summaries) x features`` from stacked extracted arrays."""
    n_articles, n_summaries = data["probs"].shape[:2]
    rows = []
    for a, s in itertools.product(range(n_articles), range(n_summaries)):
        rows.append(feature_vector({k: data[k][a, s] for k in _blocks(spec)}, spec))
    return np.stack(rows)


def _blocks(spec: Sequence[tuple[str, int]]) -> set[str]:
    return {block for block, _ in spec}


def fit_ridge(x: np.ndarray, y: np.ndarray, alpha: float) -> tuple[np.ndarray, ...]:
    """Standardise ``x``, fit ridge to ``y``; return ``(mean, scale, weights, bias)``."""
    mean = x.mean(axis=0)
    scale = x.std(axis=0)
    scale[scale == 0] = 1.0
    z = (x - mean) / scale
    bias = y.mean(axis=0)
    gram = z @ z.T
    gram[np.diag_indices_from(gram)] += alpha
    weights = z.T @ np.linalg.solve(gram, y - bias)
    return mean, scale, weights, bias


def ridge_path(
    x: np.ndarray, y: np.ndarray, x_test: np.ndarray, alphas: Sequence[float]
) -> list[tuple[float, np.ndarray]]:
    """Clipped predictions on ``x_test`` of :func:`fit_ridge` for every alpha at once.

    With ``Z Z^T = U diag(s) U^T`` (one eigendecomposition), the dual solution for each alpha
    is ``U diag(1 / (s + alpha)) U^T (Y - b)``; the test rows' kernel ``Z_test Z^T`` is shared.
    """
    mean = x.mean(axis=0)
    scale = x.std(axis=0)
    scale[scale == 0] = 1.0
    z, z_test = (x - mean) / scale, (x_test - mean) / scale
    bias = y.mean(axis=0)
    s, u = np.linalg.eigh(z @ z.T)
    projected = u.T @ (y - bias)
    kernel = (z_test @ z.T) @ u
    return [(alpha, np.clip(bias + kernel @ (projected / (s + alpha)[:, None]), 1.0, 5.0))
            for alpha in alphas]


def predict_ridge(params: tuple[np.ndarray, ...], x: np.ndarray) -> np.ndarray:
    """Clipped 1-5 predictions of :func:`fit_ridge`'s parameters."""
    mean, scale, weights, bias = params
    return np.clip(bias + ((x - mean) / scale) @ weights, 1.0, 5.0)


def mean_summary_spearman(pred: np.ndarray, y: np.ndarray) -> float:
    """Mean over dimensions of the summary-level Spearman (``articles x summaries x 4``)."""
    return float(np.mean([
        np.nanmean(per_article(pred[..., d], y[..., d], spearman)) for d in range(y.shape[-1])
    ]))


def select_and_fit(
    features: Mapping[str, np.ndarray],
    expert: np.ndarray,
    train: np.ndarray,
    *,
    feature_sets: Mapping[str, Sequence[tuple[str, int]]] = FEATURE_SETS,
    alphas: Sequence[float] = ALPHAS,
    inner_k: int = 5,
    seed: int = 0,
) -> tuple[str, float, tuple[np.ndarray, ...], dict[str, float]]:
    """Choose a feature set and ``alpha`` by inner CV over the ``train`` articles, then fit.

    Args:
        features: Name -> ``articles x summaries x features`` matrices (every article).
        expert: ``articles x summaries x 4`` expert means.
        train: Indices of the training articles.

    Returns:
        ``(feature set name, alpha, fitted parameters, inner-CV score of every candidate)``.
    """
    folds = article_folds(len(train), min(inner_k, len(train)), seed)
    preds = {(name, alpha): np.empty_like(expert[train])
             for name in feature_sets for alpha in alphas}
    for name in feature_sets:
        x = features[name]
        for fold in folds:
            rest = np.setdiff1d(np.arange(len(train)), fold)
            shape = expert[train[fold]].shape
            for alpha, pred in ridge_path(_flat(x[train[rest]]), _flat(expert[train[rest]]),
                                          _flat(x[train[fold]]), alphas):
                preds[(name, alpha)][fold] = pred.reshape(shape)
    scores = {f"{name}|{alpha:g}": mean_summary_spearman(pred, expert[train])
              for (name, alpha), pred in preds.items()}
    top = max(scores.values())
    tied = [key for key, value in scores.items() if value >= top - TIE_MARGIN]
    best = min(tied, key=lambda key: (FEATURE_COST.get(key.split("|")[0], 1.0), -scores[key]))
    name, alpha = best.split("|")[0], float(best.split("|")[1])
    params = fit_ridge(_flat(features[name][train]), _flat(expert[train]), alpha)
    return name, alpha, params, scores


def _flat(a: np.ndarray) -> np.ndarray:
    return a.reshape(a.shape[0] * a.shape[1], -1)


def cross_fit(
    features: Mapping[str, np.ndarray],
    expert: np.ndarray,
    folds: Sequence[np.ndarray],
    **options: Any,
) -> tuple[np.ndarray, list[dict[str, Any]]]:
    """Out-of-fold predictions: each fold predicted by a head fitted on the other folds.

    Returns:
        ``(predictions articles x summaries x 4, per-fold choices)``.
    """
    pred = np.full(expert.shape, np.nan)
    choices = []
    everything = np.arange(expert.shape[0])
    for fold in folds:
        train = np.setdiff1d(everything, fold)
        name, alpha, params, _ = select_and_fit(features, expert, train, **options)
        x = _flat(features[name][fold])
        pred[fold] = predict_ridge(params, x).reshape(pred[fold].shape)
        choices.append({"features": name, "alpha": alpha, "train_articles": len(train)})
    return pred, choices


def make_head(
    name: str, params: tuple[np.ndarray, ...], card: Mapping[str, Any]
) -> LinearHead:
    """A :class:`LinearHead` from :func:`select_and_fit`'s choice."""
    mean, scale, weights, bias = params
    return LinearHead(tuple(FEATURE_SETS[name]), mean, scale, weights, bias, dict(card))


# ------------------------------------------------------------------------ LoRA
def soft_target(score: float) -> np.ndarray:
    """Distribution over 1..5 with expectation ``score``, on ``floor`` and ``ceil`` only."""
    score = float(np.clip(score, 1.0, 5.0))
    low = int(np.floor(score))
    target = np.zeros(5)
    if low == 5:
        target[4] = 1.0
        return target
    target[low - 1] = low + 1 - score
    target[low] = score - low
    return target


def packed_rows(prefix_len: int, bodies: Sequence[Sequence[int]],
                questions: Sequence[Sequence[int]]) -> tuple[list[int], list[int], Any, list[int]]:
    """One sequence holding every summary's body and, after each body, every question.

    Returns the token ids, their position ids, the boolean "may attend" matrix
    (``tokens x (prefix_len + tokens)``) and the index of each (summary, question) pair's last
    token (summary-major). Each body token sees the prefix and its own body up to itself; each
    question token sees the prefix, its summary's whole body and its own question up to itself,
    at the positions it would have in ``prefix + body + question`` alone. So one forward pass
    over this sequence gives every pair the logits of its own prompt (the scorer's inference
    path, :meth:`~spgg_env.judge.scorer.TransformersScorer.rate`), without repeating a body.
    """
    import torch

    ids: list[int] = []
    positions: list[int] = []
    spans: list[tuple[int, int, int, int]] = []  # (start, end, its body's start and end)
    last: list[int] = []
    for body in bodies:
        body_start = len(ids)
        ids += body
        positions += range(prefix_len, prefix_len + len(body))
        body_end = len(ids)
        spans.append((body_start, body_end, body_start, body_start))
        for question in questions:
            start = len(ids)
            ids += question
            positions += range(prefix_len + len(body), prefix_len + len(body) + len(question))
            spans.append((start, len(ids), body_start, body_end))
            last.append(len(ids) - 1)
    n = len(ids)
    allowed = torch.zeros(n, prefix_len + n, dtype=torch.bool)
    allowed[:, :prefix_len] = True
    causal = torch.ones(n, n, dtype=torch.bool).tril()
    for start, end, body_start, body_end in spans:
        # its own span causally and, for a question, its summary's body
        allowed[start:end, prefix_len + start : prefix_len + end] = causal[: end - start,
                                                                          : end - start]
        allowed[start:end, prefix_len + body_start : prefix_len + body_end] = True
    return ids, positions, allowed, last


def digit_logits(scorer: Any, model: Any, document: str, summaries: Sequence[str],
                 dimensions: Sequence[str] = DIMENSIONS) -> Any:
    """The score digits' logits, ``summaries x dimensions x 5``, of ``model`` (the scorer's
    model or a ``peft`` wrapper of it) on the judge's prompts, differentiable.

    The article's prefix runs once; then one row per summary, its :func:`packed_rows` sequence
    (the body, then every question), all rows in one batch on the prefix's keys/values
    (right-padded; a pad sees only the prefix and is never read). A digit's logit is the
    ``logsumexp`` of the logits of the tokens that spell it (the scorer sums their
    probabilities), so ``softmax`` over the five gives the scorer's renormalised distribution.
    """
    import torch
    from transformers import DynamicCache

    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    device = next(base.parameters()).device
    prefix = scorer.prefix_ids(document)
    questions = [scorer.question_ids(d) for d in dimensions]
    packed = [packed_rows(len(prefix), [scorer.body_ids(s)], questions) for s in summaries]
    width = max(len(ids) for ids, *_ in packed)
    ids = torch.full((len(packed), width), scorer.pad_id, dtype=torch.long)
    positions = torch.full((len(packed), width), len(prefix), dtype=torch.long)
    allowed = torch.zeros(len(packed), 1, width, len(prefix) + width, dtype=torch.bool)
    allowed[..., : len(prefix)] = True
    for row, (row_ids, row_positions, row_allowed, _) in enumerate(packed):
        n = len(row_ids)
        ids[row, :n] = torch.tensor(row_ids)
        positions[row, :n] = torch.tensor(row_positions)
        allowed[row, 0, :n, : len(prefix) + n] = row_allowed
    cache = DynamicCache(config=base.config)
    base.model(input_ids=torch.tensor([prefix], device=device), use_cache=True,
               **{scorer._cache_kw: cache})
    cache.batch_repeat_interleave(len(packed))
    out = base.model(input_ids=ids.to(device), position_ids=positions.to(device),
                     attention_mask=allowed.to(device), use_cache=True,
                     **{scorer._cache_kw: cache})
    rows = torch.tensor([r for r, (*_, last) in enumerate(packed) for _ in last])
    columns = torch.tensor([t for *_, last in packed for t in last])
    full = base.lm_head(out.last_hidden_state[rows, columns]).float()
    logits = torch.stack([torch.logsumexp(full[:, t], dim=-1) for t in scorer.token_ids], -1)
    return logits.reshape(len(summaries), len(dimensions), len(scorer.token_ids))


def train_lora(
    scorer: Any,
    examples: Sequence[tuple[str, Sequence[str], np.ndarray]],
    *,
    rank: int = 8,
    lora_alpha: int = 16,
    lr: float = 2e-4,
    epochs: int = 1,
    summaries_per_step: int | None = None,
    bf16: bool = False,
    seed: int = 0,
    adapter_dir: str | Path | None = None,
    progress: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Fine-tune ``scorer.model`` with LoRA on (document, summaries, expert scores) examples.

    Args:
        scorer: A :class:`~spgg_env.judge.scorer.TransformersScorer` (its model is wrapped
            in place; after training ``scorer.model`` is the merged model).
        examples: Per article: the (cut, neutralised) document, its summaries, and their
            ``summaries x 4`` expert means.
        rank: LoRA rank; ``lora_alpha`` its scale (the update is ``lora_alpha / rank`` times
            the low-rank product).
        lr: AdamW learning rate.
        epochs: Passes over the articles (one step per article, in a seeded order per epoch).
        summaries_per_step: Summaries drawn (seeded) from the article at each step, each with
            its four dimension questions (default: all of them).
        bf16: Run forward and backward under bfloat16 autocast (the adapters and the optimiser
            stay float32); about twice as fast on a CPU with native bfloat16.
        adapter_dir: Where to save the trained adapter (``peft``'s ``save_pretrained``: its
            config and weights) before it is merged; not saved when ``None``.

    Returns:
        Training log: config, per-step losses, wall seconds.
    """
    import torch
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    config = LoraConfig(r=rank, lora_alpha=lora_alpha, lora_dropout=0.0,
                        target_modules=list(LORA_TARGETS), bias="none")
    model = get_peft_model(scorer.model, config)
    model.train()
    optimiser = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr)
    device_type = next(model.parameters()).device.type
    losses: list[float] = []
    start = time.perf_counter()
    for epoch in range(epochs):
        for a in rng.permutation(len(examples)):
            document, summaries, expert = examples[a]
            take = len(summaries) if summaries_per_step is None else summaries_per_step
            chosen = np.sort(rng.choice(len(summaries), min(take, len(summaries)),
                                        replace=False))
            with torch.autocast(device_type, dtype=torch.bfloat16, enabled=bf16):
                logits = digit_logits(scorer, model, document, [summaries[s] for s in chosen])
            target = torch.tensor(np.array([[soft_target(y) for y in expert[s]]
                                            for s in chosen]), dtype=torch.float32)
            loss = -(target * torch.log_softmax(logits, dim=-1)).sum(-1).mean()
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            losses.append(float(loss.detach()))
            progress(f"epoch {epoch} article {a}: loss {losses[-1]:.4f} "
                     f"({time.perf_counter() - start:.0f} s)")
    model.eval()
    if adapter_dir is not None:
        model.save_pretrained(str(adapter_dir))
    scorer.model = model.merge_and_unload()
    return {
        "rank": rank, "lora_alpha": lora_alpha, "lr": lr, "epochs": epochs,
        "summaries_per_step": summaries_per_step, "bf16": bf16,
        "target_modules": list(LORA_TARGETS),
        "steps": len(losses), "losses": losses, "seconds": time.perf_counter() - start,
    }
