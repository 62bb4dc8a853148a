"""Ingest helpers: duplicate detection and dead-letter records.

A dead letter says *why* and *where* (topic/partition/offset, or file and line), never
carries a complaint's raw text, and masks personal data in whatever excerpt it keeps:
the dead-letter topic is read by more people than the complaint system.
"""

from __future__ import annotations

import collections
import hashlib
import re

from riskwatch.events import BadEvent
from streams.text import mask_pii

__all__ = ["Deduplicator", "dead_letter", "internal_error_letter"]

# The value of a "text" field inside a (possibly broken) JSON excerpt. Complaint text is
# dropped from dead letters entirely, not just masked: names and addresses in free text
# defeat regex masking often enough that we do not keep it.
_TEXT_FIELD = re.compile(rb'("text"\s*:\s*")((?:[^"\\]|\\.)*)("?)', re.S)
_EXCERPT_BYTES = 300


class Deduplicator:
    """Remembers event ids for ``window`` seconds of event time.

    Ids are also queued in arrival order; :meth:`prune` pops those whose event time is
    older than the cut-off from the front of the queue (O(1) each), so memory stays
    bounded by the window. (Popping from the front of a dict is not O(1) in CPython:
    iteration skips every deleted slot, hence the deque.)

    >>> d = Deduplicator(window=100)
    >>> d.seen("e1", 1000), d.seen("e1", 1000), d.seen("e2", 1050)
    (False, True, False)
    >>> d.prune(watermark=1120); len(d)
    1
    """

    def __init__(self, window: int) -> None:
        self.window = window
        self._ids: set[str] = set()
        self._queue: collections.deque[tuple[int, str]] = collections.deque()

    def seen(self, event_id: str, epoch: int) -> bool:
        """True if ``event_id`` was seen before (a duplicate); records it otherwise."""
        if event_id in self._ids:
            return True
        self._ids.add(event_id)
        self._queue.append((epoch, event_id))
        return False

    def prune(self, watermark: int) -> None:
        cutoff = watermark - self.window
        queue, ids = self._queue, self._ids
        # Arrival order ~ event-time order; stop at the first entry still inside the window.
        while queue and queue[0][0] < cutoff:
            ids.discard(queue.popleft()[1])

    def __len__(self) -> int:
        return len(self._ids)


def _excerpt(raw: bytes) -> str:
    cut = raw[:_EXCERPT_BYTES]
    cut = _TEXT_FIELD.sub(rb'\1<complaint text omitted>\3', cut)
    text = cut.decode("utf-8", errors="replace")
    if len(raw) > _EXCERPT_BYTES:
        text += "…"
    return mask_pii(text)


def _letter_id(source: str, partition: int | None, offset: int, index: int) -> str:
    # Deterministic: a re-delivered message yields the same id, so sinks can dedup.
    key = f"{source}|{partition}|{offset}|{index}".encode()
    return hashlib.blake2b(key, digest_size=10).hexdigest()


def dead_letter(bad: BadEvent, raw: bytes, *, source: str, partition: int | None,
                offset: int, recorded_at: str) -> dict:
    """Build the dead-letter record for one bad event of a message or line."""
    return {
        "dead_letter_id": _letter_id(source, partition, offset, bad.index),
        "ts": recorded_at,
        "source": source,
        "partition": partition,
        "offset": offset,
        "index": bad.index,
        "reason": bad.reason,
        "detail": mask_pii(bad.detail),
        "event_id": bad.event_id,
        "event_type": bad.event_type,
        "payload_excerpt": _excerpt(raw),
    }


def internal_error_letter(exc: BaseException, *, source: str, partition: int | None,
                          offset: int, recorded_at: str) -> dict:
    """Dead letter for an event whose processing raised: no payload, just the error."""
    return {
        "dead_letter_id": _letter_id(source, partition, offset, -1),
        "ts": recorded_at,
        "source": source,
        "partition": partition,
        "offset": offset,
        "index": 0,
        "reason": "internal error",
        "detail": mask_pii(f"{type(exc).__name__}: {exc}")[:500],
        "event_id": None,
        "event_type": None,
        "payload_excerpt": "",
    }
