"""Repeat complaints about one order count once in a slice's complaint rate.

A customer writing four times about one parcel is one problem, not a spike: within
``REPEAT_WINDOW_SECONDS`` of an order's counted complaint in a slice, its further
complaints are recorded (complaints table, ticket history) but not counted again.
"""

from __future__ import annotations

import orjson

from streams.pipeline import REPEAT_WINDOW_SECONDS, Pipeline
from tests.streamkit import START, TEXTS, _complaint, iso
from tests.test_pipeline import run

T0 = START.timestamp()


def _order(oid: str, t: float) -> bytes:
    return orjson.dumps({"type": "order", "event_id": f"e-{oid}", "ts": iso(t), "order_id": oid,
                         "merchant_id": "m1", "region": "广东", "carrier": "中通",
                         "category": "服饰", "amount": 99})


def _complaints_about(orders_and_minutes: list[tuple[str, float]],
                      text: str = TEXTS["damaged"]) -> list[bytes]:
    return [orjson.dumps(_complaint(f"c{n}", T0 + minute * 60, oid, "m1", "广东", "中通", text))
            for n, (oid, minute) in enumerate(orders_and_minutes)]


def _counted(out, slice_name: str = "all") -> int:
    return sum(r["complaints"] for r in out.aggregates if r["slice"] == slice_name)


def test_repeat_complaints_about_one_order_count_once():
    lines = [_order("O1", T0), _order("O2", T0)] + _complaints_about(
        [("O1", 10), ("O1", 12), ("O1", 14), ("O1", 95)])   # 95: a later bucket, same day
    _, out = run(lines, keep_aggregates=True)
    assert {c["complaint_id"] for c in out.complaints} == {"c0", "c1", "c2", "c3"}
    assert _counted(out) == 1
    assert _counted(out, "merchant_id=m1") == 1
    assert _counted(out, "region=广东|carrier=中通") == 1


def test_complaints_about_two_orders_count_twice():
    lines = [_order("O1", T0), _order("O2", T0)] + _complaints_about(
        [("O1", 10), ("O2", 12), ("O1", 14), ("O2", 16)])
    _, out = run(lines, keep_aggregates=True)
    assert _counted(out) == 2
    assert _counted(out, "merchant_id=m1") == 2


def test_a_repeat_after_the_window_counts_again():
    later = 10 + REPEAT_WINDOW_SECONDS / 60
    lines = [_order("O1", T0)] + _complaints_about([("O1", 10), ("O1", later - 5), ("O1", later)])
    _, out = run(lines, keep_aggregates=True)
    assert _counted(out) == 2   # the first, and the one a full window after it


def test_complaints_without_an_order_each_count():
    lines = [orjson.dumps({**_complaint(f"n{k}", T0 + 600 + k, None, "m1", "广东", "中通",
                                        TEXTS["quality"])}) for k in range(3)]
    _, out = run(lines, keep_aggregates=True)
    assert _counted(out) == 3


def test_a_repeat_with_another_intent_counts_only_in_that_intents_slices():
    lines = [_order("O1", T0)] + _complaints_about([("O1", 10)], TEXTS["damaged"]) \
        + [orjson.dumps(_complaint("q1", T0 + 12 * 60, "O1", "m1", "广东", "中通", TEXTS["quality"]))]
    p, out = run(lines, keep_aggregates=True)
    intents = {c["complaint_id"]: c["intent"] for c in out.complaints if "intent" in c}
    assert _counted(out) == 1
    if intents.get("c0") != intents.get("q1"):   # the classifier told them apart
        assert _counted(out, f"intent={intents['q1']}") == 1


def test_counted_orders_memory_is_bounded():
    p = Pipeline()
    lines = []
    for i in range(60):   # one order and one complaint an hour for 60 hours
        lines += [_order(f"O{i}", T0 + i * 3600)] + [orjson.dumps(_complaint(
            f"c{i}", T0 + i * 3600 + 600, f"O{i}", "m1", "广东", "中通", TEXTS["damaged"]))]
    run(lines, pipeline=p)
    m = p._counted_orders
    kept = len(m.current) + len(m.previous)
    assert 0 < kept <= 2 * REPEAT_WINDOW_SECONDS // 3600   # older than two windows: forgotten


def test_repeats_do_not_shift_the_intent_mix():
    lines = [_order("O1", T0), _order("O2", T0)] + _complaints_about(
        [("O1", 10), ("O1", 11), ("O1", 12), ("O2", 13)])
    _, out = run(lines, keep_aggregates=True)
    mix: dict[str, int] = {}
    for r in out.aggregates:
        if r["slice"] == "merchant_id=m1":
            for intent, n in r["intents"].items():
                mix[intent] = mix.get(intent, 0) + n
    assert sum(mix.values()) == 2   # one per order, as the count
