"""``spgg bench``: run benchmark submissions, verify results and build the leaderboard.

``spgg bench run CONFIG...`` runs each submission and writes its result folder under
``--results-dir`` (default ``runs/bench``; never the committed ``leaderboard/results`` unless
named). A result folder that exists is never replaced without ``--overwrite``;
``--skip-existing`` keeps one that verifies. ``spgg bench leaderboard RESULTS...`` verifies
result folders (or folders of them) and writes ``leaderboard.md``, ``leaderboard.html``, the
plots and ``costs.md`` (with the cost file ``<folder>-costs.tsv`` beside a results folder named,
where there is one). Bad input (a missing config file or results folder, an unknown task or
method, a bad option, an existing result) is one line and exit status 2, before any model
loads; a result that fails verification is exit status 1 with every reason listed.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from spgg_env.agents.backend import Backend, make_backend
from spgg_env.baselines.bench_config import BenchConfig, apply_task_options
from spgg_env.baselines.bench_results import RESULT_FILE, ResultError, load_result
from spgg_env.cli import SUBCOMMANDS, usage_error

DEFAULT_RESULTS = Path("runs/bench")


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the ``bench`` command (with ``run`` and ``leaderboard``) to the ``spgg`` CLI."""
    summary = SUBCOMMANDS["bench"][1]
    bench = subparsers.add_parser("bench", help=summary, description=summary)
    commands = bench.add_subparsers(dest="bench_command", required=True, metavar="COMMAND")
    run = commands.add_parser(
        "run", help="run submission configs; write one verified result folder each",
        description="Run submission configs (benchmarks/configs/*.yaml); write one result "
                    "folder each under --results-dir.")
    run.add_argument("configs", nargs="+", type=Path, metavar="CONFIG",
                     help="submission YAML files")
    run.add_argument("--results-dir", type=Path, default=DEFAULT_RESULTS,
                     help=f"parent folder of the result folders (default: {DEFAULT_RESULTS}; "
                          "the committed board's results are in leaderboard/results)")
    run.add_argument("--overwrite", action="store_true",
                     help="replace a result folder that already exists")
    run.add_argument("--skip-existing", action="store_true",
                     help="keep a result folder that already exists and verifies")
    run.add_argument("--task-option", action="append", default=[], metavar="KEY=VALUE",
                     help="set a task option in every config, repeatable (e.g. "
                          "data_path=../shared/data/gsm8k); values are read as YAML scalars")
    run.add_argument("--limit", type=int, default=None,
                     help="solve only the first N problems (a smoke run; the leaderboard "
                          "refuses it)")
    run.add_argument("--splits-dir", type=Path, default=None,
                     help="folder of pinned split files (default: the package's own)")
    run.add_argument("--threads", type=int, default=None,
                     help="torch CPU threads (default: torch's choice; 1 on a busy machine)")
    run.add_argument("--no-progress", action="store_true", help="hide the progress bars")
    run.add_argument("--ray", nargs="?", const="local", default=None, metavar="ADDRESS",
                     help="run every (config, seed) pair as a Ray task: a cluster address "
                          "(auto, ray://host:10001) or, without one, a local cluster (needs "
                          "the ray extra)")
    board = commands.add_parser(
        "leaderboard", help="verify result folders and write the leaderboard",
        description="Verify result folders and write leaderboard.md, leaderboard.html, "
                    "frontier.png, comparisons.png and costs.md (reading RESULTS-costs.tsv "
                    "beside a folder named, where it exists); nothing is written if any result "
                    "is rejected.")
    board.add_argument("results", nargs="+", type=Path, metavar="RESULTS",
                       help="result folders, or folders that hold them")
    board.add_argument("--out", type=Path, default=Path("runs/leaderboard"),
                       help="where the board's files go (default: runs/leaderboard; the "
                            "committed board is in leaderboard)")
    board.add_argument("--splits-dir", type=Path, default=None,
                       help="folder of pinned split files (default: the package's own)")
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


def planned_runs(args: argparse.Namespace) -> list[BenchConfig]:
    """The configs to run, every one checked before any model loads (existing results kept
    with ``--skip-existing`` are left out).

    Raises:
        ValueError, FileNotFoundError, FileExistsError: On bad input (one-line messages).
    """
    if args.limit is not None and args.limit < 1:
        raise ValueError(f"--limit must be >= 1, got {args.limit}")
    if args.threads is not None and args.threads < 1:
        raise ValueError(f"--threads must be >= 1, got {args.threads}")
    if args.splits_dir is not None and not args.splits_dir.is_dir():
        raise FileNotFoundError(f"--splits-dir {str(args.splits_dir)!r} is not a folder")
    configs, names = [], set()
    for path in args.configs:
        config = apply_task_options(BenchConfig.from_yaml(path), args.task_option)
        if args.limit is not None:
            config = config.replace(limit=args.limit)
        if config.name in names:
            raise ValueError(f"two configs are named {config.name!r}; names must be unique")
        names.add(config.name)
        target = args.results_dir / config.name
        if target.exists() and not args.overwrite:
            if not args.skip_existing:
                raise FileExistsError(f"{str(target)!r} already holds a result; pass "
                                      "--overwrite to replace it, --skip-existing to keep it, "
                                      "or choose another --results-dir")
            try:
                load_result(target, splits_dir=args.splits_dir, allow_partial=True)
            except ResultError as error:
                raise FileExistsError(f"{str(target)!r} holds a result that does not verify "
                                      f"({error.problems[0]}); pass --overwrite to replace "
                                      "it") from None
            print(f"skip {config.name}: valid result in {target}")
            continue
        configs.append(config)
    return configs


def _run(args: argparse.Namespace) -> int:
    from spgg_env.baselines.bench_run import run_benchmark

    try:
        configs = planned_runs(args)
    except (ValueError, OSError) as error:
        return usage_error("spgg bench run", error)
    if args.threads is not None:
        import torch

        torch.set_num_threads(args.threads)
    loaded: dict[str, Backend] = {}  # one model load for every config that shares it

    def backend_of(config: BenchConfig) -> Callable[[], Backend]:
        key = json.dumps(config.to_dict()["backend"], sort_keys=True)

        def load() -> Backend:
            if key not in loaded:
                loaded[key] = make_backend(config.backend)
            return loaded[key]
        return load

    if args.ray is not None:
        from spgg_env.baselines.bench_run import run_benchmarks_on_ray

        try:
            paths = run_benchmarks_on_ray(
                configs, args.results_dir, address=None if args.ray == "local" else args.ray,
                splits_dir=args.splits_dir, overwrite=args.overwrite,
                progress=not args.no_progress)
        except (ValueError, OSError, RuntimeError, ImportError) as error:
            return usage_error("spgg bench run --ray", error)
    else:
        paths = []
        for config in configs:
            try:
                paths.append(run_benchmark(config, args.results_dir, backend=backend_of(config),
                                           splits_dir=args.splits_dir,
                                           progress=not args.no_progress,
                                           overwrite=args.overwrite))
            except (ValueError, OSError, RuntimeError) as error:
                return usage_error(f"spgg bench run {config.name}", error)
    for config, path in zip(configs, paths, strict=True):
        agg = load_result(path, splits_dir=args.splits_dir, allow_partial=True)["header"][
            "aggregates"]
        print(f"{config.name}: score {agg['score']:.3f} {agg['score_ci95']}, "
              f"{agg['tokens_per_problem']:.0f} tokens/problem -> {path}")
    return 0


def _leaderboard(args: argparse.Namespace) -> int:
    from spgg_env.baselines.board_costs import cost_file_for, load_cost_file
    from spgg_env.baselines.leaderboard import write_board

    for path in args.results:
        if not path.exists():
            return usage_error("spgg bench leaderboard", f"no such results folder: {str(path)!r}")
    if args.splits_dir is not None and not args.splits_dir.is_dir():
        return usage_error("spgg bench leaderboard",
                           f"--splits-dir {str(args.splits_dir)!r} is not a folder")
    dirs = result_dirs(args.results)
    if not dirs:
        return usage_error("spgg bench leaderboard",
                           f"no result folders (with {RESULT_FILE}) in "
                           f"{[str(p) for p in args.results]}")
    costs: dict[str, dict[str, str]] = {}
    for cost_file in filter(Path.is_file, map(cost_file_for, args.results)):
        try:
            costs.update(load_cost_file(cost_file))
        except ValueError as error:
            return usage_error("spgg bench leaderboard", str(error))
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
    for written in write_board(results, args.out, costs=costs):
        print(written)
    return 0


def main(args: argparse.Namespace) -> int:
    """Dispatch ``spgg bench run`` / ``spgg bench leaderboard``; returns the exit status."""
    if args.bench_command == "run":
        return _run(args)
    return _leaderboard(args)
