"""The offset gate: with checkpoints, the live state takes each input partition's
messages in offset order, each exactly once, whatever order faust delivers them in.

Why a gate: the state reflects exactly the messages up to a position per partition
(``runtime.positions``, saved in every checkpoint), but faust delivers by its own
bookkeeping. After a restore it resumes fetching at the group's committed offset a
moment before the seek back to the checkpoint; a seek delivers again what was already
handed out; and messages fetched before a seek can still arrive after it, raising
faust's read offset so that it drops the very messages the seek asked for. The gate
that stood here until 2026-11-24 waited for the checkpoint's message and then took
anything: one CI run lost 42 messages after a standby takeover, and a third of local
runs processed hundreds of messages twice (event dedup hid it in the aggregates; the
message counters and dead letters were doubled).

The rules, for a partition whose position is known (``last`` processed, ``next`` is
``last + 1``):

- ``offset == next``: admitted.
- ``offset < next``: a redelivery of a message the state already holds: skipped and
  counted. Except when the log no longer holds ``last`` (its end offset is at or below
  it: the topic was recreated, or the embedded broker restarted empty): the state then
  continues on the new log, with a warning.
- ``offset > next``: ahead of the state: skipped and counted, and the partition is
  sought back to ``next`` (:meth:`OffsetGate.seek_due`: at once, then again at most
  every :data:`SEEK_INTERVAL` seconds while it stays ahead, also from the wall-clock
  tick, since the hidden messages come only after a new seek). Only the broker can say
  that ``next`` is gone for good: when the log's first offset lies beyond it (retention
  deleted messages this group never read), :meth:`OffsetGate.log_starts_at` moves
  ``next`` there and says how many were lost.

A partition the state has no position for admits its first message. Seeks and the
broker probe are done by :class:`streams.checkpoint.LiveCheckpointer`; this module
only decides, so the rules are tested without a broker.

>>> gate = OffsetGate()
>>> positions = {("orders", 0): 99}
>>> [gate.check(positions, ("orders", 0), o) for o in (105, 99)]
['ahead', 'redelivered']
>>> gate.seek_due(positions, ("orders", 0), now=0.0)    # ahead: seek back to 100
100
>>> gate.seek_due(positions, ("orders", 0), now=0.1)    # one seek at a time
>>> gate.check(positions, ("orders", 0), 100), gate.stuck
('admit', {})
>>> gate.check(positions, ("orders", 0), 3, log_end=40)   # the log restarted below 99
'admit'
>>> gate.counters
{'redelivered': 1, 'ahead': 1, 'seeks': 1, 'log_restarts': 1, 'deleted_unread': 0}
"""

from __future__ import annotations

import dataclasses
import logging

logger = logging.getLogger(__name__)

ADMIT, REDELIVERED, AHEAD = "admit", "redelivered", "ahead"
#: Minimum seconds between two seeks back of one partition.
SEEK_INTERVAL = 0.5
#: A partition ahead this long is worth asking the broker where its log starts.
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
        self.counters = {"redelivered": 0, "ahead": 0, "seeks": 0, "log_restarts": 0,
                         "deleted_unread": 0}

    def check(self, positions: dict[Key, int], key: Key, offset: int, *,
              log_end: int | None = None, now: float = 0.0) -> str:
        """``'admit'``, ``'redelivered'`` or ``'ahead'`` for the message at ``offset``.

        ``log_end`` is the partition's end offset as the consumer last saw it (``None``:
        unknown); it only matters for a message below the state's position.
        """
        last = positions.get(key)
        if last is None or offset == last + 1:
            self.stuck.pop(key, None)
            return ADMIT
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

    def log_starts_at(self, positions: dict[Key, int], key: Key, first: int) -> int:
        """The broker says ``key``'s log starts at ``first``: if that is beyond the next
        offset the state wants, those messages were deleted unread; move on to ``first``.
        Returns how many messages were lost that way (0: keep waiting)."""
        last = positions.get(key)
        if last is None or first <= last + 1:
            return 0
        lost = first - (last + 1)
        positions[key] = first - 1
        self.counters["deleted_unread"] += lost
        logger.warning("%s/%d: the log now starts at %d; %d message(s) from %d on were deleted "
                       "(retention) before this consumer group read them; continuing at %d",
                       *key, first, lost, last + 1, first)
        return lost

    def waiting(self, positions: dict[Key, int]) -> list[dict]:
        """Partitions whose deliveries run ahead of the state, for ``/stats/``."""
        return [{"topic": k[0], "partition": k[1], "next": positions.get(k, -1) + 1,
                 "delivered": s.seen} for k, s in sorted(self.stuck.items())]
