"""WebhookSink: signatures, retry classes, dead letters, meta-alerts, and a receiver that is down."""

from __future__ import annotations

import json
import time

import httpx
import pytest

from sinks.base import RetryPolicy
from sinks.webhook import SIGNATURE_HEADER, TIMESTAMP_HEADER, WebhookSink, sign, verify_signature
from streams.text.pii import contains_unmasked_pii
from tests.alerting.amkit import RecordingReceiver

SECRET = b"test-secret"


def alert(n: int, status: str = "firing") -> dict:
    return {"alert_id": f"{n:016x}-100", "fingerprint": f"{n:016x}", "status": status,
            "severity": "yellow", "metric": "complaint_rate", "dimensions": {"region": "广东"},
            "ts": "2026-11-22T10:05:00+08:00", "observed": 30, "expected": 5.0, "score": 0.99,
            "summary": f"alert {n} 投诉率异常 | complaints 30 vs 5.0",
            "examples": ["电话 13812345678 收件人没收到"], "contributors": []}


def mock_sink(handler, **kwargs):
    sleeps: list[float] = []
    sink = WebhookSink(["http://hook.test/riskwatch"], secret=SECRET, sleep=sleeps.append,
                       client=httpx.Client(transport=httpx.MockTransport(handler)),
                       retry=kwargs.pop("retry", RetryPolicy(initial_delay=1.0, max_delay=8.0, jitter=0.0)),
                       **kwargs)
    sink.sleeps = sleeps
    return sink


def test_signature_round_trip_and_rejections():
    body = b'{"alert_id":"x"}'
    headers = sign(SECRET, body, now=1000)
    assert verify_signature(SECRET, headers, body, now=1100)
    assert verify_signature(SECRET.decode(), {k.lower(): v for k, v in headers.items()}, body, now=1100)
    assert not verify_signature(b"other", headers, body, now=1100)            # forged
    assert not verify_signature(SECRET, headers, body[:-1] + b" ", now=1100)   # tampered
    assert not verify_signature(SECRET, headers, body, now=1000 + 301)        # replayed later
    assert not verify_signature(SECRET, {TIMESTAMP_HEADER: "1000"}, body, now=1000)
    rotated = {**headers, SIGNATURE_HEADER: f"v1={'0' * 64},{headers[SIGNATURE_HEADER]}"}
    assert verify_signature(SECRET, rotated, body, now=1000)


def test_sent_body_is_signed_masked_and_keyed():
    seen = []
    sink = mock_sink(lambda r: seen.append(r) or httpx.Response(204))
    sink.add("alerts", alert(1))
    sink.flush()
    (request,) = seen
    assert verify_signature(SECRET, dict(request.headers), request.content)
    assert request.headers["Idempotency-Key"] == f"{1:016x}-100:firing:yellow:2026-11-22T10:05:00+08:00"
    assert not contains_unmasked_pii(request.content.decode())
    assert json.loads(request.content)["alert_id"] == f"{1:016x}-100"


def test_body_carries_the_runbook_and_grafana_links_of_an_alertmanager_alert():
    """The on-call audit: a webhook body had no runbook or Grafana link, which every
    Alertmanager alert carries as annotations. They are added; no field of the record is
    renamed or dropped."""
    from sinks.alertmanager import DEFAULT_RUNBOOK_URL, to_alertmanager

    seen = []
    record = {**alert(1), "bucket_start": "2026-11-22T10:00:00+08:00",
              "bucket_end": "2026-11-22T10:05:00+08:00", "alert_id": f"{1:016x}-5984374"}
    sink = mock_sink(lambda r: seen.append(r) or httpx.Response(204), grafana_url="http://grafana.test:3000")
    sink.add("alerts", record)
    sink.flush()
    body = json.loads(seen[0].content)
    assert verify_signature(SECRET, dict(seen[0].headers), seen[0].content)
    assert body["runbook_url"] == f"{DEFAULT_RUNBOOK_URL}#complaint-rate"
    # the episode's whole span: from an hour before its start bucket (09:50) to the record
    episode_start = 5984374 * 300
    assert body["grafana_url"] == to_alertmanager(
        record, now=episode_start + 600, firing_ttl=300, grafana_url="http://grafana.test:3000",
        starts_at=episode_start)["annotations"]["grafana_url"]
    assert f"from={(episode_start - 3600) * 1000}&" in body["grafana_url"]
    assert "var-region=%E5%B9%BF%E4%B8%9C" in body["grafana_url"]
    assert {k: v for k, v in body.items() if k not in ("runbook_url", "grafana_url")} == \
        {**record, "examples": ["电话 138****5678 收件人没收到"]}
    # without a Grafana URL: the runbook link only, to --runbook-url's page
    seen.clear()
    sink = mock_sink(lambda r: seen.append(r) or httpx.Response(204), runbook_url="https://wiki.test/rw")
    sink.add("alerts", {**alert(2), "metric": "order_surge"})
    sink.flush()
    body = json.loads(seen[0].content)
    assert body["runbook_url"] == "https://wiki.test/rw#order-surge" and "grafana_url" not in body


def test_5xx_and_timeouts_retried_with_capped_backoff_without_resending_delivered():
    answers = iter(["timeout", 500, 502, 503, 503, 500, 200, 200])
    seen = []

    def handler(request):
        seen.append(json.loads(request.content)["alert_id"])
        answer = next(answers) if seen[-1].startswith(f"{2:016x}") or len(seen) > 1 else 200
        if answer == "timeout":
            raise httpx.ReadTimeout("slow", request=request)
        return httpx.Response(answer)

    sink = mock_sink(handler)
    sink.add("alerts", alert(1))
    sink.add("alerts", alert(2))
    sink.flush()
    assert sink.sleeps == [1.0, 2.0, 4.0, 8.0, 8.0, 8.0]          # doubling, capped at 8 s
    assert seen.count(f"{1:016x}-100") == 1                        # delivered once, not re-sent
    assert sink.delivered == 2 and sink.pending() == {}


def test_4xx_not_retried_becomes_masked_dead_letter():
    letters = []
    sink = mock_sink(lambda r: httpx.Response(422, text="bad payload 13812345678"),
                     on_dead_letter=letters.append)
    sink.add("alerts", alert(1))
    sink.flush()
    assert sink.attempts == 1 and sink.sleeps == []
    (letter,) = letters
    assert letter["reason"] == "webhook rejected" and "HTTP 422" in letter["detail"]
    assert letter["event_id"] == f"{1:016x}-100"
    assert not contains_unmasked_pii(json.dumps(letter, ensure_ascii=False))


def test_a_long_rejection_is_masked_before_it_is_cut():
    # The receiver's answer is cut for the dead letter; a number across the cut must
    # still be masked whole (cut first, an ID lost its last digits and came out in clear).
    letters = []
    body = "rejected: " + "=" * 190 + "110105194912310021 is not allowed"
    sink = mock_sink(lambda r: httpx.Response(422, text=body), on_dead_letter=letters.append)
    sink.add("alerts", alert(1))
    sink.flush()
    (letter,) = letters
    assert "110105194" not in letter["detail"] and "110*" in letter["detail"], letter["detail"]


def test_the_sinks_name_their_receivers_without_keys_in_logs_and_dead_letters():
    """The worker's error line for a sink that cannot write named it
    "<sinks.alertmanager.AlertmanagerSink object at 0x7f86a2357190>"; and a webhook URL's
    query, where hook relays carry their key (?key=...), went into log lines and into the
    dead letter's detail, which the pipeline dashboard shows."""
    from sinks.alertmanager import AlertmanagerSink
    from sinks.grafana_annotations import GrafanaAnnotationsSink

    am = AlertmanagerSink(["http://am-1:9093", "http://ops:pw@am-2:9093/"])
    assert repr(am) == "AlertmanagerSink(http://am-1:9093, http://ops@am-2:9093)"
    assert repr(GrafanaAnnotationsSink("http://admin:pw@grafana:3000")) == \
        "GrafanaAnnotationsSink(http://admin@grafana:3000)"
    letters = []
    sink = WebhookSink(["https://hooks.test/send?key=s3cr3t-k3y"], secret=SECRET,
                       client=httpx.Client(transport=httpx.MockTransport(
                           lambda r: httpx.Response(400, text="bad"))),
                       on_dead_letter=letters.append)
    assert repr(sink) == "WebhookSink(https://hooks.test/send)"
    sink.add("alerts", alert(1))
    sink.flush()
    (letter,) = letters
    assert "s3cr3t" not in json.dumps(letter) and "https://hooks.test/send" in letter["detail"]


def test_meta_alert_fires_when_delivery_keeps_failing_and_resolves():
    answers = iter([500] * 6 + [200] * 10)
    metas = []
    sink = mock_sink(lambda r: httpx.Response(next(answers)), on_meta_alert=metas.append, meta_after=5)
    sink.add("alerts", alert(1))
    sink.flush()
    assert [m["status"] for m in metas] == ["firing", "resolved"]
    assert metas[0]["metric"] == "webhook_delivery" and metas[0]["alert_id"] == metas[1]["alert_id"]
    assert "keeps failing" in metas[0]["summary"]


def test_config_errors():
    from riskwatch.errors import ConfigError

    with pytest.raises(ConfigError, match="secret"):
        WebhookSink(["http://x"], secret="")
    with pytest.raises(ConfigError, match="http"):
        WebhookSink(["x.example"], secret="s")


def _receiver_down_for(seconds: float, backoff_cap: float, n_alerts: int = 5) -> None:
    """A real receiver answers 500 for ``seconds``, then 200: every alert arrives once
    after recovery, and the attempts stay bounded by the backoff."""
    started = time.monotonic()
    with RecordingReceiver(status=lambda n: 500 if time.monotonic() - started < seconds else 200) as rx:
        sink = WebhookSink([f"{rx.url}/hook"], secret=SECRET, meta_after=3,
                           retry=RetryPolicy(initial_delay=0.2, max_delay=backoff_cap, jitter=0.1))
        metas = []
        sink.on_meta_alert = metas.append
        with sink:
            for n in range(n_alerts):
                sink.add("alerts", alert(n))
            sink.flush()
        recovered = started + seconds
        ok = [r for r in rx.requests if r["status"] == 200]
        ids = [json.loads(r["body"])["alert_id"] for r in ok]
        assert sorted(ids) == sorted(alert(n)["alert_id"] for n in range(n_alerts))   # none lost, none twice
        assert all(verify_signature(SECRET, r["headers"], r["body"], tolerance=seconds + 60) for r in ok)
        assert min(r["at"] for r in ok) - recovered <= backoff_cap + 2.0       # soon after recovery
        failed = len(rx.requests) - len(ok)
        # Bounded: one failed request per backoff step, not one per alert (no retry storm).
        # Shortest possible steps (jitter 0.1): 0.18, 0.36, ... capped; count until the outage ends.
        steps, waited = 1, 0.0
        while waited < seconds:
            waited += min(backoff_cap, 0.2 * 2 ** (steps - 1)) * 0.9
            steps += 1
        assert failed <= steps, (failed, steps)
        assert [m["status"] for m in metas] == ["firing", "resolved"]


def test_receiver_down_compressed():
    """The two-minute outage compressed to 6 s with the backoff cap at 1 s (same shape)."""
    _receiver_down_for(6.0, backoff_cap=1.0)


@pytest.mark.slow
def test_receiver_down_two_minutes():
    """The acceptance case in real time: 500s for 120 s, backoff capped at 15 s."""
    _receiver_down_for(120.0, backoff_cap=15.0)


def test_408_is_retried_not_dead_lettered():
    answers = iter([408, 429, 204])
    sink = mock_sink(lambda request: httpx.Response(next(answers)))
    sink.add("alerts", alert(1))
    sink.flush()
    assert sink.sleeps == [1.0, 2.0] and sink.delivered == 1 and sink.dead_letters == []


def test_a_url_no_request_can_be_made_to_is_a_permanent_error():
    """UnsupportedProtocol was retried forever, as a receiver that is down."""
    from riskwatch.errors import SinkError

    def handler(request):
        raise httpx.UnsupportedProtocol("Request URL is missing an 'http://' or 'https://' protocol.")
    sink = mock_sink(handler)
    sink.add("alerts", alert(1))
    with pytest.raises(SinkError, match="UnsupportedProtocol"):
        sink.flush()
    assert len(sink.sleeps) == sink.retry.max_attempts - 1 and sink.pending() == {"alerts": 1}


@pytest.mark.parametrize("batch", [True, False])
def test_a_batch_run_gives_up_on_a_receiver_that_stays_down_the_worker_waits(batch):
    """riskwatch replay (batch) fails after about a minute of a receiver that died
    mid-run; the live worker keeps waiting for it (back-pressure, README)."""
    import itertools

    from riskwatch.errors import SinkError
    from sinks.wiring import BATCH_RETRY_SECONDS, OutputOptions, build_sinks

    [sink] = build_sinks(OutputOptions(webhook_urls=("http://hook.test/x",), webhook_secret="k"),
                         batch=batch)
    answers = itertools.count()
    sink._client = httpx.Client(transport=httpx.MockTransport(
        lambda request: httpx.Response(503 if next(answers) < 12 else 204)))
    sleeps: list[float] = []
    sink._sleep = sleeps.append
    sink.add("alerts", alert(1))
    if batch:
        with pytest.raises(SinkError, match="HTTP 503"):
            sink.flush()
        assert 0.8 * BATCH_RETRY_SECONDS <= sum(sleeps) <= 3 * BATCH_RETRY_SECONDS
        assert sink.pending() == {"alerts": 1}
    else:
        sink.flush()
        assert len(sleeps) == 12 and sink.delivered == 1


def test_the_webhook_secret_is_read_once_and_never_shown(monkeypatch):
    """options_from_args carries the key it read from $RISKWATCH_WEBHOOK_SECRET (the
    sink signs with that one), and printing the options does not show it."""
    import argparse

    from sinks.wiring import add_output_arguments, build_sinks, options_from_args

    parser = argparse.ArgumentParser()
    add_output_arguments(parser)
    monkeypatch.setenv("RISKWATCH_WEBHOOK_SECRET", "s3cret-from-env")
    options = options_from_args(parser.parse_args(["--webhook-url", "http://hook.test/x"]))
    monkeypatch.delenv("RISKWATCH_WEBHOOK_SECRET")
    assert options.webhook_secret == "s3cret-from-env"
    assert "s3cret" not in repr(options) and "s3cret" not in str(options)
    [sink] = build_sinks(options)
    assert sink.secret == b"s3cret-from-env"
    flagged = options_from_args(parser.parse_args(
        ["--webhook-url", "http://hook.test/x", "--webhook-secret", "flag-key-123"]))
    assert "flag-key-123" not in repr(flagged) and flagged.webhook_secret == "flag-key-123"
