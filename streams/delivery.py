"""Per-order delivery tracking and the ``overdue_delivery`` signal of each lane.

The pipeline tells :class:`DeliveryTracker` each order's lane (region, carrier) as it
arrives, and each ``shipped`` / ``delivered`` status with its bucket. Statuses are
handled when their bucket closes, in event-time order (``(ts, order_id, status)``), so
the result does not depend on how the orders and order-status topics interleave.

- ``shipped``: the parcel is tracked; it is *due* at ship time + its lane's learned
  transit time (:class:`~detectors.overdue.TransitQuantile`; the carrier's, then the
  market's, while the lane has too few deliveries).
- ``delivered``: its transit time teaches its lane, carrier and the market; if it was
  still tracked it leaves (on time, or late but already counted).
- at its due time a parcel still tracked counts as overdue for its lane; it stays
  tracked (its transit time is still worth learning) until ``horizon_seconds`` after
  it shipped, then is dropped and counted in ``expired``.

Memory is bounded by the parcels shipped within the horizon (a dict entry and a heap
entry each) plus a few floats per lane. Each closed bucket yields, per lane and per
carrier, the parcels that fell due and how many of them were overdue; one
:class:`~detectors.rate_bank.ComplaintRateBank` (the maths of
:class:`~detectors.overdue.OverdueRateDetector`) scores them.

>>> t = DeliveryTracker(bucket_seconds=300, min_deliveries=0, initial_transit=86400)
>>> for order in ("o1", "o2"):
...     t.lanes.current[order] = ("广东", "中通")
>>> t.on_status(0, 0, "o0", "shipped")             # unknown order: not tracked
>>> t.on_status(0, 10, "o1", "shipped"); t.on_status(0, 20, "o2", "shipped"); t.close(0)
{}
>>> t.on_status(43200, 43300, "o1", "delivered"); t.close(43200)  # half a day: on time
{}
>>> due = t.close(86400)           # both due now: o1 came on time, o2 is still on its way
>>> due[("广东", "中通")], due[(None, "中通")]
([2, 1], [2, 1])
"""

from __future__ import annotations

import heapq
import math

import numpy as np

from detectors.overdue import OverdueRateDetector, TransitQuantile
from detectors.rate_bank import RUN_BUCKETS, RUN_EXP, RUN_OBS, ComplaintRateBank
from streams.ingest import GenerationalMap

__all__ = ["DeliveryTracker", "OverdueScorer"]

Lane = tuple  # (region | None, carrier): None = the carrier nationwide


class DeliveryTracker:
    """Shipped parcels in flight, their due times, and learned transit times."""

    def __init__(self, bucket_seconds: int = 300, *, quantile: float = 0.9,
                 horizon_seconds: int = 10 * 86400, lane_memory_seconds: int = 3 * 86400,
                 min_deliveries: int = 300, initial_transit: float = 2 * 86400.0) -> None:
        self.bucket_seconds = bucket_seconds
        self.quantile = quantile
        self.horizon = horizon_seconds
        self.min_deliveries = min_deliveries
        self.initial_transit = initial_transit
        # order id -> (region, carrier), from the order events (kept ~3 days: orders
        # ship within a day and a half).
        self.lanes = GenerationalMap(lane_memory_seconds)
        # order -> [lane, shipped ts, learned?]: each parcel teaches the transit time once
        self.in_flight: dict[str, list] = {}
        # (when, kind, order, lane): kind 0 = due (counted) and learning check, 3 = due
        # (not counted) and learning check, 2 = a later learning check, 1 = expiry. The lane rides along, so a parcel delivered
        # on time is still counted as due for its lane.
        self._heap: list[tuple[int, int, str, Lane]] = []
        self._statuses: dict[int, list[tuple[int, str, str]]] = {}
        self.transit: dict[Lane | None, TransitQuantile] = {}
        self._due: dict[Lane, list[int]] = {}              # lane -> [due, overdue] this bucket
        self.expired = 0

    def on_status(self, bstart: int, epoch: int, order_id: str, status: str) -> None:
        """One order status (not late); only ``shipped`` / ``delivered`` are kept."""
        if status == "shipped" or status == "delivered":
            batch = self._statuses.get(bstart)
            if batch is None:
                batch = self._statuses[bstart] = []
            batch.append((epoch, order_id, status))

    def close(self, bstart: int) -> dict[Lane, list[int]]:
        """Handle the bucket's statuses and due times; return ``{lane: [due, overdue]}``
        for lanes (``(region, carrier)``) and carriers (``(None, carrier)``)."""
        self._due = {}
        for epoch, order_id, status in sorted(self._statuses.pop(bstart, ())):
            self._pop_until(epoch)
            if status == "shipped":
                self._ship(order_id, epoch)
            else:
                self._deliver(order_id, epoch)
        self._pop_until(bstart + self.bucket_seconds - 1)
        self.lanes.prune(bstart)
        return self._due

    def _quantiles(self, lane: Lane) -> list[TransitQuantile]:
        out = []
        for key in (None, (None, lane[1]), lane):
            tq = self.transit.get(key)
            if tq is None:
                # A new lane starts from its carrier's estimate, a carrier from the market's.
                start = out[-1].value if out else self.initial_transit
                tq = self.transit[key] = TransitQuantile(self.quantile, initial=start)
            out.append(tq)
        return out

    def _transit(self, lane: Lane) -> float:
        """Transit time for a parcel shipped now: its lane's, else its carrier's, else the
        market's estimate, once it has ``min_deliveries`` checks behind it."""
        for key in (lane, (None, lane[1]), None):
            tq = self.transit.get(key)
            if tq is not None and tq.n >= self.min_deliveries:
                return tq.value
        return self.initial_transit

    def _ship(self, order_id: str, epoch: int) -> None:
        lane = self.lanes.get(order_id)
        if lane is None or order_id in self.in_flight:
            return   # order unknown (older than memory, or never seen), or a re-ship
        self.in_flight[order_id] = [lane, epoch, False]
        # Counted when due only if dated by its lane's own learned transit time (a
        # parcel dated by a guess would be on time or late by the guess, not the lane).
        own = self.transit.get(lane)
        kind = 0 if (own.n if own is not None else 0) >= self.min_deliveries else 3
        heapq.heappush(self._heap, (epoch + int(self._transit(lane)), kind, order_id, lane))

    def _deliver(self, order_id: str, epoch: int) -> None:
        tracked = self.in_flight.pop(order_id, None)
        if tracked is None or tracked[2]:
            return
        # Delivered before any check said "late": its transit time is known; each of
        # the lane's, carrier's and market's estimates learns whether it was above.
        transit = epoch - tracked[1]
        for tq in self._quantiles(tracked[0]):
            tq.observe(transit > tq.value)

    def _learn_late(self, tracked: list, now: int) -> bool:
        """A parcel still in flight at ``now``: "late" for every estimate it has outlived;
        True when all have learned (else check again when the largest is reached)."""
        done = True
        waited = now - tracked[1]
        for tq in self._quantiles(tracked[0]):
            if waited < tq.value:
                done = False
        if done:
            for tq in self._quantiles(tracked[0]):
                tq.observe(True)
            tracked[2] = True
        return done

    def _pop_until(self, epoch: int) -> None:
        heap = self._heap
        while heap and heap[0][0] <= epoch:
            when, kind, order_id, lane = heapq.heappop(heap)
            tracked = self.in_flight.get(order_id)
            if kind == 1:
                if tracked is not None and tracked[1] + self.horizon <= when:
                    del self.in_flight[order_id]
                    self.expired += 1
                continue
            if tracked is not None and not tracked[2] and not self._learn_late(tracked, when):
                # An estimate grew past this parcel's wait: it will know more later.
                longest = max(tq.value for tq in self._quantiles(lane))
                heapq.heappush(heap, (tracked[1] + int(longest) + 1, 2, order_id, lane))
            if kind == 2:
                continue
            # Due now (counted): still in flight? (delivered parcels already left)
            late = tracked is not None
            if late:
                heapq.heappush(heap, (tracked[1] + self.horizon, 1, order_id, lane))
            if kind == 3:
                continue   # dated by a guess: not counted
            for key in (lane, (None, lane[1])):
                counts = self._due.get(key)
                if counts is None:
                    counts = self._due[key] = [0, 0]
                counts[0] += 1
                counts[1] += late


class OverdueScorer:
    """Scores every lane with due parcels in a bucket (metric ``overdue_delivery``).

    Lane (region x carrier) rows borrow their prior from their carrier's row; carrier
    rows from the market's overdue share. The alarm level rises with the log of the
    number of lanes (as for complaint slices).
    """

    metric = "overdue_delivery"

    def __init__(self, **detector_params: float) -> None:
        params = OverdueRateDetector()._get_params()
        params.update(detector_params)
        self.bank = ComplaintRateBank(**params)
        self.rows: dict[Lane, int] = {}
        self.keys: list[Lane] = []
        self.first_bucket: list[int] = []
        self._carriers = 0   # rows that are carriers nationwide (the rest are lanes)
        self.market_due = self.market_overdue = 0.0
        self._fade = 0.5 ** (1.0 / self.bank.half_life)

    def __len__(self) -> int:
        return len(self.keys)

    def close(self, bucket: int, due: dict[Lane, list[int]], watched: set[Lane],
              learning: bool, warmup_buckets: int):
        from streams.signals import Signal  # noqa: PLC0415 - signals imports this module

        total = sum(n for k, (n, _) in due.items() if k[0] is None)
        late = sum(o for k, (_, o) in due.items() if k[0] is None)
        self.market_due = self.market_due * self._fade + total
        self.market_overdue = self.market_overdue * self._fade + late
        keys = sorted(set(due) | (watched & self.rows.keys()), key=lambda k: (k[0] or "", k[1]))
        if not keys:
            return []
        for key in keys:
            if key not in self.rows:
                self.rows[key] = len(self.keys)
                self.keys.append(key)
                self.first_bucket.append(bucket)
                self._carriers += key[0] is None
                self.bank.add(1, prior_rate=self._market_rate())
        bank = self.bank
        r = np.asarray([self.rows[k] for k in keys], dtype=np.int64)
        # A lane's prior is its carrier's overdue share, a carrier's the market's.
        parents = np.asarray([self.rows.get((None, k[1]), -1) if k[0] is not None else -1
                              for k in keys], dtype=np.int64)
        prior = np.full(len(keys), self._market_rate())
        has = parents >= 0
        if has.any():
            prior[has] = bank.rate(parents[has])
        y = np.asarray([due.get(k, (0, 0))[1] for k in keys], dtype=np.float64)
        n = np.asarray([due.get(k, (0, 0))[0] for k in keys], dtype=np.float64)
        lanes = len(self.keys) - self._carriers
        level_lane = bank.threshold + max(0.0, math.log(max(lanes, 1) / 30.0))
        level = np.asarray([level_lane if k[0] is not None else bank.threshold for k in keys])
        young = np.asarray([learning or bucket - self.first_bucket[i] < warmup_buckets
                            for i in r.tolist()])
        step = bank.step(r, exposure=n, prior=prior, y=y, protect_at=level, learning=young)
        after = bank.state[r]
        rates = bank.rate(r)
        out = []
        # Only alarmed lanes (or ones with an open episode) need a record.
        keep = np.flatnonzero(step.evidence >= level).tolist()
        if watched:
            keep = sorted(set(keep) | {i for i, key in enumerate(keys) if key in watched})
        for i in keep:
            key = keys[i]
            region, carrier = key
            dims = {"carrier": carrier} if region is None else {"region": region, "carrier": carrier}
            evidence = float(step.evidence[i])
            rate = float(rates[i])
            contributors = [{"dimension": "overdue_parcels", "value": int(y[i]), "due": int(n[i]),
                             "share": round(float(y[i] / n[i]), 3) if n[i] else 0.0,
                             "baseline": round(rate, 3)}]
            out.append(Signal(self.metric, dims, float(y[i]), float(step.mu[i]), evidence,
                              float(level[i]), evidence >= level[i] and not young[i],
                              float(after[i, RUN_OBS]), float(after[i, RUN_EXP]),
                              int(after[i, RUN_BUCKETS]), contributors, _Reset(bank, int(r[i]))))
        return out

    def _market_rate(self) -> float:
        return (self.market_overdue + 1.0) / (self.market_due + 10.0)

    def watched(self, firing_keys) -> set[Lane]:
        out = set()
        for key in firing_keys:
            if key[0] != self.metric:
                continue
            dims = dict(key[1:])
            out.add((dims.get("region"), dims["carrier"]))
        return out


class _Reset:
    __slots__ = ("bank", "row")

    def __init__(self, bank: ComplaintRateBank, row: int) -> None:
        self.bank, self.row = bank, row

    def __call__(self) -> None:
        self.bank.reset([self.row])
