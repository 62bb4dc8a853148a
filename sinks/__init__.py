"""Sinks: where riskwatch writes what it computes.

Every sink follows one contract (:mod:`sinks.base`, modelled on quix-streams'
``BatchingSink``): ``setup()``, ``add(kind, record, token=...)``, ``flush()``, ``close()``,
usable as a context manager.  Records are plain dicts of a *kind* — ``aggregates``,
``alerts``, ``complaints``, ``dead_letters``, ``events`` or ``scores`` (:data:`KINDS`).
``flush()`` retries inside until the write lands and never drops an unwritten record;
``token`` (the source range, e.g. ``"orders:0:1200-1300"``) lets a destination drop a
re-sent batch.  ``add_columns(kind, {name: list | numpy array}, token=...)`` hands over
many records at once as columns; columnar sinks (the ClickHouse server sink) insert the
block whole, the others get its records through ``add()``.

Sinks
-----
:class:`JsonlSink`
    One JSON Lines file per kind (``riskwatch replay --alerts-out FILE``).
:class:`ChdbSink`
    Embedded ClickHouse (chDB), the default storage; same DDL as a ClickHouse server
    (:mod:`sinks.clickhouse.schema`).
:class:`ListSink`
    In-memory test fake.

Write a new sink by subclassing :class:`BatchingSink` and implementing ``write()``
(:class:`sinks.http.HttpSink` for one posting to HTTP receivers).
"""

from __future__ import annotations

from sinks.base import KINDS, BatchingSink, ListSink, RetryPolicy, Sink
from sinks.clickhouse import ChdbSink
from sinks.jsonl import JsonlSink

__all__ = [
    "BatchingSink",
    "ChdbSink",
    "JsonlSink",
    "KINDS",
    "ListSink",
    "RetryPolicy",
    "Sink",
]
