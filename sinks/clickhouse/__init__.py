"""ClickHouse storage: the schema with its migrations, and the embedded chDB sink.

* :mod:`sinks.clickhouse.schema` — one ReplacingMergeTree table per record kind
  (:data:`TABLES`), rendered per server profile (:data:`PROFILES`), and the numbered
  :data:`MIGRATIONS` applied by :func:`migrate` and recorded in ``schema_migrations``.
* :mod:`sinks.clickhouse.chdb_sink` — :class:`ChdbSink`, the default storage: ClickHouse
  running inside this process.  One process can hold one chDB path;
  :func:`acquire_session` shares it between sinks and other readers, and
  :func:`held_path` tells which path that is.

A server sink (clickhouse-driver) will reuse the same schema and the same insert
settings; it is a later piece of work.
"""

from __future__ import annotations

from sinks.clickhouse.chdb_sink import ChdbSink, acquire_session, held_path, release_session
from sinks.clickhouse.schema import MIGRATIONS, PROFILES, TABLES, Migration, Profile, migrate

__all__ = [
    "ChdbSink",
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
