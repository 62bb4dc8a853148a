"""The simulator at every market size: complaints and fake orders scale with the orders.

Incidents used to bring an absolute number of complaints (at least 15, and 18-40 an
hour), and brushing rings an absolute pace of fake orders (15-45 an hour), whatever the
market: a run of 100 orders a day wrote 215 complaints against 55 orders, 53 of them
fake. Both are now capped by the orders there are (riskwatch.simulator.incidents,
riskwatch.simulator.surges), and the caps must never bind in the default market, which
the backtests use.
"""

from __future__ import annotations

import collections

import orjson
import pytest

from riskwatch.simulator import SimulationConfig, generate, manifest
from riskwatch.simulator import incidents as incidents_module
from riskwatch.simulator import surges as surges_module
from riskwatch.simulator.incidents import KINDS
from riskwatch.simulator.seasonality import minute_intensity

# Tiny (2.4 night hours of a 100-orders-a-day market: a handful of orders), small and
# mid-size markets; all generate in well under a second.
SIZES = {
    "tiny": SimulationConfig(days=0.1, orders_per_day=100, merchants=10),
    "week of 100 a day": SimulationConfig(days=7, orders_per_day=100, merchants=10),
    "day of 1000": SimulationConfig(days=1, orders_per_day=1000, merchants=50),
    "day of 2000": SimulationConfig(days=1, orders_per_day=2000, merchants=100),
}


def _counts(cfg: SimulationConfig) -> collections.Counter:
    """Events by type; orders split into real ones and a brushing ring's (``ob-`` ids)."""
    counts: collections.Counter = collections.Counter()
    for _, line in generate(cfg):
        try:
            event = orjson.loads(line)
        except orjson.JSONDecodeError:
            continue   # a malformed line (bad input on purpose)
        if not isinstance(event, dict):
            continue   # malformed too ("null", a list...)
        kind = event.get("type")
        if kind == "order":
            kind = "fake order" if str(event.get("order_id")).startswith("ob-") else "order"
        counts[kind] += 1
    return counts


@pytest.mark.parametrize("size", SIZES)
def test_complaints_stay_a_small_share_of_orders_at_every_size(size):
    counts = _counts(SIZES[size])
    orders = counts["order"]
    assert orders > 0
    # Why 0.3: normal complaints are drawn per order, ~2% of them (BASE_COMPLAINT_RATE
    # 1.5% x shop, carrier and category factors with mean ~1, plus 3% repeats and the
    # promotion strain), and all incidents together add at most INCIDENT_BUDGET (10%)
    # of the expected orders: ~12% in all. 0.3 leaves room for chance in a run of a few
    # orders, and is still far below what the old fixed-size incidents wrote (the tiny
    # run: 215 complaints to 2 real orders; a day of 1000: ~0.6 of them).
    assert counts["complaint"] < 0.3 * orders, counts
    # A brushing ring places at most as many fake orders as the market has real ones.
    assert counts["fake order"] <= orders, counts


@pytest.mark.parametrize("size", SIZES)
def test_every_planned_incident_is_one_the_market_can_carry(size):
    cfg = SIZES[size]
    planned = manifest(cfg)["incidents"]
    complaint_incidents = [i for i in planned if i["kind"] in KINDS]
    # Never more complaints than the budget allows, and never an invisible incident.
    extra = sum(sum(i["extra_by_intent"].values()) for i in complaint_incidents)
    assert extra <= incidents_module.INCIDENT_BUDGET * float(minute_intensity(cfg).sum())
    assert all(i["expected_extra_complaints"] >= incidents_module.MIN_EXTRA
               for i in complaint_incidents)
    # Left-out incidents and surges leave no id behind for a later one to take twice.
    ids = [i["id"] for i in planned]
    assert len(set(ids)) == len(ids)


def test_a_one_shop_market_has_no_brushing_ring():
    # With one shop, the "new small shop" a ring would push up is the whole market: 10-50x
    # its orders was 70k fake orders in a default week. Now there is no such surge.
    planned = manifest(SimulationConfig(merchants=1))["incidents"]
    assert not [i for i in planned if i["kind"] == "new_shop_order_surge"]
    assert {i["kind"] for i in planned} == set(KINDS)   # the complaint incidents stay


@pytest.mark.parametrize("seed", [7, 3, 11, 5, 13])
def test_the_caps_never_bind_in_the_default_market(seed, monkeypatch):
    """The backtests' weeks (``riskwatch simulate --seed S``, defaults) are planned as if
    there were no caps at all; the events follow from the plan."""
    capped = manifest(SimulationConfig(seed=seed))
    monkeypatch.setattr(incidents_module, "MAX_EXTRA_OF_SLICE_ORDERS", 1e18)
    monkeypatch.setattr(incidents_module, "INCIDENT_BUDGET", 1e18)
    monkeypatch.setattr(surges_module, "MAX_MARKET_SHARE", 1e18)
    assert capped == manifest(SimulationConfig(seed=seed))
