"""DeliveryTracker's batched close (setdefault for new parcels, due buckets inlined, the
market's estimate learning after the loop) against the tracker's rules applied order by
order: the same due counts in the same key order, the same estimates bit for bit."""

from __future__ import annotations

import random

import pytest

from detectors.overdue import TransitQuantile
from streams.delivery import DeliveryTracker
from streams.ingest import GenerationalMap

DAY = 86400
LANES = [("广东", "中通"), ("浙江", "中通"), ("广东", "顺丰"), ("四川", "邮政"), ("北京", "韵达")]


class _PlainCohort:
    def __init__(self, lane, shipped_at, shipped, counted):
        self.lane, self.shipped_at, self.shipped, self.counted = lane, shipped_at, shipped, counted
        self.delivered, self.learned, self.gone = 0, False, False


class PlainTracker:
    """The rules of :class:`DeliveryTracker` status by status and cohort by cohort,
    with :meth:`TransitQuantile.observe` and ``max``: the obvious, slow way."""

    def __init__(self, bucket_seconds, *, horizon_seconds, lane_memory_seconds,
                 min_deliveries, initial_transit, quantile=0.9):
        self.bs, self.horizon, self.least = bucket_seconds, horizon_seconds, min_deliveries
        self.initial, self.quantile = initial_transit, quantile
        self.lanes = GenerationalMap(lane_memory_seconds)
        self.in_flight = GenerationalMap(horizon_seconds)
        self.statuses, self.due_at, self.check_at, self.expire_at = {}, {}, {}, {}
        self.transit, self.expired, self.closing = {}, 0, None

    def chain(self, lane):
        out = []
        for key in (None, (None, lane[1]), lane):
            if key not in self.transit:
                start = out[-1].value if out else self.initial
                self.transit[key] = TransitQuantile(self.quantile, initial=start)
            out.append(self.transit[key])
        return out

    def at(self, table, epoch):
        bstart = max(epoch - epoch % self.bs, self.closing + self.bs)
        return table.setdefault(bstart, [])

    def close(self, bstart):
        self.closing = bstart
        statuses = self.statuses.pop(bstart, [])
        shipped_at = bstart + self.bs // 2
        parcels = {}   # order -> lane, once per order
        for _, order, status in statuses:
            lane = self.lanes.get(order)
            if (status == "shipped" and lane is not None and order not in self.in_flight.current
                    and order not in self.in_flight.previous):
                parcels[order] = lane
        fresh = {}
        for lane in sorted(set(parcels.values())):
            market, carrier, own = self.chain(lane)
            counted = own.n >= self.least
            transit = next((tq.value for tq in (own, carrier, market) if tq.n >= self.least),
                           self.initial)
            shipped = sum(1 for other in parcels.values() if other == lane)
            cohort = fresh[lane] = _PlainCohort(lane, shipped_at, shipped, counted)
            self.at(self.due_at, shipped_at + int(transit)).append(cohort)
        for order, lane in parcels.items():
            self.in_flight[order] = fresh[lane]
        for epoch, order, status in sorted(s for s in statuses if s[2] == "delivered"):
            cohort = self.in_flight.current.pop(order, None)
            if cohort is None:
                cohort = self.in_flight.previous.pop(order, None)
            if cohort is None or cohort.gone:
                continue
            cohort.delivered += 1
            if not cohort.learned:
                for tq in self.chain(cohort.lane):
                    tq.observe(epoch - cohort.shipped_at > tq.value)
        due, check = {}, self.check_at.pop(bstart, [])
        for cohort in self.due_at.pop(bstart, []):
            late = cohort.shipped - cohort.delivered
            if cohort.counted:
                for key in (cohort.lane, (None, cohort.lane[1])):
                    counts = due.setdefault(key, [0, 0])
                    counts[0] += cohort.shipped
                    counts[1] += late
            if late:
                check.append(cohort)
        for cohort in check:
            remaining = cohort.shipped - cohort.delivered
            if cohort.learned or cohort.gone or not remaining:
                continue
            chain = self.chain(cohort.lane)
            longest = max(tq.value for tq in chain)
            if bstart + self.bs - 1 - cohort.shipped_at < longest:
                self.at(self.check_at, cohort.shipped_at + int(longest) + 1).append(cohort)
            else:
                for tq in chain:
                    tq.observe_longer(remaining)
                cohort.learned = True
                self.at(self.expire_at, cohort.shipped_at + self.horizon).append(cohort)
        for cohort in self.expire_at.pop(bstart, []):
            cohort.gone = True
            self.expired += cohort.shipped - cohort.delivered
        self.lanes.prune(bstart)
        self.in_flight.prune(bstart)
        return due


def _stream(seed: int, days: float, bs: int):
    """Orders over ``days`` on a few lanes (some unknown, some shipped twice in a bucket or
    re-shipped later, some never delivered), as (bucket, (epoch, order, status)) plus
    the order -> lane events per bucket."""
    rng = random.Random(seed)
    lanes_at: dict[int, list] = {}
    statuses: dict[int, list] = {}

    def put(epoch, order, status):
        statuses.setdefault(epoch - epoch % bs, []).append((epoch, order, status))

    for n in range(int(days * 1500)):
        placed = rng.randrange(int(days * DAY))
        order = f"o{n}"
        lane = rng.choice(LANES)
        if rng.random() > 0.02:   # else: no order event, an unknown order
            lanes_at.setdefault(placed - placed % bs, []).append((order, lane))
        shipped = placed + rng.randrange(1, DAY // 2)
        put(shipped, order, "shipped")
        if rng.random() < 0.02:
            put(shipped + rng.randrange(0, 2 * bs), order, "shipped")   # twice / re-shipped
        if rng.random() < 0.9:   # else never delivered
            scale = 3.0 if lane[1] == "邮政" else 1.5
            put(shipped + int(rng.uniform(0.3, scale) * DAY), order, "delivered")
    return lanes_at, statuses


@pytest.mark.parametrize("seed, params", [
    (1, {"min_deliveries": 50, "initial_transit": DAY}),
    (2, {"min_deliveries": 0, "initial_transit": 60.0}),        # due before the next bucket
    (3, {"min_deliveries": 400, "initial_transit": 2 * DAY}),   # dated by a guess for long
    (4, {"min_deliveries": 20, "initial_transit": DAY, "horizon_seconds": DAY,
         "lane_memory_seconds": DAY // 2}),                      # generations turn over
])
def test_close_gives_the_plain_rules_due_counts_and_estimates(seed, params):
    bs, days = 300, 5.0
    kw = {"horizon_seconds": 3 * DAY, "lane_memory_seconds": 2 * DAY, **params}
    fast, plain = DeliveryTracker(bs, **kw), PlainTracker(bs, **kw)
    lanes_at, statuses = _stream(seed, days, bs)
    for b in range(0, int((days + 3) * DAY), bs):
        for tracker in (fast, plain):
            for order, lane in lanes_at.get(b, ()):
                tracker.lanes[order] = lane
        for epoch, order, status in statuses.get(b, ()):
            fast.on_status(b, epoch, order, status)
        plain.statuses[b] = list(statuses.get(b, ()))
        got, want = fast.close(b), plain.close(b)
        assert list(got.items()) == list(want.items()), b
    assert {k: (tq.value, tq.n) for k, tq in fast.transit.items()} == \
        {k: (tq.value, tq.n) for k, tq in plain.transit.items()}
    assert fast.expired == plain.expired
    assert fast.in_flight.current.keys() == plain.in_flight.current.keys()
    assert fast.in_flight.previous.keys() == plain.in_flight.previous.keys()


@pytest.mark.parametrize("start_n", [0, 3570, 5000])
def test_observe_transits_is_observe_repeated_young_and_steady(start_n):
    rng = random.Random(start_n)
    transits = [rng.uniform(0.5, 3.0) * DAY for _ in range(400)]
    a, b = TransitQuantile(initial=DAY), TransitQuantile(initial=DAY)
    a.n = b.n = start_n
    a.observe_transits(transits)
    for t in transits:
        b.observe(t > b.value)
    assert (a.value, a.n) == (b.value, b.n)
