"""AlertmanagerSink against httpx.MockTransport: payload, escalation, HA, retries, re-posts."""

from __future__ import annotations

import json

import httpx
import pytest

from riskwatch.errors import ConfigError, SinkError
from sinks.alertmanager import AlertmanagerSink, to_alertmanager
from sinks.base import RetryPolicy
from streams.alerting import fingerprint
from streams.text.pii import contains_unmasked_pii

DIMS = {"merchant_id": "m42", "intent": "damaged"}
FP = fingerprint("complaint_rate", DIMS)


def record(status="firing", severity="blue", ts="2026-11-22T10:05:00+08:00", **extra) -> dict:
    return {"alert_id": f"{FP}-100", "fingerprint": FP, "status": status, "severity": severity,
            "metric": "complaint_rate", "dimensions": DIMS, "ts": ts,
            "bucket_start": "2026-11-22T10:00:00+08:00", "bucket_end": ts, "observed": 30,
            "expected": 4.0, "score": 0.999,
            "summary": "merchant_id=m42 intent=damaged 投诉率异常 | complaints 30 vs 4.0 expected (7.5x)",
            "contributors": [{"dimension": "intent", "value": "damaged", "complaints": 30, "share": 1.0}],
            "examples": ["杯子碎了，联系我 13812345678，身份证 110101199003074514"],
            "context": {"carrier": "中通", "region": "广东"}, **extra}


class Recorder:
    def __init__(self, statuses=None):
        self.calls: list[tuple[str, list]] = []
        self.statuses = statuses or {}

    def __call__(self, request: httpx.Request) -> httpx.Response:
        host = request.url.host
        self.calls.append((host, json.loads(request.content)))
        script = self.statuses.get(host, [200])
        code = script.pop(0) if len(script) > 1 else script[0]
        if code == "down":
            raise httpx.ConnectError("refused", request=request)
        return httpx.Response(code)


def make_sink(recorder, urls=("http://am1:9093",), clock=lambda: 1_795_313_160.0, **kwargs):
    sleeps: list[float] = []
    sink = AlertmanagerSink(list(urls), client=httpx.Client(transport=httpx.MockTransport(recorder)),
                            clock=clock, sleep=sleeps.append,
                            retry=RetryPolicy(initial_delay=0.1, max_delay=1.0, jitter=0.0), **kwargs)
    sink.sleeps = sleeps
    return sink


def test_labels_only_present_dimensions_and_inhibit_labels():
    alert = to_alertmanager(record(), now=1_795_313_160.0, firing_ttl=300)
    assert alert["labels"] == {
        "alertname": "ComplaintRateAnomaly", "severity": "blue", "metric": "complaint_rate",
        "fingerprint": FP, "scope": "merchant_intent", "merchant_id": "m42", "intent": "damaged",
        "incident_region": "广东", "incident_carrier": "中通"}
    assert "region" not in alert["labels"] and "carrier" not in alert["labels"]


def test_annotations_explain_and_mask():
    alert = to_alertmanager(record(), now=1_795_313_160.0, firing_ttl=300, grafana_url="http://g:3000/",
                            runbook_url="https://wiki/runbook")
    ann = alert["annotations"]
    assert ann["summary_zh"].endswith("投诉率异常") and ann["summary_en"].startswith("complaints 30 vs 4.0")
    assert "observed 30 complaints vs 4.0 expected" in ann["description"]
    assert ann["contributors"] == "intent=damaged: 30 (100%)"
    assert ann["runbook_url"] == "https://wiki/runbook#complaint-rate"
    assert ann["grafana_url"].startswith("http://g:3000/d/riskwatch-slice/riskwatch-slice?var-merchant=m42&var-intent=damaged&from=")
    assert not contains_unmasked_pii(json.dumps(alert, ensure_ascii=False))


def test_times_firing_uses_wall_clock_ttl_and_resolve_its_event_time():
    firing = to_alertmanager(record(), now=1_795_313_160.0, firing_ttl=300)
    assert firing["startsAt"] == "2026-11-22T02:05:00Z"
    assert firing["endsAt"] == "2026-11-22T02:11:00Z"   # now (02:06) + 300 s
    # Replaying last week: a firing alert is still active now (endsAt in the future).
    old = to_alertmanager(record(ts="2026-11-15T10:05:00+08:00"), now=1_795_313_160.0, firing_ttl=300)
    assert old["endsAt"] == "2026-11-22T02:11:00Z"
    resolved = to_alertmanager(record("resolved", ts="2026-11-22T11:00:00+08:00"), now=1_795_313_160.0,
                               firing_ttl=300, starts_at=1_795_313_100.0)
    assert (resolved["startsAt"], resolved["endsAt"]) == ("2026-11-22T02:05:00Z", "2026-11-22T03:00:00Z")


def test_escalation_resolves_the_old_label_set_and_resolve_keeps_start():
    rec = Recorder()
    sink = make_sink(rec)
    sink.add("alerts", record())
    sink.flush()
    sink.add("alerts", record(severity="orange", ts="2026-11-22T10:35:00+08:00",
                              context={"carrier": "顺丰"}))  # drifted context: pinned
    sink.flush()
    old, new = rec.calls[1][1]
    assert (old["labels"]["severity"], old["endsAt"]) == ("blue", "2026-11-22T02:35:00Z")
    assert new["labels"]["severity"] == "orange" and new["startsAt"] == "2026-11-22T02:05:00Z"
    assert new["labels"]["incident_carrier"] == "中通"
    sink.add("alerts", record("resolved", severity="orange", ts="2026-11-22T11:00:00+08:00"))
    sink.flush()
    (resolved,) = rec.calls[2][1]
    assert resolved["labels"] == new["labels"] and resolved["endsAt"] == "2026-11-22T03:00:00Z"
    assert sink.active == {}


def test_ha_posts_to_every_peer_and_succeeds_if_any_accepts():
    rec = Recorder({"am1": ["down"], "am2": [200]})
    sink = make_sink(rec, urls=("http://am1:9093", "http://am2:9093"))
    sink.add("alerts", record())
    sink.flush()
    assert [host for host, _ in rec.calls] == ["am1", "am2"]
    assert sink.sleeps == [] and FP in sink.active


def test_all_peers_5xx_retried_with_backoff_until_accepted():
    rec = Recorder({"am1": [503, 503, 500, 200]})
    sink = make_sink(rec)
    sink.add("alerts", record())
    sink.flush()
    assert len(rec.calls) == 4 and sink.sleeps == [0.1, 0.2, 0.4]
    assert sink.pending() == {}


def test_4xx_is_permanent_and_keeps_the_batch():
    rec = Recorder({"am1": [400]})
    sink = make_sink(rec)
    sink.add("alerts", record())
    with pytest.raises(SinkError, match="HTTP 400"):
        sink.flush()
    assert len(rec.calls) == sink.retry.max_attempts
    assert sink.pending() == {"alerts": 1} and sink.active == {}   # nothing dropped


def test_firing_alerts_reposted_before_they_expire():
    now = [1_795_313_160.0]
    rec = Recorder()
    sink = make_sink(rec, clock=lambda: now[0], resend_seconds=60, firing_ttl=300)
    sink.add("alerts", record())
    sink.flush()
    now[0] += 30
    sink.flush()
    assert len(rec.calls) == 1          # not due yet
    now[0] += 31
    sink.flush()
    assert len(rec.calls) == 2
    (again,) = rec.calls[1][1]
    assert again["endsAt"] == "2026-11-22T02:12:01Z" and again["startsAt"] == "2026-11-22T02:05:00Z"
    sink.add("alerts", record("resolved", ts="2026-11-22T10:40:00+08:00"))
    sink.flush()
    now[0] += 120
    sink.flush()
    assert len(rec.calls) == 3          # a resolved alert is not re-posted


def test_only_alerts_are_accepted_and_config_is_checked():
    rec = Recorder()
    sink = make_sink(rec)
    sink.add("complaints", {"complaint_id": "c1"})
    sink.flush()
    assert rec.calls == []
    with pytest.raises(ConfigError):
        AlertmanagerSink([])
    with pytest.raises(ConfigError):
        AlertmanagerSink(["am1:9093"])


@pytest.mark.parametrize("url", ["http://am:9093/api/v2/alerts", "http://am:9093/api/v2/alerts/",
                                 "http://am:9093/api/v2", "http://ops:pw@am:9093/am/api/v1/alerts"])
def test_the_api_path_pasted_into_the_url_is_refused(url, tmp_path):
    """--alertmanager-url http://am:9093/api/v2/alerts (the path from Alertmanager's docs)
    was taken: every post went to .../api/v2/alerts/api/v2/alerts, Alertmanager answered
    404, and the live worker stalled on it for good, an error line a minute."""
    with pytest.raises(ConfigError, match="give Alertmanager's base URL") as caught:
        AlertmanagerSink([url])
    assert "pw" not in str(caught.value)
    AlertmanagerSink(["http://am:9093/alertmanager"])   # a route prefix is a base URL
    from tests.test_cli import assert_one_error, riskwatch

    r = riskwatch("worker", "--data-dir", "wd", "--alertmanager-url", url, cwd=tmp_path,
                  env={"RISKWATCH_BROKER": ""})
    assert_one_error(r, "riskwatch adds /api/v2/alerts")
    assert not (tmp_path / "wd").exists()   # refused before anything started


def test_a_batch_posts_only_the_latest_state_of_each_alert():
    """A replay hands over fire, escalations and resolve at once: Alertmanager gets one
    alert per fingerprint (posting all would let it flush a group half-filled)."""
    rec = Recorder()
    sink = make_sink(rec)
    sink.add("alerts", record())
    sink.add("alerts", record(severity="yellow", ts="2026-11-22T10:10:00+08:00"))
    sink.add("alerts", record(severity="orange", ts="2026-11-22T10:35:00+08:00"))
    sink.flush()
    ((_, payload),) = rec.calls
    assert [(a["labels"]["severity"], a["startsAt"]) for a in payload] == [("orange", "2026-11-22T02:05:00Z")]
    assert sink.active[FP][0]["severity"] == "orange"


def test_a_restarted_sink_primed_from_the_checkpoint_continues_the_same_alerts():
    """After a worker restart the sink's table of posted alerts is empty. Primed with the
    open alerts the checkpointed pipeline carries (streams.open_alerts), it re-posts them
    at once with the labels and startsAt Alertmanager already has, and their resolve ends
    the very alert that was firing (not a new one with a drifted context)."""
    from streams.open_alerts import OpenAlerts

    fired = [record(), record(severity="orange", ts="2026-11-22T10:10:00+08:00")]
    before = Recorder()
    first = make_sink(before)
    for r in fired:
        first.add("alerts", r)
        first.flush()
    # The last post ended the blue label set (escalation) and fired the orange one.
    live = {a["labels"]["severity"]: a for a in before.calls[-1][1]}
    assert set(live) == {"blue", "orange"}
    book = OpenAlerts()
    book.update(fired)            # what the checkpoint holds: the pipeline's outputs so far

    after = Recorder()
    restarted = make_sink(after, clock=lambda: 1_795_313_400.0)
    restarted.prime(book.entries())
    restarted.flush()             # nothing new to write: the re-post of the open alert
    assert len(after.calls) == 1
    (reposted,) = after.calls[0][1]
    assert reposted["labels"] == live["orange"]["labels"]
    assert reposted["startsAt"] == live["orange"]["startsAt"]

    drifted = record(status="resolved", severity="orange", ts="2026-11-22T10:40:00+08:00",
                     context={"carrier": "顺丰", "region": "浙江"})
    restarted.add("alerts", drifted)
    restarted.flush()
    (resolve,) = after.calls[-1][1]
    assert resolve["labels"] == live["orange"]["labels"]   # incident_* pinned at the first post
    assert (resolve["startsAt"], resolve["endsAt"]) == ("2026-11-22T02:05:00Z", "2026-11-22T02:40:00Z")
    assert not restarted.active


def test_the_pipeline_carries_open_alerts_in_its_checkpointed_state():
    import pickle

    from streams.pipeline import Pipeline

    p = Pipeline()
    p.out.alerts.extend([record(), record(severity="orange", ts="2026-11-22T10:10:00+08:00")])
    p.drain()
    restored = pickle.loads(pickle.dumps(p.open_alerts))
    (entry,) = restored.entries()
    assert entry["record"]["severity"] == "orange"
    assert entry["starts"] == "2026-11-22T10:05:00+08:00"
    p.out.alerts.append(record(status="resolved", ts="2026-11-22T10:40:00+08:00"))
    p.drain()
    assert len(p.open_alerts) == 0


@pytest.mark.parametrize("status, transient", [(408, True), (429, True), (503, True),
                                               (404, False), (422, False)])
def test_only_statuses_that_can_pass_are_retried_until_accepted(status, transient):
    rec = Recorder({"am1": [status] * 3 + [200]})
    sink = make_sink(rec)
    sink.add("alerts", record())
    if transient:
        sink.flush()
        assert sink.pending() == {} and len(rec.calls) == 4
    else:   # 408 was a permanent error, like 404
        with pytest.raises(SinkError, match=f"HTTP {status}"):
            sink.flush()
        assert sink.pending() == {"alerts": 1}


def test_a_url_no_request_can_be_made_to_is_not_retried_as_a_receiver_down():
    """UnsupportedProtocol ('http://' has no host) was retried forever, as if refused."""
    def recorder(request):
        raise httpx.UnsupportedProtocol("Request URL is missing an 'http://' or 'https://' protocol.")
    sink = make_sink(recorder, urls=("http://u:s3cretPW@am1:9093",))
    sink.add("alerts", record())
    with pytest.raises(SinkError, match="UnsupportedProtocol") as raised:
        sink.flush()
    assert len(sink.sleeps) == sink.retry.max_attempts - 1   # a permanent error's attempts
    assert "s3cretPW" not in str(raised.value) and "http://u@am1:9093" in str(raised.value)


def test_error_and_log_lines_name_alertmanager_without_password_or_query(caplog):
    """Alertmanager's lines used redact_url, which keeps the query, where an auth proxy in
    front of Alertmanager carries its key (``?token=``); every other receiver's lines use
    receiver_name (no password, no query). And the API path went after that query:
    ``.../am?token=k3y/api/v2/alerts``, a request to the proxy's root."""
    seen: list[str] = []
    statuses = {"am1": [503, 200, 400], "am2": [500, 500, 400]}

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(str(request.url))
        script = statuses[request.url.host]
        return httpx.Response(script.pop(0) if len(script) > 1 else script[0])

    urls = ["http://ops:pw@am1:9093/am?token=k3y", "http://am2:9093?token=k3y2"]
    sink = AlertmanagerSink(urls, client=httpx.Client(transport=httpx.MockTransport(handler)),
                            sleep=lambda s: None, retry=RetryPolicy(initial_delay=0.1, jitter=0.0))
    sink.add("alerts", record())
    with caplog.at_level("INFO"):
        sink.flush()                           # 503 (am2 500), then 200 (am2 500 again)
        sink.add("alerts", record(status="resolved", ts="2026-11-22T10:35:00+08:00"))
        with pytest.raises(SinkError) as refused:      # 400 from both: permanent
            sink.flush()
    assert seen[0] == "http://ops:pw@am1:9093/am/api/v2/alerts?token=k3y"
    assert "http://am2:9093/api/v2/alerts?token=k3y2" in seen
    # httpx's own request lines show the full URL; the worker keeps httpx at WARNING
    lines = [r.getMessage() for r in caplog.records if not r.name.startswith("httpx")]
    lines.append(str(refused.value))
    assert any("http://ops@am1:9093/am: HTTP 503" in line for line in lines), lines
    assert any("Alertmanager http://am2:9093 answered HTTP 500" in line for line in lines), lines
    assert "http://ops@am1:9093/am: HTTP 400" in str(refused.value)
    for line in lines:
        assert "k3y" not in line and "pw@" not in line, line
    with pytest.raises(ConfigError) as pasted:
        AlertmanagerSink(["http://am:9093/api/v2/alerts?token=k3y"])
    assert "k3y" not in str(pasted.value)
