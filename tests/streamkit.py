"""Small deterministic event streams for pipeline tests (not the full simulator).

``steady_stream`` makes orders over a few regions/carriers/merchants with complaints at a
fixed rate and an exponential lag, plus an optional incident: extra complaints of one
intent in one region x carrier during a window. Lines are sorted by event time.
"""

from __future__ import annotations

import datetime as dt
import random

import orjson

TZ = dt.timezone(dt.timedelta(hours=8))
START = dt.datetime(2026, 11, 2, tzinfo=TZ)
TEXTS = {
    "delivery_delay": "快递好几天了还没到，物流一直不更新，到底什么时候送？",
    "quality": "收到的衣服质量太差了，线头很多还起球",
    "damaged": "包裹到的时候外箱破损，里面的杯子碎了",
    "lost_parcel": "物流显示已经签收但是我根本没收到，包裹丢了",
}


def iso(epoch: float) -> str:
    return dt.datetime.fromtimestamp(int(epoch), TZ).isoformat()


def steady_stream(*, days: float = 2.0, orders_per_day: int = 20_000, rate: float = 0.02,
                  incident: tuple[str, str, float, float, float] | None = None,
                  seed: int = 1) -> list[bytes]:
    """Lines of a steady market. ``incident`` = (region, carrier, start_h, end_h, extra_share):
    during [start_h, end_h) hours from START, that slice's orders each get an extra
    delivery_delay complaint with probability ``extra_share``, a few minutes later."""
    rng = random.Random(seed)
    t0 = START.timestamp()
    regions, carriers = ["广东", "浙江", "江苏", "北京"], ["中通", "顺丰", "圆通"]
    out: list[tuple[float, dict]] = []
    n = int(days * orders_per_day)
    for i in range(n):
        t = t0 + rng.random() * days * 86400
        r, c, m = rng.choice(regions), rng.choice(carriers), f"m{rng.randint(1, 60)}"
        out.append((t, {"type": "order", "event_id": f"o{i}", "ts": iso(t), "order_id": f"O{i}",
                        "merchant_id": m, "region": r, "carrier": c, "category": "服饰", "amount": 99}))
        if rng.random() < rate:
            tc = t + max(600.0, rng.expovariate(1 / 21600))
            intent = rng.choice(["delivery_delay", "quality", "damaged"])
            out.append((tc, _complaint(f"c{i}", tc, f"O{i}", m, r, c, TEXTS[intent])))
        if incident and incident[0] == r and incident[1] == c \
                and t0 + incident[2] * 3600 <= t < t0 + incident[3] * 3600 and rng.random() < incident[4]:
            tc = t + rng.uniform(60, 600)
            out.append((tc, _complaint(f"x{i}", tc, f"O{i}", m, r, c, TEXTS["delivery_delay"])))
        ts = t + rng.uniform(2, 30) * 3600
        out.append((ts, {"type": "order_status", "event_id": f"s{i}", "ts": iso(ts), "order_id": f"O{i}",
                         "status": "shipped"}))
    out.sort(key=lambda x: x[0])
    return [orjson.dumps(e) for _, e in out]


def _complaint(cid, t, oid, m, r, c, text) -> dict:
    return {"type": "complaint", "event_id": f"e-{cid}", "ts": iso(t), "complaint_id": cid,
            "order_id": oid, "merchant_id": m, "region": r, "carrier": c, "channel": "app",
            "text": text, "declared_type": None, "customer_tier": None}


def decode_event_by_event(monkeypatch) -> None:
    """Make ``Pipeline`` decode every message with ``decode_events``, one event at a time
    (the reference its fast paths are compared with): the single-object decoder always
    fails and no array counts as all-valid."""
    import msgspec

    import streams.pipeline as pipeline_module

    def never(raw: bytes):
        raise msgspec.DecodeError("forced event-by-event path")

    monkeypatch.setattr(pipeline_module, "_decode_event", never)
    monkeypatch.setattr(pipeline_module, "_valid_array", lambda raw: None)


def event_type(line: bytes) -> str:
    return orjson.loads(line)["type"]
