"""The HTML report as a person sees it, in headless Chromium at 1,280 px: nothing runs off the
page (skipped where Chromium is not installed; `make test` does not need it)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
from test_report import PAPER_FT, _plan, _results, _with_stats

from bench.report.figures import all_figures
from bench.report.render import render
from bench.report.tables import build_report

BROWSER = next((b for b in ("chromium", "chromium-browser", "google-chrome")
                if shutil.which(b)), None)
PROBE = """<script>
const wide = [...document.querySelectorAll("body *")]
  .filter((e) => e.getBoundingClientRect().right > window.innerWidth + 0.5)
  .map((e) => e.tagName + "." + e.className).slice(0, 5);
document.title = "scroll=" + document.documentElement.scrollWidth + " inner=" +
  window.innerWidth + " wide=" + wide.join(",");
</script></body>"""


def _overflow(html: str, tmp_path: Path, width: int = 1280) -> tuple[int, int, str]:
    page = tmp_path / "report.html"
    page.write_text(html.replace("</body>", PROBE), encoding="utf-8")
    dom = subprocess.run([BROWSER, "--headless", "--no-sandbox", "--disable-gpu",
                          f"--window-size={width},900", "--virtual-time-budget=3000",
                          "--dump-dom", page.as_uri()], capture_output=True, text=True,
                         timeout=120).stdout
    m = re.search(r"<title>scroll=(\d+) inner=(\d+) wide=([^<]*)</title>", dom)
    assert m, dom[:500]
    return int(m.group(1)), int(m.group(2)), m.group(3)


def _reliability(cells: list[str]) -> dict:
    """Every cell's reliability diagram from made-up predictions (35 trials × 200 cases)."""
    import numpy as np

    from bench.analysis.calibration import cell_reliability
    from bench.stats.bootstrap import CasePredictions

    rng = np.random.default_rng(0)
    out = {}
    for cell in cells:
        labels = rng.integers(0, 4, 200)
        probs = rng.dirichlet(np.ones(4), (35, 200))
        out[cell] = CasePredictions(labels, np.arange(200), probs.argmax(2), probs, 4)
    return cell_reliability(out)


@pytest.mark.skipif(BROWSER is None, reason="Chromium is not installed")
def test_the_html_report_fits_1280_px(tmp_path: Path) -> None:
    plan = _plan(tmp_path)
    vals = {n: _with_stats(m, s, 35, i) for i, (n, (m, s)) in enumerate(PAPER_FT.items())}
    for i, name in enumerate(["SL/lp", "SSL/lp", "SL+I/lp", "SSL+I/lp"]):
        vals[name] = _with_stats(0.6 + 0.02 * i, 0.015, 35, 10 + i)
    results = _results(plan, vals)
    data = build_report(plan, results)
    data.reliability = _reliability([c.cell for c in data.cells])
    data.figures = all_figures(data, results)
    html = render(data, "html")
    assert html.index("<h2>Headline</h2>") < html.index("<h2>Results")
    assert "<details>" in html and 'class="contrasts sortable"' in html
    assert html.index("<h2>Calibration</h2>") < html.index("<h2>Contrasts")
    scroll, inner, wide = _overflow(html, tmp_path)
    assert inner == 1280 and scroll <= inner, f"runs off the page: {scroll} px ({wide})"
    # the probe itself can fail: a table made too wide on purpose is caught
    wide_row = "<table><tr>" + "<td>0.123456789 ± 0.123456789</td>" * 40 + "</tr></table>"
    scroll, inner, _ = _overflow(html.replace("<h2>Methods</h2>", wide_row + "<h2>Methods"),
                                 tmp_path)
    assert scroll > inner
