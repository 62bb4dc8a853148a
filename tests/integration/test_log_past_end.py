"""A checkpoint whose positions lie past the log's end, on an external broker.

A worker restarted with ``--checkpoint-dir`` against a broker whose topics were recreated
(here: a second Tansu, empty) seeks to the checkpoint's position, past the new log's end.
Tansu waits there rather than resetting, ``/stats/`` lag floors at 0, and the new log's
messages below that position are never read. Before 2026-11-25 nothing said
so. Now one warning line per partition at the seek, and ``/stats/``
``checkpoint.past_log_end``; the processing is unchanged (a log being re-sent is waited
for). ~25 s: two worker starts.
"""

from __future__ import annotations

import json
import re

import pytest

from riskwatch.broker import EmbeddedBroker
from streams.app import TopicNames
from tests.integration.conftest import KafkaClient, unique_prefix

pytestmark = pytest.mark.integration

MESSAGES = 30


def _order(i: int) -> bytes:
    return json.dumps({"type": "order", "event_id": f"o-{i}", "ts": "2026-11-02T10:00:00+08:00",
                       "order_id": f"O{i}", "merchant_id": "m1", "region": "广东",
                       "carrier": "SF", "category": "digital", "amount": 99.0}).encode()


def test_a_checkpoint_past_the_log_end_is_warned_about_and_shown(broker_binary, start_worker,
                                                                   tmp_path):
    prefix = unique_prefix("pastend")
    topics = TopicNames.with_prefix(prefix)
    ckpt = tmp_path / "ckpt"
    args = ["--checkpoint-dir", str(ckpt), "--checkpoint-seconds", "1"]
    with EmbeddedBroker(data_dir=tmp_path / "tansu-1", binary=broker_binary) as first:
        worker = start_worker(broker_url=first.url, prefix=prefix, extra=args)
        worker.wait_ready()
        KafkaClient(first.bootstrap).produce([(topics.orders, _order(i)) for i in range(MESSAGES)])
        worker.wait_processed(MESSAGES)
        assert worker.stop() == 0   # a clean stop writes the final checkpoint
        assert "past_log_end" not in worker.log_text()

    with EmbeddedBroker(data_dir=tmp_path / "tansu-2", binary=broker_binary) as recreated:
        worker = start_worker(broker_url=recreated.url, prefix=prefix, extra=args)
        stats = worker.wait_for(lambda s: bool((s["checkpoint"] or {}).get("past_log_end")),
                                timeout=40, what="the partition past its log's end on /stats/")
        assert stats["checkpoint"]["past_log_end"] == [
            {"topic": topics.orders, "partition": 0, "next": MESSAGES, "log_end": 0}]
        assert stats["total_lag"] == 0      # what the operator saw: nothing to read
        warnings = [line for line in worker.log_text().splitlines() if "the log ends at" in line]
        assert len(warnings) == 1, worker.log_text()[-3000:]
        line = re.sub(r"checkpoint #\d+", "checkpoint #N", warnings[0])
        assert (f"WARNING streams.checkpoint: {topics.orders}/0: the checkpoint #N resumes at offset "
                f"{MESSAGES} but the log ends at 0 (the topic was recreated, or the broker lost "
                f"its log): the worker waits there, lag shows 0, and its messages below offset "
                f"{MESSAGES} are never read. If the old log is being re-sent, "
                "let it wait; if the topic is new for good, stop the worker and move the "
                f"checkpoint files out of {ckpt}") in line, line
        assert worker.stop() == 0
