"""Run the live worker in this process: broker (embedded or given), topics, faust worker.

``riskwatch worker`` calls :func:`run_worker`; ``python -m streams.worker`` is the same
thing without the CLI (tests run it as a subprocess)::

    python -m streams.worker --broker kafka://127.0.0.1:9092 --data-dir riskwatch-data --web-port 6066

Without ``--broker`` (and without ``$RISKWATCH_BROKER``) an embedded Tansu broker is
started on a free loopback port and stopped on exit. SIGINT/SIGTERM (or ``--duration``)
stop the worker cleanly; if that hangs for ``stop_timeout`` seconds (measured: a worker
whose broker vanished ignored SIGTERM) a watchdog stops the embedded broker and exits
hard with status 70, naming the sink that held the stop if one did (a destination that is
down: :mod:`streams.sink_stall`). A second SIGINT/SIGTERM exits hard at once.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import logging
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import faust

from riskwatch.broker import EmbeddedBroker, bootstrap_from_url, create_topics
from riskwatch.commands import BROKER_ENV, check_broker, check_dirs, check_port, make_writable_dir
from riskwatch.errors import ConfigError, RiskwatchError
from riskwatch.settings import PipelineSettings, from_env
from sinks.wiring import OutputOptions, add_output_arguments, build_sinks, options_from_args
from streams.app import TopicNames, create_app
from streams.checkpoint import add_fault_tolerance_arguments, fault_tolerance_options
from streams.sink_stall import forced_stop_reason

__all__ = ["configure_logging", "main", "run_worker"]

# Not __name__: run as ``python -m streams.worker`` that would be "__main__", outside the
# "streams" logger tree that configure_logging() turns up to INFO.
logger = logging.getLogger("streams.worker")

EX_FORCED = 70  # EX_SOFTWARE: the worker had to be killed by its own watchdog
_OUR_LOGGERS = ("riskwatch", "streams", "sinks", "detectors", "dashboards")


def configure_logging(log_level: str = "info") -> None:
    """Our loggers at ``log_level``; faust, aiokafka and mode at WARNING unless debugging.

    faust logs every rebalance step and commit at INFO; the worker's own status line
    (events/s, lag, alerts every 5 s) is what an operator wants to see instead.
    """
    level = logging.getLevelName(log_level.upper())
    if not isinstance(level, int):
        raise ConfigError(f"unknown log level {log_level!r} (debug, info, warning, error)")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level if level <= logging.DEBUG else max(level, logging.WARNING))
    for name in _OUR_LOGGERS:
        logging.getLogger(name).setLevel(level)
    # httpx logs every request at INFO with its whole URL: a receiver's password and the
    # key in its query (?token=...), which our own lines leave out (sinks.http.receiver_name).
    logging.getLogger("httpx").setLevel(logging.WARNING)


class _Worker(faust.Worker):
    """faust's worker plus a shutdown watchdog and a programmatic :meth:`request_stop`."""

    def __init__(self, app: faust.App, *, stop_timeout: float,
                 on_force_exit: Callable[[], None],
                 why_stuck: Callable[[], str | None] = lambda: None, **kwargs: Any) -> None:
        super().__init__(app, **kwargs)
        self.spinner = None  # faust's terminal spinner writes escape codes even when quiet
        self._stop_timeout = stop_timeout
        self._on_force_exit = on_force_exit
        self._why_stuck = why_stuck
        self._watchdog: threading.Timer | None = None

    def install_signal_handlers(self) -> None:
        super().install_signal_handlers()
        # Replace faust's SIGINT/SIGTERM handlers so every stop request arms the watchdog.
        self.loop.add_signal_handler(signal.SIGINT, self.request_stop, "SIGINT")
        self.loop.add_signal_handler(signal.SIGTERM, self.request_stop, "SIGTERM")

    def request_stop(self, reason: str) -> None:
        """Stop the worker (from the loop thread); a second request exits hard."""
        if self._watchdog is not None:
            logger.warning("second stop request (%s): exiting now", reason)
            self._force_exit(second_request=True)
        logger.info("stopping worker (%s)", reason)
        self._watchdog = threading.Timer(self._stop_timeout, self._force_exit)
        self._watchdog.daemon = True
        self._watchdog.start()
        self._on_sigterm()  # faust's own graceful path: stop services, flush, commit

    def disarm(self) -> None:
        if self._watchdog is not None:
            self._watchdog.cancel()

    def _force_exit(self, second_request: bool = False) -> None:
        head = ("exiting hard on a second stop request" if second_request else
                f"worker did not stop within {self._stop_timeout:.0f}s; exiting hard")
        try:
            # A sink still retrying is the usual reason (back-pressure): name it and say
            # what becomes of its records (streams.sink_stall).
            why = self._why_stuck()
        except Exception as exc:  # noqa: BLE001 - the exit must happen whatever this does
            why = f"(cannot tell why: {exc!r})"
        logger.error("%s (status %d)%s", head, EX_FORCED, f": {why}" if why else "")
        try:
            self._on_force_exit()
        finally:
            logging.shutdown()
            os._exit(EX_FORCED)


def _load_calendar(calendar: Any) -> Any:
    if calendar is None or not isinstance(calendar, (str, os.PathLike)):
        return calendar
    from riskwatch.calendar import Calendar
    loaded = Calendar.load(calendar)   # replay's loading, so the same file gets the same message
    for warning in loaded.warnings:
        logger.warning("--calendar %s: %s", calendar, warning)
    return loaded


def _check_web_port(port: int | None) -> None:
    # faust would fail deep inside its service tree with a long traceback; say it plainly.
    if port is None:
        return
    check_port("--web-port", port)   # bind() raises OverflowError outside 0-65535
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError as exc:
            raise ConfigError(f"--web-port {port}: cannot listen on 127.0.0.1:{port} "
                              f"({exc.strerror})") from None


NO_CHECKPOINT_WARNING = (
    "no --checkpoint-dir: the state (detector baselines, open buckets, the dedup window, "
    "firing alerts) lives only in memory, so a restart starts cold and re-learns its "
    "baselines, and messages redelivered after a rebalance reach the state twice; "
    "give --checkpoint-dir DIR (README: Fault tolerance) to keep it")


def run_worker(settings: PipelineSettings, *, broker_url: str | None = None,
               data_dir: str | os.PathLike[str], outputs: OutputOptions | None = None,
               web_port: int | None = None, calendar: Any = None, duration: float | None = None,
               log_level: str = "info", topic_prefix: str = "", app_id: str = "riskwatch",
               topic_partitions: int = 1, flush_on_stop: bool = True,
               stop_timeout: float = 30.0, single_input: bool = False,
               checkpoint_dir: str | os.PathLike[str] | None = None,
               checkpoint_seconds: float = 30.0, checkpoint_messages: int = 100_000) -> int:
    """Run the live worker until SIGINT/SIGTERM or ``duration`` seconds; return the exit code.

    ``broker_url`` falls back to ``$RISKWATCH_BROKER``, then to an embedded Tansu broker
    (started here, stopped on exit). Raises :class:`~riskwatch.errors.RiskwatchError`
    subclasses for problems found before the worker starts (broker, sinks, calendar).
    See :func:`streams.app.create_app` for the other parameters.
    """
    started = time.monotonic()
    configure_logging(log_level)
    # Every check before anything is made or started (the embedded broker, the data dir):
    # a bad flag found later was a traceback with a broker to clean up.
    check_dirs({"--data-dir": data_dir, "--checkpoint-dir": checkpoint_dir})
    if outputs is not None and outputs.chdb_path:
        # A --chdb directory another worker holds was refused only when the sinks opened,
        # after the embedded broker had started (its log lines, then its shutdown).
        from sinks.clickhouse.chdb_sink import check_not_held
        check_not_held(outputs.chdb_path)
    broker_url = broker_url or os.environ.get(BROKER_ENV) or None
    if checkpoint_dir is not None and broker_url is None:
        # The embedded broker starts empty on every run, so a restored checkpoint's
        # positions lie past its new log: the worker sought there and waited without a
        # word (lag 0, 0 events/s), skipping that many messages of the new stream.
        raise ConfigError("--checkpoint-dir needs --broker (or $RISKWATCH_BROKER): the embedded "
                          "broker starts empty on every run, so a checkpoint's input positions "
                          "would point past its messages and the restarted worker would skip them")
    calendar = _load_calendar(calendar)
    _check_web_port(web_port)
    # Built (not set up) before anything is made: a sink refusing its options (a
    # --webhook-url without a secret) was an error after the embedded broker's log lines.
    sinks = build_sinks(outputs or OutputOptions())
    # e.g. no permission: checked paths can still fail here
    if checkpoint_dir is not None:
        make_writable_dir("--checkpoint-dir", checkpoint_dir)
    data_dir = make_writable_dir("--data-dir", data_dir)
    broker: EmbeddedBroker | None = None
    if broker_url is None:
        broker = EmbeddedBroker(data_dir=data_dir / "broker").start()
        broker_url = broker.url
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    worker: _Worker | None = None
    try:
        topics = TopicNames.with_prefix(topic_prefix, single_input=single_input)
        loop.run_until_complete(
            create_topics(bootstrap_from_url(broker_url), topics.all, topic_partitions))
        app = create_app(settings, broker_url=broker_url, data_dir=data_dir,
                         sinks=sinks, web_port=web_port, app_id=app_id,
                         topic_partitions=topic_partitions, topic_prefix=topic_prefix,
                         calendar=calendar, flush_on_stop=flush_on_stop,
                         single_input=single_input, checkpoint_dir=checkpoint_dir,
                         checkpoint_seconds=checkpoint_seconds,
                         checkpoint_messages=checkpoint_messages)
        runtime = app.riskwatch  # type: ignore[attr-defined]
        runtime.started_at = started
        runtime.sinks.setup()
        worker = _Worker(app, loop=loop, loglevel=log_level, quiet=True, override_logging=False,
                         stop_timeout=stop_timeout,
                         on_force_exit=broker.stop if broker is not None else (lambda: None),
                         why_stuck=functools.partial(
                             forced_stop_reason, runtime.sinks, embedded_broker=broker is not None,
                             checkpointing=checkpoint_dir is not None))
        if duration is not None:
            loop.call_later(duration, worker.request_stop, f"duration {duration:g}s elapsed")
        logger.info("worker starting: broker %s%s, app id %s, topics %s*, web %s",
                    broker_url, " (embedded)" if broker else "", app_id, topic_prefix or "",
                    f"http://127.0.0.1:{web_port}/stats/" if web_port else "off")
        if checkpoint_dir is None and broker is None:
            # The embedded broker's log dies with the worker, so state could not outlive it
            # anyway; against a real broker a restart without checkpoints starts cold.
            logger.warning(NO_CHECKPOINT_WARNING)
        try:
            worker.execute_from_commandline()
        except SystemExit as exc:  # faust always exits through SystemExit
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        else:  # pragma: no cover - execute_from_commandline never returns normally
            code = 0
        logger.info("worker stopped (exit code %d) after %.1fs", code, time.monotonic() - started)
        return code
    finally:
        if worker is not None:
            worker.disarm()
        if not loop.is_closed():
            loop.close()
        asyncio.set_event_loop(None)
        if broker is not None:
            broker.stop()


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m streams.worker", description=__doc__.split("\n")[0])
    # No argparse default: main reads $RISKWATCH_BROKER, so an error names its source.
    p.add_argument("--broker", help="kafka://HOST:PORT (default $RISKWATCH_BROKER; none: embedded Tansu)")
    p.add_argument("--data-dir", default="riskwatch-data", help="data directory (default %(default)s)")
    p.add_argument("--web-port", type=int, help="serve /stats/ on 127.0.0.1:PORT")
    add_output_arguments(p)
    p.add_argument("--calendar", help="business calendar JSON file")
    p.add_argument("--duration", type=float, help="stop after this many seconds")
    p.add_argument("--log-level", default="info", help="our log level (faust stays at warning)")
    p.add_argument("--topic-prefix", default="", help="prefix for every topic name")
    p.add_argument("--app-id", default="riskwatch", help="faust app id / consumer group")
    p.add_argument("--partitions", type=int, default=1, help="partitions for topics we create")
    p.add_argument("--bucket-seconds", type=int,
                   help="event-time bucket size (default 300; env RISKWATCH_BUCKET_SECONDS)")
    p.add_argument("--allowed-lateness-seconds", type=int,
                   help="how late an event may be before it counts as late (default 600; "
                        "env RISKWATCH_ALLOWED_LATENESS_SECONDS)")
    p.add_argument("--idle-source-seconds", type=float)
    p.add_argument("--max-time-jump-seconds", type=int,
                   help="dead-letter events further ahead of the stream (default 3 days; 0: off; "
                        "env RISKWATCH_MAX_TIME_JUMP_SECONDS)")
    p.add_argument("--no-flush-on-stop", action="store_true",
                   help="do not close open buckets at shutdown")
    p.add_argument("--stop-timeout", type=float, default=30.0,
                   help="exit hard if a clean stop takes longer (default %(default)gs)")
    add_fault_tolerance_arguments(p)
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        settings = from_env(bucket_seconds=args.bucket_seconds,
                            allowed_lateness_seconds=args.allowed_lateness_seconds,
                            idle_source_seconds=args.idle_source_seconds,
                            max_time_jump_seconds=args.max_time_jump_seconds)
        broker = check_broker(args.broker, env=BROKER_ENV)  # before the data dir is made
        return run_worker(settings, broker_url=broker, data_dir=args.data_dir,
                          outputs=options_from_args(args), web_port=args.web_port,
                          calendar=args.calendar, duration=args.duration,
                          log_level=args.log_level, topic_prefix=args.topic_prefix,
                          app_id=args.app_id, topic_partitions=args.partitions,
                          flush_on_stop=not args.no_flush_on_stop,
                          stop_timeout=args.stop_timeout, **fault_tolerance_options(args))
    except RiskwatchError as exc:
        print(f"riskwatch worker: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
