"""Which orders simulated complaints refer to.

An incident is many customers with many parcels: its extra complaints go to distinct
orders of its slice, and reuse one only when the slice has run out (counted in the
manifest as ``reused_orders``). Background complaints keep a realistic few repeats:
some customers write twice about one order.
"""

from __future__ import annotations

import numpy as np
import orjson

from riskwatch.events import Complaint, decode_events
from riskwatch.simulator import SimulationConfig, write_files
from riskwatch.simulator.incidents import Incident, IncidentRunner
from riskwatch.simulator.traffic import REPEAT_NUMBERS, REPEAT_SHARE

T0 = 1_700_000_000


def _incident(n_complaints: int) -> Incident:
    times = np.arange(n_complaints, dtype=np.int64) * 60 + T0 + 3600
    return Incident("inc-01", "merchant_quality", T0 + 3600, T0 + 7200, None, None, 7,
                    {"merchant_id": "m0007"}, 4.0, {"quality": n_complaints}, 2.0,
                    times, np.zeros(n_complaints, dtype=np.int64))


def _orders(n: int, merchant: int = 7) -> tuple[np.ndarray, ...]:
    """``n`` orders of the shop, all delivered before the incident starts."""
    index = np.arange(100, 100 + n, dtype=np.int64)
    ts = np.full(n, T0, dtype=np.int64)
    delivered = np.full(n, T0 + 1800, dtype=np.int64)
    return (index, ts, np.full(n, merchant), np.zeros(n, np.int64), np.zeros(n, np.int64),
            np.zeros(n, np.int64), np.full(n, 9900), ts + 600, delivered)


def _picked(n_orders: int, n_complaints: int) -> tuple[list[int], IncidentRunner]:
    runner = IncidentRunner([_incident(n_complaints)], seed=3)
    runner.observe(T0, T0 + 3600, _orders(n_orders))
    rows = runner.complaints(T0, T0 + 7200)
    assert len(rows) == n_complaints and all(row is not None for *_, row in rows)
    return [row[0] for *_, row in rows], runner


def test_incident_complaints_hit_distinct_orders():
    orders, runner = _picked(n_orders=40, n_complaints=30)
    assert len(set(orders)) == 30          # the old picker (4 tries) repeated 1 here
    assert runner.reused == [0]


def test_orders_are_reused_only_when_the_slice_runs_out():
    orders, runner = _picked(n_orders=5, n_complaints=12)
    assert set(orders) == set(range(100, 105))
    assert len(set(orders[:5])) == 5       # every order once before any repeat
    assert runner.reused == [7]


def test_generated_week_incidents_distinct_and_background_repeats(tmp_path):
    cfg = SimulationConfig(days=3, orders_per_day=15000, merchants=200, incidents=4)
    write_files(cfg, tmp_path / "ev.jsonl", tmp_path / "m.json")
    truth = orjson.loads((tmp_path / "m.json").read_bytes())
    complaint_incidents = [i for i in truth["incidents"] if "reused_orders" in i]
    assert len(complaint_incidents) == 4
    assert all(i["reused_orders"] == 0 for i in complaint_incidents)
    first_orders: set[str | None] = set()
    repeat_orders: list[str | None] = []
    for line in (tmp_path / "ev.jsonl").read_bytes().splitlines():
        for e in decode_events(line)[0]:
            if isinstance(e, Complaint):
                if int(e.complaint_id.removeprefix("c-")) >= REPEAT_NUMBERS:
                    repeat_orders.append(e.order_id)
                else:
                    first_orders.add(e.order_id)
    # Background repeats: about REPEAT_SHARE of background complaints (fewer of all), each about an order with a
    # first complaint (which loses its order reference 5% of the time).
    assert 0.3 * REPEAT_SHARE < len(repeat_orders) / len(first_orders) < 2 * REPEAT_SHARE
    assert None not in repeat_orders
    assert sum(oid in first_orders for oid in repeat_orders) >= 0.85 * len(repeat_orders)
