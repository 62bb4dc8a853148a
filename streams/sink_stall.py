"""Which sink the live worker is waiting on: for ``/stats/``, the status line and a forced stop.

Every sink retries a failed write until it lands (transient errors inside the sink's
``flush()``, :mod:`sinks.base`; refused writes in :meth:`streams.agents.SinkFeeder.
_flush_until_written`): back-pressure, on purpose. Meanwhile consumption stops and the
lag grows. Until 2026-11-25 nothing said which sink held the worker: ``sink_errors``
counts only failures a sink gave up on, so an unreachable Alertmanager, a webhook
answering 500 or a ClickHouse server that is down left it at 0; and a stop held by such
a sink ended in the watchdog's "did not stop within 30s; exiting hard" (status 70)
without naming it or saying what became of its records.

:class:`SinkStall` is what the feeder knows of the stall in progress (the sink thread
serves one sink at a time, so there is at most one); :func:`forced_stop_reason` is the
watchdog's sentence about it.

>>> stall = SinkStall(sink="AlertmanagerSink(http://am:9093)", since=1_795_313_100.0,
...                   attempts=7, last_error="ReceiverUnavailable: no Alertmanager accepted 2 alerts")
>>> stall.stats(now=1_795_313_160.0)["for_s"]
60.0
>>> safe_error("ConnectError at http://ops:pw@hooks.example/send?key=k3y: 13812345678 down")
'ConnectError at http://ops@hooks.example/send: 138****5678 down'
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
import time
from typing import Any

__all__ = ["SinkStall", "forced_stop_reason", "safe_error"]

# An URL's password (user:pw@) and its query or fragment, where hook relays and auth
# proxies carry their key: the sinks' own messages leave them out (sinks.http.receiver_name);
# an error from a library may not.
_URL = re.compile(r"\w+://\S+")
_URL_PASSWORD = re.compile(r"\A(\w+://[^/\s:@]+):[^@\s/]*@")
_URL_QUERY = re.compile(r"[?#].*?(?=:?\Z)")
_ERROR_CHARS = 300


def _safe_url(url: str) -> str:
    return _URL_QUERY.sub("", _URL_PASSWORD.sub(r"\1@", url), count=1)


def safe_error(text: str) -> str:
    """One line of an error for ``/stats/`` and the exit message: URLs without password
    and query, personal data masked elsewhere (an URL's user would read as an e-mail
    address), byte escapes and long digit runs scrubbed, cut."""
    from streams.agents import scrub_detail
    from streams.text.pii import mask_pii

    text = " ".join(str(text).split())
    words = _URL.split(text)
    urls = [_safe_url(u) for u in _URL.findall(text)] + [""]
    return scrub_detail("".join(mask_pii(w) + u for w, u in zip(words, urls)), limit=_ERROR_CHARS)


@dataclasses.dataclass(frozen=True)
class SinkStall:
    """A sink whose writes keep failing and are being retried (replaced whole, so a
    reader on another thread never sees half an update)."""

    sink: Any           # the sink object (its repr names it: AlertmanagerSink(http://am:9093))
    since: float        # wall clock of the first failed attempt of this stall
    attempts: int       # failed attempts since then
    last_error: str     # safe_error() of the latest failure

    def stats(self, now: float | None = None) -> dict:
        """The ``/stats/`` ``sink_stalled`` object."""
        now = time.time() if now is None else now
        return {"sink": repr(self.sink),
                "since": dt.datetime.fromtimestamp(int(self.since), dt.UTC).isoformat(),
                "for_s": round(now - self.since, 1), "attempts": self.attempts,
                "last_error": self.last_error}


def _pending(sink: Any) -> str:
    """``3 unwritten record(s) (alerts 3)`` that the sink holds, if it can say."""
    try:
        counts = {kind: n for kind, n in dict(sink.pending()).items() if n}  # a copy, or nothing
    except Exception:  # noqa: BLE001 - a sink without pending(), or a dict mid-update
        return ""
    if not counts:
        return ""
    return (f"{sum(counts.values())} unwritten record(s) ("
            + ", ".join(f"{kind} {n}" for kind, n in counts.items()) + ")")


def forced_stop_reason(feeder: Any, *, checkpointing: bool, embedded_broker: bool,
                       now: float | None = None) -> str | None:
    """Why a stop could not finish, if a sink held it: the sink, what it waited on, and
    what becomes of its records; ``None`` when no sink was busy (the reason is elsewhere).

    ``feeder`` is the worker's :class:`streams.agents.SinkFeeder`. What is said about the
    records is what the worker does: offset commits and checkpoints wait for the sinks'
    flush (:func:`streams.agents.flush_sinks_before_commit`, ``LiveCheckpointer.save``),
    so neither covers a record still unwritten.
    """
    now = time.time() if now is None else now
    stall, busy = feeder.stall, feeder.busy
    if stall is not None:
        sink = stall.sink
        waited = (f"{sink!r}, whose writes have failed for {now - stall.since:.0f}s "
                  f"({stall.attempts} attempts, retried until they land; last: {stall.last_error})")
    elif busy is not None and now - busy[2] >= 1.0:
        sink = busy[0]
        waited = (f"{sink!r}, in {busy[1]}() for {now - busy[2]:.0f}s without an answer "
                  "or an error")
    else:
        return None
    held = _pending(sink)
    others = [repr(s) for s in feeder.sinks if s is not sink]
    text = f"the stop waited on {waited}"
    if held:
        text += f"; it holds {held}"
    if others:
        text += f", and {', '.join(others)} wait behind it"
    if embedded_broker:
        consequence = ("the embedded broker stops with this worker and its log with it, so "
                       "those records are lost")
    elif checkpointing:
        consequence = ("no offset commit or checkpoint covers them (both wait for the sinks' "
                       "flush): the restarted worker restores its last checkpoint and makes "
                       "them again from the messages after it, at least once (records sent "
                       "since that checkpoint are sent again; receivers dedupe on "
                       "Idempotency-Key or alert_id + status + ts)")
    else:
        consequence = ("no offset commit covers them (commits wait for the sinks' flush), so "
                       "the restarted worker reads those messages again, but without "
                       "--checkpoint-dir its state starts empty and what it makes of them may "
                       "differ (alerts need the baselines it re-learns)")
    return f"{text}. {consequence[0].upper()}{consequence[1:]}. Fix the destination and restart"
