"""Realistic synthetic traffic for riskwatch: orders, order statuses, complaints, updates.

The simulator plays a Chinese e-commerce market for a few days: 31 provinces, eight
express carriers, Zipf-sized merchants (some opening mid-week), daily and weekly
seasonality, promotion nights with 3-5x orders but an unchanged complaint rate per
order, Chinese complaint texts for every intent (a share with personal data), agent
labels, and bad input (malformed lines, duplicates, late events). Incidents with known
windows and slices are injected, and :func:`manifest` gives them as ground truth so a
detector can be scored.

Modules: :mod:`~riskwatch.simulator.config` (the config),
:mod:`~riskwatch.simulator.world` (market tables and merchants),
:mod:`~riskwatch.simulator.seasonality` (order curve, calendar, timestamps),
:mod:`~riskwatch.simulator.texts` and :mod:`~riskwatch.simulator.pii` (complaint texts),
:mod:`~riskwatch.simulator.complaints` (complaint and update events),
:mod:`~riskwatch.simulator.incidents` (ground truth), :mod:`~riskwatch.simulator.badinput`
(malformed lines), :mod:`~riskwatch.simulator.traffic` (the engine and the public API).

Examples
--------
>>> from riskwatch.simulator import SimulationConfig, generate, manifest
>>> cfg = SimulationConfig(days=1, orders_per_day=3000, merchants=200, incidents=2)
>>> first = next(iter(generate(cfg)))
>>> first[1][:16]
b'{"type":"order",'
>>> [i["kind"] for i in manifest(cfg)["incidents"]]
[...]
"""

from __future__ import annotations

from riskwatch.simulator.config import SimulationConfig
from riskwatch.simulator.seasonality import calendar
from riskwatch.simulator.traffic import generate, manifest, write_files

__all__ = ["SimulationConfig", "calendar", "generate", "manifest", "write_files"]
