"""Alert state changes -> Prometheus Alertmanager (API v2, ``POST /api/v2/alerts``).

Alertmanager does routing, grouping, inhibition, silences, receivers and notification
retries well; this sink only *feeds it well*:

* **Labels** identify the alert series: ``alertname``, ``severity``, ``metric``, the
  slice's dimensions that are present (``region``, ``merchant_id``, ``carrier``,
  ``category``, ``intent``), our ``fingerprint`` (stable across restarts, see
  :func:`streams.alerting.fingerprint`), and the labels inhibit rules match on:
  ``scope`` (which kind of slice: ``carrier``, ``region_carrier``, ``merchant`` ...) and
  ``incident_region`` / ``incident_carrier`` (the slice's own region/carrier, or the one
  holding most of its complaints, from the record's ``context``).  A carrier-wide
  incident then inhibits per-merchant alerts with the same ``incident_carrier``
  (``dashboards/alertmanager/alertmanager.yml``).
* **Annotations** explain it: the summary in Chinese and English, observed vs expected,
  the top contributors, PII-masked examples, a Grafana drill-down link with the slice's
  variables and a runbook link.
* **Times**: ``startsAt`` is the episode's event time; a firing alert gets ``endsAt`` =
  now + ``firing_ttl`` and is re-posted every ``resend_seconds`` (from :meth:`flush`,
  which the live worker calls every 2 s), so Alertmanager resolves it by itself if we
  die; a resolve posts ``endsAt`` = the resolve's event time. (Alertmanager flushes a
  new group at once, without ``group_wait``, when an alert's ``startsAt`` is older than
  ``group_wait`` — usual here, as an episode starts a bucket before it pages. So each
  batch posts only the latest state of each alert, in one request.)
* **Severity escalation** changes the ``severity`` label, which to Alertmanager is a new
  alert; the sink resolves the previous label set in the same post, so one incident is
  never two active alerts. The ``incident_*`` labels are pinned to the episode's first
  post (after a restart the table is empty: a resolve whose context drifted leaves the
  old alert to expire at its ``endsAt``).
* **HA**: every record is posted to every URL (Alertmanager peers deduplicate through
  gossip; load balancers hide failures).  A post succeeds if any peer accepted it; when
  all fail, :class:`~sinks.base.BatchingSink` retries with capped backoff (5xx, timeouts
  and refused connections until the post lands; a 4xx is a permanent error).

>>> alert = to_alertmanager({"alert_id": "167c0feb71275f03-5894", "fingerprint": "167c0feb71275f03",
...     "status": "firing", "severity": "yellow", "metric": "complaint_rate",
...     "dimensions": {"region": "广东", "carrier": "中通"}, "ts": "2026-11-22T10:05:00+08:00",
...     "bucket_start": "2026-11-22T10:00:00+08:00", "bucket_end": "2026-11-22T10:05:00+08:00",
...     "observed": 42, "expected": 8.5, "score": 0.9999, "contributors": [], "examples": [],
...     "summary": "region=广东 carrier=中通 投诉率异常 | complaints 42 vs 8.5 expected (4.9x)"},
...     now=1_795_313_160.0, firing_ttl=240, grafana_url="http://grafana:3000")
>>> sorted(alert["labels"].items())  # doctest: +NORMALIZE_WHITESPACE
[('alertname', 'ComplaintRateAnomaly'), ('carrier', '中通'), ('fingerprint', '167c0feb71275f03'),
 ('incident_carrier', '中通'), ('incident_region', '广东'), ('metric', 'complaint_rate'),
 ('region', '广东'), ('scope', 'region_carrier'), ('severity', 'yellow')]
>>> alert["startsAt"], alert["endsAt"]   # endsAt: wall clock (10:06) + firing_ttl
('2026-11-22T02:05:00Z', '2026-11-22T02:10:00Z')
>>> alert["annotations"]["grafana_url"]  # doctest: +ELLIPSIS
'http://grafana:3000/d/riskwatch-slice/riskwatch-slice?var-region=%E5%B9%BF%E4%B8%9C&var-carrier=...'
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import time
import urllib.parse
from collections.abc import Callable, Sequence
from typing import Any, ClassVar

import httpx

from riskwatch.errors import ConfigError, SinkError
from sinks.base import Record, RetryPolicy
from sinks.http import (HttpSink, ReceiverUnavailable, check_urls, receiver_name,
                        retryable_status, retryable_transport)
from streams.text.pii import mask_pii

__all__ = ["AlertmanagerSink", "DIMENSIONS", "alert_links", "api_url", "scope_of", "to_alertmanager"]

logger = logging.getLogger(__name__)

#: Slice dimensions that become labels, in this order (only the present ones are set).
DIMENSIONS = ("region", "merchant_id", "carrier", "category", "intent")
#: Grafana dashboard uid of the per-slice drill-down (provisioned in ``dashboards/``).
SLICE_DASHBOARD_UID = "riskwatch-slice"
_API_PATH = re.compile(r"/api/v[12](/alerts)?\Z")
#: The README's "On-call runbook", one heading per metric (tests/test_readme.py checks them).
DEFAULT_RUNBOOK_URL = "https://github.com/riskwatch/riskwatch/blob/main/README.md"
_EXAMPLES = 3          # masked example complaints per alert
_EXAMPLE_CHARS = 120


def scope_of(dimensions: dict[str, str]) -> str:
    """The kind of slice an alert is about, as inhibit rules and ``group_by`` see it.

    >>> scope_of({"region": "广东", "carrier": "中通"}), scope_of({"merchant_id": "m1"}), scope_of({})
    ('region_carrier', 'merchant', 'all')
    """
    names = [d.removesuffix("_id") for d in DIMENSIONS if d in dimensions]
    return "_".join(names) or "all"


def api_url(url: str) -> str:
    """Where alerts are posted for the base URL ``url``: its path plus ``/api/v2/alerts``,
    its query kept after that (an auth proxy's ``?token=``), not before it.

    >>> api_url("http://am:9093/prefix?token=t")
    'http://am:9093/prefix/api/v2/alerts?token=t'
    """
    base, sep, query = url.split("#", 1)[0].partition("?")
    return f"{base.rstrip('/')}/api/v2/alerts{sep}{query}"


def _rfc3339(epoch: float) -> str:
    return dt.datetime.fromtimestamp(int(epoch), dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _contributor(c: dict) -> str:
    """``intent=damaged: 30 (100%)``; a signal's contributors count orders or parcels.

    >>> _contributor({"dimension": "region", "value": "广东", "orders": 120, "share": 0.8})
    'region=广东: 120 (80%)'
    >>> _contributor({"dimension": "shop", "value": "new"})
    'shop=new'
    """
    text = f"{c.get('dimension')}={c.get('value')}"
    count = next((c[k] for k in ("complaints", "orders", "parcels") if k in c), None)
    if count is not None:
        text += f": {count}"
    if isinstance(c.get("share"), (int, float)):
        text += f" ({c['share']:.0%})"
    return text


def _epoch(ts: str) -> float:
    return dt.datetime.fromisoformat(ts).timestamp()


def _alertname(metric: str) -> str:
    return "".join(part.capitalize() for part in metric.split("_")) + "Anomaly"


#: Slice dimension -> variable of the drill-down dashboard (``dashboards/definitions.py``).
DASHBOARD_VARIABLES = {"region": "region", "carrier": "carrier", "merchant_id": "merchant",
                       "intent": "intent"}


def _drilldown(grafana_url: str, dims: dict[str, str], start: float, end: float) -> str:
    query = [(f"var-{var}", dims[d]) for d, var in DASHBOARD_VARIABLES.items() if d in dims]
    # An hour of context before the episode, and up to its end (or now).
    query += [("from", str(int(start - 3600) * 1000)), ("to", str(int(end) * 1000))]
    return (f"{grafana_url.rstrip('/')}/d/{SLICE_DASHBOARD_UID}/riskwatch-slice?"
            + urllib.parse.urlencode(query, quote_via=urllib.parse.quote))


def alert_links(record: Record, *, grafana_url: str | None, runbook_url: str, start: float,
                end: float) -> dict[str, str]:
    """The links every alert carries, wherever it is sent (annotations here, the body of
    :mod:`sinks.webhook`): ``runbook_url`` (``runbook_url#<metric>``) and, with a Grafana
    base URL, ``grafana_url`` (the slice's drill-down from an hour before ``start`` to
    ``end``, epoch seconds).

    >>> alert_links({"metric": "order_surge", "dimensions": {"merchant_id": "m7"}},
    ...             grafana_url=None, runbook_url="https://wiki/rw", start=0, end=0)
    {'runbook_url': 'https://wiki/rw#order-surge'}
    """
    links = {"runbook_url": f"{runbook_url}#{record['metric'].replace('_', '-')}"}
    if grafana_url:
        links["grafana_url"] = _drilldown(grafana_url, _dimension_labels(record), start, end)
    return links


def _dimension_labels(record: Record) -> dict[str, str]:
    return {k: str(v) for k, v in (record.get("dimensions") or {}).items()
            if k in DIMENSIONS and v is not None}


def to_alertmanager(record: Record, *, now: float, firing_ttl: float, grafana_url: str | None = None,
                    runbook_url: str = DEFAULT_RUNBOOK_URL, starts_at: float | None = None) -> dict:
    """One alert record (the output contract) as an Alertmanager API v2 ``postableAlert``.

    ``starts_at`` (epoch) overrides the record's own time: escalations keep the start of
    their episode.
    """
    dims = _dimension_labels(record)
    context = record.get("context") or {}
    ts = _epoch(record["ts"])
    start = starts_at if starts_at is not None else ts
    labels = {"alertname": _alertname(record["metric"]), "severity": record["severity"],
              "metric": record["metric"], "fingerprint": record["fingerprint"],
              "scope": scope_of(dims), **dims}
    for dim in ("region", "carrier"):
        value = dims.get(dim) or context.get(dim)
        if value:
            labels[f"incident_{dim}"] = str(value)
    summary = record.get("summary", "")
    zh, _, en = summary.partition(" | ")
    contributors = "; ".join(_contributor(c) for c in record.get("contributors") or [])
    examples = [mask_pii(str(text))[:_EXAMPLE_CHARS] for text in (record.get("examples") or [])[:_EXAMPLES]]
    annotations = {
        "summary": summary,
        "summary_zh": zh,
        "summary_en": en or zh,
        "description": (f"observed {record.get('observed')} complaints vs {record.get('expected')} "
                        f"expected (score {record.get('score')}), bucket {record.get('bucket_start')} "
                        f"- {record.get('bucket_end')}; alert {record['alert_id']}"),
        "observed": str(record.get("observed")),
        "expected": str(record.get("expected")),
        "alert_id": record["alert_id"],
    }
    if contributors:
        annotations["contributors"] = contributors
    if examples:
        annotations["examples"] = "\n".join(examples)
    if record["status"] == "resolved":
        ends = max(ts, start + 1)  # Alertmanager rejects endsAt before startsAt
    else:
        ends = max(now, ts) + firing_ttl
    annotations.update(alert_links(record, grafana_url=grafana_url, runbook_url=runbook_url, start=start,
                                   end=ends if record["status"] == "resolved" else max(now, ts)))
    alert: dict[str, Any] = {"labels": labels, "annotations": annotations,
                             "startsAt": _rfc3339(start), "endsAt": _rfc3339(ends)}
    if "grafana_url" in annotations:
        alert["generatorURL"] = annotations["grafana_url"]
    return alert



class AlertmanagerSink(HttpSink):
    """Posts alert state changes to one or more Alertmanagers; see the module docstring.

    Parameters
    ----------
    urls
        Base URLs (``http://127.0.0.1:9093``) of every Alertmanager of an HA cluster.
    grafana_url
        Grafana base URL for the drill-down link (none: no link).
    runbook_url
        Runbook page; ``#<metric>`` is appended.
    resend_seconds
        Firing alerts are re-posted this often (keep it well below ``firing_ttl``).
    firing_ttl
        ``endsAt`` of a firing alert is now + this: if riskwatch stops re-posting,
        Alertmanager resolves the alert by itself after it.
    timeout
        Seconds per HTTP request.
    client
        An ``httpx.Client`` (tests pass one with ``httpx.MockTransport``).
    clock
        Wall-clock seconds (tests inject one).
    """

    kinds: ClassVar[frozenset[str]] = frozenset({"alerts"})
    receiver = "Alertmanager"
    any_url_will_do = True   # a post lands when any peer takes it

    def __init__(self, urls: Sequence[str], *, grafana_url: str | None = None,
                 runbook_url: str = DEFAULT_RUNBOOK_URL, resend_seconds: float = 60.0,
                 firing_ttl: float = 300.0, timeout: float = 5.0, client: httpx.Client | None = None,
                 clock: Callable[[], float] = time.time, retry: RetryPolicy | None = None,
                 sleep: Callable[[float], None] = time.sleep, batch_size: int = 500) -> None:
        super().__init__(batch_size=batch_size, sleep=sleep,
                         retry=retry or RetryPolicy(initial_delay=0.5, max_delay=30.0))
        urls = [u.rstrip("/") for u in check_urls(urls, owner="AlertmanagerSink", flag="--alertmanager-url")]
        for url in urls:
            # The API path pasted from Alertmanager's docs: every post went to
            # .../api/v2/alerts/api/v2/alerts, a 404, and the worker stalled on it for good.
            if _API_PATH.search(url.split("?", 1)[0]):
                raise ConfigError(f"--alertmanager-url {receiver_name(url)}: give Alertmanager's base "
                                  "URL (e.g. http://alertmanager:9093, with its route prefix if it "
                                  "has one); riskwatch adds /api/v2/alerts")
        if not 0 < resend_seconds < firing_ttl:
            raise ConfigError("AlertmanagerSink needs 0 < resend_seconds < firing_ttl "
                              f"(got {resend_seconds}, {firing_ttl})")
        self.urls = urls
        self.grafana_url = grafana_url
        self.runbook_url = runbook_url
        self.resend_seconds = resend_seconds
        self.firing_ttl = firing_ttl
        self._init_http(timeout, client)
        self._clock = clock
        #: fingerprint -> (record, startsAt epoch, labels posted last) of every firing alert
        self.active: dict[str, tuple[Record, float, dict]] = {}
        self._last_post = 0.0
        self.posts = self.resends = 0

    # -- writing --------------------------------------------------------------------------
    def write(self, kind: str, records: list[Record], token: str | None) -> None:
        now = self._clock()
        # Only the latest state of each alert in the batch is posted (a replay hands over
        # fire, escalations and resolve at once); severities it passed through in the
        # batch were never posted, so they need no resolve.
        final: dict[str, tuple[Record, float]] = {}
        for record in records:
            fp = record["fingerprint"]
            before = final[fp][0] if fp in final else (self.active[fp][0] if fp in self.active else None)
            if before is None:
                starts = _epoch(record["ts"])
            else:
                starts = final[fp][1] if fp in final else self.active[fp][1]
                # The incident_* labels are pinned at the episode's first post: a context
                # that drifts would otherwise turn the resolve into a different alert.
                record = {**record, "context": before.get("context")}
            final[fp] = (record, starts)
        payload: list[dict] = []
        posted: dict[str, tuple[Record, float, dict] | None] = {}
        for fp, (record, starts) in final.items():
            alert = self._convert(record, now, starts)
            known = self.active.get(fp)
            if known is not None and known[2] != alert["labels"]:
                # Escalated: the old label set is another alert to Alertmanager; end it.
                payload.append(self._convert({**known[0], "status": "resolved", "ts": record["ts"]},
                                             now, starts))
            payload.append(alert)
            posted[fp] = (record, starts, alert["labels"]) if record["status"] == "firing" else None
        self._post(payload)
        # Only now: a failed post leaves the table as it was, and the retry rebuilds the same payload.
        for fp, entry in posted.items():
            if entry is None:
                self.active.pop(fp, None)
            else:
                self.active[fp] = entry
        self._last_post = now

    def flush(self) -> None:
        super().flush()
        self.resend_due()

    def prime(self, open_alerts: list[dict]) -> None:
        """After a restart from a checkpoint: take over the alerts firing at that point.

        ``open_alerts`` are :meth:`streams.open_alerts.OpenAlerts.entries` (latest firing
        record, first ``ts`` and context of each). Without them the table of what was
        posted is empty after a restart: those alerts would not be re-posted and
        Alertmanager would resolve them by itself after ``firing_ttl`` while the incident
        goes on, and their resolve would carry other labels. They are re-posted on the
        next flush.
        """
        now = self._clock()
        for entry in open_alerts:
            record = {**entry["record"], "context": entry.get("context")}
            starts = _epoch(entry["starts"])
            labels = self._convert(record, now, starts)["labels"]
            self.active[record["fingerprint"]] = (record, starts, labels)
        if open_alerts:
            self._last_post = 0.0

    def resend_due(self) -> int:
        """Re-post every firing alert if ``resend_seconds`` passed; return how many."""
        now = self._clock()
        if not self.active or now - self._last_post < self.resend_seconds:
            return 0
        payload = [self._convert(record, now, starts) for record, starts, _ in self.active.values()]
        try:
            self._post(payload)
        except Exception as exc:  # noqa: BLE001 - a missed re-post is retried on the next flush
            logger.warning("re-posting %d firing alerts failed: %s", len(payload), exc)
            return 0
        self._last_post = now
        self.resends += 1
        return len(payload)

    def _convert(self, record: Record, now: float, starts: float) -> dict:
        return to_alertmanager(record, now=now, firing_ttl=self.firing_ttl, grafana_url=self.grafana_url,
                               runbook_url=self.runbook_url, starts_at=starts)

    def _post(self, payload: list[dict]) -> None:
        if self._client is None:
            self.setup()
        assert self._client is not None
        errors: list[str] = []
        retryable = False
        for url in self.urls:
            try:
                response = self._client.post(api_url(url), json=payload)
            except httpx.TransportError as exc:
                errors.append(f"{receiver_name(url)}: {type(exc).__name__}: {exc}")
                retryable = retryable or retryable_transport(exc)
                continue
            if response.is_success:
                self.posts += 1
                # Any peer is enough (they gossip); the others are tried for availability.
                for other in self.urls[self.urls.index(url) + 1:]:
                    self._post_best_effort(other, payload)
                return
            # logged: masked, then cut (the answer may quote our labels back)
            errors.append(f"{receiver_name(url)}: HTTP {response.status_code} "
                          f"{mask_pii(response.text[:20_000])[:200]}")
            retryable = retryable or retryable_status(response.status_code)
        message = f"no Alertmanager accepted {len(payload)} alerts: " + "; ".join(errors)
        if retryable:
            raise ReceiverUnavailable(message)
        raise SinkError(message)

    def _post_best_effort(self, url: str, payload: list[dict]) -> None:
        assert self._client is not None
        try:
            response = self._client.post(api_url(url), json=payload)
            if not response.is_success:
                logger.warning("Alertmanager %s answered HTTP %d", receiver_name(url),
                               response.status_code)
        except httpx.TransportError as exc:
            logger.warning("Alertmanager %s unreachable: %s", receiver_name(url), exc)
