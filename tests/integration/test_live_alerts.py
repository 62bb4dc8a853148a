"""A live worker's real alerts on their way to people: webhooks and operators' verdicts.

The worker (Tansu, ``python -m streams.worker``) raises a real alert from a day and a
bit of events with an incident (15 s). Found by the on-call audit:

- a webhook receiver answering 4xx is not retried: the alert becomes a ``webhook
  rejected`` dead letter, which the live worker wrote to the stores only, never to the
  ``dead-letters`` topic the pipeline's other dead letters go to;
- ``riskwatch feedback --broker`` on a live alert recorded metric ``unknown`` (there is
  no alerts file live), so ``--report`` counted the verdict under no detector; and the
  worker counted a verdict on an id it never raised as ``applied``.
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


def _incident_lines() -> list[bytes]:
    return streamkit.steady_stream(days=1.2, incident=("广东", "中通", 26.0, 28.0, 0.25))


def test_a_rejected_webhook_is_a_dead_letter_on_the_topic(tansu, kafka, start_worker):
    lines = _incident_lines()
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


def test_a_live_verdict_takes_its_metric_from_the_alerts_topic(tansu, kafka, start_worker, tmp_path,
                                                              capsys):
    from riskwatch.cli import main
    from streams.alerting import fingerprint

    prefix = "lv" + os.urandom(3).hex() + "-"
    topics = TopicNames.with_prefix(prefix)
    worker = start_worker(broker_url=tansu.url, prefix=prefix, extra=["--idle-source-seconds", "1"])
    worker.wait_ready()
    kafka.produce(_messages(topics.orders, _incident_lines()))
    worker.wait_for(lambda s: s["sent"]["alerts"] >= 1, timeout=60, what="an alert")
    alert = json.loads(kafka.read(topics.alerts)[0].value)
    store = tmp_path / "fb.jsonl"
    flags = ["--store", str(store), "--broker", tansu.url, "--topic-prefix", prefix]
    capsys.readouterr()
    assert main(["feedback", alert["alert_id"], "--verdict", "false_alarm", *flags]) == 0
    out = capsys.readouterr()
    assert f"(metric {alert['metric']} from the alerts topic)" in out.out and out.err == ""
    # an id no worker raised: said at once, and counted unknown by the worker
    never = f"{fingerprint('complaint_rate', {'region': '西藏'})}-{alert['alert_id'].split('-')[1]}"
    assert main(["feedback", never, "--verdict", "confirmed", *flags]) == 0
    err = capsys.readouterr().err
    assert err.startswith(f"riskwatch: warning: alert {never} is not on topic {topics.alerts}: "
                          "check the id") and err.count("\n") == 1
    stats = worker.wait_for(lambda s: sum(s["feedback"].values()) == 2, timeout=30, what="two verdicts")
    assert stats["feedback"] == {"applied": 1, "unknown": 1, "rejected": 0}
    assert main(["feedback", "--report", "--store", str(store), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report[alert["metric"]]["false_alarm"] == 1
    assert report[alert["metric"]]["metric_from"] == {"alerts topic": 1}
    assert report["unknown"]["metric_from"] == {"nowhere": 1}
