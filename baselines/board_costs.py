"""What each board row cost: CPU seconds, wall seconds and peak memory, per machine.

A row's CPU seconds and peak memory are those of the whole ``spgg bench run`` command, model
load included, taken from the first source that has them:

1. the row's line in a cost file (``<results>-costs.tsv`` beside a results folder, tab-separated
   ``row, user_cpu_s, system_cpu_s, process_wall_s, max_rss_mib``: ``/usr/bin/time``'s figures,
   as board-v1 was measured); CPU = user + system;
2. the result's own ``timing.process_cpu_s`` and ``timing.peak_rss_mib`` (every run in one
   process records them);
3. ``timing.cpu_s``, the episodes' CPU seconds only (model load excluded), marked ``*``.

Wall seconds are the run's own (``timing.wall_s``). Rows are grouped by the machine their result
names, each group with its total: CPU times of different machines are not added up.
"""

from __future__ import annotations

import csv
from collections import defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

#: The cost file beside a results folder ``X`` is ``X-costs.tsv``.
COST_FILE_SUFFIX = "-costs.tsv"


def cost_file_for(results_dir: str | Path) -> Path:
    """Where a results folder's cost file is (it may not exist)."""
    folder = Path(results_dir)
    return folder.with_name(folder.name + COST_FILE_SUFFIX)


def load_cost_file(path: str | Path) -> dict[str, dict[str, str]]:
    """``row -> {column: value}`` from a tab-separated cost file.

    Raises:
        ValueError: If the file lacks the ``row`` or ``user_cpu_s`` column, or names a row twice.
    """
    with Path(path).open(encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle, delimiter="\t")
        missing = {"row", "user_cpu_s"} - set(reader.fieldnames or ())
        if missing:
            raise ValueError(f"cost file {str(path)!r} lacks the column(s) {sorted(missing)}")
        costs: dict[str, dict[str, str]] = {}
        for line in reader:
            if line["row"] in costs:
                raise ValueError(f"cost file {str(path)!r} names row {line['row']!r} twice")
            costs[line["row"]] = line
    return costs


def row_cost(timing: Mapping[str, Any], line: Mapping[str, str] | None
             ) -> tuple[float | None, float | None, bool]:
    """``(cpu_s, peak_mib, episodes_only)`` of one row (see the module docstring)."""
    if line and line.get("user_cpu_s"):
        peak = line.get("max_rss_mib")
        return (float(line["user_cpu_s"]) + float(line.get("system_cpu_s") or 0),
                float(peak) if peak else None, False)
    if "process_cpu_s" in timing:
        return float(timing["process_cpu_s"]), float(timing["peak_rss_mib"]), False
    if "cpu_s" in timing:
        return float(timing["cpu_s"]), None, True
    return None, None, False


def cost_table(results: Sequence[Mapping[str, Any]],
               costs: Mapping[str, Mapping[str, str]]) -> str:
    """A Markdown table of every result's cost, one section per machine, with totals.

    Args:
        results: Loaded results (``{"path", "header", ...}``); a row is named by its folder.
        costs: Cost-file lines by row name (:func:`load_cost_file`).
    """
    by_machine: dict[str, list[str]] = defaultdict(list)
    totals: dict[str, float] = defaultdict(float)
    for result in sorted(results, key=lambda r: Path(r["path"]).name):
        row, header = Path(result["path"]).name, result["header"]
        timing, agg = header["timing"], header["aggregates"]
        cpu, peak, episodes_only = row_cost(timing, costs.get(row))
        machine = timing["machine"]
        totals[machine] += cpu or 0.0
        cpu_text = "-" if cpu is None else f"{cpu:.0f}" + ("*" if episodes_only else "")
        low, high = agg["score_ci95"]
        by_machine[machine].append(
            f"| `{row}` | {header['git']['commit'][:7]} | {agg['n_problems']} x "
            f"{len(header['seeds'])} | {cpu_text} | {timing['wall_s']:.0f} | "
            f"{'-' if peak is None else f'{peak:.0f}'} | {agg['tokens_per_problem']:.0f} | "
            f"{agg['score']:.3f} [{low:.3f}, {high:.3f}] |")
    parts = ["# What each row cost", "",
             "CPU s and peak MiB: the whole `spgg bench run` command, model load included "
             "(`*`: the episodes' CPU only); wall s: the run's episodes. Sources and rules: "
             "`spgg_env/baselines/board_costs.py`.", ""]
    for machine, lines in by_machine.items():
        parts += [f"**{machine}**: {len(lines)} rows, {totals[machine]:,.0f} CPU s "
                  f"({totals[machine] / 3600:.2f} core-hours)", "",
                  "| row | commit | problems x seeds | CPU s | wall s | peak MiB | "
                  "tokens/problem | score [95% CI] |",
                  "|---|---|---|---|---|---|---|---|", *lines, ""]
    return "\n".join(parts)
