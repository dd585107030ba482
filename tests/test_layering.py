"""The import contracts of pyproject.toml hold: the core never imports agents or baselines.

``agents/`` and ``baselines/`` install as ``spgg_env.agents`` and ``spgg_env.baselines`` (see
pyproject's package-dir), a layout import-linter cannot see in the source tree. The test stages
the installed layout in a temporary folder and runs ``lint-imports`` on it.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import tomllib

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def _stage(tmp_path: Path) -> Path:
    """Copy the packages into ``tmp_path`` as they install (pyproject's package-dir)."""
    mapping = PYPROJECT["tool"]["setuptools"]["package-dir"]
    for package, folder in sorted(mapping.items(), key=lambda item: item[0].count(".")):
        target = tmp_path.joinpath(*package.split("."))
        shutil.copytree(ROOT / folder, target, dirs_exist_ok=True,
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


def test_import_contracts_hold(tmp_path):
    lint = shutil.which("lint-imports", path=str(Path(sys.executable).parent))
    if lint is None:
        pytest.skip("import-linter is not installed (pip install -e '.[dev]')")
    staged = _stage(tmp_path)
    result = subprocess.run(
        [lint, "--no-cache"], cwd=staged, capture_output=True, text=True,
        env={"PYTHONPATH": str(staged), "PATH": "/usr/bin:/bin"}, timeout=120,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert "broken" in result.stdout and " 0 broken" in result.stdout


def test_every_core_module_is_under_the_core_contract():
    """A new core module cannot slip past the contract by not being listed."""
    contract = PYPROJECT["tool"]["importlinter"]["contracts"][0]
    listed = set(contract["source_modules"])
    core = ROOT / "spgg_env"
    found = {
        f"spgg_env.{path.relative_to(core).parts[0].removesuffix('.py')}"
        for path in core.glob("*")
        if (path.suffix == ".py" or (path / "__init__.py").exists())
        and not path.name.startswith("_")
    }
    # cli.py is the application entry point: it dispatches to every layer by name.
    assert found - {"spgg_env.cli"} <= listed, sorted(found - {"spgg_env.cli"} - listed)
