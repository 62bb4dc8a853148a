"""ClickHouse storage: the schema with its migrations, and the embedded chDB sink.

* :mod:`sinks.clickhouse.schema` — one ReplacingMergeTree table per record kind
  (:data:`TABLES`), rendered per server profile (:data:`PROFILES`), and the numbered
  :data:`MIGRATIONS` applied by :func:`migrate` and recorded in ``schema_migrations``.
* :mod:`sinks.clickhouse.chdb_sink` — :class:`ChdbSink`, the default storage: ClickHouse
  running inside this process.  One process can hold one chDB path;
  :func:`acquire_session` shares it between sinks and other readers, and
  :func:`held_path` tells which path that is.

* :mod:`sinks.clickhouse.server_sink` — :class:`ClickHouseServerSink`, the same tables on a
  ClickHouse server over the native protocol (clickhouse-driver), with the DDL profile
  picked from the server's version.
* :mod:`sinks.clickhouse.local_server` — a throwaway ``clickhouse-server`` on loopback for
  tests and benchmarks.
* ``users.sql`` / ``users.xml`` — the writer and read-only dashboard users.
"""

from __future__ import annotations

from sinks.clickhouse.chdb_sink import ChdbSink, acquire_session, held_path, release_session
from sinks.clickhouse.schema import MIGRATIONS, PROFILES, TABLES, Migration, Profile, migrate
from sinks.clickhouse.server_sink import ClickHouseServerSink

__all__ = [
    "ChdbSink",
    "ClickHouseServerSink",
    "MIGRATIONS",
    "Migration",
    "PROFILES",
    "Profile",
    "TABLES",
    "acquire_session",
    "held_path",
    "migrate",
    "release_session",
]
