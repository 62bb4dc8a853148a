"""Delivery tracking per cohort and the ``overdue_delivery`` signal of each lane.

The pipeline tells :class:`DeliveryTracker` each order's lane (region, carrier) as it
arrives, and each ``shipped`` / ``delivered`` status with its bucket. Statuses are
handled when their bucket closes (new cohorts in lane order, then deliveries in
event-time order, ``(ts, order_id)``), so the result does not depend on how the orders
and order-status topics interleave.

Parcels are counted per **cohort**: the parcels of one lane shipped in one bucket. A
cohort is dated at its bucket's midpoint, so its parcels share one due time (ship time
+ the lane's learned transit time, :class:`~detectors.overdue.TransitQuantile`; the
carrier's, then the market's, while the lane has too few deliveries); a 5-minute
bucket is nothing against transit times of days.

- ``shipped``: the cohort of (lane, bucket) counts one more parcel; the order points
  at its cohort until delivered.
- ``delivered``: the cohort counts one more delivery; its transit time (from the
  cohort's date) teaches its lane, carrier and the market, unless the cohort has
  already answered "late" for its remaining parcels (below).
- when its due bucket closes, a cohort counts ``shipped`` parcels due and ``shipped -
  delivered`` overdue for its lane and carrier (counted only if dated by the lane's own
  estimate: a parcel dated by a guess would be on time or late by the guess).
- once its age passes every estimate of its lane, a cohort's undelivered parcels each
  answer "longer" (censored learning: without it only fast parcels would teach);
  parcels still missing ``horizon_seconds`` after shipping count as ``expired``.

Work per bucket close is per status and per cohort (no heap entry or re-check per
parcel); memory is the cohorts within the horizon (at most lanes x buckets, a few
numbers each) plus one dict slot per parcel in flight (a delivery carries no ship
time, so the order must point at its cohort). Each closed bucket yields, per lane and
per carrier, the parcels that fell due and how many of them were overdue; one
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
>>> len(t.in_flight), t.cohorts
(1, 1)
"""

from __future__ import annotations

import collections
import itertools
import math
import operator
from math import sqrt

import numpy as np

from detectors.overdue import OverdueRateDetector, TransitQuantile, steady_after
from detectors.rate_bank import BankStep, ComplaintRateBank
from streams.ingest import GenerationalMap
from streams.signal_rows import Signal, build_signals

__all__ = ["DeliveryTracker", "OverdueScorer"]

Lane = tuple  # (region | None, carrier): None = the carrier nationwide

#: Closes with at most this many rows (lanes and carriers due, watched lanes) run in
#: Python floats (OverdueScorer._close_small); larger ones in numpy, whose fixed cost
#: per call is then spread over enough rows.
SMALL_CLOSE_ROWS = 256

_epoch_of, _order_of, _status_of = (operator.itemgetter(i) for i in range(3))
#: TransitQuantile's step, and the answers after which its young step is smaller
_STEADY_STEP = TransitQuantile().step
_STEADY_AFTER = steady_after(_STEADY_STEP)


class _Cohort:
    """The parcels of one lane shipped in one bucket."""

    __slots__ = ("lane", "shipped_at", "shipped", "delivered", "counted", "learned", "gone",
                 "chain")

    def __init__(self, lane: Lane, shipped_at: int, shipped: int = 0, counted: bool = False,
                 chain: tuple | None = None) -> None:
        self.lane, self.shipped_at = lane, shipped_at
        self.shipped, self.delivered = shipped, 0
        self.counted = counted  # dated by its lane's own estimate: counts when due
        self.learned = False    # its undelivered parcels have answered "late"
        self.gone = False       # past the horizon: later deliveries are ignored
        # Its lane's (market, carrier, lane) estimates: looking them up by lane hashes
        # the lane tuple again per delivery. Not pickled (the tracker's _chains has
        # them): a restored cohort looks its chain up once.
        self.chain = chain

    def __getstate__(self) -> tuple:
        return (self.lane, self.shipped_at, self.shipped, self.delivered, self.counted,
                self.learned, self.gone)

    def __setstate__(self, state: tuple) -> None:
        (self.lane, self.shipped_at, self.shipped, self.delivered, self.counted,
         self.learned, self.gone) = state
        self.chain = None


class DeliveryTracker:
    """Shipped parcels per cohort, their due times, and learned transit times."""

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
        # order -> its cohort, from shipped until delivered (undelivered ones are
        # forgotten one to two horizons after shipping; their cohort is gone by then).
        self.in_flight = GenerationalMap(horizon_seconds)
        # bucket start -> cohorts due / to check for late learning / to expire then
        self._due_at: dict[int, list[_Cohort]] = {}
        self._check_at: dict[int, list[_Cohort]] = {}
        self._expire_at: dict[int, list[_Cohort]] = {}
        self._statuses: dict[int, list[tuple[int, str, str]]] = {}
        self.transit: dict[Lane | None, TransitQuantile] = {}
        # lane -> (market, carrier, lane) estimates, created once per lane
        self._chains: dict[Lane, tuple[TransitQuantile, ...]] = {}
        self.expired = 0
        self._closing = -1 << 62   # bucket being closed

    #: lane -> its position among all lanes in sorted order (not pickled: rebuilt)
    _lane_rank: dict[Lane, int] | None = None

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state.pop("_lane_rank", None)
        return state

    def _rerank(self, lanes) -> dict[Lane, int]:
        """Ranks of the known lanes and ``lanes`` (sorted once per bucket with new lanes)."""
        known = set(lanes).union(self._lane_rank or ())
        rank = self._lane_rank = {lane: i for i, lane in enumerate(sorted(known))}
        return rank

    @property
    def cohorts(self) -> int:
        """Cohorts still waiting for a due, a late check or the horizon."""
        return len({id(c) for table in (self._due_at, self._check_at, self._expire_at)
                    for cohorts in table.values() for c in cohorts})

    def on_status(self, bstart: int, epoch: int, order_id: str, status: str) -> None:
        """One order status (not late); only ``shipped`` / ``delivered`` are kept."""
        if status == "shipped" or status == "delivered":
            batch = self._statuses.get(bstart)
            if batch is None:
                batch = self._statuses[bstart] = []
            batch.append((epoch, order_id, status))

    def close(self, bstart: int) -> dict[Lane, list[int]]:
        """Handle the bucket's statuses and cohorts; return ``{lane: [due, overdue]}``
        for lanes (``(region, carrier)``) and carriers (``(None, carrier)``)."""
        bs = self.bucket_seconds
        self._closing = bstart
        statuses = self._statuses.pop(bstart, None)
        if statuses:
            # One pass over the statuses splits them (ship first, then deliveries).
            shipped = list(map(operator.eq, map(_status_of, statuses), itertools.repeat("shipped")))
            self._ship(list(itertools.compress(map(_order_of, statuses), shipped)),
                       bstart + bs // 2)
            self._deliver(list(itertools.compress(statuses, map(operator.not_, shipped))))
        due: dict[Lane, list[int]] = {}
        check = self._check_at.pop(bstart, [])
        for cohort in self._due_at.pop(bstart, ()):
            late = cohort.shipped - cohort.delivered
            if cohort.counted:
                lane = cohort.lane
                for key in (lane, (None, lane[1])):   # the lane, its carrier nationwide
                    counts = due.get(key)
                    if counts is None:
                        due[key] = [cohort.shipped, late]
                    else:
                        counts[0] += cohort.shipped
                        counts[1] += late
            if late:
                check.append(cohort)
        now = bstart + bs - 1
        chains, horizon = self._chains, self.horizon
        recheck, learned = [], []   # (epoch, cohort) to queue, in turn
        for cohort in check:
            # Undelivered parcels of a cohort older than every estimate of its lane
            # answer "longer" (once); else look again when the largest is reached.
            remaining = cohort.shipped - cohort.delivered
            if cohort.learned or cohort.gone or not remaining:
                continue
            chain = cohort.chain
            if chain is None:
                chain = cohort.chain = chains[cohort.lane]
            market, carrier, lane = chain
            # max(market.value, carrier.value, lane.value) without the call
            longest = market.value
            if carrier.value > longest:
                longest = carrier.value
            if lane.value > longest:
                longest = lane.value
            if now - cohort.shipped_at < longest:
                # An estimate grew past this cohort's wait: it will know more later.
                recheck.append((cohort.shipped_at + int(longest) + 1, cohort))
            else:
                for tq in chain:
                    tq.observe_longer(remaining)
                cohort.learned = True
                learned.append((cohort.shipped_at + horizon, cohort))
        self._queue(self._check_at, recheck)
        self._queue(self._expire_at, learned)
        for cohort in self._expire_at.pop(bstart, ()):
            cohort.gone = True
            self.expired += cohort.shipped - cohort.delivered
        self.lanes.prune(bstart)
        self.in_flight.prune(bstart)
        return due

    def _ship(self, orders: list[str], shipped_at: int) -> None:
        """The bucket's shipped parcels (their orders) join their lane's new cohort, dated
        by the lane's estimates (in lane order: the order cohorts are checked in is fixed)."""
        # Orders are looked up in C (map, compress): a simulated lane ships ~2 parcels a
        # bucket, so this is per-parcel work.
        if not orders:
            return
        lanes = list(map(self.lanes.current.get, orders))     # in C
        if None in lanes:
            # Orders placed before the lane map's last turn (up to ~40 % of a bucket's):
            # those found now, then the others looked up in the older generation, all
            # in C. The parcels' order within the bucket does not matter (cohorts are
            # counted per lane and made in lane order).
            found = list(map(operator.is_not, lanes, itertools.repeat(None)))
            older = list(itertools.compress(orders, map(operator.not_, found)))
            orders = list(itertools.compress(orders, found)) + older
            lanes = (list(itertools.compress(lanes, found))
                     + list(map(self.lanes.previous.get, older)))
        now, before = self.in_flight.current, self.in_flight.previous
        # Unknown orders (older than memory, or never seen) are not tracked; rare, so the
        # bucket is filtered order by order only when it has one.
        if None in lanes or (before and not before.keys().isdisjoint(orders)):
            keep = [lane is not None and o not in before for o, lane in zip(orders, lanes)]
            orders = list(itertools.compress(orders, keep))
            lanes = list(itertools.compress(lanes, keep))
        # Each order points at its lane's new cohort (filled in below, in lane order).
        # setdefault adds the order once and leaves an order re-shipped while in flight
        # with its cohort: when the map grew by one per order (the common case), all
        # were new and distinct, with no lookup besides the insert.
        fresh = {lane: _Cohort(lane, shipped_at) for lane in dict.fromkeys(lanes)}
        size = len(now)
        known = list(map(now.setdefault, orders, map(fresh.__getitem__, lanes)))   # in C
        if len(now) - size == len(orders):
            counts = collections.Counter(lanes)
        else:   # re-ships (not tracked again) or an order shipped twice (counted once)
            kept = [fresh[lane] is cohort for lane, cohort in zip(lanes, known)]
            counts = collections.Counter(dict(zip(itertools.compress(orders, kept),
                                                  itertools.compress(lanes, kept))).values())
        # Lanes in sorted order, by rank: comparing tuples of Chinese names costs ~1/4
        # of this method with a hundred lanes a bucket; ints sort in a fraction of it.
        # (rank, lane, parcels) triples: ranks are distinct, so only ints are compared.
        rank = self._lane_rank
        ranks = None if rank is None else list(map(rank.get, counts))
        if ranks is None or None in ranks:   # a lane not ranked yet
            rank = self._rerank(counts)
            ranks = list(map(rank.__getitem__, counts))
        chains, least, initial = self._chains, self.min_deliveries, self.initial_transit
        queued = []   # (due epoch, cohort) in lane order
        for _, lane, shipped in sorted(zip(ranks, counts, counts.values())):
            chain = chains.get(lane) or self._chain(lane)
            market, carrier, own = chain
            # Dated by the first estimate with enough deliveries: the lane's, the
            # carrier's, the market's, else the initial guess.
            counted = own.n >= least
            if counted:
                transit = own.value
            elif carrier.n >= least:
                transit = carrier.value
            elif market.n >= least:
                transit = market.value
            else:
                transit = initial
            cohort = fresh[lane]
            cohort.shipped, cohort.counted, cohort.chain = shipped, counted, chain
            queued.append((shipped_at + int(transit), cohort))
        self._queue(self._due_at, queued)

    def _deliver(self, delivered: list) -> None:
        """The bucket's deliveries (its ``delivered`` statuses) in event-time order (the
        learning order matters)."""
        if not delivered:
            return
        # (epoch, order, "delivered") sorts as (epoch, order): the status is the same.
        delivered.sort()
        now, before = self.in_flight.current, self.in_flight.previous
        orders = list(map(_order_of, delivered))
        cohorts = list(map(now.pop, orders, itertools.repeat(None)))   # in C
        if None in cohorts:
            cohorts = [c if c is not None else before.pop(o, None) for o, c in zip(orders, cohorts)]
        chains = self._chains
        steady_step, steady = _STEADY_STEP, _STEADY_AFTER
        # The market's estimate is in every lane's chain; each estimate's answers
        # depend on its own earlier ones only, so it learns after the loop, from the
        # transit times in the same order (TransitQuantile.observe_transits).
        transits = []
        for epoch, cohort in zip(map(_epoch_of, delivered), cohorts):
            if cohort is None or cohort.gone:
                continue
            cohort.delivered += 1
            if cohort.learned:
                continue
            # Delivered before its cohort answered "late": its transit time is known;
            # the carrier's and lane's estimates learn from it here
            # (TransitQuantile.observe, inlined: this runs per delivery), the market's
            # after the loop (observe_transits).
            transit = epoch - cohort.shipped_at
            transits.append(transit)
            chain = cohort.chain
            if chain is None:
                chain = cohort.chain = chains[cohort.lane]
            for tq in chain[1:]:   # the carrier's and the lane's
                n = tq.n = tq.n + 1
                value = tq.value
                step = tq.step
                # An estimate past its young steps moves by ``step`` (what max() returns
                # then: detectors.overdue.steady_after); a carrier's is there after its
                # first few thousand deliveries.
                delta = (step if n >= steady and step == steady_step
                         else max(step, 0.3 / sqrt(n + 9))) * value
                tq.value = (value + delta * tq.q if transit > value
                            else value - delta * (1.0 - tq.q))
        if transits:
            market = self.transit[None]
            market.observe_transits(transits, steady if market.step == steady_step else None)

    def _queue(self, table: dict[int, list[_Cohort]], queued: list[tuple[int, _Cohort]]) -> None:
        """Append each ``(epoch, cohort)`` in turn to the cohorts of its epoch's bucket,
        never the closing bucket or earlier (those are done). One call per table and
        close, not per cohort: this is per-cohort work."""
        bs = self.bucket_seconds
        floor = self._closing + bs
        for epoch, cohort in queued:
            at = epoch - epoch % bs
            if at < floor:
                at = floor
            cohorts = table.get(at)
            if cohorts is None:
                table[at] = [cohort]
            else:
                cohorts.append(cohort)

    def _chain(self, lane: Lane) -> tuple[TransitQuantile, ...]:
        """The market's, carrier's and lane's estimates (created on first sight: a new
        lane starts from its carrier's estimate, a carrier from the market's)."""
        out = []
        for key in (None, (None, lane[1]), lane):
            tq = self.transit.get(key)
            if tq is None:
                start = out[-1].value if out else self.initial_transit
                tq = self.transit[key] = TransitQuantile(self.quantile, initial=start)
            out.append(tq)
        chain = self._chains[lane] = tuple(out)
        return chain


class OverdueScorer:
    """Scores every lane with due parcels in a bucket (metric ``overdue_delivery``).

    Lane (region x carrier) rows borrow their prior from their carrier's row; carrier
    rows from the market's overdue share. The alarm level rises with the log of the
    number of lanes (as for complaint slices). Per row, numpy arrays hold what a close
    needs (parent row, lane or carrier, first bucket), so a close does no Python work
    per lane beyond looking its row up; records are built for alarmed lanes only.
    """

    metric = "overdue_delivery"

    def __init__(self, **detector_params: float) -> None:
        params = OverdueRateDetector()._get_params()
        params.update(detector_params)
        self.bank = ComplaintRateBank(**params)
        self.rows: dict[Lane, int] = {}
        self.keys: list[Lane] = []
        self.first_bucket = np.zeros(64, dtype=np.int64)
        self.parent_row = np.full(64, -1, dtype=np.int64)   # a lane's carrier row
        self.is_lane = np.zeros(64, dtype=bool)
        self._carriers = 0   # rows that are carriers nationwide (the rest are lanes)
        self.market_due = self.market_overdue = 0.0
        self._fade = 0.5 ** (1.0 / self.bank.half_life)

    def __len__(self) -> int:
        return len(self.keys)

    def close(self, bucket: int, due: dict[Lane, list[int]], watched: set[Lane],
              learning: bool, warmup_buckets: int) -> list[Signal]:
        keys = list(due)
        if watched:
            keys += sorted(watched & self.rows.keys() - due.keys(), key=_lane_order)
        if not keys:   # nothing due (half the closes of a small network): only the fade
            self.market_due = self.market_due * self._fade + 0
            self.market_overdue = self.market_overdue * self._fade + 0
            return []
        if len(keys) <= SMALL_CLOSE_ROWS:
            return self._close_small(bucket, due, keys, watched, learning, warmup_buckets)
        counts = np.fromiter(itertools.chain.from_iterable(
            map(due.get, keys, itertools.repeat((0, 0)))), dtype=np.float64, count=2 * len(keys))
        n, y = counts[0::2], counts[1::2]
        # A close of a few dozen lanes costs its number of numpy calls and dict
        # lookups, not its arithmetic: each is made once.
        market = np.fromiter(map(operator.is_, map(_region, keys), itertools.repeat(None)),
                             dtype=bool, count=len(keys))   # carriers nationwide
        market[len(due):] = False   # watched lanes without due parcels add nothing
        # Sums of counts (exact in float64 in any order).
        self.market_due = self.market_due * self._fade + int(n @ market)
        self.market_overdue = self.market_overdue * self._fade + int(y @ market)
        bank = self.bank
        r = np.fromiter(map(self.rows.get, keys, itertools.repeat(-1)), dtype=np.int64,
                        count=len(keys))
        if r.min() < 0:
            self._add_new(keys, np.flatnonzero(r < 0).tolist(), bucket)
            r = np.fromiter(map(self.rows.__getitem__, keys), dtype=np.int64, count=len(keys))
        # A lane's prior is its carrier's overdue share, a carrier's the market's.
        parents = self.parent_row[r]
        prior = np.where(parents >= 0, bank.rate(np.maximum(parents, 0)), self._market_rate())
        level = np.where(self.is_lane[r], self._lane_level(), bank.threshold)
        young = (bucket - self.first_bucket[r] < warmup_buckets) | learning
        step = bank.step(r, exposure=n, prior=prior, y=y, protect_at=level, learning=young)
        # Only alarmed lanes (or ones with an open episode) need a record.
        keep = set(np.flatnonzero(step.evidence >= level).tolist())
        if watched:
            keep |= {i for i, key in enumerate(keys) if key in watched}
        return self._signals(keys, keep, r, step, n, y, level, young)

    def _close_small(self, bucket: int, due: dict[Lane, list[int]], keys: list[Lane],
                     watched: set[Lane], learning: bool, warmup_buckets: int) -> list[Signal]:
        """:meth:`close` for a few hundred rows at most, in Python floats.

        A numpy call costs a few microseconds whatever its size, and the numpy close
        makes ~70 of them: with a few dozen lanes due (a regional network, most
        closes) that was most of its cost. Here the rows are gathered and scattered
        with one call each and stepped by :meth:`ComplaintRateBank.step_few`, which
        is :meth:`ComplaintRateBank.step` operation for operation in IEEE doubles
        (``tests/detectors/test_overdue_small_close.py``: the same bits as the numpy
        path on random closes)."""
        pairs = list(map(due.get, keys, itertools.repeat((0, 0))))
        # Watched lanes without due parcels add nothing; carriers nationwide do.
        carriers = list(itertools.compress(
            pairs, map(operator.is_, map(_region, keys[:len(due)]), itertools.repeat(None))))
        self.market_due = self.market_due * self._fade + sum(map(_first, carriers))
        self.market_overdue = self.market_overdue * self._fade + sum(map(_second, carriers))
        counts = np.fromiter(itertools.chain.from_iterable(pairs), dtype=np.float64,
                             count=2 * len(keys)).reshape(-1, 2)   # [due, overdue] per row
        bank = self.bank
        r = list(map(self.rows.get, keys, itertools.repeat(-1)))
        if min(r) < 0:
            self._add_new(keys, [i for i, row in enumerate(r) if row < 0], bucket)
            r = list(map(self.rows.__getitem__, keys))
        at = np.array(r, dtype=np.int64)
        prior = bank.rates_of_rows(self.parent_row[at], self._market_rate())
        level = np.where(self.is_lane[at], self._lane_level(), bank.threshold)
        young = (bucket - self.first_bucket[at] < warmup_buckets) | learning
        mu, evidence, alarmed = bank.step_few(at, counts=counts, prior=prior,
                                              protect_at=level, learning=young)
        keep = set(alarmed)
        if watched:
            keep |= {i for i, key in enumerate(keys) if key in watched}
        return self._signals(keys, keep, at, BankStep(mu, evidence), counts[:, 0], counts[:, 1],
                             level, young)

    def _signals(self, keys, keep: set[int], r: np.ndarray, step: BankStep, n: np.ndarray,
                 y: np.ndarray, level: np.ndarray, young: np.ndarray) -> list[Signal]:
        if not keep:
            return []
        bank = self.bank
        keep = sorted(keep, key=lambda i: _lane_order(keys[i]))
        rates = bank.rate(r)

        def dims(i: int) -> dict:
            region, carrier = keys[i]
            return {"carrier": carrier} if region is None else {"region": region, "carrier": carrier}

        def contributors(i: int) -> list[dict]:
            return [{"dimension": "overdue_parcels", "value": int(y[i]), "due": int(n[i]),
                     "share": round(float(y[i] / n[i]), 3) if n[i] else 0.0,
                     "baseline": round(float(rates[i]), 3)}]

        return build_signals(
            self.metric, keep, rows=r, bank=bank, step=step, observed=y, level=level,
            dims=dims, pages=lambda i, evidence, *_: evidence >= level[i] and not young[i],
            contributors=contributors)

    def _add_new(self, keys: list[Lane], new: list[int], bucket: int) -> None:
        for key in sorted((keys[i] for i in new), key=_lane_order):   # carriers first
            self._add(key, bucket)

    def _lane_level(self) -> float:
        """Alarm level of a lane: raised with the log of the number of lanes."""
        lanes = len(self.keys) - self._carriers
        return self.bank.threshold + max(0.0, math.log(max(lanes, 1) / 30.0))

    def _add(self, key: Lane, bucket: int) -> None:
        row = self.rows[key] = len(self.keys)
        self.keys.append(key)
        if row >= len(self.first_bucket):
            size = 2 * len(self.first_bucket)
            self.first_bucket = np.resize(self.first_bucket, size)
            self.parent_row = np.resize(self.parent_row, size)
            self.is_lane = np.resize(self.is_lane, size)
        self.first_bucket[row] = bucket
        lane = key[0] is not None
        self.is_lane[row] = lane
        if lane:
            self.parent_row[row] = self.rows.get((None, key[1]), -1)
        else:
            self.parent_row[row] = -1
            self._carriers += 1
            # Lanes seen before their carrier (not from the tracker) adopt it now.
            for other, at in self.rows.items():
                if other[0] is not None and other[1] == key[1]:
                    self.parent_row[at] = row
        self.bank.add(1, prior_rate=self._market_rate())

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


def _lane_order(key: Lane) -> tuple:
    return (key[0] or "", key[1])


_region = operator.itemgetter(0)
_first, _second = operator.itemgetter(0), operator.itemgetter(1)
