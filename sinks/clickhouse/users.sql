-- riskwatch users for ClickHouse servers WITH SQL access control (20.5+; the
-- clickhouse/clickhouse-server image). Servers without it (e.g. Debian's 18.16): users.xml.
-- Run as an admin after `riskwatch db migrate`; replace the two passwords.
-- Print it with: riskwatch db users --modern

-- The worker: appends rows, nothing else (no SELECT, no DDL, no ALTER/DELETE).
CREATE USER IF NOT EXISTS riskwatch_writer IDENTIFIED WITH sha256_password BY 'WRITER_PASSWORD';
GRANT INSERT ON riskwatch.* TO riskwatch_writer;
-- The sink checks the schema version at setup when it migrates: run the worker with
-- migrations done by the admin (ClickHouseServerSink(migrate_schema=False)), or also:
-- GRANT SELECT ON riskwatch.schema_migrations TO riskwatch_writer;

-- Grafana: read-only (readonly=1: no writes, no DDL, no SET), riskwatch only, bounded.
-- The plugin's client (clickhouse-go) sets max_execution_time on every query, which
-- readonly=1 refuses unless it is CHANGEABLE_IN_READONLY (grafana/clickhouse-datasource#325).
CREATE SETTINGS PROFILE IF NOT EXISTS riskwatch_dashboard SETTINGS
    readonly = 1,
    max_execution_time = 30 MAX 120 CHANGEABLE_IN_READONLY,
    max_memory_usage = 2000000000,
    max_rows_to_read = 500000000,
    max_result_rows = 100000,
    result_overflow_mode = 'break';
CREATE USER IF NOT EXISTS riskwatch_dashboard IDENTIFIED WITH sha256_password BY 'DASHBOARD_PASSWORD'
    SETTINGS PROFILE riskwatch_dashboard;
GRANT SELECT ON riskwatch.* TO riskwatch_dashboard;
-- A dashboard of ~20 panels refreshing every 10 s is ~7,200 queries an hour.
CREATE QUOTA IF NOT EXISTS riskwatch_dashboard
    FOR INTERVAL 1 hour MAX queries = 20000, errors = 1000, read_rows = 50000000000,
        execution_time = 3600
    TO riskwatch_dashboard;
