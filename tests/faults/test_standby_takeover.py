"""Two workers in one consumer group share a checkpoint directory; the active one is
killed (-9) half-way through the seeded stream and the hot standby takes over.

With one partition per input topic, faust's assignor gives every input partition to one
worker; the other holds none and writes no checkpoint. When the active worker dies, the
group rebalances (after Tansu's session timeout), the standby is assigned the
partitions, loads the active worker's newest checkpoint and seeks back to its positions.
Each worker has its own chDB (one process owns a chDB directory); the two tables
together must hold exactly the oracle's closed buckets, and the alerts topic the
oracle's alerts (lost 0, extra 0).
"""

from __future__ import annotations

import json
import os
import signal
import time

import pytest

from streams.app import TopicNames
from tests.faults.harness import (WORKER_ARGS, compare_aggregates, compare_alerts, dead_letter_set,
                                  oracle, read_aggregates, stream_messages)

pytestmark = [pytest.mark.faults, pytest.mark.integration]


def test_standby_takes_over_from_the_shared_checkpoint(tansu, kafka, start_worker, tmp_path):
    messages = stream_messages()
    expected = oracle()
    prefix = "sb" + os.urandom(3).hex() + "-"
    topics = TopicNames.with_prefix(prefix, single_input=True)
    ckpt = tmp_path / "checkpoints"
    common = [*WORKER_ARGS, "--checkpoint-dir", str(ckpt), "--checkpoint-seconds", "1",
              "--checkpoint-messages", "150"]
    first = start_worker(broker_url=tansu.url, prefix=prefix,
                         extra=[*common, "--chdb", str(tmp_path / "chdb-a")])
    first.wait_ready(timeout=60)
    second = start_worker(broker_url=tansu.url, prefix=prefix,
                          extra=[*common, "--chdb", str(tmp_path / "chdb-b")])
    second.wait_for(lambda s: s["uptime_s"] > 0, timeout=60, what="standby up")
    time.sleep(12)   # let the second member join: faust then rebalances the group
    owners = [w for w in (first, second) if (w.stats() or {}).get("assigned")]
    assert len(owners) == 1, "with one partition per topic exactly one worker is active"
    active, standby = owners[0], (second if owners[0] is first else first)

    kafka.produce([(topics.orders, m) for m in messages])
    half = len(messages) // 2
    active.wait_for(lambda s: s["pipeline"].get("messages", 0) >= half, timeout=120,
                    what="half the stream")
    at_kill = active.stats()["pipeline"]["messages"]
    assert not standby.stats()["assigned"]
    assert not standby.stats()["checkpoint"]["saved"], "a standby must not write checkpoints"
    active.proc.send_signal(signal.SIGKILL)
    active.proc.wait(10)
    killed = time.monotonic()
    standby.wait_for(lambda s: bool(s["assigned"]), timeout=90, what="takeover")
    took_over = time.monotonic() - killed
    standby.wait_for(lambda s: s["pipeline"].get("messages", 0) >= at_kill, timeout=120,
                     what="back at the kill position")
    back = time.monotonic() - killed
    stats = standby.wait_processed(len(messages), timeout=180)
    assert "restored checkpoint" in standby.log_text()
    # Each message exactly once: not fewer (a gap the seek back never filled), not more
    # (redeliveries taken again; event dedup would hide them in the aggregates).
    assert stats["pipeline"]["messages"] == len(messages), stats["checkpoint"]
    assert standby.stop(timeout=30) == 0

    alerts = compare_alerts([json.loads(r.value) for r in kafka.read(topics.alerts)],
                            expected["alerts"])
    rows_a, raw_a, conflicts_a = read_aggregates(tmp_path / "chdb-a")
    rows_b, raw_b, conflicts_b = read_aggregates(tmp_path / "chdb-b")
    conflicts = conflicts_a + conflicts_b + [
        (k, rows_a[k], v) for k, v in rows_b.items() if k in rows_a and rows_a[k] != v]
    agg = compare_aggregates({**rows_a, **rows_b}, expected["aggregates"])
    print(f"\nstandby takeover: killed the active worker at message {at_kill}; standby assigned "
          f"after {took_over:.1f}s, back at the kill position after {back:.1f}s; "
          f"{stats['pipeline']['events']} events; offset gate {stats['checkpoint']['offsets']}; "
          f"partitions {stats['lag']}; "
          f"alerts lost {len(alerts['lost'])}, extra "
          f"{len(alerts['extra'])}, redelivered {alerts['redelivered']}; aggregate rows "
          f"{raw_a}+{raw_b}, lost {len(agg['lost'])}, differing {len(agg['differ'])}")
    assert not alerts["lost"] and not alerts["extra"] and not alerts["differing"], alerts
    assert not agg["lost"] and not agg["extra"] and not agg["differ"], {k: v[:5] for k, v in agg.items()}
    assert not conflicts, conflicts[:5]
    assert dead_letter_set(kafka.read(topics.dead_letters)) == expected["dead_letters"]
