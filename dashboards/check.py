"""Run every dashboard panel's query on a chDB database, as Grafana would run it.

``riskwatch dashboards check --chdb riskwatch-data/demo/chdb`` (after ``make demo``) expands
the plugin macros for the data's own time range and the variables' "All" values, runs each
query and prints its row count: the dashboards' view of the data without Grafana.
``riskwatch report`` (:mod:`dashboards.render`) runs the panels with the same time ranges
(:func:`panel_span`) and variable values (:func:`board_variables`), so it draws what this finds.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from dashboards.definitions import ALL, build_dashboards, panel_queries
from dashboards.macros import expand, interpolate, interval_for
from riskwatch.commands import existing_chdb

__all__ = ["WALL_CLOCK_TABLES", "PanelResult", "board_variables", "check_chdb", "data_span",
           "existing_chdb", "panel_span", "panel_summary", "tables_read"]

#: Tables whose ``ts`` is when the row was recorded (wall clock), not the event's own time:
#: a dead letter is stamped when the pipeline rejects it, so replaying last week's events
#: records today's dead letters, outside the aggregates' event-time range.
WALL_CLOCK_TABLES = frozenset({"dead_letters"})


@dataclass(frozen=True)
class PanelResult:
    dashboard: str
    panel: str
    rows: int
    columns: tuple[str, ...]
    error: str | None = None


def check_chdb(path: str, database: str = "riskwatch") -> list[PanelResult]:
    """Every panel of every dashboard run on chDB at ``path``; errors are reported, not raised."""
    from riskwatch.errors import SinkError
    from sinks.clickhouse import ChdbSink

    sink = ChdbSink(existing_chdb(path, database), database=database)
    try:
        sink.setup()
        span = data_span(sink, path, database)
        results = []
        for uid, board in build_dashboards(database).items():
            board_vars = board_variables(sink, board, database)
            for title, _kind, sql in panel_queries(board):
                lo, hi = panel_span(sink, sql, database, span)
                query = expand(sql, time_from=lo, time_to=hi,
                               interval_s=interval_for(hi - lo, 200, 300), variables=board_vars)
                try:
                    rows = sink.query(query)
                except SinkError as exc:
                    results.append(PanelResult(uid, interpolate(title, board_vars, ALL), 0, (), str(exc)))
                    continue
                results.append(PanelResult(uid, interpolate(title, board_vars, ALL), len(rows),
                                           tuple(rows[0]) if rows else ()))
        return results
    finally:
        sink.close()


def data_span(sink, path: str, database: str) -> tuple[int, int]:
    """Unix seconds from the first aggregate bucket's start to the last one's end: the
    time range the dashboards are run over. No aggregates is a clear error."""
    from riskwatch.errors import ConfigError

    [span] = sink.query(f"SELECT toUnixTimestamp(min(bucket_start)) AS lo, "
                        f"toUnixTimestamp(max(bucket_end)) AS hi, count() AS n "
                        f"FROM `{database}`.aggregates")
    if not span["n"]:
        raise ConfigError(f"no aggregates in {path} database {database}: fill it with "
                          "`riskwatch replay EVENTS --alerts-out FILE --chdb PATH`, a worker "
                          "with --chdb, or `make demo`")
    return int(span["lo"]), int(span["hi"])


def tables_read(sql: str, database: str) -> list[str]:
    """Names of the ``database`` tables ``sql`` reads, in order of first mention.

    >>> tables_read("SELECT 1 FROM riskwatch.events FINAL UNION ALL SELECT 2 FROM riskwatch.alerts",
    ...             "riskwatch")
    ['events', 'alerts']
    """
    found = re.findall(rf"`?{re.escape(database)}`?\.`?(\w+)`?", sql)
    return list(dict.fromkeys(found))


def panel_span(sink, sql: str, database: str, span: tuple[int, int]) -> tuple[int, int]:
    """The time range to run panel query ``sql`` over: the data's event-time ``span``, or,
    for a panel that reads a wall-clock table (:data:`WALL_CLOCK_TABLES`), that table's
    own first to last row, so every row it holds is in range (a replay of past events
    records its dead letters today, weeks after the event-time span)."""
    wall = [t for t in tables_read(sql, database) if t in WALL_CLOCK_TABLES]
    if not wall:
        return span
    lows, highs = [], []
    for table in wall:
        [row] = sink.query(f"SELECT toUnixTimestamp(min(ts)) AS lo, toUnixTimestamp(max(ts)) AS hi, "
                           f"count() AS n FROM `{database}`.`{table}`")
        if row["n"]:
            # ts has milliseconds and toUnixTimestamp truncates them: one second more so
            # the last row is inside $__timeFilter's inclusive upper bound.
            lows.append(int(row["lo"]))
            highs.append(int(row["hi"]) + 1)
    return (min(lows), max(highs)) if lows else span


def board_variables(sink, board, database: str) -> dict[str, list[str]]:
    """A value for each of ``board``'s template variables: "All" for a multi-value one;
    for a single-valued one (the merchant page has no "All") the merchant with the most
    scores, so that page shows a merchant with data rather than nothing."""
    values: dict[str, list[str]] = {}
    for var in (board.templating.list_val or []) if board.templating else []:
        if var.include_all:
            values[var.name] = [ALL]
        elif var.name == "merchant":
            top = sink.query(f"SELECT merchant_id FROM `{database}`.scores "
                             "GROUP BY merchant_id ORDER BY count() DESC, merchant_id LIMIT 1")
            values[var.name] = [top[0]["merchant_id"] if top else ""]
        else:
            raise ValueError(f"no value rule for single-valued variable ${var.name}")
    return values


def panel_summary(results) -> tuple[str, bool]:
    """The "N panels: with data / empty / failed" line for panels that have ``rows`` and
    ``error``, and whether any failed (the command then exits 1).

    >>> panel_summary([PanelResult("b", "p", 3, ("x",)), PanelResult("b", "q", 0, ())])
    ('2 panels: 1 with data, 1 empty, 0 failed', False)
    """
    failed = sum(1 for r in results if r.error)
    empty = sum(1 for r in results if not r.error and not r.rows)
    return (f"{len(results)} panels: {len(results) - failed - empty} with data, "
            f"{empty} empty, {failed} failed"), failed > 0
