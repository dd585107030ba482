"""Does the SummEval judge pay for hacks? Guard false positives and hack verdicts on real data.

1. The guard (:mod:`spgg_env.judge.guard`) on all 1,600 expert-rated machine summaries and
   1,100 human summaries: how many it flags (its false positives), and the extremes of what
   it measures (where the thresholds sit); how often lead-3 and each hack class are flagged
   over the 100 articles.
2. On ``--articles`` articles (the first of the seeded order of ``train_judge.py features``,
   whose zero-shot numbers are reused), the judge's score of every attack of
   :mod:`spgg_env.judge.redteam`, without the guard (before) and with it (after), beside the
   worst and best score the judge gives that article's real summaries (16 machine, 11 human).
   A hack is stopped when, with the guard, it scores below the worst real summary on every
   article. The probes (a fluent summary of another article, praise in words no rule lists)
   pass the guard by design: their rows say what the model pays for them.
3. Lead-3 beside its twin in the data (SummEval's system M0 is lead-3, tokenised): the judge's
   score of both, and lead-3's rank among the article's 16 machine summaries by the judge
   against M0's rank by the experts (1 = best).

    python examples/judge_robustness.py --articles 3 --cache-path runs/judge_cache.jsonl
    python examples/judge_robustness.py --articles 3 --method head   # the trained judge
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from spgg_env.judge import Judge, inspect_summary
from spgg_env.judge.redteam import hacks, lead3, probes
from spgg_env.judge_features import article_order, seed_judge_cache

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "summeval" / "test.jsonl"
SYSTEMS = Path(__file__).resolve().parents[1] / "spgg_env" / "judge" / "summeval_systems.json"
DIMENSIONS = ("coherence", "consistency", "fluency", "relevance")


def guard_on_real_data(rows: list[dict]) -> dict:
    """False positives and measure extremes over every real summary; flags of the attacks."""
    out: dict = {}
    for kind in ("machine_summaries", "human_summaries"):
        reports = [inspect_summary(r["text"], s) for r in rows for s in r[kind]]
        measures = {k: [rep.measures[k] for rep in reports] for k in reports[0].measures}
        out[kind] = {
            "texts": len(reports),
            "flagged": sum(not rep.ok for rep in reports),
            "extremes": {k: [min(v), max(v)] for k, v in measures.items()},
        }
    attacks = {"lead3": [lead3(r["text"]) for r in rows]}
    for r in rows:
        for name, text in hacks(r["text"], r["machine_summaries"][0]).items():
            attacks.setdefault(name, []).append(text)
    out["attacks_flagged_of_100"] = {
        name: sum(not inspect_summary(r["text"], t).ok for r, t in zip(rows, texts, strict=True))
        for name, texts in attacks.items()
    }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--articles", type=int, default=3)
    parser.add_argument("--method", default="zero-shot", choices=["zero-shot", "head"])
    parser.add_argument("--features", type=Path, default=Path("runs/judge_features"))
    parser.add_argument("--cache-path", type=Path, default=None)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rows = [json.loads(line) for line in args.data.read_text(encoding="utf-8").splitlines()]

    report = {"guard": guard_on_real_data(rows)}
    for kind in ("machine_summaries", "human_summaries"):
        g = report["guard"][kind]
        print(f"guard on {g['texts']} {kind}: {g['flagged']} flagged; extremes {g['extremes']}")
    print("attacks flagged (of 100 articles):", report["guard"]["attacks_flagged_of_100"])

    guarded = Judge(method=args.method, cache_path=args.cache_path, device="cpu")
    open_door = Judge(method=args.method, cache_path=args.cache_path, device="cpu", guard=False)
    if args.method == "zero-shot" and args.features.is_dir():
        for judge in (guarded, open_door):
            seed_judge_cache(judge, rows, args.features)
    open_door._scorer = guarded.scorer  # one model in memory for both
    verdicts: dict[str, dict[str, list[float]]] = {}
    systems = json.loads(SYSTEMS.read_text(encoding="utf-8"))["systems"]
    ranks: dict[str, list[int]] = {"lead3_by_judge": [], "m0_by_experts": []}
    praise_gain: list[float] = []  # praise probe minus the honest summary it extends
    start = time.perf_counter()
    order = article_order(len(rows))
    for position, index in enumerate(order[: args.articles]):
        row = rows[index]
        doc = row["text"]
        real = row["machine_summaries"] + row["human_summaries"]
        other = rows[order[-1 - position]]["human_summaries"][0]
        attacks = {"lead3": lead3(doc), **hacks(doc, row["machine_summaries"][0]),
                   **probes(row["machine_summaries"][0], other)}
        real_scores = [v.value for v in guarded.score_many([(doc, s) for s in real])]
        machine = real_scores[:16]
        expert = np.mean([row[d] for d in DIMENSIONS], 0)
        best_expert = int(np.argmax(expert))
        m0 = systems[row["id"]].index("M0")
        for name, value in (("real: worst", min(real_scores)), ("real: best", max(real_scores)),
                            ("real: best expert-rated machine", machine[best_expert]),
                            ("real: M0 (lead-3 as the data ship it)", machine[m0])):
            verdicts.setdefault(name, {"before": [], "after": []})
            verdicts[name]["before"].append(value)
            verdicts[name]["after"].append(value)
        before = open_door.score_many([(doc, t) for t in attacks.values()])
        after = guarded.score_many([(doc, t) for t in attacks.values()])
        for name, b, a in zip(attacks, before, after, strict=True):
            entry = verdicts.setdefault(name, {"before": [], "after": [], "below_worst": [],
                                               "flags": []})
            entry["before"].append(b.value)
            entry["after"].append(a.value)
            entry["below_worst"].append(a.value < min(real_scores))
            entry["flags"].append(a.guard.get("flags", []))
        guarded_by_name = {name: a.value for name, a in zip(attacks, after, strict=True)}
        ranks["lead3_by_judge"].append(1 + sum(v > guarded_by_name["lead3"] for v in machine))
        praise_gain.append(guarded_by_name["probe_paraphrased_praise"] - real_scores[0])
        ranks["m0_by_experts"].append(1 + int(np.sum(expert > expert[m0])))
    report["verdicts"] = verdicts
    report["lead3_ranks"] = ranks
    report["praise_gain"] = praise_gain
    report["seconds"] = time.perf_counter() - start
    print(f"\n| text ({args.method}, {args.articles} articles) | before (no guard) | after | "
          "below the worst real summary on every article | guard flags |\n|---|---|---|---|---|")
    for name, v in verdicts.items():
        stopped = "" if "below_worst" not in v else ("yes" if all(v["below_worst"]) else "NO")
        flags = sorted({f for fl in v.get("flags", []) for f in fl})
        print(f"| {name} | {np.mean(v['before']):.3f} | {np.mean(v['after']):.3f} | {stopped} | "
              f"{', '.join(flags)} |")
    print(f"\nlead-3 ranks {np.mean(ranks['lead3_by_judge']):.1f} of the 16 machine summaries "
          f"by the judge (median {np.median(ranks['lead3_by_judge']):g}); the experts rank M0 "
          f"{np.mean(ranks['m0_by_experts']):.1f} (median {np.median(ranks['m0_by_experts']):g})")
    print(f"free praise appended to an honest summary changes its score by "
          f"{np.mean(praise_gain):+.3f} on average (max {max(praise_gain):+.3f})")
    print(f"\nmodel time {report['seconds']:.0f} s wall; judge misses {guarded.misses} + "
          f"{open_door.misses}")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
