"""ClickHouseServerSink without a server: URLs, wiring, profiles, value conversion, errors.

The sink against a real server is in tests/integration/test_clickhouse_server.py.
"""

from __future__ import annotations

import pytest

from riskwatch.cli import build_parser
from riskwatch.errors import ConfigError, SinkError
from sinks.clickhouse.schema import PROFILES, TABLES, render_create
from sinks.clickhouse.server_sink import (
    ClickHouseServerSink,
    _InsertPlan,
    encode_block,
    parse_clickhouse_url,
    profile_for_version,
)
from sinks.wiring import build_sinks, options_from_args, worker_flags
from tests.conftest import free_port
from tests.sinks.conftest import sample_records


@pytest.mark.parametrize("url", ["http://host:8123", "clickhouse://", "clickhouse://h:notaport",
                                 "clickhouse://h/bad-name", "clickhouse://h/db?x=1", "h:9000",
                                 "clickhouse://h/db?compression=gzip",
                                 "clickhouse://h/db?compression=lz4&x=1"])
def test_bad_urls_are_config_errors(url: str) -> None:
    with pytest.raises(ConfigError):
        parse_clickhouse_url(url)


def test_url_parts_and_overrides() -> None:
    sink = ClickHouseServerSink("clickhouses://w:p%2Fq@ch.example:9440/risk", user="other")
    a = sink.address
    assert (a.host, a.port, a.user, a.password, a.database, a.secure) == (
        "ch.example", 9440, "other", "p/q", "risk", True)
    assert "p/q" not in repr(sink) and "p%2Fq" not in repr(sink)  # no password in logs
    assert a.compression is None  # off unless asked: on loopback it only costs CPU
    zipped = ClickHouseServerSink("clickhouse://127.0.0.1:1/risk?compression=lz4")
    assert zipped.address.compression == "lz4"
    import importlib.util

    if importlib.util.find_spec("lz4") is None:  # the driver's extra is not a dependency
        with pytest.raises(ConfigError, match=r"pip install 'clickhouse-driver\[lz4\]'"):
            zipped.setup()
    else:
        with pytest.raises(SinkError, match="cannot reach ClickHouse"):
            zipped.setup()


def test_an_unreachable_server_is_a_clear_sink_error_at_setup() -> None:
    port = free_port()  # nobody listens there
    sink = ClickHouseServerSink(f"clickhouse://127.0.0.1:{port}/riskwatch")
    with pytest.raises(SinkError, match=rf"cannot reach ClickHouse at .*127.0.0.1:{port}"):
        sink.setup()


def test_cli_flag_reaches_the_sink_and_the_worker() -> None:
    args = build_parser().parse_args(
        ["worker", "--clickhouse-url", "clickhouse://w:pw@127.0.0.1:9000/riskwatch"])
    options = options_from_args(args)
    assert worker_flags(options)[-2:] == ["--clickhouse-url",
                                          "clickhouse://w:pw@127.0.0.1:9000/riskwatch"]
    [sink] = [s for s in build_sinks(options) if isinstance(s, ClickHouseServerSink)]
    assert sink.address.user == "w" and sink.batch_size == 50_000
    # Refused when the flags are read, before the worker starts anything.
    with pytest.raises(ConfigError, match="^--clickhouse-url: bad ClickHouse URL"):
        options_from_args(build_parser().parse_args(["worker", "--clickhouse-url", "ch:9000"]))


def test_profile_follows_the_server_version() -> None:
    assert [profile_for_version(v) for v in ((18, 16, 1), (22, 3, 0), (22, 8, 1), (25, 1, 0))] \
        == ["legacy", "legacy", "modern", "modern"]
    legacy = render_create(TABLES["alerts"], "riskwatch", PROFILES["legacy"])
    for feature in ("LowCardinality", "DateTime64", "Map(", "CODEC", "TTL", "Bool",
                    "non_replicated_deduplication_window"):
        assert feature not in legacy
    assert "visitParamExtractString(dimensions, 'region')" in legacy


@pytest.mark.parametrize("profile", ["modern", "legacy"])
def test_every_kind_converts_to_typed_columns(profile: str) -> None:
    for kind, rows in sample_records().items():
        sql, columns = _InsertPlan.of(TABLES[kind], "riskwatch", profile).build(rows)
        names = sql[sql.index("(") + 1:sql.index(")")].replace("`", "").split(", ")
        assert len(names) == len(columns) and all(len(c) == len(rows) for c in columns)
        by_name = dict(zip(names, columns))
        # The server fills the flattened dimensions with the table's DEFAULT.
        assert not {"region", "carrier", "category", "intent"} & set(by_name) - {
            c.name for c in TABLES[kind].columns if c.from_map is None}
        if kind == "alerts":
            assert "region" not in by_name and "merchant_id" not in by_name
            ts = by_name["ts"][0]
            assert ts == (1793578500000 if profile == "modern" else 1793578500)
            assert by_name["dimensions"][0] == (
                {b"region": "广东".encode(), b"carrier": "中通".encode(),
                 b"intent": b"delivery_delay"}
                if profile == "modern" else
                '{"region":"广东","carrier":"中通","intent":"delivery_delay"}'.encode())
            assert by_name["examples"][0] == [e.encode() for e in rows[0]["examples"]]
        if kind == "complaints":
            assert "version" in names and by_name["version"] == [1]
            assert by_name["customer_tier"] == [b""] and by_name["csat"] == [None]
            assert by_name["region"] == ["广东".encode()]  # a column of its own here
        if kind == "aggregates":
            assert by_name["expected"] == [9.5, None]  # Nullable stays NULL
            assert "version" not in names  # the table's DEFAULT (ingestion time) applies


def _as_text(value):  # noqa: ANN001, ANN202 - any column value
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, list):
        return [_as_text(v) for v in value]
    if isinstance(value, dict):
        return {_as_text(k): _as_text(v) for k, v in value.items()}
    return value


@pytest.mark.parametrize("profile", ["modern", "legacy"])
def test_string_columns_as_bytes_are_what_the_driver_would_send_for_text(profile: str) -> None:
    """The sink sends String values as UTF-8 bytes (``strings_as_bytes``, the fast path).

    For every kind and column type of both profiles (Map, Array, LowCardinality, Nullable,
    DateTime64 included: no modern server runs here), the driver's encoder must accept the
    columns and put on the wire exactly the bytes it sends for the same values as text.
    """
    records = sample_records()
    for kind in sorted(records):
        rows = records[kind] * 3
        rows[1] = {**rows[1], **{k: None for k in rows[1] if k.endswith(("_text", "text"))}}
        plan = _InsertPlan.of(TABLES[kind], "riskwatch", profile)
        _sql, data = plan.build(rows)
        columns = plan.types[:len(data)]
        assert all(isinstance(v, bytes) for (_, type_), column in zip(columns, data)
                   if type_ in ("String", "LowCardinality(String)") for v in column)
        as_text = [[_as_text(v) for v in column] for column in data]
        wire = encode_block(columns, data, strings_as_bytes=True)
        assert wire == encode_block(columns, as_text, strings_as_bytes=False), kind
        assert "广东".encode() in wire or kind in {"dead_letters", "scores"}


def test_json_columns_hold_their_text_not_orjsons_buffer() -> None:
    """A maps-as-JSON column (legacy profile) costs about its text in memory.

    orjson returns bytes that keep a ~4 KiB buffer each: a 50k-row batch of them held
    ~200 MB per column, and glibc giving it back between batches made encoding ~5x
    slower.  The sink copies each into a compact bytes object.
    """
    import tracemalloc

    from sinks.clickhouse.server_sink import column_batch_converter

    maps = [{"region": "广东", "carrier": "中通", "merchant_id": f"m{i:04d}"}
            for i in range(2000)]
    convert = column_batch_converter("String")
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        column = convert(maps)
        per_row = (tracemalloc.get_traced_memory()[0] - before) / len(maps)
    finally:
        tracemalloc.stop()
    assert column[0] == '{"region":"广东","carrier":"中通","merchant_id":"m0000"}'.encode()
    assert per_row < 4 * len(column[0]) < 1024, per_row  # ~100 bytes, not ~4 KiB


def test_users_sql_parses_on_a_modern_engine(chdb_sink) -> None:
    """Every statement of users.sql is valid modern ClickHouse SQL.

    chDB (ClickHouse 26.9) parses each one and then refuses it for lack of access-control
    rights (code 497) or because the user was not created (511), never a syntax error (62).
    """
    import re
    from pathlib import Path

    import sinks.clickhouse

    sink = chdb_sink()
    text = (Path(sinks.clickhouse.__file__).with_name("users.sql")).read_text()
    statements = [s.strip() for s in re.sub(r"--[^\n]*", "", text).split(";") if s.strip()]
    assert len(statements) == 6
    for statement in statements:
        with pytest.raises(SinkError, match=r"Code: (497|511)\.") as info:
            sink.query(statement)
        assert "SYNTAX_ERROR" not in str(info.value)


class _RecordingClient:
    """Stands in for clickhouse_driver.Client in write(): records each execute call."""

    def __init__(self, fail_with: list[BaseException] | None = None) -> None:
        self.calls: list[tuple[str, dict]] = []
        self.fail_with = list(fail_with or [])

    def execute(self, sql, data, columnar, settings):  # noqa: ANN001 - the driver's signature
        assert columnar is True and isinstance(data, list)
        if self.fail_with:
            raise self.fail_with.pop(0)
        self.calls.append((sql, settings))

    def disconnect(self) -> None:
        pass


def _ready_sink(dedup_tokens: bool, client: _RecordingClient, **kwargs) -> ClickHouseServerSink:
    sink = ClickHouseServerSink("clickhouse://127.0.0.1/riskwatch", sleep=lambda s: None,
                                profile="modern", **kwargs)
    sink._client, sink.dedup_tokens = client, dedup_tokens  # as setup() leaves them
    return sink


def test_the_source_token_becomes_the_insert_deduplication_token() -> None:
    client = _RecordingClient()
    sink = _ready_sink(True, client, batch_size=2)
    for record in sample_records()["aggregates"] * 2:
        sink.add("aggregates", record, token="orders:0:0-99")
    sink.flush()
    assert [settings["insert_deduplication_token"] for _sql, settings in client.calls] == [
        "orders:0:0-99", "orders:0:0-99#1"]
    old = _RecordingClient()
    sink = _ready_sink(False, old)  # a server that would silently ignore the setting
    sink.add("scores", sample_records()["scores"][0], token="t")
    sink.flush()
    assert old.calls[0][1] == {"strings_as_bytes": True}  # the driver's own setting


def test_lost_connections_are_retried_and_too_many_parts_waits() -> None:
    from clickhouse_driver import errors

    client = _RecordingClient([errors.NetworkError("Connection reset by peer"),
                               errors.ServerException("Too many parts (300)", code=252),
                               errors.SocketTimeoutError("timed out")])
    slept: list[float] = []
    sink = _ready_sink(True, client)
    sink._sleep = slept.append
    sink.add("scores", sample_records()["scores"][0], token="t")
    sink.flush()
    assert len(client.calls) == 1 and len(slept) == 3 and slept[1] == 5.0  # backpressure wait
    bad = _RecordingClient([errors.ServerException("Cannot parse", code=27)] * 3)
    sink = _ready_sink(True, bad)
    sink.add("scores", sample_records()["scores"][0], token="t")
    with pytest.raises(SinkError, match="failed 3 times"):  # permanent: bounded attempts
        sink.flush()
    assert sink.pending() == {"scores": 1}  # kept, not dropped


def test_db_commands(chdb_path: str, database: str, capsys) -> None:
    from riskwatch.cli import main

    assert main(["db", "migrate", "--chdb", chdb_path, "--database", database]) == 0
    assert main(["db", "migrate", "--chdb", chdb_path, "--database", database]) == 0
    first, second = capsys.readouterr().out.splitlines()
    # The second run used to print "applied: 1, 2" as well: it says what it did now.
    assert first.endswith("schema at version 3 of 3 (profile modern; applied now: 1, 2, 3)")
    assert second.endswith("schema at version 3 of 3 (profile modern; already at version 3, "
                           "nothing to apply)")
    assert main(["db", "users"]) == 0
    assert "GRANT INSERT ON riskwatch.* TO riskwatch_writer" in capsys.readouterr().out
    assert main(["db", "users", "--legacy"]) == 0
    assert "<readonly>1</readonly>" in capsys.readouterr().out
    assert main(["db", "migrate"]) == 2
    assert "exactly one of --chdb PATH or --clickhouse-url URL" in capsys.readouterr().err
    assert main(["db", "migrate", "--clickhouse-url", "clickhouse://127.0.0.1:1/x"]) == 2
    assert "cannot reach ClickHouse" in capsys.readouterr().err
    from sinks.clickhouse import acquire_session, release_session

    session = acquire_session(chdb_path)
    try:
        session.query(f"DROP DATABASE IF EXISTS `{database}`")
    finally:
        release_session(chdb_path)
