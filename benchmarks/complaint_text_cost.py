"""What the complaint text costs per complaint: masking, intent, sentiment and learning.

The complaint desk (``streams.complaints.ComplaintDesk.on_complaint``) masks every text
(:func:`streams.text.mask_pii`), classifies the masked text
(``IntentClassifier(seeded=True).predict_one``, rules blended with the learned model),
scores anger, sentiment and escalation flags on the raw text, and learns from agents'
labels (``complaint_update.intent``, :meth:`IntentClassifier.learn_one` on the masked
text). This script replays that workload, in event order, on the simulator's complaint
texts and prints the CPU microseconds per complaint of each part (learning is divided by
the complaints too: it is what the labels add to each complaint's cost).

    .venv/bin/python benchmarks/complaint_text_cost.py                       # 1 simulated day
    .venv/bin/python benchmarks/complaint_text_cost.py --events /tmp/rb/day.jsonl

Best of ``--repeat`` runs, each with a fresh classifier (CPU time from
``time.process_time``; the VM is shared, so the load average is printed too: figures vary
~10-20 % with the neighbours). Pinned to one core when the OS allows it.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import streams.text.intent as intent_module  # noqa: E402
from riskwatch.simulator import SimulationConfig, write_files  # noqa: E402
from streams.text import (  # noqa: E402
    INTENTS,
    IntentClassifier,
    anger_and_sentiment,
    mask_pii,
    priority,
    sensitive_flags,
)


def read_workload(path: pathlib.Path) -> list[tuple]:
    """The text workload of an event file, in file order: ``("c", complaint_id, text,
    declared_type, customer_tier)`` per complaint and ``("l", complaint_id, intent)`` per
    valid agent label of a complaint seen before (what the pipeline's decoder lets through)."""
    ops: list[tuple] = []
    seen: set[str] = set()
    with path.open(encoding="utf-8") as f:
        for line in f:
            if '"complaint' not in line:
                continue   # orders and statuses: no text
            try:
                e = json.loads(line)
            except ValueError:
                continue   # the inputs hold a few malformed lines on purpose (dead letters)
            if not isinstance(e, dict):
                continue
            cid = e.get("complaint_id")
            if e.get("type") == "complaint" and cid and isinstance(e.get("text"), str):
                seen.add(cid)
                ops.append(("c", cid, e["text"], e.get("declared_type"), e.get("customer_tier")))
            elif e.get("type") == "complaint_update" and e.get("intent") in INTENTS and cid in seen:
                ops.append(("l", cid, e["intent"]))
    return ops


def run_once(ops: list[tuple]) -> tuple[int, int, dict[str, float]]:
    """One pass with a fresh seeded classifier; CPU seconds per part."""
    intent_module._NGRAM_CACHE.clear()   # every pass starts cold, as a fresh process would
    classifier = IntentClassifier(seeded=True)
    clock = time.process_time
    spent = {"masking": 0.0, "intent": 0.0, "sentiment": 0.0, "learning": 0.0}
    masked_of: dict[str, str] = {}
    complaints = labels = 0
    for op in ops:
        if op[0] == "c":
            _, cid, text, declared, tier = op
            t0 = clock()
            masked = mask_pii(text)
            t1 = clock()
            classifier.predict_one(masked, declared)
            t2 = clock()
            anger, _ = anger_and_sentiment(text)
            priority(anger, sensitive_flags(text), tier)
            t3 = clock()
            spent["masking"] += t1 - t0
            spent["intent"] += t2 - t1
            spent["sentiment"] += t3 - t2
            masked_of[cid] = masked
            complaints += 1
        else:
            t0 = clock()
            classifier.learn_one(masked_of[op[1]], op[2])
            spent["learning"] += clock() - t0
            labels += 1
    return complaints, labels, spent


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=pathlib.Path, help="an event JSONL file (default: simulate)")
    ap.add_argument("--days", type=float, default=1.0, help="simulated days (without --events)")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    if args.repeat < 1:
        ap.error("--repeat must be at least 1")
    if args.days <= 0:
        ap.error("--days must be positive")
    if args.events is not None and not args.events.is_file():
        ap.error(f"--events: no such file: {args.events}")
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    if args.events is not None:
        ops = read_workload(args.events)
        source = str(args.events)
    else:
        with tempfile.TemporaryDirectory() as tmp:
            events = pathlib.Path(tmp) / "events.jsonl"
            print(f"simulating {args.days:g} day(s), seed {args.seed} ...", flush=True)
            write_files(SimulationConfig(days=args.days, seed=args.seed), events)
            ops = read_workload(events)
        source = f"simulator, {args.days:g} day(s), seed {args.seed}"
    best = None
    for i in range(args.repeat):
        complaints, labels, spent = run_once(ops)
        total = sum(spent.values())
        print(f"  pass {i + 1}/{args.repeat}: {total / max(complaints, 1) * 1e6:.1f} us/complaint",
              flush=True)
        if best is None or total < sum(best.values()):
            best = spent
    n = max(complaints, 1)
    print(f"complaint text cost ({source}): {complaints} complaints, {labels} agent labels, "
          f"best of {args.repeat}, load average {os.getloadavg()[0]:.2f}")
    for part, seconds in best.items():
        print(f"  {part:10s} {seconds / n * 1e6:7.1f} us CPU per complaint")
    print(f"  {'total':10s} {sum(best.values()) / n * 1e6:7.1f} us CPU per complaint")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
