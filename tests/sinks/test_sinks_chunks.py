"""ClickHouseServerSink's pipelined chunks (``chunk_rows``), without a server.

A recording client stands in for ``clickhouse_driver.Client`` (it records each INSERT,
the thread it came from, and can fail or be slow); the real server's side (identical
table contents, a crash mid-batch, re-delivery) is in
tests/integration/test_clickhouse_server.py.
"""

from __future__ import annotations

import threading
import time

import pytest

from riskwatch.errors import ConfigError, SinkError
from sinks.clickhouse.schema import TABLES
from sinks.clickhouse.server_sink import ClickHouseServerSink, _InsertPlan, encode_block
from tests.sinks.conftest import sample_records


class InsertRecorder:
    """Records every INSERT that landed as ``(sql, columns, settings)``; ``fail`` holds
    errors to raise, one per INSERT, keyed by the INSERT's number (0-based)."""

    def __init__(self, *, fail: dict[int, BaseException] | None = None,
                 insert_seconds: float = 0.0, events: list[str] | None = None) -> None:
        self.calls: list[tuple[str, list[list], dict]] = []
        self.threads: set[str] = set()
        self.fail = dict(fail or {})
        self.attempts = 0
        self.insert_seconds = insert_seconds
        self.events = events if events is not None else []

    def execute(self, sql, data, columnar, settings):  # noqa: ANN001 - the driver's signature
        assert columnar is True and isinstance(data, list)
        self.threads.add(threading.current_thread().name)
        attempt, self.attempts = self.attempts, self.attempts + 1
        if attempt in self.fail:
            raise self.fail.pop(attempt)
        self.events.append(f"inserting {len(self.calls)}")
        time.sleep(self.insert_seconds)
        self.events.append(f"landed {len(self.calls)}")
        self.calls.append((sql, [list(column) for column in data], settings))
        for column in data:  # what the driver's prepare_items does to Nullable columns
            column[:] = [0 if v is None else v for v in column]

    def disconnect(self) -> None:
        pass


def ready(client: InsertRecorder, **kwargs) -> ClickHouseServerSink:
    sink = ClickHouseServerSink("clickhouse://127.0.0.1/riskwatch", sleep=lambda s: None,
                                profile="legacy", **kwargs)
    sink._client, sink.dedup_tokens = client, True  # as setup() leaves them
    return sink


def as_block(records: list[dict]) -> dict[str, list]:
    names = list(dict.fromkeys(name for r in records for name in r))
    return {name: [r.get(name) for r in records] for name in names}


def many_aggregates(n: int) -> list[dict]:
    base = sample_records()["aggregates"]
    return [{**base[i % 2], "slice": f"s{i}"} for i in range(n)]


def joined(calls: list[tuple[str, list[list], dict]]) -> list[list]:
    """The columns of several INSERTs end to end."""
    return [sum((columns[c] for _sql, columns, _s in calls), [])
            for c in range(len(calls[0][1]))]


@pytest.mark.parametrize("as_columns", [False, True])
def test_a_big_batch_is_inserted_in_chunks_with_tokens_of_their_own(as_columns: bool) -> None:
    records = many_aggregates(23)
    client = InsertRecorder()
    sink = ready(client, batch_size=100, chunk_rows=10)
    if as_columns:
        sink.add_columns("aggregates", as_block(records), token="aggregates:0:0-22")
    else:
        for record in records:
            sink.add("aggregates", record, token="aggregates:0:0-22")
    sink.flush()
    assert [len(columns[0]) for _sql, columns, _s in client.calls] == [10, 10, 3]
    assert [s["insert_deduplication_token"] for _sql, _c, s in client.calls] == [
        "aggregates:0:0-22/0", "aggregates:0:0-22/1", "aggregates:0:0-22/2"]
    plan = _InsertPlan.of(TABLES["aggregates"], "riskwatch", "legacy")
    whole_sql, whole = plan.build(records)
    assert {sql for sql, _c, _s in client.calls} == {whole_sql}
    assert joined(client.calls) == whole  # the values of the batch as one INSERT
    assert encode_block(plan.types[:len(whole)], joined(client.calls)) == encode_block(
        plan.types[:len(whole)], whole)
    assert client.threads == {"clickhouse-writer_0"}  # the client is the writer's only
    sink.close()
    assert sink._writer is None


def test_unchunked_by_default_and_small_batches_stay_whole() -> None:
    client = InsertRecorder()
    sink = ready(client)
    assert sink.chunk_rows is None
    sink.add_columns("aggregates", as_block(many_aggregates(25)), token="t")
    sink.flush()
    small = InsertRecorder()
    chunked = ready(small, chunk_rows=10)
    chunked.add_columns("aggregates", as_block(many_aggregates(10)), token="t")
    chunked.flush()
    for recorder in (client, small):
        [(_sql, _columns, settings)] = recorder.calls
        assert settings["insert_deduplication_token"] == "t"  # the batch's token, unchanged
        assert recorder.threads == {threading.current_thread().name}


def test_a_version_in_any_record_is_sent_by_every_chunk() -> None:
    records = many_aggregates(25)
    records[24] = {**records[24], "version": 7}  # only in the last chunk
    client = InsertRecorder()
    sink = ready(client, chunk_rows=10)
    for record in records:
        sink.add("aggregates", record, token="t")
    sink.flush()
    assert all(sql.endswith(", `version`) VALUES") for sql, _c, _s in client.calls)
    assert client.calls[-1][1][-1][-1] == 7


def test_the_builder_runs_at_most_one_chunk_ahead_of_the_writer() -> None:
    """Overlap and back-pressure: chunk k+1 is built while chunk k is inserted, and chunk
    k+2 only after chunk k landed (at most two chunks' columns at a time)."""
    events: list[str] = []
    client = InsertRecorder(insert_seconds=0.03, events=events)
    sink = ready(client, chunk_rows=5)
    plan = sink._plan("aggregates")
    build_columns, built = plan.build_columns, []

    def recording(columns, rows):  # noqa: ANN001, ANN202
        events.append(f"built {len(built)}")
        built.append(rows)
        return build_columns(columns, rows)

    object.__setattr__(plan, "build_columns", recording)  # a frozen dataclass
    sink.add_columns("aggregates", as_block(many_aggregates(30)), token="t")
    sink.flush()
    assert built == [5] * 6 and len(client.calls) == 6
    for k in range(4):
        landed = events.index(f"landed {k}")
        assert events.index(f"built {k + 1}") < landed, events  # built meanwhile
        assert events.index(f"built {k + 2}") > landed, events  # not further ahead


def test_a_failed_chunk_fails_the_flush_and_the_retry_resends_every_chunk() -> None:
    """The connection drops at chunk 2: the batch is retried whole, rebuilt from the
    caller's block (the driver overwrites NULLs in what it sends), every chunk with the
    same token as before, so a server >= 22.2 drops chunks 0-1 the second time."""
    from clickhouse_driver import errors

    records = many_aggregates(25)
    block = as_block(records)
    client = InsertRecorder(fail={2: errors.NetworkError("Connection reset by peer")})
    sink = ready(client, chunk_rows=10)
    sink.add_columns("aggregates", block, token="t")
    sink.flush()
    tokens = [s["insert_deduplication_token"] for _sql, _c, s in client.calls]
    assert tokens == ["t/0", "t/1", "t/0", "t/1", "t/2"]
    plan = _InsertPlan.of(TABLES["aggregates"], "riskwatch", "legacy")
    assert joined(client.calls[2:]) == plan.build(records)[1]  # NULLs are NULLs again
    assert block == as_block(records) and sink.pending() == {}


def test_a_chunk_that_cannot_be_built_fails_the_flush_and_keeps_the_batch() -> None:
    records = many_aggregates(25)
    records[22] = {**records[22], "bucket_start": "not a time"}  # in chunk 2
    client = InsertRecorder()
    sink = ready(client, chunk_rows=10)
    sink.add_columns("aggregates", as_block(records), token="t")
    with pytest.raises(SinkError, match="failed 3 times: ValueError"):
        sink.flush()
    assert {s["insert_deduplication_token"] for _sql, _c, s in client.calls} == {"t/0", "t/1"}
    assert sink.pending() == {"aggregates": 25}  # kept: a worker dead-letters it
    [(_kind, _token, kept)] = sink.drain()
    assert len(kept) == 25


def test_chunk_rows_must_be_positive() -> None:
    with pytest.raises(ConfigError, match="chunk_rows must be >= 1"):
        ClickHouseServerSink("clickhouse://127.0.0.1/riskwatch", chunk_rows=0)


def test_chunk_rows_from_the_url_reaches_the_worker() -> None:
    """``--clickhouse-url ...?chunk_rows=N`` is how the CLI turns the chunks on."""
    from riskwatch.cli import build_parser
    from sinks.wiring import build_sinks, options_from_args

    args = build_parser().parse_args(
        ["worker", "--clickhouse-url", "clickhouse://w:pw@127.0.0.1:9000/riskwatch?chunk_rows=25000"])
    [sink] = [s for s in build_sinks(options_from_args(args))
              if isinstance(s, ClickHouseServerSink)]
    assert sink.chunk_rows == 25_000
    assert ClickHouseServerSink("clickhouse://h/db?chunk_rows=9", chunk_rows=5).chunk_rows == 5
    for bad in ("0", "-1", "x", "1.5"):
        with pytest.raises(ConfigError, match="chunk_rows must be a whole number"):
            ClickHouseServerSink(f"clickhouse://h/db?chunk_rows={bad}")
