"""A simulated day replayed once per session: its merchant score records and manifest."""

from __future__ import annotations

import orjson
import pytest

from riskwatch.calendar import Calendar
from riskwatch.simulator import SimulationConfig, calendar, generate, manifest
from streams.pipeline import Pipeline


@pytest.fixture(scope="session")
def scored_day():
    cfg = SimulationConfig(days=1.0, orders_per_day=30_000, merchants=400, seed=11, incidents=12)
    p = Pipeline(calendar=Calendar.from_json(orjson.dumps(calendar(cfg))))
    scores = []
    for n, (_, line) in enumerate(generate(cfg), 1):
        p.process(line, source="file:day", partition=None, offset=n)
        if n % 20_000 == 0:
            scores.extend(p.drain().scores)
    p.flush()
    scores.extend(p.drain().scores)
    return p, scores, manifest(cfg)
