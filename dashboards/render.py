"""A dashboard rendered from chDB as one self-contained HTML page: ``riskwatch report``.

Risk teams without a Grafana server (a laptop after ``make demo``, an incident review)
still want the risk overview. This runs each panel's own SQL — the query Grafana would
send, with the plugin's macros expanded for the data's time range (:mod:`dashboards.macros`)
— on the embedded ClickHouse, and draws the result the way the panel's type asks. Time
ranges and variable values are the ones ``riskwatch dashboards check`` uses
(:func:`dashboards.check.panel_span`, :func:`dashboards.check.board_variables`): a panel on
dead letters (stamped when recorded) covers their own times, and the merchant page shows
the merchant with the most scores, titles included.

* ``stat``: its numbers, large;
* ``timeseries``: a matplotlib SVG line chart, one line per numeric column, or per value
  of a text column (the alert timeline's severities);
* ``piechart`` and ``barchart``: a horizontal bar chart (easier to compare than slices);
* ``histogram``: counts of its numeric column's values in bins;
* ``table``: an HTML table of its first rows.

No JavaScript and nothing fetched: the page opens from a file. Charts are SVG with text
kept as text (``svg.fonttype = "none"``), so Chinese labels render with the reader's fonts.
"""

from __future__ import annotations

import datetime as dt
import html
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

from dashboards.definitions import ALL, build_dashboards
from dashboards.check import board_variables, data_span, panel_span, tables_read
from dashboards.macros import expand, interpolate, interval_for
from riskwatch.report import svg_text
from sinks.clickhouse.schema import TZ

__all__ = ["Panel", "render_dashboard", "run_dashboard"]

#: Rows shown per table panel (the page is a summary; Grafana pages through the rest).
TABLE_ROWS = 20
CHINA = dt.timezone(dt.timedelta(hours=8))
_SCHEMA_TZ = ZoneInfo(TZ)
_SEVERITY_COLOURS = {"blue": "#1c7ed6", "yellow": "#f59f00", "orange": "#e8590c", "red": "#c92a2a"}
_TIME_TEXT = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(\.\d+)?")
#: Why a table can be empty while the rest has data, said in its empty panels instead of
#: a bare "no data" that reads like a broken query.
EMPTY_TABLE_REASONS = {
    "events": "raw events are stored by riskwatch worker and riskwatch replay when given "
              "--chdb or --clickhouse-url; this database holds none",
}


@dataclass
class Panel:
    title: str
    type: str                      # the Grafana panel type: stat, timeseries, table, piechart
    rows: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None
    description: str = ""
    time_note: str = ""            # the panel's own time range, when not the page's
    span: tuple[int, int] | None = None   # (from, to) unix seconds its query ran over
    interval_s: int = 300                 # its $__timeInterval bucket
    empty_reason: str = ""         # why it has no rows, when the cause is known


def run_dashboard(path: str, database: str = "riskwatch", uid: str = "riskwatch-overview",
                  progress: Callable[[str], None] | None = None
                  ) -> tuple[str, str, tuple[int, int], list[Panel]]:
    """(title, description, (from, to) unix seconds, panels with their rows) of dashboard
    ``uid`` run on chDB at ``path`` over the data's whole time range."""
    from riskwatch.errors import ConfigError, SinkError
    from sinks.clickhouse import ChdbSink

    boards = build_dashboards(database)
    if uid not in boards:
        raise ConfigError(f"no dashboard {uid!r}: choose one of {', '.join(sorted(boards))}")
    board = boards[uid]
    sink = ChdbSink(path, database=database)
    try:
        sink.setup()
        span = data_span(sink, path, database)
        variables = board_variables(sink, board, database)
        panels = []
        for n, panel in enumerate(board.panels or [], 1):
            title = interpolate(panel.title or "", variables, ALL)
            if progress:
                progress(f"report: panel {n}/{len(board.panels)} {title}")
            out = Panel(title, panel.type_val, description=panel.description or "")
            read: list[str] = []
            for target in getattr(panel, "targets", None) or []:
                lo, hi = panel_span(sink, target.raw_sql, database, span)
                if (lo, hi) != span:
                    out.time_note = (f"Rows stamped when recorded (wall clock), not in event "
                                     f"time: drawn over their own times, {_local(lo)} to "
                                     f"{_local(hi)} (UTC+8).")
                read += tables_read(target.raw_sql, database)
                out.span, out.interval_s = (lo, hi), interval_for(hi - lo, 200, 300)
                sql = expand(target.raw_sql, time_from=lo, time_to=hi,
                             interval_s=out.interval_s, variables=variables)
                try:
                    out.rows.extend(sink.query(sql))
                except SinkError as exc:
                    out.error = str(exc)
            if not out.rows and not out.error:
                out.empty_reason = _empty_reason(sink, database, read)
            panels.append(out)
        # A value chosen for the reader (not "All") is said on the page, as Grafana shows
        # it in the variable's drop-down.
        chosen = " ".join(f"${name} = {', '.join(vals)}." for name, vals in variables.items()
                          if vals != [ALL])
        description = " ".join(t for t in (board.description or "", chosen) if t)
        return board.title, description, span, panels
    finally:
        sink.close()


def _empty_reason(sink, database: str, tables: list[str]) -> str:
    """Why a panel reading ``tables`` has no rows, when one of them is empty altogether."""
    for table in dict.fromkeys(tables):
        [row] = sink.query(f"SELECT count() AS n FROM `{database}`.`{table}`")
        if not row["n"]:
            reason = EMPTY_TABLE_REASONS.get(table)
            return f"the {table} table is empty" + (f" ({reason})" if reason else "")
    return ""


def _local(t: int) -> str:
    return _when(t).astimezone(CHINA).strftime("%Y-%m-%d %H:%M:%S")


# -- drawing --------------------------------------------------------------------------------

def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _when(value: Any) -> dt.datetime:
    # chDB returns times as text in the column's time zone (the schema's, Asia/Shanghai).
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value)
    if isinstance(value, dt.datetime):
        return value if value.tzinfo else value.replace(tzinfo=_SCHEMA_TZ)
    return dt.datetime.fromtimestamp(float(value), dt.UTC)


def _figure_svg(draw: Callable[[Any], None], height: float = 2.6) -> str:
    import matplotlib
    matplotlib.rcParams["svg.fonttype"] = "none"
    matplotlib.rcParams["font.family"] = ["Noto Sans CJK SC", "DejaVu Sans", "sans-serif"]
    import logging
    logging.getLogger("matplotlib.font_manager").setLevel(logging.ERROR)
    from matplotlib.figure import Figure

    fig = Figure(figsize=(9.5, height), dpi=96)
    ax = fig.add_subplot()
    draw(ax)
    ax.tick_params(labelsize=8)
    fig.tight_layout()
    return svg_text(fig)


def _timeseries(rows: list[dict], span: tuple[int, int] | None = None, interval_s: int = 300) -> str:
    from matplotlib import dates as mdates

    time_col = next(iter(rows[0]))
    numeric = [c for c in rows[0] if c != time_col and _is_number(rows[0][c])]
    labels = [c for c in rows[0] if c != time_col and c not in numeric]
    lines: dict[str, tuple[list, list]] = {}
    for row in rows:
        for col in numeric:
            # One line per value of a text column (severity), else per numeric column.
            name = " ".join(str(row[c]) for c in labels) if labels else col
            xs, ys = lines.setdefault(name, ([], []))
            xs.append(_when(row[time_col]))
            ys.append(row[col])

    def draw(ax) -> None:
        bottoms: dict[dt.datetime, float] = {}
        for name, (xs, ys) in lines.items():
            if labels:
                # Counts of events per interval, only where there were some (the alert
                # timeline): a line between two alerts a day apart would read as "firing".
                # Bars a bucket wide, stacked: values sharing a bucket (dead-letter reasons
                # recorded in the same minute) would hide each other as lines.
                base = [bottoms.get(x, 0) for x in xs]
                ax.bar(xs, ys, width=dt.timedelta(seconds=interval_s), bottom=base,
                       align="edge", label=name, color=_SEVERITY_COLOURS.get(name))
                for x, b, y in zip(xs, base, ys):
                    bottoms[x] = b + y
            else:
                ax.plot(xs, ys, lw=1.2, label=name, drawstyle="steps-post")
        if bottoms:
            # Headroom above the tallest stack for the legend, which would hide its top.
            ax.set_ylim(0, max(bottoms.values()) * 1.3)
        if span:
            # The range the query ran over, from its first bucket: matplotlib's own limits
            # around a single bucket span years (a replay's dead letters are seconds apart).
            lo = span[0] - span[0] % interval_s
            hi = max(-(-span[1] // interval_s) * interval_s, lo + interval_s)   # its last bucket's end
            pad = interval_s if (hi - lo) < 12 * interval_s else 0
            ax.set_xlim(_when(lo - pad), _when(hi + pad))
        ax.xaxis.set_major_formatter(mdates.DateFormatter("%m-%d %H:%M", tz=CHINA))
        ax.legend(fontsize=7, loc="upper left", frameon=False, ncols=4)
        ax.set_ylim(bottom=0)

    return _figure_svg(draw)


def _bars(rows: list[dict]) -> str:
    label_col, value_col = list(rows[0])[:2]
    rows = rows[:15]

    def draw(ax) -> None:
        names = [str(r[label_col]) for r in rows][::-1]
        ax.barh(names, [r[value_col] for r in rows][::-1], color="#1c7ed6")
        ax.set_xlabel(value_col, fontsize=8)

    return _figure_svg(draw, height=0.3 * len(rows) + 0.8)


def _histogram(rows: list[dict]) -> str:
    """Grafana's histogram panel: counts of the first numeric column's values in bins. A
    score 0-100 gets Grafana's bucket size of the merchant page (5 points); other values
    numpy's automatic bins."""
    import numpy as np

    column = next(c for c in rows[0] if all(_is_number(r[c]) for r in rows))
    values = np.asarray([float(r[column]) for r in rows])
    bins = np.arange(0, 105, 5) if values.min() >= 0 and values.max() <= 100 else "auto"

    def draw(ax) -> None:
        ax.hist(values, bins=bins, color="#1c7ed6", edgecolor="white")
        ax.set_xlabel(column, fontsize=8)
        ax.set_ylabel("count", fontsize=8)

    return _figure_svg(draw)


def _cell(value: Any) -> str:
    if isinstance(value, dt.datetime) or (isinstance(value, str) and _TIME_TEXT.fullmatch(value)):
        value = _when(value).astimezone(CHINA).strftime("%m-%d %H:%M")
    elif isinstance(value, float):
        value = f"{value:,.4g}"
    elif _is_number(value):
        value = f"{value:,}"
    return html.escape("" if value is None else str(value))


def _table(rows: list[dict]) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in rows[0])
    body = "".join("<tr>" + "".join(f"<td>{_cell(v)}</td>" for v in r.values()) + "</tr>"
                   for r in rows[:TABLE_ROWS])
    more = f'<p class="more">{len(rows) - TABLE_ROWS} more rows</p>' if len(rows) > TABLE_ROWS else ""
    return f"<table><tr>{head}</tr>{body}</table>{more}"


def _stat(rows: list[dict]) -> str:
    return "".join(f'<span class="stat"><b>{_cell(v)}</b> {html.escape(k)}</span>'
                   for k, v in rows[0].items())


def _panel_html(panel: Panel) -> str:
    title = f"<h2>{html.escape(panel.title)}</h2>"
    note = "".join(f'<p class="note">{html.escape(text)}</p>'
                   for text in (panel.description, panel.time_note) if text)
    if panel.error:
        body = f'<p class="error">query failed: {html.escape(panel.error)}</p>'
    elif not panel.rows:
        why = f"no rows: {panel.empty_reason}" if panel.empty_reason else "no data in this time range"
        body = f'<p class="empty">{html.escape(why)}</p>'
    elif panel.type == "stat":
        body = f'<p class="stats">{_stat(panel.rows)}</p>'
    elif panel.type == "timeseries":
        body = f'<figure class="chart">{_timeseries(panel.rows, panel.span, panel.interval_s)}</figure>'
    elif panel.type in ("piechart", "barchart"):
        body = f'<figure class="chart">{_bars(panel.rows)}</figure>'
    elif panel.type == "histogram" and any(
            all(_is_number(r[c]) for r in panel.rows) for c in panel.rows[0]):
        body = f'<figure class="chart">{_histogram(panel.rows)}</figure>'
    else:
        body = _table(panel.rows)
    return f'<section class="panel panel-{html.escape(panel.type)}">{title}{note}{body}</section>'


def render_dashboard(title: str, description: str, span: tuple[int, int],
                     panels: list[Panel]) -> str:
    """The page: the dashboard's title, its time range, and each panel drawn by type."""
    lo, hi = (_when(t).astimezone(CHINA).strftime("%Y-%m-%d %H:%M") for t in span)
    return f"""<!DOCTYPE html>
<html lang="zh-CN"><head><meta charset="utf-8">
<title>{html.escape(title)}</title>
<style>
body {{ font-family: "Noto Sans CJK SC", "Noto Sans SC", "PingFang SC", "Microsoft YaHei", sans-serif;
       margin: 1.5em auto; max-width: 1000px; color: #212529; }}
h2 {{ font-size: 17px; margin: 1.2em 0 .3em; }}
table {{ border-collapse: collapse; font-size: 13px; }}
td, th {{ border-bottom: 1px solid #dee2e6; padding: 2px 8px; text-align: left; }}
.stat {{ display: inline-block; margin-right: 2em; }} .stat b {{ font-size: 22px; }}
.note, .more, .empty {{ color: #868e96; font-size: 13px; }} .error {{ color: #c92a2a; }}
figure.chart {{ margin: 0; }} figure.chart svg {{ width: 100%; height: auto; }}
</style></head><body>
<h1>{html.escape(title)}</h1>
<p class="note">{html.escape(description)} Data from {lo} to {hi} (UTC+8), rendered from the
embedded ClickHouse by <code>riskwatch report</code> with the Grafana dashboard's own queries.</p>
{''.join(_panel_html(p) for p in panels)}
</body></html>
"""
