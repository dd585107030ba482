"""The ``spgg`` dispatcher: every documented subcommand, a fast ``--help`` that imports none of
them, ``--version``, help on every flag, and one-line errors."""

from __future__ import annotations

import subprocess
import sys

import pytest

import spgg_env
from spgg_env import cli


@pytest.mark.parametrize(
    "argv, command",
    [
        (["run", "--task", "arith", "--episodes", "2"], "run"),
        (["bench", "run", "benchmarks/configs/mmlu-cot.yaml"], "bench"),
        (["bench", "leaderboard", "leaderboard/results", "--out", "x"], "bench"),
        (["train", "ppo", "--updates", "1"], "train"),
        (["train", "genparam", "--updates", "1"], "train"),
    ],
)
def test_documented_commands_parse(argv: list[str], command: str) -> None:
    args = cli.build_parser(command).parse_args(argv)
    assert args.command == command
    assert callable(args.func)


def test_help_lists_every_subcommand_without_importing_any() -> None:
    code = ("import sys; from spgg_env import cli; cli.build_parser().format_help(); "
            "print(sorted(m for m in ('torch', 'transformers', 'spgg_env.agents.run_job', "
            "'spgg_env.baselines.bench_cli', 'spgg_env.agents.train_cli', "
            "'spgg_env.baselines.learner_board') if m in sys.modules))")
    imported = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                              check=True).stdout.strip()
    assert imported == "[]"
    text = cli.build_parser().format_help()
    for name, (_, summary) in cli.SUBCOMMANDS.items():
        assert name in text and " ".join(summary.split()[:4]) in " ".join(text.split())


def test_each_subcommand_registers_the_summary_the_help_lists() -> None:
    for name, (_, summary) in cli.SUBCOMMANDS.items():
        parser = cli.build_parser(name)
        (subparsers,) = [a for a in parser._actions if a.dest == "command"]
        helps = {a.dest: a.help for a in subparsers._choices_actions}
        assert helps[name] == summary


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        cli.main(["--version"])
    assert info.value.code == 0
    assert capsys.readouterr().out.strip() == f"spgg {spgg_env.__version__}"


@pytest.mark.parametrize("command", sorted(cli.SUBCOMMANDS))
def test_every_flag_has_plain_help(command: str) -> None:
    assert cli.flag_problems(cli.build_parser(command)) == []


def test_flag_problems_finds_missing_help_and_markup() -> None:
    import argparse

    parser = argparse.ArgumentParser(description="uses ``markup``")
    parser.add_argument("--bare")
    parser.add_argument("--fine", help="plain words")
    problems = cli.flag_problems(parser, "x")
    assert problems == ["x --bare: no help text",
                        "x description: reStructuredText markup in 'uses ``markup``'"]


def test_unknown_learner_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        cli.build_parser("train").parse_args(["train", "sarsa"])
    assert "invalid choice: 'sarsa'" in capsys.readouterr().err


def test_a_subcommand_that_cannot_load_is_one_line_and_exit_2(monkeypatch, capsys) -> None:
    monkeypatch.setitem(cli.SUBCOMMANDS, "run", ("spgg_env.no_such_module", "play"))
    assert cli.main(["run"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("spgg run: error: this command cannot load") and "\n" not in err
