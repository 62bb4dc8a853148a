"""Delivery tracking per cohort (lane x ship bucket): counts, learning, expiry, memory,
and the order-surge priors gathered in numpy (same floats as the scalar definition)."""

from __future__ import annotations

import pickle
import random

import numpy as np

from detectors.overdue import TransitQuantile
from streams.delivery import DeliveryTracker
from streams.signals import ShopSurgeScorer

DAY = 86400
LANE = ("广东", "中通")


def _tracker(**kw) -> DeliveryTracker:
    kw = {"bucket_seconds": 300, "min_deliveries": 0, "initial_transit": DAY,
          "horizon_seconds": 3 * DAY, "lane_memory_seconds": 5 * DAY, **kw}
    return DeliveryTracker(**kw)


def test_a_cohort_counts_due_and_overdue_learns_once_and_expires():
    t = _tracker()
    for i in range(5):
        t.lanes.current[f"o{i}"] = LANE
    t.lanes.current["o9"] = ("浙江", "中通")
    for i in range(5):
        t.on_status(0, 10 + i, f"o{i}", "shipped")
    t.on_status(0, 20, "o0", "shipped")      # shipped twice in one bucket: one parcel
    t.on_status(0, 30, "unknown", "shipped")  # no order event: not tracked
    assert t.close(0) == {}
    assert len(t.in_flight) == 5 and t.cohorts == 1
    t.on_status(300, 400, "o0", "shipped")    # re-shipped while in flight: ignored
    t.close(300)
    for i, at in enumerate((40_000, 50_000, 60_000)):   # three arrive well in time
        b = at - at % 300
        t.on_status(b, at, f"o{i}", "delivered")
        t.close(b)
    lane_tq = t.transit[LANE]
    assert lane_tq.n == 3 and lane_tq.value < DAY   # learned from the deliveries
    due = {}
    for b in range(60_300, DAY + 300, 300):
        due.update(t.close(b))
    # due at ship bucket midpoint (150) + one day: five due, two still on their way
    assert due == {LANE: [5, 2], (None, "中通"): [5, 2]}
    # past every estimate: the two late parcels answered "longer" once each
    assert lane_tq.n == 5
    late_at = DAY + 3600
    t.on_status(late_at - late_at % 300, late_at, "o3", "delivered")
    t.close(late_at - late_at % 300)
    assert lane_tq.n == 5                      # a parcel teaches once
    for b in range(late_at - late_at % 300 + 300, 4 * DAY, 300):
        t.close(b)
    assert t.expired == 1                      # o4 never came
    assert t.cohorts == 0


def test_statuses_within_a_bucket_in_any_order_give_the_same_state():
    rng = random.Random(3)
    lanes = [("广东", "中通"), ("浙江", "顺丰"), ("四川", "邮政")]
    book = []
    for n in range(3000):
        shipped = rng.randrange(2 * DAY)
        at = shipped + int(rng.uniform(0.8, 2.5) * DAY)
        book.append((f"o{n}", lanes[n % 3], shipped, at))

    def run(shuffle: bool):
        t = _tracker(min_deliveries=50, horizon_seconds=10 * DAY)
        per_bucket: dict[int, list] = {}
        for order, lane, shipped, at in book:
            t.lanes.current[order] = lane
            per_bucket.setdefault(shipped - shipped % 300, []).append((shipped, order, "shipped"))
            per_bucket.setdefault(at - at % 300, []).append((at, order, "delivered"))
        out = []
        for b in range(0, 5 * DAY, 300):
            statuses = per_bucket.get(b, [])
            if shuffle:
                rng.shuffle(statuses)
            for epoch, order, status in statuses:
                t.on_status(b, epoch, order, status)
            out.append(sorted(t.close(b).items(), key=repr))
        return out, {k: (tq.value, tq.n) for k, tq in t.transit.items()}

    assert run(False) == run(True)


def test_state_pickles_mid_stream_and_memory_is_cohorts_not_parcels():
    t = _tracker(horizon_seconds=10 * DAY)
    rng = random.Random(1)
    for n in range(2000):
        t.lanes.current[f"o{n}"] = LANE
        t.on_status(0, rng.randrange(300), f"o{n}", "shipped")
    t.close(0)
    assert t.cohorts == 1 and len(t.in_flight) == 2000
    copy = pickle.loads(pickle.dumps(t))
    for tracker in (t, copy):
        for n in range(1500):
            tracker.on_status(43200, 43200 + n, f"o{n}", "delivered")
        tracker.close(43200)
    assert len(t.in_flight) == len(copy.in_flight) == 500
    assert [t.close(DAY), copy.close(DAY)] == [{LANE: [2000, 500], (None, "中通"): [2000, 500]}] * 2
    assert t.transit[LANE].value == copy.transit[LANE].value


def test_observe_longer_is_observe_true_repeated():
    a, b = TransitQuantile(initial=3600.0), TransitQuantile(initial=3600.0)
    for _ in range(50):
        a.observe(False)
        b.observe(False)
    a.observe_longer(37)
    for _ in range(37):
        b.observe(True)
    assert (a.value, a.n) == (b.value, b.n)


def test_shop_priors_in_numpy_equal_the_scalar_definition():
    surge = ShopSurgeScorer(300)
    rng = random.Random(2)
    cats = ["服饰", "数码", "家居", "食品"]
    for bucket in range(200):
        combos = {}
        for _ in range(rng.randrange(0, 40)):
            shop = f"m{rng.randrange(60)}"
            key = ("广东", shop, "中通", cats[int(shop[1:]) % 4])
            combos[key] = combos.get(key, 0) + 1
        surge.close(bucket, combos, set(), learning=bucket < 20)
    rows = np.arange(len(surge))
    expected = [surge.prior_share(surge.category[r]) for r in rows.tolist()]
    assert surge._prior_shares(rows).tolist() == expected
