"""Incidents: the ground truth a detector should find, planned from the seed alone.

Planning needs no events: the expected *normal* complaints of a slice during a window
come from the market model (:meth:`World.slice_intent_rates`) times the complaint
exposure curve (:func:`complaint_exposure`). The incident then adds
``expected_extra_complaints`` of its intent, spread uniformly over its window, so the
slice's rate for that intent becomes ``multiplier`` times normal.

The multiplier is drawn in [3, 8], but the extra count is floored at
:data:`MIN_EXTRA` complaints and at 60% of the slice's *all-intent* normal count over the
window: a small slice gets a larger multiplier rather than an invisible incident.

The floors are absolute (tens of complaints an hour, sized for the default market of
50k orders a day), so two caps keep them proportional to the orders there are: an
incident brings at most :data:`MAX_EXTRA_OF_SLICE_ORDERS` times its slice's expected
recent orders, and all incidents together at most :data:`INCIDENT_BUDGET` of the run's
expected orders. Neither binds in the default market; in a small one (a hundred orders
a day, or a run of hours) an incident that the caps leave under :data:`MIN_EXTRA`
complaints is not planned: the manifest lists only incidents with complaints enough to
be seen, and ``riskwatch simulate`` warns about the ones it left out.

Each extra complaint refers to a *different* recent order of the slice (drawn without
replacement), as many customers with many parcels would write; only a slice with fewer
recent orders than extra complaints reuses orders, and the manifest written with the
events says how many (``reused_orders``).

Kinds and what they touch:

==========================  ==================  ================================================
kind                        dimensions          extra complaints
==========================  ==================  ================================================
carrier_region_delay        region, carrier     delivery_delay and pickup_urge (same multiplier);
                                                deliveries of the slice are late as well
region_lost_parcel          region              lost_parcel, all carriers
carrier_damage              carrier             damaged, nationwide
merchant_quality            merchant_id         quality (one mid/large shop)
merchant_fake_shipment      merchant_id         fake_shipment (one mid/large shop)
==========================  ==================  ================================================
"""

from __future__ import annotations

import dataclasses
import logging
import math

import numpy as np

from riskwatch.errors import ConfigError
from riskwatch.simulator.config import SimulationConfig
from riskwatch.simulator.seasonality import CHINA_OFFSET, Window, rfc3339
from riskwatch.simulator.world import (
    CARRIER_NAMES,
    CARRIER_SHARE,
    INTENT_INDEX,
    REGION_DEMAND,
    REGION_NAMES,
    World,
)

__all__ = ["INCIDENT_BUDGET", "KINDS", "MAX_EXTRA_OF_SLICE_ORDERS", "MIN_EXTRA", "Incident",
           "IncidentRunner", "plan_incidents"]

_log = logging.getLogger(__name__)

KINDS: tuple[str, ...] = ("carrier_region_delay", "region_lost_parcel", "carrier_damage",
                          "merchant_quality", "merchant_fake_shipment")
_KIND_WEIGHTS = (0.30, 0.15, 0.15, 0.25, 0.15)
_KIND_INTENTS: dict[str, tuple[str, ...]] = {
    "carrier_region_delay": ("delivery_delay", "pickup_urge"),
    "region_lost_parcel": ("lost_parcel",),
    "carrier_damage": ("damaged",),
    "merchant_quality": ("quality",),
    "merchant_fake_shipment": ("fake_shipment",),
}
#: Which orders an incident complaint refers to: parcels in transit at the complaint
#: time, parcels already delivered, or (fake shipment) parcels marked shipped.
_ORDER_STATE = {
    "carrier_region_delay": "transit", "region_lost_parcel": "transit",
    "carrier_damage": "delivered", "merchant_quality": "delivered",
    "merchant_fake_shipment": "shipped",
}
#: Alert metrics that see a kind besides ``complaint_rate`` (a hub jam delays parcels).
_KIND_METRICS: dict[str, tuple[str, ...]] = {
    "carrier_region_delay": ("complaint_rate", "overdue_delivery"),
}
#: Minimum extra complaints of the main intent per incident.
MIN_EXTRA = 15
#: Range of the minimum extra complaints *per hour* of an incident: an incident worth
#: paging about (a jammed hub, a bad batch of goods) brings tens of complaints an hour
#: however small the slice's normal volume is.
EXTRA_PER_HOUR = (18.0, 40.0)
#: Extra >= this share of the slice's normal complaints (all intents) over the window.
MIN_EXTRA_OF_SLICE = 0.6
#: Extra <= this multiple of the slice's expected orders placed since the run start (at
#: most _LOOKBACK before the incident) up to its end. Each extra complaint is about a
#: different recent order of the slice (IncidentRunner draws them without replacement),
#: so about 1x is what a slice can bring; the 25% on top is for the realised orders,
#: which scatter around the expectation the plan knows (seed 7's fake-shipment shop: 126
#: complaints against 114 expected orders, and none reused). In the default market
#: (50k orders/day, 2000 shops) it never binds (at most 1.10 over seeds 0-39); in a
#: market of a hundred orders a day it stops 15 complaints an hour from a slice with a
#: handful of orders.
MAX_EXTRA_OF_SLICE_ORDERS = 1.25
#: All incidents together add at most this share of the run's expected orders as
#: complaints. Normal complaints are ~2% of orders (BASE_COMPLAINT_RATE 1.5% x shop,
#: carrier and category factors, plus repeats); incidents are exceptions on top, and 10%
#: (five times the normal volume) still leaves room for a dozen visible incidents in a
#: run of a few thousand orders. The default runs use far less (2 days: 0.8%, the week:
#: 0.16%); the cap only stops a dozen incidents from outnumbering a small market's orders.
INCIDENT_BUDGET = 0.1
_STEP = 300            # windows align to 5-minute buckets
_GAP = 3600            # keep conflicting incidents at least an hour apart
_LOOKBACK = 5 * 86400  # incident complaints refer to orders at most this old


@dataclasses.dataclass(frozen=True, eq=False)
class Incident:
    """One planned incident. ``times`` are the epoch seconds of its extra complaints."""

    id: str
    kind: str
    start: int
    end: int
    region: int | None
    carrier: int | None
    merchant: int | None
    dimensions: dict[str, str]
    multiplier: float
    extra: dict[str, int]          # extra complaints by intent (main intent first)
    normal: float                  # expected normal complaints of the main intent
    times: np.ndarray
    intents: np.ndarray            # intent index of each extra complaint

    @property
    def intent(self) -> str:
        return _KIND_INTENTS[self.kind][0]

    def to_json(self) -> dict:
        return {
            "id": self.id, "kind": self.kind, "dimensions": dict(self.dimensions),
            "intent": self.intent, "start": rfc3339(self.start), "end": rfc3339(self.end),
            # The alert metrics that should see it (riskwatch evaluate matches by them).
            "metrics": list(_KIND_METRICS.get(self.kind, ("complaint_rate",))),
            # A jam delays deliveries due until 12 h after it (delay_deliveries), by
            # 4-24 h: those parcels fall overdue up to a day after the jam clears.
            **({"effect_end": {"overdue_delivery": rfc3339(self.end + 36 * 3600)}}
               if self.kind == "carrier_region_delay" else {}),
            "multiplier": round(self.multiplier, 2),
            "expected_extra_complaints": self.extra[self.intent],
            # Beyond the contract's keys: the normal baseline and the secondary intents.
            "expected_normal_complaints": round(self.normal, 2),
            "extra_by_intent": dict(self.extra),
        }

    def matches(self, region: np.ndarray, carrier: np.ndarray,
                merchant: np.ndarray) -> np.ndarray:
        """Mask of orders that belong to this incident's slice."""
        mask = np.ones(len(region), dtype=bool)
        if self.region is not None:
            mask &= region == self.region
        if self.carrier is not None:
            mask &= carrier == self.carrier
        if self.merchant is not None:
            mask &= merchant == self.merchant
        return mask


def _dims(world: World, region: int | None, carrier: int | None,
          merchant: int | None) -> dict[str, str]:
    out = {}
    if region is not None:
        out["region"] = REGION_NAMES[region]
    if carrier is not None:
        out["carrier"] = CARRIER_NAMES[carrier]
    if merchant is not None:
        out["merchant_id"] = world.merchant_ids[merchant]
    return out


def _choose_slice(kind: str, world: World, rng: np.random.Generator,
                  start: int) -> tuple[int | None, int | None, int | None]:
    top_regions = np.argsort(-REGION_DEMAND)
    if kind in ("carrier_region_delay", "region_lost_parcel"):
        pool = top_regions[:12] if kind == "carrier_region_delay" else top_regions[:16]
        p = REGION_DEMAND[pool] ** (1.0 if kind == "carrier_region_delay" else 0.5)
        region = int(rng.choice(pool, p=p / p.sum()))
        carrier = int(rng.choice(len(CARRIER_NAMES), p=CARRIER_SHARE)) \
            if kind == "carrier_region_delay" else None
        return region, carrier, None
    if kind == "carrier_damage":
        return None, int(rng.choice(len(CARRIER_NAMES), p=CARRIER_SHARE)), None
    # Merchant incidents hit an established mid/large shop (rank 2-60, or 3-100).
    low, high = (2, 60) if kind == "merchant_quality" else (3, 100)
    established = world.open_at <= start
    pool = np.flatnonzero(established & (world.rank >= low) & (world.rank <= high))
    if len(pool) == 0:
        pool = np.flatnonzero(established)
    return None, None, int(rng.choice(pool))


def _overlaps(a0: int, a1: int, b0: int, b1: int, gap: int) -> bool:
    return a0 < b1 + gap and b0 < a1 + gap


def _conflicts(new: tuple[int, int, dict[str, str]], placed: list[tuple[int, int, dict]],
               strict: bool) -> bool:
    s, e, dims = new
    for s2, e2, dims2 in placed:
        if not _overlaps(s, e, s2, e2, _GAP):
            continue
        if strict or set(dims.items()) & set(dims2.items()):
            return True
    return False


def _pick_start(profile: str, duration: int, lo: int, hi: int, promos: list[Window],
                rng: np.random.Generator) -> int:
    """A window start in [lo, hi - duration], aligned to 5 minutes, shaped by ``profile``."""
    latest = hi - duration
    if profile == "night":
        # 00:00-04:00 local on a random day, when few people order or complain.
        first_day = (lo + CHINA_OFFSET) // 86400
        last_day = (latest + CHINA_OFFSET) // 86400
        day = int(rng.integers(first_day, last_day + 1))
        t = day * 86400 - CHINA_OFFSET + int(rng.integers(0, 4 * 3600))
    elif profile == "promotion":
        w = promos[int(rng.integers(len(promos)))]
        t = w.start + int(rng.integers(-3600, int((w.end - w.start) * 0.6)))
    else:
        t = int(rng.integers(lo, max(lo, latest) + 1))
    t = -(-t // _STEP) * _STEP
    return min(max(t, -(-lo // _STEP) * _STEP), latest - latest % _STEP)


def plan_incidents(config: SimulationConfig, world: World, exposure: np.ndarray,
                   windows: list[Window], intensity: np.ndarray) -> list[Incident]:
    """The incidents of a config, deterministic for its seed.

    ``exposure`` is :func:`complaint_exposure` and ``intensity`` the expected orders,
    per simulated minute. Raises :class:`ConfigError` (naming ``incidents``) when they
    cannot be placed in time; returns fewer than ``config.incidents`` when the market
    has too few orders for some of them (see :data:`INCIDENT_BUDGET`).
    """
    n = config.incidents
    if n == 0:
        return []
    rng = np.random.default_rng([config.seed, 1])
    kinds = list(rng.permutation(KINDS))
    if n > len(KINDS):
        kinds += list(rng.choice(KINDS, size=n - len(KINDS), p=_KIND_WEIGHTS))
    kinds = [str(k) for k in kinds[:n]]
    start, end = config.start_epoch, config.end_epoch
    # Leave time for the order history an incident's complaints refer to.
    # The first day is the detectors' learning period (they page only after a day of
    # history), so incidents start after it.
    lo = start + min(24 * 3600, (end - start) // 3)
    # ... and time after it, for the detector to see it end (and agents to label it).
    hi = end - min(2 * 3600, (end - lo) // 6)
    promos = [w for w in windows if w.kind == "promotion"]
    placed: list[tuple[int, int, dict]] = []
    incidents: list[Incident] = []
    budget = INCIDENT_BUDGET * float(intensity.sum())
    for i, kind in enumerate(kinds):
        profile = "night" if i == 0 else ("promotion" if i == 1 and promos else "any")
        for attempt in range(400):
            # Log-uniform 30 min - 6 h, but never more than a third of the usable span.
            longest = min(6 * 3600, max(_STEP * 6, (hi - lo) // 3))
            duration = int(math.exp(rng.uniform(math.log(1800), math.log(max(1800, longest)))))
            duration = max(1800, duration - duration % _STEP)
            if lo + duration > hi:
                raise ConfigError(
                    f"incidents: the simulation is too short for {n} incident(s) "
                    f"(days={config.days:g}); use fewer incidents or more days")
            t0 = _pick_start(profile if attempt < 200 else "any", duration, lo, hi,
                             promos, rng)
            region, carrier, merchant = _choose_slice(kind, world, rng, start)
            dims = _dims(world, region, carrier, merchant)
            if not _conflicts((t0, t0 + duration, dims), placed, strict=attempt < 100):
                break
        else:
            raise ConfigError(
                f"incidents: cannot place {n} non-overlapping incidents in {config.days:g} "
                f"day(s); use fewer incidents or more days")
        limit = min(budget, MAX_EXTRA_OF_SLICE_ORDERS * _slice_orders(
            t0, t0 + duration, region, carrier, merchant, world, intensity, config))
        incident = _size(f"inc-{len(incidents) + 1:02d}", kind, t0, t0 + duration, region,
                         carrier, merchant, dims, world, exposure, config, rng, limit)
        # A dropped incident keeps its window taken: the ones after it are planned as if
        # it were there, so a market a little too small loses it and changes nothing else.
        placed.append((t0, t0 + duration, dims))
        if incident is None:   # too few orders for a visible incident: none
            continue
        budget -= sum(incident.extra.values())
        incidents.append(incident)
    return incidents


def _slice_orders(t0: int, t1: int, region: int | None, carrier: int | None,
                  merchant: int | None, world: World, intensity: np.ndarray,
                  config: SimulationConfig) -> float:
    """Expected orders of a slice that complaints in ``[t0, t1)`` may refer to: placed
    since the run start, at most _LOOKBACK before ``t0``, up to ``t1``."""
    start = config.start_epoch
    m0 = (max(start, t0 - _LOOKBACK) - start) // 60
    m1 = -(-(t1 - start) // 60)
    return float(intensity[m0:m1].sum()) * world.slice_order_share(
        t0, region=region, carrier=carrier, merchant=merchant)


def _size(incident_id: str, kind: str, t0: int, t1: int, region: int | None,
          carrier: int | None, merchant: int | None, dims: dict[str, str], world: World,
          exposure: np.ndarray, config: SimulationConfig, rng: np.random.Generator,
          limit: float) -> Incident | None:
    """Choose the multiplier and the extra complaints of one incident: at most
    ``limit`` of them (all intents), or None when that leaves fewer than MIN_EXTRA."""
    m0 = (t0 - config.start_epoch) // 60
    m1 = -(-(t1 - config.start_epoch) // 60)
    window_exposure = float(exposure[m0:m1].sum())
    rates = world.slice_intent_rates(t0, region=region, carrier=carrier, merchant=merchant)
    normal = window_exposure * rates
    intents = _KIND_INTENTS[kind]
    main = normal[INTENT_INDEX[intents[0]]]
    hours = (t1 - t0) / 3600
    wanted = max(MIN_EXTRA, rng.uniform(*EXTRA_PER_HOUR) * hours,
                 (rng.uniform(3.0, 8.0) - 1.0) * main, MIN_EXTRA_OF_SLICE * normal.sum())
    multiplier = 1.0 + wanted / max(main, 1e-9)
    extra = {intent: int(round((multiplier - 1.0) * normal[INTENT_INDEX[intent]]))
             for intent in intents}
    extra[intents[0]] = max(extra[intents[0]], MIN_EXTRA)
    codes = np.concatenate([np.full(c, INTENT_INDEX[i], dtype=np.int64)
                            for i, c in extra.items()])
    times = rng.integers(t0, t1, size=len(codes))
    total = sum(extra.values())
    if total > limit:
        # Fewer of each intent, in proportion. The times were drawn for all of them, so
        # the incidents planned after this one see the same random stream, and each
        # intent keeps the first of its draws (independent, so a uniform sample).
        kept = {i: int(c * limit / total) for i, c in extra.items()}
        if kept[intents[0]] < MIN_EXTRA:
            return None
        keep = np.concatenate([np.arange(c) < kept[i] for i, c in extra.items()])
        codes, times, extra = codes[keep], times[keep], kept
        multiplier = 1.0 + extra[intents[0]] / max(main, 1e-9)
    order = np.argsort(times, kind="stable")
    return Incident(incident_id, kind, t0, t1, region, carrier, merchant, dims,
                    float(multiplier), extra, float(main), times[order], codes[order])


@dataclasses.dataclass
class _Candidates:
    """Recent orders of one incident's slice (parallel arrays, appended per hour)."""

    parts: list[tuple[np.ndarray, ...]] = dataclasses.field(default_factory=list)
    merged: tuple[np.ndarray, ...] | None = None

    def add(self, columns: tuple[np.ndarray, ...]) -> None:
        if len(columns[0]):
            self.parts.append(columns)
            self.merged = None

    def columns(self) -> tuple[np.ndarray, ...] | None:
        if self.merged is None and self.parts:
            self.merged = tuple(np.concatenate(c) for c in zip(*self.parts))
            self.parts = [self.merged]
        return self.merged


class IncidentRunner:
    """Ties each planned extra complaint to a real, recent order of the incident's slice.

    The traffic engine calls :meth:`observe` with every hour of orders (before asking for
    that hour's incident complaints) and :meth:`complaints` for each hour.
    """

    #: Columns of an observed order: index, ts, merchant, region, carrier, category,
    #: amount (cents), shipped ts, delivered ts.
    N_COLUMNS = 9

    def __init__(self, incidents: list[Incident], seed: int) -> None:
        self.incidents = incidents
        self._rng = np.random.default_rng([seed, 5])
        self._candidates = [_Candidates() for _ in incidents]
        self._used = [np.zeros(0, bool) for _ in incidents]
        #: Incident complaints that had to reuse an order, per incident (manifest).
        self.reused = [0] * len(incidents)

    def delay_deliveries(self, ts_delivered: np.ndarray, region: np.ndarray,
                         carrier: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Deliveries of a hub jam's slice due during (or just after) the jam come late."""
        out = ts_delivered
        for inc in self.incidents:
            if inc.kind != "carrier_region_delay":
                continue
            hit = ((region == inc.region) & (carrier == inc.carrier)
                   & (out >= inc.start) & (out < inc.end + 12 * 3600))
            if hit.any():
                out = out.copy()
                late = np.maximum(out[hit], inc.end) + rng.integers(4 * 3600, 24 * 3600, hit.sum())
                out[hit] = late
        return out

    def observe(self, t0: int, t1: int, columns: tuple[np.ndarray, ...]) -> None:
        """Remember the orders of ``[t0, t1)`` that some incident may refer to."""
        index, ts, merchant, region, carrier = columns[:5]
        for inc, cands in zip(self.incidents, self._candidates):
            if t1 <= inc.start - _LOOKBACK or t0 >= inc.end:
                continue
            mask = inc.matches(region, carrier, merchant)
            cands.add(tuple(c[mask] for c in columns))

    def complaints(self, t0: int, t1: int) -> list[tuple[int, int, int, tuple | None]]:
        """Extra complaints with ts in ``[t0, t1)``: (ts, intent index, incident no, order).

        ``order`` is a row of the observed columns as Python ints, or ``None`` when the
        slice has no earlier order at all (then the complaint carries no order id).
        """
        out = []
        for k, inc in enumerate(self.incidents):
            if t1 <= inc.start or t0 >= inc.end:
                continue
            lo, hi = np.searchsorted(inc.times, [t0, t1])
            if lo == hi:
                continue
            cols = self._candidates[k].columns()
            for ts, intent in zip(inc.times[lo:hi].tolist(), inc.intents[lo:hi].tolist()):
                row = self._pick(k, inc, cols, ts)
                out.append((ts, intent, k, row))
        out.sort(key=lambda item: item[0])
        return out

    def _pick(self, k: int, inc: Incident, cols: tuple[np.ndarray, ...] | None,
              ts: int) -> tuple | None:
        if cols is None:
            return None
        order_ts, shipped, delivered = cols[1], cols[7], cols[8]
        before = (order_ts <= ts - 600) & (order_ts >= ts - _LOOKBACK)
        state = _ORDER_STATE[inc.kind]
        if state == "transit":
            preferred = before & (shipped <= ts) & (delivered > ts)
        elif state == "delivered":
            preferred = before & (delivered <= ts)
        else:
            preferred = before & (shipped <= ts)
        used = self._used_mask(k, len(cols[0]))
        # Distinct orders first: an incident is many customers with many parcels, so
        # its complaints go to orders nobody complained about in it yet (in the state
        # the kind implies, else any recent order of the slice). Only a slice with
        # fewer recent orders than complaints reuses one, counted in ``reused``.
        for mask in (preferred & ~used, before & ~used, preferred, before):
            idx = np.flatnonzero(mask)
            if len(idx) == 0:
                continue
            j = int(idx[self._rng.integers(len(idx))])
            if used[j]:
                if not self.reused[k]:
                    _log.info("incident %s: its slice has no unused recent order left at "
                              "%s; reusing orders", inc.id, rfc3339(ts))
                self.reused[k] += 1
            used[j] = True
            return tuple(int(c[j]) for c in cols)
        return None

    def _used_mask(self, k: int, n: int) -> np.ndarray:
        """Which candidate orders of incident ``k`` have an incident complaint already.

        Candidates are only ever appended, so a position keeps meaning the same order.
        """
        used = self._used[k]
        if len(used) < n:
            used = self._used[k] = np.concatenate([used, np.zeros(n - len(used), bool)])
        return used
