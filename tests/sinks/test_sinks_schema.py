"""The ClickHouse schema: one identity-keyed table per kind, profiles, migration records."""

from __future__ import annotations

import re

import pytest

from riskwatch.errors import ConfigError
from sinks import KINDS
from sinks.clickhouse import MIGRATIONS, PROFILES, TABLES, Profile, migrate
from sinks.clickhouse.schema import render_create

# The identity of each kind's record: the ReplacingMergeTree sorting key.
IDENTITY = {
    "aggregates": "(slice, bucket_start)",
    "alerts": "(alert_id, status, ts)",
    "complaints": "complaint_id",
    "dead_letters": "dead_letter_id",
    "events": "event_id",
    "scores": "(merchant_id, ts)",
}


def test_every_kind_has_a_table_keyed_by_its_identity() -> None:
    assert set(TABLES) == KINDS
    assert {kind: table.order_by for kind, table in TABLES.items()} == IDENTITY


def test_partitions_depend_only_on_the_identity() -> None:
    # ReplacingMergeTree collapses duplicates only within a partition, so every copy of a
    # record must land in the same one: partition by identity columns, or by an event's
    # own ts (a re-delivered event is the same event, with the same ts).
    fixed_by_identity = {"events": "ts event_id"}
    for kind, table in TABLES.items():
        if table.partition_by:
            column = re.fullmatch(r"toYYYYMM\((\w+)\)", table.partition_by).group(1)
            assert column in fixed_by_identity.get(kind, IDENTITY[kind]), kind
    assert TABLES["complaints"].partition_by is None  # an update may carry another ts
    assert TABLES["dead_letters"].partition_by is None  # re-recorded at another time


def test_modern_ddl_uses_the_modern_features() -> None:
    ddl = render_create(TABLES["events"], "rw", PROFILES["modern"])
    for feature in ("LowCardinality(String)", "DateTime64(3, 'Asia/Shanghai')", "CODEC(",
                    "TTL toDateTime(ts) + INTERVAL 180 DAY", "ReplacingMergeTree(version)",
                    "non_replicated_deduplication_window"):
        assert feature in ddl
    alerts = render_create(TABLES["alerts"], "rw", PROFILES["modern"])
    assert "`region` LowCardinality(String) DEFAULT dimensions['region']" in alerts


def test_a_profile_can_strip_every_modern_feature() -> None:
    bare = Profile("bare", low_cardinality=False, datetime64=False, bool_type=False,
                   maps=False, codecs=False, ttl=False, dedup_window=False)
    for table in TABLES.values():
        ddl = render_create(table, "rw", bare)
        for feature in ("LowCardinality", "DateTime64", "CODEC", "TTL", "Map(", "Bool",
                        "now64", "SETTINGS"):
            assert feature not in ddl, (table.name, feature)
    alerts = render_create(TABLES["alerts"], "rw", bare)
    assert "`ts` DateTime('Asia/Shanghai')" in alerts
    assert "`dimensions` String" in alerts  # the JSON object as text
    assert "DEFAULT visitParamExtractString(dimensions, 'region')" in alerts


def test_migration_versions_are_unique_and_increasing() -> None:
    versions = [m.version for m in MIGRATIONS]
    assert versions == sorted(set(versions)) and versions[0] == 1


def test_migrate_on_a_fake_executor_records_each_version_once() -> None:
    statements: list[str] = []
    recorded: list[dict[str, int]] = []

    def execute(sql: str) -> list[dict[str, int]]:
        statements.append(sql)
        if sql.startswith("INSERT INTO `db`.`schema_migrations`"):
            recorded.append({"version": int(re.search(r"SELECT (\d+)", sql).group(1))})
        if "FROM system.columns" in sql:   # AddColumn's check: the column is not there
            return [{"n": 0}]
        return list(recorded) if sql.startswith("SELECT") else []

    assert migrate(execute, database="db") == [m.version for m in MIGRATIONS]
    assert migrate(execute, database="db") == []
    assert sum(s.startswith("CREATE TABLE IF NOT EXISTS `db`.`alerts`") for s in statements) == 1
    assert sum(s.startswith("ALTER TABLE `db`.`scores` ADD COLUMN `change_1d`")
               for s in statements) == 1


def test_released_migrations_keep_creating_what_they_created() -> None:
    # Migration 1 is frozen: a store it made has no change_1d; migration 3 adds it.
    [scores_v1] = [t for t in MIGRATIONS[0].statements if getattr(t, "name", "") == "scores"]
    assert "change_1d" not in {c.name for c in scores_v1.columns}
    assert "change_1d" in {c.name for c in TABLES["scores"].columns}
    [alter] = MIGRATIONS[2].render("db", PROFILES["legacy"])
    assert alter == "ALTER TABLE `db`.`scores` ADD COLUMN `change_1d` Nullable(Float64)"


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"profile": "ancient"}, "unknown ClickHouse profile"),
    ({"database": "risk-watch; DROP"}, "not a valid database name"),
])
def test_bad_arguments_raise_config_error(kwargs: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        migrate(lambda sql: [], **kwargs)
