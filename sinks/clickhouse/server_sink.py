"""ClickHouse server sink over the native protocol (clickhouse-driver), with the chDB sink's DDL.

:class:`ClickHouseServerSink` writes the same tables as :class:`~sinks.clickhouse.ChdbSink`
(``schema.TABLES``) to a ClickHouse server.  What differs from chDB, and why:

* **Profile from the server version.**  :meth:`~ClickHouseServerSink.setup` asks the server
  its version and renders the DDL with :func:`profile_for_version`: ``"modern"`` from
  ClickHouse 22.8 on, ``"legacy"`` below (Debian's 18.16 has no DateTime64, Map, Bool,
  CODEC, TTL, and LowCardinality needs a setting).  Maps are then JSON text columns.
* **Columnar inserts.**  Records are turned into one Python list per column, typed for the
  rendered column (times as epoch integers, which the driver sends without conversion),
  and sent with ``execute(..., columnar=True)``: one INSERT per batch of
  ``batch_size`` rows (10k-100k is what ClickHouse likes: few, large parts).  The
  flattened ``region``/``carrier``/… columns are filled here from ``dimensions``, the
  same values the table's ``DEFAULT`` expressions would compute.
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
({'delay': 3}, '{"delay":3}')
>>> column_converter("DateTime64(3, 'Asia/Shanghai')")("2026-11-02T08:00:00+08:00")
1793577600000
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import decimal
import logging
import time
import urllib.parse
from collections.abc import Callable, Mapping, Sequence
from typing import Any
from zoneinfo import ZoneInfo

import orjson

from riskwatch.errors import ConfigError, SinkBackpressure, SinkError
from sinks.base import BatchingSink, Record, RetryPolicy
from sinks.clickhouse.chdb_sink import error_code
from sinks.clickhouse.schema import (
    PROFILES,
    TABLES,
    TZ,
    Table,
    check_identifier,
    migrate,
    render_type,
)

__all__ = ["ClickHouseServerSink", "ServerAddress", "column_converter", "connect",
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


@dataclasses.dataclass(frozen=True)
class ServerAddress:
    """Where a ClickHouse server listens for the native protocol, and as whom to log in."""

    host: str
    port: int = 9000
    user: str = "default"
    password: str = ""
    database: str = "riskwatch"
    secure: bool = False

    def __str__(self) -> str:  # never shows the password
        return f"clickhouse://{self.user}@{self.host}:{self.port}/{self.database}"


def parse_clickhouse_url(url: str, *, database: str | None = None) -> ServerAddress:
    """Read ``clickhouse://user:password@host:port/database`` (``clickhouses://`` = TLS).

    Port defaults to 9000 (9440 with TLS), user to ``default``, database to ``riskwatch``
    (or ``database`` when given).  Raises :class:`ConfigError` for anything else.
    """
    try:
        parts = urllib.parse.urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise ConfigError(f"bad ClickHouse URL {url!r}: {exc}") from None
    if parts.scheme not in ("clickhouse", "clickhouses"):
        raise ConfigError(f"bad ClickHouse URL {url!r}: expected "
                          "clickhouse://user:password@host:port/database (native protocol)")
    if not parts.hostname:
        raise ConfigError(f"bad ClickHouse URL {url!r}: no host")
    if parts.query or parts.fragment:
        raise ConfigError(f"bad ClickHouse URL {url!r}: query parameters are not supported")
    secure = parts.scheme == "clickhouses"
    path_db = parts.path.strip("/")
    db = check_identifier(path_db or database or "riskwatch")
    return ServerAddress(
        host=parts.hostname, port=port or (9440 if secure else 9000),
        user=urllib.parse.unquote(parts.username) if parts.username else "default",
        password=urllib.parse.unquote(parts.password) if parts.password else "",
        database=db, secure=secure)


def profile_for_version(version: Sequence[int]) -> str:
    """The DDL profile (a key of ``schema.PROFILES``) for a server of ``version``."""
    return "modern" if tuple(version[:2]) >= MODERN_SINCE else "legacy"


def connect(address: ServerAddress, *, connect_timeout: float = 5.0,
            send_receive_timeout: float = 60.0) -> Any:
    """A connected ``clickhouse_driver.Client``; ``SinkError`` if the server is unreachable."""
    from clickhouse_driver import Client

    client = Client(host=address.host, port=address.port, user=address.user,
                    password=address.password, secure=address.secure,
                    connect_timeout=connect_timeout, send_receive_timeout=send_receive_timeout,
                    compression=False)  # lz4 costs CPU on loopback; helps only over a WAN
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

_ZONE = ZoneInfo(TZ)
_time_cache: dict[str, float] = {}


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


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    if isinstance(value, dict | list | tuple):
        return orjson.dumps(value).decode()  # a Map/JSON value kept as text
    return str(value)


def _inner(type_: str, wrapper: str) -> str | None:
    return type_[len(wrapper) + 1:-1] if type_.startswith(wrapper + "(") else None


def column_converter(type_: str) -> Callable[[Any], Any]:
    """A function turning one record value into what clickhouse-driver sends for ``type_``.

    ``None`` becomes the type's default (``''``, 0, empty) unless the type is Nullable,
    as ``input_format_null_as_default`` does for the chDB sink.
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


@dataclasses.dataclass(frozen=True)
class _InsertPlan:
    """How records of one table become an INSERT: column names and their converters."""

    sql: str
    columns: tuple[tuple[str, tuple[str, str] | None, Callable[[Any], Any]], ...]
    version: Callable[[Any], Any]

    @classmethod
    def of(cls, table: Table, database: str, profile_name: str) -> _InsertPlan:
        profile = PROFILES[profile_name]
        columns = tuple((c.name, c.from_map, column_converter(render_type(c.type, profile)))
                        for c in table.columns)
        names = ", ".join(f"`{name}`" for name, _, _ in columns)
        return cls(f"INSERT INTO `{database}`.`{table.name}` ({names}", columns,
                   column_converter("UInt64"))

    def build(self, records: list[Record]) -> tuple[str, list[list[Any]]]:
        """The INSERT statement and its columns; ``version`` is sent only when records carry one."""
        data: list[list[Any]] = []
        for name, from_map, convert in self.columns:
            if from_map is None:
                data.append([convert(r.get(name)) for r in records])
            else:  # the flattened dimension: what DEFAULT dimensions['key'] would compute
                source, key = from_map
                data.append([convert((r.get(source) or {}).get(key)) for r in records])
        if any("version" in r for r in records):
            now_ms = int(time.time() * 1000)  # the DEFAULT of records without one
            data.append([self.version(r.get("version", now_ms)) for r in records])
            return f"{self.sql}, `version`) VALUES", data
        return f"{self.sql}) VALUES", data


class ClickHouseServerSink(BatchingSink):
    """Write records into a ClickHouse server's tables (one per kind, see ``schema.TABLES``).

    Parameters
    ----------
    url
        ``clickhouse://user:password@host:port/database`` (see :func:`parse_clickhouse_url`).
    database, user, password
        Override the URL's parts.
    profile
        DDL profile; ``None`` (default) picks it from the server version at setup.
    batch_size
        Rows per INSERT (default 50,000; ClickHouse wants 10k-100k).
    retry, sleep
        See :class:`~sinks.base.BatchingSink`.
    migrate_schema
        Create/upgrade the tables at setup (a writer user without DDL rights passes False
        and has an admin run ``riskwatch db migrate``).
    """

    def __init__(self, url: str, *, database: str | None = None, user: str | None = None,
                 password: str | None = None, profile: str | None = None,
                 batch_size: int = 50_000, retry: RetryPolicy | None = None,
                 sleep: Callable[[float], None] = time.sleep,
                 migrate_schema: bool = True) -> None:
        super().__init__(batch_size=batch_size, retry=retry, sleep=sleep)
        address = parse_clickhouse_url(url, database=database)
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
        if self._client is not None:
            self._client.disconnect()
            self._client = None

    def write(self, kind: str, records: list[Record], token: str | None) -> None:
        if self._client is None:
            self.setup()
        plan = self._plans.get(kind)
        if plan is None:
            plan = self._plans[kind] = _InsertPlan.of(TABLES[kind], self.database,
                                                      self.profile or "modern")
        sql, columns = plan.build(records)
        settings: dict[str, Any] = {}
        if token is not None and self.dedup_tokens:
            settings = {"insert_deduplicate": 1, "insert_deduplication_token": token}
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
