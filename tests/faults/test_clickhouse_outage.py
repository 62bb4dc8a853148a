"""The ClickHouse server goes down for 60 s in the middle of the stream, then comes back.

The live worker writes everything (events, aggregates, alerts, complaints, scores, dead
letters) to a real ``clickhouse-server`` (Debian's 18.16, native protocol,
:class:`~sinks.clickhouse.server_sink.ClickHouseServerSink`) started on free loopback
ports. Mid-stream the server is killed with **SIGKILL**, not SIGTERM: that is the harsher
fault (a crash, an OOM kill, a lost host): no clean shutdown, an INSERT in flight is cut
off, the sink cannot know whether it landed and must send it again, and the server must
recover its parts at the next start. A SIGTERM would let the server finish the insert
first and test less. 60 s later it is started again on the same ports and data directory.
Meanwhile the producer keeps producing the rest of the stream.

Checked against the oracle (replay of the same messages, :mod:`tests.faults.harness`):

- **back-pressure, not loss**: during the outage the worker stays alive and keeps
  answering ``/stats/``, it stops consuming (the sink thread retries the failed write
  with capped backoff and the bounded queue in front of it blocks the agent), and its
  consumer lag grows by what the producer sent meanwhile; no sink error is counted;
- **rows visible twice 0**: read as the dashboards read (``FINAL``), every aggregate
  (slice, bucket), every alert record and every event shows once;
- **per-slice aggregates** of every closed bucket equal the oracle's; every event
  the oracle accepted is in ``events``; alert records equal the oracle's (lost 0, extra
  0, so duplicate episodes 0) in ClickHouse and on the alerts topic;
- **recovery time** (server back -> consumption resumes, -> caught up) printed.
"""

from __future__ import annotations

import json
import os
import signal
import time

import pytest

from streams.app import TopicNames
from tests.faults.harness import (WORKER_ARGS, alert_time_identity, compare_aggregates,
                                  compare_alerts, oracle, read_server_aggregates,
                                  read_server_alerts, read_server_event_ids, stream_messages)

pytestmark = [pytest.mark.faults, pytest.mark.integration]

OUTAGE_SECONDS = 60


def _processed(stats: dict | None) -> int:
    return (stats or {}).get("pipeline", {}).get("messages", 0)


def test_clickhouse_down_for_a_minute(tansu, kafka, start_worker, clickhouse_server, tmp_path):
    messages = stream_messages()
    expected = oracle()
    total = len(messages)
    before, during = messages[:total * 2 // 5], messages[total * 2 // 5:]

    prefix = "ch" + os.urandom(3).hex() + "-"
    topics = TopicNames.with_prefix(prefix, single_input=True)
    url = clickhouse_server.url
    args = [*WORKER_ARGS, "--checkpoint-dir", str(tmp_path / "ckpt"), "--checkpoint-seconds", "5",
            "--clickhouse-url", url]
    started = time.monotonic()
    worker = start_worker(broker_url=tansu.url, prefix=prefix, extra=args)
    worker.wait_ready(timeout=90)
    kafka.produce([(topics.orders, m) for m in before])
    worker.wait_for(lambda s: _processed(s) >= total // 5, timeout=180,
                    what=f"{total // 5} messages before the outage")

    clickhouse_server.proc.send_signal(signal.SIGKILL)
    clickhouse_server.proc.wait(10)
    down_at = time.monotonic()
    at_kill = worker.stats()
    assert at_kill is not None
    kafka.produce([(topics.orders, m) for m in during])   # the producer does not wait
    samples: list[tuple[float, int, int]] = []             # (s into the outage, processed, lag)
    while (elapsed := time.monotonic() - down_at) < OUTAGE_SECONDS:
        assert worker.alive, worker.log_text()[-3000:]
        stats = worker.stats()
        assert stats is not None, "the stats page stopped answering during the outage"
        samples.append((elapsed, _processed(stats), stats["total_lag"]))
        time.sleep(1)

    clickhouse_server.start_again()
    back_at = time.monotonic()
    stalled_at = samples[-1][1]
    resumed = worker.wait_for(lambda s: _processed(s) > stalled_at, timeout=120,
                              what="consumption to resume after ClickHouse is back")
    resumed_after = time.monotonic() - back_at
    stats = worker.wait_processed(total, timeout=600)
    caught_up_after = time.monotonic() - back_at
    assert worker.stop(timeout=60) == 0
    assert resumed is not None

    live_alerts = [json.loads(r.value) for r in kafka.read(topics.alerts)]
    alerts = compare_alerts(live_alerts, expected["alerts"])
    aggregates, twice, raw_rows = read_server_aggregates(url)
    agg = compare_aggregates(aggregates, expected["aggregates"])
    stored_alerts, raw_alerts = read_server_alerts(url)
    want_alerts = {alert_time_identity(a) for a in expected["alerts"]}
    event_ids, events_twice, raw_events = read_server_event_ids(url)
    log = worker.log_text()
    retries = log.count("ClickHouseServerSink: writing")

    late = [s for s in samples if s[0] >= 10]   # the queue in front of the sink is full by then
    print(f"\nClickHouse down {OUTAGE_SECONDS}s (SIGKILL, restarted on the same port and data): "
          f"{total} messages, {stats['pipeline']['events']} events, run {time.monotonic() - started:.0f}s")
    print(f"  at the kill: {_processed(at_kill)} messages processed, lag {at_kill['total_lag']}; during the outage processed "
          f"{samples[0][1]} -> {samples[-1][1]}, lag {samples[0][2]} -> {samples[-1][2]}; "
          f"{retries} failed writes retried")
    print(f"  recovery: consumption resumed {resumed_after:.1f}s and the worker caught up "
          f"{caught_up_after:.1f}s after the server was back")
    print(f"  ClickHouse (FINAL): aggregates {len(aggregates)} rows (oracle "
          f"{len(expected['aggregates'])}), lost {len(agg['lost'])}, differing "
          f"{len(agg['differ'])}, visible twice {twice}, raw rows {raw_rows}; events "
          f"{len(event_ids)} (oracle {len(expected['event_ids'])}), visible twice {events_twice}, "
          f"raw {raw_events}; alerts {sum(stored_alerts.values())} (raw {raw_alerts})")
    print(f"  alerts topic: {len(expected['alerts'])} expected, lost {len(alerts['lost'])}, "
          f"extra {len(alerts['extra'])}, redelivered {alerts['redelivered']}")

    # Back-pressure: alive, stalled, lag growing by what was produced meanwhile; nothing dropped.
    assert late and all(p == late[0][1] for _, p, _ in late), f"consumed during the outage: {samples}"
    # Every message not consumed is lag (none skipped), and the lag grew by what came meanwhile.
    assert samples[-1][2] == total - samples[-1][1], samples[-5:]
    assert samples[-1][2] >= at_kill["total_lag"] + len(during) - (samples[-1][1] - _processed(at_kill))
    assert retries > 0, "the sink never saw the outage"
    assert stats["sink_errors"] == 0 and stats["agent_errors"] == 0, stats
    # Nothing lost, nothing visible twice, values equal the oracle's.
    assert not agg["lost"] and not agg["extra"] and not agg["differ"], \
        {k: v[:5] for k, v in agg.items()}
    assert twice == 0 and events_twice == 0
    assert event_ids == expected["event_ids"], (len(event_ids ^ expected["event_ids"]),)
    assert set(stored_alerts) == want_alerts and max(stored_alerts.values()) == 1, stored_alerts
    assert not alerts["lost"] and not alerts["extra"] and not alerts["differing"], alerts
