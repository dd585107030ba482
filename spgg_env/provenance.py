"""What every run writes next to its results: code version, package versions, platform.

``spgg run``, ``spgg bench run``, ``spgg train ppo`` and ``spgg train genparam`` all record
:func:`environment` (and the task's split hash, which each adds) so a result says exactly which
code, libraries and data produced it.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.metadata
import os
import platform
import resource
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


@functools.cache
def cpu_info() -> dict[str, Any]:
    """The CPU's model name and the instruction sets that change speed or numerics.

    Read from ``/proc/cpuinfo`` (empty name and no flags where it does not exist). ``avx512``:
    AVX-512 foundation; ``native_bf16``: ``avx512_bf16`` or ``amx_bf16``, without which torch
    emulates bfloat16 products (slower than float32, and rounded differently, so the same seed
    in bfloat16 writes other texts on a CPU with and one without it).
    """
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        text = ""
    fields = dict(line.split(":", 1) for line in text.splitlines() if ":" in line)
    fields = {key.strip(): value.strip() for key, value in fields.items()}
    flags = set((fields.get("flags") or fields.get("Features") or "").split())
    return {"model": fields.get("model name", ""), "avx512": "avx512f" in flags,
            "native_bf16": bool(flags & {"avx512_bf16", "amx_bf16"})}


def machine_description() -> str:
    """One line naming the hardware a run's timings belong to, e.g.
    ``x86_64 Linux, 2 CPUs, Intel(R) Xeon(R) Processor, AVX-512, native bf16``."""
    cpu = cpu_info()
    parts = [f"{platform.machine()} {platform.system()}", f"{os.cpu_count()} CPUs"]
    parts += [cpu["model"]] if cpu["model"] else []
    parts += ["AVX-512"] if cpu["avx512"] else []
    parts.append("native bf16" if cpu["native_bf16"] else "no native bf16")
    return ", ".join(parts)


def process_usage() -> dict[str, float]:
    """What this process has used so far, as ``/usr/bin/time`` reports a whole command.

    ``process_cpu_s``: user + system CPU seconds of this process and of its finished children
    (e.g. the sandbox's code runs), since it started: imports and model load included.
    ``peak_rss_mib``: the high-water mark of this process's resident memory (``ru_maxrss``).
    """
    own, children = (resource.getrusage(who) for who in (resource.RUSAGE_SELF,
                                                         resource.RUSAGE_CHILDREN))
    cpu = own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime
    return {"process_cpu_s": cpu, "peak_rss_mib": own.ru_maxrss / 1024}


def environment() -> dict[str, Any]:
    """Package versions, Python, platform, machine, git commit and the command line."""
    return {
        "packages": package_versions(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "machine": machine_description(),
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
