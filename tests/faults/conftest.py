"""Fault-test fixtures: the integration suite's real Tansu broker, worker subprocesses and
aiokafka client (imported, not copied), plus the seeded event stream and its oracle."""

from tests.integration.conftest import broker_binary, kafka, start_worker, tansu  # noqa: F401
