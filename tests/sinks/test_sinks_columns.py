"""Column blocks (``Sink.add_columns``): the same records as ``add()``, batched alike.

A column block is its records transposed.  A sink without a columnar path gets those
records one by one; a columnar one (the ClickHouse server sink) keeps the block whole but
must cut the same batches with the same tokens and insert the same values.  The server
itself is in tests/integration/test_clickhouse_server.py.
"""

from __future__ import annotations

import pathlib
from typing import Any

import numpy as np
import pytest

from riskwatch.errors import SinkError
from sinks import JsonlSink
from sinks.base import ListSink, RetryPolicy, block_of_records, block_rows, records_of_block
from sinks.clickhouse.schema import TABLES
from sinks.clickhouse.server_sink import ClickHouseServerSink, _InsertPlan, encode_block
from tests.sinks.conftest import sample_records


def rows(n: int, start: int = 0) -> list[dict[str, Any]]:
    return [{"merchant_id": f"m{i}", "score": float(i)} for i in range(start, start + n)]


class ColumnarListSink(ListSink):
    """A columnar test sink: keeps every written batch, and how it arrived."""

    columnar = True

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.arrived: list[str] = []

    def write(self, kind: str, records: list[dict], token: str | None) -> None:
        self.arrived.append("records")
        super().write(kind, records, token)

    def write_columns(self, kind: str, columns: dict, rows: int, token: str | None) -> None:
        assert all(len(values) == rows for values in columns.values())
        self.arrived.append("columns")
        super().write(kind, records_of_block(columns), token)


@pytest.mark.parametrize("cls", [ListSink, ColumnarListSink])
def test_a_block_makes_the_batches_and_tokens_of_its_records(cls: type[ListSink]) -> None:
    """Same batch cuts (``batch_size``), same ``#n`` tokens, same records, both paths."""
    by_rows, by_block = ListSink(batch_size=4), cls(batch_size=4)
    for start, n in ((0, 10), (10, 3)):   # two source ranges, flushed after each
        token = f"scores:0:{start}-{start + n - 1}"
        for record in rows(n, start):
            by_rows.add("scores", record, token=token)
        by_block.add_columns("scores", block_of_records(rows(n, start)), token=token)
        # add() writes a full batch at once; so does add_columns(), keeping the rest.
        assert by_block.batches == by_rows.batches
        assert by_block.pending() == by_rows.pending()
        by_rows.flush()
        by_block.flush()
    assert by_block.batches == by_rows.batches
    assert [len(r) for _, r, _ in by_block.batches] == [4, 4, 2, 3]
    assert [t for _, _, t in by_block.batches] == [
        "scores:0:0-9", "scores:0:0-9#1", "scores:0:0-9#2", "scores:0:10-12"]
    if cls is ColumnarListSink:
        assert set(by_block.arrived) == {"columns"}


def test_small_blocks_of_one_token_are_written_together() -> None:
    sink = ColumnarListSink(batch_size=5)
    for start in (0, 2, 4):
        sink.add_columns("scores", block_of_records(rows(2, start)), token="t")
    assert [len(r) for _, r, _ in sink.batches] == [5]  # the first full batch spans blocks
    assert sink.pending() == {"scores": 1}
    sink.flush()
    assert sink.records("scores") == rows(6)
    assert [t for _, _, t in sink.batches] == ["t", "t#1"]


def test_blocks_and_records_of_one_kind_mix() -> None:
    sink = ColumnarListSink(batch_size=100)
    sink.add("scores", {"merchant_id": "r1", "score": 1.0})
    sink.add_columns("scores", {"merchant_id": ["b1", "b2"], "score": [2.0, 3.0]})
    sink.add_columns("scores", {"merchant_id": ["b3"]})  # a missing column is None
    sink.flush()
    assert sorted(sink.arrived) == ["columns", "records"]
    assert sink.records("scores") == [
        {"merchant_id": "r1", "score": 1.0}, {"merchant_id": "b1", "score": 2.0},
        {"merchant_id": "b2", "score": 3.0}, {"merchant_id": "b3", "score": None}]


def test_numpy_columns_arrive_as_plain_values() -> None:
    sink = ListSink()
    sink.add_columns("aggregates", {"slice": np.array(["a", "b"], dtype=object),
                                    "orders": np.array([3, 4], dtype=np.uint32),
                                    "score": np.array([0.5, 0.25])})
    sink.flush()
    records = sink.records("aggregates")
    assert records == [{"slice": "a", "orders": 3, "score": 0.5},
                       {"slice": "b", "orders": 4, "score": 0.25}]
    assert {type(v) for r in records for v in r.values()} == {str, int, float}


def test_block_rows_concatenates_lists_and_arrays() -> None:
    a = {"x": np.array([1, 2]), "y": ["p", "q"]}
    b = {"x": np.array([3, 4]), "y": np.array(["r", "s"], dtype=object)}
    joined = block_rows([(a, 2), (b, 2)], 1, 4)
    assert isinstance(joined["x"], np.ndarray) and joined["x"].tolist() == [2, 3, 4]
    assert joined["y"] == ["q", "r", "s"]


@pytest.mark.parametrize("columns, message", [
    ({"a": [1, 2], "b": [1]}, "different lengths (a: 2, b: 1)"),
    ({"a": "abc"}, "column 'a' must be a list, tuple or 1-D array, not str"),
    ({"a": np.zeros((2, 2))}, "not ndarray"),
    ({"a": 5}, "not int"),
])
@pytest.mark.parametrize("cls", [ListSink, ColumnarListSink])
def test_a_malformed_block_is_a_clear_error_and_nothing_is_buffered(
        cls: type[ListSink], columns: dict, message: str) -> None:
    sink = cls()
    with pytest.raises(SinkError, match=message.replace("(", r"\(").replace(")", r"\)")):
        sink.add_columns("scores", columns)
    assert sink.pending() == {}


def test_an_unknown_kind_or_a_closed_sink_refuses_a_block() -> None:
    sink = ColumnarListSink()
    with pytest.raises(SinkError, match="unknown record kind"):
        sink.add_columns("orders", {"a": [1]})
    sink.close()
    with pytest.raises(SinkError, match="closed"):
        sink.add_columns("scores", {"a": [1]})


def test_a_failed_block_write_keeps_exactly_the_unwritten_rows() -> None:
    class Failing(ColumnarListSink):
        fail_at = 2  # the second batch fails permanently, once

        def write_columns(self, kind, columns, rows, token):  # noqa: ANN001
            if len(self.batches) + 1 == self.fail_at:
                self.fail_at = 0
                raise ValueError("bad batch")
            super().write_columns(kind, columns, rows, token)

    sink = Failing(batch_size=3, retry=RetryPolicy(max_attempts=1))
    with pytest.raises(SinkError, match="bad batch"):  # batch 1 written, batch 2 fails
        sink.add_columns("scores", block_of_records(rows(8)), token="t")
    assert [len(r) for _, r, _ in sink.batches] == [3]
    assert sink.pending() == {"scores": 5}
    sink.flush()  # nothing dropped, nothing written twice; the tokens go on in order
    assert sink.records("scores") == rows(8)
    assert [t for _, _, t in sink.batches] == ["t", "t#1", "t#2"]


def test_drain_returns_buffered_blocks_as_records() -> None:
    sink = ColumnarListSink(batch_size=100)
    sink.add_columns("scores", block_of_records(rows(2)), token="t")
    assert sink.drain() == [("scores", "t", rows(2))]
    assert sink.pending() == {}


def test_jsonl_writes_a_block_as_the_same_lines(tmp_path: pathlib.Path) -> None:
    records = sample_records()["aggregates"]
    outputs = []
    for name, feed in (("rows", lambda s: [s.add("aggregates", r) for r in records]),
                       ("block", lambda s: s.add_columns("aggregates", {
                           name: [r.get(name) for r in records] for name in records[0]}))):
        path = tmp_path / f"{name}.jsonl"
        with JsonlSink({"aggregates": path}) as sink:
            feed(sink)
        outputs.append(path.read_bytes())
    # Block rows carry every column of the block (None where a record had no key).
    assert outputs[0].count(b"\n") == outputs[1].count(b"\n") == 2
    assert outputs[0].splitlines()[0] == outputs[1].splitlines()[0]


@pytest.mark.parametrize("profile", ["modern", "legacy"])
def test_the_server_sink_inserts_a_block_as_its_records(profile: str) -> None:
    """For every kind and profile: same INSERT, same bytes on the wire, block untouched."""
    for kind, records in sample_records().items():
        records = records * 3
        plan = _InsertPlan.of(TABLES[kind], "riskwatch", profile)
        sql, data = plan.build(records)
        block = block_of_records(records)
        before = {name: list(values) for name, values in block.items()}
        block_sql, block_data = plan.build_columns(block, len(records))
        assert block_sql == sql, kind
        wire = encode_block(plan.types[:len(data)], data)
        assert encode_block(plan.types[:len(block_data)], block_data) == wire, kind
        assert block == before, kind  # the driver overwrote NULLs in copies, not here


def test_the_server_sink_takes_numpy_columns() -> None:
    """Numbers as arrays, times as epoch seconds or UTC datetime64: the records' values."""
    records = sample_records()["aggregates"]
    plan = _InsertPlan.of(TABLES["aggregates"], "riskwatch", "legacy")
    _sql, data = plan.build(records)
    epoch = 1793577600  # 2026-11-02T08:00:00+08:00
    block = {**block_of_records(records),
             "bucket_start": np.array([epoch, epoch], dtype=np.int64),
             "bucket_end": np.array(["2026-11-02T00:05:00"] * 2, dtype="datetime64[s]"),
             "orders": np.array([1200, 4], dtype=np.uint32),
             "exposure": np.array([980.5, 0.05])}
    _sql, block_data = plan.build_columns(block, 2)
    assert block_data == data


def test_the_server_sink_is_columnar() -> None:
    assert ClickHouseServerSink.columnar and not JsonlSink.columnar and not ListSink.columnar


def test_a_full_record_batch_does_not_cut_the_blocks_of_its_key_and_vice_versa() -> None:
    sink = ColumnarListSink(batch_size=3)
    sink.add_columns("scores", block_of_records(rows(2)), token="t")
    for record in rows(3, 10):
        sink.add("scores", record, token="t")  # a full record batch: written alone
    assert [(len(r), t) for _, r, t in sink.batches] == [(3, "t")]
    assert sink.arrived == ["records"] and sink.pending() == {"scores": 2}
    sink.add("scores", {"merchant_id": "r", "score": 0.0}, token="t")
    sink.add_columns("scores", block_of_records(rows(2, 20)), token="t")  # a full block batch
    assert sink.arrived == ["records", "columns"] and sink.pending() == {"scores": 2}
    sink.flush()
    assert [t for _, _, t in sink.batches] == ["t", "t#1", "t#2", "t#3"]


def test_chdb_stores_a_block_as_its_records(chdb_sink) -> None:
    """chDB has no columnar path: a block's records go through add(), same table rows."""
    by_rows = chdb_sink()
    by_block = chdb_sink(database=f"{by_rows.database}_b")
    try:
        for kind, records in sample_records().items():
            for record in records:
                by_rows.add(kind, record, token=f"{kind}:0:0-9")
            by_block.add_columns(kind, block_of_records(records), token=f"{kind}:0:0-9")
        by_rows.flush()
        by_block.flush()
        for kind in sample_records():
            names = ", ".join(f"`{c.name}`" for c in TABLES[kind].columns)
            query = "SELECT {names} FROM `{db}`.`{kind}` FINAL ORDER BY {names}"
            got = by_block.query(query.format(names=names, db=by_block.database, kind=kind))
            assert got and got == by_rows.query(
                query.format(names=names, db=by_rows.database, kind=kind)), kind
    finally:
        by_block.query(f"DROP DATABASE IF EXISTS `{by_block.database}`")


def test_a_redelivered_block_carries_the_same_deduplication_tokens() -> None:
    """A worker restarted before its commit re-sends a block: same batches, same tokens,
    so a server >= 22.2 drops the copy (18.16: tests/integration, under FINAL)."""
    from tests.sinks.test_sinks_server import _ready_sink, _RecordingClient

    client = _RecordingClient()
    sink = _ready_sink(True, client, batch_size=3)
    block = block_of_records(sample_records()["aggregates"] * 2)  # 4 rows: batches of 3 and 1
    for _delivery in range(2):
        sink.add_columns("aggregates", block, token="aggregates:0:0-99")
        sink.flush()
    tokens = [settings["insert_deduplication_token"] for _sql, settings in client.calls]
    assert tokens == ["aggregates:0:0-99", "aggregates:0:0-99#1"] * 2


def test_a_retried_block_insert_sends_the_blocks_values_again() -> None:
    """The driver overwrites NULLs in the lists it sends; a retry must not send those."""
    from clickhouse_driver import errors

    from tests.sinks.test_sinks_server import _ready_sink, _RecordingClient

    class Overwriting(_RecordingClient):
        def __init__(self, fail_with: list[BaseException]) -> None:
            super().__init__(fail_with)
            self.received: list[list[list]] = []

        def execute(self, sql, data, columnar, settings):  # noqa: ANN001
            self.received.append([list(column) for column in data])
            for column in data:  # what the driver's prepare_items does to Nullable columns
                column[:] = [0 if v is None else v for v in column]
            super().execute(sql, data, columnar, settings)

    client = Overwriting([errors.NetworkError("Connection reset by peer")])
    sink = _ready_sink(True, client)
    block = block_of_records(sample_records()["aggregates"])
    sink.add_columns("aggregates", block, token="t")
    sink.flush()
    assert len(client.received) == 2 and len(client.calls) == 1  # failed once, then landed
    sql = client.calls[0][0]
    expected = sql[sql.index("(") + 1:sql.index(")")].replace("`", "").split(", ").index(
        "expected")
    assert [attempt[expected] for attempt in client.received] == [[9.5, None]] * 2
    assert block["expected"] == [9.5, None]


def test_add_records_gives_a_columnar_sink_one_block_and_the_others_records() -> None:
    records = [*rows(5), {"merchant_id": "m9"}]  # a record without a key: None in its column
    columnar, plain = ColumnarListSink(), ListSink()
    for sink in (columnar, plain):
        sink.add_records("scores", records, token="scores:0:0-5")
        sink.flush()
    assert columnar.arrived == ["columns"]
    assert columnar.records("scores") == [*rows(5), {"merchant_id": "m9", "score": None}]
    assert plain.records("scores") == records


def test_the_workers_sink_feeder_hands_columnar_sinks_blocks_per_kind() -> None:
    """What a live worker's publish() hands its sinks (streams.agents.SinkFeeder): each
    kind's records together; the pipeline's aggregates as their own columns."""
    import asyncio

    from streams.aggregate_rows import COLUMNS, AggregateRows
    from streams.agents import SinkFeeder

    columnar, plain = ColumnarListSink(), ListSink()
    alerts = [{"alert_id": f"a{i}"} for i in range(3)]
    aggregates = AggregateRows(dict(zip(COLUMNS, [f"t{i}", f"t{i + 1}", f"s{i}", {}, i, 0,
                                                  1.0, None, 0.0, {}, 0])) for i in range(4))
    handed: list[object] = []
    columnar.add_columns = lambda kind, block, token=None: (  # type: ignore[method-assign]
        handed.append(block), ColumnarListSink.add_columns(columnar, kind, block, token=token))

    async def run() -> None:
        feeder = SinkFeeder([columnar, plain])
        await feeder.add([("scores", rows(4)), ("alerts", alerts), ("aggregates", aggregates)])
        await feeder.close()
        assert feeder.records == 11
    asyncio.run(run())
    for sink in (columnar, plain):
        assert sink.records("scores") == rows(4)
        assert sink.records("alerts") == alerts
        assert sink.records("aggregates") == list(aggregates)
    assert set(columnar.arrived) == {"columns"}  # one block per kind, no add() per record
    assert any(block is aggregates.columns for block in handed)  # not transposed again


def test_the_workers_flush_returns_only_once_every_row_is_written() -> None:
    """Offset commits and checkpoints wait for the feeder's flush: a batch the destination
    refused (not a transient error, e.g. a column an admin has not migrated yet) must
    hold the flush until it lands, not be logged while the commit goes ahead over it."""
    import asyncio

    from sinks.base import RetryPolicy
    from streams.agents import SinkFeeder

    class Refusing(ListSink):
        refusals = 5

        def write(self, kind, records, token):
            if self.refusals:
                self.refusals -= 1
                raise ValueError("Code: 16. No such column change_1d in table scores")
            super().write(kind, records, token)

    sink = Refusing(retry=RetryPolicy(max_attempts=2), sleep=lambda seconds: None)
    pauses: list[float] = []

    async def run() -> None:
        feeder = SinkFeeder([sink])
        feeder._sleep = pauses.append
        await feeder.add([("scores", rows(3))])
        await feeder.flush()    # what faust awaits before it commits the offsets
        assert sink.pending() == {} and sink.records("scores") == rows(3)
        assert feeder.errors == 2      # two flushes of two attempts refused, the third landed
        await feeder.close()
    asyncio.run(run())
    assert pauses == [1.0, 2.0]        # growing pauses between the worker's attempts
    assert len(sink.batches) == 1      # written once
