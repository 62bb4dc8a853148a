"""Order surges: the numpy bank equals the detector; the alert stage pages new/small shops
only, never a promotion night; the simulator's surge incidents leave other events alone."""

from __future__ import annotations

import datetime as dt
import random

import orjson

import numpy as np
import pytest

from detectors.order_surge import RUN_BUCKETS, OrderSurgeBank, OrderSurgeDetector
from riskwatch.calendar import Calendar
from riskwatch.settings import PipelineSettings
from riskwatch.simulator import SimulationConfig, generate, manifest
from streams.signals import SignalStage


def test_bank_row_equals_detector():
    rng = random.Random(3)
    det = OrderSurgeDetector()
    bank = OrderSurgeBank()
    row = bank.add(1, prior_share=det.prior_share)
    for i in range(3000):
        market = rng.uniform(50, 400)
        y = float(sum(rng.random() < market * 0.004 / 10 for _ in range(10)))
        if 1500 <= i < 1520:
            y += 15.0   # a surge: protected from the baseline while alarmed
        buckets = 1.0 if i % 7 else 3.0
        prior = 0.002 if i % 11 else 0.003
        x = {"market": market, "prior_share": prior, "buckets": buckets}
        expected_score = det.score_one(x, y)
        protect = max(det._next(x, y)[:2]) >= det.threshold
        det.learn_one(x, y, protect=protect)
        step = bank.step(row, market=np.array([market]), prior=np.array([prior]),
                         y=np.array([y]), buckets=buckets, protect_at=np.array([det.threshold]))
        assert step.evidence[0] == pytest.approx(det.evidence, rel=1e-9, abs=1e-9)
        assert 1 - np.exp(-step.evidence[0]) == pytest.approx(expected_score, abs=1e-9)
    assert bank.share(row)[0] == pytest.approx(det.share, rel=1e-9)
    assert bank.column(RUN_BUCKETS, row)[0] == det.run_buckets


def _combos(shops: dict[str, int], category: str = "服饰") -> dict[tuple, int]:
    return {("广东", shop, "中通", category): n for shop, n in shops.items() if n}


def _run(stage: SignalStage, buckets: range, shops_at, calendar=Calendar()) -> list[dict]:
    alerts = []
    for b in buckets:
        alerts += stage.close(b * 300, _combos(shops_at(b)), calendar)
    return alerts


def _market(rng: random.Random, b: int, lift: float = 1.0) -> dict[str, int]:
    """40 shops, Poisson-ish orders; shop s0 is big (20 % of the market)."""
    hour = (b // 12) % 24
    level = (0.3 if hour < 7 else 1.0) * lift
    out = {}
    for s in range(40):
        rate = (6.0 if s == 0 else 0.4) * level
        out[f"s{s}"] = np.random.default_rng(rng.randrange(1 << 30)).poisson(rate)
    return out


def test_new_shop_surge_pages_big_shop_sale_and_promotion_do_not():
    settings = PipelineSettings()
    stage = SignalStage(settings, warmup_buckets=288, quiet_buckets=6)
    rng = random.Random(1)
    day = 288
    # Day 1 learns; day 2: a promotion evening (everyone x4), the big shop's own sale
    # (x3 for two hours), a new shop opening at 10:00 that sells like its peers.
    def day2(b: int) -> dict[str, int]:
        t = b - day
        lift = 4.0 if 19 * 12 <= t < 23 * 12 else 1.0
        shops = _market(rng, b, lift)
        if 14 * 12 <= t < 16 * 12:
            shops["s0"] = int(shops["s0"] * 3)
        if t >= 10 * 12:
            shops["new1"] = np.random.default_rng(b).poisson(0.4)
        return shops
    assert _run(stage, range(0, day), lambda b: _market(rng, b)) == []
    assert _run(stage, range(day, 2 * day), day2) == []
    # Day 3, 03:00: the new shop's orders go from ~0.1 to 4 a bucket (brushing).
    def day3(b: int) -> dict[str, int]:
        shops = _market(rng, b)
        t = b - 2 * day
        shops["new1"] = 4 if 36 <= t < 60 else np.random.default_rng(b).poisson(0.1)
        return shops
    alerts = _run(stage, range(2 * day, 3 * day), day3)
    fired = [a for a in alerts if a["status"] == "firing"]
    assert fired and {a["dimensions"]["merchant_id"] for a in fired} == {"new1"}
    first = fired[0]
    assert first["metric"] == "order_surge"
    assert orjson.loads(orjson.dumps(alerts)) == alerts   # plain JSON for every sink
    # Paged within 20 minutes of the first fake orders (bucket 36 of day 3).
    raised = dt.datetime.fromisoformat(first["ts"]).timestamp()
    assert (2 * day + 36) * 300 < raised <= (2 * day + 36 + 4) * 300
    assert first["observed"] > 5 * first["expected"]
    assert any(a["status"] == "resolved" for a in alerts)


def test_simulated_surges_leave_the_other_events_unchanged():
    base = SimulationConfig(days=3, orders_per_day=4000, merchants=300, incidents=2,
                            surge_incidents=0, malformed_share=0.01, duplicate_share=0.01)
    with_surge = SimulationConfig(days=3, orders_per_day=4000, merchants=300, incidents=2,
                                  surge_incidents=1, malformed_share=0.01, duplicate_share=0.01)
    plain = [line for _, line in generate(base)]
    mixed = [line for _, line in generate(with_surge)]
    extra = [line for line in mixed if b'"ev-ob-' in line]
    assert [line for line in mixed if b'"ev-ob-' not in line] == plain
    truth = manifest(with_surge)["incidents"]
    surge = [i for i in truth if i["kind"] == "new_shop_order_surge"]
    assert len(surge) == 1 and surge[0]["metrics"] == ["order_surge"]
    assert len(extra) == surge[0]["expected_extra_orders"] >= 15
    assert all(surge[0]["dimensions"]["merchant_id"].encode() in line for line in extra)
    assert all(i["metrics"] for i in truth)
