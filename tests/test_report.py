"""The backtest report: `riskwatch evaluate --aggregates ... --report report.html`.

A small simulated backtest goes through the real CLI (simulate, replay with
aggregates, evaluate with a report); the page is checked as HTML and, in a real
headless Chromium with a CJK font installed, as a page a person opens.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import orjson
import pytest

from riskwatch.cli import main
from riskwatch.errors import InputError
from riskwatch.evaluate import evaluate, load_alerts, load_manifest
from dashboards.render import TABLE_ROWS
from riskwatch.report import _chart_series, _marks, build_report
from tests.conftest import unavailable


@pytest.fixture(scope="module")
def backtest(tmp_path_factory):
    d = tmp_path_factory.mktemp("backtest")
    paths = {k: d / n for k, n in [("events", "events.jsonl"), ("truth", "truth.json"),
                                   ("calendar", "calendar.json"), ("alerts", "alerts.jsonl"),
                                   ("agg", "agg.jsonl"), ("report", "report.html")]}
    assert main(["simulate", "--out", str(paths["events"]), "--manifest", str(paths["truth"]),
                 "--calendar-out", str(paths["calendar"]), "--days", "2.5", "--orders-per-day", "20000",
                 "--merchants", "400", "--incidents", "5", "--surge-incidents", "0",
                 "--seed", "3"]) == 0
    assert main(["replay", str(paths["events"]), "--calendar", str(paths["calendar"]), "--quiet",
                 "--alerts-out", str(paths["alerts"]), "--aggregates-out", str(paths["agg"])]) == 0
    assert main(["evaluate", "--truth", str(paths["truth"]), "--alerts", str(paths["alerts"]),
                 "--aggregates", str(paths["agg"]), "--report", str(paths["report"])]) == 0
    return paths


def _sections(page: str) -> tuple[str, str]:
    incidents = page.split('<section id="incidents">', 1)[1].split("</section>", 1)[0]
    false = page.split('<section id="false-episodes">', 1)[1].split("</section>", 1)[0]
    return incidents, false


def test_a_chart_per_incident_and_per_false_episode(backtest):
    page = backtest["report"].read_text(encoding="utf-8")
    truth = load_manifest(backtest["truth"])
    result = evaluate(truth, load_alerts(backtest["alerts"]))
    incidents, false = _sections(page)
    assert len(truth["incidents"]) == 5
    assert incidents.count('<figure class="chart"') == 5
    assert false.count('<figure class="chart"') == result["false_episodes"]
    for inc in truth["incidents"]:
        figure = re.search(rf'<figure class="chart" id="{inc["id"]}">(.*?)</figure>', incidents, re.S)
        assert figure and "<svg" in figure.group(1)
        # Labels stay text (svg.fonttype none), so Chinese names are real characters.
        for value in inc["dimensions"].values():
            assert value in figure.group(1)
    # Self-contained: no script, no stylesheet link, nothing loaded from elsewhere.
    for needle in ("<script", "<link", 'src="', 'href="http', "url(http", "@import"):
        assert needle not in page, needle
    assert f"recall <b>{result['recall']:.2f}</b>" in page


def test_alert_marks_are_fire_escalate_resolve():
    alerts = [
        {"alert_id": "a", "status": "firing", "severity": "blue", "ts": "2026-11-03T10:00:00+08:00"},
        {"alert_id": "a", "status": "firing", "severity": "blue", "ts": "2026-11-03T10:05:00+08:00"},
        {"alert_id": "a", "status": "firing", "severity": "orange", "ts": "2026-11-03T10:10:00+08:00"},
        {"alert_id": "b", "status": "firing", "severity": "red", "ts": "2026-11-03T10:10:00+08:00"},
        {"alert_id": "a", "status": "resolved", "severity": "orange", "ts": "2026-11-03T11:00:00+08:00"},
    ]
    marks = _marks(alerts, {"a"})
    assert [(m["kind"], m["severity"]) for m in marks] == [
        ("fire", "blue"), ("escalate", "orange"), ("resolve", "orange")]


def test_expected_between_scored_buckets_is_the_last_rate_times_exposure():
    def row(t, complaints, exposure, expected):
        return {"bucket_start": f"2026-11-03T10:{t:02d}:00+08:00", "complaints": complaints,
                "exposure": exposure, "expected": expected}
    rows = [row(0, 1, 2.0, 0.2), row(10, 3, 4.0, 0.8)]       # rate 0.1, then 0.2
    parent = [row(5, 0, 3.0, None), row(15, 0, 5.0, None)]   # exposure when unscored
    lo = rows[0]["bucket_start"]
    import datetime as dt
    start = dt.datetime.fromisoformat(lo).timestamp()
    s = _chart_series(rows, parent, start, start + 20 * 60, 300)
    assert s["observed"] == [1, 0, 3, 0, 0]
    assert s["expected"] == pytest.approx([0.2, 0.3, 0.8, 1.0, 1.0])
    assert s["interpolated"] == [False, True, False, True, True]


def test_an_order_surge_incident_charts_orders_not_complaints():
    # A brushing shop's incident is a rise of orders: its chart follows the orders
    # column (no complaint expectation to band), zero where the shop had no row.
    import datetime as dt
    def row(t, orders):
        return {"bucket_start": f"2026-11-03T10:{t:02d}:00+08:00", "complaints": 0, "orders": orders,
                "exposure": 1.0, "expected": 0.01}
    start = dt.datetime.fromisoformat("2026-11-03T10:00:00+08:00").timestamp()
    s = _chart_series([row(0, 2), row(10, 40)], [], start, start + 15 * 60, 300, "orders")
    assert s["observed"] == [2, 0, 40, 0]
    assert s["expected"] == [None] * 4 and s["quantity"] == "orders"
    truth = {"incidents": [{"id": "s1", "kind": "new_shop_order_surge", "dimensions": {"merchant_id": "m9"},
                            "start": "2026-11-03T10:00:00+08:00", "end": "2026-11-03T10:15:00+08:00",
                            "metrics": ["order_surge"]}]}
    result = {"per_incident": [{"id": "s1", "kind": "new_shop_order_surge", "detected": False}],
              "false_episode_list": []}
    import tempfile
    with tempfile.NamedTemporaryFile("wb", suffix=".jsonl") as agg:
        agg.write(b"".join(orjson.dumps({**row(t, n), "slice": "merchant_id=m9",
                                         "dimensions": {"merchant_id": "m9"}}) + b"\n"
                           for t, n in [(0, 2), (5, 30), (10, 40)]))
        agg.flush()
        from unittest import mock
        with mock.patch("riskwatch.report._page", lambda result, alerts, sections: sections):
            sections = build_report(result, truth, [], agg.name)
    chart = sections["incident"][0]
    assert "orders / 5 min" in chart and "observed orders" in chart
    assert "expected band" not in chart


def test_report_needs_aggregates_and_says_so(backtest, capsys):
    code = main(["evaluate", "--truth", str(backtest["truth"]), "--alerts", str(backtest["alerts"]),
                 "--report", str(backtest["report"].with_name("x.html"))])
    assert code == 2
    assert "--report needs --aggregates" in capsys.readouterr().err


def test_a_wrong_aggregates_file_is_a_clear_error(backtest):
    truth = load_manifest(backtest["truth"])
    alerts = load_alerts(backtest["alerts"])
    with pytest.raises(InputError, match=r"alerts.jsonl:1: not an aggregates row"):
        build_report(evaluate(truth, alerts), truth, alerts, backtest["alerts"])


def _require_browser_with_cjk_font() -> None:
    reason = None
    if shutil.which("chromium") is None:
        reason = "chromium is not installed (make test-deps installs Debian's chromium)"
    elif not any(Path("/usr/share/fonts").glob("**/*CJK*")):
        reason = "no CJK font: Chinese would render as boxes (make test-deps installs fonts-noto-cjk)"
    if reason:
        unavailable(reason, ci_explanation="the browser test must run")


@pytest.mark.integration
def test_the_page_loads_in_headless_chromium(backtest, tmp_path):
    _require_browser_with_cjk_font()
    url = backtest["report"].resolve().as_uri()
    flags = ["chromium", "--headless=new", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
             f"--user-data-dir={tmp_path / 'profile'}"]
    dom = subprocess.run([*flags, "--dump-dom", url], capture_output=True, text=True, timeout=120)
    assert dom.returncode == 0, dom.stderr[-2000:]
    # The browser parsed every inline SVG into the DOM: one chart per incident.
    incidents, _ = _sections(dom.stdout)
    truth = orjson.loads(backtest["truth"].read_bytes())
    assert len(re.findall(r'<figure class="chart" id="inc-\d+"><svg', incidents)) == len(truth["incidents"])
    shot = tmp_path / "report.png"
    run = subprocess.run([*flags, "--window-size=1100,3000", f"--screenshot={shot}", url],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    assert shot.stat().st_size > 50_000   # a rendered page, not a blank one
    if os.environ.get("RISKWATCH_KEEP_SCREENSHOT"):
        shutil.copy(shot, os.environ["RISKWATCH_KEEP_SCREENSHOT"])


# -- riskwatch report (the dashboard page) after a replay ----------------------------------
# Through the real CLI in subprocesses: chDB holds one path per process, and other test
# packages hold theirs; a replay is what a user runs before `riskwatch report`.

def _cli(*args) -> str:
    import sys
    run = subprocess.run([sys.executable, "-m", "riskwatch.cli", *map(str, args)],
                         capture_output=True, text=True, timeout=300,
                         cwd=Path(__file__).resolve().parents[1])
    assert run.returncode == 0, run.stderr[-2000:]
    return run.stdout


@pytest.fixture(scope="module")
def replayed_chdb(tmp_path_factory) -> Path:
    """Two simulated days replayed into a fresh chDB, with malformed lines (dead letters,
    stamped with the wall clock, weeks after the simulated event times; the simulator
    writes some too)."""
    d = tmp_path_factory.mktemp("replayed")
    events = d / "events.jsonl"
    assert main(["simulate", "--out", str(events), "--manifest", str(d / "truth.json"),
                 "--calendar-out", str(d / "calendar.json"), "--days", "2", "--orders-per-day",
                 "3000", "--merchants", "100", "--seed", "5"]) == 0
    with events.open("a", encoding="utf-8") as f:
        f.write('not json\n[1,2]\n{"type":"order"}\n')
    _cli("replay", events, "--calendar", d / "calendar.json", "--quiet",
         "--alerts-out", d / "alerts.jsonl", "--aggregates-out", d / "agg.jsonl",
         "--chdb", d / "chdb")
    return d / "chdb"


def _checked(chdb: Path, uid: str) -> dict[str, int]:
    """Rows per panel title that `riskwatch dashboards check` finds on dashboard ``uid``."""
    found = {}
    for line in _cli("dashboards", "check", "--chdb", chdb).splitlines():
        m = re.match(rf"{uid} / (.*?)\s+(\d+) rows", line)
        if m:
            found[m.group(1)] = int(m.group(2))
    return found


def _drawn(page: str) -> dict[str, str]:
    """Each panel's HTML by its (unescaped) title."""
    import html
    return {html.unescape(m.group(1)): m.group(2) for m in re.finditer(
        r'<section class="panel[^"]*"><h2>(.*?)</h2>(.*?)</section>', page, re.S)}


def test_the_pipeline_report_draws_the_dead_letters_dashboards_check_finds(replayed_chdb, tmp_path):
    checked = _checked(replayed_chdb, "riskwatch-pipeline")
    out = tmp_path / "pipeline.html"
    assert "5 with data, 0 empty" in _cli("report", "--chdb", replayed_chdb, "--dashboard",
                                          "riskwatch-pipeline", "--out", out, "--quiet")
    panels = _drawn(out.read_text(encoding="utf-8"))
    assert checked["Dead letters by reason"] > 0 and checked["Latest dead letters"] >= 3
    chart, table = panels["Dead letters by reason"], panels["Latest dead letters"]
    assert "<svg" in chart and "not an object" in chart       # a reason in the legend
    assert table.count("<tr>") - 1 == min(checked["Latest dead letters"], TABLE_ROWS)
    for body in (chart, table):
        assert 'class="empty"' not in body and "stamped when recorded" in body
    # replay --chdb stores the raw events too (as the worker does): their panels have data.
    for title in _EVENT_PANELS:
        assert checked[title] > 0 and 'class="empty"' not in panels[title], title


_EVENT_PANELS = ("Events per second (event time)", "Lag: event time to stored", "Late events")


def test_a_database_without_raw_events_says_why_its_event_panels_are_empty(replayed_chdb, tmp_path):
    # A store filled without the events table (an older replay, or events expired by
    # TTL): the panels say why they are empty instead of a bare "no data".
    import sys
    copy, events = tmp_path / "chdb", tmp_path / "events.jsonl"
    lines = (replayed_chdb.parent / "events.jsonl").read_bytes().splitlines(keepends=True)
    events.write_bytes(b"".join(lines[:3000] + lines[-3:]))   # a few hours and the bad lines
    _cli("replay", events, "--quiet", "--alerts-out", tmp_path / "alerts.jsonl", "--chdb", copy)
    emptied = subprocess.run([sys.executable, "-c", (
        "import sys; from sinks.clickhouse import ChdbSink; s = ChdbSink(sys.argv[1]); s.setup(); "
        "s.query('TRUNCATE TABLE riskwatch.events'); s.close()"), str(copy)],
        capture_output=True, text=True, timeout=300, cwd=Path(__file__).resolve().parents[1])
    assert emptied.returncode == 0, emptied.stderr[-2000:]
    out = tmp_path / "pipeline.html"
    assert "2 with data, 3 empty" in _cli("report", "--chdb", copy, "--dashboard",
                                          "riskwatch-pipeline", "--out", out, "--quiet")
    panels = _drawn(out.read_text(encoding="utf-8"))
    for title in _EVENT_PANELS:
        assert "no rows: the events table is empty" in panels[title], title


def test_the_merchants_report_fills_in_its_merchant_variable(replayed_chdb, tmp_path):
    checked = _checked(replayed_chdb, "riskwatch-merchants")
    out = tmp_path / "merchants.html"
    assert "5 with data, 0 empty" in _cli("report", "--chdb", replayed_chdb, "--dashboard",
                                          "riskwatch-merchants", "--out", out, "--quiet")
    page = out.read_text(encoding="utf-8")
    panels = _drawn(page)
    assert not [t for t in panels if "$" in t]
    assert not [t for t in checked if "$" in t]   # dashboards check names them alike
    # a histogram and a bar chart are drawn as charts, not as tables of numbers
    for title in ("Score distribution (latest)", "Merchants per tier"):
        assert "<svg" in panels[title] and "<table" not in panels[title], title
    [score] = [t for t in panels if t.startswith("Score of ")]
    merchant = score.removeprefix("Score of ")
    assert re.fullmatch(r"m\d{4}", merchant) and f"$merchant = {merchant}." in page
    pulls = panels[f"What pulls {merchant} down (latest components)"]
    assert "<svg" in panels[score] and 'class="empty"' not in panels[score]
    assert pulls.count("<tr>") - 1 == checked[f"What pulls {merchant} down (latest components)"] > 0
