"""ChdbSink against real embedded ClickHouse: round trips, deduplication, retries, registry.

All tests share one chDB path and use a database of their own (see conftest.py).
"""

from __future__ import annotations

import pathlib
from collections.abc import Callable
from typing import Any

import pytest

from riskwatch.errors import SinkError
from sinks import ChdbSink, RetryPolicy
from sinks.clickhouse import MIGRATIONS, PROFILES, acquire_session, migrate, release_session

Factory = Callable[..., ChdbSink]


def count(sink: ChdbSink, table: str, final: bool = False, where: str = "1") -> int:
    rows = sink.query(f"SELECT count() AS n FROM {sink.database}.{table}"
                      f"{' FINAL' if final else ''} WHERE {where}")
    return int(rows[0]["n"])


def duplicated_blocks(sink: ChdbSink) -> int:
    """ClickHouse's process-wide counter of inserted blocks dropped as duplicates."""
    rows = sink.query("SELECT value FROM system.events WHERE event = 'DuplicatedInsertedBlocks'")
    return int(rows[0]["value"]) if rows else 0


def test_every_kind_round_trips(chdb_sink: Factory,
                                records: dict[str, list[dict[str, Any]]]) -> None:
    sink = chdb_sink()
    for kind, rows in records.items():
        for row in rows:
            sink.add(kind, row, token=f"{kind}:0:0-9")
    sink.flush()
    db = sink.database

    [alert] = sink.query(f"SELECT * FROM {db}.alerts FINAL")
    assert alert["ts"] == "2026-11-02 08:15:00.000"  # shown in Asia/Shanghai
    assert (alert["region"], alert["carrier"], alert["intent"], alert["merchant_id"]) == (
        "广东", "中通", "delivery_delay", "")  # flattened from dimensions for dashboards
    assert alert["summary"] == "广东/中通 催件投诉 42 件，预期 9.5 件"
    assert alert["examples"] == ["快递三天没动了，电话1**********"]
    [hub] = sink.query(f"SELECT JSONExtractString(contributors, 1, 'hub') AS hub FROM {db}.alerts")
    assert hub["hub"] == "广州白云转运中心"

    [complaint] = sink.query(f"SELECT * FROM {db}.complaints FINAL")
    assert complaint["masked_text"] == records["complaints"][0]["masked_text"]
    assert complaint["auto_resolved"] is False and complaint["auto_resolved_at"] is None
    assert complaint["customer_tier"] == "" and complaint["category"] == "服饰"
    assert complaint["sensitive"] == ["phone", "name"] and complaint["version"] == 1
    assert complaint["sentiment"] == pytest.approx(-0.46)

    aggs = sink.query(f"SELECT slice, region, carrier, merchant_id, orders, expected, "
                      f"intents['delivery_delay'] AS delay FROM {db}.aggregates FINAL "
                      "ORDER BY slice")
    assert aggs == [
        {"slice": "merchant_id=m-99", "region": "", "carrier": "", "merchant_id": "m-99",
         "orders": 4, "expected": None, "delay": 0},  # no baseline yet: NULL, not 0
        {"slice": "region=广东|carrier=中通", "region": "广东", "carrier": "中通",
         "merchant_id": "", "orders": 1200, "expected": 9.5, "delay": 30}]

    events = sink.query(f"SELECT event_id, ts, amount, partition, late FROM {db}.events FINAL "
                        "ORDER BY event_id")
    assert events == [
        {"event_id": "ev-1", "ts": "2026-11-02 08:01:00.000", "amount": 199.9, "partition": 0,
         "late": False},
        {"event_id": "ev-2", "ts": "2026-11-02 08:30:00.000", "amount": None,
         "partition": None, "late": True}]  # "Z" input, shown at +08:00

    [score] = sink.query(f"SELECT merchant_id, score, tier, components FROM {db}.scores FINAL")
    assert score == {"merchant_id": "m-17", "score": 72.5, "tier": "C",
                     "components": {"complaint_rate": -18, "delay_rate": -9.5}}

    [dead] = sink.query(f"SELECT dead_letter_id, source, `offset`, event_id "
                        f"FROM {db}.dead_letters FINAL")
    assert dead == {"dead_letter_id": "dl-orders-0-77", "source": "orders", "offset": 77,
                    "event_id": ""}


def test_a_resent_batch_with_the_same_token_is_dropped_by_the_server(
        chdb_sink: Factory, records: dict[str, list[dict[str, Any]]]) -> None:
    sink = chdb_sink()
    before = duplicated_blocks(sink)
    for _ in range(3):  # the original and two re-deliveries of offsets 1200-1201
        for row in records["events"]:
            sink.add("events", row, token="orders:0:1200-1201")
        sink.flush()
    # Dropped at insert: even the raw count (no FINAL) shows each event once.
    assert count(sink, "events") == 2
    assert count(sink, "events", final=True) == 2
    assert duplicated_blocks(sink) > before  # the evidence: ClickHouse saw the duplicates


def test_a_redelivered_record_in_another_batch_shows_once_under_final(
        chdb_sink: Factory, records: dict[str, list[dict[str, Any]]]) -> None:
    sink = chdb_sink()
    # Keep the two parts apart, so the raw count below shows both copies every time.
    sink.query(f"SYSTEM STOP MERGES {sink.database}.alerts")
    alert = records["alerts"][0]
    sink.add("alerts", alert, token="orders:0:10-19")
    sink.flush()
    sink.add("alerts", alert, token="orders:0:15-24")  # overlapping range after a rebalance
    sink.add("alerts", {**alert, "status": "resolved", "ts": "2026-11-02T09:00:00+08:00"},
             token="orders:0:15-24")
    sink.flush()
    db = sink.database
    assert count(sink, "alerts") == 3  # both copies are stored ...
    assert count(sink, "alerts", final=True) == 2  # ... and shown once: firing + resolved
    rows = sink.query(f"SELECT status, count() AS n FROM (SELECT alert_id, status, ts, "
                      f"argMax(score, version) AS score FROM {db}.alerts "
                      "GROUP BY alert_id, status, ts) GROUP BY status ORDER BY status")
    assert rows == [{"status": "firing", "n": 1}, {"status": "resolved", "n": 1}]
    [current] = sink.query(f"SELECT alert_id, status, first_ts, last_ts "
                           f"FROM {db}.alerts_current")
    assert current == {"alert_id": "al-7f3a", "status": "resolved",
                       "first_ts": "2026-11-02 08:15:00.000",
                       "last_ts": "2026-11-02 09:00:00.000"}


def test_a_later_complaint_version_supersedes_an_earlier_one(
        chdb_sink: Factory, records: dict[str, list[dict[str, Any]]]) -> None:
    sink = chdb_sink()
    first = records["complaints"][0]
    resolved = {**first, "version": 2, "auto_resolved": True, "status": "auto_resolved",
                "auto_resolved_at": "2026-11-02T10:00:00+08:00", "intent": "lost_parcel",
                "ts": "2026-11-09T10:00:00+08:00"}  # an update may carry another ts
    for record in (first, resolved, first):  # version 1 re-delivered last must not win
        sink.add("complaints", record)
        sink.flush()
    rows = sink.query(f"SELECT complaint_id, auto_resolved, auto_resolved_at, intent, version "
                      f"FROM {sink.database}.complaints FINAL")
    assert rows == [{"complaint_id": "c-1001", "auto_resolved": True,
                     "auto_resolved_at": "2026-11-02 10:00:00.000", "intent": "lost_parcel",
                     "version": 2}]


def test_a_batch_split_by_batch_size_dedupes_as_a_whole(chdb_sink: Factory) -> None:
    sink = chdb_sink(batch_size=3)
    rows = [{"event_id": f"ev-{i}", "type": "order", "ts": "2026-11-02T08:00:00+08:00"}
            for i in range(7)]
    for _ in range(2):  # a re-delivery of the same source range, cut into the same 3 batches
        for row in rows:
            sink.add("events", row, token="orders:3:500-506")
        sink.flush()
    assert count(sink, "events") == 7


def test_extra_and_missing_keys_do_not_break_inserts(chdb_sink: Factory) -> None:
    sink = chdb_sink()
    sink.add("scores", {"merchant_id": "m-1", "ts": "2026-11-02T09:00:00+08:00",
                        "score": 90.0, "tier": "A", "components": {},
                        "nested_extra": {"a": [1, 2, {"b": None}]}, "another": None})
    sink.add("aggregates", {"slice": "all", "bucket_start": "2026-11-02T08:00:00+08:00"})
    sink.flush()
    assert count(sink, "scores") == 1 and count(sink, "aggregates") == 1


def test_a_transient_error_is_retried_inside_flush_until_it_lands(
        chdb_sink: Factory, records: dict[str, list[dict[str, Any]]]) -> None:
    class Flaky(ChdbSink):
        failures = 3

        def write(self, kind: str, rows: list[dict[str, Any]], token: str | None) -> None:
            if self.failures:
                self.failures -= 1
                raise RuntimeError("Code: 241. DB::Exception: Memory limit exceeded "
                                   "(MEMORY_LIMIT_EXCEEDED)")
            super().write(kind, rows, token)

    delays: list[float] = []
    sink = chdb_sink(Flaky, sleep=delays.append, retry=RetryPolicy(max_attempts=1))
    sink.add("scores", records["scores"][0], token="scores:0:1-1")
    sink.flush()
    assert len(delays) == 3 and sink.pending() == {}
    assert count(sink, "scores") == 1


def test_a_permanent_error_raises_sink_error_and_keeps_the_batch(chdb_sink: Factory) -> None:
    delays: list[float] = []
    sink = chdb_sink(sleep=delays.append, retry=RetryPolicy(max_attempts=2))
    bad = {"slice": "all", "bucket_start": "2026-11-02T08:00:00+08:00", "orders": "lots"}
    sink.add("aggregates", bad, token="orders:0:1-1")
    with pytest.raises(SinkError, match=r"failed 2 times.*CANNOT_PARSE") as info:
        sink.flush()
    assert isinstance(info.value.__cause__, SinkError)
    assert len(delays) == 1 and sink.pending() == {"aggregates": 1}
    assert count(sink, "aggregates") == 0
    assert sink.drain() == [("aggregates", "orders:0:1-1", [bad])]


def test_migrate_is_idempotent_and_records_versions(chdb_sink: Factory) -> None:
    sink = chdb_sink()  # setup() migrated
    assert migrate(sink.query, database=sink.database) == []
    chdb_sink(database=sink.database)  # a second sink on the same database migrates nothing
    assert count(sink, "schema_migrations") == len(MIGRATIONS)  # no version recorded twice
    rows = sink.query(f"SELECT version, profile FROM {sink.database}.schema_migrations FINAL "
                      "ORDER BY version")
    assert rows == [{"version": m.version, "profile": "modern"} for m in MIGRATIONS]
    tables = {r["name"]: r["engine_full"] for r in sink.query(
        "SELECT name, engine_full FROM system.tables WHERE database = {db:String}",
        params={"db": sink.database})}
    assert set(tables) == {"aggregates", "alerts", "alerts_current", "complaints",
                           "dead_letters", "events", "schema_migrations", "scores"}
    assert "TTL toDateTime(ts) + toIntervalDay(180)" in tables["events"]
    assert "non_replicated_deduplication_window = 10000" in tables["aggregates"]


def test_a_store_of_an_older_release_gains_change_1d(chdb_sink: Factory, monkeypatch) -> None:
    """Migration 3 adds ``scores.change_1d`` to a store made before it existed; the rows
    stored before are NULL (not recorded), not 0 (no move)."""
    from sinks.clickhouse import schema

    monkeypatch.setattr(schema, "MIGRATIONS", schema.MIGRATIONS[:2])   # the older release
    old = chdb_sink()
    columns = f"SELECT name FROM system.columns WHERE database = '{old.database}' AND table = 'scores'"
    assert "change_1d" not in {r["name"] for r in old.query(columns)}
    old.add("scores", {"merchant_id": "m1", "ts": "2026-11-02T09:00:00+08:00", "score": 80.0,
                       "tier": "good", "components": {}, "change_1d": 2.0}, token="s:0:1-1")
    old.flush()
    monkeypatch.undo()
    new = chdb_sink(database=old.database)   # setup() applies migration 3 only
    assert "change_1d" in {r["name"] for r in new.query(columns)}
    new.add("scores", {"merchant_id": "m1", "ts": "2026-11-02T10:00:00+08:00", "score": 78.5,
                       "tier": "good", "components": {}, "change_1d": -1.5}, token="s:0:2-2")
    new.flush()
    rows = new.query(f"SELECT change_1d FROM {new.database}.scores FINAL ORDER BY ts")
    assert [r["change_1d"] for r in rows] == [None, -1.5]


def test_adding_a_column_another_process_just_added_is_not_an_error(chdb_sink: Factory) -> None:
    """Two workers migrating at once: the ALTER of the slower one fails, and the column is
    there, so that is success; a failure with the column still missing is raised."""
    from sinks.clickhouse.schema import AddColumn, Column, _add_column

    sink = chdb_sink()
    step = AddColumn("scores", Column("extra", "Nullable(Float64)"))
    alter = step.render(sink.database, PROFILES["modern"])
    check_first = sink.query   # what migrate passes

    def racing(sql: str):
        if sql.startswith("SELECT count() AS n FROM system.columns") and not racing.raced:
            racing.raced = True
            sink.query(alter)          # the other process wins between check and ALTER
            return [{"n": 0}]
        return check_first(sql)
    racing.raced = False
    _add_column(racing, sink.database, step, alter)   # its ALTER fails: column exists
    assert racing.raced
    with pytest.raises(SinkError, match="NO_SUCH_COLUMN|UNKNOWN_TABLE|doesn't exist|ILLEGAL"):
        bad = AddColumn("no_such_table", Column("x", "UInt8"))
        _add_column(sink.query, sink.database, bad, bad.render(sink.database, PROFILES["modern"]))


def test_query_errors_are_sink_errors(chdb_sink: Factory) -> None:
    with pytest.raises(SinkError, match="UNKNOWN_TABLE"):
        chdb_sink().query("SELECT * FROM no_such_table")


def test_sinks_on_one_path_share_a_session_and_a_second_path_is_refused(
        chdb_path: str, tmp_path: pathlib.Path) -> None:
    one = ChdbSink(chdb_path, database="registry_a")
    two = ChdbSink(chdb_path, database="registry_b")
    with one, two:
        assert one._shared is two._shared
        other = str(tmp_path / "other")
        with pytest.raises(SinkError, match=r"already open at .* cannot be opened") as info:
            ChdbSink(other).setup()
        assert chdb_path in str(info.value) and other in str(info.value)
        one.query("DROP DATABASE registry_b")
        one.query("DROP DATABASE registry_a")
    # Every user released the session: this process may now open another path.
    session = acquire_session(tmp_path / "other")
    try:
        assert session.query("SELECT 1", "CSV").bytes() == b"1\n"
    finally:
        release_session(tmp_path / "other")


def test_raw_events_older_than_the_ttl_are_not_kept(chdb_sink: Factory) -> None:
    # TTL is on *event* time: replaying a file older than 180 days stores its aggregates
    # and alerts but not, for long, its raw events: ClickHouse drops expired rows when it
    # merges parts (soon after the insert, at a time of its choosing; OPTIMIZE forces it).
    sink = chdb_sink()
    sink.add("events", {"event_id": "old", "ts": "2020-01-02T08:00:00+08:00"})
    sink.add("events", {"event_id": "recent", "ts": "2026-11-02T08:00:00+08:00"})
    sink.flush()
    sink.query(f"OPTIMIZE TABLE {sink.database}.events FINAL")
    assert sink.query(f"SELECT event_id FROM {sink.database}.events") == [
        {"event_id": "recent"}]
