"""What each board row cost (spgg_env.baselines.board_costs): which source wins, and the totals."""

from __future__ import annotations

import pytest

from spgg_env.baselines.board_costs import cost_file_for, cost_table, load_cost_file

MACHINE = "x86_64 Linux, 2 CPUs, test CPU"


def result(row: str, machine: str = MACHINE, **timing: float) -> dict:
    return {"path": f"/results/board-x/{row}", "header": {
        "aggregates": {"score_ci95": [0.1, 0.3], "n_problems": 150, "tokens_per_problem": 9.0,
                       "score": 0.2},
        "seeds": [0], "git": {"commit": "abcdef0123"},
        "timing": {"wall_s": 50.0, "machine": machine, **timing}}}


def rows(table: str) -> dict[str, list[str]]:
    return {line.split("`")[1]: line.split(" | ") for line in table.splitlines()
            if line.startswith("| `")}


def test_the_cost_file_then_the_results_process_figures_then_the_episodes_cpu():
    results = [result("timed", cpu_s=40.0),  # measured from outside: the cost file wins
               result("recorded", cpu_s=40.0, process_cpu_s=61.4, peak_rss_mib=1200.2),
               result("old", cpu_s=40.0)]  # neither: the episodes' own CPU, marked
    costs = {"timed": {"user_cpu_s": "100", "system_cpu_s": "3", "max_rss_mib": "900"}}
    table = cost_table(results, costs)
    got = rows(table)
    assert got["timed"][3:6] == ["103", "50", "900"]
    assert got["recorded"][3:6] == ["61", "50", "1200"]
    assert got["old"][3:6] == ["40*", "50", "-"]
    assert f"**{MACHINE}**: 3 rows, 204 CPU s (0.06 core-hours)" in table


def test_machines_are_totalled_apart():
    table = cost_table([result("a", process_cpu_s=3600.0, peak_rss_mib=1.0),
                        result("b", machine="a GPU box", process_cpu_s=7200.0, peak_rss_mib=1.0)],
                       {})
    assert f"**{MACHINE}**: 1 rows, 3,600 CPU s (1.00 core-hours)" in table
    assert "**a GPU box**: 1 rows, 7,200 CPU s (2.00 core-hours)" in table


def test_cost_file_is_beside_the_results_and_refuses_a_row_twice(tmp_path):
    assert cost_file_for(tmp_path / "board-v1") == tmp_path / "board-v1-costs.tsv"
    path = tmp_path / "c.tsv"
    path.write_text("row\tuser_cpu_s\nx\t1\nx\t2\n")
    with pytest.raises(ValueError, match="names row 'x' twice"):
        load_cost_file(path)
    path.write_text("name\tcpu\nx\t1\n")
    with pytest.raises(ValueError, match=r"lacks the column\(s\) \['row', 'user_cpu_s'\]"):
        load_cost_file(path)
