"""A ticket's final state is its history in event time, whatever order the topics are read.

The live worker reads orders, order-status, complaints and complaint-updates as four
topics at their own pace; replay reads a file in time order. Whether the agent's
"resolved" (10:00) or the parcel's pickup (11:00) is *read* first must not decide whether
the ticket counts as auto-resolved (it did: 18 of 686 tickets of the live-vs-replay
fixture ended differently).
"""

from __future__ import annotations

import itertools

import orjson
import pytest

from streams.pipeline import Pipeline
from tests.streamkit import START, iso

T0 = START.timestamp()
H = 3600


def _order(oid: str, t: float) -> dict:
    return {"type": "order", "event_id": f"o-{oid}", "ts": iso(t), "order_id": oid,
            "merchant_id": "m1", "region": "广东", "carrier": "中通", "category": "服饰",
            "amount": 10}


def _complaint(cid: str, oid: str, t: float, text: str) -> dict:
    return {"type": "complaint", "event_id": f"c-{cid}", "ts": iso(t), "complaint_id": cid,
            "order_id": oid, "merchant_id": "m1", "region": "广东", "carrier": "中通",
            "channel": "app", "text": text}


def _update(cid: str, t: float, **fields) -> dict:
    return {"type": "complaint_update", "event_id": f"u-{cid}-{t}", "ts": iso(t),
            "complaint_id": cid, **fields}


def _status(oid: str, t: float, status: str) -> dict:
    return {"type": "order_status", "event_id": f"s-{oid}-{status}-{t}", "ts": iso(t),
            "order_id": oid, "status": status}


def _final(events: list[dict]) -> dict[str, dict]:
    """Each ticket's latest record after reading ``events`` in the given order."""
    later = [_order(f"late{i}", T0 + 6 * H + i * 600) for i in range(6)]   # closes the buckets
    p = Pipeline()
    p.process_lines([orjson.dumps(e) for e in [*events, *later]], source="events")
    p.flush()
    latest: dict[str, dict] = {}
    for r in p.out.complaints:
        if r["complaint_id"] not in latest or r["version"] > latest[r["complaint_id"]]["version"]:
            latest[r["complaint_id"]] = r
    return latest


PICKUP_TEXT = "约了上门取件，快递员一直没来取件，催一下"
DELAY_TEXT = "快递好几天了还没送到，物流信息一直不更新，到底什么时候能到"


@pytest.mark.parametrize("name,events,expected", [
    ("an agent resolved it before the pickup",
     [_order("O1", T0), _complaint("c1", "O1", T0 + 0.5 * H, PICKUP_TEXT),
      _update("c1", T0 + 1 * H, status="resolved"), _status("O1", T0 + 2 * H, "shipped")],
     {"status": "resolved", "auto_resolved": False}),
    ("the pickup came before the agent's resolution",
     [_order("O1", T0), _complaint("c1", "O1", T0 + 0.5 * H, PICKUP_TEXT),
      _status("O1", T0 + 1 * H, "shipped"), _update("c1", T0 + 2 * H, status="resolved")],
     {"status": "resolved", "auto_resolved": True}),
    ("an agent reopened it before the pickup",
     [_order("O1", T0), _complaint("c1", "O1", T0 + 0.5 * H, PICKUP_TEXT),
      _update("c1", T0 + 1 * H, status="reopened"), _status("O1", T0 + 2 * H, "shipped")],
     {"status": "auto_resolved", "auto_resolved": True}),
    ("an agent corrected the intent after the pickup",
     [_order("O1", T0), _complaint("c1", "O1", T0 + 0.5 * H, "衣服质量很差，线头很多"),
      _status("O1", T0 + 1 * H, "shipped"), _update("c1", T0 + 2 * H, intent="pickup_urge")],
     {"status": "auto_resolved", "auto_resolved": True, "intent": "pickup_urge"}),
    ("an agent corrected the intent away before the pickup",
     [_order("O1", T0), _complaint("c1", "O1", T0 + 0.5 * H, PICKUP_TEXT),
      _update("c1", T0 + 1 * H, intent="quality"), _status("O1", T0 + 2 * H, "shipped")],
     {"status": "open", "auto_resolved": False, "intent": "quality"}),
    # Two statuses of one order read against their event time: the ticket was moot at
    # the earlier one, however late that one is read.
    ("the earlier of two pickup statuses read last",
     [_order("O1", T0), _complaint("c1", "O1", T0 + 0.5 * H, PICKUP_TEXT),
      _status("O1", T0 + 1 * H, "in_transit"), _status("O1", T0 + 2 * H, "shipped")],
     {"status": "auto_resolved", "auto_resolved": True, "auto_resolved_at": iso(T0 + 1 * H)}),
    # The first delivery decides (the customer complained after it: it never arrived),
    # also when a second "delivered" after the complaint is read first.
    ("a delivery before the complaint read after one after it",
     [_order("O1", T0), _complaint("c1", "O1", T0 + 1.5 * H, DELAY_TEXT),
      _status("O1", T0 + 1 * H, "delivered"), _status("O1", T0 + 2 * H, "delivered")],
     {"status": "open", "auto_resolved": False, "intent": "delivery_delay"}),
])
def test_every_reading_order_ends_in_the_state_of_event_time(name, events, expected):
    order, complaint, *rest = events
    finals = []
    for arrival in itertools.permutations(rest):   # the topics read in any order
        finals.append(_final([order, complaint, *arrival]))
    in_time = _final(events)
    assert {k: in_time["c1"][k] for k in expected} == expected, name
    for final in finals:
        assert {k: v for k, v in final["c1"].items() if k != "version"} == \
               {k: v for k, v in in_time["c1"].items() if k != "version"}, name
