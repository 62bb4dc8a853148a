"""What the pipeline's slice detectors cost: time per slice update, state per slice,
and one bucket close with 100k active slices — against the targets of issue 3.
Complaint rate (all slices), order_surge (100k shops with orders in every bucket),
overdue_delivery (lanes, plus the per-parcel tracking it needs) and intent_mix (100k
slices with complaints in every bucket, through ``streams.mix.IntentMixStage.close``).

Only public APIs are used (``streams.detection.SliceScorer.close`` as the pipeline calls
it, ``detectors.ComplaintRateDetector`` score/learn), so the script measures whatever
the detector is today. Synthetic but realistically keyed traffic: every merchant has
its region, carrier and category; every bucket each merchant has orders and complaints
in ``--intents`` intents, which makes ~``merchants x intents`` merchant x intent slices
plus their region, carrier, category, region x carrier, ... slices all active at once.

    .venv/bin/python benchmarks/detector_cost.py                   # 100k active slices
    .venv/bin/python benchmarks/detector_cost.py --merchants 2000  # a smaller run
    .venv/bin/python benchmarks/detector_cost.py --only intent_mix --only overdue_delivery

Per update, wall time and CPU time are printed; the verdict is on CPU time (the VM is
shared: wall time under load says more about the neighbours than about the code).

Pinned to one core (the target is per core). Figures vary ~10-20 % on the shared VM.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import pickle
import random
import statistics
import sys
import time
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from riskwatch.calendar import Calendar, CalendarEntry  # noqa: E402
from riskwatch.events import INTENTS  # noqa: E402
from riskwatch.settings import PipelineSettings  # noqa: E402
from streams.detection import SliceScorer  # noqa: E402
from streams.slicing import COMPLAINT_FIELDS, key_builder  # noqa: E402

TARGET_US_PER_UPDATE = 5.0
TARGET_BYTES_PER_SLICE = 2048
TARGET_CLOSE_SECONDS = 1.0
PARTS = ("complaint_rate", "order_surge", "overdue_delivery", "intent_mix")
REGIONS = [f"省{i:02d}" for i in range(31)]
CARRIERS = ["中通", "圆通", "申通", "韵达", "顺丰", "京东", "极兔", "邮政"]
CATEGORIES = [f"类目{i:02d}" for i in range(20)]


class Clock:
    """Wall and CPU time of a block (CPU time: what load on the shared VM cannot hide)."""

    def __enter__(self):
        self.wall, self.cpu = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc):
        self.wall = time.perf_counter() - self.wall
        self.cpu = time.process_time() - self.cpu


def median_close(closes) -> tuple[float, float]:
    """Median wall and CPU seconds of the ``Clock`` objects ``closes``."""
    return (statistics.median(c.wall for c in closes), statistics.median(c.cpu for c in closes))


def traffic(merchants: int, intents: int, seed: int = 1):
    """Order combos and complaint counts of one bucket, keyed as the pipeline keys them."""
    rng = random.Random(seed)
    settings = PipelineSettings()
    build = key_builder(settings.slices, COMPLAINT_FIELDS)
    orders, complaints = {}, {}
    for m in range(merchants):
        region, carrier, category = rng.choice(REGIONS), rng.choice(CARRIERS), rng.choice(CATEGORIES)
        merchant = f"m{m:06d}"
        orders[(region, merchant, carrier, category)] = rng.randint(5, 60)
        for intent in rng.sample(INTENTS, intents):
            for key in build(region, merchant, carrier, category, intent):
                complaints[key] = complaints.get(key, 0) + 1
    return settings, orders, complaints


def close_cost(merchants: int, intents: int, buckets: int, promotion: bool = False) -> dict:
    """``promotion``: every timed close is inside a promotion's window whose effects
    were learned on an earlier one (each row gets its factor or its cautious lift)."""
    settings, orders, complaints = traffic(merchants, intents)
    calendar = None
    if promotion:
        settings = dataclasses.replace(settings, promotion_tail_seconds=0)
        b = settings.bucket_seconds
        calendar = Calendar((CalendarEntry("earlier", 0, 3 * b, "promotion"),
                             CalendarEntry("timed", 3 * b, (buckets + 10) * b, "promotion")))
    scorer = SliceScorer(settings)
    begin = time.perf_counter()
    scorer.close(0, 10, orders, complaints, set(), 0, calendar)   # first sight: creates every slice
    first = time.perf_counter() - begin
    for b in (1, 2):   # the rest of the earlier promotion (learned, folded at bucket 3)
        scorer.close(b, 10, orders, complaints, set(), 0, calendar)
    start = 3 if promotion else 1
    times = []
    for b in range(start, start + buckets):
        with Clock() as clock:
            evaluations = scorer.close(b, 10, orders, complaints, set(), 0, calendar)
        times.append(clock)
    active = len(evaluations)
    close, cpu = median_close(times)
    return {"active": active, "slices": len(scorer), "first_close": first, "close": close,
            "us_per_update": close / active * 1e6, "cpu_us": cpu / active * 1e6}


def state_per_slice(merchants: int, intents: int) -> dict:
    settings, orders, complaints = traffic(merchants, intents)
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    scorer = SliceScorer(settings)
    for b in range(3):
        evaluations = scorer.close(b, 10, orders, complaints, set())
    del evaluations   # the close's return value is output, not state
    held = tracemalloc.get_traced_memory()[0] - base
    tracemalloc.stop()
    return {"slices": len(scorer), "bytes_per_slice": held / len(scorer)}


def single_detector() -> dict | None:
    """The per-slice river estimator on its own, if the package still exports it."""
    try:
        from detectors import ComplaintRateDetector
    except ImportError:
        return None
    rng = random.Random(2)
    spans = [({"exposure": rng.uniform(10, 200), "prior_rate": 0.01}, rng.randint(0, 4)) for _ in range(1000)]
    det = ComplaintRateDetector()
    n = 0
    begin = time.perf_counter()
    for _ in range(50):
        for x, y in spans:
            det.score_one(x, y)
            det.learn_one(x, y)
            n += 1
    us = (time.perf_counter() - begin) / n * 1e6
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    many = [ComplaintRateDetector() for _ in range(10_000)]
    for d in many:
        d.learn_one(*spans[0])
    held = (tracemalloc.get_traced_memory()[0] - base) / len(many)
    tracemalloc.stop()
    return {"us": us, "bytes": held, "pickled": len(pickle.dumps(det))}


def surge_cost(shops: int, buckets: int) -> dict:
    """``order_surge``: every shop with orders in every bucket (the worst case)."""
    from streams.signals import ShopSurgeScorer

    rng = random.Random(4)
    combos = {(rng.choice(REGIONS), f"m{m:06d}", rng.choice(CARRIERS), rng.choice(CATEGORIES)):
              rng.randint(1, 20) for m in range(shops)}
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    scorer = ShopSurgeScorer(300)
    scorer.close(0, combos, set(), learning=True)
    held = tracemalloc.get_traced_memory()[0] - base
    tracemalloc.stop()
    times = []
    for b in range(1, buckets + 1):
        with Clock() as clock:
            out = scorer.close(b, combos, set(), learning=False)
        times.append(clock)
    close, cpu = median_close(times)
    del out   # records only for shops with evidence; every shop was scored
    return {"active": shops, "close": close, "us": close / shops * 1e6,
            "cpu_us": cpu / shops * 1e6, "bytes": held / len(scorer)}


def mix_cost(slices: int, buckets: int) -> dict:
    """``intent_mix``: ``slices`` slices (merchants, plus their regions, carriers and
    categories) with 3-12 complaints over a few intents in every bucket (the worst case:
    a slice without complaints is not scored at all). Timed after 30 untimed closes:
    the steady state, once every slice has its minimum volume and its own shares (in
    the first closes most slices alarm against the market's mix, and each alarm
    builds a signal)."""
    from streams.mix import IntentMixStage

    settings = PipelineSettings()
    kind = {dims: i for i, dims in enumerate(settings.slices)}
    rng = random.Random(6)
    mixes: dict[tuple, dict[str, int]] = {}
    for m in range(slices - len(REGIONS) - len(CARRIERS) - len(CATEGORIES) - 1):
        mix = {}
        for intent in rng.choices(INTENTS, k=rng.randint(3, 12)):
            mix[intent] = mix.get(intent, 0) + 1
        keys = [(kind[("merchant_id",)], f"m{m:06d}"), (kind[("region",)], rng.choice(REGIONS)),
                (kind[("carrier",)], rng.choice(CARRIERS)),
                (kind[("category",)], rng.choice(CATEGORIES)), (kind[()],)]
        for key in keys:
            into = mixes.setdefault(key, {})
            for intent, n in mix.items():
                into[intent] = into.get(intent, 0) + n
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    stage = IntentMixStage(settings, warmup_buckets=0)
    stage.close(0, mixes, [[]], set(), {})
    held = tracemalloc.get_traced_memory()[0] - base
    tracemalloc.stop()
    for b in range(1, 31):
        stage.close(b, mixes, [[]], set(), {})
    times = []
    for b in range(31, 31 + buckets):
        with Clock() as clock:
            out = stage.close(b, mixes, [[]], set(), {})
        times.append(clock)
    close, cpu = median_close(times)
    del out
    return {"active": len(mixes), "close": close, "us": close / len(mixes) * 1e6,
            "cpu_us": cpu / len(mixes) * 1e6, "bytes": held / len(stage)}


def delivery_cost(parcels: int, *, trace: bool = False) -> dict:
    """``overdue_delivery``: per parcel (order lane, shipped, delivered, due) and per
    in-flight parcel held, through the tracker as the pipeline feeds it."""
    from streams.delivery import DeliveryTracker, OverdueScorer

    rng = random.Random(5)
    lanes = [(r, c) for r in REGIONS for c in CARRIERS]
    tracker, scorer = DeliveryTracker(300, min_deliveries=20), OverdueScorer()
    per_bucket = max(1, parcels // 2000)
    deliveries: dict[int, list] = {}
    n = closes = 0
    if trace:   # tracemalloc slows every allocation: memory and time in separate runs
        tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    peak_held, lane_updates, score_time, score_cpu = 0, 0, 0.0, 0.0
    begin = time.perf_counter()
    for b in range(2000):
        bstart = b * 300
        for _ in range(per_bucket):
            n += 1
            order = f"o{n}"
            tracker.lanes.current[order] = rng.choice(lanes)
            shipped = bstart + rng.randrange(300)
            tracker.on_status(bstart, shipped, order, "shipped")
            at = shipped + int(rng.uniform(1.0, 3.0) * 86400)
            deliveries.setdefault(at - at % 300, []).append((at, order))
        for at, order in deliveries.pop(bstart, ()):
            tracker.on_status(bstart, at, order, "delivered")
        due = tracker.close(bstart)
        closes += bool(due)
        with Clock() as clock:
            scorer.close(b, due, set(), learning=False, warmup_buckets=0)
        score_time += clock.wall
        score_cpu += clock.cpu
        lane_updates += len(due)   # rows scored: every lane and carrier with due parcels
        if trace and b % 200 == 0:
            peak_held = max(peak_held, tracemalloc.get_traced_memory()[0] - base)
    total = time.perf_counter() - begin
    tracemalloc.stop()
    return {"parcels": n, "us_per_parcel": (total - score_time) / n * 1e6,
            "in_flight": len(tracker.in_flight),
            "bytes_per_parcel": peak_held / max(len(tracker.in_flight), 1),
            "us_per_lane": score_time / max(lane_updates, 1) * 1e6,
            "cpu_us_per_lane": score_cpu / max(lane_updates, 1) * 1e6,
            "lanes_per_close": lane_updates / max(closes, 1), "lanes": len(scorer)}


def overdue_close_cost(regions: int, carriers: int, buckets: int) -> dict:
    """``overdue_delivery`` scoring alone, every lane due in every bucket (the worst
    case; a city-level network has thousands of lanes)."""
    from streams.delivery import OverdueScorer

    rng = random.Random(7)
    due = {}
    for c in range(carriers):
        carrier = f"c{c:02d}"
        due[(None, carrier)] = [0, 0]
        for r in range(regions):
            n = rng.randint(1, 40)
            late = sum(rng.random() < 0.1 for _ in range(n))
            due[(f"r{r:03d}", carrier)] = [n, late]
            due[(None, carrier)][0] += n
            due[(None, carrier)][1] += late
    scorer = OverdueScorer()
    for b in range(30):
        scorer.close(b, due, set(), learning=b < 10, warmup_buckets=0)
    times = []
    for b in range(30, 30 + buckets):
        with Clock() as clock:
            scorer.close(b, due, set(), learning=False, warmup_buckets=0)
        times.append(clock)
    close, cpu = median_close(times)
    return {"active": len(due), "close": close, "us": close / len(due) * 1e6,
            "cpu_us": cpu / len(due) * 1e6}


def verdict(value: float, target: float) -> str:
    return "ok" if value <= target else "OVER"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--merchants", type=int, default=9000)
    parser.add_argument("--intents", type=int, default=11, help="intents with complaints per merchant")
    parser.add_argument("--buckets", type=int, default=5, help="timed bucket closes")
    parser.add_argument("--shops", type=int, default=100_000,
                        help="shops with orders in every bucket (order_surge)")
    parser.add_argument("--parcels", type=int, default=400_000,
                        help="parcels shipped over 2,000 buckets (overdue_delivery)")
    parser.add_argument("--mix-slices", type=int, default=100_000,
                        help="slices with complaints in every bucket (intent_mix)")
    parser.add_argument("--lanes", type=int, default=300,
                        help="regions of the worst-case overdue close (x 20 carriers)")
    parser.add_argument("--only", choices=PARTS, action="append",
                        help="measure only these detectors (repeatable; default: all)")
    args = parser.parse_args(argv)
    parts = set(args.only or PARTS)
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    print(f"python {sys.version.split()[0]}, pinned to CPU {sorted(os.sched_getaffinity(0))}, "
          f"load average {os.getloadavg()[0]:.2f}")
    print("per update: wall time (CPU time of this process); the verdict is on CPU time, "
          "which load on the shared VM does not inflate as much")
    rows = []
    if "complaint_rate" in parts:
        rows += complaint_rate_rows(args)
    if "order_surge" in parts:
        print("order_surge ...", file=sys.stderr, flush=True)
        rows += surge_rows(surge_cost(args.shops, args.buckets))
    if "overdue_delivery" in parts:
        print("overdue_delivery ...", file=sys.stderr, flush=True)
        parcels = delivery_cost(args.parcels)
        parcels["bytes_per_parcel"] = delivery_cost(args.parcels // 4, trace=True)["bytes_per_parcel"]
        rows += overdue_rows(parcels, overdue_close_cost(args.lanes, 20, 20 * args.buckets))
    if "intent_mix" in parts:
        print("intent_mix ...", file=sys.stderr, flush=True)
        rows += mix_rows(mix_cost(args.mix_slices, args.buckets))
    print(f"{'figure':<46}{'measured':>26}  {'target':<20}")
    for name, measured, target, ok in rows:
        print(f"{name:<46}{measured:>26}  {target:<20}{ok}")
    return 0


def per_update(wall_us: float, cpu_us: float) -> str:
    return f"{wall_us:.2f} us ({cpu_us:.2f} CPU)"


def complaint_rate_rows(args) -> list[tuple]:
    print("complaint_rate: closing buckets ...", file=sys.stderr, flush=True)
    cost = close_cost(args.merchants, args.intents, args.buckets)
    print("measuring state (tracemalloc) ...", file=sys.stderr, flush=True)
    state = state_per_slice(args.merchants, args.intents)
    single = single_detector()
    print("complaint_rate: closing buckets in a learned promotion's window ...", file=sys.stderr, flush=True)
    promo = close_cost(args.merchants, args.intents, args.buckets, promotion=True)
    print(f"complaint_rate: {cost['slices']:,} slices in the scorer, {cost['active']:,} active per bucket")
    rows = [
        ("bucket close, active slices scored", f"{cost['close']:.3f} s for {cost['active']:,}",
         f"<= {TARGET_CLOSE_SECONDS:.0f} s for 100,000", verdict(cost["close"] * 100_000 / cost["active"],
                                                                 TARGET_CLOSE_SECONDS)),
        ("cost per slice update (in the close)", per_update(cost["us_per_update"], cost["cpu_us"]),
         f"<= {TARGET_US_PER_UPDATE:.0f} us", verdict(cost["cpu_us"], TARGET_US_PER_UPDATE)),
        ("... inside a learned promotion's window", per_update(promo["us_per_update"], promo["cpu_us"]),
         f"<= {TARGET_US_PER_UPDATE:.0f} us", verdict(promo["cpu_us"], TARGET_US_PER_UPDATE)),
        ("state per slice (all scorer state / slices)", f"{state['bytes_per_slice']:,.0f} B",
         f"<= {TARGET_BYTES_PER_SLICE:,} B", verdict(state["bytes_per_slice"], TARGET_BYTES_PER_SLICE)),
        ("first close (creates every slice)", f"{cost['first_close']:.3f} s", "-", ""),
    ]
    if single:
        rows.append(("ComplaintRateDetector score+learn, alone", f"{single['us']:.2f} us",
                     f"<= {TARGET_US_PER_UPDATE:.0f} us", verdict(single["us"], TARGET_US_PER_UPDATE)))
        rows.append(("ComplaintRateDetector instance (pickled)",
                     f"{single['bytes']:,.0f} B ({single['pickled']} B)", f"<= {TARGET_BYTES_PER_SLICE:,} B",
                     verdict(single["bytes"], TARGET_BYTES_PER_SLICE)))
    return rows


def surge_rows(surge: dict) -> list[tuple]:
    return [
        ("order_surge: bucket close, shops scored", f"{surge['close']:.3f} s for {surge['active']:,}",
         f"<= {TARGET_CLOSE_SECONDS:.0f} s for 100,000",
         verdict(surge["close"] * 100_000 / surge["active"], TARGET_CLOSE_SECONDS)),
        ("order_surge: cost per shop update", per_update(surge["us"], surge["cpu_us"]),
         f"<= {TARGET_US_PER_UPDATE:.0f} us", verdict(surge["cpu_us"], TARGET_US_PER_UPDATE)),
        ("order_surge: state per shop", f"{surge['bytes']:,.0f} B",
         f"<= {TARGET_BYTES_PER_SLICE:,} B", verdict(surge["bytes"], TARGET_BYTES_PER_SLICE)),
    ]


def overdue_rows(parcels: dict, lanes: dict) -> list[tuple]:
    return [
        (f"overdue_delivery: per lane update ({parcels['lanes_per_close']:.0f} a close)",
         per_update(parcels["us_per_lane"], parcels["cpu_us_per_lane"]),
         f"<= {TARGET_US_PER_UPDATE:.0f} us", verdict(parcels["cpu_us_per_lane"], TARGET_US_PER_UPDATE)),
        (f"overdue_delivery: close, {lanes['active']:,} lanes due", f"{lanes['close'] * 1e3:.2f} ms",
         "-", ""),
        ("overdue_delivery: per lane update, that close", per_update(lanes["us"], lanes["cpu_us"]),
         f"<= {TARGET_US_PER_UPDATE:.0f} us", verdict(lanes["cpu_us"], TARGET_US_PER_UPDATE)),
        ("overdue_delivery: tracking per parcel (ship+deliver+due)",
         f"{parcels['us_per_parcel']:.2f} us", "-", ""),
        ("overdue_delivery: memory per parcel in flight",
         f"{parcels['bytes_per_parcel']:,.0f} B ({parcels['in_flight']:,} in flight)", "-", ""),
    ]


def mix_rows(mix: dict) -> list[tuple]:
    return [
        ("intent_mix: bucket close, slices scored", f"{mix['close']:.3f} s for {mix['active']:,}",
         f"<= {TARGET_CLOSE_SECONDS:.0f} s for 100,000",
         verdict(mix["close"] * 100_000 / mix["active"], TARGET_CLOSE_SECONDS)),
        ("intent_mix: cost per slice update", per_update(mix["us"], mix["cpu_us"]),
         f"<= {TARGET_US_PER_UPDATE:.0f} us", verdict(mix["cpu_us"], TARGET_US_PER_UPDATE)),
        ("intent_mix: state per slice", f"{mix['bytes']:,.0f} B",
         f"<= {TARGET_BYTES_PER_SLICE:,} B", verdict(mix["bytes"], TARGET_BYTES_PER_SLICE)),
    ]


if __name__ == "__main__":
    sys.exit(main())
