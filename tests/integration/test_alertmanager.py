"""Acceptance: riskwatch alerts through a real Prometheus Alertmanager (Debian package).

One Alertmanager (clustering off, free loopback port) runs the production routing,
grouping and inhibit rules of ``dashboards/alertmanager/alertmanager.yml`` with every
receiver pointed at a real HTTP server in this test and short timers (group_wait 1 s,
group_interval 2 s). Alerts are posted by :class:`sinks.alertmanager.AlertmanagerSink`.

- An incident found by the pipeline (a 2-day stream with a 广东 x 中通 delivery incident,
  event times ending near now) gives exactly one grouped notification, then a resolve.
  The replay runs in compressed time, so its records are posted in two phases
  (firing, then resolved): posted together they would resolve within group_wait and
  Alertmanager would rightly send nothing. The event-time part of the latency (an
  incident's first abnormal event -> bucket close -> post) is measured live by
  ``benchmarks/alert_latency.py``; here the post -> notification part is asserted.
- A silence created through the API v2 keeps its slice quiet.
- A carrier-wide incident inhibits the per-merchant alerts it explains.
"""

from __future__ import annotations

import datetime as dt
import time

import pytest

from sinks.alertmanager import AlertmanagerSink
from streams.alerting import fingerprint
from streams.pipeline import Pipeline
from streams.replay import replay_lines
from tests import streamkit
from tests.alerting.amkit import Alertmanager, RecordingReceiver, render_test_config

pytestmark = pytest.mark.integration

GROUP_WAIT = 1.0
SLACK = 4.0   # Alertmanager's dispatcher tick + the test's polling, on a busy 2-core machine


@pytest.fixture
def stack(tmp_path):
    with RecordingReceiver() as receiver, \
            Alertmanager(render_test_config(receiver.url), tmp_path / "am") as am:
        sink = AlertmanagerSink([am.url], grafana_url="http://grafana.test:3000")
        sink.setup()
        yield receiver, am, sink
        sink.close()


def _incident_records(monkeypatch) -> list[dict]:
    # The stream's 48 h end 6 h ago: every alert of the incident (hours 30-32) is in the past.
    start = dt.datetime.fromtimestamp(int(time.time()) - 54 * 3600, streamkit.TZ)
    monkeypatch.setattr(streamkit, "START", start)
    lines = streamkit.steady_stream(days=2.0, incident=("广东", "中通", 30.0, 32.0, 0.25))
    pipeline, records = Pipeline(), []
    replay_lines(pipeline, lines, source="test", on_output=lambda out: records.extend(out.alerts))
    def hours(r: dict) -> float:
        return (dt.datetime.fromisoformat(r["ts"]).timestamp() - start.timestamp()) / 3600

    # The incident's alerts: slices of 广东 x 中通 (or wider) that started paging during it
    # (a 2-day stream also has the odd unrelated alarm elsewhere; not this test's subject).
    began = {r["fingerprint"] for r in records if r["status"] == "firing" and 30 <= hours(r) <= 32.5
             and r["dimensions"].get("region") == "广东"
             and r["dimensions"].get("carrier", "中通") == "中通"}
    incident = [r for r in records if r["fingerprint"] in began and hours(r) < 42]
    assert incident, f"the pipeline found no incident in 广东; alerts: {records}"
    return incident


def _alerts_in(notifications: list[dict], status: str | None = None) -> list[dict]:
    return [a for n in notifications for a in n["alerts"] if status is None or a["status"] == status]


def test_incident_pages_once_grouped_then_resolves(stack, monkeypatch):
    receiver, am, sink = stack
    records = _incident_records(monkeypatch)
    firing = [r for r in records if r["status"] == "firing"]
    resolved = [r for r in records if r["status"] == "resolved"]
    assert resolved, "the incident never resolved in the replay"

    posted = time.monotonic()
    for r in firing:
        sink.add("alerts", r)
    sink.flush()
    receiver.wait_for(lambda: receiver.notifications(), GROUP_WAIT + SLACK, "the firing notification")
    time.sleep(2.5)  # nothing else may come (group_interval 2 s has passed once)
    pages = receiver.notifications()
    assert len(pages) == 1, f"expected one grouped notification, got {len(pages)}: {pages}"
    page = pages[0]
    assert page["at"] - posted <= GROUP_WAIT + SLACK
    assert page["status"] == "firing"
    fingerprints = {r["fingerprint"] for r in firing}
    # One notification for the whole incident: every slice it raised, once, at its latest
    # severity; the severities it escalated from are listed as resolved label sets.
    now_firing = [a for a in page["alerts"] if a["status"] == "firing"]
    assert sorted(a["labels"]["fingerprint"] for a in now_firing) == sorted(fingerprints)
    latest = {r["fingerprint"]: r["severity"] for r in firing}
    assert {a["labels"]["fingerprint"]: a["labels"]["severity"] for a in now_firing} == latest
    assert all(a["labels"]["fingerprint"] in fingerprints for a in page["alerts"])
    alert = now_firing[0]
    assert alert["labels"]["region"] == "广东" and alert["labels"]["incident_region"] == "广东"
    assert "grafana.test:3000/d/riskwatch-slice/" in alert["annotations"]["grafana_url"]
    assert "var-region=%E5%B9%BF%E4%B8%9C" in alert["annotations"]["grafana_url"]
    assert " vs " in alert["annotations"]["summary_en"] and "预期" in alert["annotations"]["summary_zh"]

    for r in resolved:
        sink.add("alerts", r)
    sink.flush()
    receiver.wait_for(lambda: _alerts_in(receiver.notifications(), "resolved"),
                      2.0 + SLACK, "the resolve notification")
    done = _alerts_in(receiver.notifications(), "resolved")
    assert {a["labels"]["fingerprint"] for a in done} >= {r["fingerprint"] for r in resolved}
    assert not sink.active
    assert am.api("GET", "alerts?active=true") == []


def _record(dims: dict, *, context: dict | None = None, severity: str = "orange") -> dict:
    now = dt.datetime.now(streamkit.TZ).replace(microsecond=0)
    fp = fingerprint("complaint_rate", dims)
    return {"alert_id": f"{fp}-{int(now.timestamp()) // 300}", "fingerprint": fp, "status": "firing",
            "severity": severity, "metric": "complaint_rate", "dimensions": dims,
            "ts": now.isoformat(), "bucket_start": (now - dt.timedelta(minutes=5)).isoformat(),
            "bucket_end": now.isoformat(), "observed": 40, "expected": 8.0, "score": 0.9999,
            "summary": "投诉率异常 | complaints 40 vs 8.0 expected (5.0x)", "contributors": [],
            "examples": ["收货人 13812345678 的快递没到"], "context": context or {}}


def test_silenced_slice_gets_no_notification(stack):
    receiver, am, sink = stack
    ends = dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)
    am.api("POST", "silences", {
        "matchers": [{"name": "region", "value": "浙江", "isRegex": False, "isEqual": True}],
        "startsAt": dt.datetime.now(dt.UTC).isoformat(), "endsAt": ends.isoformat(),
        "createdBy": "test", "comment": "planned hub maintenance"})
    silenced = _record({"region": "浙江", "carrier": "圆通"})
    control = _record({"region": "江苏", "carrier": "圆通"})
    sink.add("alerts", silenced)
    sink.add("alerts", control)
    sink.flush()
    receiver.wait_for(lambda: receiver.notifications(), GROUP_WAIT + SLACK, "the control notification")
    time.sleep(2.5)
    notified = {a["labels"]["fingerprint"] for a in _alerts_in(receiver.notifications())}
    assert notified == {control["fingerprint"]}
    states = {a["labels"]["fingerprint"]: a["status"] for a in am.api("GET", "alerts")}
    assert states[silenced["fingerprint"]]["state"] == "suppressed"
    assert states[silenced["fingerprint"]]["silencedBy"]
    # Masked: the example's mobile number never reaches Alertmanager.
    assert "13812345678" not in str(am.api("GET", "alerts"))


def test_carrier_incident_inhibits_its_merchants(stack):
    receiver, am, sink = stack
    carrier = _record({"carrier": "中通"}, context={"region": "广东"}, severity="red")
    children = [_record({"merchant_id": f"m{i}"}, context={"carrier": "中通", "region": "浙江"})
                for i in (1, 2)]
    other = _record({"merchant_id": "m3"}, context={"carrier": "顺丰"})  # not explained by 中通
    for r in (carrier, *children, other):
        sink.add("alerts", r)
    sink.flush()
    receiver.wait_for(lambda: len(_alerts_in(receiver.notifications())) >= 2, GROUP_WAIT + SLACK,
                      "the carrier and the unrelated merchant")
    time.sleep(2.5)
    notified = {a["labels"]["fingerprint"] for a in _alerts_in(receiver.notifications())}
    assert notified == {carrier["fingerprint"], other["fingerprint"]}
    # The red carrier alert also reached the pager; the children reached no receiver at all.
    assert receiver.notifications("oncall-pager")
    child_fps = {c["fingerprint"] for c in children}
    for path in {r["path"] for r in receiver.requests}:
        for a in _alerts_in(receiver.notifications(path.removeprefix("/r/"))):
            assert a["labels"]["fingerprint"] not in child_fps, path
    states = {a["labels"]["fingerprint"]: a["status"] for a in am.api("GET", "alerts")}
    for fp in child_fps:
        assert states[fp]["inhibitedBy"], states[fp]


def test_live_worker_reads_feedback_topic(tansu, kafka, start_worker):
    """``riskwatch feedback --broker``: a verdict reaches the live pipeline; a bad one is a
    dead letter (masked) and the worker keeps going."""
    import json
    import os

    from riskwatch.cli import main
    from streams.app import TopicNames

    prefix = "fb" + os.urandom(3).hex() + "-"
    topics = TopicNames.with_prefix(prefix)
    worker = start_worker(broker_url=tansu.url, prefix=prefix)
    worker.wait_ready()
    fp = fingerprint("complaint_rate", {"region": "广东"})
    assert main(["feedback", f"{fp}-5984272", "--verdict", "false_alarm", "--store",
                 str(worker.log_path.parent / "fb.jsonl"), "--broker", tansu.url,
                 "--topic-prefix", prefix]) == 0
    kafka.produce([(topics.feedback, b'{"alert_id": "nope", "verdict": "confirmed", "note": "13812345678"}')])
    # The worker has raised no alert: the first verdict is on an alert it does not know
    # (it was counted "applied"), said once in its log with the id.
    stats = worker.wait_for(lambda s: s["feedback"] == {"applied": 0, "unknown": 1, "rejected": 1},
                            timeout=30, what="two feedback messages")
    assert worker.alive and stats["agent_errors"] == 0
    assert worker.log_text().count(f"alert {fp}-5984272: this worker has not raised that alert") == 1
    letters = [json.loads(r.value) for r in kafka.read(topics.dead_letters)]
    assert [d["reason"] for d in letters] == ["bad feedback"]
    assert "13812345678" not in json.dumps(letters)
