"""The live worker's signed webhooks against a real HTTP receiver that rejects them.

A receiver answering 4xx is not retried: the alert becomes a ``webhook rejected`` dead
letter. The on-call audit found that the live worker wrote it to the stores only, so
the ``dead-letters`` topic (what a dead-letter consumer and the pipeline's other dead
letters use) never saw it. Here the worker (Tansu, ``python -m streams.worker``) raises
a real alert from a day and a bit of events with an incident; the receiver answers 422.
"""

from __future__ import annotations

import json
import os

import pytest

from streams.app import TopicNames
from streams.text.pii import contains_unmasked_pii
from tests import streamkit
from tests.alerting.amkit import RecordingReceiver

pytestmark = pytest.mark.integration


def _messages(topic: str, lines: list[bytes], size: int = 500) -> list[tuple[str, bytes]]:
    # One topic (any input topic takes any event type), arrays of events: a few hundred
    # messages instead of 50,000 keep the test short.
    return [(topic, b"[" + b",".join(lines[i:i + size]) + b"]") for i in range(0, len(lines), size)]


def test_a_rejected_webhook_is_a_dead_letter_on_the_topic(tansu, kafka, start_worker):
    lines = streamkit.steady_stream(days=1.2, incident=("广东", "中通", 26.0, 28.0, 0.25))
    prefix = "wh" + os.urandom(3).hex() + "-"
    topics = TopicNames.with_prefix(prefix)
    with RecordingReceiver(status=lambda n: 422) as receiver:
        worker = start_worker(broker_url=tansu.url, prefix=prefix, extra=[
            "--webhook-url", f"{receiver.url}/hooks/riskwatch?key=k3y", "--webhook-secret", "s3cret",
            "--idle-source-seconds", "1"])
        worker.wait_ready()
        messages = _messages(topics.orders, lines)
        kafka.produce(messages)
        stats = worker.wait_for(lambda s: s["sent"]["alerts"] >= 1 and s["sent"]["dead_letters"] >= 1,
                                timeout=60, what="an alert and its webhook dead letter")
        assert worker.alive and stats["agent_errors"] == 0
        posted = [json.loads(r["body"]) for r in receiver.requests]
    letters = [json.loads(r.value) for r in kafka.read(topics.dead_letters)]
    rejected = [d for d in letters if d["reason"] == "webhook rejected"]
    assert rejected and {d["event_id"] for d in rejected} <= {p["alert_id"] for p in posted}
    letter = rejected[0]
    # the shape of every other dead letter, the receiver named without its key
    assert set(letter) == {"dead_letter_id", "ts", "source", "partition", "offset", "index",
                           "reason", "detail", "event_id", "event_type", "payload_excerpt"}
    assert letter["source"] == "webhook" and letter["event_type"] == "alert"
    assert letter["detail"].startswith(f"HTTP 422 from {receiver.url}/hooks/riskwatch")
    assert "k3y" not in json.dumps(letters)
    assert not contains_unmasked_pii(json.dumps(letters, ensure_ascii=False))
