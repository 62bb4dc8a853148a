"""Two active workers in one group split the partitions, and each says its slices are partial.

Real Tansu broker, two real ``python -m streams.worker`` processes in one consumer group
on topics with two partitions each. Kafka gives each worker part of every input topic;
riskwatch cannot make slices exact that way (README, *Scale-out*), so each worker must
report it: ``coverage`` on ``/stats/`` is ``partial`` with the partitions it lacks, the
log carries the warning and the status line says PARTIAL. When one worker stops, the
other is given every partition and reports ``whole``.
"""

from __future__ import annotations

import os
import time

import pytest

from streams.app import TopicNames


@pytest.mark.integration
def test_two_active_workers_report_partial_slices_and_the_survivor_whole(tansu, start_worker):
    prefix = "own" + os.urandom(3).hex() + "-"
    inputs = TopicNames.with_prefix(prefix).inputs
    every = {f"{topic}/{p}" for topic in inputs for p in (0, 1)}
    first = start_worker(broker_url=tansu.url, prefix=prefix, extra=["--partitions", "2"])
    first.wait_for(lambda s: s["coverage"]["status"] == "whole", timeout=60,
                   what="the only worker owning every input partition")

    second = start_worker(broker_url=tansu.url, prefix=prefix, extra=["--partitions", "2"])
    both = []
    for worker in (first, second):
        stats = worker.wait_for(lambda s: s["coverage"]["status"] == "partial", timeout=90,
                                what="a partial assignment after the second worker joined")
        both.append(stats)
    owned = [set(s["assigned"]) for s in both]
    assert not owned[0] & owned[1] and owned[0] | owned[1] == every, owned
    for stats, mine in zip(both, owned):
        cov = stats["coverage"]
        assert cov["owned"] == len(mine) and cov["total"] == len(every)
        assert set(cov["missing"]) == every - mine
    for worker, mine in zip((first, second), owned):
        status = f"PARTIAL input: {len(mine)} of {len(every)} partitions"
        deadline = time.monotonic() + 20   # the status line comes every 5 s
        while status not in worker.log_text():
            assert time.monotonic() < deadline, worker.log_text()[-3000:]
            time.sleep(0.5)
        log = worker.log_text()
        assert "another active worker of group" in log and "README 'Scale-out'" in log, log[-3000:]
        assert "must not share a --checkpoint-dir" in log, log[-3000:]

    assert second.stop() == 0
    stats = first.wait_for(lambda s: s["coverage"]["status"] == "whole", timeout=90,
                           what="every partition back on the remaining worker")
    assert set(stats["assigned"]) == every and stats["coverage"]["missing"] == []
