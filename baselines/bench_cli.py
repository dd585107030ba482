"""``spgg bench``: run benchmark submissions and build the leaderboard.

``spgg bench run CONFIG...`` runs each submission file and writes its result directory;
``spgg bench leaderboard RESULTS...`` verifies result directories (or folders of them) and
writes ``leaderboard.md``, ``leaderboard.html`` and ``frontier.png``. Also runnable as
``python -m spgg_env.baselines.bench_cli ...``.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from spgg_env.agents.backend import Backend, make_backend
from spgg_env.baselines.benchmark import (
    RESULT_FILE,
    BenchConfig,
    ResultError,
    load_result,
    run_benchmark,
)
from spgg_env.baselines.leaderboard import write_board


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the ``bench`` command (with ``run`` and ``leaderboard``) to a CLI."""
    bench = subparsers.add_parser("bench", help="run benchmark submissions, build the leaderboard")
    commands = bench.add_subparsers(dest="bench_command", required=True)
    run = commands.add_parser("run", help="run submission config files")
    run.add_argument("configs", nargs="+", type=Path, help="submission YAML files")
    run.add_argument("--results", type=Path, default=Path("leaderboard/results"))
    run.add_argument("--splits-dir", type=Path, default=None, help="pinned split files")
    run.add_argument("--limit", type=int, default=None, help="first N problems (smoke run)")
    run.add_argument("--skip-existing", action="store_true", help="keep valid results")
    board = commands.add_parser("leaderboard", help="verify results and write the board")
    board.add_argument("results", nargs="+", type=Path, help="result dirs or folders of them")
    board.add_argument("--out", type=Path, default=Path("leaderboard"))
    board.add_argument("--splits-dir", type=Path, default=None)
    bench.set_defaults(func=main)
    return bench


def result_dirs(paths: Sequence[Path]) -> list[Path]:
    """Result directories named directly or found one level below the given folders."""
    found: list[Path] = []
    for path in paths:
        if (path / RESULT_FILE).is_file() or path.name == RESULT_FILE:
            found.append(path)
        else:
            found += sorted(p.parent for p in path.glob(f"*/{RESULT_FILE}"))
    return found


def _run(args: argparse.Namespace) -> int:
    backends: dict[str, Backend] = {}  # one model load for every config that shares it
    for config_path in args.configs:
        config = BenchConfig.from_yaml(config_path)
        if args.limit is not None:
            config = BenchConfig.from_dict({**config.to_dict(), "limit": args.limit})
        target = args.results / config.name
        if args.skip_existing and (target / RESULT_FILE).is_file():
            try:
                load_result(target, splits_dir=args.splits_dir)
                print(f"skip {config.name}: valid result in {target}")
                continue
            except ResultError as error:
                print(f"rerun {config.name}: {error}", file=sys.stderr)
        key = json.dumps(config.to_dict()["backend"], sort_keys=True)
        if key not in backends:
            backends[key] = make_backend(config.backend)
        path = run_benchmark(
            config, args.results, backend=backends[key], splits_dir=args.splits_dir
        )
        aggregates = load_result(path, splits_dir=args.splits_dir, allow_partial=True)
        agg = aggregates["header"]["aggregates"]
        print(
            f"{config.name}: score {agg['score']:.3f} {agg['score_ci95']}, "
            f"{agg['tokens_per_problem']:.0f} tokens/problem -> {path}"
        )
    return 0


def _leaderboard(args: argparse.Namespace) -> int:
    dirs = result_dirs(args.results)
    if not dirs:
        print(f"no result directories in {[str(p) for p in args.results]}", file=sys.stderr)
        return 2
    results, failures = [], []
    for path in dirs:
        try:
            results.append(load_result(path, splits_dir=args.splits_dir))
        except ResultError as error:
            failures.append(str(error))
    if failures:
        print("\n".join(failures), file=sys.stderr)
        print(f"refused {len(failures)} of {len(dirs)} results; no board written", file=sys.stderr)
        return 1
    for written in write_board(results, args.out):
        print(written)
    return 0


def main(args: argparse.Namespace) -> int:
    """Dispatch ``spgg bench run`` / ``spgg bench leaderboard``; returns the exit status."""
    if args.bench_command == "run":
        return _run(args)
    return _leaderboard(args)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="spgg")
    add_parser(parser.add_subparsers(dest="command", required=True))
    sys.exit(main(parser.parse_args()))
