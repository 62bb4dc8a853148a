"""Embedded ClickHouse (chDB) sink: the default storage, with the same DDL as the server.

chDB runs the ClickHouse engine inside this process.  It has two constraints this module
is built around:

* **One path per process.** The embedded engine is bound to the first database path
  opened; opening another path while any connection is open fails.  All sinks therefore
  share one :class:`chdb.session.Session` per path through a module-level registry
  (:func:`acquire_session` / :func:`release_session`); asking for a second path raises a
  :class:`~riskwatch.errors.SinkError` naming both.  When the last user releases the
  session it is closed, and another path may be opened.
* **One process per path.** Another process cannot open a path this one holds (and
  Grafana cannot read it); the error is translated into a ``SinkError``.

Inserts send the whole batch as one ``JSONEachRow`` payload (a JSON array encoded by
orjson in one call) through ``Session.send_insert``; ClickHouse parses the RFC 3339 times,
fills the flattened dimension columns from ``dimensions`` and skips unknown keys.  In
``benchmarks/sink_throughput.py`` (aggregate rows, 10k per insert) that costs ~10 µs of
CPU per row, merges included: 90-100k rows per CPU-second, against ~63k for the same
payload inlined in the query string and ~49k for an Arrow table read through
``Python()``; one JSON object per line measured the same within noise.  Larger inserts
are cheaper (50k rows per insert: ~150k rows per CPU-second).

Examples
--------
>>> import tempfile
>>> with tempfile.TemporaryDirectory() as path, ChdbSink(path, database="doc_example") as sink:
...     sink.add("scores", {"merchant_id": "m1", "ts": "2026-11-02T08:00:00+08:00",
...                         "score": 87.5, "tier": "B", "components": {"delay": -6.0}},
...              token="scores:0:10-19")
...     sink.flush()
...     sink.query("SELECT merchant_id, ts, score, components['delay'] AS delay "
...                "FROM doc_example.scores FINAL")
[{'merchant_id': 'm1', 'ts': '2026-11-02 08:00:00.000', 'score': 87.5, 'delay': -6}]
"""

from __future__ import annotations

import dataclasses
import logging
import os
import re
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

import orjson

from riskwatch.errors import ConfigError, SinkBackpressure, SinkError
from sinks.base import BatchingSink, Record, RetryPolicy
from sinks.clickhouse.schema import (
    PROFILES,
    TABLES,
    check_identifier,
    migrate,
    quote_literal,
)
from sinks.jsonl import encode_array

__all__ = ["ChdbSink", "acquire_session", "check_not_held", "error_code", "held_path",
           "release_session"]

logger = logging.getLogger(__name__)

# Explicit although most are chDB 4.4 defaults: the same INSERT must behave the same on a
# server whose defaults differ.
_INSERT_SETTINGS = ", ".join((
    "insert_deduplicate = 1",
    # Skip ReplacingMergeTree's collapsing of each inserted block: readers use FINAL or
    # argMax anyway, and it cost ~20% of the CPU of an insert (benchmarks/sink_throughput.py).
    "optimize_on_insert = 0",
    "date_time_input_format = 'best_effort'",       # RFC 3339 with any offset
    "input_format_skip_unknown_fields = 1",         # extra record keys are ignored
    "input_format_null_as_default = 1",             # null -> '' / 0 for non-Nullable columns
    "input_format_defaults_for_omitted_fields = 1",  # fills region etc. from dimensions
    "input_format_json_read_numbers_as_strings = 1",
    "input_format_json_read_objects_as_strings = 1",
    "input_format_json_read_arrays_as_strings = 1",  # contributors -> JSON text
))

# ClickHouse error codes that go away by waiting: the write is retried until it lands.
_BACKPRESSURE_CODES = frozenset({252})  # TOO_MANY_PARTS: merges must catch up
_BACKPRESSURE_WAIT = 5.0  # seconds; a few merges' worth
_TRANSIENT_CODES = frozenset({
    159,  # TIMEOUT_EXCEEDED
    202,  # TOO_MANY_SIMULTANEOUS_QUERIES
    209,  # SOCKET_TIMEOUT
    210,  # NETWORK_ERROR
    236,  # ABORTED
    241,  # MEMORY_LIMIT_EXCEEDED
    243,  # NOT_ENOUGH_SPACE
    319,  # UNKNOWN_STATUS_OF_INSERT
    425,  # SYSTEM_ERROR
})
_CODE = re.compile(r"Code: (\d+)\.")


def error_code(exc: BaseException) -> int | None:
    """The ClickHouse error code in an exception message, if any."""
    match = _CODE.search(str(exc))
    return int(match.group(1)) if match else None


# -- the one-path-per-process registry ------------------------------------------------------

@dataclasses.dataclass
class _Shared:
    session: Any  # chdb.session.Session
    users: int
    # Serialises statements: a connection accepts nothing else while a streaming insert is
    # open, and sinks in other threads may share it.
    lock: threading.RLock = dataclasses.field(default_factory=threading.RLock)


_registry: dict[str, _Shared] = {}
_registry_lock = threading.Lock()


def _key(path: str | os.PathLike[str]) -> str:
    path = os.fspath(path)
    return path if path == ":memory:" else os.path.realpath(path)


def _acquire(path: str | os.PathLike[str]) -> _Shared:
    key = _key(path)
    with _registry_lock:
        shared = _registry.get(key)
        if shared is None:
            if _registry:
                other = next(iter(_registry))
                raise SinkError(
                    f"chDB is already open at {other!r} in this process and one process can "
                    f"hold only one chDB path, so {key!r} cannot be opened; use the same path "
                    "(with another database name) or close every sink on the other path first")
            if key != ":memory:":
                _refuse_file_or_held(path, key)
            try:
                from chdb.session import Session
            except ImportError as exc:  # pragma: no cover - chdb is a hard dependency
                raise SinkError("the embedded ClickHouse sink needs chdb: "
                                "pip install 'chdb==4.4.0'") from exc
            try:
                session = Session(key)
                # Plain JSON numbers for UInt64 (versions) in query() results.
                session.query("SET output_format_json_quote_64bit_integers = 0")
            except Exception as exc:
                raise SinkError(f"cannot open chDB at {key!r} (another process may hold it, "
                                f"or this process opened another path directly): {exc}"
                                ) from exc
            shared = _registry[key] = _Shared(session, 0)
            logger.debug("opened chDB session at %s", key)
        shared.users += 1
        return shared


def _refuse_file_or_held(path: str | os.PathLike[str], key: str) -> None:
    """Checked before chDB sees ``key``: chDB answers a file with a page of C++ stack
    ending in BAD_ARGUMENTS, and a held directory with a raw lock error."""
    if os.path.exists(key) and not os.path.isdir(key):
        raise ConfigError(f"--chdb: {os.fspath(path)} is a file, not a chDB data directory")
    _refuse_if_held(key)


def _refuse_if_held(key: str) -> None:
    """A SinkError naming the process that holds chDB directory ``key``, if one does.

    ClickHouse holds an exclusive ``flock`` on ``<path>/status`` (which names its PID)
    while a process has the directory open. Checked here, before chDB sees the path: its
    own answer was a raw ``Code: 76 ... Cannot lock file`` line on stderr and an error
    that only guessed at "another process", so an operator running ``report`` or
    ``merchant-api`` on a running worker's ``--chdb`` did not learn what to do.
    """
    import fcntl

    status = os.path.join(key, "status")
    try:
        fd = os.open(status, os.O_RDONLY)
    except OSError:
        return   # a new or never-opened directory: nobody holds it
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        with open(fd, closefd=False, errors="replace") as handle:
            match = re.search(r"PID:\s*(\d+)", handle.read(200))
        holder = f"process {match.group(1)}" if match else "another process"
        if match and int(match.group(1)) == os.getpid():
            holder = "this process (opened directly, not through this module)"
        raise SinkError(f"chDB at {key!r} is in use by {holder}: a chDB directory can be open "
                        "in one process at a time; stop the worker or replay writing it first") from None
    except OSError:
        return   # no locks on this file system: let chDB say what it finds
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def check_not_held(path: str | os.PathLike[str]) -> None:
    """Refuse ``path`` now, as opening it would, if it is a file or another process holds it.

    For commands that start other things before their sinks open (``riskwatch worker``
    and ``demo`` start a broker first): the refusal came after the embedded broker's log
    lines and its shutdown, and a demo emptied its data directory under the running demo
    that held its chDB. Cheap: no chDB import, one ``flock`` probe.

    Raises
    ------
    SinkError
        Another process holds ``path`` (the message names its PID).
    ConfigError
        ``path`` is a file.
    """
    key = _key(path)
    with _registry_lock:
        if key in _registry or key == ":memory:":
            return   # this process holds it already (through this module): it may share it
    _refuse_file_or_held(path, key)


def acquire_session(path: str | os.PathLike[str]) -> Any:
    """The process's shared ``chdb.session.Session`` for ``path``; pair with ``release_session``.

    Raises
    ------
    SinkError
        Another path is open in this process, or ``path`` is held by another process.
    ConfigError
        ``path`` is a file.
    """
    return _acquire(path).session


def held_path() -> str | None:
    """The chDB path the registry holds open in this process, if any."""
    with _registry_lock:
        return next(iter(_registry), None)


def release_session(path: str | os.PathLike[str]) -> None:
    """Drop one user of ``path``'s session; the last user closes it."""
    key = _key(path)
    with _registry_lock:
        shared = _registry.get(key)
        if shared is None:
            return
        shared.users -= 1
        if shared.users <= 0:
            del _registry[key]
            shared.session.close()
            logger.debug("closed chDB session at %s", key)


# -- the sink ------------------------------------------------------------------------------

class ChdbSink(BatchingSink):
    """Write records into embedded ClickHouse tables (one per kind, see ``schema.TABLES``).

    Parameters
    ----------
    path
        Database directory (created if missing), or ``":memory:"``.
    database
        ClickHouse database holding the tables; created and migrated by :meth:`setup`.
    profile
        DDL profile, a key of ``schema.PROFILES``.
    batch_size, retry, sleep
        See :class:`~sinks.base.BatchingSink`.

    Notes
    -----
    At-least-once: a batch is inserted with ``insert_deduplication_token = token`` so a
    re-sent batch is dropped by ClickHouse, and tables are ReplacingMergeTree on the
    record's id, so a re-delivered record in another batch is visible once with ``FINAL``
    (or ``argMax``).  Dashboards must query with ``FINAL``/``argMax`` for that guarantee.
    """

    def __init__(self, path: str | os.PathLike[str], *, database: str = "riskwatch",
                 profile: str = "modern", batch_size: int = 10_000,
                 retry: RetryPolicy | None = None,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        super().__init__(batch_size=batch_size, retry=retry, sleep=sleep)
        if profile not in PROFILES:
            raise ConfigError(f"unknown ClickHouse profile {profile!r}; "
                              f"expected one of {sorted(PROFILES)}")
        self.path = os.fspath(path)
        self.database = check_identifier(database)
        self.profile = profile
        self._shared: _Shared | None = None
        #: Migration versions the last :meth:`setup` applied ([] when already up to date).
        self.applied: list[int] = []

    def __repr__(self) -> str:
        return f"ChdbSink({self.path!r}, database={self.database!r})"

    def setup(self) -> None:
        if self._shared is not None:
            return
        self._shared = _acquire(self.path)
        try:
            applied = migrate(self.query, self.profile, database=self.database)
        except Exception:
            self.teardown()
            raise
        self.applied = applied
        if applied:
            logger.info("%r: applied migrations %s", self, applied)

    def teardown(self) -> None:
        if self._shared is not None:
            self._shared = None
            release_session(self.path)

    def write(self, kind: str, records: list[Record], token: str | None) -> None:
        shared = self._ready()
        settings = _INSERT_SETTINGS
        if token is not None:
            settings += f", insert_deduplication_token = {quote_literal(token)}"
        sql = f"INSERT INTO `{self.database}`.`{TABLES[kind].name}` SETTINGS {settings}"
        payload = encode_array(records)
        try:
            with shared.lock, shared.session.send_insert(sql, "JSONEachRow") as inserter:
                inserter.append(payload)
                inserter.finish()
        except Exception as exc:
            if error_code(exc) in _BACKPRESSURE_CODES:
                raise SinkBackpressure(_BACKPRESSURE_WAIT, f"{kind}: {exc}") from exc
            raise  # classified by is_transient(), wrapped in SinkError by flush()

    def is_transient(self, exc: BaseException) -> bool:
        return super().is_transient(exc) or error_code(exc) in _TRANSIENT_CODES

    def query(self, sql: str, params: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
        """Run ``sql`` and return its rows as dicts (for tests, reports and migrations).

        ``params`` fill ``{name:Type}`` placeholders. DateTime values come back as
        ``'YYYY-MM-DD hh:mm:ss.sss'`` strings in the column's time zone.

        Raises
        ------
        SinkError
            The statement failed; the message carries ClickHouse's error.
        """
        shared = self._ready()
        try:
            with shared.lock:
                result = shared.session.query(sql, "JSONEachRow", params=dict(params or {}))
        except Exception as exc:
            raise SinkError(f"{self!r}: query failed: {exc}") from exc
        return [orjson.loads(line) for line in result.bytes().splitlines() if line]

    def _ready(self) -> _Shared:
        if self._shared is None:
            self.setup()
        assert self._shared is not None
        return self._shared
