"""The alerts that are firing, as the outputs last said them, and the alerts of the last
week (:class:`RecentAlerts`): both carried in checkpoints.

A stateful sink (Alertmanager: it must re-post firing alerts before they expire, and
end an escalated alert's old label set) keeps a table of what it posted. That table
lives in the worker's memory, so after a restart from a checkpoint it is empty: alerts
that fired before the checkpoint would never be re-posted (Alertmanager resolves them by
itself while the incident goes on) and their resolve would not match. The pipeline keeps
this registry of open alerts in its checkpointed state; on restore the worker hands it to
every sink that has ``prime(open_alerts)``.

>>> book = OpenAlerts()
>>> fire = {"fingerprint": "f1", "status": "firing", "severity": "blue",
...         "ts": "2026-11-22T10:05:00+08:00", "context": {"region": "广东"}}
>>> book.update([fire, {**fire, "severity": "orange", "ts": "2026-11-22T10:10:00+08:00",
...                     "context": {"region": "广西"}}])
>>> [(e["record"]["severity"], e["starts"], e["context"]) for e in book.entries()]
[('orange', '2026-11-22T10:05:00+08:00', {'region': '广东'})]
>>> book.update([{**fire, "status": "resolved"}])
>>> book.entries()
[]
"""

from __future__ import annotations

__all__ = ["RECENT_ALERT_SECONDS", "OpenAlerts", "RecentAlerts"]

#: How long (event time) after its last record an alert is still known to the pipeline
#: (:class:`RecentAlerts`): a verdict usually comes within hours, a week covers a late one.
RECENT_ALERT_SECONDS = 7 * 86400


class OpenAlerts:
    """Per fingerprint: the latest firing record, the time and context of its first."""

    def __init__(self) -> None:
        self._open: dict[str, dict] = {}

    def update(self, records: list[dict]) -> None:
        """Follow alert records in output order (firing, escalations, resolve)."""
        for record in records:
            fp = record["fingerprint"]
            if record["status"] != "firing":
                self._open.pop(fp, None)
                continue
            known = self._open.get(fp)
            if known is None:
                self._open[fp] = {"record": record, "starts": record["ts"],
                                  "context": record.get("context")}
            else:
                known["record"] = record

    def entries(self) -> list[dict]:
        """``{"record", "starts", "context"}`` of every open alert, oldest first."""
        return list(self._open.values())

    def __len__(self) -> int:
        return len(self._open)


class RecentAlerts:
    """The alerts emitted in the last ``horizon_seconds`` of event time: alert_id -> metric.

    What the pipeline knows of an alert once its episode is over, so that a verdict on
    it (``riskwatch feedback``) can be told from a verdict on an alert it never raised,
    a mistyped id (:func:`streams.agents.handle_feedback` counts those ``unknown``). A
    few hundred alerts a day make it a few thousand short entries.

    >>> recent = RecentAlerts(horizon_seconds=3600)
    >>> recent.update([{"alert_id": "a-1", "metric": "order_surge"}], now=1000)
    >>> recent.update([{"alert_id": "b-2", "metric": "complaint_rate"}], now=4000)
    >>> recent.metric_of("a-1"), recent.metric_of("b-2")
    ('order_surge', 'complaint_rate')
    >>> recent.update([], now=4700)   # a-1's last record is more than an hour old
    >>> recent.metric_of("a-1") is None, len(recent)
    (True, 1)
    """

    def __init__(self, horizon_seconds: int = RECENT_ALERT_SECONDS) -> None:
        self.horizon_seconds = horizon_seconds
        # alert_id -> (metric, event time of its latest record); oldest first
        self._seen: dict[str, tuple[str, int]] = {}

    def update(self, records: list[dict], *, now: int | None) -> None:
        """Note ``records`` (alert records) at event time ``now`` (None: no bucket closed
        yet) and forget the alerts whose latest record is older than the horizon."""
        for record in records:
            self._seen.pop(record["alert_id"], None)   # re-inserted last: order stays by time
            self._seen[record["alert_id"]] = (str(record.get("metric")), now or 0)
        if now is None:
            return
        cutoff = now - self.horizon_seconds
        while self._seen:
            oldest = next(iter(self._seen))
            if self._seen[oldest][1] >= cutoff:
                break
            del self._seen[oldest]

    def metric_of(self, alert_id: str) -> str | None:
        """The metric of a recent alert; None for an alert not emitted within the horizon."""
        known = self._seen.get(alert_id)
        return None if known is None else known[0]

    def __len__(self) -> int:
        return len(self._seen)
