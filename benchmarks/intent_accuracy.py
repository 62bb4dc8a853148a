"""Intent accuracy: simulated complaints after a day of agent labels, and the hand-written set.

Runs the real pipeline over ``--days`` (default 2) simulated days, one complaint in five
labelled by an agent (the simulator's default ``label_share``), and scores the intent of
every complaint *no agent labelled* against the simulator's ground truth
(``write_files(intents_path=...)``): day 1 (the model learning as labels arrive, the
prequential figure) and day 2 (after one full day of labels: the acceptance figure).
Then it scores the model as it stands at the end on the hand-written held-out set
``tests/text/data/intent_heldout.jsonl`` (texts whose wording the simulator never
produced) and prints both confusion matrices.

    .venv/bin/python benchmarks/intent_accuracy.py [--days 2] [--seed 7]
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from riskwatch.simulator import SimulationConfig, write_files  # noqa: E402
from streams.pipeline import Pipeline  # noqa: E402
from streams.replay import replay_file  # noqa: E402
from streams.text import INTENTS, evaluate_intents  # noqa: E402

HELDOUT = ROOT / "tests" / "text" / "data" / "intent_heldout.jsonl"
_SHORT = {"delivery_delay": "delay", "pickup_urge": "pickup", "lost_parcel": "lost",
          "damaged": "damag", "wrong_delivery": "wrong", "fake_shipment": "fake",
          "quality": "qual", "weight_mismatch": "weight", "duplicate_charge": "dup",
          "refund": "refund", "service_attitude": "attit", "customs": "custom", "other": "other"}


def confusion_table(confusion: dict[str, dict[str, int]]) -> str:
    """Rows: true intent; columns: predicted (abbreviated)."""
    head = f"{'true / predicted':17s}" + "".join(f"{_SHORT[i]:>7s}" for i in INTENTS) + "   recall"
    lines = [head]
    for t in INTENTS:
        row = confusion.get(t, {})
        n = sum(row.values())
        lines.append(f"{t:17s}" + "".join(f"{row.get(p, 0) or '.':>7}" for p in INTENTS)
                     + f"   {row.get(t, 0) / n if n else 0:6.2f}")
    return "\n".join(lines)


def _score(records: dict[str, dict], truth: dict[str, str], day: str) -> dict:
    confusion: dict[str, dict[str, int]] = {}
    n = ok = 0
    for rec in records.values():
        if rec["intent_source"] != "model" or not rec["ts"].startswith(day):
            continue   # an agent's label is not the model's answer
        true, pred = truth[rec["complaint_id"]], rec["intent"]
        confusion.setdefault(true, {})[pred] = confusion.setdefault(true, {}).get(pred, 0) + 1
        n += 1
        ok += true == pred
    return {"n": n, "accuracy": ok / n if n else 0.0, "confusion": confusion}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--days", type=float, default=2.0)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--orders-per-day", type=int, default=50_000)
    args = ap.parse_args()
    cfg = SimulationConfig(days=args.days, seed=args.seed, orders_per_day=args.orders_per_day)
    with tempfile.TemporaryDirectory() as tmp:
        events, truth_path = pathlib.Path(tmp) / "events.jsonl", pathlib.Path(tmp) / "truth.jsonl"
        write_files(cfg, events, intents_path=truth_path)
        truth = {r["complaint_id"]: r["intent"] for r in map(json.loads, truth_path.open())}
        pipeline = Pipeline()
        records: dict[str, dict] = {}

        def keep(out) -> None:
            for rec in out.complaints:
                records[rec["complaint_id"]] = rec   # the latest version wins

        started = time.perf_counter()
        result = replay_file(pipeline, events, on_output=keep)
    days = sorted({r["ts"][:10] for r in records.values()})
    print(f"simulated {args.days:g} days (seed {args.seed}): {len(truth):,} complaints, "
          f"{pipeline.desk.labels_learned:,} agent labels learned "
          f"({result['seconds']:.1f}s replay, {time.perf_counter() - started:.1f}s total)")
    for k, day in enumerate(days, 1):
        s = _score(records, truth, day)
        what = "model learning as labels arrive" if k == 1 else f"after {k - 1} day(s) of labels"
        print(f"\nday {k} ({day}), complaints no agent labelled: accuracy {s['accuracy']:.3f} "
              f"on {s['n']:,} ({what})")
        if k == len(days):
            print(confusion_table(s["confusion"]))
    held = evaluate_intents(pipeline.desk.classifier, HELDOUT)
    print(f"\nhand-written held-out set ({held['n']} texts), the model at the end: "
          f"accuracy {held['accuracy']:.3f}")
    print(confusion_table(held["confusion"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
