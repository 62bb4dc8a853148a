"""The traffic engine: orders, statuses, complaints and bad input, in arrival order.

How it stays fast (~1 us of Python per line) and bounded in memory:

* Time advances one simulated hour at a time. Each hour's orders are drawn in bulk with
  numpy (Poisson counts per minute, then merchant, region, carrier, category, amount,
  shipping and delivery times, complaints), so Python only formats lines.
* Every event is filed into a bucket by the hour of its *arrival*. Nothing created later
  can arrive earlier than the hour being generated (events never precede their cause), so
  after generating hour ``h`` the bucket ``h`` is final: it is sorted and emitted.
* Order-status events wait days in their buckets as four int64 columns and are formatted
  only when emitted; timestamps come from a per-second table (:class:`TimeText`).

Duplicates are exact copies of an emitted line, re-sent 2 s to 5 min later; late events
are emitted 2-6 h after their ``ts``; all others arrive 0-3 s after their ``ts`` (so
``ts`` is not quite monotonic in the file, as from any real producer).
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import random
from collections.abc import Callable, Iterator
from typing import Any, BinaryIO

import numpy as np
import orjson

from riskwatch.events import INTENTS as INTENT_NAMES
from riskwatch.events import ORDER_STATUSES
from riskwatch.simulator import badinput
from riskwatch.simulator.complaints import ComplaintFactory
from riskwatch.simulator.config import SimulationConfig
from riskwatch.simulator.incidents import Incident, IncidentRunner, plan_incidents
from riskwatch.simulator.mixes import MixShift, plan_mix_shifts
from riskwatch.simulator.surges import OrderSurge, plan_surges
from riskwatch.simulator.seasonality import (
    CHINA_OFFSET,
    COMPLAINT_LAG_MEAN,
    COMPLAINT_LAG_MIN,
    MORNING_HOURS,
    NIGHT_HOURS,
    NIGHT_PUSH,
    PROMOTION_STRAIN,
    STRAINED_INTENTS,
    TimeText,
    Window,
    complaint_exposure,
    minute_intensity,
    windows,
)
from riskwatch.simulator.texts import TextComposer
from riskwatch.simulator.world import (
    BASE_COMPLAINT_RATE,
    CARRIER_FACTOR,
    CARRIER_NAMES,
    CARRIER_SHARE,
    CARRIER_SPEED,
    CATEGORY_FACTOR,
    CATEGORY_MEDIAN_AMOUNT,
    CATEGORY_NAMES,
    CATEGORY_SHARE,
    INTENT_CUMULATIVE,
    INTENT_INDEX,
    INTENT_MIX,
    REGION_DEMAND,
    REGION_NAMES,
    REGION_REMOTE,
    World,
    build_world,
)

__all__ = ["generate", "manifest", "write_files"]

HOUR = 3600
DAY = 86400
NEVER = np.iinfo(np.int64).max // 2
_STATUS = {name: i for i, name in enumerate(ORDER_STATUSES)}
_STATUS_BYTES = [s.encode() for s in ORDER_STATUSES]
_ORDER_LINE = (b'{"type":"order","event_id":"ev-o-%d","ts":"%s%s","order_id":"o-%d",'
               b'"merchant_id":"%s",%s,"amount":%d.%02d}')
_STATUS_LINE = (b'{"type":"order_status","event_id":"ev-s-%d-%s","ts":"%s%s",'
                b'"order_id":"o-%d","status":"%s"}')
_SURGE_LINE = (b'{"type":"order","event_id":"ev-ob-%d-%d","ts":"%s%s","order_id":"ob-%d-%d",'
               b'"merchant_id":"%s",%s,"amount":%d.00}')
_PRICE_CENTS = np.array([0, 0, 90, 99, 50, 80])
# Shares of the order-status life cycle.
_CANCEL = 0.015
_EXCEPTION = 0.012
_EXCEPTION_RETURNED = 0.4
_RETURN_REFUND = 0.04
_REFUND_ONLY = 0.01
#: Share of background complaints followed by a second one about the same order from
#: the same customer (no answer yet, parcel still missing), 30 min + Exp(mean 5 h) later.
REPEAT_SHARE = 0.03
REPEAT_LAG_MIN = 1800
REPEAT_LAG_MEAN = 5 * 3600
#: Repeat complaints are numbered from here (``c-900000000`` on): their own id range.
REPEAT_NUMBERS = 900_000_000
#: Complaints added by the promotion strain are numbered from here (``c-800000000`` on).
STRAIN_NUMBERS = 800_000_000
#: Strain rise per carrier (factor - 1; index order of CARRIER_NAMES), strained intents.
_STRAIN_RISE = np.array([PROMOTION_STRAIN.get(name, 1.0) - 1.0 for name in CARRIER_NAMES])
_STRAINED = np.array([INTENT_INDEX[i] for i in STRAINED_INTENTS])
_COUNT_KEYS = ("lines", "orders", "order_status", "complaints", "complaint_updates",
               "malformed", "duplicates", "late")


@dataclasses.dataclass
class _Bucket:
    """Events arriving within one simulated hour, waiting to be sorted and emitted."""

    arrivals: list[np.ndarray] = dataclasses.field(default_factory=list)
    lines: list[list[bytes]] = dataclasses.field(default_factory=list)
    statuses: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = \
        dataclasses.field(default_factory=list)
    single_arrivals: list[int] = dataclasses.field(default_factory=list)
    single_lines: list[bytes] = dataclasses.field(default_factory=list)
    copy_arrivals: list[int] = dataclasses.field(default_factory=list)
    copy_lines: list[bytes] = dataclasses.field(default_factory=list)
    # Order-surge lines: merged in after duplicates and malformed lines were drawn, so
    # they leave every other line of the run unchanged (riskwatch.simulator.surges).
    surge_arrivals: list[int] = dataclasses.field(default_factory=list)
    surge_lines: list[bytes] = dataclasses.field(default_factory=list)


def _cumulative(p: np.ndarray) -> np.ndarray:
    c = np.cumsum(p)
    return c / c[-1]


@dataclasses.dataclass(frozen=True, eq=False)
class _Plan:
    """Everything decided before the first event: market, calendar, curves, incidents."""

    config: SimulationConfig
    world: World
    windows: list[Window]
    intensity: np.ndarray   # expected orders per minute
    exposure: np.ndarray    # expected complaints per minute if every order complained
    incidents: list[Incident]
    surges: list[OrderSurge] = dataclasses.field(default_factory=list)
    mixes: list[MixShift] = dataclasses.field(default_factory=list)


def _plan(config: SimulationConfig) -> _Plan:
    world = build_world(config.merchants, config.seed, config.start_epoch, config.span_seconds)
    cal = windows(config)
    intensity = minute_intensity(config)
    exposure = complaint_exposure(config, intensity)
    incidents = plan_incidents(config, world, exposure, cal, intensity)
    surges = plan_surges(config, world, intensity,
                         [(i.start, i.end, i.dimensions) for i in incidents], len(incidents) + 1,
                         [(w.start, w.end) for w in cal if w.kind == "maintenance"])
    mixes = plan_mix_shifts(config, world, exposure, [(i.start, i.end) for i in incidents],
                            len(incidents) + len(surges) + 1)
    return _Plan(config, world, cal, intensity, exposure, incidents, surges, mixes)


class _Engine:
    """One run of the simulator; :meth:`batches` yields arrival-ordered lines per hour."""

    def __init__(self, plan: _Plan) -> None:
        config = self.config = plan.config
        self.plan = plan
        self.start, self.end = config.start_epoch, config.end_epoch
        self.world = plan.world
        self.windows = plan.windows
        self.intensity = plan.intensity
        self.incidents = plan.incidents
        seed = config.seed
        self.rng = np.random.default_rng([seed, 2])           # orders and statuses
        self.crng = np.random.default_rng([seed, 3])          # which orders complain
        self.prng = random.Random(f"riskwatch-complaints-{seed}")
        self.brng = random.Random(f"riskwatch-bad-input-{seed}")
        self.tt = TimeText()
        self.factory = ComplaintFactory(
            self.prng, TextComposer(random.Random(f"riskwatch-texts-{seed}"), config.pii_share),
            config.label_share, self.end, self.tt)
        self.runner = IncidentRunner(self.incidents, seed)
        # Repeat complaints: some customers write twice about one order (streams of their own).
        self.repeat_rng = np.random.default_rng([seed, 43])
        self.repeat_factory = self._own_factory("repeat", seed, config)
        self.next_repeat = 0
        self.repeat_prng = random.Random(f"riskwatch-repeat-arrivals-{seed}")
        # Promotion strain: extra complaints from streams of their own, filed apart, so
        # switching it off leaves every other line byte-identical.
        self.promotion_windows = [(w.start, w.end) for w in plan.windows
                                  if w.kind == "promotion"] if config.promotion_strain else []
        self.strain_rise = _STRAIN_RISE * config.promotion_strain
        self.strain_rng = np.random.default_rng([seed, 47])
        self.strain_factory = self._own_factory("strain", seed, config)
        self.next_strain = 0
        self.strain_prng = random.Random(f"riskwatch-strain-arrivals-{seed}")
        # Intent-mix shifts turn some normal complaints to another intent. Their rolls
        # and texts come from streams of their own, and the main factory still writes
        # (and drops) the original complaint: every other line stays byte-identical.
        self.mixes = plan.mixes
        self.mix_rng = random.Random(f"riskwatch-mix-{seed}")
        self.mix_factory = ComplaintFactory(
            random.Random(f"riskwatch-mix-complaints-{seed}"),
            TextComposer(random.Random(f"riskwatch-mix-texts-{seed}"), config.pii_share),
            config.label_share, self.end, self.tt)
        self.minute_counts = self.rng.poisson(self.intensity)
        self.buckets: dict[int, _Bucket] = {}
        self.counts = dict.fromkeys(_COUNT_KEYS, 0)
        self.next_order = 0
        self.next_complaint = 0
        # (complaint_id, true intent) of every complaint, when the caller wants them
        # (write_files(intents_path=...)): the ground truth for intent accuracy.
        self.intent_truth: list[tuple[str, str]] | None = None
        self.next_bad = 0
        self.sim_fraction = 0.0
        w = self.world
        self._merchant_bytes = [m.encode() for m in w.merchant_ids]
        self._region_bytes = [r.encode() for r in REGION_NAMES]
        self._carrier_bytes = [c.encode() for c in CARRIER_NAMES]
        self._category_bytes = [c.encode() for c in CATEGORY_NAMES]
        self._region_cum = _cumulative(REGION_DEMAND)
        self._carrier_cum = _cumulative(CARRIER_SHARE)
        self._category_cum = _cumulative(CATEGORY_SHARE)
        self._open_key: int | None = None
        self._merchant_cum = np.empty(0)
        # Late events and re-sends may arrive up to ~6 h after the end.
        self._day_bytes = {d: self.tt.day_prefix(d) for d in range(
            self.tt.local_day(self.start), self.tt.local_day(self.end + 8 * HOUR) + 1)}
        self._clock_bytes = self.tt.clock_bytes
        # One JSON fragment per (region, carrier, category): one lookup instead of three.
        self._slice_bytes = [
            b'"region":"%s","carrier":"%s","category":"%s"' % (r, c, k)
            for r in self._region_bytes for c in self._carrier_bytes for k in self._category_bytes]

    # ----------------------------------------------------------------- filing events
    def _own_factory(self, name: str, seed: int, config: SimulationConfig) -> ComplaintFactory:
        """A complaint factory whose rolls and texts come from streams of their own
        (named ``name``): complaints it writes leave every other line byte-identical."""
        return ComplaintFactory(
            random.Random(f"riskwatch-{name}-complaints-{seed}"),
            TextComposer(random.Random(f"riskwatch-{name}-texts-{seed}"), config.pii_share),
            config.label_share, self.end, self.tt)

    def _bucket(self, index: int) -> _Bucket:
        bucket = self.buckets.get(index)
        if bucket is None:
            bucket = self.buckets[index] = _Bucket()
        return bucket

    def _arrivals(self, ts: np.ndarray) -> np.ndarray:
        """Arrival times: 0-3 s after ``ts``, or 2-6 h for the late share."""
        n = len(ts)
        u = self.rng.random(n)
        arrival = ts + (u > 0.6) + (u > 0.85) + (u > 0.95)
        late = self.rng.random(n) < self.config.late_share
        if late.any():
            arrival[late] = ts[late] + self.rng.integers(2 * HOUR, 6 * HOUR, int(late.sum()))
            self.counts["late"] += int(late.sum())
        return arrival

    def _arrival(self, ts: int) -> int:
        rng = self.prng
        if rng.random() < self.config.late_share:
            self.counts["late"] += 1
            return ts + rng.randint(2 * HOUR, 6 * HOUR - 1)
        return ts + rng.choices((0, 1, 2, 3), (60, 25, 10, 5))[0]

    def _split(self, arrival: np.ndarray) -> list[tuple[int, np.ndarray]]:
        """Indices of ``arrival`` grouped by bucket: [(bucket, indices)]."""
        b = (arrival - self.start) // HOUR
        if len(b) and b[0] == b[-1] and (b == b[0]).all():
            return [(int(b[0]), np.arange(len(b)))]
        order = np.argsort(b, kind="stable")
        sorted_b = b[order]
        cuts = np.flatnonzero(np.diff(sorted_b)) + 1
        return [(int(b[g[0]]), g) for g in np.split(order, cuts) if len(g)]

    def _file_lines(self, arrival: np.ndarray, lines: list[bytes]) -> None:
        for index, idx in self._split(arrival):
            bucket = self._bucket(index)
            bucket.arrivals.append(arrival[idx])
            bucket.lines.append([lines[i] for i in idx.tolist()] if len(idx) < len(lines)
                                else lines)

    def _file_statuses(self, ts: np.ndarray, order: np.ndarray, code: np.ndarray) -> None:
        keep = ts < self.end
        ts, order, code = ts[keep], order[keep], code[keep]
        self.counts["order_status"] += len(ts)
        arrival = self._arrivals(ts)
        for index, idx in self._split(arrival):
            self._bucket(index).statuses.append((arrival[idx], ts[idx], order[idx], code[idx]))

    def _file_single(self, ts: int, line: bytes) -> None:
        arrival = self._arrival(ts)
        bucket = self._bucket((arrival - self.start) // HOUR)
        bucket.single_arrivals.append(arrival)
        bucket.single_lines.append(line)

    # ----------------------------------------------------------------- one hour
    def _merchant_cdf(self, t: int) -> np.ndarray:
        w = self.world
        key = int((w.open_at <= t).sum())
        if key != self._open_key:
            self._open_key = key
            self._merchant_cum = _cumulative(w.open_weights(t))
        return self._merchant_cum

    def _hour(self, h: int) -> None:
        t0 = self.start + h * HOUR
        t1 = min(t0 + HOUR, self.end)
        counts = self.minute_counts[h * 60:h * 60 + 60]
        minute_start = t0 + 60 * np.arange(len(counts), dtype=np.int64)
        rng, w = self.rng, self.world
        n = int(counts.sum())
        ts = np.repeat(minute_start, counts) + rng.integers(0, 60, n)
        ts.sort()
        ts = ts[ts < t1]
        n = len(ts)
        index = self.next_order + np.arange(n, dtype=np.int64)
        self.next_order += n
        merchant = np.searchsorted(self._merchant_cdf(t0), rng.random(n), side="right")
        merchant = np.minimum(merchant, w.size - 1)
        local = rng.random(n) < w.local_share[merchant]
        region = np.where(local, w.home[merchant],
                          np.searchsorted(self._region_cum, rng.random(n), side="right"))
        loyal = rng.random(n) < w.carrier_loyalty[merchant]
        carrier = np.where(loyal, w.primary_carrier[merchant],
                           np.searchsorted(self._carrier_cum, rng.random(n), side="right"))
        focus = rng.random(n) < 0.85
        category = np.where(focus, w.main_category[merchant],
                            np.searchsorted(self._category_cum, rng.random(n), side="right"))
        region = np.minimum(region, len(REGION_NAMES) - 1)
        carrier = np.minimum(carrier, len(CARRIER_NAMES) - 1)
        category = np.minimum(category, len(CATEGORY_NAMES) - 1)
        yuan = np.maximum(1.0, np.round(CATEGORY_MEDIAN_AMOUNT[category]
                                        * rng.lognormal(0.0, 0.7, n)))
        cents = yuan.astype(np.int64) * 100 + _PRICE_CENTS[rng.integers(0, len(_PRICE_CENTS), n)]
        self.counts["orders"] += n
        self._emit_orders(ts, index, merchant, region, carrier, category, cents)
        shipped, delivered = self._life_cycle(ts, index, merchant, region, carrier)
        self.runner.observe(t0, t1, (index, ts, merchant, region, carrier, category, cents,
                                     shipped, delivered))
        self._background_complaints(ts, index, merchant, region, carrier, category, cents)
        self._strain_complaints(ts, index, merchant, region, carrier, category, cents)
        self._incident_complaints(t0, t1)
        self._surge_orders(t0, t1)

    def _emit_orders(self, ts, index, merchant, region, carrier, category, cents) -> None:
        day_b, clock_b = self._day_bytes, self._clock_bytes
        mb, sb = self._merchant_bytes, self._slice_bytes
        local = ts + CHINA_OFFSET
        days = local // DAY
        fragment = (region * len(CARRIER_NAMES) + carrier) * len(CATEGORY_NAMES) + category
        if len(days) and days[0] == days[-1]:
            # One local day (the usual case): the date prefix is a constant.
            day = day_b[int(days[0])]
            lines = [
                _ORDER_LINE % (o, day, clock_b[s], o, mb[m], sb[f], a // 100, a % 100)
                for o, s, m, f, a in zip(index.tolist(), (local % DAY).tolist(),
                                         merchant.tolist(), fragment.tolist(), cents.tolist())
            ]
        else:
            lines = [
                _ORDER_LINE % (o, day_b[d], clock_b[s], o, mb[m], sb[f], a // 100, a % 100)
                for o, d, s, m, f, a in zip(index.tolist(), days.tolist(),
                                            (local % DAY).tolist(), merchant.tolist(),
                                            fragment.tolist(), cents.tolist())
            ]
        self._file_lines(self._arrivals(ts), lines)

    def _surge_orders(self, t0: int, t1: int) -> None:
        """The fake orders of order-surge incidents with ts in ``[t0, t1)`` (own ids,
        no statuses, no complaints; drawn at planning time, so no engine RNG is used)."""
        for k, surge in enumerate(self.plan.surges):
            if t1 <= surge.start or t0 >= surge.end:
                continue
            lo, hi = np.searchsorted(surge.times, [t0, t1])
            if lo == hi:
                continue
            m = surge.merchant
            w = self.world
            carrier, category = int(w.primary_carrier[m]), int(w.main_category[m])
            cents = int(CATEGORY_MEDIAN_AMOUNT[category]) * 100
            lines = []
            for j, (ts, region) in enumerate(zip(surge.times[lo:hi].tolist(),
                                                  surge.regions[lo:hi].tolist()), lo):
                local = ts + CHINA_OFFSET
                frag = self._slice_bytes[(region * len(CARRIER_NAMES) + carrier)
                                         * len(CATEGORY_NAMES) + category]
                lines.append(_SURGE_LINE % (k, j, self._day_bytes[local // DAY],
                                            self._clock_bytes[local % DAY], k, j,
                                            self._merchant_bytes[m], frag, cents // 100))
            self.counts["orders"] += len(lines)
            for arrival, line in zip((surge.times[lo:hi] + 1).tolist(), lines):
                bucket = self._bucket((arrival - self.start) // HOUR)
                bucket.surge_arrivals.append(arrival)
                bucket.surge_lines.append(line)

    def _life_cycle(self, ts, index, merchant, region, carrier) -> tuple[np.ndarray, np.ndarray]:
        """Shipping, delivery, exceptions, returns; returns (shipped, delivered) per order.

        Timings are drawn even when status events are not emitted, so incident complaints
        can refer to parcels that are in transit or delivered either way.
        """
        rng, n = self.rng, len(ts)
        cancelled = rng.random(n) < _CANCEL
        ship_lag = np.clip(rng.lognormal(math.log(14 * HOUR), 0.6, n), 2 * HOUR, 36 * HOUR)
        shipped = ts + ship_lag.astype(np.int64)
        same = region == self.world.home[merchant]
        transit = np.where(same, rng.uniform(1.0, 1.8, n), rng.uniform(1.5, 3.5, n))
        transit = (transit + 0.8 * REGION_REMOTE[region]) * CARRIER_SPEED[carrier]
        transit_s = (np.clip(transit, 1.0, 4.0) * DAY).astype(np.int64)
        delivered = self.runner.delay_deliveries(shipped + transit_s, region, carrier, rng)
        exception = ~cancelled & (rng.random(n) < _EXCEPTION)
        exception_ts = shipped + (rng.uniform(0.3, 0.8, n) * transit_s).astype(np.int64)
        sent_back = exception & (rng.random(n) < _EXCEPTION_RETURNED)
        returned_ts = np.where(sent_back, exception_ts + rng.integers(DAY, 3 * DAY, n), NEVER)
        # a parcel with an exception that is not sent back arrives 12-36 hours late
        held = rng.integers(12 * HOUR, 36 * HOUR, n)
        delivered = np.where(exception & ~sent_back, delivered + held, delivered)
        delivered = np.where(cancelled | sent_back, NEVER, delivered)
        shipped = np.where(cancelled, NEVER, shipped)
        roll = rng.random(n)
        ok = delivered < NEVER
        return_refund = ok & (roll < _RETURN_REFUND)
        refund_only = ok & (roll >= _RETURN_REFUND) & (roll < _RETURN_REFUND + _REFUND_ONLY)
        returned_ts = np.where(return_refund, delivered + rng.integers(DAY, 4 * DAY, n),
                               returned_ts)
        refunded_ts = np.where(return_refund, returned_ts + rng.integers(2 * HOUR, 48 * HOUR, n),
                               np.where(refund_only, delivered + rng.integers(DAY // 2, 3 * DAY, n),
                                        NEVER))
        cancelled_ts = ts + rng.integers(300, 6 * HOUR, n)
        if self.config.statuses:
            parts = [
                (cancelled, cancelled_ts, "cancelled"), (~cancelled, shipped, "shipped"),
                (exception, exception_ts, "exception"), (delivered < NEVER, delivered, "delivered"),
                (returned_ts < NEVER, returned_ts, "returned"),
                (refunded_ts < NEVER, refunded_ts, "refunded"),
            ]
            all_ts = np.concatenate([t[m] for m, t, _ in parts])
            all_order = np.concatenate([index[m] for m, _, _ in parts])
            all_code = np.concatenate([np.full(int(m.sum()), _STATUS[s], dtype=np.int64)
                                       for m, _, s in parts])
            self._file_statuses(all_ts, all_order, all_code)
        return shipped, delivered

    def _background_complaints(self, ts, index, merchant, region, carrier, category,
                               cents) -> None:
        crng, w = self.crng, self.world
        p = (BASE_COMPLAINT_RATE * w.quality[merchant] * CARRIER_FACTOR[carrier]
             * CATEGORY_FACTOR[category])
        idx = np.flatnonzero(crng.random(len(ts)) < np.minimum(p, 0.5))
        k = len(idx)
        if not k:
            return
        cts = _complaint_times(crng, ts[idx])
        cum = INTENT_CUMULATIVE[category[idx], carrier[idx]]
        intent = np.minimum((cum < crng.random(k)[:, None]).sum(axis=1), cum.shape[1] - 1)
        for j, t, i in zip(idx.tolist(), cts.tolist(), intent.tolist()):
            if t >= self.end:
                continue
            fields = (int(index[j]), int(merchant[j]), int(region[j]), int(carrier[j]),
                      int(category[j]), int(cents[j]))
            self._complaint(t, i, *fields, may_turn=True)
            if self.repeat_rng.random() < REPEAT_SHARE:
                self._repeat_complaint(t, i, *fields)

    def _strain_complaints(self, ts, index, merchant, region, carrier, category,
                           cents) -> None:
        """Extra logistics complaints about orders placed in a promotion window.

        An order's complaint probability for a strained intent ``i`` becomes
        ``p x mix[i] x strain[carrier]`` (seasonality.PROMOTION_STRAIN), so the extra
        complaint has probability ``p x sum_i mix[i] x (strain - 1)`` and its intent is
        drawn among the strained intents in proportion to the mix. Lag and night push as
        for any complaint: the effect shows over the hours after the promotion.
        """
        inside = np.zeros(len(ts), dtype=bool)
        for start, end in self.promotion_windows:
            if len(ts) and start <= ts[-1] and ts[0] < end:
                inside |= (ts >= start) & (ts < end)
        if not inside.any():
            return
        srng, w = self.strain_rng, self.world
        j = np.flatnonzero(inside)
        car, cat = carrier[j], category[j]
        p = (BASE_COMPLAINT_RATE * w.quality[merchant[j]] * CARRIER_FACTOR[car]
             * CATEGORY_FACTOR[cat])
        mix = INTENT_MIX[cat[:, None], car[:, None], _STRAINED[None, :]]  # (n, strained)
        extra = p * mix.sum(axis=1) * self.strain_rise[car]
        hit = srng.random(len(j)) < np.minimum(extra, 0.5)
        idx, mix = j[hit], mix[hit]
        k = len(idx)
        if not k:
            return
        cum = np.cumsum(mix / mix.sum(axis=1, keepdims=True), axis=1)
        pick = np.minimum((cum < srng.random(k)[:, None]).sum(axis=1), len(_STRAINED) - 1)
        intent = _STRAINED[pick]
        cts = _complaint_times(srng, ts[idx])
        for o, t, i in zip(idx.tolist(), cts.tolist(), intent.tolist()):
            if t < self.end:
                self._complaint(t, i, int(index[o]), int(merchant[o]), int(region[o]),
                                int(carrier[o]), int(category[o]), int(cents[o]), strain=True)

    def _repeat_complaint(self, first_ts: int, intent: int, order: int, merchant: int,
                          region: int, carrier: int, category: int, cents: int) -> None:
        """The same customer writes again about the same order, hours later.

        Written with the first complaint's intent, and turned by an intent-mix shift like
        any complaint of its time. Own random streams, factory and complaint numbers (from
        :data:`REPEAT_NUMBERS`), filed apart (never duplicated, malformed or late): every
        other line of a seed stays byte-identical.
        """
        ts = first_ts + REPEAT_LAG_MIN + int(self.repeat_rng.exponential(REPEAT_LAG_MEAN))
        if ts < self.end:
            self._complaint(ts, intent, order, merchant, region, carrier, category, cents,
                            keep_order=True, may_turn=True, repeat=True)

    def _incident_complaints(self, t0: int, t1: int) -> None:
        w = self.world
        for ts, intent, k, row in self.runner.complaints(t0, t1):
            inc = self.incidents[k]
            if row is None:
                # No earlier order of the slice at all: a complaint without an order id.
                m = inc.merchant if inc.merchant is not None else int(
                    np.searchsorted(self._merchant_cdf(ts), self.crng.random()))
                self._complaint(ts, intent, None, min(m, w.size - 1),
                                inc.region if inc.region is not None else int(w.home[m]),
                                inc.carrier or 0, int(w.main_category[m]), 9900)
            else:
                _, _, m, r, c, cat, cents, _, _ = row
                self._complaint(ts, intent, row[0], m, r, c, cat, cents, keep_order=True)

    def _complaint(self, ts: int, intent: int, order: int | None, merchant: int, region: int,
                   carrier: int, category: int, cents: int, keep_order: bool = False,
                   may_turn: bool = False, repeat: bool = False, strain: bool = False) -> None:
        """File one complaint and its updates. ``repeat``: a customer's second complaint,
        numbered and written by streams of its own (see :meth:`_repeat_complaint`);
        ``strain``: one added by the promotion strain (:meth:`_strain_complaints`), too."""
        if strain:
            number, factory = STRAIN_NUMBERS + self.next_strain, self.strain_factory
            self.next_strain += 1
        elif repeat:
            number, factory = REPEAT_NUMBERS + self.next_repeat, self.repeat_factory
            self.next_repeat += 1
        else:
            number, factory = self.next_complaint, self.factory
            self.next_complaint += 1
        fields = dict(order=order, merchant=self.world.merchant_ids[merchant],
                      region=REGION_NAMES[region], carrier=CARRIER_NAMES[carrier],
                      category=CATEGORY_NAMES[category], amount=cents / 100,
                      keep_order=keep_order)
        events = factory.build(number, ts, intent, **fields)
        for mix in self.mixes if may_turn else ():
            if mix.start <= ts < mix.end and mix.category == category:
                turned = mix.turn(ts, intent, category, self.mix_rng.random())
                if turned is not None:
                    intent = turned
                    events = _turn_events(events, self.mix_factory.build(
                        number, ts, intent, **fields), INTENT_NAMES[intent])
                break
        if self.intent_truth is not None:
            self.intent_truth.append((f"c-{number}", INTENT_NAMES[intent]))
        for ets, etype, line in events:
            self.counts["complaints" if etype == "complaint" else "complaint_updates"] += 1
            if repeat or strain:
                self._file_apart(ets, line, self.strain_prng if strain else self.repeat_prng)
            else:
                self._file_single(ets, line)

    def _file_apart(self, ts: int, line: bytes, prng: random.Random) -> None:
        """File a line that must not move any other: its arrival lag comes from a stream
        of its own, and it joins the hour after duplicates and malformed lines are drawn
        (those draws use the order stream, once per line), like a brushing ring's orders."""
        arrival = ts + prng.choices((0, 1, 2, 3), (60, 25, 10, 5))[0]
        bucket = self._bucket((arrival - self.start) // HOUR)
        bucket.surge_arrivals.append(arrival)
        bucket.surge_lines.append(line)

    # ----------------------------------------------------------------- emitting
    def _flush(self, h: int) -> tuple[list[int], list[bytes]]:
        bucket = self.buckets.pop(h, None)
        if bucket is None:
            return [], []
        lines: list[bytes] = []
        for part in bucket.lines:
            lines.extend(part)
        day_b, clock_b = self._day_bytes, self._clock_bytes
        arrival_parts = list(bucket.arrivals)
        for arrival, ts, order, code in bucket.statuses:
            local = ts + CHINA_OFFSET
            lines.extend(
                _STATUS_LINE % (o, _STATUS_BYTES[c], day_b[d], clock_b[s], o, _STATUS_BYTES[c])
                for o, c, d, s in zip(order.tolist(), code.tolist(), (local // DAY).tolist(),
                                      (local % DAY).tolist()))
            arrival_parts.append(arrival)
        lines.extend(bucket.single_lines)
        arrival_parts.append(np.array(bucket.single_arrivals, dtype=np.int64))
        n_original = len(lines)
        arrivals = np.concatenate(arrival_parts) if arrival_parts else np.empty(0, np.int64)
        # Duplicates: exact re-sends of lines of this hour (not of copies), seconds to
        # minutes later; copies landing in a later hour wait in that hour's bucket.
        brng, share = self.brng, self.config.duplicate_share
        extra_arrivals: list[int] = list(bucket.copy_arrivals)
        lines.extend(bucket.copy_lines)
        if share > 0 and n_original:
            picks = np.flatnonzero(self.rng.random(n_original) < share)
            for i in picks.tolist():
                again = int(arrivals[i]) + brng.randint(2, 300)
                self.counts["duplicates"] += 1
                target = (again - self.start) // HOUR
                if target == h:
                    extra_arrivals.append(again)
                    lines.append(lines[i])
                else:
                    later = self._bucket(target)
                    later.copy_arrivals.append(again)
                    later.copy_lines.append(lines[i])
        if extra_arrivals:
            arrivals = np.concatenate([arrivals, np.array(extra_arrivals, dtype=np.int64)])
        order = np.argsort(arrivals, kind="stable")
        arrivals = arrivals[order].tolist()
        lines = [lines[i] for i in order.tolist()]
        share = self.config.malformed_share
        if share > 0 and lines:
            picks = np.flatnonzero(self.rng.random(len(lines)) < share).tolist()
            if picks:
                lines, arrivals = self._insert_malformed(lines, arrivals, picks)
        if bucket.surge_lines:
            merged = np.argsort(np.concatenate([np.asarray(arrivals, dtype=np.int64),
                                                np.asarray(bucket.surge_arrivals, dtype=np.int64)]),
                                kind="stable").tolist()
            everything = lines + bucket.surge_lines
            times = arrivals + bucket.surge_arrivals
            lines = [everything[i] for i in merged]
            arrivals = [times[i] for i in merged]
        self.counts["lines"] += len(lines)
        return arrivals, lines

    def _insert_malformed(self, lines: list[bytes], arrivals: list[int],
                          picks: list[int]) -> tuple[list[bytes], list[int]]:
        out_lines: list[bytes] = []
        out_arrivals: list[int] = []
        prev = 0
        for i in picks:
            out_lines.extend(lines[prev:i])
            out_arrivals.extend(arrivals[prev:i])
            out_lines.append(badinput.malformed_line(self.brng, lines[i], self.next_bad))
            out_arrivals.append(arrivals[i])
            self.next_bad += 1
            prev = i
        out_lines.extend(lines[prev:])
        out_arrivals.extend(arrivals[prev:])
        self.counts["malformed"] += len(picks)
        return out_lines, out_arrivals

    def batches(self) -> Iterator[tuple[list[int], list[bytes]]]:
        """Arrival-ordered (arrivals, lines) per simulated hour, then the late tail."""
        hours = -(-(self.end - self.start) // HOUR)
        for h in range(hours):
            self._hour(h)
            self.sim_fraction = min(1.0, (h + 1) * HOUR / (self.end - self.start))
            batch = self._flush(h)
            if batch[1]:
                yield batch
        while self.buckets:
            batch = self._flush(min(self.buckets))
            if batch[1]:
                yield batch


def _complaint_times(rng: np.random.Generator, order_ts: np.ndarray) -> np.ndarray:
    """When customers write about orders placed at ``order_ts``: after the complaint lag,
    and people sleep: most complaints of 01:00-07:00 are written after breakfast. Draws
    from ``rng`` in a fixed order (lags, night pushes, morning times)."""
    k = len(order_ts)
    lag = COMPLAINT_LAG_MIN + rng.exponential(COMPLAINT_LAG_MEAN - COMPLAINT_LAG_MIN, k)
    cts = order_ts + lag.astype(np.int64)
    local = cts + CHINA_OFFSET
    hour = (local % DAY) // HOUR
    push = ((hour >= NIGHT_HOURS[0]) & (hour < NIGHT_HOURS[1]) & (rng.random(k) < NIGHT_PUSH))
    morning = local - local % DAY + MORNING_HOURS[0] * HOUR - CHINA_OFFSET
    span = (MORNING_HOURS[1] - MORNING_HOURS[0]) * HOUR
    return np.where(push, morning + rng.integers(0, span, k), cts)


def _turn_events(events: list[tuple[int, str, bytes]], written: list[tuple[int, str, bytes]],
                 intent: str) -> list[tuple[int, str, bytes]]:
    """A complaint turned to ``intent`` by a mix shift: the original events (same times,
    same number: arrival draws stay in step) with the text and menu pick of the complaint
    ``written`` for the new intent, and the agent's label corrected."""
    new = orjson.loads(written[0][2])
    out = []
    for ts, etype, line in events:
        event = orjson.loads(line)
        if etype == "complaint":
            event["text"], event["declared_type"] = new["text"], new["declared_type"]
        elif event.get("intent") is not None:
            event["intent"] = intent
        out.append((ts, etype, orjson.dumps(event)))
    return out


# --------------------------------------------------------------------- public API
def generate(config: SimulationConfig) -> Iterator[tuple[int, bytes]]:
    """Yield ``(arrival_epoch_seconds, json_line)`` in arrival order (non-decreasing).

    Lines have no trailing newline. The same config always yields the same bytes.

    Examples
    --------
    >>> from riskwatch.events import decode_events
    >>> cfg = SimulationConfig(days=1, orders_per_day=2000, merchants=100, incidents=1,
    ...                        malformed_share=0.0)
    >>> lines = list(generate(cfg))
    >>> all(a <= b for (a, _), (b, _) in zip(lines, lines[1:]))
    True
    >>> sum(len(decode_events(line)[1]) for _, line in lines)
    0
    """
    engine = _Engine(_plan(config))
    for arrivals, lines in engine.batches():
        yield from zip(arrivals, lines)


def _expected_lines(plan: _Plan) -> float:
    """Expected number of event lines (before bad input), from the model alone.

    Statuses and updates that would fall after the end are not emitted, so their
    expected numbers use the share of orders old enough, with lags sampled once.
    """
    cfg = plan.config
    rng = np.random.default_rng([cfg.seed, 9])
    minutes_left = np.arange(len(plan.intensity), 0, -1) * 60.0
    ship = np.clip(rng.lognormal(math.log(14 * HOUR), 0.6, 2000), 2 * HOUR, 36 * HOUR)
    deliver = ship + rng.uniform(1.0, 3.5, 2000) * DAY
    share_old = lambda lags: np.searchsorted(np.sort(lags), minutes_left) / len(lags)  # noqa: E731
    orders = float(plan.intensity.sum())
    statuses = 0.0
    if cfg.statuses:
        statuses = float(plan.intensity @ (share_old(ship) + 1.07 * share_old(deliver)))
    complaints = BASE_COMPLAINT_RATE * float(plan.exposure.sum()) + sum(
        sum(inc.extra.values()) for inc in plan.incidents)
    orders += sum(len(s.times) for s in plan.surges)
    updates = complaints * (cfg.label_share + 0.6 * 1.19) * 0.9
    return orders + statuses + complaints + updates


def _manifest(plan: _Plan, counts: dict[str, int] | None,
              reused: list[int] | None = None) -> dict[str, Any]:
    cfg = plan.config
    if counts is None:
        lines = _expected_lines(plan)
        counts = {"malformed": round(lines * cfg.malformed_share),
                  "duplicates": round(lines * cfg.duplicate_share),
                  "late": round(lines * cfg.late_share)}
    return {
        "version": 1,
        "config": cfg.to_json(),
        # reused_orders (only known once the events exist): incident complaints that
        # had to repeat an order because the slice had too few recent ones.
        "incidents": [{**inc.to_json(), **({"reused_orders": reused[i]} if reused else {})}
                      for i, inc in enumerate(plan.incidents)]
                     + [s.to_json() for s in plan.surges]
                     + [m.to_json() for m in plan.mixes],
        "promotions": [w.to_json() for w in plan.windows if w.kind == "promotion"],
        # Not an incident: what promotions do to logistics every time (nothing to catch).
        "promotion_strain": {
            "enabled": bool(cfg.promotion_strain and cfg.promotions),
            "scale": cfg.promotion_strain, "intents": list(STRAINED_INTENTS),
            "carriers": {name: round(1.0 + cfg.promotion_strain * (f - 1.0), 3)
                         for name, f in PROMOTION_STRAIN.items()}},
        "counts": {k: int(counts[k]) for k in ("malformed", "duplicates", "late")},
    }


def manifest(config: SimulationConfig, *, counts: dict[str, int] | None = None) -> dict[str, Any]:
    """Ground truth of a config: incidents, promotions and bad-input counts.

    Cheap: the incident plan comes from the seed and the market model; no event is
    generated. Without ``counts`` the ``counts`` section holds *expected* values
    (share x expected lines); :func:`write_files` writes the *actual* counts.

    Examples
    --------
    >>> m = manifest(SimulationConfig(days=7))
    >>> sorted({i["kind"] for i in m["incidents"]})
    ['carrier_damage', 'carrier_region_delay', 'intent_mix_shift', 'merchant_fake_shipment',
     'merchant_quality', 'new_shop_order_surge', 'region_lost_parcel']
    >>> [p["name"] for p in m["promotions"]]
    ['双11预热', '周末大促']
    """
    return _manifest(_plan(config), counts)


def write_files(config: SimulationConfig, events_path: str | os.PathLike[str] | BinaryIO,
                manifest_path: str | os.PathLike[str] | None = None,
                calendar_path: str | os.PathLike[str] | None = None,
                progress: Callable[[int, float], None] | None = None,
                intents_path: str | os.PathLike[str] | None = None) -> dict[str, int]:
    """Write the events (JSONL), and optionally the manifest and calendar (JSON).

    ``events_path`` may also be an open binary file (``sys.stdout.buffer`` for
    ``riskwatch simulate --out -``): written to and flushed, not closed.

    ``intents_path`` receives the true intent of every complaint, one
    ``{"complaint_id", "intent"}`` JSON line each (ground truth for intent accuracy; the
    events carry it only for the ``label_share`` an agent labels).

    ``progress(done_lines, sim_fraction)`` is called about every 50,000 lines and once at
    the end. Returns the counts ``{"lines", "orders", "order_status", "complaints",
    "complaint_updates", "malformed", "duplicates", "late"}``; ``lines`` is the sum of
    the other seven.
    """
    engine = _Engine(_plan(config))
    if intents_path is not None:
        engine.intent_truth = []
    next_report = 50_000
    events = (contextlib.nullcontext(events_path) if hasattr(events_path, "write")
              else open(events_path, "wb"))
    with events as fh:
        for _, lines in engine.batches():
            fh.write(b"\n".join(lines))
            fh.write(b"\n")
            if progress is not None and engine.counts["lines"] >= next_report:
                progress(engine.counts["lines"], engine.sim_fraction)
                next_report = engine.counts["lines"] + 50_000
        fh.flush()
    if progress is not None:
        progress(engine.counts["lines"], 1.0)
    if manifest_path is not None:
        with open(manifest_path, "wb") as fh:
            fh.write(orjson.dumps(_manifest(engine.plan, engine.counts, engine.runner.reused),
                                  option=orjson.OPT_INDENT_2))
    if calendar_path is not None:
        with open(calendar_path, "wb") as fh:
            fh.write(orjson.dumps([w.to_json() for w in engine.windows],
                                  option=orjson.OPT_INDENT_2))
    if intents_path is not None:
        with open(intents_path, "wb") as fh:
            fh.writelines(orjson.dumps({"complaint_id": cid, "intent": intent}) + b"\n"
                          for cid, intent in engine.intent_truth or ())
    return dict(engine.counts)
