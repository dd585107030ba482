"""The task board: merged seeds, paired comparisons, failed calls, the page and its plots."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from bench_toys import arith_setup

from spgg_env.agents.backend import Generation
from spgg_env.baselines.bench_config import BenchConfig
from spgg_env.baselines.bench_results import (
    EPISODES_FILE,
    RESULT_FILE,
    ResultError,
    failed_calls,
    load_result,
    records_hash,
)
from spgg_env.baselines.bench_run import run_benchmark
from spgg_env.baselines.leaderboard import (
    METHOD_COLOURS,
    board_rows,
    colour,
    decoding_text,
    merge_submissions,
    paired_comparison,
    probability_of_improvement,
    separated_pairs,
    setup_text,
    submission_label,
    versus_chance,
    write_board,
)
from spgg_env.splits import pin_splits


# ----------------------------------------------------------------------------- statistics
def test_probability_of_improvement_is_rliables_pairwise_statistic():
    assert probability_of_improvement([1, 1], [0, 0]) == 1.0
    assert probability_of_improvement([0, 0], [1, 1]) == 0.0
    assert probability_of_improvement([1, 0], [1, 0]) == 0.5  # ties count one half
    # brute force over all pairs on random data with ties
    rng = np.random.default_rng(0)
    x, y = rng.integers(0, 4, 40) / 3, rng.integers(0, 4, 35) / 3
    brute = np.mean([[1.0 if a > b else 0.5 if a == b else 0.0 for b in y] for a in x])
    assert probability_of_improvement(x, y) == pytest.approx(brute)
    with pytest.raises(ValueError, match="both sides"):
        probability_of_improvement([], [1.0])


def test_paired_comparison_pairs_problems_by_uid():
    x = {"a": 1.0, "b": 1.0, "c": 0.0, "d": 1.0, "only-x": 1.0}
    y = {"d": 0.0, "c": 0.0, "b": 0.0, "a": 0.0, "only-y": 1.0}
    result = paired_comparison(x, y, samples=200, seed=1)
    assert result["n"] == 4  # only the shared problems
    assert result["diff"] == pytest.approx(0.75)
    low, high = result["diff_ci95"]
    assert 0.0 <= low <= 0.75 <= high <= 1.0
    assert result["p_improve"] == pytest.approx(probability_of_improvement([1, 1, 0, 1],
                                                                           [0, 0, 0, 0]))
    assert result == paired_comparison(x, y, samples=200, seed=1)  # seeded
    with pytest.raises(ValueError, match="share no problem"):
        paired_comparison({"a": 1.0}, {"b": 1.0})


def test_paired_interval_is_narrower_than_unpaired_when_problems_drive_the_score():
    rng = np.random.default_rng(3)
    hard = rng.random(150)  # problem difficulty shared by both methods
    x = {str(i): float(h > 0.4) for i, h in enumerate(hard)}
    y = {str(i): float(h > 0.5) for i, h in enumerate(hard)}  # X solves a superset of Y
    result = paired_comparison(x, y, samples=500)
    assert result["separated"] and result["diff_ci95"][0] > 0
    same = paired_comparison(x, x, samples=500)
    assert same["diff_ci95"] == [0.0, 0.0] and not same["separated"]
    assert same["p_improve"] == pytest.approx(probability_of_improvement(list(x.values()),
                                                                         list(x.values())))


def test_bootstrap_of_p_improve_brackets_the_point_value():
    rng = np.random.default_rng(5)
    x = {str(i): float(v) for i, v in enumerate(rng.random(60) > 0.3)}
    y = {str(i): float(v) for i, v in enumerate(rng.random(60) > 0.6)}
    result = paired_comparison(x, y, samples=400)
    low, high = result["p_improve_ci95"]
    assert low < result["p_improve"] < high and 0.0 <= low and high <= 1.0


# ----------------------------------------------------------------------------- labels
def test_submission_label_drops_task_prefix_and_seed_suffix():
    assert submission_label("arith-debate-seed2", "arith") == "debate"
    assert submission_label("mmlu-zero-shot", "mmlu") == "zero-shot"
    assert submission_label("mmlu-seedy", "mmlu") == "seedy"
    assert submission_label("custom", "gsm8k") == "custom"


def test_decoding_text_names_greedy_sampling_and_method_temperature():
    config = {"decoding": {"temperature": 0.0, "max_new_tokens": 48},
              "method_options": {"samples": 3, "temperature": 0.7}}
    assert decoding_text(config) == "greedy, 48 new tokens, method samples at T=0.7"
    sampled = {"decoding": {"temperature": 0.5, "top_p": 0.9, "top_k": 0,
                            "repetition_penalty": 1.2, "max_new_tokens": 64}}
    assert decoding_text(sampled) == "T=0.5, top-p 0.9, top-k 0, repetition penalty 1.2, " \
                                     "64 new tokens"


def test_setup_text_names_device_machine_and_versions():
    header = {"backend": {"device": "cuda", "dtype": "bfloat16"},
              "environment": {"packages": {"torch": "2.13.0", "transformers": "4.99"}},
              "timing": {"machine": "x86_64 Linux, 16 CPUs"}}
    assert setup_text(header) == ("cuda bfloat16; x86_64 Linux, 16 CPUs; torch 2.13.0, "
                                  "transformers 4.99")
    header.pop("environment")
    assert setup_text(header).endswith("versions not recorded")


def _lab(hex_colour: str) -> np.ndarray:
    """CIE L*a*b* (D65) of an sRGB colour."""
    rgb = np.array([int(hex_colour[i : i + 2], 16) / 255 for i in (1, 3, 5)])
    linear = np.where(rgb > 0.04045, ((rgb + 0.055) / 1.055) ** 2.4, rgb / 12.92)
    xyz = np.array([[0.4124, 0.3576, 0.1805], [0.2126, 0.7152, 0.0722],
                    [0.0193, 0.1192, 0.9505]]) @ linear / np.array([0.95047, 1.0, 1.08883])
    f = np.where(xyz > 0.008856, np.cbrt(xyz), 7.787 * xyz + 16 / 116)
    return np.array([116 * f[1] - 16, 500 * (f[0] - f[1]), 200 * (f[1] - f[2])])


def test_colours_are_fixed_and_distinct():
    assert len(set(METHOD_COLOURS.values())) == len(METHOD_COLOURS)
    # told apart on a small plot marker: every pair at least 27 apart in CIE76 (2.3 is just
    # noticeable; the two browns this board once had were 26 apart)
    labs = {name: _lab(c) for name, c in METHOD_COLOURS.items()}
    closest = min((float(np.linalg.norm(labs[a] - labs[b])), a, b)
                  for a in labs for b in labs if a < b)
    assert closest[0] >= 27, closest
    assert colour("spgg-po") == METHOD_COLOURS["spgg-po"]
    assert colour("my-new-method") == colour("my-new-method")  # stable for unknown labels
    assert re.fullmatch(r"#[0-9a-f]{6}", colour("my-new-method"))


# ----------------------------------------------------------------------------- real results
def _config(name: str, method: str, seeds=(0,), **options) -> BenchConfig:
    return BenchConfig(name=name, method=method, task="arith", bootstrap_samples=100,
                       task_options={"n_problems": 12}, decoding={"max_new_tokens": 8},
                       seeds=tuple(seeds), method_options=options)


@pytest.fixture
def board_results(tmp_path):
    """zero-shot (1 seed), debate (3 results, one seed each), cot (1 seed): real result files
    from the scripted backend."""
    task, backend = arith_setup()
    splits = pin_splits([task], "small-v1", size=8, splits_dir=tmp_path / "splits")
    configs = [_config("arith-zero-shot", "single_agent"), _config("arith-cot", "cot")]
    configs += [_config(f"arith-debate-seed{s}", "debate", seeds=(s,), temperature=0.7)
                for s in (0, 1, 2)]
    for config in configs:
        run_benchmark(config, tmp_path / "results", backend=backend, task=task,
                      splits_dir=splits.parent, progress=False)
    folder = tmp_path / "results"
    return [load_result(p, splits_dir=splits.parent) for p in sorted(folder.iterdir())], tmp_path


def test_seed_results_merge_into_one_row_with_seeds_averaged_per_problem(board_results):
    results, _ = board_results
    rows = {row["label"]: row for row in board_rows(results)}
    assert sorted(rows) == ["cot", "debate", "zero-shot"]
    debate = rows["debate"]
    assert debate["seeds"] == [0, 1, 2] and debate["n_episodes"] == 24
    assert debate["names"] == ["arith-debate-seed0", "arith-debate-seed1", "arith-debate-seed2"]
    records = [r for res in results if "debate" in res["header"]["config"]["name"]
               for r in res["records"]]
    uid = records[0]["uid"]
    expected = np.mean([r["score"] for r in records if r["uid"] == uid])
    assert debate["scores"][uid] == pytest.approx(expected)
    assert debate["decoding"].endswith("method samples at T=0.7")


def test_rows_compare_with_reference_and_every_other_row(board_results):
    results, _ = board_results
    rows = {row["label"]: row for row in board_rows(results)}
    assert rows["zero-shot"]["vs_reference"] is None
    assert rows["cot"]["vs_spgg"] is None  # no MAC-SPGG row on this board
    got = rows["cot"]["vs_reference"]
    direct = paired_comparison(rows["cot"]["scores"], rows["zero-shot"]["scores"], samples=100)
    assert got == direct
    assert rows["debate"]["versus"]["cot"]["diff"] == pytest.approx(
        -rows["cot"]["versus"]["debate"]["diff"])
    apart, together = separated_pairs(list(rows.values()))
    assert len(apart) + len(together) == 3  # each unordered pair once


def test_merging_refuses_other_configs_and_repeated_seeds(board_results):
    results, _ = board_results
    debate = [r for r in results if "debate" in r["header"]["config"]["name"]]
    changed = json.loads(json.dumps(debate[1]))
    changed["header"]["config"]["decoding"]["max_new_tokens"] = 99
    with pytest.raises(ValueError, match=r"differ in \['decoding'\]"):
        merge_submissions([debate[0], changed])
    with pytest.raises(ValueError, match=r"seed\(s\) \[0\] twice"):
        merge_submissions([debate[0], debate[0]])


def test_rows_from_another_setup_are_marked_and_kept_out_of_timing(board_results, tmp_path):
    results, _ = board_results
    moved = json.loads(json.dumps(results[0]))
    moved["header"]["backend"]["device"] = "cuda"
    rows = board_rows([moved, *results[1:]])
    flagged = [row for row in rows if row["other_setup"]]
    assert [row["names"] for row in flagged] == [[moved["header"]["config"]["name"]]]
    paths = write_board([moved, *results[1:]], tmp_path / "board")
    board = paths[0].read_text()
    assert "other setup †" in board and board.count("other setup †") == 1


def test_board_page_has_every_table_row_legend_and_link(board_results, tmp_path):
    results, root = board_results
    configs = root / "repo" / "benchmarks" / "configs" / "board-x"
    configs.mkdir(parents=True)
    (configs / "arith-cot.yaml").write_text("name: arith-cot\n")
    out = root / "repo" / "leaderboard"
    paths = write_board(results, out, repo_root=root / "repo")
    assert [p.name for p in paths] == ["leaderboard.md", "leaderboard.html", "frontier.png",
                                       "comparisons.png", "costs.md"]
    costs = paths[4].read_text()  # every row, its own recorded cost (no cost file given)
    assert all(f"| `{r['header']['config']['name']}` |" in costs for r in results)
    page = PageParser()
    page.feed(paths[1].read_text())
    assert page.h1 == ["spgg_env task board"]
    assert any(h.startswith("arith (small-v1, 8 problems)") for h in page.h2)
    kinds = {table["data-table"]: table for table in page.tables}
    assert set(kinds) >= {"scores arith", "pairs arith", "provenance arith"}
    labels = {"zero-shot", "cot", "debate"}
    for kind in ("scores arith", "pairs arith", "provenance arith"):
        assert {row["method"] for row in kinds[kind]["rows"]} == labels
    scores = kinds["scores arith"]
    assert "Δ vs zero-shot [95% CI]" in scores["header"] and "P(X>spgg-po)" in scores["header"]
    for row in scores["rows"]:  # the swatch has the method's fixed colour
        assert row["swatch"] == METHOD_COLOURS[row["method"]]
    glossary = {row["method"]: row["swatch"] for row in page.glossary}
    assert glossary == {label: METHOD_COLOURS[label] for label in labels}
    provenance = {row["method"]: row for row in kinds["provenance arith"]["rows"]}
    assert provenance["cot"]["links"] == ["../benchmarks/configs/board-x/arith-cot.yaml"]
    assert provenance["debate"]["links"] == [  # no YAML: the result file holds the config
        f"../../results/arith-debate-seed{s}/result.json" for s in (0, 1, 2)]
    assert provenance["debate"]["cells"][2] == "0, 1, 2"
    assert set(page.images) == {"frontier.png", "comparisons.png"}
    for image in page.images:
        assert (out / image).stat().st_size > 10_000
    assert (out / "frontier.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_mmlu_board_draws_the_chance_line(board_results, tmp_path):
    results, _ = board_results
    for result in results:  # relabel the toy task as MMLU: the board then names its chance
        result["header"]["config"]["task"] = "mmlu"
        result["header"]["config"]["name"] = result["header"]["config"]["name"].replace(
            "arith", "mmlu")
    board = write_board(results, tmp_path / "b")[0].read_text()
    assert "chance: 0.25 (4 options)" in board and "## mmlu" in board
    rows = board_rows(results)
    assert versus_chance(rows) == [f"{row['label']} " + (
        "above" if row["score_ci95"][0] > 0.25 else
        "below" if row["score_ci95"][1] < 0.25 else "not separated from") + " chance"
        for row in rows]
    low = [{**rows[0], "score_ci95": [0.05, 0.14]}, {**rows[0], "label": "x",
                                                      "score_ci95": [0.2, 0.3]}]
    assert versus_chance(low) == [f"{rows[0]['label']} below chance",
                                  "x not separated from chance"]
    assert versus_chance([{**rows[0], "task": "arith"}]) == []


class PageParser(HTMLParser):
    """Collects the board page's headings, images, glossary and tables (rows by method)."""

    def __init__(self) -> None:
        super().__init__()
        self.h1: list[str] = []
        self.h2: list[str] = []
        self.images: list[str] = []
        self.tables: list[dict] = []
        self.glossary: list[dict] = []
        self._heading: str | None = None
        self._table: dict | None = None
        self._row: dict | None = None
        self._cell: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag in ("h1", "h2"):
            self._heading = tag
            getattr(self, tag).append("")
        elif tag == "img":
            self.images.append(attrs["src"])
        elif tag == "table":
            self._table = {"data-table": attrs.get("data-table", attrs.get("class")),
                           "header": [], "rows": []}
        elif tag == "tr" and self._table is not None:
            self._row = {"method": attrs.get("data-method"), "cells": [], "links": [],
                         "swatch": None}
        elif tag in ("td", "th"):
            self._cell = []
        elif tag == "span" and "swatch" in attrs.get("class", "") and self._row is not None:
            self._row["swatch"] = attrs["style"].removeprefix("background:")
        elif tag == "a" and self._row is not None:
            self._row["links"].append(attrs["href"])

    def handle_endtag(self, tag):
        if tag in ("h1", "h2"):
            self._heading = None
        elif tag in ("td", "th") and self._cell is not None and self._row is not None:
            text = "".join(self._cell).strip()
            if tag == "th":
                self._table["header"].append(text)
            else:
                self._row["cells"].append(text)
            self._cell = None
        elif tag == "tr" and self._row is not None:
            if self._row["method"] is not None:
                target = (self.glossary if self._table["data-table"] == "glossary"
                          else self._table["rows"])
                target.append(self._row)
            self._row = None
        elif tag == "table" and self._table is not None:
            if self._table["data-table"] != "glossary":
                self.tables.append(self._table)
            self._table = None

    def handle_data(self, data):
        if self._heading:
            getattr(self, self._heading)[-1] += data
        if self._cell is not None:
            self._cell.append(data)


# ----------------------------------------------------------------------------- failed calls
def test_failed_calls_are_named_and_a_result_with_them_is_refused(board_results, tmp_path):
    results, root = board_results
    folder = Path(results[0]["path"])
    records = [json.loads(line) for line in (folder / EPISODES_FILE).read_text().splitlines()]
    assert failed_calls(records) == []
    broken = Generation("", 0, 0, finish_reason="error", error="HTTP 503 from the server")
    records[1]["calls"][0].update(finish_reason=broken.finish_reason, error=broken.error)
    message = failed_calls(records)
    assert len(message) == 1 and "1 of" in message[0] and "HTTP 503" in message[0]
    assert f"uid {records[1]['uid']!r}" in message[0]
    header = json.loads((folder / RESULT_FILE).read_text())
    (folder / EPISODES_FILE).write_text("".join(json.dumps(r) + "\n" for r in records))
    header["records_sha256"] = records_hash(records)  # a consistent file, but a failed call
    (folder / RESULT_FILE).write_text(json.dumps(header))
    with pytest.raises(ResultError, match="LLM calls failed"):
        load_result(folder, splits_dir=root / "splits")


def test_separated_pairs_lists_each_pair_once_better_first():
    strong = {str(i): float(i % 10 != 2 or i == 2) for i in range(100)}  # 0.91
    near = {str(i): float(i % 10 != 1) for i in range(100)}  # 0.90, fails other problems
    weak = {str(i): float(i % 10 == 0) for i in range(100)}  # 0.10
    rows = [{"label": label, "scores": scores} for label, scores in
            (("strong", strong), ("weak", weak), ("near", near))]
    for row in rows:
        row["versus"] = {other["label"]: paired_comparison(row["scores"], other["scores"],
                                                           samples=300)
                         for other in rows if other is not row}
    apart, together = separated_pairs(rows)
    assert apart == ["strong > weak (+0.810)", "near > weak (+0.800)"]
    assert together == ["strong ~ near"]
