"""Demo-like data in chDB for the dashboard tests.

``demo_events`` (session): ``riskwatch simulate --days 2 --orders-per-day 20000`` written
to a JSONL file.  ``demo_outputs`` (session): that file replayed through the live
:class:`~streams.pipeline.Pipeline` (raw events and aggregates kept, as the live worker keeps
them when a store is attached), as a list of ``(kind, token, records)`` batches in the
order a worker would hand them to sinks.  ``demo_db`` (package): those batches written once
through :class:`~sinks.clickhouse.ChdbSink` into database ``dash_demo``.

chDB binds a process to one path at a time: the path is the one already held (if any),
else a fresh directory, and the sink is closed when this package ends so other packages
can open their own path.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest

from riskwatch.simulator import SimulationConfig
from riskwatch.simulator.traffic import write_files
from sinks.clickhouse import ChdbSink, held_path
from streams.pipeline import Pipeline
from streams.replay import replay_file

Batch = tuple[str, str, list[dict]]


@pytest.fixture(scope="session")
def demo_events(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("demo") / "events.jsonl"
    write_files(SimulationConfig(days=2, orders_per_day=20_000), path)
    return path


@pytest.fixture(scope="session")
def demo_outputs(demo_events: Path) -> list[Batch]:
    pipeline = Pipeline(keep_events=True, keep_aggregates=True)
    batches: list[Batch] = []

    def on_output(out) -> None:
        n = len(batches)
        for kind, records in out.items():
            if records:
                # A worker's token names the source range; replay has one per hand-off.
                batches.append((kind, f"{demo_events.name}:0:{n}", list(records)))

    replay_file(pipeline, demo_events, on_output=on_output)
    return batches


def write_batches(sink, batches: list[Batch]) -> None:
    for kind, token, records in batches:
        for record in records:
            sink.add(kind, record, token=token)
        sink.flush()


def time_range(sink, database: str) -> tuple[int, int]:
    """Unix seconds of the first and last aggregate bucket (the dashboards' time range)."""
    [row] = sink.query(f"SELECT toUnixTimestamp(min(bucket_start)) AS lo, "
                       f"toUnixTimestamp(max(bucket_end)) AS hi FROM {database}.aggregates")
    return int(row["lo"]), int(row["hi"])


@pytest.fixture(scope="package")
def chdb_dir(tmp_path_factory: pytest.TempPathFactory) -> str:
    return held_path() or str(tmp_path_factory.mktemp("chdb-dash"))


@pytest.fixture(scope="package")
def demo_db(chdb_dir: str, demo_outputs: list[Batch]) -> Iterator[ChdbSink]:
    sink = ChdbSink(chdb_dir, database="dash_demo", batch_size=50_000)
    sink.setup()
    sink.query("DROP DATABASE IF EXISTS dash_demo")
    sink.close()
    sink = ChdbSink(chdb_dir, database="dash_demo", batch_size=50_000)
    sink.setup()
    write_batches(sink, demo_outputs)
    yield sink
    sink.query("DROP DATABASE IF EXISTS dash_demo")
    sink.close()


def iso(epoch: int) -> str:
    return dt.datetime.fromtimestamp(epoch, dt.UTC).isoformat()
