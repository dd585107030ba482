"""The ``spgg`` console command: a dispatcher of subcommands, each imported only when it runs.

``spgg --help`` lists every subcommand with its one-line summary (:data:`SUBCOMMANDS`) without
importing any of them: their modules pull in torch and transformers, which take seconds to
import. ``spgg COMMAND ...`` imports that command's module, which defines
``add_parser(subparsers) -> argparse.ArgumentParser`` and sets ``func`` (``args -> exit code``)
with ``parser.set_defaults(func=...)``. Adding a subcommand is one line in :data:`SUBCOMMANDS`.

Conventions every subcommand keeps (:func:`flag_problems` checks the first two):

* every flag has a help text, in plain words (no reStructuredText markup);
* the same flag names for the same things: the game's flags of
  :meth:`spgg_env.spec.GameSpec.add_arguments` (``--task``, ``--task-option KEY=VALUE``,
  ``--n-agents``, ``--observation``, ``--max-tokens`` for the effort budget...),
  ``--max-new-tokens`` (generation cap), ``--batch-size``, ``--seed``, ``--threads``,
  ``--out``, ``--no-progress``;
* bad input (a missing file, an unknown task or method, a bad option) is one line on stderr,
  ``spgg COMMAND: error: ...``, and exit status 2 (:func:`usage_error`), found before any
  model loads.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from spgg_env import __version__

#: Subcommand name -> (module that defines ``add_parser``, one-line summary).
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "run": ("spgg_env.agents.run_job",
            "play episodes with an LLM ensemble; write transcripts and a summary"),
    "bench": ("spgg_env.baselines.bench_cli",
              "run benchmark submissions; verify results and build the leaderboard"),
    "train": ("spgg_env.agents.train_cli", "train LLM agents in the game"),
    "learners": ("spgg_env.baselines.learner_board",
                 "rank learners on the scalar game: run them, then write the board"),
    "text-learners": ("spgg_env.baselines.text_learner_board",
                      "rank text-game learners on easy arith: run them, then write the board"),
}


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The ``spgg`` parser; only ``command``'s module is imported (its full parser), the
    others are listed by their summary.

    Raises:
        ImportError: If ``command``'s module cannot be imported.
    """
    parser = argparse.ArgumentParser(
        prog="spgg", description="Sequential public goods games between LLM agents (MAC-SPGG).",
        epilog="Run 'spgg COMMAND --help' for a command's options.",
    )
    parser.add_argument("--version", action="version", version=f"spgg {__version__}",
                        help="show the package version and exit")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (module, summary) in SUBCOMMANDS.items():
        if name == command:
            importlib.import_module(module).add_parser(subparsers)
        else:
            subparsers.add_parser(name, help=summary, description=summary)
    return parser


def usage_error(prog: str, error: BaseException | str) -> int:
    """Report bad input as one line, ``<prog>: error: <message>``, on stderr; return 2."""
    message = " ".join(str(error).split())
    print(f"{prog}: error: {message}", file=sys.stderr)
    return 2


def flag_problems(parser: argparse.ArgumentParser, prefix: str = "spgg") -> list[str]:
    """Every flag without a help text, and every help text or description with
    reStructuredText markup (double backquotes), in ``parser`` and its subcommands."""
    problems = []
    texts = [(f"{prefix} description", parser.description or "")]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                problems += flag_problems(sub, f"{prefix} {name}")
            texts += [(f"{prefix} {a.dest}", a.help or "") for a in action._choices_actions]
            continue
        if action.help == argparse.SUPPRESS:
            continue
        label = f"{prefix} {'/'.join(action.option_strings) or action.dest}"
        if not action.help:
            problems.append(f"{label}: no help text")
        texts.append((label, action.help or ""))
    problems += [f"{label}: reStructuredText markup in {text!r:.60}" for label, text in texts
                 if "``" in text]
    return problems


def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv`` (default: ``sys.argv[1:]``) and run the chosen subcommand."""
    argv = list(sys.argv[1:] if argv is None else argv)
    command = next((a for a in argv if not a.startswith("-")), None)
    command = command if command in SUBCOMMANDS else None
    try:
        parser = build_parser(command)
    except ImportError as error:
        return usage_error(f"spgg {command}", f"this command cannot load: {error}")
    args = parser.parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
