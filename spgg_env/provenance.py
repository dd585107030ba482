"""What every run writes next to its results: code version, package versions, platform.

``spgg run``, ``spgg bench run``, ``spgg train ppo`` and ``spgg train genparam`` all record
:func:`environment` (and the task's split hash, which each adds) so a result says exactly which
code, libraries and data produced it.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

#: The repository holding this package (for the git commit of an editable install).
REPO_ROOT = Path(__file__).resolve().parents[1]

#: Packages whose versions change results.
PACKAGES = ("spgg-env", "torch", "transformers", "peft", "pettingzoo", "gymnasium", "numpy")


def package_versions(packages: tuple[str, ...] = PACKAGES) -> dict[str, str | None]:
    """Installed version of each package (``None`` when it is not installed)."""
    versions: dict[str, str | None] = {}
    for name in packages:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def git_commit() -> dict[str, Any]:
    """HEAD of the repository and whether tracked files have uncommitted changes.

    Returns ``{"commit": None, "dirty": None}`` outside a git checkout (an installed wheel).
    """
    try:
        head = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True,
            timeout=10, check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO_ROOT,
            capture_output=True, text=True, timeout=10, check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}
    return {"commit": head, "dirty": bool(dirty)}


def environment() -> dict[str, Any]:
    """Package versions, Python, platform, git commit and the command line."""
    return {
        "packages": package_versions(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "git": git_commit(),
        "command": list(sys.argv),
    }


def file_sha256(path: str | Path) -> str:
    """SHA-256 (hex) of a file's bytes, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
