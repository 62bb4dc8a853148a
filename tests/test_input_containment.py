"""Any input, any mix: the pipeline never raises, accounts for every event it was given,
takes the same decisions on its fast paths as on the event-by-event decoder, and lets no
personal data through to a dead letter, a complaint record or an alert.

Hypothesis builds the messages: valid events of the four types, the same events with a
field dropped, of the wrong type or out of range, a timestamp without an offset or in
words, unknown types and extra fields, exact duplicates, JSON arrays mixing all of
these, nested arrays, scalars, truncated JSON and bytes that are not UTF-8 — with
mobile, ID and bank-card numbers in complaint texts and in the malformed bytes.
"""

from __future__ import annotations

import msgspec
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from riskwatch.settings import PipelineSettings
from streams.pipeline import Pipeline
from tests.streamkit import START, decode_event_by_event, iso

#: Full strings that must never come out unmasked (a checksum-valid ID number and a
#: Luhn-valid card, so the masker has no excuse; see tests/text/test_pii.py).
PII = ("13812345678", "138 1234 5678", "11010519491231002X", "6222021234567890128")

ids = st.sampled_from([f"e{i}" for i in range(40)])          # few ids: duplicates happen
orders = st.sampled_from([f"O{i}" for i in range(12)])
times = st.integers(0, 4 * 3600).map(lambda s: iso(START.timestamp() + s))   # several bucket closes
# Pieces joined by a comma, and now and then numbers typed back to back
# ("1381234567813912345678"): one digit run the masker must split into its numbers.
UNSPACED = (PII[0], PII[2], PII[3], "13912345678")
ORDER_NUMBER = "20261124123456789012"   # 20 digits: longer than any one number
# ... or a mobile or ID typed against an order number, on either side: a run that does
# not split into numbers, whose ends the masker checks.
against_order = st.tuples(st.sampled_from((PII[0], PII[2], "13912345678")), st.booleans()).map(
    lambda pair: pair[0] + ORDER_NUMBER if pair[1] else ORDER_NUMBER + pair[0])
glued_numbers = st.lists(st.sampled_from(UNSPACED), min_size=2, max_size=3).map("".join) | against_order
pii_text = st.lists(st.sampled_from(["包裹三天没到", "快递员态度很差", "申请退款",
                                     "电话", "身份证", "卡号", *PII]) | glued_numbers,
                    min_size=1, max_size=8).map("，".join)


@st.composite
def valid_event(draw) -> dict:
    kind = draw(st.sampled_from(["order", "order_status", "complaint", "complaint_update"]))
    event = {"type": kind, "event_id": draw(ids), "ts": draw(times)}
    if kind == "order":
        event.update(order_id=draw(orders), merchant_id=draw(st.sampled_from(["m1", "m2"])),
                     region=draw(st.sampled_from(["广东", "浙江"])), carrier="中通",
                     category="服饰", amount=draw(st.floats(0, 1e4)))
    elif kind == "order_status":
        event.update(order_id=draw(orders), status=draw(st.sampled_from(
            ["shipped", "in_transit", "delivered", "refunded", "returned", "exception"])))
    elif kind == "complaint":
        event.update(complaint_id=f"C{draw(ids)}", order_id=draw(st.none() | orders),
                     merchant_id="m1", region="广东", carrier=draw(st.none() | st.just("中通")),
                     channel="app", text=draw(pii_text),
                     declared_type=draw(st.none() | st.just("物流")))
    else:
        event.update(complaint_id=f"C{draw(ids)}",
                     intent=draw(st.none() | st.sampled_from(["refund", "damaged", "bogus"])),
                     status=draw(st.none() | st.sampled_from(["resolved", "reopened"])),
                     csat=draw(st.none() | st.floats(-1, 6)))
    return event


@st.composite
def event_or_damaged(draw) -> object:
    event = draw(valid_event())
    damage = draw(st.sampled_from(["none", "none", "drop", "wrong_type", "bad_ts", "type",
                                   "extra", "scalar", "nested"]))
    if damage == "drop":
        event.pop(draw(st.sampled_from(sorted(event))))
    elif damage == "wrong_type":
        event[draw(st.sampled_from(sorted(event)))] = draw(st.sampled_from([7, None, [], {}, True]))
    elif damage == "bad_ts":
        event["ts"] = draw(st.sampled_from(["2026-11-02 10:00", "昨天下午三点", "", "2026-13-02T10:00:00Z",
                                            "2026-11-02T10:00:00+25:00"]))
    elif damage == "type":
        event["type"] = draw(st.sampled_from(["order_v2", "", 3]))
    elif damage == "extra":
        event["note"] = draw(pii_text)
    elif damage == "scalar":
        return draw(st.sampled_from([42, "text " + PII[0], None, True]))
    elif damage == "nested":
        return [event]
    return event


@st.composite
def message(draw) -> bytes:
    shape = draw(st.sampled_from(["single", "single", "array", "array", "garbage"]))
    if shape == "single":
        return orjson.dumps(draw(event_or_damaged()))
    if shape == "array":
        return orjson.dumps(draw(st.lists(event_or_damaged(), max_size=6)))
    good = orjson.dumps(draw(valid_event()))
    return draw(st.sampled_from([
        good[: draw(st.integers(0, len(good) - 1))],                  # truncated
        b"\xff\xfe" + good,                                           # not UTF-8
        good.replace(b'":"', b'":"\xff', 1),                          # ... inside a string
        good.decode().encode("gbk", errors="replace"),                # a GBK export
        ("备注 " + PII[2] + " " + PII[3]).encode(),                    # not JSON, with PII
        b"  ", b"[", b"[]", b"{}", good + b"}",
    ]))


def _units(raw: bytes) -> int:
    """Events a message holds: an array's items, else one (a malformed whole counts once)."""
    try:
        return len(msgspec.json.decode(raw, type=list[msgspec.Raw]))
    except (msgspec.DecodeError, UnicodeDecodeError):
        return 1


def _run(messages: list[bytes], *, slow: bool = False) -> tuple[dict, dict]:
    p = Pipeline(PipelineSettings(allowed_lateness_seconds=120), keep_events=True,
                 keep_aggregates=True)
    with pytest.MonkeyPatch.context() as m:
        if slow:   # decode_events only: one event at a time, the reference decoder
            decode_event_by_event(m)
        for offset, raw in enumerate(messages):
            p.process(raw, source="orders", partition=0, offset=offset)
        p.flush()
    out = {kind: list(records) for kind, records in p.drain().items()}
    out["dead_letters"] = [{k: v for k, v in d.items() if k != "ts"} for d in out["dead_letters"]]
    return orjson.loads(orjson.dumps(out)), dict(p.counters)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(message(), min_size=1, max_size=25))
def test_every_event_is_accounted_for_and_nothing_leaks(messages):
    out, counters = _run(messages)
    assert counters["internal_errors"] == 0, out["dead_letters"]
    taken = sum(counters[k] for k in ("orders", "order_status", "complaints", "complaint_updates",
                                      "duplicates", "bad"))
    assert taken == sum(map(_units, messages)), counters          # none silently lost
    assert counters["bad"] == len(out["dead_letters"])              # each bad one has its letter
    assert counters["messages"] == len(messages)
    for kind in ("dead_letters", "complaints", "alerts"):
        text = orjson.dumps(out[kind]).decode()
        for secret in {*PII, *UNSPACED}:
            assert secret not in text, (kind, secret)
    # the fast paths (one msgspec call per message or array) decide as decode_events does
    slow_out, slow_counters = _run(messages, slow=True)
    assert (out, counters) == (slow_out, slow_counters)


def test_lines_that_are_not_utf8_are_dead_letters_on_both_paths():
    # A GBK export or a byte cut from a multi-byte character inside a string: msgspec
    # raises UnicodeDecodeError there, not DecodeError; replay crashed on it (2026-11-25).
    good = [orjson.dumps({"type": "order", "event_id": f"g{i}", "ts": iso(START.timestamp() + i),
                          "order_id": f"O{i}", "merchant_id": "m1", "region": "广东",
                          "carrier": "中通", "category": "服饰", "amount": 1.0}) for i in range(3)]
    complaint = {"type": "complaint", "event_id": "c1", "ts": iso(START.timestamp()),
                 "complaint_id": "C1", "order_id": "O1", "merchant_id": "m1", "region": "广东",
                 "channel": "app", "text": "电话" + PII[0] + "，收件人张伟"}
    bad = [b'{"type":"order","ts":"\xff"}',
           orjson.dumps(complaint).decode().encode("gbk"),
           b"[" + good[0] + b',{"type":"order","ts":"\xff"}]']
    lines = [good[0], bad[0], good[1], bad[1], good[2], bad[2]]
    replayed, live = Pipeline(), Pipeline()
    replayed.process_lines(lines, source="f")
    for offset, raw in enumerate(lines):
        live.process(raw, source="t", partition=0, offset=offset)
    for p in (replayed, live):
        letters = p.drain().dead_letters
        assert p.counters["orders"] == 3 and p.counters["internal_errors"] == 0
        assert [d["reason"] for d in letters] == ["malformed json"] * 3
        assert all("not UTF-8" in d["detail"] for d in letters)
        assert PII[0] not in orjson.dumps(letters).decode()
