"""Event-time watermark over several sources (Kafka partitions or one file).

Each source is read in (roughly) event-time order, but different topics advance at
different speeds: faust round-robins between partitions, so a small ``complaints``
topic can run hours ahead of a large ``orders`` topic while a backlog drains. The
watermark is therefore the *minimum* over sources of each source's maximum event
time, minus the allowed lateness (Flink's and Kafka Streams' rule). A source that has
been silent for ``idle_seconds`` of wall-clock time stops holding the watermark back
(Flink's ``withIdleness``), so one empty topic cannot freeze detection.

>>> wm = Watermark(allowed_lateness=600, idle_seconds=30)
>>> wm.observe(("orders", 0), 10_000, wall=0.0)
>>> wm.observe(("complaints", 0), 50_000, wall=0.0)
>>> wm.value()            # held back by the slower source
9400
>>> wm.observe(("orders", 0), 60_000, wall=1.0)
>>> wm.value()
49400
>>> wm.value(wall=100.0)  # both idle for > 30 s: fall back to the newest event seen
59400
"""

from __future__ import annotations

__all__ = ["Watermark"]

Source = tuple[str, "int | None"]


class Watermark:
    """Tracks per-source maximum event time; see the module docstring for the rule."""

    def __init__(self, allowed_lateness: int, idle_seconds: float = 30.0) -> None:
        self.allowed_lateness = allowed_lateness
        self.idle_seconds = idle_seconds
        self._max: dict[Source, int] = {}
        self._last_seen: dict[Source, float] = {}
        self._assigned: set[Source] | None = None
        self._pending: dict[Source, float | None] = {}

    def assign(self, sources: list[Source], wall: float | None = None) -> None:
        """Restrict the watermark to these sources (on partition assignment).

        An assigned source that has not delivered anything yet holds the watermark
        back (its first events may be old) until it has been silent ``idle_seconds``.
        """
        self._assigned = set(sources)
        for source in list(self._max):
            if source not in self._assigned:
                del self._max[source]
                self._last_seen.pop(source, None)
        self._pending = {s: wall for s in self._assigned if s not in self._max}

    def observe(self, source: Source, epoch: int, wall: float | None = None) -> None:
        """Record an event time seen on ``source`` (``wall`` = monotonic seconds, live only)."""
        if epoch > self._max.get(source, -1):
            self._max[source] = epoch
        if wall is not None:
            self._last_seen[source] = wall

    def value(self, wall: float | None = None) -> int | None:
        """The watermark in epoch seconds, or ``None`` before any event.

        ``wall`` enables idleness: sources silent for longer than ``idle_seconds``
        are ignored, unless every source is idle (then the newest event time counts).
        """
        if not self._max:
            return None
        for source, since in list(self._pending.items()):
            if source in self._max:
                del self._pending[source]
                continue
            if since is None and wall is not None:
                self._pending[source] = since = wall  # assigned before the first tick
            if since is None or wall - since <= self.idle_seconds:
                return None  # an assigned partition we have not heard from yet
            else:
                del self._pending[source]  # idle since assignment: stop waiting for it
        active = self._max
        if wall is not None:
            live = {s: t for s, t in self._max.items()
                    if wall - self._last_seen.setdefault(s, wall) <= self.idle_seconds}
            active = live or {"_": max(self._max.values())}  # type: ignore[dict-item]
        return min(active.values()) - self.allowed_lateness

    def snapshot(self) -> dict[str, int]:
        """Per-source maxima, for stats pages."""
        return {f"{s[0]}:{s[1]}": t for s, t in sorted(self._max.items(), key=str)}
