"""What each board row cost, as a Markdown table for docs/benchmark.md.

Joins the board's result files (``<results>/<row>/result.json``: machine, commit, problems,
seeds, tokens, score) with the CPU time of each ``spgg bench run`` command, model load included:
the cost file's line for the row when there is one (``<results>-costs.tsv``: ``/usr/bin/time``'s
user plus system CPU seconds, wall seconds and peak resident memory, as board-v1 was measured),
else the result's own ``timing.process_cpu_s`` and ``timing.peak_rss_mib`` (recorded by every
run in one process since they were added), else ``timing.cpu_s`` (the episodes' CPU seconds,
model load excluded), marked ``*``::

    python benchmarks/board_costs.py leaderboard/results/board-v1

Rows are grouped by the machine their result file names, with a total per machine.
"""

from __future__ import annotations

import argparse
import csv
import json
from collections import defaultdict
from pathlib import Path


def load_costs(path: Path) -> dict[str, dict[str, str]]:
    """``row -> {column: value}`` from the tab-separated cost file."""
    with path.open(encoding="utf-8", newline="") as handle:
        return {line["row"]: line for line in csv.DictReader(handle, delimiter="\t")}


def table(results_dir: Path, costs: dict[str, dict[str, str]]) -> str:
    """The Markdown table, one section per machine."""
    by_machine: dict[str, list[str]] = defaultdict(list)
    totals: dict[str, float] = defaultdict(float)
    for result_file in sorted(results_dir.glob("*/result.json")):
        row = result_file.parent.name
        result = json.loads(result_file.read_text(encoding="utf-8"))
        agg = result["aggregates"]
        cost = costs.get(row, {})
        timing = result["timing"]
        machine = timing["machine"]
        cpu = (f"{float(cost['user_cpu_s']) + float(cost.get('system_cpu_s') or 0):.0f}"
               if cost.get("user_cpu_s") else "")
        peak = cost.get("max_rss_mib") or ""
        if not cpu and "process_cpu_s" in timing:
            cpu, peak = f"{timing['process_cpu_s']:.0f}", f"{timing['peak_rss_mib']:.0f}"
        if cpu:
            totals[machine] += float(cpu)
        elif "cpu_s" in timing:
            totals[machine] += timing["cpu_s"]
            cpu = f"{timing['cpu_s']:.0f}*"
        low, high = agg["score_ci95"]
        by_machine[machine].append(
            f"| `{row}` | {result['git']['commit'][:7]} | {agg['n_problems']} x "
            f"{len(result['seeds'])} | {cpu or '-'} | {timing['wall_s']:.0f} | "
            f"{peak or '-'} | {agg['tokens_per_problem']:.0f} | "
            f"{agg['score']:.3f} [{low:.3f}, {high:.3f}] |")
    parts = []
    for machine, lines in by_machine.items():
        parts += [f"**{machine}**: {len(lines)} rows, {totals[machine]:,.0f} CPU s "
                  f"({totals[machine] / 3600:.2f} core-hours)", "",
                  "| row | commit | problems x seeds | CPU s | wall s | peak MiB | "
                  "tokens/problem | score [95% CI] |",
                  "|---|---|---|---|---|---|---|---|", *lines, ""]
    return "\n".join(parts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("results", type=Path, help="a board's results folder")
    parser.add_argument("--costs", type=Path, help="cost file (default: <results>-costs.tsv)")
    args = parser.parse_args()
    costs_path = args.costs or args.results.with_name(args.results.name + "-costs.tsv")
    print(table(args.results, load_costs(costs_path) if costs_path.is_file() else {}))


if __name__ == "__main__":
    main()
