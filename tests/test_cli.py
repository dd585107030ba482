"""The ``spgg`` dispatcher exposes every subcommand the README documents."""

import pytest

from spgg_env import cli


@pytest.mark.parametrize(
    "argv, command",
    [
        (["run", "--task", "arith", "--episodes", "2"], "run"),
        (["bench", "leaderboard", "leaderboard/results", "--out", "x"], "bench"),
        (["train", "ppo", "--updates", "1"], "train"),
        (["train", "genparam", "--updates", "1"], "train"),
    ],
)
def test_documented_commands_parse(argv: list[str], command: str) -> None:
    args = cli.build_parser().parse_args(argv)
    assert args.command == command
    assert callable(args.func)


def test_every_subcommand_imports() -> None:
    parser = cli.build_parser()
    assert parser.epilog is None, parser.epilog  # a subcommand that failed to import is listed


def test_unknown_learner_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        cli.build_parser().parse_args(["train", "sarsa"])
    assert "invalid choice: 'sarsa'" in capsys.readouterr().err
