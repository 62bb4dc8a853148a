"""Alert receivers answer 500, then recover: the signed webhook for two minutes (issue 5's
acceptance), and the Alertmanager API for 30 s (a front that answers 500, then passes
requests on to a real ``prometheus-alertmanager``).

Each receiver's outage starts at the first request it sees (so it surely hits alert
traffic: failures for its whole down time). The live worker consumes the seeded stream
with ``--webhook-url`` and ``--alertmanager-url``; it posts to Alertmanager first, so the
webhook's two minutes begin when Alertmanager has accepted the first alert.

**Back-pressure, decided.** Alert sinks retry inside ``flush()`` (capped exponential
backoff: webhook 1 s doubling to 60 s, Alertmanager 0.5 s doubling to 30 s) until the
request lands, on the worker's one sink thread; the bounded queue in front of it then
blocks the agent. So while an alert cannot be delivered the **whole worker stops
consuming** (lag grows; ClickHouse writes wait too) and catches up after. Why: a
checkpoint and an offset commit must never cover an alert that was not delivered,
or a crash during the outage would lose it; alerts are rare, so nothing piles up but
lag. With Alertmanager in front (production), its *own* receivers' outages never reach
the worker: Alertmanager accepts the post and retries its receivers itself.

Checked against the oracle (replay of the same messages):

- **webhook**: every alert state change the oracle has is delivered with a 2xx, once:
  the ``Idempotency-Key`` (``alert_id:status:severity:ts``) of every oracle record
  exactly once, none else; signatures verify. At-least-once allows a key to arrive
  again only after a worker restart (records since the last checkpoint are re-sent) or
  a 2xx the sender never saw (timeout); a receiver dedups on ``Idempotency-Key``. Not
  tested here: this run has no restart, so duplicates must be 0;
- **Alertmanager**: every oracle episode (fingerprint) reached Alertmanager, and the
  last state posted per fingerprint (status and severity) is the oracle's last; what
  Alertmanager holds as active afterwards is exactly the oracle's still-firing
  episodes. The sink posts only the latest state of each alert per batch, so
  intermediate severities may be skipped by design (``sinks/alertmanager.py``);
- **bounded retries**: failed requests per receiver <= what the backoff allows in its
  down time (no retry storm), first delivery within the backoff cap of recovery;
- the webhook meta-alert fired (to Alertmanager) while the webhook kept failing, and
  resolved when it recovered;
- the worker stayed alive with ``/stats/`` answering, stalled (lag = unread messages)
  and caught up; recovery times printed.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import time
from collections import Counter

import pytest

from sinks.alertmanager import AlertmanagerSink
from sinks.webhook import WebhookSink, verify_signature
from streams.app import TopicNames
from tests.faults.harness import (WORKER_ARGS, FlakyReceiver, Outage, Sampler, attempts_within,
                                  compare_alerts, oracle, stream_messages, wait_until)

pytestmark = [pytest.mark.faults, pytest.mark.integration]

WEBHOOK_DOWN = 120.0
ALERTMANAGER_DOWN = 30.0
SLACK = 15.0   # a busy 2-core machine: polling, the sink thread's queue, a request in flight
SECRET = "fault-test-secret"


@pytest.fixture
def alertmanager(tmp_path):
    from tests.alerting.amkit import Alertmanager, RecordingReceiver, render_test_config

    with RecordingReceiver() as notified, \
            Alertmanager(render_test_config(notified.url), tmp_path / "am") as am:
        yield am


def _idempotency_key(alert: dict) -> str:
    return f"{alert['alert_id']}:{alert['status']}:{alert['severity']}:{alert['ts']}"


def _posted_alerts(requests: list[dict]) -> list[tuple[float, dict, str]]:
    """(arrival, postable alert, firing|resolved) of every alert Alertmanager accepted."""
    out = []
    for r in requests:
        if r["status"] >= 300:
            continue
        for alert in json.loads(r["body"]):
            ends = dt.datetime.fromisoformat(alert["endsAt"].replace("Z", "+00:00")).timestamp()
            out.append((r["at"], alert, "resolved" if ends <= r["wall"] else "firing"))
    return out


def test_alert_receivers_answer_500_then_recover(tansu, kafka, start_worker, alertmanager, tmp_path):
    messages = stream_messages()
    expected = oracle()
    total = len(messages)
    prefix = "ad" + os.urandom(3).hex() + "-"
    topics = TopicNames.with_prefix(prefix, single_input=True)
    with FlakyReceiver(Outage(), WEBHOOK_DOWN) as hook, \
            FlakyReceiver(Outage(), ALERTMANAGER_DOWN, forward_to=alertmanager.url) as front:
        args = [*WORKER_ARGS, "--checkpoint-dir", str(tmp_path / "ckpt"), "--checkpoint-seconds", "5",
                "--webhook-url", f"{hook.url}/hook", "--webhook-secret", SECRET,
                "--alertmanager-url", front.url]
        started = time.monotonic()
        worker = start_worker(broker_url=tansu.url, prefix=prefix, extra=args)
        worker.wait_ready(timeout=90)
        kafka.produce([(topics.orders, m) for m in messages])
        with Sampler(worker) as sampler:
            wait_until(lambda: front.outage.started is not None, timeout=300, what="the first alert")
            stats = worker.wait_processed(total, timeout=ALERTMANAGER_DOWN + WEBHOOK_DOWN + 420)
        caught_up_at = time.monotonic()
        assert worker.stop(timeout=60) == 0
        hook_requests, front_requests = hook.snapshot(), front.snapshot()
        hook_back, front_back = hook.recovered_at, front.recovered_at
    down_at = front.outage.started
    live_alerts = [json.loads(r.value) for r in kafka.read(topics.alerts)]
    topic = compare_alerts(live_alerts, expected["alerts"])

    # -- webhook ------------------------------------------------------------------------
    webhook_policy = WebhookSink(["http://x"], secret="x").retry
    hook_ok = [r for r in hook_requests if r["status"] == 200]
    hook_failed = [r for r in hook_requests if r["status"] >= 500]
    delivered = Counter(r["headers"]["Idempotency-Key"] for r in hook_ok)
    want = {_idempotency_key(a) for a in expected["alerts"]}
    forged = [r for r in hook_ok if not verify_signature(SECRET, r["headers"], r["body"],
                                                         now=r["wall"])]
    first_hook_ok = min(r["at"] for r in hook_ok)

    # -- Alertmanager -------------------------------------------------------------------
    am_policy = AlertmanagerSink(["http://x"]).retry
    front_failed = [r for r in front_requests if r["status"] >= 500]
    posted = _posted_alerts(front_requests)
    last_posted: dict[str, tuple[str, str]] = {}
    meta = []
    for _, alert, status in posted:
        labels = alert["labels"]
        if labels["metric"] == "webhook_delivery":
            meta.append(status)
            continue
        last_posted[labels["fingerprint"]] = (status, labels["severity"])
    last_oracle = {a["fingerprint"]: (a["status"], a["severity"]) for a in expected["alerts"]}
    first_front_ok = min(r["at"] for r in front_requests if r["status"] < 300)
    held = alertmanager.api("GET", "alerts")
    now = time.time()
    active = {a["labels"]["fingerprint"]: a["labels"]["severity"] for a in held
              if a["labels"].get("metric") != "webhook_delivery"
              and dt.datetime.fromisoformat(a["endsAt"].replace("Z", "+00:00")).timestamp() > now}
    still_firing = {fp: sev for fp, (status, sev) in last_oracle.items() if status == "firing"}

    # -- the worker ---------------------------------------------------------------------
    stall = sampler.between(down_at + 10, hook_back - 2)
    gaps = [b - a for a, b in zip([t for t, _ in sampler.samples], [t for t, _ in sampler.samples][1:])]

    print(f"\nalert receivers answering 500 (webhook {WEBHOOK_DOWN:.0f}s, Alertmanager "
          f"{ALERTMANAGER_DOWN:.0f}s, each from its first request): {total} messages, {stats['pipeline']['events']} events, "
          f"run {caught_up_at - started:.0f}s")
    print(f"  webhook: {len(want)} alert records, delivered {len(delivered)} keys in "
          f"{len(hook_ok)} 2xx; failed attempts {len(hook_failed)} (backoff allows <= "
          f"{attempts_within(webhook_policy, WEBHOOK_DOWN)} in {WEBHOOK_DOWN:.0f}s); first "
          f"delivery {first_hook_ok - hook_back:+.1f}s after recovery")
    print(f"  Alertmanager: {len(last_oracle)} episodes, {len(posted)} alerts accepted; failed posts "
          f"{len(front_failed)} (backoff allows <= {attempts_within(am_policy, ALERTMANAGER_DOWN)}); "
          f"first post {first_front_ok - front_back:+.1f}s after recovery; meta-alert {meta}")
    print(f"  worker: stalled at message {stall[0]['pipeline']['messages'] if stall else '?'} "
          f"(lag {stall[-1]['total_lag'] if stall else '?'}) for {hook_back - down_at:.0f}s, caught up "
          f"{caught_up_at - hook_back:.1f}s after the webhook was back; longest /stats/ gap "
          f"{max(gaps, default=0):.1f}s")
    print(f"  alerts topic: lost {len(topic['lost'])}, extra {len(topic['extra'])}")

    # Webhook: everything, once, signed; bounded retries; delivered soon after recovery.
    assert set(delivered) == want, (sorted(want - set(delivered))[:5], sorted(set(delivered) - want)[:5])
    assert max(delivered.values()) == 1, [k for k, n in delivered.items() if n > 1]
    assert not forged
    assert 0 < len(hook_failed) <= attempts_within(webhook_policy, WEBHOOK_DOWN)
    assert all(r["at"] < hook_back + 1 for r in hook_failed)   # +1: answered, then recorded
    assert first_hook_ok <= hook_back + webhook_policy.max_delay + SLACK
    # Alertmanager: every episode, its final state; what it holds; bounded retries.
    assert set(last_posted) == set(last_oracle) and last_posted == last_oracle, \
        {fp: (last_posted.get(fp), last_oracle.get(fp)) for fp in set(last_posted) | set(last_oracle)
         if last_posted.get(fp) != last_oracle.get(fp)}
    assert active == still_firing, (active, still_firing)
    assert 0 < len(front_failed) <= attempts_within(am_policy, ALERTMANAGER_DOWN)
    assert first_front_ok <= front_back + am_policy.max_delay + SLACK
    assert meta and meta[0] == "firing" and meta[-1] == "resolved", meta
    # The worker: alive throughout, stalled with every unread message as lag, caught up.
    assert stall and len({s["pipeline"]["messages"] for s in stall}) == 1, \
        [s["pipeline"]["messages"] for s in stall]
    assert all(s["total_lag"] == total - s["pipeline"]["messages"] > 0 for s in stall)
    assert max(gaps, default=0) < 10, "the stats page stopped answering"
    assert stats["sink_errors"] == 0 and stats["agent_errors"] == 0, stats
    assert not topic["lost"] and not topic["extra"], topic
