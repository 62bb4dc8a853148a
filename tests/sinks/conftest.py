"""Fixtures for the sink tests: sample records of every kind, and chDB sinks.

How the chDB tests share one engine
-----------------------------------
chDB binds the whole process to ONE database path while any connection is open: opening
a second path raises.  So every chDB test here uses the same session-scoped directory
(``chdb_path``) and isolates itself by *database name*: the ``chdb_sink`` factory gives
each test a fresh database and drops it afterwards.  The factory closes every sink it made
at teardown, so between tests (and after this package) no connection stays open and the
engine shuts down; another test package can then open a path of its own.  Tests that need
a second path (the registry tests) open it only while nothing else is open.
"""

from __future__ import annotations

import contextlib
import itertools
import re
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from riskwatch.errors import SinkError
from sinks.clickhouse import ChdbSink, acquire_session, held_path, release_session

_databases = itertools.count()


@pytest.fixture(scope="session")
def chdb_path(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The one chDB directory of this test session (or the one already held open)."""
    # If other code in this pytest process holds a chDB path through the registry, a
    # second path could not be opened: share that one, isolated by database name.
    return held_path() or str(tmp_path_factory.mktemp("chdb"))


@pytest.fixture
def database(request: pytest.FixtureRequest) -> str:
    """A database name unique to this test."""
    name = re.sub(r"\W", "_", request.node.name)[:40]
    return f"t{next(_databases)}_{name}"


@pytest.fixture
def chdb_sink(chdb_path: str, database: str) -> Iterator[Callable[..., ChdbSink]]:
    """Factory of set-up ChdbSinks on the shared path and this test's database."""
    made: list[ChdbSink] = []

    def make(cls: type[ChdbSink] = ChdbSink, **kwargs: Any) -> ChdbSink:
        kwargs.setdefault("database", database)
        sink = cls(chdb_path, **kwargs)
        made.append(sink)
        sink.setup()
        return sink

    yield make
    for sink in made:
        sink.drain()  # a test may leave a failing batch behind on purpose
        with contextlib.suppress(SinkError):
            sink.close()
    session = acquire_session(chdb_path)
    try:
        session.query(f"DROP DATABASE IF EXISTS `{database}`")
    finally:
        release_session(chdb_path)


@pytest.fixture
def records() -> dict[str, list[dict[str, Any]]]:
    """One or two realistic records per kind, with Chinese text and an extra key each."""
    return sample_records()


def sample_records() -> dict[str, list[dict[str, Any]]]:
    """The records of the ``records`` fixture (also used by the server integration tests)."""
    return {
        "alerts": [{
            "alert_id": "al-7f3a", "fingerprint": "fp-91", "status": "firing",
            "severity": "orange", "metric": "complaint_rate",
            "dimensions": {"region": "广东", "carrier": "中通", "intent": "delivery_delay"},
            "ts": "2026-11-02T08:15:00+08:00", "bucket_start": "2026-11-02T08:00:00+08:00",
            "bucket_end": "2026-11-02T08:05:00+08:00", "observed": 42.0, "expected": 9.5,
            "score": 0.97, "summary": "广东/中通 催件投诉 42 件，预期 9.5 件",
            "contributors": [{"hub": "广州白云转运中心", "share": 0.61}, "intent=delivery_delay"],
            "examples": ["快递三天没动了，电话1**********"], "runbook": "extra key",
        }],
        "complaints": [{
            "complaint_id": "c-1001", "ts": "2026-11-02T08:11:00+08:00",
            "intent": "delivery_delay", "intent_confidence": 0.91, "intent_source": "model",
            "sentiment": -0.46, "masked_text": "我的快递到哪了？收件人张*，电话138****5678",
            "status": "open", "auto_resolved": False, "auto_resolved_at": None,
            "time_saved_minutes": 0.0, "order_id": "o-88", "merchant_id": "m-17",
            "region": "广东", "carrier": "中通", "category": "服饰", "channel": "app",
            "customer_tier": None, "declared_type": "物流", "anger": 0.7,
            "sensitive": ["phone", "name"], "priority": "P2", "version": 1,
            "agent_note": "extra key",
        }],
        "dead_letters": [{
            "dead_letter_id": "dl-orders-0-77", "ts": "2026-11-02T08:12:00+08:00",
            "source": "orders", "partition": 0, "offset": 77, "reason": "invalid_json",
            "detail": "Expecting value: line 1 column 1", "event_id": None, "event_type": None,
            "payload_excerpt": "{\"type\":\"ord", "worker": "extra key",
        }],
        "aggregates": [{
            "bucket_start": "2026-11-02T08:00:00+08:00", "bucket_end": "2026-11-02T08:05:00+08:00",
            "slice": "region=广东|carrier=中通",
            "dimensions": {"region": "广东", "carrier": "中通"}, "orders": 1200,
            "complaints": 42, "exposure": 980.5, "expected": 9.5, "score": 0.97,
            "intents": {"delivery_delay": 30, "lost_parcel": 12}, "late": 3,
        }, {
            "bucket_start": "2026-11-02T08:00:00+08:00", "bucket_end": "2026-11-02T08:05:00+08:00",
            "slice": "merchant_id=m-99", "dimensions": {"merchant_id": "m-99"}, "orders": 4,
            "complaints": 0, "exposure": 0.05, "expected": None, "score": 0.0, "intents": {},
        }],
        "events": [{
            "event_id": "ev-1", "type": "order", "ts": "2026-11-02T08:01:00+08:00",
            "order_id": "o-88", "merchant_id": "m-17", "region": "广东", "carrier": "中通",
            "category": "服饰", "amount": "199.90", "status": None, "complaint_id": None,
            "late": False, "source": "orders", "partition": 0, "offset": 1200,
            "headers": {"x": "extra key"},
        }, {
            "event_id": "ev-2", "type": "order_status", "ts": "2026-11-02T00:30:00Z",
            "order_id": "o-88", "merchant_id": None, "region": None, "carrier": None,
            "category": None, "amount": None, "status": "delivered", "complaint_id": None,
            "late": True, "source": "order_status", "partition": None, "offset": 5,
        }],
        "scores": [{
            "merchant_id": "m-17", "ts": "2026-11-02T09:00:00+08:00", "score": 72.5,
            "tier": "C", "components": {"complaint_rate": -18.0, "delay_rate": -9.5},
            "change_1d": -3.25, "trend": "down",
        }],
    }
