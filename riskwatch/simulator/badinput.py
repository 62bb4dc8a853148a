"""Malformed lines of the kinds real producers send, made from real lines where possible.

Every kind fails :func:`riskwatch.events.decode_events` (the tests check each one), so
the number of malformed lines in a file equals its number of undecodable lines. Lines
stay valid UTF-8 (truncation cuts on a character boundary): a reader that decodes text
must not be the thing that crashes.

>>> import random
>>> from riskwatch.events import decode_events
>>> line = (b'{"type":"order_status","event_id":"ev-s-1-delivered",'
...         b'"ts":"2026-11-02T08:15:03+08:00","order_id":"o-1","status":"delivered"}')
>>> rng = random.Random(1)
>>> all(decode_events(malformed_line(rng, line, n, kind))[1] for n, kind in enumerate(KINDS))
True
"""

from __future__ import annotations

import random

import orjson

__all__ = ["KINDS", "malformed_line"]

KINDS: tuple[str, ...] = ("truncated", "missing_field", "wrong_type", "unknown_type",
                          "not_object", "empty_object", "csv_line")
_WEIGHTS = (25, 20, 25, 10, 8, 4, 8)

#: Required fields per event type (the contract's fields without defaults).
REQUIRED: dict[str, tuple[str, ...]] = {
    "order": ("event_id", "ts", "order_id", "merchant_id", "region", "carrier", "category",
              "amount"),
    "order_status": ("event_id", "ts", "order_id", "status"),
    "complaint": ("event_id", "ts", "complaint_id", "order_id", "merchant_id", "region",
                  "carrier", "channel", "text"),
    "complaint_update": ("event_id", "ts", "complaint_id"),
}
_NOT_OBJECTS = (b"[1,2]", b'"x"', b"42", b"null", b"true", b'[{"foo":1}]', b'"order"')
_UNKNOWN_TYPES = ("refund_request", "order_v2", "heartbeat", "Order", "complaint-update")


def _wrong_type(rng: random.Random, obj: dict) -> dict:
    """Break one field's type or range in a way a careless producer would."""
    etype = obj.get("type")
    choices = [
        ("ts", 1793578503 + rng.randint(0, 10**6)),   # epoch number, not a string
        ("ts", obj["ts"][:19]),                            # no offset: ambiguous local time
        ("ts", "昨天下午三点"),
        ("event_id", rng.randint(1, 10**9)),
        ("event_id", ""),
    ]
    if etype == "order":
        choices += [("amount", "九十九元"), ("amount", -round(rng.uniform(1, 500), 2)),
                    ("merchant_id", None), ("amount", None)]
    elif etype == "order_status":
        choices += [("status", rng.choice(("lost", "SHIPPED", "已签收"))), ("order_id", 12345)]
    elif etype == "complaint":
        choices += [("text", 404), ("channel", None), ("merchant_id", ["m0001"])]
    elif etype == "complaint_update":
        choices += [("csat", rng.choice((7, -1, "满意"))), ("intent", "快递太慢"),
                    ("status", "closed")]
    field, value = rng.choice(choices)
    obj[field] = value
    return obj


def malformed_line(rng: random.Random, line: bytes, number: int,
                   kind: str | None = None) -> bytes:
    """A malformed variant of ``line`` (a valid event line); ``kind`` is drawn if not given."""
    if kind is None:
        kind = rng.choices(KINDS, _WEIGHTS)[0]
    if kind == "truncated":
        text = line.decode()
        return text[:rng.randint(1, len(text) - 2)].encode()
    if kind == "not_object":
        return rng.choice(_NOT_OBJECTS)
    if kind == "empty_object":
        return b"{}"
    obj = orjson.loads(line)
    if kind == "csv_line":
        return ",".join(str(v) for v in obj.values() if v is not None).encode()
    obj["event_id"] = f"bad-{number}"   # never collide with a real event's id
    if kind == "missing_field":
        del obj[rng.choice(REQUIRED[obj["type"]])]
    elif kind == "unknown_type":
        obj["type"] = rng.choice(_UNKNOWN_TYPES)
    else:
        obj = _wrong_type(rng, obj)
    return orjson.dumps(obj)
