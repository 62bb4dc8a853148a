"""How detectable is each simulated intent-mix shift, from the counts alone?

For every ``intent_mix_shift`` incident of a manifest, reads the slice's complaints by
intent from a replay's aggregates (``riskwatch replay --aggregates-out``) and prints:
complaints an hour during the shift, the intent's classified share in the day before
and during it, and the evidence the whole shift holds — ``n x KL(p_during || p_before)``,
the log-likelihood ratio an *oracle* CUSUM (told both shares) would collect over the
shift's ``n`` complaints. Against the alarm level of ``streams.mix`` (the bank's
threshold + ln(intents) + ln(slices of the kind / 30)) it says whether any detector
holding the stage's false-alarm budget could page the shift at all, and after how long
at best (level / evidence per hour); and what 30 minutes of the shift contain.

    .venv/bin/python benchmarks/intent_mix_detectability.py \\
        --truth m7.json --aggregates agg7.jsonl [--truth m3.json --aggregates agg3.jsonl ...]

The shares are the *classified* intents (what the pipeline sees): the classifier files
some turned complaints under a neighbouring intent, so they move less than the
simulator's ``share_during``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from detectors.intent_mix import IntentMixBank  # noqa: E402


def _slice_name(dims: dict) -> str:
    return "|".join(f"{k}={v}" for k, v in dims.items())


def _kl(p: float, q: float) -> float:
    """KL divergence of Bernoulli(p) from Bernoulli(q), in nats."""
    if not 0.0 < q < 1.0:
        return float("nan")
    out = 0.0
    if p > 0:
        out += p * math.log(p / q)
    if p < 1:
        out += (1 - p) * math.log((1 - p) / (1 - q))
    return out


def shifts(truth: Path, aggregates: Path) -> list[dict]:
    """One row per intent-mix shift of ``truth``, counted from ``aggregates``."""
    incidents = [i for i in json.loads(truth.read_text())["incidents"]
                 if i["kind"] == "intent_mix_shift"]
    rows = []
    for inc in incidents:
        start = dt.datetime.fromisoformat(inc["start"])
        rows.append({"incident": inc, "slice": _slice_name(inc["dimensions"]), "start": start,
                     "end": dt.datetime.fromisoformat(inc["end"]),
                     "before": [0, 0], "during": [0, 0], "first30": [0, 0]})
    kinds: dict[tuple, set] = {}
    wanted = {r["slice"] for r in rows}
    needles = [f'"slice":"{s}"' for s in wanted]
    with aggregates.open(encoding="utf-8") as lines:
        for line in lines:
            if '"intents":{}' in line:
                continue
            if not any(n in line for n in needles):
                # Slices of each kind with complaints: the level's Bonferroni term.
                if '"dimensions":{"' in line and "|" not in line.split('"slice":"', 1)[1][:80]:
                    rec = json.loads(line)
                    kinds.setdefault(tuple(rec["dimensions"]), set()).add(rec["slice"])
                continue
            rec = json.loads(line)
            kinds.setdefault(tuple(rec["dimensions"]), set()).add(rec["slice"])
            at = dt.datetime.fromisoformat(rec["bucket_start"])
            for r in rows:
                if rec["slice"] != r["slice"]:
                    continue
                n = sum(rec["intents"].values())
                k = rec["intents"].get(r["incident"]["intent"], 0)
                if r["start"] <= at < r["end"]:
                    r["during"][0] += k
                    r["during"][1] += n
                    if at < r["start"] + dt.timedelta(minutes=30):
                        r["first30"][0] += k
                        r["first30"][1] += n
                elif r["start"] - dt.timedelta(days=1) <= at < r["start"]:
                    r["before"][0] += k
                    r["before"][1] += n
    bank = IntentMixBank()
    for r in rows:
        dims = tuple(r["incident"]["dimensions"])
        per_kind = max(len(kinds.get(dims, ())), 1)
        r["level"] = (bank.threshold + math.log(len(bank.intents))
                      + max(0.0, math.log(per_kind / 30.0)))
        hours = (r["end"] - r["start"]).total_seconds() / 3600
        p0 = r["before"][0] / max(r["before"][1], 1)
        p1 = r["during"][0] / max(r["during"][1], 1)
        kl = _kl(p1, p0)
        r.update(hours=hours, p0=p0, p1=p1, rate=r["during"][1] / hours,
                 evidence=kl * r["during"][1], per_hour=kl * r["during"][1] / hours)
        r["best_hours"] = r["level"] / r["per_hour"] if r["per_hour"] > 0 else math.inf
        r["detectable"] = r["evidence"] >= r["level"]
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--truth", type=Path, action="append", required=True,
                        help="a manifest (riskwatch simulate --manifest)")
    parser.add_argument("--aggregates", type=Path, action="append", required=True,
                        help="that week's replay aggregates, in the same order")
    args = parser.parse_args(argv)
    if len(args.truth) != len(args.aggregates):
        parser.error("give one --aggregates per --truth")
    print(f"{'manifest':<10}{'incident':<9}{'slice':<16}{'hours':>6}{'compl/h':>8}"
          f"{'share before':>18}{'share during':>16}{'evidence':>9}{'level':>6}"
          f"{'best delay':>11}  {'first 30 min':<18}verdict")
    detectable = 0
    for truth, aggregates in zip(args.truth, args.aggregates):
        print(f"reading {aggregates} ...", file=sys.stderr, flush=True)
        for r in shifts(truth, aggregates):
            b, d, f = r["before"], r["during"], r["first30"]
            best = "-" if math.isinf(r["best_hours"]) else f"{r['best_hours']:.1f} h"
            verdict = ("detectable" if r["detectable"] else
                       "NOT detectable: the whole shift holds less evidence than the level")
            detectable += r["detectable"]
            print(f"{truth.stem:<10}{r['incident']['id']:<9}{r['slice']:<16}{r['hours']:>6.1f}"
                  f"{r['rate']:>8.1f}{r['p0']:>7.2f} ({b[0]:>3}/{b[1]:>3}){r['p1']:>6.2f} ({d[0]:>2}/{d[1]:>3})"
                  f"{r['evidence']:>9.1f}{r['level']:>6.1f}{best:>11}  "
                  f"{f[0]:>2} of {f[1]:>2} ({r['p0'] * f[1]:.1f} usual)  {verdict}")
    print(f"{detectable} shifts detectable")
    return 0


if __name__ == "__main__":
    sys.exit(main())
