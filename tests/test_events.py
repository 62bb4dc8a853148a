"""The event contract: decoding, validation reasons, arrays, unknown fields."""

from __future__ import annotations

import orjson
import pytest

from riskwatch.events import Complaint, ComplaintUpdate, Order, OrderStatus, decode_events, epoch_of

ORDER = {"type": "order", "event_id": "e1", "ts": "2026-11-11T20:00:00+08:00", "order_id": "o1",
         "merchant_id": "m1", "region": "广东", "carrier": "中通", "category": "服饰", "amount": 59.9}
STATUS = {"type": "order_status", "event_id": "e2", "ts": "2026-11-12T08:00:00+08:00",
          "order_id": "o1", "status": "delivered"}
COMPLAINT = {"type": "complaint", "event_id": "e3", "ts": "2026-11-12T09:00:00+08:00",
             "complaint_id": "c1", "order_id": None, "merchant_id": "m1", "region": "广东",
             "carrier": None, "channel": "app", "text": "快递三天没动了", "declared_type": None,
             "customer_tier": None}
UPDATE = {"type": "complaint_update", "event_id": "e4", "ts": "2026-11-12T10:00:00+08:00",
          "complaint_id": "c1", "intent": "delivery_delay", "status": None, "csat": None}


def enc(obj) -> bytes:
    return orjson.dumps(obj)


@pytest.mark.parametrize("obj, cls", [(ORDER, Order), (STATUS, OrderStatus), (COMPLAINT, Complaint),
                                      (UPDATE, ComplaintUpdate)])
def test_every_contract_type_decodes(obj, cls):
    events, bad = decode_events(enc(obj))
    assert bad == [] and len(events) == 1 and type(events[0]) is cls
    assert events[0].event_id == obj["event_id"]


def test_unknown_fields_are_ignored_and_z_offset_accepted():
    events, bad = decode_events(enc({**ORDER, "ts": "2026-11-11T12:00:00Z", "coupon": "X1"}))
    assert bad == [] and events[0].epoch == epoch_of("2026-11-11T20:00:00+08:00")


def test_array_message_keeps_good_events_and_reports_each_bad_one():
    events, bad = decode_events(enc([ORDER, {"type": "order"}, STATUS, {**STATUS, "status": "lost"}]))
    assert [e.event_id for e in events] == ["e1", "e2"]
    assert [(b.index, b.reason) for b in bad] == [(1, "missing field"), (3, "invalid field")]
    assert "status" in bad[1].detail and bad[1].event_id == "e2"


@pytest.mark.parametrize("raw, reason", [
    (b'{"type":"order","event_id":"e1"', "malformed json"),
    (b"", "empty message"),
    (b"[1,2]", "not an object"),
    (b'"x"', "not an object"),
    (b'{}', "missing field"),
    (b'{"type":"refund_request","event_id":"x"}', "unknown event type"),
])
def test_bad_input_gets_a_clear_reason(raw, reason):
    events, bad = decode_events(raw)
    assert events == [] and bad[0].reason == reason and bad[0].detail


def test_wrong_type_names_the_field():
    _, bad = decode_events(enc({**ORDER, "amount": "lots"}))
    assert bad[0].reason == "invalid field" and "$.amount" in bad[0].detail


def test_timestamp_without_offset_is_rejected():
    _, bad = decode_events(enc({**ORDER, "ts": "2026-11-11T20:00:00"}))
    assert bad[0].reason == "invalid field" and "offset" in bad[0].detail
    assert bad[0].event_id == "e1" and bad[0].event_type == "order"


def test_garbage_timestamp_is_rejected():
    _, bad = decode_events(enc({**ORDER, "ts": "not a time at all, honestly"}))
    assert bad[0].reason == "invalid field" and "$.ts" in bad[0].detail


def test_negative_amount_and_empty_ids_are_invalid():
    assert decode_events(enc({**ORDER, "amount": -1}))[1][0].reason == "invalid field"
    assert decode_events(enc({**ORDER, "order_id": ""}))[1][0].reason == "invalid field"
