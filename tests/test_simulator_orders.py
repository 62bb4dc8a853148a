"""Which orders simulated complaints refer to.

An incident is many customers with many parcels: its extra complaints go to distinct
orders of its slice, and reuse one only when the slice has run out (counted in the
manifest as ``reused_orders``). Background complaints keep a realistic few repeats:
some customers write twice about one order.
"""

from __future__ import annotations

import numpy as np
import orjson

from riskwatch.events import Complaint, decode_events, epoch_of
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
    firsts: list[Complaint] = []
    repeats: list[Complaint] = []
    for line in (tmp_path / "ev.jsonl").read_bytes().splitlines():
        for e in decode_events(line)[0]:
            if isinstance(e, Complaint):
                is_repeat = int(e.complaint_id.removeprefix("c-")) >= REPEAT_NUMBERS
                (repeats if is_repeat else firsts).append(e)
    # Background repeats: about REPEAT_SHARE of background complaints (fewer of all).
    assert 0.3 * REPEAT_SHARE < len(repeats) / len(firsts) < 2 * REPEAT_SHARE
    # Each is about an order with an earlier complaint of the same customer (whose
    # first complaint may have lost its order reference, 5% of them).
    by_order = {c.order_id: c for c in firsts if c.order_id is not None}
    orderless = [c for c in firsts if c.order_id is None]
    for r in repeats:
        assert r.order_id is not None
        first = by_order.get(r.order_id)
        if first is None:
            assert any(c.merchant_id == r.merchant_id and c.region == r.region
                       and epoch_of(c.ts) <= epoch_of(r.ts) - 1800 for c in orderless)
        else:
            assert epoch_of(first.ts) <= epoch_of(r.ts) - 1800
            assert (first.merchant_id, first.region) == (r.merchant_id, r.region)
