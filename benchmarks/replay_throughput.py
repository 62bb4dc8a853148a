"""Replay throughput on one core: events/s of the full per-event pipeline.

Generates simulator traffic into a temporary JSONL file, then replays it in-process
(the same code the live agents run: decode, validate, dedup, mask, classify, aggregate,
close buckets, detect, alert), pinned to one CPU. Output writing is excluded except
alerts (the replay command's minimum); the JSONL encoding cost is measured separately.

    .venv/bin/python benchmarks/replay_throughput.py            # default scenarios
    .venv/bin/python benchmarks/replay_throughput.py --quick    # small, for a smoke run
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from riskwatch.simulator import SimulationConfig, write_files  # noqa: E402
from streams.pipeline import Pipeline  # noqa: E402
from streams.replay import replay_file  # noqa: E402

SCENARIOS = {
    # name: (days, orders per day, merchants)
    "simulator week (50k orders/day)": (7.0, 50_000, 2000),
    "large platform day (1M orders/day)": (1.0, 1_000_000, 20_000),
}
QUICK = {"quick (1 day, 20k orders/day)": (1.0, 20_000, 500)}


def run(name: str, days: float, orders: int, merchants: int, workdir: Path) -> dict:
    path = workdir / "events.jsonl"
    cfg = SimulationConfig(days=days, orders_per_day=orders, merchants=merchants, seed=11)
    t = time.perf_counter()
    counts = write_files(cfg, path)
    gen_s = time.perf_counter() - t
    best = None
    for _ in range(2):  # best of two: the first run also warms the page cache
        p = Pipeline()
        alerts = []
        result = replay_file(p, path, on_output=lambda out: alerts.extend(out.alerts))
        if best is None or result["events_per_second"] > best["events_per_second"]:
            best = result
    return {"scenario": name, "lines": counts["lines"], "events": best["events"],
            "seconds": best["seconds"], "events_per_s": best["events_per_second"],
            "alerts": best["alerts_fired"], "slices": best["slices"], "generate_s": round(gen_s, 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})  # one core, as the target says
    print(f"python {sys.version.split()[0]}, pinned to CPU {sorted(os.sched_getaffinity(0))}")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, (days, orders, merchants) in (QUICK if args.quick else SCENARIOS).items():
            rows.append(run(name, days, orders, merchants, Path(tmp)))
            r = rows[-1]
            print(f"{r['scenario']}: {r['events']:,} events in {r['seconds']:.1f}s = "
                  f"{r['events_per_s']:,} events/s ({r['slices']:,} slices, {r['alerts']} alerts; "
                  f"generated in {r['generate_s']}s)", flush=True)
    print()
    print("| scenario | events | seconds | events/s (1 core) |")
    print("|---|---:|---:|---:|")
    for r in rows:
        print(f"| {r['scenario']} | {r['events']:,} | {r['seconds']:.1f} | {r['events_per_s']:,} |")


if __name__ == "__main__":
    main()
