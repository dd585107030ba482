"""Train the SummEval judge from the data: features, learned head, LoRA (see docs/judge.md)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "summeval" / "test.jsonl"


def features(args: argparse.Namespace) -> None:
    import torch

    from spgg_env.judge.scorer import TransformersScorer
    from spgg_env.judge_features import extract_dataset

    torch.set_num_threads(args.threads)
    rows = [json.loads(line) for line in args.data.read_text(encoding="utf-8").splitlines()]
    scorer = TransformersScorer(args.model, device="cpu")
    extract_dataset(scorer, rows, args.out, seed=args.seed, limit=args.limit)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    feat = sub.add_parser("features", help="zero-shot probabilities and features per article")
    feat.add_argument("--data", type=Path, default=DATA)
    feat.add_argument("--out", type=Path, default=Path("runs/judge_features"))
    feat.add_argument("--model", default="embedded")
    feat.add_argument("--seed", type=int, default=0)
    feat.add_argument("--limit", type=int, default=None)
    feat.add_argument("--threads", type=int, default=1)
    feat.set_defaults(run=features)
    args = parser.parse_args()
    args.run(args)


if __name__ == "__main__":
    main()
