"""Ingest helpers: duplicate detection and dead-letter records.

A dead letter says *why* and *where* (topic/partition/offset, or file and line), never
carries a complaint's raw text, and masks personal data in whatever excerpt it keeps:
the dead-letter topic is read by more people than the complaint system.
"""

from __future__ import annotations

import hashlib
import re

from riskwatch.events import BadEvent
from streams.text import mask_pii

__all__ = ["Deduplicator", "GenerationalMap", "dead_letter", "internal_error_letter"]

# The value of a "text" field inside a (possibly broken) JSON excerpt. Complaint text is
# dropped from dead letters entirely, not just masked: names and addresses in free text
# defeat regex masking often enough that we do not keep it.
_TEXT_FIELD = re.compile(rb'("text"\s*:\s*")((?:[^"\\]|\\.)*)("?)', re.S)
_EXCERPT_BYTES = 300
# What may continue a number past the excerpt's end (IDs end in X; groups are split by
# spaces or dashes; full-width forms as typed by Chinese IMEs, which the masker folds),
# and how far: a complaint text's length (riskwatch.events).
_NUMBER_CHARS = "0123456789Xx -０１２３４５６７８９Ｘｘ－\u3000"
_MAX_NUMBER_RUN = 20_000


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


def _excerpt(raw: bytes) -> str:
    raw = raw.rstrip(b"\r\n")   # a replayed line's own line break is not the message's
    # Masked before it is cut: a number cut by the excerpt's end (an ID after 15 digits,
    # "13812345678139…" of two mobiles typed back to back) is no longer found whole. So
    # the window reaches to the end of a number crossing the cut, is masked, then cut.
    end = _EXCERPT_BYTES
    while end < len(raw) and raw[end] & 0xC0 == 0x80:
        end += 1   # finish a character the cut fell into
    tail = raw[end:end + _MAX_NUMBER_RUN].decode("utf-8", errors="replace")
    end += len(tail[:len(tail) - len(tail.lstrip(_NUMBER_CHARS))].encode())
    window = _TEXT_FIELD.sub(rb'\1<complaint text omitted>\3', raw[:end])
    text = mask_pii(window.decode("utf-8", errors="replace"))
    if len(raw) > _EXCERPT_BYTES:
        text = text[:len(window[:_EXCERPT_BYTES].decode("utf-8", errors="replace"))] + "…"
    return text


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
        # An id is the producer's string: a mobile number typed as one is masked here
        # like in the excerpt (dead letters are read by people, never joined on).
        "event_id": None if bad.event_id is None else mask_pii(str(bad.event_id)),
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
