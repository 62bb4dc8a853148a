"""``riskwatch simulate``: simulated traffic with incidents, to a JSONL file or a broker.

The parser is in :func:`riskwatch.cli.build_parser`; this is what the command does. Every
flag is checked before anything is written or a warning printed: a warning about
incident placement followed by a refusal read as if the warning were the problem.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from riskwatch.commands import (check_broker, check_outputs, same_file, simulation_config, warn,
                                status_line as _status)
from riskwatch.errors import ConfigError

__all__ = ["cmd_simulate"]


def cmd_simulate(args: argparse.Namespace) -> int:
    import datetime as dt

    from riskwatch.simulator import write_files

    overrides = {k: getattr(args, k) for k in (
        "days", "orders_per_day", "merchants", "seed", "incidents", "surge_incidents", "mix_incidents",
        "label_share", "pii_share", "malformed_share", "duplicate_share", "late_share") if getattr(args, k) is not None}
    if args.start:
        try:
            overrides["start"] = dt.datetime.fromisoformat(args.start)
        except ValueError:
            raise ConfigError(f"--start: not an RFC 3339 time: {args.start!r}") from None
        if overrides["start"].utcoffset() is None:   # local time of which zone? say so
            raise ConfigError(f"--start {args.start}: no UTC offset; add one, "
                              f"e.g. {args.start}+08:00")
    if args.no_promotions:
        overrides["promotions"] = False
    if args.promotion_strain is not None:
        overrides["promotion_strain"] = args.promotion_strain
    if args.no_promotion_strain:
        if args.promotion_strain is not None:
            raise ConfigError("give --promotion-strain SCALE or --no-promotion-strain, not both")
        overrides["promotion_strain"] = 0.0
    _check_flags(args)
    config = simulation_config(overrides)
    # --out - writes the events to stdout (`riskwatch simulate --out - | riskwatch replay -`);
    # the summary lines then go to stderr, so stdout holds nothing but JSONL.
    to_stdout = args.out == "-"
    outputs = {"--out": None if to_stdout else args.out, "--manifest": args.manifest,
               "--calendar-out": args.calendar_out, "--intents-out": args.intents_out}
    check_outputs(outputs)
    _warn_unseen_incidents(config)   # after the errors: no warning before a refusal
    if args.broker:
        from riskwatch.produce import produce_simulation
        tally: dict = {}
        try:
            return produce_simulation(config, broker_url=args.broker, speed=args.speed,
                                      manifest_path=args.manifest, calendar_path=args.calendar_out,
                                      status=_status, batch=args.batch, tally=tally)
        except KeyboardInterrupt:
            raise KeyboardInterrupt(_interrupted_producing(args, tally, config.days)) from None
    started = time.perf_counter()
    written = {"lines": 0, "fraction": 0.0}   # for a Ctrl-C: how far the events got

    def progress(done: int, fraction: float) -> None:
        written.update(lines=done, fraction=fraction)
        _status(f"simulate: {done:,} lines  {fraction:6.1%} of {config.days:g} days  "
                f"{done / max(time.perf_counter() - started, 1e-9):,.0f} lines/s")

    try:
        counts = write_files(config, sys.stdout.buffer if to_stdout else args.out, args.manifest,
                             args.calendar_out, progress=progress, intents_path=args.intents_out)
    except BrokenPipeError:   # `--out - | head`: main() says nothing of it
        raise
    except KeyboardInterrupt:
        raise KeyboardInterrupt(_interrupted(args, written, config.days)) from None
    except OSError as exc:  # checked above, so a disk that filled up or went away meanwhile
        if exc.filename is None and to_stdout:
            raise ConfigError(f"--out -: cannot write standard output: {exc.strerror}") from None
        flag = next((f for f, path in outputs.items()
                     if path and exc.filename and same_file(Path(path), Path(exc.filename))),
                    "output")
        raise ConfigError(f"{flag}: cannot write {exc.filename}: {exc.strerror}") from None
    if sys.stderr.isatty():
        sys.stderr.write("\n")
    report = sys.stderr if to_stdout else sys.stdout
    print(f"wrote {counts['lines']:,} lines to {'standard output' if to_stdout else args.out} "
          f"in {time.perf_counter() - started:.1f}s: "
          + ", ".join(f"{k} {v:,}" for k, v in counts.items() if k != "lines"), file=report)
    if args.manifest:
        print(f"ground truth -> {args.manifest}", file=report)
    if args.calendar_out:
        print(f"calendar     -> {args.calendar_out}", file=report)
    return 0


_LEARNING_SECONDS = 86400   # the detectors page only after a day of history


def _warn_unseen_incidents(config) -> None:
    """One warning line when requested incidents cannot be detected: dropped because the
    run is too short to place them or the market has too few orders for them (see
    riskwatch.simulator.incidents.INCIDENT_BUDGET), or placed in the first day, which the
    detectors spend learning. Otherwise the user only sees recall 0 from evaluate, with
    no reason (or fewer incidents in the manifest than asked for)."""
    import datetime as dt

    from riskwatch.simulator import manifest

    incidents = manifest(config)["incidents"]   # cheap: the plan, no events
    placed = {"new_shop_order_surge": 0, "intent_mix_shift": 0}
    learning = 0
    for inc in incidents:
        if inc["kind"] in placed:
            placed[inc["kind"]] += 1
        learning += (dt.datetime.fromisoformat(inc["start"]).timestamp()
                     < config.start_epoch + _LEARNING_SECONDS)
    complaint_incidents = len(incidents) - sum(placed.values())
    dropped = [f"{want - got} of --{flag} {want}" for flag, want, got in (
        ("incidents", config.incidents, complaint_incidents),
        ("surge-incidents", config.surge_incidents, placed["new_shop_order_surge"]),
        ("mix-incidents", config.mix_incidents, placed["intent_mix_shift"])) if got < want]
    problems = []
    if learning:   # the simulator keeps the first third of a run under 3 days free of them
        problems.append(f"{learning} of {len(incidents)} incidents start in the first day, "
                        "which the detectors spend learning: evaluate will count them as "
                        "missed (give --days 3 or more)")
    if dropped:
        problems.append(f"{' and '.join(dropped)} could not be placed (too short a run, or "
                        "too small a market to see them: more --days or --orders-per-day)")
    if problems:
        warn('; '.join(problems))


def _check_flags(args: argparse.Namespace) -> None:
    """Refuse a missing destination and flags the run would silently ignore."""
    if args.broker and args.out:
        raise ConfigError("give --out FILE or --broker URL, not both")
    if not args.broker and not args.out:
        raise ConfigError("give --out FILE (JSONL) or --broker kafka://HOST:PORT")
    if args.out and (args.speed is not None or args.batch != 1):
        raise ConfigError("--speed and --batch apply to --broker only (--out writes the "
                          "whole simulation at once)")
    if args.broker and args.intents_out:   # the broker run writes no intents file
        raise ConfigError("--intents-out applies to --out only (a --broker run does not write it)")
    if args.no_promotions and (args.promotion_strain is not None or args.no_promotion_strain):
        flag = "--promotion-strain" if args.promotion_strain is not None else "--no-promotion-strain"
        raise ConfigError(f"--no-promotions and {flag}: without promotion nights there is no "
                          "strain to set; give one of them")
    check_broker(args.broker)


def _interrupted_producing(args: argparse.Namespace, tally: dict, days: float) -> str:
    """What follows ``riskwatch: interrupted`` when Ctrl-C stops ``simulate --broker``:
    how much the broker got, and that the manifest (written first) covers all of it, so
    ``evaluate`` would count the incidents never sent as missed."""
    sent = tally.get("sent", 0)
    if sent and tally.get("last") is not None:
        share = (tally["last"] - tally["first"]) / (days * 86400)
        got = f"{sent:,} events (about {share:.0%} of the {days:g} days)"
    else:
        got = "no events"
    manifest = (f"; --manifest {args.manifest} describes the whole simulation: evaluate "
                "against it counts the incidents never sent as missed" if args.manifest else "")
    return f"while producing: the broker {args.broker} got {got}{manifest}"


def _interrupted(args: argparse.Namespace, written: dict, days: float) -> str:
    """What follows ``riskwatch: interrupted`` when Ctrl-C stops ``simulate --out``."""
    where = "the events on standard output are" if args.out == "-" else f"--out {args.out} is"
    lines = written["lines"]
    when = (f"after about {lines:,} lines ({written['fraction']:.0%} of the {days:g} days)"
            if lines else f"in the first {50_000:,} lines")   # progress: every 50,000 lines
    missing = [flag for flag, path in (("--manifest", args.manifest),
                                       ("--calendar-out", args.calendar_out),
                                       ("--intents-out", args.intents_out)) if path]
    tail = (f"; {' and '.join(missing)} {'was' if len(missing) == 1 else 'were'} not written"
            if missing else "")
    return f"{when}: {where} partial{tail}"
