"""The task board as a reader sees it: the HTML page rendered by a real browser (headless
Chromium), its plots loaded and shown near their natural size, nothing wider than the window.

Skips without Chromium (``apt-get install chromium``; CI installs it, ``.ci/run``).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from spgg_env.baselines.bench_results import load_result
from spgg_env.baselines.leaderboard import write_board

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed "
                                "(apt-get install chromium); CI installs it")
REPO = Path(__file__).resolve().parents[1]
#: The window a reader on a laptop has.
WIDTH = 1280
#: Smallest share of its natural width a plot may be shown at: the plots' 10-point labels at
#: 100 dpi are 13.9 px, so at 0.7 they stay above 9.7 px.
MIN_SCALE = 0.7
PROBE = """<script>
window.addEventListener("load", () => {
  const images = [...document.images].map(i => ({src: i.getAttribute("src"),
    loaded: i.complete && i.naturalWidth > 0, natural: i.naturalWidth, shown: i.clientWidth}));
  document.body.setAttribute("data-probe", JSON.stringify({images,
    page: document.documentElement.scrollWidth, window: window.innerWidth,
    tables: document.querySelectorAll("table").length}));
});
</script>"""


def rendered(page: Path, tmp_path: Path) -> dict:
    """What the browser reports about ``page`` (a copy with the probe, next to its plots)."""
    folder = tmp_path / "page"
    shutil.copytree(page.parent, folder, dirs_exist_ok=True,
                    ignore=shutil.ignore_patterns("results", "policies", "learners"))
    probed = folder / page.name
    probed.write_text(page.read_text(encoding="utf-8").replace("</body>", PROBE + "</body>"),
                      encoding="utf-8")
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={tmp_path / 'profile'}", f"--window-size={WIDTH},900",
             "--virtual-time-budget=10000"]
    dom = subprocess.run([CHROMIUM, *flags, "--dump-dom", probed.as_uri()],
                         capture_output=True, text=True, timeout=120).stdout
    found = re.search(r'data-probe="([^"]*)"', dom)
    assert found, f"the page's load event never ran; the browser printed: {dom[:500]!r}"
    shot = tmp_path / "board.png"
    subprocess.run([CHROMIUM, *flags, f"--screenshot={shot}", probed.as_uri()],
                   capture_output=True, timeout=120)
    return {**json.loads(found.group(1).replace("&quot;", '"')), "screenshot": shot}


def check(report: dict) -> None:
    assert report["images"], "no plot on the page"
    for image in report["images"]:
        assert image["loaded"], f"{image['src']} did not load"
        assert image["shown"] >= MIN_SCALE * min(image["natural"], WIDTH), (
            f"{image['src']} is shown at {image['shown']} of {image['natural']} px: its labels "
            "would be too small to read")
    assert report["page"] <= report["window"], "the page is wider than the window"
    assert report["screenshot"].stat().st_size > 20_000  # a rendered page, not a blank one


def test_committed_board_reads_in_a_browser(tmp_path) -> None:
    report = rendered(REPO / "leaderboard" / "leaderboard.html", tmp_path)
    check(report)
    assert report["tables"] >= 5  # glossary, and per task at least scores and provenance


def test_a_freshly_written_board_reads_in_a_browser(tmp_path) -> None:
    results = [load_result(path) for path in
               sorted((REPO / "leaderboard" / "results" / "board-v1").iterdir())[:4]]
    page = write_board(results, tmp_path / "board", repo_root=REPO)[1]
    check(rendered(page, tmp_path))
