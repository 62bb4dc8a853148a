"""kill -9 the live worker five times while it consumes a seeded 120k-event stream.

The worker checkpoints its pipeline state (``--checkpoint-dir``) and, after each
restart, seeks back to the positions of the newest checkpoint. Checked against the
oracle (replay of the same messages, :mod:`tests.faults.harness`):

- alerts lost 0, extra alert records 0 (no new or doubled episode), every alert record
  identical to the oracle's; records re-sent after a restart carry the same
  ``alert_id``/``status``/``ts`` (counted as *redelivered*, what a consumer dedups);
- per-slice aggregates of every closed bucket equal the oracle's, and repeated rows
  of one (slice, bucket) never disagree (ReplacingMergeTree collapses them);
- every malformed message is dead-lettered with its reason;
- recovery time (kill -> restarted worker back at the killed one's position) printed.
"""

from __future__ import annotations

import os
import signal
import time

import pytest

from streams.app import TopicNames
from tests.faults.harness import (WORKER_ARGS, compare_aggregates, compare_alerts, dead_letter_set,
                                  oracle, read_aggregates, stream_messages)

pytestmark = [pytest.mark.faults, pytest.mark.integration]

KILLS = 5


def _processed(worker) -> int:
    stats = worker.stats()
    return (stats or {}).get("pipeline", {}).get("messages", 0) if stats else 0


def test_kill_dash_nine_five_times(tansu, kafka, start_worker, tmp_path):
    messages = stream_messages()
    expected = oracle()
    assert expected["alerts"] and expected["stats"]["late"] and expected["stats"]["duplicates"]
    assert expected["stats"]["bad"], "fixture too weak: no malformed line"

    prefix = "k9" + os.urandom(3).hex() + "-"
    topics = TopicNames.with_prefix(prefix, single_input=True)
    ckpt, chdb = tmp_path / "checkpoints", tmp_path / "chdb"
    args = [*WORKER_ARGS, "--checkpoint-dir", str(ckpt), "--checkpoint-seconds", "1",
            "--checkpoint-messages", "150", "--chdb", str(chdb)]
    worker = start_worker(broker_url=tansu.url, prefix=prefix, extra=args)
    worker.wait_ready(timeout=60)
    kafka.produce([(topics.orders, m) for m in messages])

    total = len(messages)
    recoveries = []
    for k in range(1, KILLS + 1):
        target = total * k // (KILLS + 1)
        worker.wait_for(lambda s, t=target: s["pipeline"].get("messages", 0) >= t, timeout=120,
                        what=f"{target} messages before kill {k}")
        at_kill = _processed(worker)
        worker.proc.send_signal(signal.SIGKILL)
        worker.proc.wait(10)
        killed_at = time.monotonic()
        worker = start_worker(broker_url=tansu.url, prefix=prefix, extra=args)
        worker.wait_ready(timeout=60)
        ready = time.monotonic() - killed_at
        worker.wait_for(lambda s, n=at_kill: s["pipeline"].get("messages", 0) >= n, timeout=120,
                        what=f"back at message {at_kill} after kill {k}")
        recoveries.append((ready, time.monotonic() - killed_at, at_kill))
        log = worker.log_text()
        assert "restored checkpoint" in log, log[-3000:]

    stats = worker.wait_processed(total, timeout=180)
    assert stats["pipeline"]["messages"] == total, ("each message exactly once", stats["checkpoint"])
    assert worker.stop(timeout=30) == 0

    live_alerts = [__import__("json").loads(r.value) for r in kafka.read(topics.alerts)]
    alerts = compare_alerts(live_alerts, expected["alerts"])
    aggregates, raw_rows, conflicts = read_aggregates(chdb)
    agg = compare_aggregates(aggregates, expected["aggregates"])
    letters = dead_letter_set(kafka.read(topics.dead_letters))

    print(f"\nkill -9 x{KILLS}: {total} messages, {stats['pipeline']['events']} events "
          f"(late {stats['pipeline']['late']}, duplicates {stats['pipeline']['duplicates']}, "
          f"bad {stats['pipeline']['bad']}); offset gate of the last worker "
          f"{stats['checkpoint']['offsets']}")
    for i, (ready, back, at) in enumerate(recoveries, 1):
        print(f"  kill {i} at message {at}: restarted worker assigned after {ready:.1f}s, "
              f"back at the kill position after {back:.1f}s")
    print(f"  alerts: {len(expected['alerts'])} expected, lost {len(alerts['lost'])}, "
          f"extra {len(alerts['extra'])}, redelivered (same identity) {alerts['redelivered']}")
    print(f"  aggregates: {len(expected['aggregates'])} expected rows, lost {len(agg['lost'])}, "
          f"differing {len(agg['differ'])}, raw rows {raw_rows} (conflicting {len(conflicts)})")

    assert stats["pipeline"]["late"] == expected["stats"]["late"]
    assert not alerts["lost"] and not alerts["extra"], alerts
    assert not alerts["differing"], alerts["differing"][:5]
    assert not agg["lost"] and not agg["extra"] and not agg["differ"], \
        {k: v[:5] for k, v in agg.items()}
    assert not conflicts, conflicts[:5]
    assert letters == expected["dead_letters"]
