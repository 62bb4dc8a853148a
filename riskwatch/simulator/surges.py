"""Order-side incidents: a new shop's abnormal sales growth (brushing, fake orders).

Kind ``new_shop_order_surge``: a shop that opened in the last day or two (or, when no
shop is that young, a small one) suddenly receives 10-50x its normal orders for one to
six hours: fake orders placed by a brushing ring to climb the rankings. The orders
ship to addresses all over the country (region drawn by demand) with the shop's usual
carrier and category; they bring no complaints (nobody waits for an empty parcel), so
only the order side can see them. The manifest entry says so: ``"metrics":
["order_surge"]``.

The ring's pace has a floor (15-45 orders an hour, sized for the default market of 50k
orders a day), so it is capped at :data:`MAX_MARKET_SHARE` of the market's orders in the
window; a surge that the cap leaves too small to be one (under 15 orders, or under 10x
the shop's normal: a shop that *is* most of the market, e.g. ``--merchants 1``) is not
planned, and ``riskwatch simulate`` warns about it.

Planned from the seed alone with a random stream of its own (``[seed, 21]``), after the
complaint incidents and kept an hour clear of them when they hit the same shop: adding
or removing these incidents leaves every other event of a seed byte-identical, except
the added order lines.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from riskwatch.simulator.config import SimulationConfig
from riskwatch.simulator.seasonality import rfc3339
from riskwatch.simulator.world import REGION_DEMAND, World

__all__ = ["MAX_MARKET_SHARE", "SURGE_KIND", "OrderSurge", "plan_surges"]

SURGE_KIND = "new_shop_order_surge"
_STEP = 300
_ORDERS_PER_HOUR = (15.0, 45.0)   # a brushing ring's pace, at least
_MULTIPLIER = (10.0, 50.0)
#: Fake orders <= this share of the market's expected (real) orders in the surge window:
#: a ring that outsells the whole market is not climbing a shop's ranking, it is the
#: market. The default market's surges use at most 0.16 (seeds 0-39; a night surge); in a
#: market of a hundred orders a day the pace floor alone made 53 of a run's 55 orders fake.
MAX_MARKET_SHARE = 1.0


@dataclasses.dataclass(frozen=True, eq=False)
class OrderSurge:
    """One planned surge; ``times`` / ``regions`` are its fake orders (epoch s, region)."""

    id: str
    start: int
    end: int
    merchant: int
    dimensions: dict[str, str]
    opened: int
    multiplier: float
    normal: float
    times: np.ndarray
    regions: np.ndarray
    kind: str = SURGE_KIND

    def to_json(self) -> dict:
        return {
            "id": self.id, "kind": self.kind, "dimensions": dict(self.dimensions),
            "intent": None, "metrics": ["order_surge"],
            "start": rfc3339(self.start), "end": rfc3339(self.end),
            "multiplier": round(self.multiplier, 1),
            "expected_extra_orders": int(len(self.times)),
            # Contract keys of complaint incidents: a brushing ring brings no complaints.
            "expected_extra_complaints": 0, "extra_by_intent": {},
            "expected_normal_orders": round(self.normal, 2),
            "shop_opened": rfc3339(self.opened),
        }


def plan_surges(config: SimulationConfig, world: World, intensity: np.ndarray,
                busy: list[tuple[int, int, dict[str, str]]], first_number: int,
                maintenance: list[tuple[int, int]] = ()) -> list[OrderSurge]:
    """``config.surge_incidents`` surges, deterministic for the seed.

    ``intensity`` is the market's expected orders per minute; ``busy`` the (start, end,
    dimensions) of the complaint incidents. Surges start after the first day (the
    detectors' learning day), end two hours before the simulation does, and keep clear
    of ``maintenance`` windows (planned work: riskwatch pages nobody then, by design).
    """
    n = config.surge_incidents
    if n == 0:
        return []
    rng = np.random.default_rng([config.seed, 21])
    start, end = config.start_epoch, config.end_epoch
    lo = start + min(86400, (end - start) // 3)
    hi = end - min(2 * 3600, (end - lo) // 6)
    if hi - lo < 3600:
        return []
    out: list[OrderSurge] = []
    taken: set[int] = set()
    for i in range(n):
        for _ in range(200):
            duration = int(math.exp(rng.uniform(math.log(3600), math.log(6 * 3600))))
            duration = max(3600, min(duration - duration % _STEP, hi - lo))
            shop = _pick_shop(world, rng, lo, hi - duration, taken)
            if shop is None:
                return out
            opened = int(world.open_at[shop])
            first = max(lo, opened + 3600)
            last = min(hi - duration, max(first, opened + 2 * 86400))
            if last < first:   # a short run: this shop opens too late to surge in it
                continue
            t0 = int(rng.integers(first, last + 1))
            t0 = -(-t0 // _STEP) * _STEP
            if t0 + duration > hi:
                continue
            dims = {"merchant_id": world.merchant_ids[shop]}
            if any(t0 < e + 3600 and s < t0 + duration + 3600 and d == dims for s, e, d in busy):
                continue
            if any(t0 < e and s < t0 + duration for s, e in maintenance):
                continue
            break
        else:
            continue
        taken.add(shop)
        # Numbered as placed (no gap left by a dropped one): the intent-mix incidents that
        # follow are numbered from first_number + len(out).
        surge = _size(f"inc-{first_number + len(out):02d}", shop, t0, t0 + duration, dims,
                      opened, world, intensity, config, rng)
        if surge is not None:
            out.append(surge)
    return out


def _pick_shop(world: World, rng: np.random.Generator, lo: int, latest: int,
               taken: set[int]) -> int | None:
    """A shop that opened during the run and can surge after its first hour; else a
    small established one (bottom half by size)."""
    young = np.flatnonzero((world.open_at > world.open_at.min()) & (world.open_at + 3600 <= latest))
    young = np.asarray([s for s in young.tolist() if s not in taken], dtype=np.int64)
    if len(young):
        return int(rng.choice(young))
    small = np.flatnonzero(world.rank > len(world.rank) // 2)
    small = np.asarray([s for s in small.tolist() if s not in taken], dtype=np.int64)
    return int(rng.choice(small)) if len(small) else None


def _size(incident_id: str, shop: int, t0: int, t1: int, dims: dict[str, str], opened: int,
          world: World, intensity: np.ndarray, config: SimulationConfig,
          rng: np.random.Generator) -> OrderSurge | None:
    """The fake orders of one surge, or None when the market is too small for one."""
    m0 = (t0 - config.start_epoch) // 60
    m1 = (t1 - config.start_epoch) // 60
    weights = world.open_weights(t0)
    share = float(weights[shop] / weights.sum())
    market = float(intensity[m0:m1].sum())
    normal = market * share
    hours = (t1 - t0) / 3600
    extra = max(rng.uniform(*_MULTIPLIER) * normal, rng.uniform(*_ORDERS_PER_HOUR) * hours)
    extra = min(extra, MAX_MARKET_SHARE * market)
    if extra < max(_ORDERS_PER_HOUR[0], _MULTIPLIER[0] * normal):
        return None
    count = int(round(extra))
    # The ring warms up over the first quarter hour, then orders at a steady pace.
    times = np.sort(t0 + (rng.uniform(0, 1, count) ** 1.15 * (t1 - t0)).astype(np.int64))
    demand = REGION_DEMAND / REGION_DEMAND.sum()
    regions = rng.choice(len(demand), size=count, p=demand)
    return OrderSurge(incident_id, t0, t1, shop, dims, opened, 1.0 + extra / max(normal, 1e-9),
                      normal, times, regions)
