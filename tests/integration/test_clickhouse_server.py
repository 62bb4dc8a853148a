"""ClickHouseServerSink against a real ClickHouse server (Debian's clickhouse-server 18.16).

The server runs as a subprocess with a generated config on free loopback ports in a tmp
directory (:class:`sinks.clickhouse.local_server.LocalClickHouseServer`), with the users of
``sinks/clickhouse/users.xml``.  18.16 is old: the sink must pick the "legacy" profile,
and it has no ``insert_deduplication_token``, so re-deliveries are absorbed by the
ReplacingMergeTree keys (read with FINAL), which is what these tests check.
No ``clickhouse-server`` binary: a skip with the reason, a failure under ``CI=true``
(``make test-deps`` installs it).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from riskwatch.cli import main
from riskwatch.errors import SinkError
from riskwatch.simulator import SimulationConfig
from riskwatch.simulator.traffic import write_files
from sinks.base import RetryPolicy
from sinks.clickhouse.local_server import LocalClickHouseServer, find_server_binary
from sinks.clickhouse.schema import TABLES
from sinks.clickhouse.schema import migrate
from sinks.clickhouse.server_sink import ClickHouseServerSink, execute_rows
from streams.pipeline import Pipeline
from streams.replay import replay_file
from tests.conftest import unavailable
from tests.sinks.conftest import sample_records

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalClickHouseServer]:
    if find_server_binary() is None:
        unavailable("clickhouse-server is not installed (Debian: apt-get install "
                    "clickhouse-server; `make test-deps` installs it)")
    with LocalClickHouseServer(tmp_path_factory.mktemp("clickhouse")) as srv:
        yield srv


@pytest.fixture(scope="module")
def replayed(tmp_path_factory: pytest.TempPathFactory) -> list[tuple[str, str, list[dict]]]:
    """One simulated day replayed through the pipeline, as the batches a worker writes."""
    path = tmp_path_factory.mktemp("sim") / "events.jsonl"
    write_files(SimulationConfig(days=1, orders_per_day=10_000), path)
    batches: list[tuple[str, str, list[dict]]] = []

    def on_output(out) -> None:
        n = len(batches)
        batches.extend((kind, f"events:0:{n}", list(recs)) for kind, recs in out.items() if recs)

    replay_file(Pipeline(keep_events=True, keep_aggregates=True), path, on_output=on_output)
    return batches


def sink_for(server: LocalClickHouseServer, database: str, **kwargs) -> ClickHouseServerSink:
    sink = ClickHouseServerSink(server.url, database=database, **kwargs)
    sink.setup()
    return sink


def test_every_kind_round_trips_with_the_legacy_profile(server: LocalClickHouseServer) -> None:
    sink = sink_for(server, "rt")
    try:
        assert sink.server_version[:2] == (18, 16) and sink.profile == "legacy"
        assert not sink.dedup_tokens
        records = sample_records()
        for kind, rows in records.items():
            for row in rows:
                sink.add(kind, row, token=f"{kind}:0:0-9")
        sink.flush()
        [alert] = sink.query("SELECT region, carrier, intent, merchant_id, summary, examples, "
                             "toString(ts) AS ts, contributors FROM rt.alerts FINAL")
        assert (alert["region"], alert["carrier"], alert["intent"], alert["merchant_id"]) == (
            "广东", "中通", "delivery_delay", "")
        assert alert["ts"] == "2026-11-02 08:15:00"  # Asia/Shanghai, seconds
        assert alert["summary"] == records["alerts"][0]["summary"]
        assert alert["examples"] == records["alerts"][0]["examples"]
        assert '"广州白云转运中心"' in alert["contributors"]
        aggs = sink.query("SELECT slice, orders, expected, "
                          "visitParamExtractUInt(intents, 'delivery_delay') AS delay "
                          "FROM rt.aggregates FINAL ORDER BY slice")
        assert [(a["orders"], a["expected"], a["delay"]) for a in aggs] == [
            (4, None, 0), (1200, 9.5, 30)]
        [complaint] = sink.query("SELECT masked_text, auto_resolved, sensitive, version, "
                                 "customer_tier FROM rt.complaints FINAL")
        assert complaint == {"masked_text": records["complaints"][0]["masked_text"],
                             "auto_resolved": 0, "sensitive": ["phone", "name"], "version": 1,
                             "customer_tier": ""}
        [score] = sink.query("SELECT components, change_1d FROM rt.scores FINAL")
        assert score["components"] == '{"complaint_rate":-18.0,"delay_rate":-9.5}'
        assert score["change_1d"] == records["scores"][0]["change_1d"]
        counts = {t: sink.query(f"SELECT count() AS n FROM rt.{t}")[0]["n"] for t in records}
        assert counts == {k: len(v) for k, v in records.items()}
    finally:
        sink.query("DROP DATABASE IF EXISTS rt")
        sink.close()


def _view(sink: ClickHouseServerSink, db: str) -> dict[str, object]:
    """What dashboards read, in queries 18.16 can run: FINAL counts and sums per table."""
    return {
        "aggregates": sink.query(f"SELECT count() AS n, sum(orders) AS orders, "
                                 f"sum(complaints) AS complaints FROM {db}.aggregates FINAL"),
        "by_region": sink.query(f"SELECT region, sum(complaints) AS c FROM {db}.aggregates FINAL "
                                "WHERE slice = concat('region=', region) GROUP BY region "
                                "ORDER BY region"),
        "alerts": sink.query(f"SELECT count() AS n, uniqExact(alert_id) AS ids "
                             f"FROM {db}.alerts FINAL"),
        "complaints": sink.query(f"SELECT intent, count() AS n FROM {db}.complaints FINAL "
                                 "GROUP BY intent ORDER BY intent"),
        "events": sink.query(f"SELECT type, count() AS n, sum(late) AS late "
                             f"FROM {db}.events FINAL GROUP BY type ORDER BY type"),
        "scores": sink.query(f"SELECT count() AS n, round(sum(score), 3) AS s "
                             f"FROM {db}.scores FINAL"),
        "dead_letters": sink.query(f"SELECT count() AS n FROM {db}.dead_letters FINAL"),
    }


def test_redelivered_batches_show_once(server: LocalClickHouseServer, replayed) -> None:
    once, twice = sink_for(server, "once"), sink_for(server, "twice", batch_size=20_000)
    try:
        for sink, rounds in ((once, 1), (twice, 2)):
            for _ in range(rounds):
                for kind, token, records in replayed:
                    for record in records:
                        sink.add(kind, record, token=token)
                    sink.flush()
        for kind, _token, records in replayed:  # and again, in other batches
            for record in records[::4]:
                twice.add(kind, record, token="elsewhere")
        twice.flush()
        raw_once = once.query("SELECT count() AS n FROM once.aggregates")[0]["n"]
        raw_twice = twice.query("SELECT count() AS n FROM twice.aggregates")[0]["n"]
        assert raw_twice > 2 * raw_once  # every copy reached the server (no token dedup)...
        view = _view(once, "once")
        assert view["aggregates"][0]["n"] == raw_once and view["by_region"]
        assert _view(twice, "twice") == view  # ...and none is visible
    finally:
        once.query("DROP DATABASE IF EXISTS once")
        once.query("DROP DATABASE IF EXISTS twice")
        once.close()
        twice.close()


def _block(records: list[dict]) -> dict[str, list]:
    """Records as one column block (``Sink.add_columns``); a missing key is None."""
    names = list(dict.fromkeys(name for r in records for name in r))
    return {name: [r.get(name) for r in records] for name in names}


def _contents(sink: ClickHouseServerSink, db: str, kind: str) -> list[tuple]:
    """Every row of a table, all columns but the ingestion-time ones, sorted."""
    names = [c.name for c in TABLES[kind].columns]
    rows = sink.query(f"SELECT {', '.join(f'`{n}`' for n in names)} FROM {db}.{kind}")
    return sorted((tuple(repr(r[n]) for n in names) for r in rows))


def test_column_blocks_and_records_leave_the_same_table_contents(
        server: LocalClickHouseServer, replayed) -> None:
    """The pipeline's day as column blocks (add_columns) vs the same records one by one."""
    by_rows, by_blocks = sink_for(server, "by_rows"), sink_for(server, "by_blocks")
    try:
        for kind, token, records in replayed:
            for record in records:
                by_rows.add(kind, record, token=token)
            by_blocks.add_columns(kind, _block(records), token=token)
            by_rows.flush()
            by_blocks.flush()
        kinds = {kind for kind, _token, _records in replayed}
        assert {"aggregates", "events", "complaints", "scores"} <= kinds
        for kind in kinds:
            rows = _contents(by_rows, "by_rows", kind)
            assert rows and rows == _contents(by_blocks, "by_blocks", kind), kind
    finally:
        by_rows.query("DROP DATABASE IF EXISTS by_rows")
        by_rows.query("DROP DATABASE IF EXISTS by_blocks")
        by_rows.close()
        by_blocks.close()


def test_kept_slice_encodings_leave_the_same_table_contents(
        server: LocalClickHouseServer, replayed) -> None:
    """The day's aggregates (slices recurring every bucket) with the per-slice encodings
    kept across batches (default) vs none kept: same rows, same dimensions and intents."""
    kept = sink_for(server, "kept", batch_size=2_000)
    fresh = sink_for(server, "fresh", batch_size=2_000, repeat_cache_keys=0)
    try:
        aggregates = [(token, records) for kind, token, records in replayed
                      if kind == "aggregates"]
        for token, records in aggregates:
            kept.add_columns("aggregates", _block(records), token=token)
            for record in records:
                fresh.add("aggregates", record, token=token)
            kept.flush()
            fresh.flush()
        slices = [r["slice"] for _token, records in aggregates for r in records]
        assert len(slices) > 3 * len(set(slices))  # the cache had repeats to serve
        assert len(kept._plans["aggregates"].repeats["dimensions"]) == len(set(slices))
        rows = _contents(kept, "kept", "aggregates")
        assert len(rows) == len(slices) and rows == _contents(fresh, "fresh", "aggregates")
        [check] = kept.query("SELECT countIf(slice = concat('region=', region)) AS own, "
                             "count() AS n FROM kept.aggregates WHERE slice LIKE 'region=%' "
                             "AND slice NOT LIKE '%|%'")
        assert check["own"] == check["n"] > 0  # each region slice holds its own dimensions
    finally:
        kept.query("DROP DATABASE IF EXISTS kept")
        kept.query("DROP DATABASE IF EXISTS fresh")
        kept.close()
        fresh.close()


def test_a_redelivered_column_block_shows_once(server: LocalClickHouseServer, replayed) -> None:
    once, twice = sink_for(server, "blocks_once"), sink_for(server, "blocks_twice",
                                                             batch_size=20_000)
    try:
        for sink, rounds in ((once, 1), (twice, 2)):
            for _ in range(rounds):  # a worker restarted before its commit: same blocks again
                for kind, token, records in replayed:
                    sink.add_columns(kind, _block(records), token=token)
                    sink.flush()
        for kind, _token, records in replayed:  # and again, cut into other blocks
            twice.add_columns(kind, _block(records[::4]), token="elsewhere")
        twice.flush()
        raw_once = once.query("SELECT count() AS n FROM blocks_once.aggregates")[0]["n"]
        raw_twice = twice.query("SELECT count() AS n FROM blocks_twice.aggregates")[0]["n"]
        assert raw_twice > 2 * raw_once  # every copy reached the server (no token dedup)...
        view = _view(once, "blocks_once")
        assert view["aggregates"][0]["n"] == raw_once and view["by_region"]
        assert _view(twice, "blocks_twice") == view  # ...and none is visible under FINAL
    finally:
        once.query("DROP DATABASE IF EXISTS blocks_once")
        once.query("DROP DATABASE IF EXISTS blocks_twice")
        once.close()
        twice.close()


def test_columnar_batches_of_the_configured_size(server: LocalClickHouseServer, replayed) -> None:
    sink = sink_for(server, "batches", batch_size=10_000)
    try:
        aggregates = [r for kind, _t, recs in replayed if kind == "aggregates" for r in recs]
        for record in aggregates[:25_000]:
            sink.add("aggregates", record, token="t")
        assert sink.pending() == {"aggregates": 5_000}  # two full batches already written
        sink.flush()
        parts = sink.query("SELECT count() AS n FROM system.parts WHERE database = 'batches' "
                           "AND table = 'aggregates' AND active")
        assert 1 <= parts[0]["n"] <= 3 * 2  # few, large parts (≤ 2 partitions per insert)
        assert sink.query("SELECT count() AS n FROM batches.aggregates")[0]["n"] == 25_000
    finally:
        sink.query("DROP DATABASE IF EXISTS batches")
        sink.close()


def test_a_server_outage_is_retried_and_nothing_is_lost(tmp_path: Path) -> None:
    if find_server_binary() is None:
        unavailable("clickhouse-server is not installed")
    srv = LocalClickHouseServer(tmp_path).start()
    slept: list[float] = []
    sink = ClickHouseServerSink(srv.url, database="outage", sleep=slept.append,
                                retry=RetryPolicy(initial_delay=0.01, max_transient_attempts=3))
    try:
        sink.setup()
        sink.add("scores", sample_records()["scores"][0], token="s:0:1")
        srv.stop()
        with pytest.raises(SinkError, match="failed 3 times"):
            sink.flush()
        assert sink.pending() == {"scores": 1} and len(slept) == 2  # kept, backed off
        srv.start_again()
        sink.flush()
        assert sink.pending() == {}
        assert sink.query("SELECT count() AS n FROM outage.scores")[0]["n"] == 1
    finally:
        sink.close()
        srv.stop()


def test_writer_and_dashboard_users(server: LocalClickHouseServer) -> None:
    admin = sink_for(server, "riskwatch")
    # The writer cannot run DDL: its setup() skips the migration (done by the admin above).
    writer = ClickHouseServerSink(server.user_url("riskwatch_writer", server.writer_password))
    reader = ClickHouseServerSink(server.user_url("riskwatch_dashboard",
                                                  server.dashboard_password),
                                  migrate_schema=False)
    try:
        writer.add("scores", sample_records()["scores"][0], token="u:0:1")
        writer.flush()
        with pytest.raises(SinkError, match="DDL|allow_ddl|Not enough privileges|Code: 392"):
            writer.query("DROP TABLE riskwatch.scores")
        rows = reader.query("SELECT merchant_id FROM riskwatch.scores FINAL")
        assert rows == [{"merchant_id": "m-17"}]
        with pytest.raises(SinkError, match="readonly|Code: 164"):
            reader.query("INSERT INTO riskwatch.scores (merchant_id) SELECT 'x'")
        with pytest.raises(SinkError, match="readonly|Code: 164"):
            reader.query("CREATE TABLE riskwatch.x (a UInt8) ENGINE = Memory")
        admin.query("CREATE TABLE IF NOT EXISTS default.elsewhere (a UInt8) ENGINE = Memory")
        with pytest.raises(SinkError, match="Code: 291"):  # DATABASE_ACCESS_DENIED
            reader.query("SELECT count() FROM default.elsewhere")
    finally:
        admin.query("DROP DATABASE IF EXISTS riskwatch")
        admin.query("DROP TABLE IF EXISTS default.elsewhere")
        for s in (writer, reader, admin):
            s.close()


def test_a_store_of_an_older_release_gains_change_1d(server: LocalClickHouseServer,
                                                    monkeypatch) -> None:
    """Debian's 18.16 has no ADD COLUMN IF NOT EXISTS: migration 3 checks system.columns."""
    from sinks.clickhouse import schema

    monkeypatch.setattr(schema, "MIGRATIONS", schema.MIGRATIONS[:2])   # the older release
    old = sink_for(server, "upgrade")
    try:
        # a row as the older release wrote it (its sink knew no change_1d column)
        old.query("INSERT INTO upgrade.scores (merchant_id, ts, score, tier, components) "
                  "SELECT 'm1', toDateTime('2026-11-02 09:00:00'), 80.0, 'good', '{}'")
        monkeypatch.undo()
        new = sink_for(server, "upgrade")   # setup() migrates to 3
        new.add("scores", {"merchant_id": "m1", "ts": "2026-11-02T10:00:00+08:00",
                           "score": 78.5, "tier": "good", "components": {}, "change_1d": -1.5})
        new.flush()
        rows = new.query("SELECT toString(ts) AS ts, change_1d FROM upgrade.scores FINAL "
                         "ORDER BY ts")
        assert [r["change_1d"] for r in rows] == [None, -1.5]   # older rows: not recorded
        assert migrate(execute_rows(new._client), "legacy", database="upgrade") == []
        new.close()
    finally:
        old.query("DROP DATABASE IF EXISTS upgrade")
        old.close()


def test_db_migrate_command(server: LocalClickHouseServer, capsys) -> None:
    url = server.url.replace("/riskwatch", "/cli_db")
    assert main(["db", "migrate", "--clickhouse-url", url]) == 0
    assert main(["db", "migrate", "--clickhouse-url", url]) == 0  # idempotent
    out = capsys.readouterr().out.splitlines()
    assert "ClickHouse 18.16.1" in out[0] and "ClickHouse 18.16.1" in out[1]
    assert "schema at version 3 of 3 (profile legacy; applied now: 1, 2, 3)" in out[0]
    assert "(profile legacy; already at version 3, nothing to apply)" in out[1]
    admin = sink_for(server, "cli_db")
    try:
        tables = {r["name"] for r in admin.query(
            "SELECT name FROM system.tables WHERE database = 'cli_db'")}
        assert {"aggregates", "alerts", "alerts_current", "complaints", "dead_letters",
                "events", "schema_migrations", "scores"} == tables
    finally:
        admin.query("DROP DATABASE IF EXISTS cli_db")
        admin.close()


def test_the_server_fills_the_flattened_dimensions(server: LocalClickHouseServer) -> None:
    """The sink does not send region/carrier/…: 18.16 computes them from the JSON text with
    the legacy DEFAULT (visitParamExtractString), and must get back the exact values."""
    tricky = [{"region": 'a"b\\c', "carrier": "顺丰😀", "merchant_id": "m,1:2}"},
              {"region": "region", "intent": "\t退款/refund\n"}, {}]
    sink = sink_for(server, "flat")
    try:
        base = sample_records()["aggregates"][0]
        for n, dims in enumerate(tricky):
            sink.add("aggregates", {**base, "slice": f"s{n}", "dimensions": dims}, token="t")
        sink.flush()
        rows = sink.query("SELECT region, carrier, merchant_id, category, intent "
                          "FROM flat.aggregates ORDER BY slice")
        keys = ("region", "carrier", "merchant_id", "category", "intent")
        assert rows == [{k: dims.get(k, "") for k in keys} for dims in tricky]
    finally:
        sink.query("DROP DATABASE IF EXISTS flat")
        sink.close()


def _kinds_in_big_batches(replayed) -> dict[str, list[dict]]:
    """The replayed day's records per kind, each kind one batch (one token)."""
    by_kind: dict[str, list[dict]] = {}
    for kind, _token, records in replayed:
        by_kind.setdefault(kind, []).extend(records)
    return by_kind


def test_pipelined_chunks_and_whole_inserts_leave_the_same_table_contents(
        server: LocalClickHouseServer, replayed) -> None:
    """Each kind's day as one batch inserted in chunks of 1,000 rows (records and column
    blocks, ``chunk_rows``) vs the same batch as one INSERT: identical rows in every table."""
    by_kind = _kinds_in_big_batches(replayed)
    assert len(by_kind["aggregates"]) > 3_000  # several chunks, and a short last one
    whole = sink_for(server, "whole", batch_size=100_000)
    chunked = sink_for(server, "chunked", batch_size=100_000, chunk_rows=1_000)
    blocks = sink_for(server, "chunked_blocks", batch_size=100_000, chunk_rows=1_000)
    try:
        for kind, records in by_kind.items():
            for record in records:
                whole.add(kind, record, token=f"{kind}:0:all")
                chunked.add(kind, record, token=f"{kind}:0:all")
            blocks.add_columns(kind, _block(records), token=f"{kind}:0:all")
        for sink in (whole, chunked, blocks):
            sink.flush()
        assert chunked._writer is not None and whole._writer is None  # really chunked
        for kind in by_kind:
            rows = _contents(whole, "whole", kind)
            assert len(rows) == len(by_kind[kind]), kind
            assert rows == _contents(chunked, "chunked", kind), kind
            assert rows == _contents(blocks, "chunked_blocks", kind), kind
    finally:
        for db in ("whole", "chunked", "chunked_blocks"):
            whole.query(f"DROP DATABASE IF EXISTS {db}")
        for sink in (whole, chunked, blocks):
            sink.close()


def test_a_server_crash_mid_batch_then_redelivery_shows_every_row_once(
        tmp_path: Path, replayed) -> None:
    """The server is killed while chunk 3 of a chunked batch is built (chunks 1-2 written
    or on their way); the flush fails and keeps the batch; after the restart the next
    flush sends every chunk again, and a re-delivery of the whole batch (a worker
    restarted before its commit) follows: no row is visible twice to the dashboard
    queries (18.16 has no dedup tokens: under FINAL), none is missing."""
    if find_server_binary() is None:
        unavailable("clickhouse-server is not installed")
    records = _kinds_in_big_batches(replayed)["aggregates"][:4_500]
    srv = LocalClickHouseServer(tmp_path).start()
    slept: list[float] = []
    sink = ClickHouseServerSink(srv.url, database="crash", chunk_rows=1_000, sleep=slept.append,
                                retry=RetryPolicy(initial_delay=0.01, max_transient_attempts=3))
    reference = ClickHouseServerSink(srv.url, database="crash_ref")
    try:
        sink.setup()
        plan = sink._plan("aggregates")
        build_columns, builds = plan.build_columns, []

        def crash_at_chunk_3(columns, rows):  # noqa: ANN001, ANN202
            builds.append(rows)
            if len(builds) == 3:
                srv.proc.kill()  # SIGKILL: a crash, mid-batch
                srv.proc.wait()
            return build_columns(columns, rows)

        object.__setattr__(plan, "build_columns", crash_at_chunk_3)  # a frozen dataclass
        token = "aggregates:0:0-4499"
        sink.add_columns("aggregates", _block(records), token=token)
        with pytest.raises(SinkError, match="failed 3 times"):
            sink.flush()
        assert sink.pending() == {"aggregates": 4_500} and len(slept) == 2
        srv.start_again()
        sink.flush()
        raw = sink.query("SELECT count() AS n FROM crash.aggregates")[0]["n"]
        assert 4_500 + 1_000 <= raw <= 4_500 + 2_000  # chunk 1 (and 2) landed before
        sink.add_columns("aggregates", _block(records), token=token)  # re-delivered
        sink.flush()
        reference.setup()
        reference.add_columns("aggregates", _block(records), token=token)
        reference.flush()
        view = _view(reference, "crash_ref")
        assert view["aggregates"][0]["n"] == 4_500 and view["by_region"]
        assert _view(sink, "crash") == view  # nothing visible twice, nothing missing
    finally:
        reference.close()
        sink.close()
        srv.stop()


def test_merchant_api_serves_the_scores_a_writer_keeps_writing(server: LocalClickHouseServer,
                                                               replayed, tmp_path: Path) -> None:
    """``merchant-api --clickhouse-url``: a running worker's scores. A chDB directory is one
    process's, so ``--chdb`` could serve only a stopped worker's. Here the API reads with
    the read-only dashboard user (no migration) while a writer keeps inserting."""
    import subprocess
    import sys

    import httpx

    from riskwatch.merchant_api import issue_token
    from tests.conftest import free_port, wait_until_serving

    secret = "test-secret"
    scores = [r for kind, _token, records in replayed if kind == "scores" for r in records]
    mine: dict[str, list[dict]] = {}
    for r in scores:
        mine.setdefault(r["merchant_id"], []).append(r)
    a, b = sorted(mine, key=lambda m: (-len(mine[m]), m))[:2]
    writer = sink_for(server, "riskwatch")
    port = free_port()
    proc = None
    try:
        for r in scores:
            writer.add("scores", r)
        writer.flush()
        url = server.user_url("riskwatch_dashboard", server.dashboard_password)
        proc = subprocess.Popen([sys.executable, "-m", "riskwatch.cli", "merchant-api", "--clickhouse-url",
                                 url, "--port", str(port), "--secret", secret],
                                cwd=Path(__file__).resolve().parents[2], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        base = f"http://127.0.0.1:{port}"

        def score_of(merchant: str, token_of: str | None = None) -> httpx.Response:
            token = issue_token(secret, token_of or merchant)
            return httpx.get(f"{base}/v1/merchants/{merchant}/score",
                             headers={"Authorization": f"Bearer {token}"}, timeout=10)

        wait_until_serving(base, proc, timeout=30, log=lambda: proc.communicate()[1])
        body = score_of(a).json()
        last = mine[a][-1]
        assert (body["ts"], body["score"], body["tier"], body["change_1d"]) == \
            (last["ts"], last["score"], last["tier"], last["change_1d"])
        assert body["components"] == last["components"]   # an 18.16 table keeps them as JSON
        assert [(p["ts"], p["score"]) for p in body["trend"]] == [(s["ts"], s["score"]) for s in mine[a][-48:]]
        assert score_of(b, token_of=a).status_code == 403
        # the writer goes on: the next bucket's score is served at once
        later = {**last, "ts": "2027-01-01T00:00:00+08:00", "score": 12.5, "tier": "at risk"}
        writer.add("scores", later)
        writer.flush()
        assert score_of(a).json()["score"] == 12.5
    finally:
        if proc is not None:
            proc.terminate()
            out, err = proc.communicate(timeout=10)
            assert "Traceback" not in err and "riskwatch_dashboard@" in out, (out, err)
            assert server.dashboard_password not in out + err
        writer.query("DROP DATABASE IF EXISTS riskwatch")
        writer.close()
