"""The four riskwatch Grafana dashboards, built with grafana-foundation-sdk.

Every panel reads the ClickHouse tables of :mod:`sinks.clickhouse.schema` through the
official ClickHouse plugin, with its macros (``$__timeFilter``, ``$__timeInterval`` …)
and template variables.  Rules every query follows, so that a record delivered twice
(at-least-once) is never counted twice: tables are read with ``FINAL`` (ReplacingMergeTree
collapses the copies), and alerts are counted by distinct ``alert_id``.

Variables are multi-value with an "All" option whose value is ``__all__``; a filter on
variable ``v`` is written ``('__all__' IN (${v:singlequote}) OR col IN (${v:singlequote}))``
so "All" does not expand into thousands of literals.

>>> boards = build_dashboards()
>>> sorted(boards)
['riskwatch-merchants', 'riskwatch-overview', 'riskwatch-pipeline', 'riskwatch-slice']
>>> boards["riskwatch-slice"].templating.list_val[0].name
'region'
"""

from __future__ import annotations

from collections.abc import Callable

from grafana_foundation_sdk.builders import (
    barchart,
    histogram,
    piechart,
    stat,
    table,
    timeseries,
)
from grafana_foundation_sdk.builders import dashboard as db
from grafana_foundation_sdk.cog import builder as cogbuilder
from grafana_foundation_sdk.models import dashboard as dm

from dashboards.query import CLICKHOUSE_UID, ClickHouseQueryBuilder, clickhouse_ref

__all__ = ["ALL", "build_dashboards", "panel_queries"]

#: The value of a variable's "All" option.
ALL = "__all__"
TAGS = ["riskwatch"]


def _filter(column: str, variable: str) -> str:
    values = f"${{{variable}:singlequote}}"
    return f"('{ALL}' IN ({values}) OR {column} IN ({values}))"


def _variable(name: str, label: str, sql: str, *, multi: bool = True) -> db.QueryVariable:
    var = (db.QueryVariable(name).label(label).query(sql).datasource(clickhouse_ref())
           .refresh(dm.VariableRefresh.ON_TIME_RANGE_CHANGED).sort(dm.VariableSort.ALPHABETICAL_ASC))
    if multi:
        var = (var.multi(True).include_all(True).all_value(ALL)
               .current(dm.VariableOption(selected=True, text="All", value=[ALL])))
    return var


def _q(sql: str, kind: str = "table", ref: str = "A") -> ClickHouseQueryBuilder:
    q = ClickHouseQueryBuilder(sql.strip()).ref_id(ref)
    return q.timeseries() if kind == "timeseries" else q.table()


def _panel(builder: cogbuilder.Builder, title: str, sql: str, *, kind: str = "table",
           w: int = 12, h: int = 8, description: str = "") -> cogbuilder.Builder:
    panel = (builder.title(title).datasource(clickhouse_ref()).span(w).height(h)
             .with_target(_q(sql, kind)))
    return panel.description(description) if description else panel


def _board(uid: str, title: str, description: str) -> db.Dashboard:
    return (db.Dashboard(title).uid(uid).description(description).tags(TAGS)
            .timezone("Asia/Shanghai").time("now-24h", "now").refresh("1m").editable())


# -- 1. risk overview ------------------------------------------------------------------------

def risk_overview(d: str) -> db.Dashboard:
    province = (f"mapKeys(dimensions) = ['region'] AND $__timeFilter(bucket_start)")
    return (
        _board("riskwatch-overview", "riskwatch · risk overview",
               "Where complaints rise relative to orders, since when, and whether it is handled.")
        .with_panel(_panel(stat.Panel(), "Firing alerts", f"""
SELECT uniqExact(alert_id) AS firing
FROM (SELECT alert_id, argMax(status, (ts, version)) AS status
      FROM {d}.alerts FINAL WHERE ts <= $__toTime GROUP BY alert_id)
WHERE status = 'firing'""", w=6, h=4))
        .with_panel(_panel(stat.Panel().unit("percent"), "Auto-resolved complaints", f"""
SELECT round(100 * countIf(auto_resolved) / greatest(count(), 1), 1) AS auto_resolved_pct,
       countIf(auto_resolved) AS auto_resolved, count() AS complaints,
       round(sum(time_saved_minutes) / 60, 1) AS agent_hours_saved
FROM {d}.complaints FINAL WHERE $__timeFilter(ts)""", w=10, h=4))
        .with_panel(_panel(stat.Panel(), "Orders and complaints", f"""
SELECT sum(orders) AS orders, sum(complaints) AS complaints,
       round(1000 * sum(complaints) / greatest(sum(orders), 1), 2) AS complaints_per_1k_orders
FROM {d}.aggregates FINAL WHERE slice = 'all' AND $__timeFilter(bucket_start)""", w=8, h=4))
        .with_panel(_panel(timeseries.Panel(), "Complaints vs expected (platform)", f"""
SELECT $__timeInterval(bucket_start) AS time, sum(complaints) AS complaints,
       round(sum(expected), 2) AS expected
FROM {d}.aggregates FINAL
WHERE slice = 'all' AND $__timeFilter(bucket_start)
GROUP BY time ORDER BY time""", kind="timeseries", w=24))
        .with_panel(_panel(table.Panel(), "Complaint rate vs expected by province", f"""
SELECT region AS province, sum(orders) AS orders, sum(complaints) AS complaints,
       round(sum(expected), 1) AS expected,
       round(1000 * sum(complaints) / greatest(sum(orders), 1), 2) AS per_1k_orders,
       round(sum(complaints) / greatest(sum(expected), 0.1), 2) AS ratio_to_expected,
       round(max(score), 3) AS max_score
FROM {d}.aggregates FINAL
WHERE {province}
GROUP BY region ORDER BY ratio_to_expected DESC""", w=12, h=10,
            description="Province slices only (region alone); ratio > 1 means more "
                        "complaints than the learned baseline for these orders."))
        .with_panel(_panel(table.Panel(), "Top anomalous slices", f"""
SELECT slice, round(max(score), 4) AS max_score, sum(complaints) AS complaints,
       round(sum(expected), 1) AS expected, argMax(bucket_start, score) AS worst_bucket
FROM {d}.aggregates FINAL
WHERE $__timeFilter(bucket_start) AND expected IS NOT NULL AND slice != 'all'
GROUP BY slice ORDER BY max_score DESC, complaints DESC LIMIT 20""", w=12, h=10))
        .with_panel(_panel(timeseries.Panel(), "Alert timeline (firing, by severity)", f"""
SELECT $__timeInterval(ts) AS time, severity, uniqExact(alert_id) AS alerts
FROM {d}.alerts FINAL
WHERE status = 'firing' AND $__timeFilter(ts)
GROUP BY time, severity ORDER BY time""", kind="timeseries", w=12))
        .with_panel(_panel(table.Panel(), "Alerts", f"""
SELECT alert_id, argMax(status, (ts, version)) AS status,
       argMax(severity, (ts, version)) AS severity, min(ts) AS first_seen, max(ts) AS last_seen,
       argMax(summary, (ts, version)) AS summary
FROM {d}.alerts FINAL WHERE $__timeFilter(ts)
GROUP BY alert_id ORDER BY last_seen DESC LIMIT 100""", w=12))
        .with_panel(_panel(piechart.Panel(), "Complaint intent mix", f"""
SELECT intent, count() AS complaints
FROM {d}.complaints FINAL WHERE $__timeFilter(ts)
GROUP BY intent ORDER BY complaints DESC""", w=12))
        .with_panel(_panel(timeseries.Panel(), "Auto-resolution share", f"""
SELECT $__timeInterval(ts) AS time,
       round(100 * countIf(auto_resolved) / greatest(count(), 1), 2) AS auto_resolved_pct
FROM {d}.complaints FINAL WHERE $__timeFilter(ts)
GROUP BY time ORDER BY time""", kind="timeseries", w=12))
    )


# -- 2. slice drill-down ------------------------------------------------------------------------

def slice_drilldown(d: str) -> db.Dashboard:
    dims = " AND ".join(_filter(c, v) for c, v in (
        ("region", "region"), ("carrier", "carrier"), ("merchant_id", "merchant"),
        ("intent", "intent")))
    order_dims = " AND ".join(_filter(c, v) for c, v in (
        ("region", "region"), ("carrier", "carrier"), ("merchant_id", "merchant")))
    return (
        _board("riskwatch-slice", "riskwatch · slice drill-down",
               "One slice (region, carrier, merchant, intent): complaints, rate, why, examples.")
        .with_variable(_variable("region", "Region", f"SELECT DISTINCT region FROM {d}.aggregates "
                                 "WHERE region != '' AND $__timeFilter(bucket_start)"))
        .with_variable(_variable("carrier", "Carrier", f"SELECT DISTINCT carrier FROM "
                                 f"{d}.aggregates WHERE carrier != '' AND $__timeFilter(bucket_start)"))
        .with_variable(_variable("merchant", "Merchant", f"SELECT DISTINCT merchant_id FROM "
                                 f"{d}.complaints WHERE merchant_id != '' AND $__timeFilter(ts) "
                                 "LIMIT 5000"))
        .with_variable(_variable("intent", "Intent", f"SELECT DISTINCT intent FROM {d}.complaints "
                                 "WHERE intent != '' AND $__timeFilter(ts)"))
        .with_panel(_panel(timeseries.Panel(), "Complaints and orders", f"""
SELECT time, sum(complaints) AS complaints, sum(orders) AS orders FROM (
    SELECT $__timeInterval(ts) AS time, count() AS complaints, 0 AS orders
    FROM {d}.complaints FINAL WHERE $__timeFilter(ts) AND {dims}
    GROUP BY time
    UNION ALL
    SELECT $__timeInterval(ts) AS time, 0 AS complaints, count() AS orders
    FROM {d}.events FINAL WHERE type = 'order' AND $__timeFilter(ts) AND {order_dims}
    GROUP BY time)
GROUP BY time ORDER BY time""", kind="timeseries", w=24,
            description="Orders ignore the intent filter (an order has no intent)."))
        .with_panel(_panel(table.Panel(), "Matching slices", f"""
SELECT slice, sum(orders) AS orders, sum(complaints) AS complaints,
       round(sum(expected), 1) AS expected, round(max(score), 4) AS max_score
FROM {d}.aggregates FINAL
WHERE $__timeFilter(bucket_start) AND {dims}
GROUP BY slice ORDER BY max_score DESC LIMIT 50""", w=12, h=10,
            description="Slices whose every dimension matches the filters; "
                        "a dimension a slice lacks does not match a chosen value."))
        .with_panel(_panel(barchart.Panel(), "Intent breakdown", f"""
SELECT intent, count() AS complaints
FROM {d}.complaints FINAL WHERE $__timeFilter(ts) AND {dims}
GROUP BY intent ORDER BY complaints DESC""", w=12, h=10))
        .with_panel(_panel(table.Panel(), "Alerts on these slices", f"""
SELECT alert_id, argMax(status, (ts, version)) AS status,
       argMax(severity, (ts, version)) AS severity, min(ts) AS first_seen,
       argMax(summary, (ts, version)) AS summary
FROM {d}.alerts FINAL WHERE $__timeFilter(ts) AND {dims}
GROUP BY alert_id ORDER BY first_seen DESC LIMIT 100""", w=24))
        .with_panel(_panel(table.Panel(), "Example complaints (masked)", f"""
SELECT ts, intent, round(sentiment, 2) AS sentiment, channel, status, masked_text
FROM {d}.complaints FINAL WHERE $__timeFilter(ts) AND {dims}
ORDER BY ts DESC LIMIT 50""", w=24, h=10))
    )


# -- 3. merchant quality ------------------------------------------------------------------------

def merchant_quality(d: str) -> db.Dashboard:
    latest = (f"SELECT merchant_id, argMax(score, ts) AS score, argMax(tier, ts) AS tier "
              f"FROM {d}.scores FINAL WHERE $__timeFilter(ts) GROUP BY merchant_id")
    one = "merchant_id = ${merchant:singlequote}"
    return (
        _board("riskwatch-merchants", "riskwatch · merchant quality",
               "Quality scores 0-100: distribution, movers, and one merchant's own page.")
        .with_variable(_variable("merchant", "Merchant", f"SELECT DISTINCT merchant_id FROM "
                                 f"{d}.scores WHERE $__timeFilter(ts) LIMIT 5000", multi=False))
        .with_panel(_panel(histogram.Panel().bucket_size(5), "Score distribution (latest)",
                           f"SELECT score FROM ({latest})", w=12))
        .with_panel(_panel(barchart.Panel(), "Merchants per tier",
                           f"SELECT tier, count() AS merchants FROM ({latest}) "
                           "GROUP BY tier ORDER BY tier", w=12))
        .with_panel(_panel(table.Panel(), "Movers", f"""
SELECT merchant_id, round(argMin(score, ts), 1) AS first_score,
       round(argMax(score, ts), 1) AS last_score,
       round(argMax(score, ts) - argMin(score, ts), 1) AS change
FROM {d}.scores FINAL WHERE $__timeFilter(ts)
GROUP BY merchant_id ORDER BY abs(change) DESC, merchant_id LIMIT 20""", w=24))
        .with_panel(_panel(timeseries.Panel().min(0).max(100), "Score of ${merchant}", f"""
SELECT $__timeInterval(ts) AS time, round(avg(score), 2) AS score
FROM {d}.scores FINAL WHERE $__timeFilter(ts) AND {one}
GROUP BY time ORDER BY time""", kind="timeseries", w=12))
        .with_panel(_panel(table.Panel(), "What pulls ${merchant} down (latest components)", f"""
SELECT component, round(points, 2) AS points FROM (
    SELECT argMax(components, ts) AS c FROM {d}.scores FINAL
    WHERE $__timeFilter(ts) AND {one})
ARRAY JOIN mapKeys(c) AS component, mapValues(c) AS points
ORDER BY points""", w=12))
    )


# -- 4. pipeline health -------------------------------------------------------------------------

def pipeline_health(d: str) -> db.Dashboard:
    return (
        _board("riskwatch-pipeline", "riskwatch · pipeline health",
               "Throughput, lag, dead letters and late events of the stream.")
        .with_panel(_panel(timeseries.Panel().unit("short"), "Events per second (event time)", f"""
SELECT $__timeInterval(ts) AS time, type, round(count() / $__interval_s, 3) AS events_per_s
FROM {d}.events FINAL WHERE $__timeFilter(ts)
GROUP BY time, type ORDER BY time""", kind="timeseries", w=12))
        .with_panel(_panel(timeseries.Panel().unit("s"), "Lag: event time to stored", f"""
SELECT $__timeInterval(ts) AS time,
       quantile(0.5)(dateDiff('second', ts, inserted_at)) AS p50_lag_s,
       quantile(0.95)(dateDiff('second', ts, inserted_at)) AS p95_lag_s
FROM {d}.events FINAL WHERE $__timeFilter(ts)
GROUP BY time ORDER BY time""", kind="timeseries", w=12,
            description="Seconds from an event's own time to its row landing in ClickHouse; "
                        "large for replayed history, seconds for a live stream."))
        .with_panel(_panel(timeseries.Panel(), "Dead letters by reason", f"""
SELECT $__timeInterval(ts) AS time, reason, count() AS dead_letters
FROM {d}.dead_letters FINAL WHERE $__timeFilter(ts)
GROUP BY time, reason ORDER BY time""", kind="timeseries", w=12))
        .with_panel(_panel(timeseries.Panel(), "Late events", f"""
SELECT $__timeInterval(ts) AS time, countIf(late) AS late_events,
       round(100 * countIf(late) / greatest(count(), 1), 3) AS late_pct
FROM {d}.events FINAL WHERE $__timeFilter(ts)
GROUP BY time ORDER BY time""", kind="timeseries", w=12))
        .with_panel(_panel(table.Panel(), "Latest dead letters", f"""
SELECT ts, source, reason, detail, payload_excerpt
FROM {d}.dead_letters FINAL WHERE $__timeFilter(ts)
ORDER BY ts DESC LIMIT 100""", w=24))
    )


BUILDERS: dict[str, Callable[[str], db.Dashboard]] = {
    "riskwatch-overview": risk_overview,
    "riskwatch-slice": slice_drilldown,
    "riskwatch-merchants": merchant_quality,
    "riskwatch-pipeline": pipeline_health,
}


def build_dashboards(database: str = "riskwatch", datasource_uid: str = CLICKHOUSE_UID
                     ) -> dict[str, dm.Dashboard]:
    """Every dashboard model by uid, reading ``database``."""
    from sinks.clickhouse.schema import check_identifier

    boards = {uid: make(check_identifier(database)).build() for uid, make in BUILDERS.items()}
    if datasource_uid != CLICKHOUSE_UID:
        for board in boards.values():
            for panel in board.panels or []:
                panel.datasource = clickhouse_ref(datasource_uid)
                for target in panel.targets or []:
                    target.datasource_uid = datasource_uid
            for var in board.templating.list_val or []:
                var.datasource = clickhouse_ref(datasource_uid)
    return boards


def panel_queries(board: dm.Dashboard) -> list[tuple[str, str, str]]:
    """``(panel title, query type, SQL)`` of every ClickHouse target of ``board``."""
    out = []
    for panel in board.panels or []:
        for target in getattr(panel, "targets", None) or []:
            out.append((panel.title, target.query_type, target.raw_sql))
    return out
