"""A destination that stays down, as the on-call person sees it: ``/stats/`` and a forced stop.

A real worker writes to a real ClickHouse server (Debian's ``clickhouse-server``), which
is then SIGKILLed. The sink retries its insert until it lands (back-pressure, on purpose),
so consumption stops. Before 2026-11-25 ``/stats/`` said nothing about it
(``sink_errors`` 0: a transient failure is retried inside the sink), and a stop the sink
held ended in ``worker did not stop within 15s; exiting hard`` (status 70), naming no sink
and saying nothing of the rows it held. ~15 s.
"""

from __future__ import annotations

import json
import re
import signal

import pytest

from streams.app import TopicNames
from tests.faults.conftest import clickhouse_server  # noqa: F401 - a fixture, used by name
from tests.integration.conftest import unique_prefix

pytestmark = pytest.mark.integration

__all__ = ["clickhouse_server"]


def _order(i: int) -> bytes:
    return json.dumps({"type": "order", "event_id": f"o-{i}", "ts": "2026-11-02T10:00:00+08:00",
                       "order_id": f"O{i}", "merchant_id": "m1", "region": "广东",
                       "carrier": "SF", "category": "digital", "amount": 99.0}).encode()


def test_a_stalled_sink_is_on_stats_and_named_when_it_holds_the_stop(
        tansu, kafka, start_worker, clickhouse_server, tmp_path):  # noqa: F811 - the fixture
    prefix = unique_prefix("stall")
    topics = TopicNames.with_prefix(prefix)
    worker = start_worker(broker_url=tansu.url, prefix=prefix,
                          extra=["--clickhouse-url", clickhouse_server.url, "--stop-timeout", "4"])
    worker.wait_ready()
    kafka.produce([(topics.orders, _order(1))])
    worker.wait_for(lambda s: s["pipeline"].get("messages", 0) >= 1 and s["sink_records"] >= 1,
                    timeout=30, what="the first row handed to the sink")
    healthy = worker.stats()
    assert healthy["sink_retries"] == 0 and healthy["sink_stalled"] is None, healthy

    clickhouse_server.proc.send_signal(signal.SIGKILL)
    clickhouse_server.proc.wait(10)
    kafka.produce([(topics.orders, _order(2))])
    stats = worker.wait_for(lambda s: s["sink_retries"] >= 3, timeout=30,
                            what="failed inserts retried")
    stalled = stats["sink_stalled"]
    assert stalled["sink"] == f"ClickHouseServerSink({clickhouse_server.url!r})", stalled
    assert stalled["attempts"] >= 3 and stalled["for_s"] > 0 and stalled["since"].endswith("+00:00")
    assert stalled["last_error"], stalled
    assert stats["sink_errors"] == 0   # a transient failure: retried by the sink itself
    status = f"STALLED on {stalled['sink']} for "   # the 5-s status line says it too
    worker.wait_for(lambda s: status in worker.log_text(), timeout=12, what="the status line")

    assert worker.stop(timeout=30) == 70
    log = worker.log_text()
    final = [line for line in log.splitlines() if "exiting hard" in line]
    assert len(final) == 1, log[-3000:]
    line = final[0]
    assert re.search(r"worker did not stop within 4s; exiting hard \(status 70\): the stop waited "
                     r"on ClickHouseServerSink\(.clickhouse://default@127\.0\.0\.1:\d+/riskwatch.\), "
                     r"whose writes have failed "
                     r"for \d+s \(\d+ attempts, retried until they land; last: .+\); it holds "
                     r"\d+ unwritten record\(s\) \(events \d+\)\. No offset commit covers them", line), line
    assert "without --checkpoint-dir its state starts empty" in line, line
    assert line.endswith("Fix the destination and restart"), line
