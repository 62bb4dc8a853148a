"""Alert state changes as Grafana annotations (through ``grafana-client``).

Every firing, escalation and resolve becomes an annotation (``POST /api/annotations``),
so a risk analyst sees on any time-series panel *when* riskwatch paged and when it was
over. A resolve is a *region* annotation spanning the whole episode. Annotations are
organisation-wide and tagged (``riskwatch``, the metric, severity, status, ``fp:<fingerprint>``
and ``region:广东``-style slice tags); a dashboard shows them with an "Annotations &
Alerts" query filtered by tag ``riskwatch`` (or pass ``dashboard_uid`` to pin them to one).

Failures: a 5xx, 408, 429, a timeout or a refused connection is retried with backoff inside
``flush()`` (:class:`~sinks.base.BatchingSink`); another 4xx (bad token, bad request) will not
get better by retrying, so the annotation is logged and counted in ``rejected``, not
retried forever — annotations are context, not the page.

>>> annotation_for({"alert_id": "167c0feb71275f03-5894", "fingerprint": "167c0feb71275f03",
...     "status": "resolved", "severity": "orange", "metric": "complaint_rate",
...     "dimensions": {"region": "广东"}, "ts": "2026-11-22T11:00:00+08:00",
...     "summary": "region=广东 投诉率已恢复正常 | complaint rate back to normal"},
...     started="2026-11-22T10:05:00+08:00")  # doctest: +NORMALIZE_WHITESPACE
{'time_from': 1795313100000, 'time_to': 1795316400000,
 'tags': ['riskwatch', 'complaint_rate', 'orange', 'resolved', 'fp:167c0feb71275f03', 'region:广东'],
 'text': 'region=广东 投诉率已恢复正常 | complaint rate back to normal (alert 167c0feb71275f03-5894)'}
"""

from __future__ import annotations

import datetime as dt
import logging
import time
import urllib.parse
from collections.abc import Callable
from typing import Any, ClassVar

from riskwatch.errors import ConfigError, SinkError
from sinks.base import BatchingSink, Record, RetryPolicy
from streams.text.pii import mask_pii

__all__ = ["GrafanaAnnotationsSink", "annotation_for"]

logger = logging.getLogger(__name__)


def _ms(ts: str) -> int:
    return int(dt.datetime.fromisoformat(ts).timestamp() * 1000)


def annotation_for(record: Record, *, started: str | None = None) -> dict[str, Any]:
    """Keyword arguments of ``api.annotations.add_annotation`` for one alert record."""
    dims = record.get("dimensions") or {}
    tags = ["riskwatch", record["metric"], record["severity"], record["status"],
            f"fp:{record['fingerprint']}", *(f"{k}:{v}" for k, v in dims.items())]
    text = f"{mask_pii(str(record.get('summary', '')))} (alert {record['alert_id']})"
    end = _ms(record["ts"])
    if record["status"] == "resolved" and started:
        return {"time_from": _ms(started), "time_to": end, "tags": tags, "text": text}
    return {"time_from": end, "time_to": end, "tags": tags, "text": text}


class GrafanaAnnotationsSink(BatchingSink):
    """Writes alert state changes as Grafana annotations; see the module docstring.

    Parameters
    ----------
    url
        Grafana base URL, e.g. ``http://grafana:3000`` (``http://user:pw@host`` works too).
    token
        Service-account token (``RISKWATCH_GRAFANA_TOKEN``); or credentials in ``url``.
    dashboard_uid
        Pin annotations to this dashboard; ``None``: organisation-wide (query by tag).
    api
        A ready ``grafana_client.GrafanaApi`` (tests); built from ``url`` otherwise.
    """

    kinds: ClassVar[frozenset[str]] = frozenset({"alerts"})

    def __init__(self, url: str, *, token: str | None = None, dashboard_uid: str | None = None,
                 timeout: float = 5.0, api: Any = None, retry: RetryPolicy | None = None,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        super().__init__(batch_size=200, sleep=sleep,
                         retry=retry or RetryPolicy(initial_delay=0.5, max_delay=30.0))
        if not url.startswith(("http://", "https://")):
            raise ConfigError(f"--grafana-annotations-url must start with http:// or https:// (got {url!r})")
        self.url = url
        self.token = token
        self.dashboard_uid = dashboard_uid
        self.timeout = timeout
        self.api = api
        self.started: dict[str, str] = {}   # fingerprint -> ts of the episode's first firing
        self.written = self.rejected = 0
        self._done: set[tuple[str, str, str]] = set()
        if api is None and not token and not urllib.parse.urlsplit(url).username:
            # It started without a word, then every annotation came back 401 and was
            # dropped (logged and counted: a 4xx is not retried), one line each.
            logger.warning("%r: no $RISKWATCH_GRAFANA_TOKEN and no user in the URL: unless "
                           "Grafana lets anonymous users edit, every annotation will be "
                           "rejected; set RISKWATCH_GRAFANA_TOKEN to a service-account token",
                           self)

    def __repr__(self) -> str:   # named in the worker's sink error lines
        from sinks.http import receiver_name
        return f"GrafanaAnnotationsSink({receiver_name(self.url)})"

    def setup(self) -> None:
        if self.api is None:
            from grafana_client import GrafanaApi

            from dashboards.push import bracket_ipv6
            self.api = bracket_ipv6(GrafanaApi.from_url(self.url, credential=self.token,
                                                        timeout=self.timeout))

    def check_reachable(self) -> None:
        """A SinkError unless Grafana answers HTTP (see ``HttpSink.check_reachable``)."""
        from grafana_client.client import GrafanaException

        from dashboards.push import why_unreachable
        from sinks.http import receiver_name

        self.setup()
        try:
            self.api.health.check()
        except GrafanaException:
            pass   # it answered
        except Exception as exc:  # noqa: BLE001 - niquests' errors: it did not
            raise SinkError(f"cannot reach Grafana at {receiver_name(self.url)} "
                            f"({why_unreachable(exc)})") from exc

    def is_transient(self, exc: BaseException) -> bool:
        from grafana_client.client import GrafanaServerError, GrafanaTimeoutError

        if isinstance(exc, GrafanaServerError | GrafanaTimeoutError):
            return True
        if getattr(exc, "status_code", None) in (408, 429):  # a GrafanaClientError: busy
            return True
        # niquests raises its own ConnectionError (a requests-style RequestException).
        if type(exc).__name__ in {"ConnectionError", "ConnectTimeout", "ReadTimeout"}:
            return True
        return super().is_transient(exc)

    def write(self, kind: str, records: list[Record], token: str | None) -> None:
        from grafana_client.client import GrafanaClientError

        if self.api is None:
            self.setup()
        for record in records:
            key = (record["alert_id"], record["status"], record["ts"])
            if key in self._done:
                continue  # written before a later record of this batch failed
            fp = record["fingerprint"]
            if record["status"] == "firing":
                self.started.setdefault(fp, record["ts"])
            kwargs = annotation_for(record, started=self.started.get(fp))
            try:
                self.api.annotations.add_annotation(dashboard_uid=self.dashboard_uid, **kwargs)
                self.written += 1
            except GrafanaClientError as exc:
                if exc.status_code in (408, 429):   # busy, not a rejection: retried
                    raise
                self.rejected += 1
                logger.error("Grafana rejected the annotation of alert %s: %s", record["alert_id"],
                             mask_pii(str(exc))[:300])
            self._done.add(key)
            if record["status"] == "resolved":
                self.started.pop(fp, None)
        self._done.clear()
