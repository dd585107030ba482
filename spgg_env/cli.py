"""The ``spgg`` console command: a dispatcher of subcommands.

Each subcommand lives in its own module, which defines
``add_parser(subparsers) -> argparse.ArgumentParser`` and sets ``func`` (``args -> exit code``)
with ``parser.set_defaults(func=...)``. Adding a subcommand is one line in :data:`SUBCOMMANDS`.
A module that fails to import (a missing optional dependency) leaves its subcommand out with a
note in ``spgg --help`` instead of breaking the others.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

#: Subcommand name -> module that defines ``add_parser``.
SUBCOMMANDS: dict[str, str] = {
    "run": "spgg_env.agents.run_job",
    "bench": "spgg_env.baselines.bench_cli",
    "train": "spgg_env.agents.train_cli",
    "learners": "spgg_env.baselines.learner_board",
}


def build_parser() -> argparse.ArgumentParser:
    """The ``spgg`` parser with every subcommand that imports."""
    parser = argparse.ArgumentParser(
        prog="spgg", description="Sequential public goods games between LLM agents (MAC-SPGG)."
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    missing = []
    for name, module in SUBCOMMANDS.items():
        try:
            importlib.import_module(module).add_parser(subparsers)
        except ImportError as exc:
            missing.append(f"{name} ({exc})")
    if missing:
        parser.epilog = "unavailable: " + "; ".join(missing)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv`` (default: ``sys.argv[1:]``) and run the chosen subcommand."""
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
