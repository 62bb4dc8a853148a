"""Event-time windows of ids and values: duplicate detection and the order maps.

Both keep two generations and retire the older one a window later, so memory stays
bounded at any rate without an expiry queue (see :class:`_Generations`).
"""

from __future__ import annotations

__all__ = ["Deduplicator", "GenerationalMap"]


class _Generations:
    """Two generations of entries: reads check both, writes go to ``current``, and
    :meth:`prune` retires ``previous`` once ``current`` spans ``window`` seconds of event
    time. An entry thus lives between one and two windows, memory stays bounded, and
    insert and expiry cost O(1) per entry (an arrival-order expiry queue costs a tuple
    and an append per event, which shows at 100k events/s)."""

    def __init__(self, window: int) -> None:
        self.window = window
        self.current = self._empty()
        self.previous = self._empty()
        self._started: int | None = None

    @staticmethod
    def _empty():
        raise NotImplementedError

    def prune(self, watermark: int) -> None:
        if self._started is None:
            self._started = watermark
        elif watermark - self._started >= self.window:
            self.previous, self.current = self.current, self._empty()
            self._started = watermark

    def __len__(self) -> int:
        return len(self.current) + len(self.previous)


class Deduplicator(_Generations):
    """Remembers event ids for at least ``window`` seconds of event time (see
    :class:`_Generations`).

    >>> d = Deduplicator(window=100)
    >>> d.seen("e1"), d.seen("e1"), d.seen("e2")
    (False, True, False)
    >>> d.prune(1000); d.prune(1100); d.seen("e1")   # one window later: still known
    True
    >>> d.prune(1200); d.seen("e2")                  # two windows later: forgotten
    False
    """

    current: set[str]
    previous: set[str]

    @staticmethod
    def _empty() -> set[str]:
        return set()

    def seen(self, event_id: str) -> bool:
        """True if ``event_id`` was seen before (a duplicate); records it otherwise."""
        if event_id in self.current or event_id in self.previous:
            return True
        self.current.add(event_id)
        return False


class GenerationalMap(_Generations):
    """A dict whose entries live between one and two ``window`` s of event time
    (see :class:`_Generations`).

    >>> m = GenerationalMap(window=100)
    >>> m["o1"] = "服饰"; m.prune(0); m.prune(100); m.get("o1")
    '服饰'
    >>> m.prune(200); m.get("o1") is None
    True
    """

    current: dict
    previous: dict

    @staticmethod
    def _empty() -> dict:
        return {}

    def __setitem__(self, key: str, value) -> None:
        self.current[key] = value

    def get(self, key: str):
        value = self.current.get(key)
        return value if value is not None else self.previous.get(key)
