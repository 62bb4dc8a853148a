"""The offset gate: with checkpoints, the live state takes each input partition's
messages in offset order, each exactly once, whatever order faust delivers them in.

Why a gate: the state reflects exactly the messages up to a position per partition
(``runtime.positions``, saved in every checkpoint), but faust delivers by its own
bookkeeping. After a restore it resumes fetching at the group's committed offset a
moment before the seek back to the checkpoint; a seek delivers again what was already
handed out; and messages fetched before a seek can still arrive after it, raising
faust's read offset so that it drops the very messages the seek asked for. The gate
that stood here until 2026-11-24 waited for the checkpoint's message and then took
anything: one CI run lost 42 messages after a standby takeover, and 6 of 12 local
runs processed hundreds of messages twice (event dedup hid it in the aggregates; the
message counters and dead letters were doubled).

The rules, for a partition whose position is known (``last`` processed, ``next`` is
``last + 1``):

- ``offset == next``: admitted.
- ``offset < next``: a redelivery of a message the state already holds: skipped and
  counted. Except when the log no longer holds ``last`` (its end offset is at or below
  it: the topic was recreated, or the embedded broker restarted empty): the state then
  continues on the new log, with a warning.
- ``offset > next`` inside a *seek window*: ahead of the state, so possibly fetched
  before a seek: skipped and counted, and the partition is sought back to ``next``
  (:meth:`OffsetGate.seek_due`: at once, then again at most every
  :data:`SEEK_INTERVAL` seconds while it stays ahead, also from the wall-clock tick,
  since the hidden messages come only after a new seek). A window opens at a restore
  and at every seek, and closes once the state has reached the log's end offset as
  the consumer knew it then: everything fetched before the seek lies below that.
- ``offset > next`` outside a window: a gap in the log itself (transaction markers,
  compaction): admitted and counted.

A partition that stays ahead is probed (:data:`PROBE_AFTER`): a plain client reads
the log from ``next``. If its first record lies beyond (retention deleted messages
this group never read, or a gap inside the window), :meth:`OffsetGate.record_at`
moves ``next`` there and says how many offsets held no record for us. A partition the
state has no position for admits its first message. Seeks and the probe are done by
:class:`streams.checkpoint.LiveCheckpointer`; this module only decides, so the rules
are tested without a broker.

>>> gate = OffsetGate()
>>> positions = {("orders", 0): 99}
>>> gate.open_window(("orders", 0))                      # a restore or a seek
>>> [gate.check(positions, ("orders", 0), o, log_end=400) for o in (105, 99)]
['ahead', 'redelivered']
>>> gate.seek_due(positions, ("orders", 0), now=0.0)    # ahead: seek back to 100
100
>>> gate.seek_due(positions, ("orders", 0), now=0.1)    # one seek at a time
>>> gate.check(positions, ("orders", 0), 100), gate.stuck
('admit', {})
>>> positions[("orders", 0)] = 400                       # the window's end is reached
>>> gate.check(positions, ("orders", 0), 403, log_end=500)   # a transaction marker at 401
'admit'
>>> gate.check(positions, ("orders", 0), 3, log_end=40)      # the log restarted below 400
'admit'
>>> gate.counters
{'redelivered': 1, 'ahead': 1, 'seeks': 1, 'gaps': 1, 'log_restarts': 1, 'no_record': 0}
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterable

logger = logging.getLogger(__name__)

ADMIT, REDELIVERED, AHEAD = "admit", "redelivered", "ahead"
#: Minimum seconds between two seeks back of one partition.
SEEK_INTERVAL = 0.5
#: A partition ahead this long is worth asking the broker where its next record is.
PROBE_AFTER = 5.0
#: ... and asked again at most this often; it is reported as waiting this often too.
PROBE_INTERVAL = 30.0

Key = tuple[str, int]


@dataclasses.dataclass
class Stuck:
    """A partition whose deliveries run ahead of the state."""
    since: float | None = None        # first 'ahead' since the last admitted message
    seen: int = 0                     # the offset last delivered
    last_seek: float | None = None
    seeking: bool = False
    last_probe: float | None = None
    last_report: float | None = None


class OffsetGate:
    """Decides, per delivered message, whether the state takes it (module docstring)."""

    def __init__(self) -> None:
        self.stuck: dict[Key, Stuck] = {}
        # Seek windows: partition -> the log end offset the consumer knew at the first
        # check after the restore or seek (None until then).
        self.windows: dict[Key, int | None] = {}
        self.counters = {"redelivered": 0, "ahead": 0, "seeks": 0, "gaps": 0,
                         "log_restarts": 0, "no_record": 0}

    def open_window(self, key: Key) -> None:
        """A restore or a seek: messages fetched before it may still be delivered. They
        all lie below the log end offset the consumer knows at the next check that
        needs it (taken then: a fetch response still in flight at the seek is older)."""
        self.windows[key] = None

    def keep_only(self, keys: set[Key]) -> None:
        """Partitions no longer assigned: forget that they ran ahead or had a window."""
        for table in (self.stuck, self.windows):
            for key in set(table) - keys:
                del table[key]

    def restored(self, keys: Iterable[Key]) -> None:
        """The state was replaced by a checkpoint's: nothing runs ahead of it yet, and
        what the consumer fetched before may still come."""
        self.stuck.clear()
        for key in keys:
            self.open_window(key)

    def passed(self, key: Key, offset: int) -> None:
        """The state took ``offset``: the partition is no longer ahead, and its window
        closes once the state reaches the window's end."""
        self.stuck.pop(key, None)
        end = self.windows.get(key)
        if end is not None and offset + 1 >= end:
            del self.windows[key]

    def check(self, positions: dict[Key, int], key: Key, offset: int, *,
              log_end: int | None = None, now: float = 0.0) -> str:
        """``'admit'``, ``'redelivered'`` or ``'ahead'`` for the message at ``offset``.

        ``log_end`` is the partition's end offset as the consumer last saw it (``None``:
        unknown); it matters for a message below the state's position and for closing
        a seek window.
        """
        last = positions.get(key)
        if last is None or offset == last + 1:
            self.passed(key, offset)
            return ADMIT
        if log_end is not None and self.windows.get(key, 0) is None:
            self.windows[key] = log_end   # the first check after the seek: its end
        if offset <= last:
            if log_end is not None and 0 <= log_end <= last:
                self.counters["log_restarts"] += 1
                self.stuck.pop(key, None)
                logger.warning("%s/%d: the log ends at %d, below the %d messages the state has "
                               "read (topic recreated, or the broker restarted empty); "
                               "continuing on the new log at %d", *key, log_end, last + 1, offset)
                return ADMIT
            self.counters["redelivered"] += 1
            return REDELIVERED
        if key in self.windows:
            end = self.windows[key]
            # Until the state has read up to the window's end, a message ahead may have
            # been fetched before the seek, or stand after messages faust dropped below
            # such a one (its read offset): only a seek back tells.
            if end is None or last + 1 < end:
                return self._ahead(key, offset, now)
            del self.windows[key]
        self.counters["gaps"] += 1
        self.passed(key, offset)
        return ADMIT

    def _ahead(self, key: Key, offset: int, now: float) -> str:
        self.counters["ahead"] += 1
        stuck = self.stuck.setdefault(key, Stuck())
        if stuck.since is None:
            stuck.since = now
        stuck.seen = offset
        return AHEAD

    def seek_due(self, positions: dict[Key, int], key: Key, now: float) -> int | None:
        """The offset to seek ``key`` back to, if a seek is due now (it then counts as
        begun until :meth:`seek_done`)."""
        stuck = self.stuck.get(key)
        if stuck is None or key not in positions or stuck.seeking or (
                stuck.last_seek is not None and now - stuck.last_seek < SEEK_INTERVAL):
            return None
        stuck.seeking, stuck.last_seek = True, now
        self.counters["seeks"] += 1
        return positions[key] + 1

    def seek_done(self, key: Key, now: float) -> None:
        """The seek back landed: what the consumer fetched before it may still arrive."""
        self.open_window(key)
        stuck = self.stuck.get(key)
        if stuck is not None:
            stuck.seeking, stuck.last_seek = False, now

    def probe_due(self, key: Key, now: float) -> bool:
        """Whether to ask the broker where ``key``'s log starts (stuck long enough)."""
        return self._periodic(key, now, "last_probe", after=PROBE_AFTER)

    def report_due(self, key: Key, now: float) -> bool:
        """Whether to warn (again) that ``key`` waits for its next message."""
        return self._periodic(key, now, "last_report", after=PROBE_INTERVAL)

    def _periodic(self, key: Key, now: float, field: str, *, after: float) -> bool:
        """True once ``key`` has been stuck ``after`` seconds, then every PROBE_INTERVAL."""
        stuck = self.stuck.get(key)
        if stuck is None or stuck.since is None or now - stuck.since < after:
            return False
        last = getattr(stuck, field)
        if last is not None and now - last < PROBE_INTERVAL:
            return False
        setattr(stuck, field, now)
        return True

    def record_at(self, positions: dict[Key, int], key: Key, first: int | None, *,
                  log_start: int | None = None) -> int:
        """The broker says ``key``'s first record at or after the state's next offset is
        at ``first`` (``None``: none yet). If that lies beyond, the offsets in between
        hold no record for us (deleted by retention before this group read them if
        ``log_start`` is past them; otherwise transaction markers or compaction): move
        on to ``first``. Returns how many offsets were passed over (0: keep waiting)."""
        last = positions.get(key)
        if last is None or first is None or first <= last + 1:
            return 0
        passed = first - (last + 1)
        positions[key] = first - 1
        self.counters["no_record"] += passed
        if log_start is not None and log_start > last + 1:
            logger.warning("%s/%d: the log now starts at %d; %d message(s) from %d on were "
                           "deleted (retention) before this consumer group read them; "
                           "continuing at %d", *key, log_start, min(passed, log_start - last - 1),
                           last + 1, first)
        else:
            logger.info("%s/%d: offsets %d..%d hold no record (transaction markers or "
                        "compaction); continuing at %d", *key, last + 1, first - 1, first)
        return passed

    def waiting(self, positions: dict[Key, int]) -> list[dict]:
        """Partitions whose deliveries run ahead of the state, for ``/stats/``."""
        return [{"topic": k[0], "partition": k[1], "next": positions.get(k, -1) + 1,
                 "delivered": s.seen} for k, s in sorted(self.stuck.items())]
