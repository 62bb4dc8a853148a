"""``riskwatch db migrate``: create or upgrade the ClickHouse tables (and show the user setup).

::

    riskwatch db migrate --chdb riskwatch-data/chdb                 # embedded (chDB)
    riskwatch db migrate --clickhouse-url clickhouse://default:pw@host:9000/riskwatch
    RISKWATCH_CLICKHOUSE_URL=clickhouse://... riskwatch db migrate   # as replay/worker read it
    riskwatch db users --modern            # SQL for the writer and dashboard users
    riskwatch db users --legacy            # users.xml for servers without SQL RBAC (< 20.5)

The DDL profile is chosen from the server version (``legacy`` below 22.8); migrations
already applied are skipped (``schema_migrations``).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from riskwatch.commands import check_new_chdb, nonempty
from riskwatch.errors import ConfigError

__all__ = ["register"]

_HERE = Path(__file__).resolve().parents[2] / "sinks" / "clickhouse"


def cmd_migrate(args: argparse.Namespace) -> int:
    from sinks.clickhouse.schema import MIGRATIONS, migrate

    from sinks.wiring import CLICKHOUSE_ENV, clickhouse_url

    if args.chdb and args.clickhouse_url:
        raise ConfigError("give exactly one of --chdb PATH or --clickhouse-url URL")
    # As replay and the worker read it: a flag not given falls back to the variable, and
    # an error then names the variable. --chdb wins over the variable.
    url, source = (None, "--chdb") if args.chdb else clickhouse_url(args.clickhouse_url)
    if not (args.chdb or url):
        raise ConfigError("give exactly one of --chdb PATH or --clickhouse-url URL "
                          f"(or set ${CLICKHOUSE_ENV})")
    if args.chdb:
        from sinks.clickhouse import ChdbSink

        check_new_chdb(args.chdb)
        sink = ChdbSink(args.chdb, database=args.database or "riskwatch")
        try:
            sink.setup()  # applies the missing migrations
            applied = sink.applied
            applied_rows = sink.query(f"SELECT version, profile FROM `{sink.database}`."
                                      "schema_migrations FINAL ORDER BY version")
        finally:
            sink.close()
        where, profile = f"chDB {args.chdb} database {sink.database}", "modern"
    else:
        from sinks.clickhouse.server_sink import ClickHouseServerSink, connect, execute_rows

        try:
            sink = ClickHouseServerSink(url, database=args.database, migrate_schema=False)
        except ConfigError as exc:   # name the flag or variable, as replay and the worker do
            raise ConfigError(f"{source}: {exc}") from None
        client = connect(sink.address)
        try:
            version = client.connection.server_info.version_tuple()
            from sinks.clickhouse.server_sink import profile_for_version

            profile = args.profile or profile_for_version(version)
            applied = migrate(execute_rows(client), profile, database=sink.database)
            applied_rows = execute_rows(client)(
                f"SELECT version, profile FROM `{sink.database}`.schema_migrations FINAL "
                "ORDER BY version")
        finally:
            client.disconnect()
        where = f"ClickHouse {'.'.join(map(str, version))} at {sink.address}"
    latest = max(m.version for m in MIGRATIONS)
    versions = sorted({int(r["version"]) for r in applied_rows})
    # What this run did: it listed every recorded version, so a second run on an
    # up-to-date database looked like it had applied them all again.
    done = (f"applied now: {', '.join(map(str, applied))}" if applied
            else f"already at version {max(versions)}, nothing to apply")
    print(f"{where}: schema at version {max(versions)} of {latest} (profile {profile}; {done})")
    return 0


def cmd_users(args: argparse.Namespace) -> int:
    name = "users.xml" if args.legacy else "users.sql"
    print((_HERE / name).read_text(encoding="utf-8"), end="")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("db", help="ClickHouse schema migrations and users",
                       description="Create or upgrade riskwatch's ClickHouse tables; print the "
                                   "SQL/XML that creates its writer and dashboard users.")
    dbsub = p.add_subparsers(dest="db_command", metavar="ACTION")
    dbsub.required = True
    m = dbsub.add_parser("migrate", help="apply the schema migrations not yet applied")
    m.add_argument("--chdb", help="embedded ClickHouse (chDB) directory")
    m.add_argument("--clickhouse-url",
                   help="clickhouse://user:password@host:port/database (native protocol; "
                        "a user allowed to run DDL; default $RISKWATCH_CLICKHOUSE_URL)")
    m.add_argument("--database", type=nonempty, help="database name (default: the URL's, else riskwatch)")
    m.add_argument("--profile", choices=["modern", "legacy"],
                   help="DDL profile (default: from the server version)")
    m.set_defaults(func=cmd_migrate)
    u = dbsub.add_parser("users", help="print the user setup (writer + read-only dashboard)")
    g = u.add_mutually_exclusive_group()
    g.add_argument("--modern", action="store_true", help="SQL (ClickHouse >= 20.5; default)")
    g.add_argument("--legacy", action="store_true", help="users.xml (older servers, e.g. 18.16)")
    u.set_defaults(func=cmd_users)
