"""The ``riskwatch`` command line.

::

    riskwatch simulate --out events.jsonl --manifest truth.json --calendar-out calendar.json
    riskwatch replay events.jsonl --calendar calendar.json --alerts-out alerts.jsonl
    riskwatch evaluate --truth truth.json --alerts alerts.jsonl
    riskwatch worker [--broker kafka://HOST:PORT]       # live; embedded broker if none
    riskwatch demo [--duration SECONDS]                 # everything on one laptop

Every user error (bad flag value, unreadable file, broken calendar) ends with one line
``riskwatch: error: ...`` and exit status 2; bad *events* never stop a run (they become
dead letters).
"""

from __future__ import annotations

import argparse
import os
import stat
import sys
from pathlib import Path

from riskwatch.commands import (BROKER_ENV, check_broker, check_new_chdb, check_outputs, number,
                                positive_float, positive_int, redact_url, same_file, share, warn)
from riskwatch.commands import status_line as _status
from riskwatch.commands.parsing import parse_command_line
from riskwatch.commands.simulate import cmd_simulate
from riskwatch.commands.replay_summary import (DeadLetterTally, check_replay_result,
                                               interrupted_message, reason_counts)
from riskwatch.errors import ConfigError, RiskwatchError, SinkError
from sinks.wiring import add_output_arguments

# Subcommands that live in their own modules: each module has ``register(subparsers)``
# that adds its parser(s) with ``set_defaults(func=...)``. Add a module here to add commands.
_COMMAND_MODULES: tuple[str, ...] = ("riskwatch.commands.merchants",)

_COMMAND_MODULES += ("riskwatch.commands.feedback",)  # riskwatch feedback (alerting)
_COMMAND_MODULES += ("riskwatch.commands.db", "riskwatch.commands.dashboards",
                      "riskwatch.commands.report")  # storage, Grafana, the overview page

__all__ = ["main"]


def _bucket_seconds(text: str) -> int:
    value = positive_int(text)
    if 3600 % value:   # buckets must align with hours and days
        raise argparse.ArgumentTypeError(f"must divide 3600 evenly (e.g. 60, 300, 900), got {text}")
    return value


# The checks of the flags PipelineSettings takes, done here so that the error names the
# flag (or the environment variable) and the value as typed, not the setting's name.
_lateness_seconds = number(int, 0)
_tail_hours = number(float, 0, 168)
_cold_lift = number(float, 1, 10)
_SETTINGS_ENV = (("RISKWATCH_BUCKET_SECONDS", "bucket_seconds", _bucket_seconds),
                 ("RISKWATCH_ALLOWED_LATENESS_SECONDS", "allowed_lateness_seconds", _lateness_seconds),
                 ("RISKWATCH_MAX_TIME_JUMP_SECONDS", "max_time_jump_seconds", _lateness_seconds))


def _settings_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--bucket-seconds", type=_bucket_seconds,
                   help="event-time bucket size (default 300; env RISKWATCH_BUCKET_SECONDS)")
    p.add_argument("--allowed-lateness-seconds", type=_lateness_seconds,
                   help="how late an event may be before it counts as late (default 600; "
                        "env RISKWATCH_ALLOWED_LATENESS_SECONDS)")
    p.add_argument("--max-time-jump-seconds", type=_lateness_seconds,
                   help="an event further ahead of the stream than this is dead-lettered "
                        "(default 259200 = 3 days; 0: no limit; env RISKWATCH_MAX_TIME_JUMP_SECONDS)")
    p.add_argument("--no-promotion-learning", action="store_true",
                   help="do not learn recurring promotions' per-slice effects on complaints "
                        "(nor be cautious in an unlearned one's window; env "
                        "RISKWATCH_PROMOTION_LEARNING=off)")
    p.add_argument("--promotion-tail-hours", type=_tail_hours,
                   help="a promotion's effect window is its calendar window plus this tail, "
                        "in hours (default 24: complaints about its orders arrive later)")
    p.add_argument("--promotion-cold-lift", type=_cold_lift,
                   help="in the window of a promotion whose effect on a slice is not learned, "
                        "page only above this multiple of expected (default 1.5)")


def _settings(args: argparse.Namespace):
    from riskwatch.settings import from_env
    for env, name, parse in _SETTINGS_ENV:   # a flag given overrides its variable
        raw = os.environ.get(env)
        if raw and getattr(args, name, None) is None:
            try:
                parse(raw)
            except argparse.ArgumentTypeError as exc:
                raise ConfigError(f"{env}={raw}: {exc}") from None
    _check_lateness(args)
    tail = getattr(args, "promotion_tail_hours", None)
    settings = from_env(bucket_seconds=args.bucket_seconds,
                        allowed_lateness_seconds=args.allowed_lateness_seconds,
                        max_time_jump_seconds=getattr(args, "max_time_jump_seconds", None),
                        promotion_learning=False if getattr(args, "no_promotion_learning", False) else None,
                        promotion_tail_seconds=None if tail is None else int(tail * 3600),
                        promotion_cold_lift=getattr(args, "promotion_cold_lift", None))
    _check_promotion_learning(args, settings.promotion_learning)
    return settings


def _check_promotion_learning(args: argparse.Namespace, learning: bool) -> None:
    """The cold lift and the tail tune promotion learning: with learning off they would
    be silently ignored, so the pair is refused (naming the variable if it turned it off).
    ``learning``: the settings' value, so the variable is parsed in one place (from_env)."""
    given = [flag for flag, name in (("--promotion-cold-lift", "promotion_cold_lift"),
                                     ("--promotion-tail-hours", "promotion_tail_hours"))
             if getattr(args, name, None) is not None]
    if not given or learning:
        return
    off = ("--no-promotion-learning" if getattr(args, "no_promotion_learning", False)
           else f"RISKWATCH_PROMOTION_LEARNING={os.environ.get('RISKWATCH_PROMOTION_LEARNING')}")
    raise ConfigError(f"{off} and {given[0]}: {given[0]} tunes promotion learning, which "
                      f"{off} turns off; give one of them")


def _check_lateness(args: argparse.Namespace) -> None:
    """A late event must still be recognised as a duplicate: event ids are remembered for
    the dedup window (no flag sets it), so the allowed lateness cannot exceed it. Said
    here, naming the flag or variable: the settings' own error names neither."""
    from riskwatch.settings import PipelineSettings

    window = PipelineSettings.dedup_window_seconds
    value = args.allowed_lateness_seconds
    source = f"--allowed-lateness-seconds {value}"
    if value is None:   # the variable, checked as a number by _settings already
        raw = os.environ.get("RISKWATCH_ALLOWED_LATENESS_SECONDS")
        if not raw:
            return
        value, source = _lateness_seconds(raw), f"RISKWATCH_ALLOWED_LATENESS_SECONDS={raw}"
    if value > window:
        raise ConfigError(f"{source}: must not exceed the dedup window of {window} seconds "
                          f"({window / 3600:g} hours: how long event ids are remembered to "
                          "drop duplicates)")


# -- replay -------------------------------------------------------------------------------
def cmd_replay(args: argparse.Namespace) -> int:
    from riskwatch.calendar import Calendar
    from sinks.jsonl import JsonlSink
    from streams.pipeline import Pipeline
    from streams.replay import replay_file

    if args.events != "-":
        # Only a path that does not exist is "not found": a pipe (<(zcat ...)), a named
        # pipe or /dev/null is read as a stream, like stdin; other failures are read errors.
        try:
            events_stat = os.stat(args.events)
        except FileNotFoundError:
            raise ConfigError(f"events file not found: {args.events}") from None
        except OSError:
            events_stat = None   # replay_file's open says why
        if events_stat is not None and stat.S_ISDIR(events_stat.st_mode):
            raise ConfigError(f"events file {args.events} is a directory; give a JSONL file")
    calendar = Calendar.load(args.calendar) if args.calendar else None
    for warning in calendar.warnings if calendar else ():
        warn(f"--calendar {args.calendar}: {warning}")
    paths = {kind: path for kind, path in (
        ("alerts", args.alerts_out), ("complaints", args.complaints_out),
        ("dead_letters", args.dead_letters_out),
        ("aggregates", args.aggregates_out), ("scores", args.scores_out)) if path}
    inputs = {"events file": args.events}
    inputs.update({f"{flag} file": path for flag, path in (
        ("--calendar", args.calendar), ("--feedback", args.feedback)) if path})
    outputs = {f"--{kind.replace('_', '-')}-out": path for kind, path in paths.items()}
    check_outputs(outputs, inputs)
    from sinks.wiring import build_sinks, options_from_args
    options = options_from_args(args)
    check_new_chdb(options.chdb_path)   # chDB would make every missing parent
    if options.chdb_path:   # chDB makes its directory at setup, before the files are opened
        for flag, path in outputs.items():
            if same_file(Path(path), Path(options.chdb_path)):
                raise ConfigError(f"{flag} and --chdb both name {path}; give each its own path")
    # A ClickHouse store gets every table, as from the worker: the aggregates the
    # dashboards read and the events rows of the pipeline-health panels.
    stores = bool(options.chdb_path or options.clickhouse_url)
    pipeline = Pipeline(_settings(args), calendar, keep_events=stores,
                        keep_aggregates=stores or "aggregates" in paths)
    if args.feedback:  # operators' verdicts, applied in event time (deterministic)
        from streams.feedback import load_feedback
        for record in load_feedback(args.feedback):
            pipeline.apply_feedback(record)
    # --chdb, --alertmanager-url, --webhook-url ...; batch: a destination that goes down
    # mid-run fails the replay after a minute, where the worker would wait for it.
    extra_sinks = build_sinks(options, batch=True)
    for extra in extra_sinks:
        extra.setup()
        # A receiver that is down: one error line now, as for a ClickHouse server, not
        # a post retried after the whole file was read.
        check_reachable = getattr(extra, "check_reachable", None)
        if check_reachable is not None:
            check_reachable()
    sink = JsonlSink(paths, mode="w")
    sink.setup()
    tally = DeadLetterTally()

    def on_output(out) -> None:
        tally.add(out.dead_letters)
        for kind, records in out.items():
            if kind in paths:
                for record in records:
                    sink.add(kind, record)
            for extra in extra_sinks:  # a ClickHouse server sink takes them as columns
                extra.add_records(kind, records)
        for extra in extra_sinks:
            extra.flush()

    def progress(lines: int, seconds: float) -> None:
        st = pipeline.stats
        _status(f"replay: {lines:,} lines  {st['events'] / max(seconds, 1e-9):,.0f} events/s  "
                f"watermark {st['watermark']}  alerts fired {st['alerts_fired']}  "
                f"dead letters {st['bad']}")

    try:
        result = replay_file(pipeline, args.events, on_output=on_output,
                             progress=None if args.quiet else progress)
    except SinkError:
        for extra in extra_sinks:   # the run failed: do not wait out a dead sink again in close()
            extra.drain()
        raise
    except KeyboardInterrupt as stop:   # main() prints it: where it stopped, what is partial
        written = dict(outputs)
        if options.chdb_path:
            written["--chdb"] = options.chdb_path
        if options.clickhouse_url:
            written["--clickhouse-url"] = redact_url(options.clickhouse_url)
        raise KeyboardInterrupt(interrupted_message(
            stop, events=args.events, watermark=_watermark(pipeline), outputs=written)) from None
    finally:
        sink.close()
        for extra in extra_sinks:
            extra.close()
    if not args.quiet and sys.stderr.isatty():
        sys.stderr.write("\n")
    print(f"replayed {result['lines']:,} lines ({result['events']:,} events) in "
          f"{result['seconds']:.1f}s = {result['events_per_second']:,} events/s")
    print(f"orders {result['orders']:,}  order_status {result['order_status']:,}  "
          f"complaints {result['complaints']:,}  complaint_updates {result['complaint_updates']:,}")
    reasons = reason_counts(tally.by_reason)
    print(f"dead letters {result['bad']:,}{f' ({reasons})' if reasons else ''}  "
          f"duplicates dropped {result['duplicates']:,}  "
          f"late {result['late']:,}  internal errors {result['internal_errors']:,}")
    print(f"alerts fired {result['alerts_fired']}  escalated {result['alerts_escalated']}  "
          f"resolved {result['alerts_resolved']}  (kept quiet, explained by another slice: "
          f"{result['alerts_explained']})  auto-resolved tickets {pipeline.desk.auto_resolved:,}")
    for day in result["auto_resolution"]:
        print(f"auto-resolution {day['day']}: {day['auto_resolved']:,} of {day['tickets']:,} tickets "
              f"closed without an agent ({day['share']:.1%}), {day['hours_saved']:,.1f} agent hours saved")
    tiers = result["score_tiers"]
    print(f"merchant scores: {result['merchants_scored']:,} merchants  "
          + "  ".join(f"{k} {v:,}" for k, v in tiers.items()))
    if result["score_movers"]:
        # change over the day -> score at its midnight (the records' change_1d counts from
        # the start of the day before, so the two figures differ)
        print("biggest movers of the last full day (change over the day -> score at its end): "
              + ", ".join(f"{m['merchant_id']} {m['change']:+.1f} -> {m['score']:.1f}"
                          for m in result["score_movers"][:5]))
    for kind, path in paths.items():
        print(f"  {kind:<13} -> {path}")
    sys.stdout.flush()   # the summary before the warnings, when both go to one terminal
    check_replay_result(result, tally, events=args.events,
                        max_time_jump_seconds=pipeline.settings.max_time_jump_seconds,
                        dead_letters_kept="dead_letters" in paths or stores)
    return 0


def _watermark(pipeline) -> str | None:
    """The pipeline's event time for an interruption message; None if Ctrl-C left it
    unable to say (it may stop the pipeline anywhere)."""
    try:
        return pipeline.stats["watermark"]
    except Exception:  # noqa: BLE001 - a message must not turn into a traceback
        return None


# -- evaluate -----------------------------------------------------------------------------
def cmd_evaluate(args: argparse.Namespace) -> int:
    import orjson

    from riskwatch.evaluate import evaluate, format_report, load_alerts, load_manifest

    if bool(args.report) != bool(args.aggregates):
        raise ConfigError("--report needs --aggregates (and --aggregates is only for --report); "
                          "write aggregates with `riskwatch replay --aggregates-out FILE`")
    # Before the evaluation: --report naming an input overwrote it with HTML (exit 0), and
    # a missing directory was found only after the whole evaluation had run and printed.
    check_outputs({"--report": args.report},
                  {f"{flag} file": path for flag, path in (
                      ("--truth", args.truth), ("--alerts", args.alerts),
                      ("--aggregates", args.aggregates)) if path})
    if args.aggregates:   # read only by the report, after the evaluation has printed
        try:
            with open(args.aggregates, "rb"):
                pass
        except OSError as exc:
            raise ConfigError(f"--aggregates {args.aggregates}: cannot read it: {exc.strerror}"
                              ) from None
    truth, alerts = load_manifest(args.truth), load_alerts(args.alerts)
    result = evaluate(truth, alerts, grace_minutes=args.grace_minutes)
    if args.json:
        sys.stdout.write(orjson.dumps(result, option=orjson.OPT_INDENT_2).decode() + "\n")
    else:
        print(format_report(result))
    if args.report:
        from riskwatch.report import build_report, write_report

        write_report(args.report, build_report(result, truth, alerts, args.aggregates, progress=_status))
        if sys.stderr.isatty():
            sys.stderr.write("\n")
        print(f"report -> {args.report}", file=sys.stderr if args.json else sys.stdout)
    return 0


# -- worker / demo ------------------------------------------------------------------------
def cmd_worker(args: argparse.Namespace) -> int:
    from streams.checkpoint import fault_tolerance_options
    from streams.worker import run_worker

    from sinks.wiring import options_from_args

    broker = check_broker(args.broker, env=BROKER_ENV)
    return run_worker(_settings(args), broker_url=broker, data_dir=args.data_dir,
                      outputs=options_from_args(args), web_port=args.web_port, calendar=args.calendar,
                      duration=args.duration, log_level=args.log_level,
                      topic_partitions=args.partitions, **fault_tolerance_options(args))


def cmd_demo(args: argparse.Namespace) -> int:
    from riskwatch.demo import run_demo

    from sinks.wiring import options_from_args

    return run_demo(duration=args.duration, data_dir=Path(args.data_dir), days=args.days,
                    orders_per_day=args.orders_per_day, outputs=options_from_args(args))


# -- parser -------------------------------------------------------------------------------
def build_parser(parser_class: type[argparse.ArgumentParser] = argparse.ArgumentParser
                 ) -> argparse.ArgumentParser:
    """The riskwatch parser; ``parser_class`` is that of every (sub)command parser."""
    parser = parser_class(
        prog="riskwatch",
        description="Streaming risk early-warning for e-commerce and express-logistics after-sales.")
    from riskwatch import __version__
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    p = sub.add_parser("replay", help="run the pipeline over a JSONL file in event time")
    p.add_argument("events", help="events JSONL file (one event or JSON array per line; - for stdin)")
    p.add_argument("--calendar", help="business calendar JSON (promotions, maintenance windows)")
    p.add_argument("--alerts-out", required=True, help="write alert state changes here (JSONL)")
    p.add_argument("--complaints-out", help="write enriched, masked complaints here (JSONL)")
    p.add_argument("--dead-letters-out", help="write dead-letter records here (JSONL)")
    p.add_argument("--aggregates-out", help="write per-bucket slice aggregates here (JSONL; large)")
    p.add_argument("--scores-out", help="write merchant quality scores here (JSONL)")
    p.add_argument("--quiet", action="store_true", help="no progress line")
    p.add_argument("--feedback", metavar="FILE",
                   help="operators' verdicts (riskwatch feedback --store FILE): a verdict on an "
                   "alert applies when that alert fires, muting its slice")
    add_output_arguments(p)
    _settings_args(p)
    p.set_defaults(func=cmd_replay)

    p = sub.add_parser("simulate", help="generate realistic traffic with incidents and ground truth")
    p.add_argument("--out", help="write events here (JSONL; - for stdout)")
    p.add_argument("--broker", help="produce to this broker instead (kafka://HOST:PORT)")
    p.add_argument("--speed", type=positive_float,
                   help="with --broker: simulated seconds per wall second (e.g. 3600; "
                        "default: no pacing, every event as fast as the broker takes it)")
    p.add_argument("--batch", type=positive_int, default=1,
                   help="with --broker: events per message, as a JSON array (default 1)")
    p.add_argument("--manifest", help="write the ground-truth manifest here (JSON)")
    p.add_argument("--calendar-out", help="write the business calendar here (JSON)")
    p.add_argument("--intents-out",
                   help="write every complaint's true intent here (JSONL; for intent accuracy)")
    p.add_argument("--start", help="first event time, RFC 3339 (default 2026-11-02T00:00:00+08:00)")
    p.add_argument("--days", type=positive_float, help="simulated days (default 7)")
    p.add_argument("--orders-per-day", type=positive_int, help="average orders per day, at least 100 (default 50000)")
    p.add_argument("--merchants", type=positive_int, help="number of merchants (default 2000)")
    p.add_argument("--seed", type=int, help="random seed (default 7)")
    p.add_argument("--incidents", type=int, help="incidents to inject (default 12)")
    p.add_argument("--surge-incidents", type=int,
                   help="new-shop order surges (brushing) to inject on top (default 2)")
    p.add_argument("--mix-incidents", type=int,
                   help="intent-mix shifts to inject on top: a category's complaints turn to "
                        "one intent, total unchanged (default 2)")
    p.add_argument("--no-promotions", action="store_true", help="no promotion nights")
    p.add_argument("--promotion-strain", type=float, metavar="SCALE",
                   help="how hard promotion nights strain logistics (default 1: orders placed "
                        "in a promotion window see budget carriers' delay/pickup/lost-parcel "
                        "complaints per order rise 1.6-1.8x, others ~1.1x, every time; 2 doubles "
                        "the rise; listed in the manifest)")
    p.add_argument("--no-promotion-strain", action="store_true",
                   help="promotion nights do not strain logistics (same as --promotion-strain 0)")
    p.add_argument("--label-share", type=share, help="share of complaints an agent labels")
    p.add_argument("--pii-share", type=share, help="share of texts with personal data")
    p.add_argument("--malformed-share", type=share, help="share of malformed lines")
    p.add_argument("--duplicate-share", type=share, help="share of duplicated lines")
    p.add_argument("--late-share", type=share, help="share of late events")
    p.set_defaults(func=cmd_simulate)

    p = sub.add_parser("evaluate", help="score alerts against a simulator manifest")
    p.add_argument("--truth", required=True, help="ground-truth manifest from `riskwatch simulate`")
    p.add_argument("--alerts", required=True, help="alerts JSONL from `riskwatch replay` or a worker")
    p.add_argument("--grace-minutes", type=number(float, 0), default=60.0,
                   help="an alert up to this long after an incident's end still counts (default 60)")
    p.add_argument("--json", action="store_true", help="print the full result as JSON")
    p.add_argument("--aggregates", metavar="AGG.jsonl",
                   help="slice aggregates from `riskwatch replay --aggregates-out` (for --report)")
    p.add_argument("--report", metavar="REPORT.html",
                   help="write a self-contained HTML report: summary tables and a chart per "
                        "incident and per false episode (series, expected band, alert marks)")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("worker", help="run the live faust worker")
    # No argparse default: cmd_worker reads $RISKWATCH_BROKER, so an error names its source.
    p.add_argument("--broker",
                   help="kafka://HOST:PORT (default $RISKWATCH_BROKER; none: start an embedded broker)")
    p.add_argument("--data-dir", default="riskwatch-data", help="state directory (default %(default)s)")
    add_output_arguments(p)
    p.add_argument("--web-port", type=positive_int, help="serve /stats/ on 127.0.0.1:PORT")
    p.add_argument("--calendar", help="business calendar JSON")
    p.add_argument("--duration", type=positive_float, help="stop after this many seconds")
    p.add_argument("--partitions", type=positive_int, default=1, help="partitions of topics we create")
    p.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    from streams.checkpoint import add_fault_tolerance_arguments
    add_fault_tolerance_arguments(p)
    _settings_args(p)
    p.set_defaults(func=cmd_worker)

    p = sub.add_parser("demo", help="broker + worker + simulator + chDB + live view, on this laptop")
    p.add_argument("--duration", type=positive_float, default=90.0,
                   help="wall-clock seconds to run, at least 20 (default %(default)s); the "
                        "simulated --days are streamed in 3/4 of it; Ctrl-C stops early")
    p.add_argument("--data-dir", default="riskwatch-data/demo", help="where the demo keeps its data")
    p.add_argument("--days", type=positive_float, default=2.5, help="simulated days to stream (default 2.5)")
    p.add_argument("--orders-per-day", type=positive_int, default=20_000,
                   help="simulated orders per day (default 20000)")
    add_output_arguments(p)
    p.set_defaults(func=cmd_demo)

    import importlib
    for name in _COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    # Not parse_args: an unknown flag is named first, under its subcommand's usage.
    args = parse_command_line(build_parser, argv)
    try:
        return args.func(args)
    except RiskwatchError as exc:
        # Last line of defence: a message may quote a value from a user's file (an alert
        # id, a verdict) holding a phone or ID number. Imported here: errors are rare.
        from streams.text.pii import mask_pii

        print(f"riskwatch: error: {mask_pii(str(exc))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:   # a command may say where it stopped (str(exc))
        detail = str(exc)
        print(f"riskwatch: interrupted{' ' + detail if detail else ''}", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `riskwatch ... | head`: the reader left, nothing to report
        sys.stderr.close()
        return 0


if __name__ == "__main__":
    sys.exit(main())
