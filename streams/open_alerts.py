"""The alerts that are firing, as the outputs last said them: carried in checkpoints.

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

__all__ = ["OpenAlerts"]


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
