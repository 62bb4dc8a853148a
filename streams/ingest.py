"""Ingest helpers: duplicate detection and dead-letter records.

A dead letter says *why* and *where* (topic/partition/offset, or file and line), never
carries a complaint's raw text, and masks personal data in whatever excerpt it keeps:
the dead-letter topic is read by more people than the complaint system.

Free text is recognised two ways. A payload that parses as JSON loses the value of every
``text`` key, whatever its type (string, array, object) and however the key is spelt
(``"te\\u0078t"``). Then, in every excerpt and in ``detail``, ``event_id`` and
``event_type``, each run of more than four CJK characters (joined by punctuation or
spaces) becomes ``<text N chars>``: that catches text the parser could not find (a line
that is not JSON, a CSV line, a truncated object, text under another key). Region,
carrier and category names (广东, 中通, 京东物流) are 2-4 characters and stay readable.

>>> _blank_free_text('c-7,广东,中通,app,我是田伟，快递三天没动了,normal')
'c-7,广东,中通,app,<text 11 chars>,normal'
"""

from __future__ import annotations

import hashlib
import re

import orjson

from riskwatch.events import BadEvent
from streams.text import mask_pii

__all__ = ["Deduplicator", "GenerationalMap", "dead_letter", "internal_error_letter",
           "mask_short"]

# The value of a "text" field inside a JSON excerpt that does not parse (a truncated
# line). Complaint text is dropped from dead letters entirely, not just masked: names and
# addresses in free text defeat regex masking often enough that we do not keep it.
_TEXT_FIELD = re.compile(rb'("text"\s*:\s*")((?:[^"\\]|\\.)*)("?)', re.S)
_TEXT_OMITTED = "<complaint text omitted>"
# A run of CJK characters (ideographs, CJK and full-width punctuation) that may be joined
# by spaces and sentence punctuation; neither quotes nor commas join, as they delimit
# JSON and CSV fields. Runs with more than _MAX_KEPT_CJK ideographs are free text.
_CJK = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
_CJK_RUN = re.compile(
    rf"[{_CJK}\u3000-\u303f\uff01-\uff60](?:[{_CJK}\u3000-\u303f\uff01-\uff60"
    rf"\u2014\u2026\u201c\u201d \t!?.;:~*()\\-]*[{_CJK}\u3000-\u303f\uff01-\uff60])?")
_IDEOGRAPH = re.compile(f"[{_CJK}]")
_MAX_KEPT_CJK = 4
# JSON escapes of CJK and full-width characters, decoded before looking for runs, so an
# escaped text ("\\u6211\\u662f…") in a line that does not parse is found too.
_CJK_ESCAPE = re.compile(r"\\u(3[0-9a-fA-F]{3}|[4-9][0-9a-fA-F]{3}|[fF][0-9a-fA-F]{3})")
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


def _long_run(m: re.Match[str]) -> str:
    run = m.group()
    n = len(_IDEOGRAPH.findall(run))
    return f"<text {n} chars>" if n > _MAX_KEPT_CJK else run


def _blank_free_text(s: str) -> str:
    """``s`` with every run of more than four CJK characters replaced by its length."""
    if "\\u" in s:
        s = _CJK_ESCAPE.sub(lambda m: chr(int(m.group(1), 16)), s)
    return _CJK_RUN.sub(_long_run, s)


def _drop_text(value):
    """``value`` (parsed JSON) with the value of every ``text`` key omitted."""
    if isinstance(value, dict):
        return {k: _TEXT_OMITTED if k == "text" else _drop_text(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_drop_text(v) for v in value]
    return value


_MASKED_SHORT: dict[str, str] = {}


def mask_short(value: str | None) -> str | None:
    """:func:`mask_pii` for short menu-like fields (a complaint's channel, tier and
    declared type; a dead letter's event type), remembered: they take a handful of values
    ("app", "12315", "vip", "order"), so each is masked once.

    >>> mask_short("order"), mask_short("手机13912345678")
    ('order', '手机139****5678')
    """
    if value is None:
        return None
    masked = _MASKED_SHORT.get(value)
    if masked is None:
        masked = mask_pii(value)
        if len(_MASKED_SHORT) < 4096:   # bounded: a producer may send free text here
            _MASKED_SHORT[value] = masked
    return masked


def _excerpt(raw: bytes) -> str:
    raw = raw.rstrip(b"\r\n")   # a replayed line's own line break is not the message's
    try:
        # JSON that parses: drop every "text" value, whatever its type or key spelling.
        # Objects and arrays only; a bare string may be a complaint text itself.
        parsed = orjson.loads(raw) if raw[:1] in (b"{", b"[") else None
    except orjson.JSONDecodeError:
        parsed = None
    if parsed is not None:
        raw = orjson.dumps(_drop_text(parsed))
    # Masked before it is cut: a number cut by the excerpt's end (an ID after 15 digits,
    # "13812345678139…" of two mobiles typed back to back) is no longer found whole. So
    # the window reaches to the end of a number crossing the cut, is masked, then cut.
    end = _EXCERPT_BYTES
    while end < len(raw) and raw[end] & 0xC0 == 0x80:
        end += 1   # finish a character the cut fell into
    tail = raw[end:end + _MAX_NUMBER_RUN].decode("utf-8", errors="replace")
    end += len(tail[:len(tail) - len(tail.lstrip(_NUMBER_CHARS))].encode())
    window = _TEXT_FIELD.sub(rb'\1<complaint text omitted>\3', raw[:end])
    # Masked and blanked before the cut: a run of text cut in two is still a long run.
    text = _blank_free_text(mask_pii(window.decode("utf-8", errors="replace")))
    if len(raw) > _EXCERPT_BYTES:
        text = text.encode()[:_EXCERPT_BYTES].decode("utf-8", errors="ignore")
        if (i := text.rfind("<text ")) >= 0 and ">" not in text[i:]:
            text = text[:i]   # never leave half a placeholder
        text += "…"
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
        # msgspec's message quotes the bad value ("Invalid enum value '…' - at `$.status`",
        # "timestamp '…' is not RFC 3339"): masked and blanked like the excerpt.
        "detail": _blank_free_text(mask_pii(bad.detail)),
        # Id and type are the producer's strings: a mobile number typed as one is masked
        # here like in the excerpt (dead letters are read by people, never joined on).
        "event_id": None if bad.event_id is None
        else _blank_free_text(mask_pii(str(bad.event_id))),
        "event_type": None if bad.event_type is None
        else _blank_free_text(mask_short(bad.event_type)),
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
