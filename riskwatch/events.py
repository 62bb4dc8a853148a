"""The event contract: the four input event types, decoded and validated from bytes.

One Kafka message (or one line of a ``.jsonl`` file) carries one event object, or a JSON
array of them. Decoding uses msgspec, which validates types in C (about 1.5 us per event);
unknown fields are ignored, a missing required field or a wrong type is bad input.

>>> events, errors = decode_events(
...     '{"type":"order","event_id":"e1","ts":"2026-11-11T20:00:00+08:00",'
...     '"order_id":"o1","merchant_id":"m1","region":"广东","carrier":"SF",'
...     '"category":"digital","amount":99.5}'.encode())
>>> events[0].order_id, events[0].epoch
('o1', 1794398400)
>>> decode_events(b'{"type":"order","event_id":"e2"}')[1]
[BadEvent(index=0, reason='missing field', detail='Object missing required field `ts`', event_id='e2', event_type='order')]
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Annotated, Literal, Union

import msgspec

__all__ = [
    "INTENTS",
    "ORDER_STATUSES",
    "BadEvent",
    "Complaint",
    "ComplaintUpdate",
    "Event",
    "Order",
    "OrderStatus",
    "decode_events",
    "epoch_of",
]

#: The complaint intent taxonomy of the contract (design.md).
INTENTS: tuple[str, ...] = (
    "delivery_delay", "pickup_urge", "lost_parcel", "damaged", "wrong_delivery",
    "fake_shipment", "quality", "weight_mismatch", "duplicate_charge", "refund",
    "service_attitude", "customs", "other",
)
ORDER_STATUSES: tuple[str, ...] = (
    "created", "shipped", "in_transit", "out_for_delivery", "delivered", "exception",
    "returned", "cancelled", "refunded",
)

# RFC 3339 with an offset is required: a naive timestamp is ambiguous across China/UTC.
# ``ts`` is kept as the string it arrived as and parsed by :func:`epoch_of`: the common
# shape "YYYY-MM-DDTHH:MM:SS+08:00" costs three dict lookups (offset -> minute -> epoch,
# plus the seconds), where parsing costs ~1.5 us here, a sixth of an event's budget.
# Other shapes (fractions, "Z") are cached whole. Both caches are filled only by the slow
# path, after a string passed the strict check below, so a hit is RFC 3339 too.
#
# The slow path checks RFC 3339 §5.6 itself: ``datetime.fromisoformat`` (3.11) takes ISO
# 8601 forms that are not RFC 3339 (no seconds, week dates, basic format, "+0800", "+08",
# comma fractions, "+08:00:00") and rejects a lowercase "z". "T"/"t" and "Z"/"z" are
# case-insensitive (§5.6 note); a space instead of "T" is only "by agreement" and not
# part of this contract. A leap second (:60, §5.7) is accepted and counted as :59 (whole
# seconds of event time; datetime cannot hold it, and no table of leap seconds is kept).
_RFC3339 = re.compile(r"\d{4}-\d\d-\d\d[Tt]\d\d:\d\d:\d\d(?:\.\d+)?(?:[Zz]|[+-]\d\d:\d\d)", re.ASCII)
# A local time without an offset (for the clearer message).
_NAIVE = re.compile(r"\d{4}-\d\d-\d\d[Tt ]\d\d:\d\d(?::\d\d(?:[.,]\d+)?)?", re.ASCII)
_EXPECTED = "expected YYYY-MM-DDTHH:MM:SS[.fraction] then Z or ±HH:MM, e.g. 2026-11-02T10:26:17+08:00"
_UNIX_DAY_ONE = dt.date(1970, 1, 1).toordinal()
_DAYS: dict[str, int] = {}   # "YYYY-MM-DD" -> days since 1970-01-01 (checked dates only)
Timestamp = Annotated[str, msgspec.Meta(min_length=1, max_length=40)]
_EPOCH_CACHE: dict[str, int] = {}
_MINUTE_CACHE: dict[str, dict[str, int]] = {}   # offset "+08:00" -> "YYYY-MM-DDTHH:MM" -> epoch
_SECONDS = {f"{n:02d}": n for n in range(60)}
_EPOCH_CACHE_SIZE = 100_000


def epoch_of(ts: str) -> int:
    """Whole UNIX seconds of an RFC 3339 timestamp with offset; ``ValueError`` if invalid.

    >>> epoch_of("2026-11-11T20:00:05+08:00"), epoch_of("2026-11-11T12:00:05Z")
    (1794398405, 1794398405)
    >>> epoch_of("2026-11-11T20:00:59+08:00") - epoch_of("2026-11-11T20:00:05+08:00")
    54
    >>> epoch_of("2026-11-11T20:00:05")
    Traceback (most recent call last):
    ...
    ValueError: timestamp '2026-11-11T20:00:05' has no UTC offset (RFC 3339 needs one)
    >>> epoch_of("2026-11-11T20:00+08:00")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: timestamp '2026-11-11T20:00+08:00' is not RFC 3339 (expected YYYY-MM-DDTHH:MM:SS...)
    >>> epoch_of("2026-11-11t12:00:05.25z")   # both letters are case-insensitive
    1794398405
    """
    minutes = _MINUTE_CACHE.get(ts[19:])
    if minutes is not None and len(ts) == 25 and ts[16] == ":":
        base = minutes.get(ts[:16])
        if base is not None:
            second = _SECONDS.get(ts[17:19])
            if second is not None:
                return base + second
    epoch = _EPOCH_CACHE.get(ts)
    if epoch is not None:
        return epoch
    if _RFC3339.fullmatch(ts) is None:
        if _NAIVE.fullmatch(ts):
            raise ValueError(f"timestamp {ts!r} has no UTC offset (RFC 3339 needs one)")
        raise ValueError(f"timestamp {ts!r} is not RFC 3339 ({_EXPECTED})")
    # The pattern fixes the positions of the date and time fields and the offset's.
    hour, minute, second = int(ts[11:13]), int(ts[14:16]), int(ts[17:19])
    zulu = ts[-1] in "Zz"
    offset = 0
    if not zulu:
        off_h, off_m = int(ts[-5:-3]), int(ts[-2:])
        if off_h > 23 or off_m > 59:
            raise ValueError(f"timestamp {ts!r} is not RFC 3339: offset out of range ({_EXPECTED})")
        offset = (off_h * 60 + off_m) * 60 if ts[-6] == "+" else -(off_h * 60 + off_m) * 60
    if hour > 23 or minute > 59 or second > 60:
        raise ValueError(f"timestamp {ts!r} is not RFC 3339: time out of range ({_EXPECTED})")
    days = _DAYS.get(ts[:10])
    if days is None:
        try:
            days = dt.date(int(ts[:4]), int(ts[5:7]), int(ts[8:10])).toordinal() - _UNIX_DAY_ONE
        except ValueError:
            raise ValueError(f"timestamp {ts!r} is not RFC 3339: no such date ({_EXPECTED})") from None
        _remember(_DAYS, ts[:10], days)
    if second == 60:
        second = 59   # a leap second counts as the second before it (see above)
    epoch = days * 86400 + hour * 3600 + minute * 60 + second - offset
    if len(ts) == 25 and ts[10] == "T" and not zulu and ts[17:19] in _SECONDS:
        minutes = _MINUTE_CACHE.setdefault(ts[19:], {})
        if len(minutes) >= _EPOCH_CACHE_SIZE:
            minutes.clear()  # crude but O(1) amortised; event time moves forward anyway
        minutes[ts[:16]] = epoch - second
        return epoch
    return _remember(_EPOCH_CACHE, ts, epoch)


def _remember(cache: dict[str, int], key: str, epoch: int) -> int:
    if len(cache) >= _EPOCH_CACHE_SIZE:
        cache.clear()  # crude but O(1) amortised; event time moves forward anyway
    cache[key] = epoch
    return epoch
NonEmpty = Annotated[str, msgspec.Meta(min_length=1, max_length=256)]
Intent = Literal[
    "delivery_delay", "pickup_urge", "lost_parcel", "damaged", "wrong_delivery",
    "fake_shipment", "quality", "weight_mismatch", "duplicate_charge", "refund",
    "service_attitude", "customs", "other",
]
Status = Literal[
    "created", "shipped", "in_transit", "out_for_delivery", "delivered", "exception",
    "returned", "cancelled", "refunded",
]


# gc=False: events hold only strings and numbers, so they can never be part of a
# reference cycle; untracked, a million of them do not trigger the cyclic collector
# (decoding costs ~25 % less in replay).
class _Base(msgspec.Struct, frozen=True, tag_field="type", gc=False):
    event_id: NonEmpty
    ts: Timestamp

    @property
    def epoch(self) -> int:
        """Event time as whole UNIX seconds (what buckets and watermarks use)."""
        return epoch_of(self.ts)


class Order(_Base, tag="order", frozen=True):
    order_id: NonEmpty
    merchant_id: NonEmpty
    region: NonEmpty
    carrier: NonEmpty
    category: NonEmpty
    amount: Annotated[float, msgspec.Meta(ge=0)]


class OrderStatus(_Base, tag="order_status", frozen=True):
    order_id: NonEmpty
    status: Status


class Complaint(_Base, tag="complaint", frozen=True):
    complaint_id: NonEmpty
    order_id: Union[NonEmpty, None]
    merchant_id: NonEmpty
    region: NonEmpty
    carrier: Union[NonEmpty, None]
    channel: NonEmpty
    text: Annotated[str, msgspec.Meta(max_length=20000)]
    declared_type: Union[str, None] = None
    customer_tier: Union[str, None] = None


class ComplaintUpdate(_Base, tag="complaint_update", frozen=True):
    complaint_id: NonEmpty
    intent: Union[Intent, None] = None
    status: Union[Literal["resolved", "escalated", "reopened"], None] = None
    csat: Union[Annotated[float, msgspec.Meta(ge=0, le=5)], None] = None


Event = Union[Order, OrderStatus, Complaint, ComplaintUpdate]


class BadEvent(msgspec.Struct, frozen=True):
    """Why one event (or one whole message) could not be decoded.

    ``index`` is the event's position inside a JSON array (0 for a single object);
    ``event_id``/``event_type`` are filled when they could still be read, so a dead
    letter can be traced without carrying the raw text.
    """

    index: int
    reason: str
    detail: str
    event_id: Union[str, None] = None
    event_type: Union[str, None] = None


_event_decoder = msgspec.json.Decoder(Event)
_raw_list_decoder = msgspec.json.Decoder(list[msgspec.Raw])
_peek_decoder = msgspec.json.Decoder(dict)


def _classify(detail: str) -> str:
    # Short machine-readable reasons; the full msgspec message goes in ``detail``.
    if "missing required field" in detail:
        return "missing field"
    if "Invalid value" in detail and "$.type" in detail:
        return "unknown event type"
    if "Expected `object`" in detail:
        return "not an object"
    if "malformed" in detail or "truncated" in detail:
        return "malformed json"
    return "invalid field"


def _peek_ids(raw: bytes) -> tuple[str | None, str | None]:
    try:
        obj = _peek_decoder.decode(raw)
    except msgspec.DecodeError:  # includes ValidationError
        return None, None
    event_id, event_type = obj.get("event_id"), obj.get("type")
    return (
        event_id if isinstance(event_id, str) else None,
        event_type if isinstance(event_type, str) else None,
    )


def _not_utf8(exc: UnicodeDecodeError) -> str:
    """The detail of a line that is not UTF-8 (a GBK export, a cut multi-byte character).
    Not the bytes (they may be a piece of a complaint), nor msgspec's offset (it counts
    from the start of the string holding them, not of the line)."""
    return f"JSON is malformed: a string is not UTF-8 ({exc.reason})"


def _decode_one(raw: bytes, index: int) -> Event | BadEvent:
    try:
        event = _event_decoder.decode(raw)
    except msgspec.ValidationError as exc:  # (a subclass of DecodeError: catch it first)
        detail = str(exc)
        if "missing required field `type`" in detail:
            detail = "Object missing required field `type`"
        event_id, event_type = _peek_ids(raw)
        return BadEvent(index, _classify(detail), detail, event_id, event_type)
    except msgspec.DecodeError as exc:
        return BadEvent(index, "malformed json", str(exc))
    except UnicodeDecodeError as exc:   # msgspec checks UTF-8 only inside strings
        return BadEvent(index, "malformed json", _not_utf8(exc))
    try:
        epoch_of(event.ts)
    except ValueError as exc:
        return BadEvent(index, "invalid field", f"{exc} - at `$.ts`", event.event_id,
                        type(event).__struct_config__.tag)
    return event


def decode_events(raw: bytes) -> tuple[list[Event], list[BadEvent]]:
    """Decode one message or line: a single event object or a JSON array of them.

    Never raises on bad input: every event that fails validation becomes a
    :class:`BadEvent`, and the good events of the same array are still returned.
    """
    start = raw.lstrip()[:1]
    if start == b"[":
        try:
            items = _raw_list_decoder.decode(raw)
        except msgspec.DecodeError as exc:  # includes ValidationError
            return [], [BadEvent(0, "malformed json", str(exc))]
        except UnicodeDecodeError as exc:
            return [], [BadEvent(0, "malformed json", _not_utf8(exc))]
        events: list[Event] = []
        bad: list[BadEvent] = []
        for i, item in enumerate(items):
            decoded = _decode_one(bytes(item), i)
            (bad if isinstance(decoded, BadEvent) else events).append(decoded)
        return events, bad
    if not start:
        return [], [BadEvent(0, "empty message", "no JSON value")]
    decoded = _decode_one(raw, 0)
    if isinstance(decoded, BadEvent):
        return [], [decoded]
    return [decoded], []

