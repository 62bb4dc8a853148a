"""Fault-test fixtures: the integration suite's real Tansu broker, worker subprocesses and
aiokafka client (imported, not copied), plus the seeded event stream and its oracle, a
real ClickHouse server (Debian's ``clickhouse-server``) and the alerting test kit's
recording HTTP receiver and real Alertmanager."""

from collections.abc import Iterator

import pytest

from tests.conftest import unavailable
from tests.integration.conftest import (  # noqa: F401
    broker_binary,
    kafka,
    start_worker,
    tansu,
)

# The integration suite's fixtures, re-exported so that pytest finds them here (and
# pyflakes, which does not read noqa comments, sees them used).
__all__ = ["broker_binary", "kafka", "start_worker", "tansu"]


@pytest.fixture
def clickhouse_server(tmp_path) -> Iterator:
    """A ClickHouse server on free loopback ports, data in ``tmp_path`` (stopped after)."""
    from sinks.clickhouse.local_server import LocalClickHouseServer, find_server_binary

    if find_server_binary() is None:
        unavailable("clickhouse-server is not installed (Debian: apt-get install "
                    "clickhouse-server; `make test-deps` installs it)")
    server = LocalClickHouseServer(tmp_path / "clickhouse").start()
    try:
        yield server
    finally:
        server.stop()
