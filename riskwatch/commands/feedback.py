"""``riskwatch feedback``: an operator's verdict on an alert, and per-detector precision.

::

    riskwatch feedback 167c0feb71275f03-5978857 --verdict false_alarm --note "planned reroute" \\
        --store fb.jsonl --alerts alerts.jsonl           # appends to fb.jsonl (metric from alerts)
    riskwatch feedback 167c0feb71275f03-5978857 --verdict confirmed --store fb.jsonl \\
        --broker kafka://127.0.0.1:9092   # also tell the live workers (metric from their alerts topic)
    riskwatch feedback --report --store fb.jsonl [--alerts alerts.jsonl] [--json]
    riskwatch replay events.jsonl --feedback fb.jsonl --alerts-out alerts.jsonl

What a verdict changes is described in :mod:`streams.feedback`: ``expected`` and
``false_alarm`` close the firing episode and mute the slice (``false_alarm`` also raises
its alarm level), ``confirmed`` counts as a true detection.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import sys
from pathlib import Path

import orjson

from riskwatch.commands import BROKER_ENV, check_broker, same_file, warn
from riskwatch.errors import BrokerError, ConfigError

__all__ = ["register"]


def _store_path(store: str) -> Path:
    """The file ``--store`` names: a JSONL file, appended to; an existing directory, or a
    path ending in ``/``, means ``feedback.jsonl`` in it (as ``replay --feedback`` and
    ``--report`` read a directory). Nothing is created but that one directory."""
    p = Path(store)
    if not p.parent.is_dir():  # as replay does for its outputs: no surprise directory trees
        raise ConfigError(f"--store: directory {p.parent} does not exist")
    if p.is_dir() or store.endswith(("/", "\\")):
        if p.exists() and not p.is_dir():
            raise ConfigError(f"--store {store}: {p} is a file, not a directory "
                              f"(give --store {p} to append to it)")
        p.mkdir(exist_ok=True)
        return p / "feedback.jsonl"
    return p


# A stored record is well under this (its note is cut to 500 characters): the store check
# reads no more than this from either end, so a large events or binary file costs nothing.
_MAX_RECORD_BYTES = 64 * 1024


def _record_problem(line: bytes) -> str | None:
    """Why ``line`` is not a feedback record as ``--report`` and ``replay --feedback`` read
    them (``None``: it is one). The reason is PII-masked: it may quote the line's values."""
    from streams.feedback import parse_feedback
    from streams.text import mask_pii

    try:
        parse_feedback(orjson.loads(line))
    except orjson.JSONDecodeError:
        return "not a JSON line"
    except ConfigError as exc:
        return mask_pii(str(exc))
    return None


def _check_store(path: Path, alerts: str | None) -> bool:
    """Refuse a ``--store`` a verdict must not be appended to; return whether the file
    needs a newline first (a store edited by hand may lack its last one, and the record
    was glued to that line, breaking both).

    Any file was appended to: the ``--alerts`` file, an events file, a binary file. Each
    is refused here, cheaply: the first and the last non-blank line must be feedback
    records. An empty or new file is a new store.
    """
    if alerts and same_file(path, Path(alerts)):
        raise ConfigError(f"--store {path} is the --alerts file: a verdict appended to it "
                          "would corrupt it; give the feedback file (e.g. feedback.jsonl)")
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return False
    except OSError as exc:
        raise ConfigError(f"--store: cannot read {path}: {exc.strerror}") from None
    if path.is_dir():   # a directory named feedback.jsonl inside --store DIR/
        raise ConfigError(f"--store: {path} is a directory; give a feedback JSONL file")
    try:
        with path.open("rb") as handle:
            head = handle.read(_MAX_RECORD_BYTES)
            handle.seek(max(0, size - _MAX_RECORD_BYTES))
            tail = handle.read()
    except OSError as exc:
        raise ConfigError(f"--store: cannot read {path}: {exc.strerror}") from None
    # A line cut by the window is cut JSON, so it is refused too: rightly, no record is
    # that long.
    first = next((line for line in head.splitlines() if line.strip()), None)
    last = next((line for line in reversed(tail.splitlines()) if line.strip()), None)
    for where, line in (("line 1", first), ("its last line", last)):
        problem = line is not None and _record_problem(line)
        if problem:
            raise ConfigError(f"--store {path}: {where} is not a feedback record: {problem}; "
                              "give the file earlier verdicts went to, or a new one")
    return size > 0 and not tail.endswith(b"\n")


def _read_alerts(path: str) -> list[dict]:
    """The firing records of an alerts JSONL file (``--alerts``), one per alert_id.

    Read with evaluate's loader, so that feedback and evaluate accept and refuse the same
    files with the same message (an InputError naming the file and line): a looser reader
    here took an events or complaints file for one without alerts.
    """
    from riskwatch.evaluate import load_alerts

    return list({a["alert_id"]: a for a in load_alerts(path) if a["status"] == "firing"}.values())


def _metric(args: argparse.Namespace, alert_id: str) -> tuple[str, str | None]:
    """The detector a verdict is about and where it came from: the alert's own (from
    ``--alerts``), else ``--metric``, else (``unknown``, None): :func:`_metric_on_topic`
    may still find it. It was ``complaint_rate`` by default, so a verdict on an
    order_surge alert was counted against complaint_rate by ``--report``. ``alert_id``: as
    parse_feedback spells it (lower-case), as the alerts file does."""
    from streams.feedback import ALERT_METRICS, METRIC_SOURCES, UNKNOWN_METRIC

    if args.metric is not None and args.metric not in ALERT_METRICS:
        raise ConfigError(f"--metric: {args.metric!r} is not a riskwatch detector; "
                          f"one of {', '.join(ALERT_METRICS)}")
    if not args.alerts:
        return (args.metric, METRIC_SOURCES["flag"]) if args.metric else (UNKNOWN_METRIC, None)
    found = [a for a in _read_alerts(args.alerts) if a["alert_id"] == alert_id]
    if not found:
        raise ConfigError(f"--alerts: alert {alert_id} never fired in {args.alerts}")
    metric = str(found[0].get("metric") or UNKNOWN_METRIC)
    if args.metric is not None and args.metric != metric:
        raise ConfigError(f"--metric {args.metric}: alert {alert_id} has metric {metric} "
                          f"in {args.alerts}")
    return metric, METRIC_SOURCES["file"]


def _metric_on_topic(bootstrap: str, topic: str, alert_id: str) -> tuple[str | None, str | None]:
    """The metric of ``alert_id`` as the live workers wrote it on their alerts topic, and
    a problem to tell the user (the id is not there) or to keep quiet about (the broker
    cannot be read: sending the verdict fails next, with one error line)."""
    from riskwatch.broker import find_alert
    from riskwatch.produce import aiokafka_quiet

    try:
        with aiokafka_quiet():
            record = asyncio.run(find_alert(bootstrap, topic, alert_id))
    except Exception as exc:  # noqa: BLE001 - aiokafka errors vary; said once, below
        return None, f"cannot read topic {topic} to find its metric ({type(exc).__name__})"
    if record is None or not record.get("metric"):
        return None, (f"alert {alert_id} is not on topic {topic}: check the id (its metric is "
                      "recorded as unknown; a worker that never raised it counts the verdict "
                      "as unknown)")
    return str(record["metric"]), None


async def _send(bootstrap: str, topic: str, value: bytes, key: bytes) -> None:
    from aiokafka import AIOKafkaProducer

    from riskwatch.produce import start_quietly

    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, request_timeout_ms=10_000)
    await start_quietly(producer, bootstrap)   # a broker that is down: one error line
    try:
        await producer.send_and_wait(topic, value, key=key)
    finally:
        await producer.stop()


def cmd_feedback(args: argparse.Namespace) -> int:
    from riskwatch.broker import bootstrap_from_url
    from streams.feedback import (METRIC_SOURCES, UNKNOWN_METRIC, load_feedback, parse_feedback,
                                  precision_report)

    # --report with a verdict printed the report and stored nothing, without a word;
    # --json without --report was ignored. Recording and reporting are separate runs.
    recording = [name for name, given in (
        ("ALERT_ID", args.alert_id), ("--verdict", args.verdict), ("--note", args.note),
        ("--metric", args.metric), ("--broker", args.broker)) if given is not None]
    if args.report and recording:
        given = " and ".join(recording)
        raise ConfigError(f"--report only prints precision and records nothing: drop {given} "
                          "to see it, or drop --report to record the verdict (then run --report)")
    if args.json and not args.report:
        raise ConfigError("--json is only for --report (recording a verdict prints one line)")
    if args.report:
        feedback = load_feedback(args.store)
        alerts = _read_alerts(args.alerts) if args.alerts else []
        report = precision_report(feedback, alerts)
        if args.json:
            sys.stdout.write(orjson.dumps(report, option=orjson.OPT_INDENT_2).decode() + "\n")
            return 0
        print(f"{'detector (metric)':<22} {'confirmed':>9} {'expected':>9} {'false':>6} "
              f"{'unreviewed':>10} {'precision':>9}  metric from")
        for metric, row in report.items():
            precision = "-" if row["precision"] is None else f"{row['precision']:.3f}"
            sources = ", ".join(f"{source} {n}" for source, n in sorted(row["metric_from"].items()))
            print(f"{metric:<22} {row['confirmed']:>9} {row['expected']:>9} {row['false_alarm']:>6} "
                  f"{row['unreviewed']:>10} {precision:>9}  {sources}")
        if not report:
            print("(no feedback yet)")
        elif UNKNOWN_METRIC in report:
            print(f"{UNKNOWN_METRIC}: verdicts recorded without --alerts, --metric or --broker (whose "
                  "alerts topic holds the alert); give this report --alerts FILE to count them")
        return 0
    if not args.alert_id or not args.verdict:
        raise ConfigError("give ALERT_ID and --verdict (or --report)")
    record = parse_feedback({"alert_id": args.alert_id, "verdict": args.verdict, "note": args.note,
                             "ts": dt.datetime.now(dt.UTC).isoformat(timespec="seconds")})
    # after parse_feedback: a bad alert id is named first
    record["metric"], source = _metric(args, record["alert_id"])
    # A bad --broker URL is refused before the verdict is stored: it was stored, then the
    # send failed, and the corrected command stored it a second time.
    # $RISKWATCH_BROKER as for the worker: with it set and no --broker, the verdict was
    # stored in the file only, and the live workers (on that broker) never heard of it.
    broker = check_broker(args.broker, env=BROKER_ENV)
    problem = None
    if broker and source is None:
        # A live verdict has no alerts file: the workers' alerts topic has the alert. Its
        # metric was "unknown" and --report counted the verdict under no detector.
        metric, problem = _metric_on_topic(bootstrap_from_url(broker), f"{args.topic_prefix}alerts",
                                           record["alert_id"])
        if metric is not None:
            record["metric"], source = metric, METRIC_SOURCES["topic"]
    if source is not None:
        record["metric_source"] = source
    record.pop("start_bucket")
    line = orjson.dumps(record)
    path = _store_path(args.store)
    newline_first = _check_store(path, args.alerts)
    with path.open("ab") as handle:
        handle.write((b"\n" if newline_first else b"") + line + b"\n")
    found = f"metric {record['metric']} from the {source}" if source else "metric unknown"
    print(f"{record['verdict']} recorded for alert {record['alert_id']} ({found}) -> {path}")
    if not broker:
        print(f"not sent to live workers (no --broker, no ${BROKER_ENV}): a replay applies it "
              f"with --feedback {path}")
        return 0
    topic = f"{args.topic_prefix}feedback"
    try:
        asyncio.run(_send(bootstrap_from_url(broker), topic, line, record["fingerprint"].encode()))
    except Exception as exc:  # noqa: BLE001 - aiokafka errors vary; one clear line
        raise BrokerError(f"could not send the verdict to {broker} topic {topic}: "
                          f"{type(exc).__name__}: {exc} (it is saved in {path})") from None
    print(f"sent to {broker} topic {topic}: live workers apply it now")
    if problem:
        warn(problem)
    return 0


def register(subparsers) -> None:
    """Add ``feedback`` to the CLI."""
    from streams.feedback import VERDICTS

    p = subparsers.add_parser(
        "feedback", help="mark an alert confirmed / expected / false_alarm; precision report",
        description="Record an operator's verdict on an alert. expected and false_alarm close the "
                    "alert and mute its slice for a day (false_alarm also raises its alarm level); "
                    "replay applies saved verdicts with --feedback FILE, live workers read the "
                    "'feedback' topic (--broker). --report prints precision per detector.")
    p.add_argument("alert_id", nargs="?", help="the alert's alert_id (from the page or alerts.jsonl)")
    p.add_argument("--verdict", choices=VERDICTS, help="what the alert was")
    p.add_argument("--note", help="free text (personal data is masked before it is stored)")
    p.add_argument("--metric", help="the alert's detector: complaint_rate, order_surge, "
                   "overdue_delivery or intent_mix (default: the alert's own with --alerts, "
                   "else from the live workers' alerts topic with --broker, else 'unknown')")
    p.add_argument("--store", required=True, metavar="FILE",
                   help="feedback JSONL file, appended to (an existing directory, or one ending "
                        "in /: feedback.jsonl in it); replay --feedback reads the same path")
    p.add_argument("--broker", help="also send the verdict to the live workers (kafka://HOST:PORT; "
                   "default $RISKWATCH_BROKER); the alert's detector is read from their alerts topic")
    p.add_argument("--topic-prefix", default="", help="topic name prefix of the live workers")
    p.add_argument("--report", action="store_true",
                   help="print verdict counts and precision per detector, and where each "
                        "detector's metric came from (records nothing: not with ALERT_ID, "
                        "--verdict, --note, --metric or --broker)")
    p.add_argument("--alerts", help="alerts JSONL (riskwatch replay --alerts-out): with a verdict, "
                   "the alert's detector is taken from it; with --report, unreviewed alerts are counted")
    p.add_argument("--json", action="store_true", help="with --report: JSON output")
    p.set_defaults(func=cmd_feedback)
