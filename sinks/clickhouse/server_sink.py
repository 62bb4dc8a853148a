"""ClickHouse server sink over the native protocol (clickhouse-driver), with the chDB sink's DDL.

:class:`ClickHouseServerSink` writes the same tables as :class:`~sinks.clickhouse.ChdbSink`
(``schema.TABLES``) to a ClickHouse server.  What differs from chDB, and why:

* **Profile from the server version.**  :meth:`~ClickHouseServerSink.setup` asks the server
  its version and renders the DDL with :func:`profile_for_version`: ``"modern"`` from
  ClickHouse 22.8 on, ``"legacy"`` below (Debian's 18.16 has no DateTime64, Map, Bool,
  CODEC, TTL, and LowCardinality needs a setting).  Maps are then JSON text columns.
* **Columnar inserts.**  Records are turned into one Python list per column, typed for the
  rendered column, and sent with ``execute(..., columnar=True)``: one INSERT per batch of
  ``batch_size`` rows (10k-100k is what ClickHouse likes: few, large parts).  What makes
  it fast (``benchmarks/sink_throughput.py --clickhouse-server``): a column is taken out
  of the records in one C-level pass (``map(itemgetter)``); values already of the sent
  type pass through without a call per value; times go as epoch integers, converted once
  per distinct value (the driver sends ints without a datetime conversion); strings go as
  UTF-8 bytes (``strings_as_bytes``): JSON from orjson copied to compact bytes (see
  :func:`_json`), repeated values encoded once; the flattened ``region``/``carrier``/…
  columns are not sent but filled by the server from ``dimensions`` with the table's
  ``DEFAULT`` (as for chDB); compression is off (it costs CPU on loopback;
  ``?compression=lz4`` in the URL turns it on).  ``use_numpy`` was measured and not
  used: ~0.3 us/row less encoding for the aggregates table, but it needs pandas, turns
  NaN into NULL in Nullable columns, and these tables are mostly strings, which the
  driver writes the same way either way.
* **Encodings kept per slice.**  An aggregate row's ``dimensions`` map is the same every
  bucket the slice comes back in, so its encoding is kept per slice across batches
  (:mod:`sinks.clickhouse.repeat_cache`, bounded by ``repeat_cache_keys``, default
  131,072 slices) and reused while the value is equal; an empty map (a slice's
  ``intents`` without complaints) is one shared ``b"{}"``.  Same bytes on the wire
  (``tests/sinks/test_sinks_repeat_cache.py``); with it, 11 % fewer instructions per
  aggregate row for column blocks and 7 % for records than before
  (``benchmarks/sink_throughput.py --instructions``).
* **Column blocks.**  ``add_columns()`` (see ``sinks.base``) hands over rows already as
  columns (lists or numpy arrays): no dict per row, no ``add()`` per row, no column
  taken out of records.  The pipeline keeps its aggregates as columns
  (``streams.aggregate_rows``), and the worker's sink feeder and replay hand them over
  this way (``Sink.add_records``).  Each column then goes
  through the same converter as a records' column, so a block and its records insert
  the same values (``tests/sinks/test_sinks_columns.py`` compares the wire bytes);
  ~1.3 us of CPU per aggregate row less than records (``benchmarks/sink_throughput.py``).
* **The driver's per-value loops skipped.**  The client is
  :class:`~sinks.clickhouse.native_block.FastInsertClient`: ``DateTime`` and ``Nullable``
  columns, which the driver converts in two Python loops per value, are packed in one
  call each, the driver's bytes (``tests/sinks/test_native_block.py``); ~0.4 us per
  aggregate row less.
* **Pipelined chunks** (``chunk_rows``, off by default).  A batch of more rows is
  inserted as chunks of ``chunk_rows`` rows, one INSERT each: one writer thread inserts
  chunk k (the driver's encoding, then the wait while the server writes the part) while
  the calling thread builds chunk k+1's columns; the socket wait releases the GIL.  At
  most two chunks' columns exist at a time and the builder waits for the writer (back-
  pressure); ``write()`` returns only when every chunk is written, so ``flush()`` means
  what it always meant; while chunks are written only the writer uses the driver's
  client (not thread-safe).  Chunk k's token is ``f"{token}/{k}"`` and chunks depend
  only on the batch and ``chunk_rows`` (keep it fixed across restarts): a failed chunk
  fails the flush, the batch stays buffered, and its next flush sends every chunk again,
  the ones already written dropped by their tokens (18.16: shown once under ``FINAL``).
  Off by default because on Debian's 18.16 it costs more than it gains: every part costs
  that server ~0.5 ms of CPU per column (~12 ms for ``aggregates``), which took its CPU
  per row from 1.5 to 2.4 µs at 25k-row chunks and 3.4-4.3 µs at 10k (see
  ``benchmarks/sink_throughput.py``).  One INSERT streamed in blocks instead is not safe:
  18.16 kept blocks of INSERTs abandoned mid-stream (4,000 of 6,000 rows sent), and a
  server doing so under a token would drop the whole retried INSERT as a duplicate.
* **Deduplication.**  On servers >= 22.2 a batch is sent with
  ``insert_deduplication_token`` = its source token, and the modern tables keep a
  deduplication window, so a re-sent batch is dropped by the server.  Older servers
  silently ignore that setting (the driver only logs it), so it is not sent; there the
  ReplacingMergeTree key still shows a re-delivered record once under ``FINAL``/``argMax``.
* **Never drops.**  Lost connections, timeouts and the server's transient error codes are
  retried inside ``flush()`` with backoff until the write lands; ``TOO_MANY_PARTS``
  raises :class:`~riskwatch.errors.SinkBackpressure` (wait for merges, then retry).

Examples
--------
>>> address = parse_clickhouse_url("clickhouse://writer:s%40cret@10.0.0.5:9001/risk")
>>> (address.host, address.port, address.user, address.password, address.database)
('10.0.0.5', 9001, 'writer', 's@cret', 'risk')
>>> parse_clickhouse_url("clickhouse://localhost").port
9000
>>> profile_for_version((18, 16, 1)), profile_for_version((24, 8, 4))
('legacy', 'modern')
>>> convert = column_converter("Map(String, UInt32)")
>>> convert({"delay": 3}), column_converter("String")({"delay": 3})
({b'delay': 3}, b'{"delay":3}')
>>> column_converter("DateTime64(3, 'Asia/Shanghai')")("2026-11-02T08:00:00+08:00")
1793577600000
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import decimal
import itertools
import logging
import operator
import time
import urllib.parse
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as wait_for
from typing import Any
from zoneinfo import ZoneInfo

import orjson

from riskwatch.errors import ConfigError, SinkBackpressure, SinkError
from sinks.base import BatchingSink, Record, RetryPolicy
from sinks.clickhouse.chdb_sink import error_code
from sinks.clickhouse.repeat_cache import DEFAULT_LIMIT as REPEAT_CACHE_KEYS
from sinks.clickhouse.repeat_cache import RepeatCache
from sinks.clickhouse.schema import (
    PROFILES,
    TABLES,
    TZ,
    Table,
    check_identifier,
    migrate,
    render_type,
)

__all__ = ["ClickHouseServerSink", "ServerAddress", "column_batch_converter",
           "column_converter", "connect", "encode_block",
           "parse_clickhouse_url", "profile_for_version"]

logger = logging.getLogger(__name__)
# The driver logs every failed connect with a traceback; this sink raises a one-line
# SinkError instead.  A handler here keeps Python's last-resort stderr printer quiet
# while records still propagate to whatever logging the application configured.
logging.getLogger("clickhouse_driver").addHandler(logging.NullHandler())

#: First server version with every feature of the "modern" profile.
MODERN_SINCE = (22, 8)
#: First server version that honours ``insert_deduplication_token``.
DEDUP_TOKEN_SINCE = (22, 2)

_BACKPRESSURE_CODES = frozenset({252})  # TOO_MANY_PARTS
_BACKPRESSURE_WAIT = 5.0
_TRANSIENT_CODES = frozenset({159, 202, 209, 210, 236, 241, 243, 319, 425})
_COMPRESSIONS = frozenset({None, "lz4", "lz4hc", "zstd"})
# ACCESS_DENIED / READONLY / "DDL not allowed" (old servers' allow_ddl=0 answers 392).
_NO_DDL_RIGHTS = frozenset({497, 164, 392})


@dataclasses.dataclass(frozen=True)
class ServerAddress:
    """Where a ClickHouse server listens for the native protocol, and as whom to log in."""

    host: str
    port: int = 9000
    user: str = "default"
    password: str = ""
    database: str = "riskwatch"
    secure: bool = False
    #: Block compression of the native protocol (``lz4``, ``lz4hc``, ``zstd``) or ``None``.
    compression: str | None = None
    #: The sink's ``chunk_rows`` (pipelined chunks), or ``None``.
    chunk_rows: int | None = None

    def __str__(self) -> str:  # never shows the password
        return f"clickhouse://{self.user}@{self.host}:{self.port}/{self.database}"


def parse_clickhouse_url(url: str, *, database: str | None = None) -> ServerAddress:
    """Read ``clickhouse://user:password@host:port/database`` (``clickhouses://`` = TLS).

    Port defaults to 9000 (9440 with TLS), user to ``default``, database to ``riskwatch``
    (or ``database`` when given).  Query parameters: ``compression`` (``lz4``, ``lz4hc``
    or ``zstd``; off by default: on loopback it only costs CPU, over a slow link it saves
    bandwidth) and ``chunk_rows`` (the sink's pipelined chunks, off by default).  Raises
    :class:`ConfigError` for anything else.

    >>> parse_clickhouse_url("clickhouse://h/risk?compression=lz4").compression
    'lz4'
    >>> parse_clickhouse_url("clickhouse://h/risk?chunk_rows=25000").chunk_rows
    25000
    """
    from riskwatch.commands import redact_url

    shown = redact_url(url)  # an error line is no place for the password
    try:
        parts = urllib.parse.urlsplit(url)
        port = parts.port
    except ValueError as exc:
        # Not urlsplit's text about the port: it quotes what it took for one, which is
        # a piece of the password when that holds an unescaped '/'.
        why = "the port must be a whole number from 1 to 65535" if "ort" in str(exc) else exc
        raise ConfigError(f"bad ClickHouse URL {shown!r}: {why}") from None
    if port == 0:
        raise ConfigError(f"bad ClickHouse URL {shown!r}: the port must be a whole number "
                          "from 1 to 65535")
    if parts.scheme not in ("clickhouse", "clickhouses"):
        raise ConfigError(f"bad ClickHouse URL {shown!r}: expected "
                          "clickhouse://user:password@host:port/database (native protocol)")
    if not parts.hostname:
        raise ConfigError(f"bad ClickHouse URL {shown!r}: no host")
    query = urllib.parse.parse_qs(parts.query, keep_blank_values=True)
    compression = query.pop("compression", [None])[-1]
    chunk_rows = query.pop("chunk_rows", [None])[-1]
    if query or parts.fragment:
        raise ConfigError(f"bad ClickHouse URL {shown!r}: the query parameters are "
                          "compression=lz4|lz4hc|zstd and chunk_rows=N")
    if chunk_rows is not None and not (chunk_rows.isdigit() and int(chunk_rows) >= 1):
        raise ConfigError(f"bad ClickHouse URL {shown!r}: chunk_rows must be a whole number "
                          ">= 1")
    if compression not in _COMPRESSIONS:
        raise ConfigError(f"bad ClickHouse URL {shown!r}: compression must be one of "
                          f"{', '.join(sorted(c for c in _COMPRESSIONS if c))}")
    secure = parts.scheme == "clickhouses"
    path_db = parts.path.strip("/")
    db = check_identifier(path_db or database or "riskwatch")
    return ServerAddress(
        host=parts.hostname, port=port or (9440 if secure else 9000),
        user=urllib.parse.unquote(parts.username) if parts.username else "default",
        password=urllib.parse.unquote(parts.password) if parts.password else "",
        database=db, secure=secure, compression=compression,
        chunk_rows=None if chunk_rows is None else int(chunk_rows))


def profile_for_version(version: Sequence[int]) -> str:
    """The DDL profile (a key of ``schema.PROFILES``) for a server of ``version``."""
    return "modern" if tuple(version[:2]) >= MODERN_SINCE else "legacy"


def connect(address: ServerAddress, *, connect_timeout: float = 5.0,
            send_receive_timeout: float = 60.0) -> Any:
    """A connected ``clickhouse_driver.Client``; ``SinkError`` if the server is unreachable."""
    from clickhouse_driver import errors

    from sinks.clickhouse.native_block import FastInsertClient

    try:
        client = FastInsertClient(host=address.host, port=address.port, user=address.user,
                        password=address.password, secure=address.secure,
                        connect_timeout=connect_timeout,
                        send_receive_timeout=send_receive_timeout,
                        compression=address.compression or False)
    except errors.UnknownCompressionMethod:
        raise ConfigError(f"compression={address.compression} needs the driver's extra: "
                          f"pip install 'clickhouse-driver[{address.compression[:3]}]'") from None
    try:
        client.execute("SELECT 1")  # connects, logs in, negotiates the revision
    except Exception as exc:  # noqa: BLE001 - every failure here means "cannot use it"
        raise SinkError(f"cannot reach ClickHouse at {address} "
                        f"({type(exc).__name__}: {' '.join(str(exc).split())})") from exc
    return client


def execute_rows(client: Any) -> Callable[[str], list[dict[str, Any]]]:
    """Adapt a driver client to ``schema.migrate``'s ``execute`` (rows as dicts)."""
    def execute(sql: str) -> list[dict[str, Any]]:
        rows, columns = client.execute(sql, with_column_types=True)
        names = [name for name, _type in columns]
        return [dict(zip(names, row)) for row in rows]
    return execute


# -- record values -> column values ----------------------------------------------------------
#
# Every INSERT runs with the driver's ``strings_as_bytes``: String values leave this module
# as UTF-8 bytes.  JSON text (orjson makes bytes) is then never decoded only to be encoded
# again by the driver, and a column of few distinct values (regions, carriers, bucket
# slices) is encoded once per distinct value instead of once per row.

_ZONE = ZoneInfo(TZ)
_time_cache: dict[str, float] = {}
_DUMPS, _NON_STR_KEYS = orjson.dumps, orjson.OPT_NON_STR_KEYS
_INTS: frozenset[type] = frozenset({int})
_NUMBERS: frozenset[type] = frozenset({int, float})
_NUMBERS_OR_NONE: frozenset[type] = frozenset({int, float, type(None)})
_has_version = operator.methodcaller("__contains__", "version")
#: Per table, the row key whose rows recur from batch to batch, and the columns whose
#: value is the key's own: a slice's aggregate row comes back every bucket with the same
#: ``dimensions``, so their encodings are kept per slice across batches
#: (``repeat_cache``).  Other tables' rows are new each time.  (The ``slice`` column
#: itself needs no cache: the pipeline's slice names are one string object per slice,
#: hashed once, and ``_strings`` encodes each distinct one once per batch.)
_REPEAT_KEYS: dict[str, tuple[str, tuple[str, ...]]] = {"aggregates": ("slice", ("dimensions",))}


def _epoch(value: Any) -> float:
    """Seconds since the epoch of an RFC 3339 string (naive = Asia/Shanghai) or datetime."""
    if isinstance(value, str):
        cached = _time_cache.get(value)
        if cached is not None:
            return cached
        parsed = dt.datetime.fromisoformat(value)
    elif isinstance(value, dt.datetime):
        parsed = value
    elif isinstance(value, int | float):
        return float(value)
    else:
        raise ValueError(f"not a time: {value!r}")
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=_ZONE)
    seconds = parsed.timestamp()
    if isinstance(value, str):
        if len(_time_cache) > 100_000:  # bucket times repeat; event times do not
            _time_cache.clear()
        _time_cache[value] = seconds
    return seconds


def _json(value: Any) -> bytes:
    """Compact JSON of a map or list; non-str keys (ints) become JSON strings.

    ``b"%b" %`` copies orjson's result into a bytes object of its own size: orjson's own
    keeps a ~4 KiB buffer, so a 50k-row batch of them held ~200 MB per column, and glibc
    returning that memory between batches made each call ~5x slower (measured, see
    ``benchmarks/sink_throughput.py``).
    """
    return b"%b" % _DUMPS(value, option=_NON_STR_KEYS)


def _text(value: Any) -> bytes:
    """A String value as the UTF-8 bytes sent; maps and lists become JSON text."""
    if isinstance(value, str):
        return value.encode()
    if value is None:
        return b""
    if isinstance(value, dict | list | tuple):  # a Map/JSON value kept as text
        return _json(value)
    return str(value).encode()


def _only(values: list[Any], types: frozenset[type]) -> bool:
    """Whether every value is of one of ``types`` (a C-speed scan, no per-value call)."""
    return set(map(type, values)) <= types


def _strings(values: list[Any]) -> list[bytes]:
    """A String column as UTF-8 bytes, each distinct string encoded once when they repeat."""
    kinds = set(map(type, values))
    if kinds == {str}:
        distinct = set(values)
        if 2 * len(distinct) <= len(values):
            encoded = {s: s.encode() for s in distinct}
            return list(map(encoded.__getitem__, values))
        return list(map(str.encode, values))
    if kinds == {dict}:
        filled = list(itertools.compress(range(len(values)), values))
        if len(filled) < len(values):  # empty maps (a slice's intents without complaints)
            out = [b"{}"] * len(values)  # are all the same bytes; only the others encoded
            for i, encoded in zip(filled, _strings([values[i] for i in filled])):
                out[i] = encoded
            return out
        try:  # inlined _json(), and without OPT_NON_STR_KEYS (15 % slower) while keys are str
            return [b"%b" % _DUMPS(v) for v in values]
        except TypeError:  # orjson.JSONEncodeError: a non-str key
            return list(map(_json, values))
    return list(map(_text, values))


def _inner(type_: str, wrapper: str) -> str | None:
    return type_[len(wrapper) + 1:-1] if type_.startswith(wrapper + "(") else None


def column_converter(type_: str) -> Callable[[Any], Any]:
    """A function turning one record value into what clickhouse-driver sends for ``type_``.

    ``None`` becomes the type's default (``b''``, 0, empty) unless the type is Nullable,
    as ``input_format_null_as_default`` does for the chDB sink.  Strings become UTF-8
    bytes (the sink inserts with ``strings_as_bytes``).
    """
    inner = _inner(type_, "Nullable")
    if inner is not None:
        convert = column_converter(inner)
        return lambda v: None if v is None else convert(v)
    inner = _inner(type_, "LowCardinality")
    if inner is not None:
        return column_converter(inner)
    if type_ == "String":
        return _text
    if type_.startswith("DateTime64("):
        scale = 10 ** int(type_[len("DateTime64("):].split(",")[0].rstrip(")"))
        return lambda v: 0 if v is None else round(_epoch(v) * scale)
    if type_.startswith("DateTime"):
        return lambda v: 0 if v is None else int(_epoch(v))
    if type_.startswith("Float"):
        return lambda v: 0.0 if v is None else float(v)
    if type_.startswith(("Int", "UInt")):
        return lambda v: 0 if v is None else int(v)
    if type_ == "Bool":
        return bool
    if type_.startswith("Decimal"):
        return lambda v: decimal.Decimal(0) if v is None else decimal.Decimal(str(v))
    inner = _inner(type_, "Array")
    if inner is not None:
        item = column_converter(inner)
        return lambda v: [] if v is None else [item(x) for x in v]
    inner = _inner(type_, "Map")
    if inner is not None:
        key_type, value_type = (t.strip() for t in inner.split(",", 1))
        key, value = column_converter(key_type), column_converter(value_type)
        return lambda v: {} if v is None else {key(k): value(x) for k, x in v.items()}
    raise ConfigError(f"no converter for ClickHouse type {type_!r}")


def column_batch_converter(type_: str) -> Callable[[list[Any]], list[Any]]:
    """Convert a whole column at once, the hot path of every insert.

    A column whose values are already of a type the driver packs as they are (ints for
    integers, ints or floats for floats) passes through without a call per value; strings
    are encoded as :func:`_strings` does; times are converted once per distinct value.

    >>> column_batch_converter("String")(["a", None, {"k": 1}])
    [b'a', b'', b'{"k":1}']
    >>> column_batch_converter("LowCardinality(String)")(["广东"] * 2)
    [b'\\xe5\\xb9\\xbf\\xe4\\xb8\\x9c', b'\\xe5\\xb9\\xbf\\xe4\\xb8\\x9c']
    >>> column_batch_converter("DateTime('Asia/Shanghai')")(["2026-11-02T08:00:00+08:00"] * 2)
    [1793577600, 1793577600]
    >>> column_batch_converter("Nullable(Float64)")([1, None, 2.5]), column_batch_converter(
    ...     "UInt32")([True, None, 3])
    ([1, None, 2.5], [1, 0, 3])
    >>> column_batch_converter("Map(String, UInt32)")([{"refund": 2}, None, {"lost": 1.0}])
    [{b'refund': 2}, {}, {b'lost': 1}]
    """
    convert = column_converter(type_)
    base = _inner(type_, "LowCardinality") or type_
    if base == "String":
        return _strings
    if base.startswith(("Int", "UInt")):
        return lambda values: values if _only(values, _INTS) else [convert(v) for v in values]
    if base.startswith("Float"):
        return lambda values: values if _only(values, _NUMBERS) else [convert(v) for v in values]
    if base.startswith("Nullable(Float"):
        return lambda values: (values if _only(values, _NUMBERS_OR_NONE)
                               else [convert(v) for v in values])
    if base.startswith(("DateTime", "Nullable(DateTime")):
        def times(values: list[Any]) -> list[Any]:
            try:  # bucket times repeat within a batch: convert each distinct one once
                converted = {v: convert(v) for v in set(values)}
            except TypeError:  # an unhashable value: let convert() say what is wrong
                return [convert(v) for v in values]
            return list(map(converted.__getitem__, values))
        return times
    inner = _inner(base, "Map")
    if inner is not None and inner.split(",")[0] == "String":
        value_type = inner.split(",", 1)[1].strip()
        text_values = (_inner(value_type, "LowCardinality") or value_type) == "String"
        numbers = (_INTS if value_type.startswith(("Int", "UInt")) else
                   _NUMBERS if value_type.startswith("Float") else None)

        def maps(values: list[Any]) -> list[Any]:
            utf8 = _Utf8()  # keys (and text values) repeat: each is encoded once per batch
            converted = None
            try:
                if text_values:
                    converted = [{utf8[k]: utf8[v] for k, v in m.items()} if m else {}
                                 for m in values]
                elif numbers is not None and _only(
                        list(itertools.chain.from_iterable(map(dict.values, values))), numbers):
                    converted = [{utf8[k]: v for k, v in m.items()} if m else {}
                                 for m in values]
            except (AttributeError, TypeError):  # None, a non-str key or value
                pass
            # (Keying a cache on each map's items to convert repeated maps once was measured:
            # hashing the item tuples costs as much as converting.)
            return converted if converted is not None else [convert(v) for v in values]
        return maps
    return lambda values: [convert(v) for v in values]


def _plain(values: Sequence[Any], type_: str) -> list[Any]:
    """A block's column as the list of plain values a record would hold.

    numpy arrays become Python values (``tolist()``, one C call); a ``datetime64`` array
    holds UTC instants (numpy's convention), which become epoch seconds for a time column.
    """
    dtype = getattr(values, "dtype", None)
    if dtype is None:
        # Always a copy: the driver overwrites NULLs in the lists it is given, and a retry
        # must convert the caller's block again, not what the last attempt left of it.
        return list(values)
    if dtype.kind == "M" and "DateTime" in type_:
        millis = values.astype("datetime64[ms]").astype("int64")
        return (millis / 1000).tolist()
    return values.tolist()


def _chunk_of(columns: Mapping[str, Sequence[Any] | None], lo: int, hi: int
              ) -> dict[str, Sequence[Any] | None]:
    """Rows ``lo:hi`` of a column block (lists, tuples or numpy arrays; ``None`` stays).

    >>> _chunk_of({"a": [1, 2, 3], "b": None}, 1, 3)
    {'a': [2, 3], 'b': None}
    """
    return {name: None if values is None else values[lo:hi]
            for name, values in columns.items()}


class _Utf8(dict[Any, bytes]):
    """``str -> UTF-8 bytes``, each string encoded on first use (a hit costs no call)."""

    def __missing__(self, text: Any) -> bytes:
        if not isinstance(text, str):
            raise TypeError(f"not a str: {text!r}")
        encoded = self[text] = text.encode()
        return encoded


def _column(records: list[Record], name: str,
            getter: Callable[[Record], Any]) -> list[Any]:
    """The values of ``name`` in ``records`` (``None`` where missing)."""
    try:
        return list(map(getter, records))  # every record has the key: no Python loop
    except KeyError:
        return [r.get(name) for r in records]


def encode_block(columns_with_types: Sequence[tuple[str, str]], data: list[list[Any]], *,
                 strings_as_bytes: bool = True, fast: bool = True) -> bytes:
    """The bytes the sink puts on the wire for one columnar block, without a server.

    For tests (is what the sink sends what the driver would send for the same values as
    text?) and ``benchmarks/sink_throughput.py`` (the encoding cost of the modern
    profile, which no server here speaks).  ``fast``: as the sink's client writes it
    (:mod:`sinks.clickhouse.native_block`), else by the driver's own block stream (the
    same bytes).  Encoded as for a server of the driver's own protocol revision in
    Asia/Shanghai.
    """
    from sinks.clickhouse.native_block import encode

    return encode(columns_with_types, data, fast=fast, strings_as_bytes=strings_as_bytes)


@dataclasses.dataclass(frozen=True)
class _InsertPlan:
    """How records of one table become an INSERT: column names and their converters.

    Columns computed from a map (``region``, ``carrier``, … from ``dimensions``) are not
    sent: the server fills them with the table's ``DEFAULT`` expression, as it does for the
    chDB sink's and ``clickhouse-client``'s inserts, instead of this process building and
    encoding five more columns per row.
    """

    sql: str
    columns: tuple[tuple[str, Callable[[Record], Any], Callable[[list[Any]], list[Any]]], ...]
    version: Callable[[Any], Any]
    #: ``(name, type)`` of every column sent, ``version`` last (sent only when present).
    types: tuple[tuple[str, str], ...] = ()
    #: The row key whose rows recur batch after batch (``_REPEAT_KEYS``), or ``None``.
    key: str | None = None
    #: Per column: its encodings kept across batches per row key (see ``repeat_cache``).
    repeats: Mapping[str, RepeatCache] = dataclasses.field(default_factory=dict)

    @classmethod
    def of(cls, table: Table, database: str, profile_name: str, *,
           cache_keys: int = REPEAT_CACHE_KEYS) -> _InsertPlan:
        profile = PROFILES[profile_name]
        types = tuple((c.name, render_type(c.type, profile))
                      for c in table.columns if c.from_map is None)
        columns = tuple((name, operator.itemgetter(name), column_batch_converter(type_))
                        for name, type_ in types)
        names = ", ".join(f"`{name}`" for name, _ in types)
        key, of_key = _REPEAT_KEYS.get(table.name, (None, ())) if cache_keys else (None, ())
        repeats = {name: RepeatCache(convert, limit=cache_keys)
                   for name, _getter, convert in columns if name in of_key}
        return cls(f"INSERT INTO `{database}`.`{table.name}` ({names}", columns,
                   column_converter("UInt64"), (*types, ("version", "UInt64")), key, repeats)

    def _convert(self, values: dict[str, list[Any]]) -> list[list[Any]]:
        """Every sent column of ``values`` (plain lists, one per name) as the driver's."""
        keys = values.get(self.key) if self.repeats else None
        return [convert(values[name]) if keys is None or name not in self.repeats
                else self.repeats[name](keys, values[name])
                for name, _getter, convert in self.columns]

    def build_columns(self, columns: Mapping[str, Sequence[Any]], rows: int
                      ) -> tuple[str, list[list[Any]]]:
        """The INSERT statement and its columns for a column block (see ``sinks.base``).

        Each column goes through the same converter as the records' column would, so a
        block and its records insert the same values; a missing column is all ``None``.
        """
        plain = {}
        for (name, _getter, _convert), (_name, type_) in zip(self.columns, self.types):
            values = columns.get(name)
            plain[name] = [None] * rows if values is None else _plain(values, type_)
        data = self._convert(plain)
        versions = columns.get("version")
        if versions is not None:
            now_ms = int(time.time() * 1000)
            data.append([self.version(now_ms if v is None else v)
                         for v in _plain(versions, "UInt64")])
            return f"{self.sql}, `version`) VALUES", data
        return f"{self.sql}) VALUES", data

    def build(self, records: list[Record], *, versioned: bool | None = None
              ) -> tuple[str, list[list[Any]]]:
        """The INSERT statement and its columns; ``version`` is sent only when records
        carry one (``versioned``: whether any record of the whole batch does)."""
        data = self._convert({name: _column(records, name, getter)
                              for name, getter, _convert in self.columns})
        if versioned or versioned is None and any(map(_has_version, records)):
            now_ms = int(time.time() * 1000)  # the DEFAULT of records without one
            data.append([self.version(r.get("version", now_ms)) for r in records])
            return f"{self.sql}, `version`) VALUES", data
        return f"{self.sql}) VALUES", data


class ClickHouseServerSink(BatchingSink):
    """Write records into a ClickHouse server's tables (one per kind, see ``schema.TABLES``).

    Column blocks (``add_columns``, see ``sinks.base``) are inserted as they come, without
    a dict per row: the fast path for the pipeline's aggregate rows.

    Parameters
    ----------
    url
        ``clickhouse://user:password@host:port/database`` (see :func:`parse_clickhouse_url`).
    database, user, password
        Override the URL's parts.
    profile
        DDL profile; ``None`` (default) picks it from the server version at setup.
    batch_size
        Rows per batch (default 50,000; ClickHouse wants 10k-100k rows per INSERT).
    chunk_rows
        ``None`` (default: the URL's ``?chunk_rows=``, else off): one INSERT per batch.  A
        number: a batch of more rows is inserted in chunks of this many rows, each built
        while the one before is being written (see *Pipelined chunks* above).
    repeat_cache_keys
        Slices whose encoded ``dimensions`` are kept across batches (see
        :mod:`sinks.clickhouse.repeat_cache`; ~360 bytes each); 0 turns it off.
    retry, sleep
        See :class:`~sinks.base.BatchingSink`.
    migrate_schema
        Create/upgrade the tables at setup (a writer user without DDL rights passes False
        and has an admin run ``riskwatch db migrate``).
    """

    columnar = True

    def __init__(self, url: str, *, database: str | None = None, user: str | None = None,
                 password: str | None = None, profile: str | None = None,
                 batch_size: int = 50_000, chunk_rows: int | None = None,
                 repeat_cache_keys: int = REPEAT_CACHE_KEYS,
                 retry: RetryPolicy | None = None,
                 sleep: Callable[[float], None] = time.sleep,
                 migrate_schema: bool = True) -> None:
        super().__init__(batch_size=batch_size, retry=retry, sleep=sleep)
        if chunk_rows is not None and chunk_rows < 1:
            raise ConfigError(f"chunk_rows must be >= 1 (got {chunk_rows})")
        if repeat_cache_keys < 0:
            raise ConfigError(f"repeat_cache_keys must be >= 0 (got {repeat_cache_keys})")
        self.repeat_cache_keys = repeat_cache_keys
        address = parse_clickhouse_url(url, database=database)
        self.chunk_rows = chunk_rows if chunk_rows is not None else address.chunk_rows
        overrides = {k: v for k, v in (("database", database), ("user", user),
                                       ("password", password)) if v is not None}
        if "database" in overrides:
            check_identifier(overrides["database"])
        self.address = dataclasses.replace(address, **overrides)
        if profile is not None and profile not in PROFILES:
            raise ConfigError(f"unknown ClickHouse profile {profile!r}; "
                              f"expected one of {sorted(PROFILES)}")
        self.profile = profile
        self.migrate_schema = migrate_schema
        self.server_version: tuple[int, int, int] | None = None
        self.dedup_tokens = False
        self._client: Any = None
        self._plans: dict[str, _InsertPlan] = {}
        # The one thread that inserts chunks while the caller builds the next (lazily).
        self._writer: ThreadPoolExecutor | None = None

    @property
    def database(self) -> str:
        return self.address.database

    def __repr__(self) -> str:
        return f"ClickHouseServerSink({str(self.address)!r})"

    def setup(self) -> None:
        if self._client is not None:
            return
        client = connect(self.address)
        info = client.connection.server_info
        self.server_version = info.version_tuple()
        if self.profile is None:
            self.profile = profile_for_version(self.server_version)
        self.dedup_tokens = tuple(self.server_version[:2]) >= DEDUP_TOKEN_SINCE
        if self.migrate_schema:
            try:
                applied = migrate(execute_rows(client), self.profile, database=self.database)
            except Exception as exc:
                if getattr(exc, "code", None) in _NO_DDL_RIGHTS:
                    # An INSERT-only writer (users.sql): an admin runs `riskwatch db migrate`.
                    logger.info("%r: no rights to migrate (%s); assuming the schema is "
                                "migrated by an admin", self, type(exc).__name__)
                    applied = []
                else:
                    client.disconnect()
                    if isinstance(exc, SinkError | ConfigError):
                        raise
                    raise SinkError(f"{self!r}: migrating the schema failed: {exc}") from exc
            if applied:
                logger.info("%r: applied migrations %s (profile %s)", self, applied, self.profile)
        self._client = client
        logger.info("%r: server %s, profile %s, dedup tokens %s", self,
                    ".".join(map(str, self.server_version)), self.profile,
                    "on" if self.dedup_tokens else "off (server too old)")

    def teardown(self) -> None:
        if self._writer is not None:
            self._writer.shutdown(wait=True)  # idle: every write waits for its chunks
            self._writer = None
        if self._client is not None:
            self._client.disconnect()
            self._client = None

    def write(self, kind: str, records: list[Record], token: str | None) -> None:
        plan = self._plan(kind)
        versioned = any(map(_has_version, records))  # every chunk: the same columns
        self._write_chunks(kind, len(records), token,
                           lambda lo, hi: plan.build(records[lo:hi], versioned=versioned))

    def write_columns(self, kind: str, columns: dict[str, Sequence[Any]], rows: int,
                      token: str | None) -> None:
        plan = self._plan(kind)
        self._write_chunks(kind, rows, token, lambda lo, hi: plan.build_columns(
            columns if hi - lo == rows else _chunk_of(columns, lo, hi), hi - lo))

    def _write_chunks(self, kind: str, rows: int, token: str | None,
                      build: Callable[[int, int], tuple[str, list[list[Any]]]]) -> None:
        """Insert rows ``0:rows`` of a batch, ``build(lo, hi)`` making the INSERT of rows
        ``lo:hi``; return when every row is written (see *Pipelined chunks*)."""
        if self.chunk_rows is None or rows <= self.chunk_rows:
            sql, data = build(0, rows)
            self._insert(kind, sql, data, token)
            return
        if self._writer is None:
            self._writer = ThreadPoolExecutor(1, thread_name_prefix="clickhouse-writer")
        in_flight: Future[None] | None = None
        try:
            for k, lo in enumerate(range(0, rows, self.chunk_rows)):
                sql, data = build(lo, min(lo + self.chunk_rows, rows))  # while k-1 is sent
                if in_flight is not None:
                    in_flight.result()  # chunk k-1 landed, or its error ends the batch
                in_flight = self._writer.submit(self._insert, kind, sql, data,
                                                None if token is None else f"{token}/{k}")
                del sql, data  # the writer's now: at most two chunks' columns at a time
            in_flight.result()
        finally:
            if in_flight is not None and not in_flight.done():
                wait_for([in_flight])  # a build failed: the client is the writer's till then

    def _plan(self, kind: str) -> _InsertPlan:
        if self._client is None:
            self.setup()
        plan = self._plans.get(kind)
        if plan is None:
            plan = self._plans[kind] = _InsertPlan.of(TABLES[kind], self.database,
                                                      self.profile or "modern",
                                                      cache_keys=self.repeat_cache_keys)
        return plan

    def _insert(self, kind: str, sql: str, columns: list[list[Any]], token: str | None) -> None:
        # strings_as_bytes is the driver's own (not sent): the String columns are bytes.
        settings: dict[str, Any] = {"strings_as_bytes": True}
        if token is not None and self.dedup_tokens:
            settings |= {"insert_deduplicate": 1, "insert_deduplication_token": token}
        try:
            self._client.execute(sql, columns, columnar=True, settings=settings)
        except Exception as exc:
            if error_code(exc) in _BACKPRESSURE_CODES or getattr(exc, "code", None) == 252:
                raise SinkBackpressure(_BACKPRESSURE_WAIT, f"{kind}: {exc}") from exc
            raise

    def is_transient(self, exc: BaseException) -> bool:
        from clickhouse_driver import errors

        if isinstance(exc, errors.NetworkError | errors.SocketTimeoutError | EOFError):
            return True
        if isinstance(exc, errors.ServerException) and exc.code in _TRANSIENT_CODES:
            return True
        return super().is_transient(exc)

    def query(self, sql: str, params: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
        """Run ``sql`` (``%(name)s`` placeholders filled from ``params``); rows as dicts.

        Raises
        ------
        SinkError
            The statement failed; the message carries ClickHouse's error.
        """
        if self._client is None:
            self.setup()
        try:
            rows, columns = self._client.execute(sql, dict(params or {}) or None,
                                                 with_column_types=True)
        except Exception as exc:
            raise SinkError(f"{self!r}: query failed: {' '.join(str(exc).split())}") from exc
        names = [name for name, _type in columns]
        return [dict(zip(names, row)) for row in rows]
