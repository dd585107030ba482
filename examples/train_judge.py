"""Train the SummEval judge from the data, in one command each (docs/judge.md).

    # the model's pass over the articles (zero-shot probabilities + features), resumable
    nice -n 10 python examples/train_judge.py features --out runs/judge_features
    # the shipped head: runs the pass first if needed, fits, writes spgg_env/judge/trained/
    nice -n 10 python examples/train_judge.py head --features runs/judge_features
    # LoRA on every attention and MLP projection, trained and evaluated on disjoint articles
    nice -n 10 python examples/train_judge.py lora --train-articles 4 --eval-articles 4

Articles are taken in the seeded order of :func:`spgg_env.judge_features.article_order`, so
``--limit N`` is a random sample of N articles, the same on every machine.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from spgg_env.judge.head import TRAINED_HEAD
from spgg_env.judge.prompt import DIMENSIONS, PROMPT_VERSION, document_piece, summary_piece
from spgg_env.judge.scorer import FEATURE_LAYERS, TransformersScorer
from spgg_env.judge_eval import article_folds
from spgg_env.judge_features import (
    article_order,
    expected_scores,
    extract_dataset,
    load_features,
)
from spgg_env.judge_train import (
    ALPHAS,
    available_feature_sets,
    cross_fit,
    design_matrix,
    make_head,
    mean_summary_spearman,
    select_and_fit,
    train_lora,
)
from spgg_env.provenance import environment, file_sha256

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "summeval" / "test.jsonl"


def read_rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def features(args: argparse.Namespace) -> None:
    """The model's pass: ``<out>/<position>.npz`` per article."""
    rows = read_rows(args.data)
    scorer = TransformersScorer(args.model, device="cpu")
    extract_dataset(scorer, rows, args.features, seed=args.seed, limit=args.limit,
                    start=args.start, questions=not getattr(args, "no_questions", False))


def head(args: argparse.Namespace) -> None:
    """Fit the head on every extracted article, with a by-article cross-fit for its card."""
    if args.limit is not None:
        features(args)
    rows = read_rows(args.data)
    data = load_features(args.features)
    n = len(data["article"])
    sets = available_feature_sets(data)
    x = {name: design_matrix(data, spec).reshape(n, data["probs"].shape[1], -1)
         for name, spec in sets.items()}
    y = data["expert"]
    start = time.process_time()
    folds = article_folds(n, args.folds, args.seed)
    pred, choices = cross_fit(x, y, folds, feature_sets=sets, seed=args.seed)
    zero_shot = expected_scores(data["probs"])
    asked = np.isfinite(zero_shot).all(axis=(1, 2))  # articles passed with the question rows
    name, alpha, params, inner = select_and_fit(x, y, np.arange(n), feature_sets=sets,
                                                seed=args.seed)
    seconds = time.process_time() - start
    card = {
        "about": "Linear (ridge) head on the hidden states of the embedded SmolLM2-135M-Instruct "
                 "reading the judge prompt; 4 outputs (coherence, consistency, fluency, "
                 "relevance) fitted to SummEval's expert means. See docs/judge.md.",
        "model": scorer_identity(args.model),
        "prompt_version": PROMPT_VERSION,
        "feature_layers": list(FEATURE_LAYERS),
        "features": name,
        "alpha": alpha,
        "data": str(args.data.name),
        "data_sha256": file_sha256(args.data),
        "articles": [rows[int(a)]["id"] for a in data["article"]],
        "config": {"feature_sets": list(sets), "alphas": list(ALPHAS),
                   "inner_k": 5, "seed": args.seed, "article_order_seed": args.seed},
        "cross_validation": {
            "folds": args.folds,
            "per_fold_choice": choices,
            "mean_summary_spearman_head": mean_summary_spearman(pred, y),
            "mean_summary_spearman_zero_shot": (
                mean_summary_spearman(zero_shot[asked], y[asked]) if asked.any() else None),
            "zero_shot_articles": int(asked.sum()),
            "inner_cv_all_articles": inner,
        },
        "fit_cpu_seconds": seconds,
        "provenance": environment(),
    }
    path = make_head(name, params, card).save(args.out)
    print(f"head ({name}, alpha {alpha:g}) on {n} articles -> {path}; by-article "
          f"{args.folds}-fold mean summary-level Spearman: head "
          f"{card['cross_validation']['mean_summary_spearman_head']:.3f}; {seconds:.0f} s CPU")


def scorer_identity(model: str) -> str:
    from spgg_env.judge.scorer import model_identity

    return model_identity(model)


def lora(args: argparse.Namespace) -> None:
    """LoRA-train on some articles; score disjoint ones zero-shot before and after."""
    from spgg_env.judge import Judge
    from spgg_env.judge_eval import per_article, spearman

    rows = read_rows(args.data)
    order = article_order(len(rows), args.seed)
    held_out = order[: args.eval_articles]  # the first articles of the features pass
    train = order[len(order) - args.train_articles:]  # from the other end: never evaluated
    scorer = TransformersScorer(args.model, device="cpu")

    def prepare(index: int) -> tuple[str, list[str], np.ndarray]:
        row = rows[index]
        doc = document_piece(row["text"], 4000)
        summaries = [summary_piece(s, 1500) for s in row["machine_summaries"]]
        return doc, summaries, np.array([row[d] for d in DIMENSIONS]).T

    def evaluate(scores: dict[str, list[list[float]]] | None = None) -> dict[str, float]:
        """Mean per-article Spearman per dimension on the held-out articles; each summary's
        four scores go into ``scores`` (article id -> summaries x dimensions) when given."""
        judge = Judge(scorer.model, scorer.tokenizer)
        out: dict[str, list[float]] = {d: [] for d in DIMENSIONS}
        for index in held_out:
            row = rows[index]
            verdicts = judge.score_many([(row["text"], s) for s in row["machine_summaries"]])
            if scores is not None:
                scores[row["id"]] = [[v.scores[d] for d in DIMENSIONS] for v in verdicts]
            for d in DIMENSIONS:
                out[d].append(per_article(np.array([[v.scores[d] for v in verdicts]]),
                                          np.array([row[d]]), spearman)[0])
        return {d: float(np.nanmean(v)) for d, v in out.items()}

    start = time.perf_counter()
    held_out_before: dict[str, list[list[float]]] = {}
    before = evaluate(held_out_before) if args.eval_before else None
    log = train_lora(scorer, [prepare(i) for i in train], rank=args.rank,
                     lora_alpha=args.lora_alpha, lr=args.lr, epochs=args.epochs,
                     summaries_per_step=args.summaries_per_step, bf16=args.bf16,
                     seed=args.seed, adapter_dir=args.adapter_out)
    held_out_scores: dict[str, list[list[float]]] = {}
    after = evaluate(held_out_scores)
    report = {"train_articles": [rows[i]["id"] for i in train],
              "eval_articles": [rows[i]["id"] for i in held_out], "training": log,
              "summary_spearman_before": before, "summary_spearman_after": after,
              "held_out_scores": held_out_scores, "held_out_scores_before": held_out_before,
              "wall_seconds": time.perf_counter() - start, "data_sha256": file_sha256(args.data),
              "provenance": environment()}
    args.report.parent.mkdir(parents=True, exist_ok=True)
    args.report.write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
    print(json.dumps({k: report[k] for k in ("summary_spearman_before", "summary_spearman_after",
                                             "wall_seconds")}, indent=1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--data", type=Path, default=DATA, help="mteb/summeval JSONL")
    common.add_argument("--model", default="embedded")
    common.add_argument("--seed", type=int, default=0)
    common.add_argument("--threads", type=int, default=1)
    common.add_argument("--features", type=Path, default=Path("runs/judge_features"))
    common.add_argument("--limit", type=int, default=None, help="first N articles of the order")
    common.add_argument("--start", type=int, default=0, help="first position of the order")
    feat = sub.add_parser("features", parents=[common], help=features.__doc__)
    feat.add_argument("--no-questions", action="store_true",
                      help="features for the head only: skip the zero-shot question rows")
    feat.set_defaults(run=features)
    fit = sub.add_parser("head", parents=[common], help=head.__doc__)
    fit.add_argument("--folds", type=int, default=5)
    fit.add_argument("--out", type=Path, default=TRAINED_HEAD)
    fit.set_defaults(run=head)
    tune = sub.add_parser("lora", parents=[common], help=lora.__doc__)
    tune.add_argument("--train-articles", type=int, default=4)
    tune.add_argument("--eval-articles", type=int, default=4)
    tune.add_argument("--eval-before", action="store_true")
    tune.add_argument("--rank", type=int, default=8)
    tune.add_argument("--lora-alpha", type=int, default=16)
    tune.add_argument("--lr", type=float, default=2e-4)
    tune.add_argument("--epochs", type=int, default=1)
    tune.add_argument("--summaries-per-step", type=int, default=None,
                      help="summaries of an article per step (default: all 16)")
    tune.add_argument("--bf16", action="store_true",
                      help="bfloat16 autocast (adapters stay float32; ~1.5x faster on a CPU "
                           "with native bfloat16)")
    tune.add_argument("--report", type=Path, default=Path("runs/judge_lora.json"))
    tune.add_argument("--adapter-out", type=Path, default=None,
                      help="save the trained LoRA adapter here (before merging)")
    tune.set_defaults(run=lora)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    args.run(args)


if __name__ == "__main__":
    main()
