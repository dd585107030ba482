"""Peak memory and CPU of the default main job, repeated, under optional environment settings.

Runs the main job as the README does (``spgg run --threads 1``: default ensemble, easy arith,
10 PO + 10 FO episodes) ``--rounds`` times per setting, settings in turn, each run a fresh
process. A setting is ``NAME`` or ``NAME:KEY=VALUE[,KEY=VALUE...]``, environment variables
added for its runs (e.g. glibc's ``MALLOC_MMAP_THRESHOLD_``). Per run it records the peak RSS
and CPU time (``os.wait4``) and a hash of every contribution's text, so that settings can be
checked to play the same game and the spread of identical runs is visible.

    python benchmarks/main_job_peak.py --rounds 2 --settings default \\
        mmap128k:MALLOC_MMAP_THRESHOLD_=131072,MALLOC_TRIM_THRESHOLD_=131072 \\
        --out benchmarks/results/main_job_peak.json
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path


def parse_setting(text: str) -> tuple[str, dict[str, str]]:
    """``NAME[:KEY=VALUE,...]`` -> (name, environment additions)."""
    name, _, pairs = text.partition(":")
    env = dict(pair.split("=", 1) for pair in pairs.split(",") if pair)
    return name, env


def run_once(env_add: dict[str, str], out: Path) -> dict:
    """One ``spgg run --threads 1`` into ``out``; its peak RSS, CPU time and texts."""
    shutil.rmtree(out, ignore_errors=True)
    process = subprocess.Popen(
        [shutil.which("spgg") or "spgg", "run", "--threads", "1", "--no-progress",
         "--out", str(out)], env={**os.environ, **env_add},
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(process.pid, 0)
    stderr = process.stderr.read().decode() if process.stderr else ""
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"spgg run failed:\n{stderr[-2000:]}")
    texts = hashlib.sha256()
    with open(out / "transcripts.jsonl", encoding="utf-8") as lines:
        for line in lines:
            record = json.loads(line)
            texts.update(json.dumps([a["contribution"] for a in record["agents"]]).encode())
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    return {
        "peak_rss_mib": round(usage.ru_maxrss / 1024, 1),
        "cpu_s": round(usage.ru_utime + usage.ru_stime, 1),
        "texts_sha256": texts.hexdigest()[:16],
        "group_score": {mode: summary["observations"][mode]["group_score_mean"]
                        for mode in summary["observations"]},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--settings", nargs="+", default=["default"],
                        help="NAME or NAME:KEY=VALUE,... (environment added for its runs)")
    parser.add_argument("--rounds", type=int, default=2, help="runs per setting, in turn")
    parser.add_argument("--out", type=Path, default=None, help="write the rows here (JSON)")
    args = parser.parse_args()
    settings = [parse_setting(s) for s in args.settings]
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for round_ in range(args.rounds):
            for name, env_add in settings:
                row = {"setting": name, "env": env_add, "round": round_,
                       **run_once(env_add, Path(folder) / "run")}
                rows.append(row)
                print(json.dumps(row), flush=True)
    if args.out:
        from spgg_env.provenance import environment

        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"rows": rows, "provenance": environment()}, indent=1)
                            + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
