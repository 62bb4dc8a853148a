#!/bin/bash
# Runs once, when the clickhouse/clickhouse-server container starts with an empty data
# directory (/docker-entrypoint-initdb.d): creates riskwatch's writer and dashboard users
# from users.sql with the passwords from the environment (docker-compose.yml).
set -euo pipefail
: "${CLICKHOUSE_WRITER_PASSWORD:?set CLICKHOUSE_WRITER_PASSWORD}"
: "${CLICKHOUSE_DASHBOARD_PASSWORD:?set CLICKHOUSE_DASHBOARD_PASSWORD}"
sed -e "s/WRITER_PASSWORD/${CLICKHOUSE_WRITER_PASSWORD//\'/}/" \
    -e "s/DASHBOARD_PASSWORD/${CLICKHOUSE_DASHBOARD_PASSWORD//\'/}/" /riskwatch/users.sql |
  clickhouse-client --user "${CLICKHOUSE_USER:-default}" --password "${CLICKHOUSE_PASSWORD:-}" \
    --multiquery
