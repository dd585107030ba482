"""How well do the judges agree with SummEval's experts? The field's meta-evaluation table.

For every judge: summary-level Spearman and Kendall per dimension and their mean (per article
over its 16 machine summaries, then averaged over articles), system-level correlations (the
16 systems' means over articles), each with a bootstrap 95% interval over articles
(:mod:`spgg_env.judge_eval`); on every article scored and on an article-disjoint held-out fold.

Judges:

- ``zero-shot``: the embedded SmolLM2-135M read G-Eval style (expected score over "1".."5");
- ``head``: the linear head on the same model's hidden states, **cross-fitted by article**
  (k folds; each fold is predicted by a head fitted, with its feature set and ridge alpha
  chosen by inner CV, on the other folds only);
- ``LoRA``: the zero-shot questions asked of the model with a LoRA adapter trained on other
  articles (``--lora-report``: the report of ``examples/train_judge.py lora``, which keeps its
  held-out articles' scores), on those held-out articles, beside ROUGE-L and length there;
- ``ROUGE-L``: F-measure against the 11 human summaries (best reference; ``rouge-score``);
- ``length``: the summary's number of words;
- published figures (G-Eval with GPT-4, UniEval, ROUGE-L).

The model's numbers come from ``examples/train_judge.py features`` (one pass per article,
resumable; its ``.npz`` files say how long each article took). Run:

    nice -n 10 python examples/train_judge.py features --out runs/judge_features
    python examples/judge_correlation.py --features runs/judge_features --out runs/judge_eval.json

Without a features folder the model's judges are skipped (the no-model and LoRA tables remain).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from spgg_env.judge.guard import words
from spgg_env.judge.prompt import DIMENSIONS
from spgg_env.judge_eval import (
    article_folds,
    markdown_rows,
    paired_difference,
    published_rows,
    summary_level_figures,
    system_level_figures,
)
from spgg_env.judge_features import expected_scores, load_features
from spgg_env.judge_train import available_feature_sets, cross_fit, design_matrix

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "summeval" / "test.jsonl"
SYSTEMS = Path(__file__).resolve().parents[1] / "spgg_env" / "judge" / "summeval_systems.json"
ZERO_SHOT = "zero-shot 135M (G-Eval style)"
HEADER = (
    "| judge | correlation | coherence | consistency | fluency | relevance | mean | articles |\n"
    "|---|---|---|---|---|---|---|---|"
)


def rouge_l(rows: list[dict], articles: np.ndarray) -> np.ndarray:
    """ROUGE-L F of each machine summary against its article's human summaries (best one)."""
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)
    return np.array([
        [scorer.score_multi(rows[a]["human_summaries"], s)["rougeL"].fmeasure
         for s in rows[a]["machine_summaries"]]
        for a in articles
    ])


def per_dimension(single: np.ndarray) -> dict[str, np.ndarray]:
    """One score for every dimension (metrics that have no dimensions)."""
    return {d: single for d in DIMENSIONS}


def lora_table(report_path: Path, rows: list[dict], n_boot: int, seed: int,
               head: dict[str, np.ndarray] | None = None) -> dict:
    """The LoRA judge's summary-level figures on its held-out articles, with ROUGE-L and length
    on the same articles and, when ``head`` holds the cross-fitted head's scores (article index
    -> summaries x dimensions), the head there too and the paired difference LoRA - head;
    printed as a table and returned (label -> figures)."""
    report = json.loads(report_path.read_text(encoding="utf-8"))
    index = {row["id"]: i for i, row in enumerate(rows)}
    held = np.array([index[a] for a in report["eval_articles"]])
    scores = np.array([report["held_out_scores"][a] for a in report["eval_articles"]])
    expert = {d: np.array([rows[a][d] for a in held]) for d in DIMENSIONS}
    lora_label = (f"LoRA-tuned 135M (G-Eval style; trained on {len(report['train_articles'])} "
                  "other articles)")
    judges = {lora_label: {d: scores[..., i] for i, d in enumerate(DIMENSIONS)}}
    if report.get("summary_spearman_before") is not None and "held_out_scores_before" in report:
        before = np.array([report["held_out_scores_before"][a] for a in report["eval_articles"]])
        judges["zero-shot 135M, same articles (before LoRA)"] = {
            d: before[..., i] for i, d in enumerate(DIMENSIONS)}
    head_label = "head on 135M features (cross-fitted: each article by a head that never saw it)"
    if head is not None and all(a in head for a in held):
        judges[head_label] = {d: np.array([head[a][:, i] for a in held])
                              for i, d in enumerate(DIMENSIONS)}
    judges["ROUGE-L F (11 references)"] = per_dimension(rouge_l(rows, held))
    judges["length (words)"] = per_dimension(
        np.array([[len(words(s)) for s in rows[a]["machine_summaries"]] for a in held], float))
    print(f"\n### summary level, the LoRA judge's {len(held)} held-out articles\n\n{HEADER}")
    out = {}
    for label, js in judges.items():
        figures = summary_level_figures(js, expert, n_boot=n_boot, seed=seed)
        print("\n".join(markdown_rows(label, figures)))
        out[label] = {c: {k: vars(f) for k, f in row.items()} for c, row in figures.items()}
    if head_label in judges:
        print("\n| paired difference (same articles) | correlation | "
              + " | ".join(DIMENSIONS) + " | mean | articles |\n|---|---|---|---|---|---|---|---|")
        out["LoRA - head"] = {}
        for corr in ("spearman", "kendall"):
            diff = paired_difference(judges[lora_label], judges[head_label], expert, corr=corr,
                                     n_boot=n_boot, seed=seed)
            cells = " | ".join(f"{diff[d].value:+.3f} [{diff[d].low:+.2f}, {diff[d].high:+.2f}]"
                               for d in (*DIMENSIONS, "mean"))
            print(f"| LoRA - head | {corr} | {cells} | {diff['mean'].n} |")
            out["LoRA - head"][corr] = {k: vars(f) for k, f in diff.items()}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--features", type=Path, default=Path("runs/judge_features"))
    parser.add_argument("--systems", type=Path, default=SYSTEMS)
    parser.add_argument("--folds", type=int, default=5, help="k of the by-article cross-fit")
    parser.add_argument("--n-boot", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None, help="also write the figures (JSON)")
    parser.add_argument("--lora-report", type=Path, default=None,
                        help="report of train_judge.py lora: the LoRA judge's held-out table")
    args = parser.parse_args()
    start = time.process_time()

    rows = [json.loads(line) for line in args.data.read_text(encoding="utf-8").splitlines()]
    report: dict = {"tables": {}}
    if not args.features.is_dir():
        if args.lora_report is not None:
            report["tables"]["lora held-out"] = lora_table(args.lora_report, rows, args.n_boot,
                                                           args.seed)
        print(f"\nno features at {args.features}: the model's judges are skipped (make them "
              "with examples/train_judge.py features)")
        if args.out:
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
        return
    systems_map = json.loads(args.systems.read_text(encoding="utf-8"))["systems"]
    every = np.arange(len(rows))
    data = load_features(args.features)
    scored = data["article"].astype(int)
    expert_all = {d: np.array([r[d] for r in rows]) for d in DIMENSIONS}
    expert = {d: expert_all[d][scored] for d in DIMENSIONS}
    known = all(rows[a]["id"] in systems_map for a in scored)  # other data: no system level
    systems = np.array([systems_map[rows[a]["id"]] for a in scored]) if known else None

    judges: dict[str, dict[str, np.ndarray]] = {}
    zero = expected_scores(data["probs"])
    # articles passed with the zero-shot question rows (a features-only pass has none)
    asked = np.flatnonzero(np.isfinite(zero).all(axis=(1, 2)))
    judges[ZERO_SHOT] = {d: zero[..., i] for i, d in enumerate(DIMENSIONS)}
    folds = article_folds(len(scored), args.folds, args.seed)
    n_summaries = data["probs"].shape[1]
    sets = available_feature_sets(data)
    features = {name: design_matrix(data, spec).reshape(len(scored), n_summaries, -1)
                for name, spec in sets.items()}
    y = np.stack([expert[d] for d in DIMENSIONS], axis=-1)
    fit_start = time.process_time()
    head, choices = cross_fit(features, y, folds, feature_sets=sets, seed=args.seed)
    fit_seconds = time.process_time() - fit_start
    judges[f"head on 135M features ({args.folds}-fold by article)"] = {
        d: head[..., i] for i, d in enumerate(DIMENSIONS)
    }
    if args.lora_report is not None:
        report["tables"]["lora held-out"] = lora_table(
            args.lora_report, rows, args.n_boot, args.seed,
            head={int(a): head[p] for p, a in enumerate(scored)})
    rouge_all = rouge_l(rows, every)
    length_all = np.array([[len(words(s)) for s in r["machine_summaries"]] for r in rows], float)
    judges["ROUGE-L F (11 references)"] = per_dimension(rouge_all[scored])
    judges["length (words)"] = per_dimension(length_all[scored])

    report.update({"articles_scored": len(scored), "folds": [f.tolist() for f in folds],
                   "head_choices": choices, "head_fit_cpu_seconds": fit_seconds,
                   "model_pass_wall_seconds": float(data["seconds"].sum())})
    heldout = folds[0]
    everything = np.arange(len(scored))
    tables = {
        f"summary level, {len(scored)} articles scored by the model": (everything, "summary"),
        f"summary level, held-out fold ({len(heldout)} articles)": (heldout, "summary"),
    }
    if 0 < len(asked) < len(scored):
        tables[f"summary level, the {len(asked)} articles with zero-shot scores"] = (
            asked, "summary")
    if systems is not None:
        tables[f"system level, {len(scored)} articles"] = (everything, "system")
    for title, (part, level) in tables.items():
        print(f"\n### {title}\n\n{HEADER}")
        report["tables"][title] = {}
        for label, scores in judges.items():
            if label == ZERO_SHOT and not np.isin(part, asked).all():
                continue  # the zero-shot judge only where the pass asked its questions
            js = {d: scores[d][part] for d in DIMENSIONS}
            ex = {d: expert[d][part] for d in DIMENSIONS}
            if level == "summary":
                figures = summary_level_figures(js, ex, n_boot=args.n_boot, seed=args.seed)
            else:
                figures = system_level_figures(js, ex, systems[part], n_boot=args.n_boot,
                                               seed=args.seed)
            print("\n".join(markdown_rows(label, figures)))
            report["tables"][title][label] = {
                c: {k: vars(f) for k, f in row.items()} for c, row in figures.items()
            }
        if level == "summary" and part is everything:
            print("\n".join(published_rows()))
    print("\n### summary level, all 100 articles (no model)\n\n" + HEADER)
    for label, single in (("ROUGE-L F (11 references)", rouge_all), ("length (words)", length_all)):
        figures = summary_level_figures(per_dimension(single), expert_all, n_boot=args.n_boot,
                                        seed=args.seed)
        print("\n".join(markdown_rows(label, figures)))
    print(f"\nmodel pass: {len(scored)} articles, {report['model_pass_wall_seconds']:.0f} s wall "
          f"(from the .npz files); head cross-fit {fit_seconds:.0f} s CPU; this script "
          f"{time.process_time() - start:.0f} s CPU")
    print("head choices per fold:", choices)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
