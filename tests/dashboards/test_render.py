"""``riskwatch report``: the risk overview drawn from chDB as one HTML page (dashboards/render.py).

The page runs the Grafana dashboard's own panel queries on the demo data in chDB (the
package fixture ``demo_db``), so what it shows is what the dashboard would show; the
browser test opens it in a real headless Chromium.
"""

from __future__ import annotations

import re
import subprocess

import pytest

from dashboards.render import render_dashboard, run_dashboard
from riskwatch.errors import ConfigError
from sinks.clickhouse import ChdbSink
from streams.text.pii import contains_unmasked_pii
from tests.test_report import _require_browser_with_cjk_font


@pytest.fixture(scope="module")
def overview(demo_db: ChdbSink, chdb_dir: str):
    return run_dashboard(chdb_dir, "dash_demo")


def test_every_overview_panel_is_drawn_from_the_data(overview, demo_db: ChdbSink) -> None:
    title, description, span, panels = overview
    assert title == "riskwatch · risk overview"
    assert [p for p in panels if p.error] == [] and all(p.rows for p in panels)
    page = render_dashboard(title, description, span, panels)
    for p in panels:
        assert f"<h2>{p.title}</h2>" in page
    # A chart for each time series and the intent mix; tables and numbers for the rest.
    drawn = [p for p in panels if p.type in ("timeseries", "piechart")]
    assert len(drawn) == 4 and page.count("<svg") == len(drawn)
    # The numbers are the data's: the platform's orders, and one row per province.
    [total] = demo_db.query("SELECT sum(orders) AS n FROM dash_demo.aggregates FINAL WHERE slice = 'all'")
    assert f"<b>{int(total['n']):,}</b> total_orders" in page
    [provinces] = demo_db.query("SELECT uniqExact(region) AS n FROM dash_demo.aggregates FINAL "
                                "WHERE mapKeys(dimensions) = ['region']")
    table = page.split("<h2>Complaint rate vs expected by province</h2>", 1)[1].split("</table>", 1)[0]
    assert table.count("<tr>") - 1 == min(int(provinces["n"]), 20)
    assert not contains_unmasked_pii(re.sub(r"<svg.*?</svg>", "", page, flags=re.S))


def test_an_unknown_dashboard_is_a_clear_error(demo_db: ChdbSink, chdb_dir: str) -> None:
    with pytest.raises(ConfigError, match="no dashboard 'nope': choose one of riskwatch-merchants"):
        run_dashboard(chdb_dir, "dash_demo", "nope")


@pytest.mark.integration
def test_the_overview_page_renders_in_headless_chromium(overview, tmp_path) -> None:
    _require_browser_with_cjk_font()
    path = tmp_path / "overview.html"
    path.write_text(render_dashboard(*overview), encoding="utf-8")
    flags = ["chromium", "--headless=new", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
             f"--user-data-dir={tmp_path / 'profile'}"]
    dom = subprocess.run([*flags, "--dump-dom", path.as_uri()], capture_output=True, text=True, timeout=120)
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert len(re.findall(r'<figure class="chart"><svg', dom.stdout)) == 4   # parsed, not text
    shot = tmp_path / "overview.png"
    run = subprocess.run([*flags, "--window-size=1100,2600", f"--screenshot={shot}", path.as_uri()],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    pixels = _rgb(shot)
    ink = (pixels.min(axis=2) < 200).mean()    # anything darker than a light grey
    assert ink > 0.02, f"the screenshot is nearly blank ({ink:.1%} ink)"
    # Charts present: the bar chart's fill and matplotlib's first line colour are drawn.
    assert _near(pixels, (0x1c, 0x7e, 0xd6)) > 500, "no bar chart in the screenshot"
    assert _near(pixels, (0x1f, 0x77, 0xb4)) > 200, "no line chart in the screenshot"


def _rgb(png):
    import numpy as np
    from PIL import Image

    with Image.open(png) as image:
        return np.asarray(image.convert("RGB"), dtype=np.int16)


def _near(pixels, colour, tolerance: int = 16) -> int:
    """How many pixels are within ``tolerance`` of ``colour`` in every channel."""
    return int((abs(pixels - colour) <= tolerance).all(axis=2).sum())
