"""ClickHouse tables of riskwatch, written once and rendered per server *profile*, plus migrations.

One table per record kind (see :data:`TABLES`), all ``ReplacingMergeTree(version)`` whose
sorting key is the record's identity, so a record delivered twice shows once under
``FINAL`` / ``argMax``.  The design choices, each for a reason:

* ``PARTITION BY toYYYYMM(<time>)`` only where the time is part of the identity.
  ReplacingMergeTree collapses rows *within* one partition; a complaint update or a
  re-recorded dead letter may carry another ``ts``, so those two tables are unpartitioned.
* Dimensions are kept twice: as a ``dimensions Map(String, String)`` (every key, also ones
  added later) and flattened into ``region``/``merchant_id``/``carrier``/``category``/
  ``intent`` columns filled by ``DEFAULT dimensions['…']``, which are what Grafana filters
  and groups by.  Map keys are ``String``: ``Map(LowCardinality(String), …)`` made the
  JSON inserts 2.2x slower in chDB 4.4 (86k vs 191k rows/s, parsing alone).
* ``LowCardinality(String)`` for small vocabularies (region, carrier, intent, severity…);
  ``merchant_id`` and ids stay ``String`` (100k+ distinct values).
* Times are ``DateTime64(3, 'Asia/Shanghai')``; inserts parse RFC 3339 with any offset.
* ``version UInt64 DEFAULT <ingestion time in ms>``: a record may bring its own
  ``"version"`` (complaints should: the highest version wins); otherwise the last
  ingested copy wins.
* ``SETTINGS non_replicated_deduplication_window`` turns on ClickHouse's block
  deduplication, so an insert re-sent with the same ``insert_deduplication_token`` is
  dropped by the server.
* ``events`` (masked raw events) expire after 180 days of event time (``TTL``).

Profiles: every modern feature (LowCardinality, DateTime64, Bool, Map, CODEC, TTL, the
dedup window) is a switch of :class:`Profile`, so an old-server profile is a new
``PROFILES`` entry, not a second copy of the DDL.  ``"modern"`` (ClickHouse >= 22.8 and
chDB) has them all; ``"legacy"`` has none, for old servers such as Debian's 18.16: times
become ``DateTime('Asia/Shanghai')`` (seconds), maps JSON text (read them with
``visitParamExtract*``), Bool ``UInt8``, and there is no TTL, CODEC or dedup window.
The server sink picks the profile from the server's version.

Migrations are numbered; :func:`migrate` applies the missing ones and records them in
``schema_migrations``.  Never edit a released migration: add a new one.

Examples
--------
>>> print(render_create(TABLES["scores"], "riskwatch", PROFILES["modern"]))
CREATE TABLE IF NOT EXISTS `riskwatch`.`scores` (
    `merchant_id` String,
    `ts` DateTime64(3, 'Asia/Shanghai') CODEC(Delta, ZSTD(1)),
    `score` Float64,
    `tier` LowCardinality(String),
    `components` Map(String, Float64),
    `change_1d` Nullable(Float64),
    `version` UInt64 DEFAULT toUnixTimestamp64Milli(now64(3)),
    `inserted_at` DateTime64(3, 'Asia/Shanghai') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMM(ts)
ORDER BY (merchant_id, ts)
SETTINGS non_replicated_deduplication_window = 10000
"""

from __future__ import annotations

import dataclasses
import logging
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from riskwatch.errors import ConfigError

__all__ = [
    "AddColumn",
    "Column",
    "DEDUP_WINDOW",
    "MIGRATIONS",
    "Migration",
    "PROFILES",
    "Profile",
    "TABLES",
    "TZ",
    "Table",
    "check_identifier",
    "migrate",
    "quote_literal",
    "render_create",
    "render_type",
]

logger = logging.getLogger(__name__)

TZ = "Asia/Shanghai"
#: Inserts whose block hashes are remembered per table for deduplication: at one insert a
#: second per table this covers ~3 hours of re-deliveries.
DEDUP_WINDOW = 10_000

Execute = Callable[[str], Sequence[Mapping[str, Any]]]


@dataclasses.dataclass(frozen=True)
class Profile:
    """Which modern ClickHouse features the DDL may use (all on = ClickHouse >= 22.8)."""

    name: str
    low_cardinality: bool = True
    datetime64: bool = True
    bool_type: bool = True
    maps: bool = True
    codecs: bool = True
    ttl: bool = True
    dedup_window: bool = True


PROFILES: dict[str, Profile] = {
    "modern": Profile("modern"),
    "legacy": Profile("legacy", low_cardinality=False, datetime64=False, bool_type=False,
                      maps=False, codecs=False, ttl=False, dedup_window=False),
}


@dataclasses.dataclass(frozen=True)
class Column:
    """A column in modern syntax; ``from_map=("dimensions", "region")`` defaults it from a map."""

    name: str
    type: str
    codec: str | None = None
    from_map: tuple[str, str] | None = None


@dataclasses.dataclass(frozen=True)
class Table:
    """A ReplacingMergeTree table; ``version`` and ``inserted_at`` columns are added."""

    name: str
    columns: tuple[Column, ...]
    order_by: str
    partition_by: str | None = None
    ttl: str | None = None


def _c(name: str, type_: str, codec: str | None = None) -> Column:
    return Column(name, type_, codec)


_LC = "LowCardinality(String)"
_TIME = f"DateTime64(3, '{TZ}')"
_DIMENSIONS = (
    _c("dimensions", "Map(String, String)"),
    Column("region", _LC, from_map=("dimensions", "region")),
    Column("merchant_id", "String", from_map=("dimensions", "merchant_id")),
    Column("carrier", _LC, from_map=("dimensions", "carrier")),
    Column("category", _LC, from_map=("dimensions", "category")),
    Column("intent", _LC, from_map=("dimensions", "intent")),
)
# Delta helps only where the time is sorted within a part (it is in the sorting key).
_SORTED_TIME = "Delta, ZSTD(1)"
_TEXT = "ZSTD(3)"

EVENTS = Table(
    "events",
    (_c("event_id", "String"), _c("type", _LC), _c("ts", _TIME, "ZSTD(1)"),
     _c("order_id", "String"), _c("merchant_id", "String"), _c("region", _LC),
     _c("carrier", _LC), _c("category", _LC), _c("amount", "Nullable(Decimal(18, 2))"),
     _c("status", _LC), _c("complaint_id", "String"), _c("late", "Bool"), _c("source", _LC),
     _c("partition", "Nullable(Int32)"), _c("offset", "Int64")),
    order_by="event_id", partition_by="toYYYYMM(ts)",
    ttl="toDateTime(ts) + INTERVAL 180 DAY")

COMPLAINTS = Table(
    "complaints",
    (_c("complaint_id", "String"), _c("ts", _TIME, "ZSTD(1)"), _c("intent", _LC),
     _c("intent_confidence", "Float32"), _c("intent_source", _LC), _c("sentiment", "Float32"),
     _c("masked_text", "String", _TEXT), _c("status", _LC), _c("auto_resolved", "Bool"),
     _c("auto_resolved_at", f"Nullable({_TIME})"), _c("time_saved_minutes", "Float32"),
     _c("order_id", "String"), _c("merchant_id", "String"), _c("region", _LC),
     _c("carrier", _LC), _c("category", _LC), _c("channel", _LC), _c("customer_tier", _LC),
     _c("declared_type", _LC), _c("anger", "Float32"), _c("sensitive", f"Array({_LC})"),
     _c("priority", _LC), _c("csat", "Nullable(Float32)")),
    order_by="complaint_id")  # unpartitioned: an update may carry another ts (see above)

AGGREGATES = Table(
    "aggregates",
    (_c("slice", "String"), _c("bucket_start", _TIME, _SORTED_TIME),
     _c("bucket_end", _TIME, _SORTED_TIME), *_DIMENSIONS, _c("orders", "UInt32"),
     # expected is NULL while a slice has no baseline yet: not the same as expecting 0.
     _c("complaints", "UInt32"), _c("exposure", "Float64"), _c("expected", "Nullable(Float64)"),
     _c("score", "Float64"), _c("intents", "Map(String, UInt32)")),
    order_by="(slice, bucket_start)", partition_by="toYYYYMM(bucket_start)")

ALERTS = Table(
    "alerts",
    (_c("alert_id", "String"), _c("fingerprint", "String"), _c("status", _LC),
     _c("severity", _LC), _c("metric", _LC), *_DIMENSIONS, _c("ts", _TIME, "ZSTD(1)"),
     _c("bucket_start", _TIME), _c("bucket_end", _TIME), _c("observed", "Float64"),
     _c("expected", "Float64"), _c("score", "Float64"), _c("summary", "String", _TEXT),
     # JSON text: contributors mix objects and strings; query with JSONExtract*(…).
     _c("contributors", "String", _TEXT), _c("examples", "Array(String)", _TEXT)),
    order_by="(alert_id, status, ts)", partition_by="toYYYYMM(ts)")

# As migration 1 created it; frozen, because a released migration never changes.
_SCORES_V1 = Table(
    "scores",
    (_c("merchant_id", "String"), _c("ts", _TIME, _SORTED_TIME), _c("score", "Float64"),
     _c("tier", _LC), _c("components", "Map(String, Float64)")),
    order_by="(merchant_id, ts)", partition_by="toYYYYMM(ts)")
# NULL on rows stored before migration 3 added the column: "not recorded", not "no move".
_CHANGE_1D = _c("change_1d", "Nullable(Float64)")
SCORES = dataclasses.replace(_SCORES_V1, columns=(*_SCORES_V1.columns, _CHANGE_1D))

DEAD_LETTERS = Table(
    "dead_letters",
    (_c("dead_letter_id", "String"), _c("ts", _TIME, "ZSTD(1)"), _c("source", _LC),
     _c("partition", "Nullable(Int32)"), _c("offset", "Int64"), _c("reason", _LC),
     _c("detail", "String", _TEXT), _c("event_id", "String"), _c("event_type", _LC),
     _c("payload_excerpt", "String", _TEXT)),
    order_by="dead_letter_id")  # unpartitioned: a re-recorded dead letter has a new ts

#: Table of each record kind.
TABLES: dict[str, Table] = {t.name: t for t in
                            (AGGREGATES, ALERTS, COMPLAINTS, DEAD_LETTERS, EVENTS, SCORES)}

_ALERTS_CURRENT = """\
CREATE VIEW IF NOT EXISTS {db}.`alerts_current` AS
SELECT
    alert_id,
    argMax(status, (ts, version)) AS status,
    argMax(severity, (ts, version)) AS severity,
    any(fingerprint) AS fingerprint,
    any(metric) AS metric,
    any(region) AS region,
    any(merchant_id) AS merchant_id,
    any(carrier) AS carrier,
    any(category) AS category,
    any(intent) AS intent,
    argMax(summary, (ts, version)) AS summary,
    argMax(score, (ts, version)) AS score,
    min(ts) AS first_ts,
    max(ts) AS last_ts
FROM {db}.`alerts`
GROUP BY alert_id"""


@dataclasses.dataclass(frozen=True)
class AddColumn:
    """A column added to an existing table, skipped where it already exists.

    Old servers (Debian's 18.16) have no ``ADD COLUMN IF NOT EXISTS``, so :func:`migrate`
    looks in ``system.columns`` first, and treats a failed ``ALTER`` as done when the
    column is there afterwards (another process migrating at the same time added it).
    """

    table: str
    column: Column

    def render(self, database: str, profile: Profile) -> str:
        """The ``ALTER TABLE`` statement (without the existence check)."""
        return (f"ALTER TABLE `{check_identifier(database)}`.`{self.table}` "
                f"ADD COLUMN {_render_column(self.column, profile)}")


@dataclasses.dataclass(frozen=True)
class Migration:
    """One schema step: ``Table`` specs (created if missing), SQL templates (``{db}``)
    and :class:`AddColumn` steps."""

    version: int
    description: str
    statements: tuple[Table | str | AddColumn, ...]

    def render(self, database: str, profile: Profile) -> list[str]:
        """The SQL statements of this migration for ``database`` on ``profile``."""
        db = f"`{check_identifier(database)}`"
        return [render_create(s, database, profile) if isinstance(s, Table)
                else s.render(database, profile) if isinstance(s, AddColumn)
                else s.format(db=db) for s in self.statements]


MIGRATIONS: list[Migration] = [
    Migration(1, "one ReplacingMergeTree table per record kind",
              (AGGREGATES, ALERTS, COMPLAINTS, DEAD_LETTERS, EVENTS, _SCORES_V1)),
    Migration(2, "alerts_current view: the latest state of every alert", (_ALERTS_CURRENT,)),
    Migration(3, "scores.change_1d: the merchant API answers it from a store too",
              (AddColumn("scores", _CHANGE_1D),)),
]

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


def check_identifier(name: str) -> str:
    """Return ``name`` if it is a plain SQL identifier, else raise ``ConfigError``."""
    if not _IDENTIFIER.match(name):
        raise ConfigError(f"{name!r} is not a valid database name (letters, digits, _)")
    return name


def quote_literal(value: str) -> str:
    """Quote ``value`` as a ClickHouse string literal.

    >>> print(quote_literal("orders:0:1-9 it's"))
    'orders:0:1-9 it\\'s'
    """
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def render_type(type_: str, profile: Profile) -> str:
    """A column type in modern syntax rendered for ``profile``.

    >>> render_type("Array(LowCardinality(String))", PROFILES["legacy"])
    'Array(String)'
    >>> render_type("Nullable(DateTime64(3, 'Asia/Shanghai'))", PROFILES["legacy"])
    "Nullable(DateTime('Asia/Shanghai'))"
    """
    if not profile.low_cardinality:
        type_ = re.sub(r"LowCardinality\(([^()]*)\)", r"\1", type_)
    if not profile.datetime64:
        type_ = re.sub(r"DateTime64\(\d+(, '[^']*')?\)",
                       lambda m: f"DateTime({m.group(1)[2:]})" if m.group(1) else "DateTime",
                       type_)
    if not profile.maps and type_.startswith("Map("):
        type_ = "String"  # the JSON object as text
    if not profile.bool_type:
        type_ = re.sub(r"\bBool\b", "UInt8", type_)
    return type_


def _render_column(col: Column, profile: Profile) -> str:
    parts = [f"`{col.name}`", render_type(col.type, profile)]
    if col.from_map:
        source, key = col.from_map
        parts.append(f"DEFAULT {source}['{key}']" if profile.maps
                     else f"DEFAULT visitParamExtractString({source}, '{key}')")
    if col.codec and profile.codecs:
        parts.append(f"CODEC({col.codec})")
    return " ".join(parts)


def render_create(table: Table, database: str, profile: Profile) -> str:
    """``CREATE TABLE IF NOT EXISTS`` for ``table`` with the features ``profile`` allows."""
    now_ms, now = (("toUnixTimestamp64Milli(now64(3))", "now64(3)") if profile.datetime64
                   else ("toUInt64(now()) * 1000", "now()"))
    columns = [_render_column(c, profile) for c in table.columns]
    columns += [f"`version` UInt64 DEFAULT {now_ms}",
                f"`inserted_at` {render_type(_TIME, profile)} DEFAULT {now}"]
    lines = [f"CREATE TABLE IF NOT EXISTS `{check_identifier(database)}`.`{table.name}` (",
             ",\n".join(f"    {c}" for c in columns), ")",
             "ENGINE = ReplacingMergeTree(version)"]
    if table.partition_by:
        lines.append(f"PARTITION BY {table.partition_by}")
    lines.append(f"ORDER BY {table.order_by}")
    if table.ttl and profile.ttl:
        lines.append(f"TTL {table.ttl}")
    if profile.dedup_window:
        lines.append(f"SETTINGS non_replicated_deduplication_window = {DEDUP_WINDOW}")
    return "\n".join(lines)


def migrate(execute: Execute, profile: str = "modern", *, database: str = "riskwatch"
            ) -> list[int]:
    """Apply every migration not yet recorded in ``database``; return their versions.

    Idempotent: a second call returns ``[]``.  Every statement is ``IF NOT EXISTS``, so two
    processes migrating at once do no harm, and ``schema_migrations`` is a
    ReplacingMergeTree, so a version recorded twice still counts once.

    Parameters
    ----------
    execute
        Runs one SQL statement and returns its rows as mappings (``ChdbSink.query`` does;
        a clickhouse-driver client needs a two-line adapter).
    profile
        Key of :data:`PROFILES`.
    database
        Created if missing.
    """
    try:
        prof = PROFILES[profile]
    except KeyError:
        raise ConfigError(f"unknown ClickHouse profile {profile!r}; "
                          f"expected one of {sorted(PROFILES)}") from None
    db = f"`{check_identifier(database)}`"
    execute(f"CREATE DATABASE IF NOT EXISTS {db}")
    execute(f"CREATE TABLE IF NOT EXISTS {db}.`schema_migrations` (version UInt32, "
            "description String, profile String, applied_at DateTime('UTC') DEFAULT now()) "
            "ENGINE = ReplacingMergeTree ORDER BY version")
    applied = {int(row["version"])
               for row in execute(f"SELECT DISTINCT version FROM {db}.`schema_migrations`")}
    done: list[int] = []
    for migration in sorted(MIGRATIONS, key=lambda m: m.version):
        if migration.version in applied:
            continue
        for step, statement in zip(migration.statements, migration.render(database, prof)):
            if isinstance(step, AddColumn):
                _add_column(execute, database, step, statement)
            else:
                execute(statement)
        # INSERT … SELECT, not VALUES: a native-protocol client waits for a data block
        # after an INSERT … VALUES statement.
        execute(f"INSERT INTO {db}.`schema_migrations` (version, description, profile) "
                f"SELECT {migration.version}, {quote_literal(migration.description)}, "
                f"{quote_literal(prof.name)}")
        logger.info("applied migration %d to %s (%s): %s", migration.version, database,
                    prof.name, migration.description)
        done.append(migration.version)
    return done


def _add_column(execute: Execute, database: str, step: AddColumn, alter: str) -> None:
    def exists() -> bool:
        rows = execute(f"SELECT count() AS n FROM system.columns WHERE database = "
                       f"{quote_literal(database)} AND table = {quote_literal(step.table)} "
                       f"AND name = {quote_literal(step.column.name)}")
        return bool(rows) and int(rows[0]["n"]) > 0

    if exists():
        return
    try:
        execute(alter)
    except Exception:
        if not exists():   # not a concurrent migration's doing: a real failure
            raise
