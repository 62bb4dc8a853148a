"""Signed webhooks: alert state changes for teams without Alertmanager.

Each alert record is POSTed as JSON (personal data in examples and summary masked again,
as a second line of defence), with the links an Alertmanager alert carries as annotations
added (:func:`sinks.alertmanager.alert_links`): ``runbook_url`` always, ``grafana_url``
with a Grafana base URL. The record's own fields are never renamed or dropped. Three
headers::

    X-Riskwatch-Timestamp: 1795313160                      (unix seconds of the send)
    X-Riskwatch-Signature: v1=<hex HMAC-SHA256(secret, "<timestamp>." + body)>
    Idempotency-Key:       <alert_id>:<status>:<severity>:<ts>

A receiver checks the signature over the *raw* body with :func:`verify_signature`
(constant-time compare, timestamp within ``tolerance``: a captured request cannot be
replayed later) and dedupes on ``Idempotency-Key`` (delivery is at-least-once).

Failures (modelled on Alertmanager's ``Retrier``):

* 5xx, 408, 429, timeouts, refused connections: retried with capped exponential backoff
  until the receiver is back (:class:`~sinks.base.BatchingSink` retries inside
  ``flush()``; what was delivered is not sent again within the batch, and a receiver
  that just failed gets no more requests until the next attempt: one request per
  backoff step, not a storm). Nothing is lost.
* a URL no request can be made to (``UnsupportedProtocol``): a permanent error, not
  retried as a receiver that is down.
* other 4xx: the receiver rejected this request and will again: no retry; the record
  becomes a ``dead_letters`` record (reason, status, masked excerpt) handed to
  ``on_dead_letter``.
* ``meta_after`` failed attempts in a row raise a *meta-alert* (metric
  ``webhook_delivery``, handed to ``on_meta_alert``: wire it to a second channel such as
  Alertmanager, so a failing notifier cannot hide its own failure); it resolves when a
  delivery succeeds again.

>>> body = b'{"alert_id":"a-1"}'
>>> headers = sign(b"s3cret", body, now=1_795_313_160)
>>> verify_signature(b"s3cret", headers, body, now=1_795_313_200, tolerance=300)
True
>>> verify_signature(b"s3cret", headers, body + b" ", now=1_795_313_200)   # tampered
False
>>> verify_signature(b"s3cret", headers, body, now=1_795_313_160 + 301, tolerance=300)   # replayed
False
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from typing import ClassVar

import httpx
import orjson

from riskwatch.errors import ConfigError, SinkError
from sinks.alertmanager import DEFAULT_RUNBOOK_URL, alert_links
from sinks.base import Record, RetryPolicy
from sinks.http import (HttpSink, ReceiverUnavailable, check_urls, receiver_name,
                        retryable_status, retryable_transport)
from streams.alerting import fingerprint
from streams.text.pii import mask_pii

__all__ = ["SIGNATURE_HEADER", "TIMESTAMP_HEADER", "WebhookSink", "sign", "verify_signature"]

logger = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Riskwatch-Signature"
TIMESTAMP_HEADER = "X-Riskwatch-Timestamp"
DEFAULT_TOLERANCE = 300.0   # seconds, as Stripe and Slack


def _digest(secret: bytes, timestamp: str, body: bytes) -> str:
    return hmac.new(secret, timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()


def sign(secret: bytes, body: bytes, *, now: float) -> dict[str, str]:
    """The signature headers for ``body`` sent at ``now``."""
    timestamp = str(int(now))
    return {TIMESTAMP_HEADER: timestamp, SIGNATURE_HEADER: f"v1={_digest(secret, timestamp, body)}"}


def verify_signature(secret: bytes | str, headers: Mapping[str, str], body: bytes, *,
                     now: float | None = None, tolerance: float = DEFAULT_TOLERANCE) -> bool:
    """Whether ``body`` was signed with ``secret`` no more than ``tolerance`` s from ``now``.

    ``headers`` may use any capitalisation. Several ``v1=`` values separated by commas
    are accepted (secret rotation: the sender signs with old and new).
    """
    if isinstance(secret, str):
        secret = secret.encode()
    lower = {k.lower(): v for k, v in headers.items()}
    timestamp = lower.get(TIMESTAMP_HEADER.lower(), "")
    signature = lower.get(SIGNATURE_HEADER.lower(), "")
    if not timestamp.isdigit() or not signature:
        return False
    now = time.time() if now is None else now
    if abs(now - int(timestamp)) > tolerance:
        return False
    expected = _digest(secret, timestamp, body)
    candidates = [part.strip()[3:] for part in signature.split(",") if part.strip().startswith("v1=")]
    return any(hmac.compare_digest(expected, c) for c in candidates)



def _masked(record: Record) -> Record:
    out = dict(record)
    out["summary"] = mask_pii(str(record.get("summary", "")))
    out["examples"] = [mask_pii(str(t)) for t in record.get("examples") or []]
    return out


def _episode_start(record: Record) -> float:
    """Epoch seconds the record's episode started: the alert id's start bucket times the
    bucket width (``bucket_end - bucket_start``); the record's own time when it has no
    buckets (the meta-alert). Grafana's drill-down then shows the whole episode, as
    Alertmanager's does (whose sink remembers each episode's first post).

    >>> _episode_start({"alert_id": "167c0feb71275f03-5984374", "ts": "2026-11-22T10:05:00+08:00",
    ...                 "bucket_start": "2026-11-22T10:00:00+08:00", "bucket_end": "2026-11-22T10:05:00+08:00"})
    1795312200.0
    """
    from streams.feedback import split_alert_id

    ts = dt.datetime.fromisoformat(record["ts"]).timestamp()
    try:
        width = (dt.datetime.fromisoformat(record["bucket_end"]).timestamp()
                 - dt.datetime.fromisoformat(record["bucket_start"]).timestamp())
        start_bucket = split_alert_id(record["alert_id"])[1]
    except (KeyError, TypeError, ValueError, ConfigError):
        return ts
    return start_bucket * width if 0 < start_bucket * width <= ts else ts


class WebhookSink(HttpSink):
    """POSTs signed alert records to one or more webhook URLs; see the module docstring.

    Parameters
    ----------
    urls
        Receivers; every record goes to every URL.
    secret
        HMAC key (bytes or text); required.
    grafana_url, runbook_url
        Links added to every body, as :class:`~sinks.alertmanager.AlertmanagerSink` adds
        them to its annotations (``--grafana-url``, ``--runbook-url``).
    on_dead_letter
        Called with each ``dead_letters`` record (a 4xx-rejected alert).
    on_meta_alert
        Called with the ``webhook_delivery`` meta-alert record (firing / resolved).
    meta_after
        Consecutive failed attempts that raise the meta-alert.
    retry
        Backoff of retryable failures (default: 1 s doubling, capped at 60 s).
    """

    kinds: ClassVar[frozenset[str]] = frozenset({"alerts"})
    receiver = "webhook"

    def __init__(self, urls: Sequence[str], *, secret: bytes | str, grafana_url: str | None = None,
                 runbook_url: str = DEFAULT_RUNBOOK_URL, timeout: float = 10.0,
                 client: httpx.Client | None = None, clock: Callable[[], float] = time.time,
                 on_dead_letter: Callable[[Record], None] | None = None,
                 on_meta_alert: Callable[[Record], None] | None = None, meta_after: int = 5,
                 retry: RetryPolicy | None = None, sleep: Callable[[float], None] = time.sleep,
                 batch_size: int = 100) -> None:
        super().__init__(batch_size=batch_size, sleep=sleep,
                         retry=retry or RetryPolicy(initial_delay=1.0, max_delay=60.0))
        self.urls = check_urls(urls, owner="WebhookSink", flag="--webhook-url")
        if not secret:
            raise ConfigError("--webhook-url needs a signing secret: --webhook-secret or "
                              "RISKWATCH_WEBHOOK_SECRET")
        self.secret = secret.encode() if isinstance(secret, str) else secret
        self.grafana_url = grafana_url
        self.runbook_url = runbook_url
        self._init_http(timeout, client)
        self._clock = clock
        self.on_dead_letter = on_dead_letter
        self.on_meta_alert = on_meta_alert
        self.meta_after = meta_after
        self.failures_in_a_row = 0
        self.meta_firing: dict[str, Record] = {}   # url -> firing meta-alert
        self.attempts = self.delivered = 0
        self.dead_letters: list[Record] = []
        self._done: set[tuple[str, str]] = set()   # (url, idempotency key) delivered this batch

    def write(self, kind: str, records: list[Record], token: str | None) -> None:
        if self._client is None:
            self.setup()
        failed: list[str] = []
        down: set[str] = set()   # failed in this attempt: no more requests to it until the retry
        for record in records:
            key = f"{record['alert_id']}:{record['status']}:{record.get('severity')}:{record.get('ts')}"
            body = orjson.dumps(self._body(record))
            for url in self.urls:
                if (url, key) in self._done:
                    continue
                if url in down:
                    failed.append(f"{receiver_name(url)}: not tried, it just failed")
                    continue
                error = self._send(url, key, body, record)
                if error is None:
                    self._done.add((url, key))
                else:
                    failed.append(error)
                    down.add(url)
        if failed:
            raise ReceiverUnavailable(f"{len(failed)} webhook deliveries failed; first: {failed[0]}")
        self._done.clear()  # the whole batch landed

    def _body(self, record: Record) -> Record:
        """What is posted: the masked record plus its links (added, never replacing a field)."""
        ts = dt.datetime.fromisoformat(record["ts"]).timestamp()
        links = alert_links(record, grafana_url=self.grafana_url, runbook_url=self.runbook_url,
                            start=_episode_start(record), end=ts)
        return {**links, **_masked(record)}

    def _send(self, url: str, key: str, body: bytes, record: Record) -> str | None:
        """Deliver one body to one URL; None when done (delivered or dead-lettered)."""
        assert self._client is not None
        now = self._clock()
        headers = {"Content-Type": "application/json", "Idempotency-Key": key, **sign(self.secret, body, now=now)}
        self.attempts += 1
        try:
            response = self._client.post(url, content=body, headers=headers)
        except httpx.TransportError as exc:
            if not retryable_transport(exc):  # the same request fails the same way
                raise SinkError(f"webhook {receiver_name(url)}: {type(exc).__name__}: {exc}") from exc
            return self._failed(url, f"{receiver_name(url)}: {type(exc).__name__}")
        if response.is_success:
            self.delivered += 1
            self._recovered(url)
            return None
        if retryable_status(response.status_code):
            return self._failed(url, f"{receiver_name(url)}: HTTP {response.status_code}")
        # 4xx: the receiver will reject it again; keep it, with the reason, and go on.
        self._recovered(url)  # the receiver is up and answering
        letter = {
            "dead_letter_id": f"webhook:{fingerprint('webhook', {'url': url})}:{key}",
            "ts": dt.datetime.fromtimestamp(int(now), dt.UTC).isoformat(),
            "source": "webhook", "partition": None, "offset": None, "index": 0,
            "reason": "webhook rejected",
            # masked, then cut: a number cut first might no longer be recognised
            "detail": mask_pii(f"HTTP {response.status_code} from {receiver_name(url)}: "
                               f"{response.text[:20_000]}")[:300],
            "event_id": record.get("alert_id"), "event_type": "alert",
            "payload_excerpt": mask_pii(str(record.get("summary", "")))[:200],
        }
        self.dead_letters.append(letter)
        logger.error("webhook %s rejected alert %s with HTTP %d: dead-lettered", receiver_name(url),
                     record.get("alert_id"), response.status_code)
        if self.on_dead_letter is not None:
            self.on_dead_letter(letter)
        return None

    def _failed(self, url: str, error: str) -> str:
        self.failures_in_a_row += 1
        if self.failures_in_a_row >= self.meta_after and url not in self.meta_firing:
            self.meta_firing[url] = self._meta(url, "firing")
            logger.error("webhook delivery to %s keeps failing (%d attempts): meta-alert", receiver_name(url),
                         self.failures_in_a_row)
            self._emit_meta(self.meta_firing[url])
        return error

    def _recovered(self, url: str) -> None:
        self.failures_in_a_row = 0
        meta = self.meta_firing.pop(url, None)
        if meta is not None:
            self._emit_meta({**self._meta(url, "resolved"), "alert_id": meta["alert_id"]})

    def _meta(self, url: str, status: str) -> Record:
        now = int(self._clock())
        dims = {"receiver": receiver_name(url)}
        fp = fingerprint("webhook_delivery", dims)
        ts = dt.datetime.fromtimestamp(now, dt.UTC).isoformat()
        return {"alert_id": f"{fp}-{now // 300}", "fingerprint": fp, "status": status,
                "severity": "orange", "metric": "webhook_delivery", "dimensions": {},
                "ts": ts, "bucket_start": ts, "bucket_end": ts, "observed": self.failures_in_a_row,
                "expected": 0, "score": 1.0, "contributors": [], "examples": [],
                "summary": (f"告警 webhook 投递持续失败 ({dims['receiver']}) | webhook delivery "
                            f"keeps failing: {self.failures_in_a_row} attempts in a row"
                            if status == "firing" else
                            f"告警 webhook 投递已恢复 | webhook delivery recovered ({dims['receiver']})")}

    def _emit_meta(self, record: Record) -> None:
        if self.on_meta_alert is None:
            return
        try:
            self.on_meta_alert(record)
        except Exception as exc:  # noqa: BLE001 - the second channel may be down too; keep delivering
            logger.error("meta-alert could not be sent: %s", exc)

