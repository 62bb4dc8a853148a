"""Cost of a pipeline checkpoint: size, pickle time (blocks the event loop), write + fsync
and load time, for the state after the fault suite's seeded stream (4 simulated days,
143k events, ~1.5k slices) and, with ``--days``, longer runs.

    .venv/bin/python benchmarks/checkpoint_cost.py            # the fault suite's stream
    .venv/bin/python benchmarks/checkpoint_cost.py --days 7   # a simulated week, 50k orders/day
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from streams.checkpoint import CheckpointStore, encode_state, settings_digest  # noqa: E402
from streams.pipeline import Pipeline  # noqa: E402
from tests.faults.harness import SETTINGS, stream_messages  # noqa: E402


def _lines(days: float | None) -> list[bytes]:
    if days is None:
        return list(stream_messages())
    from riskwatch.simulator import SimulationConfig, generate
    return [line for _, line in generate(SimulationConfig(days=days))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--days", type=float, help="simulate this many days at the default volume")
    args = parser.parse_args()
    pipeline = Pipeline(SETTINGS, keep_aggregates=True)
    pipeline.process_lines(_lines(args.days), source="bench")
    pipeline.drain()
    started = time.perf_counter()
    body = encode_state(pipeline, {("bench", 0): 1})
    pickled = time.perf_counter() - started
    with tempfile.TemporaryDirectory() as tmp:
        store = CheckpointStore(tmp, settings_digest=settings_digest(SETTINGS))
        started = time.perf_counter()
        store.write(body, {("bench", 0): 1})
        written = time.perf_counter() - started
        started = time.perf_counter()
        store.load_latest()
        loaded = time.perf_counter() - started
    stats = pipeline.stats
    print(f"state after {stats['messages']} messages / {stats['events']} events, "
          f"{stats['slices']} slices: {len(body) / 1e6:.1f} MB; pickle {pickled * 1000:.0f} ms "
          f"(event loop blocked), write+fsync {written * 1000:.0f} ms, load {loaded * 1000:.0f} ms")


if __name__ == "__main__":
    main()
