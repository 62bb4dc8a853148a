"""Every panel query of every dashboard, macros expanded as the plugin does, run on chDB.

Grafana cannot be installed on this machine, so the proof that the dashboards work is:
expand the ClickHouse plugin's macros and the template variables exactly as Grafana would
(:mod:`dashboards.macros`), run each query on the real ClickHouse engine (chDB) against
two simulated days replayed through the live pipeline, and check the columns each panel
needs and that it shows something.  A second database receives every batch twice (the
at-least-once re-delivery a worker crash causes) plus a third copy of some records in
other batches, and every panel must show exactly what it shows with one delivery.
"""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from dashboards.definitions import ALL, build_dashboards, panel_queries
from dashboards.macros import expand
from sinks.clickhouse import ChdbSink
from tests.dashboards.conftest import Batch, time_range, write_batches

#: The columns each panel must return (Grafana field names the panel relies on).
EXPECTED_COLUMNS: dict[str, list[str]] = {
    "Firing alerts": ["firing"],
    "Auto-resolved complaints": ["auto_resolved_pct", "resolved_tickets", "total_complaints",
                                 "agent_hours_saved"],
    "Orders and complaints": ["total_orders", "total_complaints", "complaints_per_1k_orders"],
    "Complaints vs expected (platform)": ["time", "observed", "baseline"],
    "Complaint rate vs expected by province": ["province", "total_orders", "total_complaints",
                                               "total_expected",
                                               "per_1k_orders", "ratio_to_expected",
                                               "max_score"],
    "Top anomalous slices": ["slice", "max_score", "total_complaints", "total_expected",
                             "worst_bucket"],
    "Alert timeline (firing, by severity)": ["time", "severity", "alerts"],
    "Alerts": ["alert_id", "status", "severity", "first_seen", "last_seen", "summary"],
    "Complaint intent mix": ["intent", "complaints"],
    "Auto-resolution share": ["time", "auto_resolved_pct"],
    "Complaints and orders": ["time", "complaints", "orders"],
    "Matching slices": ["slice", "total_orders", "total_complaints", "total_expected",
                        "max_score"],
    "Intent breakdown": ["intent", "complaints"],
    "Alerts on these slices": ["alert_id", "status", "severity", "first_seen", "summary"],
    "Example complaints (masked)": ["ts", "intent", "sentiment", "channel", "status",
                                    "masked_text"],
    "Score distribution (latest)": ["score"],
    "Merchants per tier": ["tier", "merchants"],
    "Movers": ["merchant_id", "first_score", "last_score", "change"],
    "Score of ${merchant}": ["time", "avg_score"],
    "What pulls ${merchant} down (latest components)": ["component", "points"],
    "Events per second (event time)": ["time", "type", "events_per_s"],
    "Lag: event time to stored": ["time", "p50_lag_s", "p95_lag_s"],
    "Dead letters by reason": ["time", "reason", "dead_letters"],
    "Late events": ["time", "late_events", "late_pct"],
    "Latest dead letters": ["ts", "source", "reason", "detail", "payload_excerpt"],
}

INTERVAL_S = 1800  # what Grafana picks for two days on a ~100-point wide panel


def all_queries() -> list[tuple[str, str, str, str]]:
    return [(uid, title, kind, sql) for uid, board in build_dashboards("dash_demo").items()
            for title, kind, sql in panel_queries(board)]


def run(sink: ChdbSink, sql: str, rng: tuple[int, int], variables: dict[str, list[str]]
        ) -> list[dict[str, Any]]:
    return sink.query(expand(sql, time_from=rng[0], time_to=rng[1], interval_s=INTERVAL_S,
                             variables=variables))


def time_range_for(sink: ChdbSink, uid: str) -> tuple[int, int]:
    """The demo's event-time range; pipeline health also covers now (dead letters are
    stamped when recorded, not with the event's time)."""
    lo, hi = time_range(sink, "dash_demo")
    return (lo, max(hi, int(time.time()))) if uid == "riskwatch-pipeline" else (lo, hi)


def variables_for(sink: ChdbSink, uid: str, selection: str) -> dict[str, list[str]]:
    """Every dashboard's variables: "All" everywhere, or the analyst's choice."""
    chosen = chosen_variables(sink)
    if uid == "riskwatch-merchants":  # single-valued: one merchant's page
        return {"merchant": chosen["merchant"]}
    if selection == "all":
        return {"region": [ALL], "carrier": [ALL], "intent": [ALL], "merchant": [ALL]}
    return {**chosen, "merchant": [ALL]}


def chosen_variables(sink: ChdbSink) -> dict[str, list[str]]:
    """A selection a risk analyst would make: the slice of the strongest alert."""
    [alert] = sink.query("SELECT region, carrier, intent FROM dash_demo.alerts FINAL "
                         "WHERE region != '' ORDER BY score DESC, alert_id LIMIT 1")
    regions = [r["region"] for r in sink.query(
        "SELECT region FROM dash_demo.complaints FINAL WHERE region != %s "
        "GROUP BY region ORDER BY count() DESC, region LIMIT 1".replace(
            "%s", "{r:String}"), {"r": alert["region"]})]
    [merchant] = sink.query("SELECT merchant_id FROM dash_demo.scores FINAL "
                            "GROUP BY merchant_id ORDER BY count() DESC, merchant_id LIMIT 1")
    return {"region": [alert["region"], *regions],  # multi-value
            "carrier": [ALL], "intent": [ALL], "merchant": [merchant["merchant_id"]]}


def test_every_dashboard_and_variable_is_covered() -> None:
    titles = {title for _, title, _, _ in all_queries()}
    assert titles == set(EXPECTED_COLUMNS)
    boards = build_dashboards()
    names = {v.name for b in boards.values() for v in (b.templating.list_val or [])}
    assert {"region", "carrier", "merchant", "intent"} <= names


@pytest.mark.parametrize("selection", ["all", "chosen"])
def test_every_panel_query_runs_and_shows_data(demo_db: ChdbSink, selection: str) -> None:
    empty, failures = [], []
    for uid, title, kind, sql in all_queries():
        try:
            rows = run(demo_db, sql, time_range_for(demo_db, uid),
                       variables_for(demo_db, uid, selection))
        except Exception as exc:  # noqa: BLE001 - collect every broken panel at once
            failures.append(f"{uid}/{title}: {exc}")
            continue
        if not rows:
            empty.append(f"{uid}/{title}")
            continue
        assert list(rows[0]) == EXPECTED_COLUMNS[title], (uid, title)
        if kind == "timeseries":  # Grafana needs a time column first, in order
            times = [r["time"] for r in rows]
            assert times == sorted(times), (uid, title)
    assert not failures, "\n".join(failures)
    assert not empty, f"panels without data: {empty}"


def test_variable_queries_list_values(demo_db: ChdbSink) -> None:
    rng = time_range(demo_db, "dash_demo")
    for uid, board in build_dashboards("dash_demo").items():
        for var in board.templating.list_val or []:
            rows = run(demo_db, var.query, rng, {})
            values = [next(iter(r.values())) for r in rows]
            assert values and "" not in values, (uid, var.name)


def test_the_time_filter_and_variables_really_filter(demo_db: ChdbSink) -> None:
    lo, hi = time_range(demo_db, "dash_demo")
    [(_, _, _, sql)] = [q for q in all_queries() if q[1] == "Complaint intent mix"]
    whole = sum(r["complaints"] for r in run(demo_db, sql, (lo, hi), {}))
    first_half = sum(r["complaints"] for r in run(demo_db, sql, (lo, (lo + hi) // 2), {}))
    [total] = demo_db.query("SELECT count() AS n FROM dash_demo.complaints FINAL")
    assert whole == total["n"] and 0 < first_half < whole
    [(_, _, _, sql)] = [q for q in all_queries() if q[1] == "Intent breakdown"]
    chosen = chosen_variables(demo_db)
    everything = {"region": [ALL], "carrier": [ALL], "intent": [ALL], "merchant": [ALL]}
    one_region = {**everything, "region": chosen["region"][:1]}
    n_all = sum(r["complaints"] for r in run(demo_db, sql, (lo, hi), everything))
    n_one = sum(r["complaints"] for r in run(demo_db, sql, (lo, hi), one_region))
    n_two = sum(r["complaints"] for r in run(demo_db, sql, (lo, hi),
                                             {**everything, "region": chosen["region"]}))
    [expected] = demo_db.query("SELECT count() AS n FROM dash_demo.complaints FINAL "
                               "WHERE region = {r:String}", {"r": chosen["region"][0]})
    assert n_all == total["n"] and n_one == expected["n"] and n_one < n_two < n_all


def test_no_panel_shows_unmasked_personal_data(demo_db: ChdbSink) -> None:
    from streams.text.pii import contains_unmasked_pii

    for uid, title, _kind, sql in all_queries():
        for row in run(demo_db, sql.replace("LIMIT 50", "LIMIT 100000")
                       .replace("LIMIT 100", "LIMIT 100000"), time_range_for(demo_db, uid),
                       variables_for(demo_db, uid, "all")):
            for value in row.values():
                if isinstance(value, str):
                    assert not contains_unmasked_pii(value), (uid, title, value)


def _in_order(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    def key(row: dict[str, Any]) -> tuple[str, list[float]]:
        exact = {k: v for k, v in row.items() if not isinstance(v, float)}
        return (json.dumps(exact, sort_keys=True, ensure_ascii=False),
                [v for v in row.values() if isinstance(v, float)])
    return sorted(rows, key=key)


def _approx(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Floats compared approximately: sums taken in another order may differ in the last
    digit, which round() then shows as 7.41 or 7.42."""
    return [{k: (pytest.approx(v, rel=1e-3, abs=0.011) if isinstance(v, float) else v)
             for k, v in row.items()} for row in rows]


def test_redelivered_batches_leave_no_duplicate_visible_to_any_panel(
        demo_db: ChdbSink, demo_outputs: list[Batch]) -> None:
    twice = ChdbSink(demo_db.path, database="dash_twice", batch_size=50_000)
    twice.setup()
    try:
        write_batches(twice, demo_outputs)
        write_batches(twice, demo_outputs)  # same batches, same tokens: a worker restart
        # The same records again in other batches (other tokens): only the table keys
        # (ReplacingMergeTree + FINAL) can collapse these.
        for kind, _token, records in demo_outputs:
            for record in records[::5]:
                twice.add(kind, record, token="redelivered-elsewhere")
        twice.flush()
        for table in ("aggregates", "alerts", "complaints", "events", "scores"):
            raw = twice.query(f"SELECT count() AS n FROM dash_twice.{table}")[0]["n"]
            once = demo_db.query(f"SELECT count() AS n FROM dash_demo.{table}")[0]["n"]
            assert raw > once, f"{table}: the re-deliveries did not reach the table"
        for uid, title, _kind, sql in all_queries():
            rng, variables = time_range_for(demo_db, uid), variables_for(demo_db, uid, "chosen")
            expected = run(demo_db, sql, rng, variables)
            got = run(twice, sql.replace("dash_demo.", "dash_twice."), rng, variables)
            if "inserted_at" in sql:  # ingestion-time columns differ between databases
                assert len(got) == len(expected), (uid, title)
            else:
                assert _in_order(got) == _approx(_in_order(expected)), (uid, title)
    finally:
        twice.query("DROP DATABASE IF EXISTS dash_twice")
        twice.close()


def test_alert_rule_queries_return_one_number(demo_db: ChdbSink) -> None:
    """Grafana alerting needs one numeric row from a table-format query."""
    from dashboards.alert_rules import rule_queries

    # From the demo's first bucket to now: the stalled-rule's partition guard
    # ($__fromTime - 1 day) must reach the simulated days, which lie in the past.
    rng = (time_range(demo_db, "dash_demo")[0], int(time.time()))
    for uid, sql in rule_queries("dash_demo"):
        rows = run(demo_db, sql, rng, {})
        assert len(rows) == 1 and len(rows[0]) == 1, uid
        [value] = rows[0].values()
        assert isinstance(value, int), uid
        if uid == "riskwatch-pipeline-stalled":
            assert value > 0  # rows were stored minutes ago: not stalled
