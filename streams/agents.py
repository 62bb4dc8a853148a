"""The live wiring: one agent, three timers, rebalance signals and a ``/stats/`` page.

The agent is deliberately thin: it hands every Kafka message, in runs of what faust
has fetched (:func:`ingest_run`), to the same :class:`~streams.pipeline.Pipeline` that
``riskwatch replay`` uses, then publishes what the pipeline produced. Everything else is in plain functions so it can be read (and
tested) without faust.

At-least-once, concretely:

- faust acks a message whose agent iteration raised and never retries it, so
  :func:`handle_message` contains *every* exception per message and turns it into a
  dead letter (error type and message only: no raw payload, it may hold personal data).
- Outputs go to the ``alerts`` / ``dead-letters`` / ``merchant-scores`` /
  ``complaint-records`` topics through
  faust's producer, which faust flushes before it commits input offsets. A send that
  fails is retried until it lands, holding the agent (:mod:`streams.publishing`).
- Sinks are fed on one dedicated thread (a ClickHouse insert that retries must not
  stall the event loop). They are flushed right before faust commits input offsets
  (:func:`flush_sinks_before_commit`), so an offset is committed only after the rows of
  its messages were written; also every 2 s (outputs of the idle tick) and at shutdown.
  Live batches are cut by time, so they carry no dedup token: the sinks' deterministic
  ids (ReplacingMergeTree) absorb what a restart re-delivers.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import dataclasses
import datetime as dt
import functools
import logging
import re
import time
import traceback
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

import faust
import orjson

from riskwatch.errors import SinkBackpressure, SinkError
from riskwatch.settings import PipelineSettings
from sinks.base import RetryPolicy
from streams.app import TopicNames
from streams.open_alerts import RECENT_ALERT_SECONDS
from streams.publishing import Unpublished, publish
from streams.sink_stall import SinkStall, safe_error

if TYPE_CHECKING:
    from streams.pipeline import Pipeline

__all__ = ["BacklogClock", "LiveRuntime", "SinkFeeder", "caught_up", "check_coverage",
           "consumer_lag", "flush_sinks_before_commit", "handle_feedback", "handle_message",
           "ingest_run", "publish", "register", "scrub_detail"]

logger = logging.getLogger(__name__)

TICK_SECONDS = 1.0
SINK_FLUSH_SECONDS = 2.0
STATUS_SECONDS = 5.0
# The ingest agent takes messages in runs (see ingest_run): at most this many, and a
# message waits at most this long for its run to fill (faust's ``take_events``). The
# wait is the latency a message gains when traffic is light; buckets last minutes.
INGEST_RUN_MESSAGES = 500
INGEST_RUN_WAIT_SECONDS = 0.05


class SinkFeeder:
    """Calls every sink on one worker thread, in submission order.

    One thread (not a pool) because sinks are not thread-safe and an embedded chDB
    session is best used from a single thread. At most ``max_pending`` batches wait in
    the queue; beyond that :meth:`add` waits, so a slow sink slows consumption instead
    of growing memory.
    """

    def __init__(self, sinks: Iterable[Any], *, max_pending: int = 16, max_retries: int = 10) -> None:
        self.sinks = list(sinks)
        self.max_pending = max_pending
        self.max_retries = max_retries
        self.records = self.flushes = self.errors = 0
        # Failed writes that were retried (by a sink inside flush(), or by
        # _flush_until_written), and the stall in progress: /stats/ sink_retries and
        # sink_stalled, the status line, the watchdog's reason (streams.sink_stall).
        self.retries = 0
        self.stall: SinkStall | None = None
        # (sink, method, wall clock) of the call the sink thread is in, for a stop that
        # hangs in a request without any error yet.
        self.busy: tuple[Any, str, float] | None = None
        for sink in self.sinks:
            if hasattr(sink, "on_retry"):
                sink.on_retry = functools.partial(self._attempt_failed, sink)
        # Pauses between flush attempts after a sink error other than a transient one.
        self.flush_retry = RetryPolicy(initial_delay=1.0, max_delay=60.0, jitter=0.0)
        self._sleep = time.sleep
        self._executor = (concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="riskwatch-sinks")
                          if self.sinks else None)
        self._pending: collections.deque[concurrent.futures.Future] = collections.deque()
        self._setup_future: concurrent.futures.Future | None = None

    def setup(self) -> None:
        """Open every sink now (on the sink thread); raise :class:`SinkError` if one cannot."""
        if self._executor is None:
            return
        try:
            self._ensure_setup().result()
        except SinkError:
            raise
        except Exception as exc:
            raise SinkError(f"cannot set up sink: {exc!r}") from exc

    async def add(self, batches: list[tuple[str, Sequence[dict]]]) -> None:
        """Queue ``(kind, records)`` pairs for every sink (records of one kind together:
        a columnar sink gets them as one column block, see ``Sink.add_records``).

        Queued before the first ``await``, which only waits for room in the queue
        (:func:`streams.publishing.publish` relies on it)."""
        if self._executor is None or not batches:
            return
        self._submit(self._add_all, batches)
        while self._pending and self._pending[0].done():
            self._pending.popleft()
        while len(self._pending) > self.max_pending:  # backpressure
            await asyncio.wrap_future(self._pending.popleft())

    async def flush(self) -> None:
        if self._executor is not None:
            await asyncio.wrap_future(self._submit(self._flush_all))

    async def close(self) -> None:
        """Flush and close every sink; the feeder is unusable afterwards."""
        if self._executor is None:
            return
        await asyncio.wrap_future(self._submit(self._flush_all))
        await asyncio.wrap_future(self._submit(self._close_all))
        self._executor.shutdown(wait=True)
        self._executor = None

    # -- on the sink thread -------------------------------------------------------------
    def _ensure_setup(self) -> concurrent.futures.Future:
        if self._setup_future is None:
            assert self._executor is not None
            self._setup_future = self._executor.submit(lambda: [s.setup() for s in self.sinks])
        return self._setup_future

    def _submit(self, fn: Any, *args: Any) -> concurrent.futures.Future:
        assert self._executor is not None
        self._ensure_setup()
        future = self._executor.submit(fn, *args)
        self._pending.append(future)
        return future

    def _attempt_failed(self, sink: Any, error: str) -> None:
        """A write to ``sink`` failed and is tried again (``error``: its one line, already
        made safe by :func:`~streams.sink_stall.safe_error`): count it; the stall runs
        from the first such failure until a write of that sink lands (:meth:`_landed`)."""
        self.retries += 1
        stall = self.stall
        if stall is None or stall.sink is not sink:
            stall = SinkStall(sink, time.time(), 0, "")
        self.stall = dataclasses.replace(stall, attempts=stall.attempts + 1, last_error=error)

    def _landed(self, sink: Any) -> None:
        if self.stall is not None and self.stall.sink is sink:
            self.stall = None

    def _run(self, sink: Any, method: str, *args: Any) -> None:
        """``sink.method(*args)``, known as :attr:`busy` while it runs."""
        self.busy = (sink, method, time.time())
        try:
            getattr(sink, method)(*args)
        finally:
            self.busy = None

    def _call(self, sink: Any, method: str, *args: Any) -> None:
        # add_records / prime / close (flushes go through _flush_until_written): we only
        # honour an explicit SinkBackpressure, and log anything else (never raise into
        # faust: an agent that raises stops consuming).
        for attempt in range(self.max_retries + 1):
            try:
                self._run(sink, method, *args)
                self._landed(sink)   # a full batch written from add_records
                return
            except SinkBackpressure as exc:
                if attempt == self.max_retries:
                    self.errors += 1
                    logger.error("sink %r still overloaded after %d retries: %s", sink, attempt, exc)
                    return
                time.sleep(exc.retry_after)
            except Exception:
                self.errors += 1
                logger.exception("sink %r failed in %s()", sink, method)
                return

    def _flush_until_written(self, sink: Any) -> None:
        """Flush ``sink`` until nothing is left unwritten, however long that takes.

        Offset commits and checkpoints wait for this flush (flush_sinks_before_commit):
        returning while a batch is still unwritten would let them cover rows a crash then
        loses. A sink retries transient errors inside flush() by itself; any other error
        (ClickHouse refusing a batch, e.g. ``No such column`` from a schema an admin has
        not migrated yet) is retried here with a growing pause and an error line each
        time, so the worker stops consuming (lag grows; /stats/ ``sink_errors``,
        ``sink_retries`` and ``sink_stalled``, which names the sink for a transient
        stall too) instead of committing past rows it could not store. A clean stop that
        cannot flush ends at the worker's stop timeout, without committing, with a line
        naming the sink (:func:`streams.sink_stall.forced_stop_reason`): the messages
        come again after the restart.
        """
        attempt = 0
        while True:
            try:
                self._run(sink, "flush")
                self._landed(sink)
                return
            except Exception as exc:  # noqa: BLE001 - whatever it is, the rows are not stored
                attempt += 1
                self.errors += 1
                error = safe_error(f"{type(exc).__name__}: {exc}")
                self._attempt_failed(sink, error)
                pause = self.flush_retry.delay(attempt)
                logger.error("sink %r could not write its rows (attempt %d, next in %.0f s; "
                             "consumption waits): %s", sink, attempt, pause, error)
                self._sleep(pause)

    def prime(self, open_alerts: list[dict]) -> None:
        """Hand the alerts firing at a restored checkpoint to the sinks that keep a table
        of what they posted (``prime``), on the sink thread, before any new record."""
        primed = [s for s in self.sinks if hasattr(s, "prime")]
        if primed and open_alerts:
            self._submit(lambda: [self._call(s, "prime", open_alerts) for s in primed])

    def _add_all(self, batches: list[tuple[str, Sequence[dict]]]) -> None:
        for sink in self.sinks:
            for kind, records in batches:
                self._call(sink, "add_records", kind, records)
        self.records += sum(len(records) for _kind, records in batches)

    def _flush_all(self) -> None:
        for sink in self.sinks:
            self._flush_until_written(sink)
        self.flushes += 1

    def _close_all(self) -> None:
        for sink in self.sinks:
            self._call(sink, "close")


class BacklogClock:
    """Monotonic seconds that stand still while any partition has unread messages.

    The pipeline lets a source that has been *silent* for ``idle_source_seconds`` stop
    holding back the watermark. A partition with a backlog is not silent, it is behind
    (faust may serve one topic's buffer for a while before another's), and treating it
    as idle would close buckets under its feet and turn its events *late*. So the clock
    handed to :meth:`Pipeline.tick` only advances while the worker is caught up. During
    a long catch-up buckets close later, never wrongly.

    >>> c = BacklogClock(start=100.0)
    >>> [c.advance(t, caught_up=ok) for t, ok in [(0, True), (1, True), (5, False), (6, True)]]
    [100.0, 101.0, 101.0, 102.0]
    """

    def __init__(self, start: float) -> None:
        self.now = start
        self._last: float | None = None

    def advance(self, real: float, *, caught_up: bool) -> float:
        """Move to real time ``real``; the interval since the last call counts if caught up."""
        if caught_up and self._last is not None:
            self.now += max(real - self._last, 0.0)
        self._last = real
        return self.now


def _build_pipeline(settings: PipelineSettings, calendar: Any, keep_rows: bool) -> Pipeline:
    from detectors.intent_mix import load_tail_model
    from streams.pipeline import Pipeline

    load_tail_model()   # here, not on the event loop at the first intent-mix run
    # Event and aggregate rows are only worth producing when a sink stores them.
    return Pipeline(settings, calendar, keep_events=keep_rows, keep_aggregates=keep_rows)


def _log_init_failure(future: concurrent.futures.Future) -> None:
    if future.exception() is not None:
        logger.error("cannot build the pipeline: %r", future.exception())


class LiveRuntime:
    """Everything the agent, timers and stats page share for one app."""

    def __init__(self, app: faust.App, settings: PipelineSettings, topics: TopicNames, *,
                 sinks: list[Any], calendar: Any = None, flush_on_stop: bool = True) -> None:
        self.app = app
        self.topics = topics
        # Importing the pipeline (river, scipy.stats) takes ~3 s; do it on a thread while faust
        # connects and Tansu holds the JoinGroup (5 s), instead of before.
        init = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="riskwatch-init")
        self._pipeline = init.submit(_build_pipeline, settings, calendar, bool(sinks))
        init.shutdown(wait=False)
        self._pipeline.add_done_callback(_log_init_failure)
        self.sinks = SinkFeeder(sinks)
        # A sink's own dead letters (a webhook receiver answering 4xx) go where the
        # pipeline's go: the dead-letters topic, and from there every store (it wrote
        # them to the stores only, so the topic's consumers never saw them).
        for sink in self.sinks.sinks:
            if hasattr(sink, "on_dead_letter"):
                sink.on_dead_letter = self._letter_from_sink
        self.flush_on_stop = flush_on_stop
        self.checkpointer: Any = None   # streams.checkpoint.LiveCheckpointer, set by create_app
        self.input_topic = app.topic(*topics.inputs, key_serializer="raw", value_serializer="raw")
        self.feedback_topic = app.topic(topics.feedback, key_serializer="raw", value_serializer="raw")
        # verdicts: on an alert this worker raised, on one it does not know, malformed
        self.feedback = {"applied": 0, "unknown": 0, "rejected": 0}
        self.output_topics = {
            kind: app.topic(name, key_serializer="raw", value_serializer="raw")
            for kind, name in (("alerts", topics.alerts), ("dead_letters", topics.dead_letters),
                               ("scores", topics.merchant_scores),
                               ("complaints", topics.complaint_records))}
        # Serialises drain+send: the agent and the tick timer both publish, and alerts
        # for one fingerprint (firing, then resolved) must reach the topic in order.
        self.lock = asyncio.Lock()
        self.started_at = time.monotonic()
        self.clock = BacklogClock(start=self.started_at)
        self.ready_after: float | None = None
        self.assigned: set[Any] = set()
        self.coverage: dict = {"status": "unknown"}   # streams.ownership, after each rebalance
        # The check after the latest assignment: kept so the task is not collected while
        # it runs, and so the status timer does not start a second one beside it.
        self.coverage_check: asyncio.Future | None = None
        self.positions: dict[tuple[str, int], int] = {}   # last processed offset per partition
        self.agent_errors = 0     # exceptions contained by handle_message
        # Messages ingest_run left to faust to deliver again (older consumer generation or
        # flow stopped during a rebalance): counted, so a run that lost some shows it.
        self.stale_skipped = 0
        self.publish_errors = 0
        # Drained outputs not yet sent to their topic or queued for the sinks
        # (streams.publishing): a failed send waits here instead of being dropped.
        self.unpublished = Unpublished()
        self.sent = dict.fromkeys(self.output_topics, 0)
        self.pending_letters: list[dict] = []
        self.rate = {"messages_per_s": 0.0, "events_per_s": 0.0}
        self._last_status = (time.monotonic(), 0, 0)

    def _letter_from_sink(self, letter: dict) -> None:
        """Queue a sink's dead letter for the next publish. Called on the sink thread;
        ``pending_letters`` belongs to the event loop (publish swaps the list), so the
        append runs there."""
        self.app.loop.call_soon_threadsafe(lambda: self.pending_letters.append(letter))

    @property
    def bootstrap(self) -> str:
        """The app's broker as a plain aiokafka client wants it (the ownership check,
        the offset gate's probe)."""
        from riskwatch.broker import bootstrap_from_url

        return bootstrap_from_url(";".join(str(url) for url in self.app.conf.broker))

    @property
    def pipeline(self) -> Pipeline:
        """The pipeline; waits for its construction the first time (on assignment)."""
        return self._pipeline.result()

    def replace_pipeline(self, pipeline: Pipeline) -> None:
        """Swap in a pipeline restored from a checkpoint (on partition assignment)."""
        done: concurrent.futures.Future = concurrent.futures.Future()
        done.set_result(pipeline)
        self._pipeline = done
        self.sinks.prime(pipeline.open_alerts.entries())

    @property
    def pipeline_ready(self) -> bool:
        """Built without error; timers and hooks that may run earlier check this first."""
        return self._pipeline.done() and self._pipeline.exception() is None

    def snapshot(self) -> dict:
        """The ``/stats/`` payload: pipeline counters, consumer lag, throughput."""
        lag = consumer_lag(self)
        return {
            "app_id": self.app.conf.id,
            "uptime_s": round(time.monotonic() - self.started_at, 3),
            "ready_after_s": self.ready_after,
            "assigned": sorted(f"{tp.topic}/{tp.partition}" for tp in self.assigned),
            "lag": lag,
            "total_lag": sum(v["lag"] or 0 for v in lag.values()),
            "stale_skipped": self.stale_skipped,
            "coverage": self.coverage,
            **self.rate,
            "agent_errors": self.agent_errors,
            "publish_errors": self.publish_errors,
            "unpublished": len(self.unpublished),
            "sent": dict(self.sent),
            "sink_records": self.sinks.records,
            "sink_errors": self.sinks.errors,
            "sink_retries": self.sinks.retries,
            "sink_stalled": self.sinks.stall.stats() if self.sinks.stall is not None else None,
            "feedback": dict(self.feedback),
            "pipeline": self.pipeline.stats if self.pipeline_ready else {},
            "checkpoint": self.checkpointer.stats() if self.checkpointer is not None else None,
        }


def handle_message(runtime: LiveRuntime, topic: str, partition: int, offset: int,
                   value: bytes | None) -> None:
    """Feed one Kafka message to the pipeline; never raises.

    The pipeline contains bad *input* itself; this catches bugs (ours or a library's) so
    one poisonous message becomes a dead letter instead of a silently acked loss.
    """
    try:
        runtime.pipeline.process(value or b"", source=topic, partition=partition, offset=offset)
    except Exception as exc:  # noqa: BLE001 - per-message containment, see module docstring
        from streams.dead_letters import internal_error_letter

        runtime.agent_errors += 1
        # The stack, not the message: an exception message may quote the payload.
        logger.error("internal error on %s/%d@%d: %s (sent to dead letters)\n%s", topic,
                     partition, offset, type(exc).__name__,
                     "".join(traceback.format_tb(exc.__traceback__)).rstrip())
        letter = internal_error_letter(
            exc, source=topic, partition=partition, offset=offset,
            recorded_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"))
        letter["detail"] = scrub_detail(letter["detail"])
        runtime.pending_letters.append(letter)
    runtime.positions[(topic, partition)] = offset


async def ingest_run(runtime: LiveRuntime, events: list[Any],
                     not_next: Callable[[Any], Awaitable[bool]]) -> int:
    """Process a run of faust events in order, then publish; returns messages processed.

    Why runs: faust's own per-message work (fetch, task and future plumbing, ack) walks
    enough memory between two messages to evict the pipeline's working set from the CPU
    cache; the pipeline then costs ~90 µs a message instead of ~50 µs in a tight loop.
    A run keeps it warm (``benchmarks/live_throughput.py``: +10 % messages per second
    with one event per message). Outputs are the same: the messages are processed in
    the order faust delivered them, and nothing else touches the pipeline meanwhile
    (no ``await`` between two messages without checkpoints).

    A message fetched before a rebalance that faust would now skip (an older consumer
    generation, or flow stopped) is skipped here too: faust re-delivers it from the
    committed offset to whoever owns its partition. With checkpoints each message is
    published before a checkpoint may be taken, exactly as one at a time.
    """
    app, checkpointer = runtime.app, runtime.checkpointer
    done = stale = 0
    first_stale = None
    # Events up to the wall clock (+ max_time_jump_seconds) are accepted even when the
    # stream itself resumes after a long outage (Pipeline._on_events).
    runtime.pipeline.now_epoch = time.time()
    for event in events:
        msg = event.message
        if msg.generation_id != app.consumer_generation_id or not app.flow_control.is_active():
            stale += 1
            first_stale = first_stale or msg
            continue
        if checkpointer is not None:
            if await not_next(msg):
                continue
            handle_message(runtime, msg.topic, msg.partition, msg.offset, event.value)
            await publish(runtime)
            await checkpointer.maybe_save(runtime)
        else:
            handle_message(runtime, msg.topic, msg.partition, msg.offset, event.value)
        done += 1
    if stale:
        runtime.stale_skipped += stale
        logger.info("skipped %d message(s) fetched before a rebalance (first %s/%d@%d); "
                    "faust delivers them again", stale, first_stale.topic,
                    first_stale.partition, first_stale.offset)
    await publish(runtime)
    return done


def handle_feedback(runtime: LiveRuntime, topic: str, partition: int, offset: int,
                    value: bytes | None) -> None:
    """Apply one operator verdict (``feedback`` topic) to the pipeline; never raises.

    A verdict on an alert the pipeline knows (firing, or raised within the last week of
    event time: :meth:`~streams.pipeline.Pipeline.alert_metric`) counts as ``applied``;
    one on an alert it does not know counts as ``unknown``, with a warning naming the
    id. It is applied all the same: it may be about an alert from before a restart
    without checkpoints, and on an id that names no slice it mutes nothing. A bad
    verdict becomes a dead letter (reason ``bad feedback``) instead of stopping the agent.
    """
    from streams.feedback import parse_feedback

    try:
        record = parse_feedback(orjson.loads(value or b""))
        known = runtime.pipeline.alert_metric(record["alert_id"]) is not None
        runtime.pipeline.apply_feedback(record)
        runtime.feedback["applied" if known else "unknown"] += 1
        if not known:
            logger.warning("feedback %s on alert %s: this worker has not raised that alert (not "
                           "firing, not in the last %d days of event time); kept for its slice "
                           "all the same (a mistyped id names no slice and mutes nothing)",
                           record["verdict"], record["alert_id"], RECENT_ALERT_SECONDS // 86400)
    except Exception as exc:  # noqa: BLE001 - per-message containment, like handle_message
        from streams.dead_letters import internal_error_letter

        runtime.feedback["rejected"] += 1
        letter = internal_error_letter(
            exc, source=topic, partition=partition, offset=offset,
            recorded_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"))
        letter["reason"] = "bad feedback"
        letter["detail"] = scrub_detail(letter["detail"])
        runtime.pending_letters.append(letter)
        logger.warning("feedback %s/%d@%d rejected: %s", topic, partition, offset, letter["detail"])
    runtime.positions[(topic, partition)] = offset   # checkpoints record feedback positions too


_ESCAPED_BYTES = re.compile(r"(?:\\x[0-9a-fA-F]{2})+")
_LONG_DIGITS = re.compile(r"\d{6,}")


def scrub_detail(text: str, limit: int = 300) -> str:
    r"""Second line of defence for error messages that quote a payload.

    PII masking works on text; an exception message may instead hold a bytes repr, where
    a name is a run of ``\x..`` escapes and a phone number is glued to them.

    >>> scrub_detail(r"bad b'\xe5\xbc\xa0\xe4\xb8\x89 13812345678' at 12")
    "bad b'<bytes> <digits>' at 12"
    """
    text = _ESCAPED_BYTES.sub("<bytes>", text)
    text = _LONG_DIGITS.sub("<digits>", text)
    return text[:limit]


def consumer_lag(runtime: LiveRuntime) -> dict[str, dict]:
    """Per input partition: broker highwater, last processed and committed offsets, lag.

    ``lag`` counts messages not yet processed by the pipeline (``None`` until the
    consumer has fetched the partition once and knows its highwater).
    """
    result: dict[str, dict] = {}
    try:
        consumer = runtime.app.consumer
        committed_map = runtime.app.monitor.tp_committed_offsets
    except Exception:  # noqa: BLE001 - not started yet
        return result
    for tp in sorted(runtime.assigned):
        try:
            highwater = consumer.highwater(tp)
        except Exception:  # noqa: BLE001 - consumer stopping / not fetched yet
            highwater = None
        processed = runtime.positions.get((tp.topic, tp.partition))
        committed = committed_map.get(tp)
        lag = None
        if highwater is not None:
            done = processed + 1 if processed is not None else (committed or 0)
            lag = max(highwater - done, 0)
        result[f"{tp.topic}/{tp.partition}"] = {
            "highwater": highwater, "processed": processed, "committed": committed, "lag": lag}
    return result


def caught_up(runtime: LiveRuntime) -> bool:
    """True when every assigned input partition is known to have no unprocessed message."""
    lag = consumer_lag(runtime)
    return bool(lag) and all(v["lag"] == 0 for v in lag.values())


def _log_status(runtime: LiveRuntime) -> None:
    if not runtime.pipeline_ready:
        return
    now = time.monotonic()
    stats = runtime.pipeline.stats
    messages, events = stats.get("messages", 0), stats.get("events", 0)
    then, messages0, events0 = runtime._last_status
    elapsed = max(now - then, 1e-9)
    runtime.rate = {"messages_per_s": round((messages - messages0) / elapsed, 1),
                    "events_per_s": round((events - events0) / elapsed, 1)}
    runtime._last_status = (now, messages, events)
    lag = sum(v["lag"] or 0 for v in consumer_lag(runtime).values())
    cov = runtime.coverage
    warnings = (f", PARTIAL input: {cov['owned']} of {cov['total']} partitions"
                if cov["status"] == "partial" else "")
    stall = runtime.sinks.stall
    if stall is not None:   # why the lag grows: said on the line an operator watches
        warnings += (f", STALLED on {stall.sink!r} for {time.time() - stall.since:.0f}s "
                     f"({stall.attempts} failed attempts)")
    logger.info("status: %d events (%.0f/s), %d msgs, lag %d, alerts %d, dead letters %d, "
                "late %d, watermark %s%s", events, runtime.rate["events_per_s"], messages, lag,
                runtime.sent["alerts"], runtime.sent["dead_letters"], stats.get("late", 0),
                stats.get("watermark"), warnings)


async def check_coverage(runtime: LiveRuntime) -> dict:
    """Recompute which share of the input partitions this worker owns
    (:mod:`streams.ownership`); warn when it holds some but not all of them.

    Runs after every assignment (as a task: the rebalance does not wait for it) and on
    the status timer while the answer is unknown (broker unreachable a moment)."""
    from riskwatch.broker import partition_counts
    from streams.ownership import coverage_warning, partition_coverage

    try:
        counts = await partition_counts(runtime.bootstrap, runtime.topics.inputs)
    except Exception as exc:  # noqa: BLE001 - retried by the status timer
        logger.warning("cannot read the input topics' partition counts: %r", exc)
        runtime.coverage = {"status": "unknown"}
        return runtime.coverage
    before = runtime.coverage
    runtime.coverage = partition_coverage(
        ((tp.topic, tp.partition) for tp in runtime.assigned), counts.get, runtime.topics.inputs)
    warning = coverage_warning(runtime.coverage, runtime.app.conf.id)
    if warning and runtime.coverage != before:
        logger.warning(warning)
    elif runtime.coverage["status"] == "standby" and before.get("status") != "standby":
        logger.info("standby: no input partition assigned (another worker of group %r is "
                    "active); this worker takes over when the group rebalances",
                    runtime.app.conf.id)
    return runtime.coverage


def flush_sinks_before_commit(app: faust.App, runtime: LiveRuntime) -> None:
    """Make faust flush our sinks whenever it flushes its producer before a commit.

    faust 0.15.3 commits input offsets in ``Consumer._commit_tps`` right after
    ``await app.producer.flush()`` (so produced messages land before their inputs are
    committed). Wrapping that flush extends the same guarantee to the sinks. The rows
    of a message are queued on the sink thread before faust can ack the message, and
    the thread runs jobs in order, so the flush covers every committed message.
    """
    if not runtime.sinks.sinks:
        return
    producer = app.producer
    flush_producer = producer.flush

    async def flush_all() -> None:
        await runtime.sinks.flush()
        await flush_producer()

    producer.flush = flush_all  # type: ignore[method-assign]


def register(app: faust.App, runtime: LiveRuntime) -> None:
    """Declare the agent, timers, rebalance/shutdown hooks and the stats page on ``app``."""
    flush_sinks_before_commit(app, runtime)

    async def not_next(msg: Any) -> bool:
        """With checkpoints: a message the state must not take now (a redelivery, or one
        ahead of the state while the partition is sought back: :mod:`streams.offset_gate`)."""
        return runtime.checkpointer is not None and not await runtime.checkpointer.admit(runtime, msg)

    @app.agent(runtime.input_topic, name="riskwatch-ingest")
    async def ingest(stream: faust.StreamT) -> None:
        """Every input message -> pipeline -> alerts, dead letters, scores, sinks.

        In runs (:data:`INGEST_RUN_MESSAGES`, :data:`INGEST_RUN_WAIT_SECONDS`): faust acks
        a run's messages when the loop asks for the next run, after they were processed
        and published, so at-least-once holds as with one message at a time.
        """
        async for events in stream.take_events(INGEST_RUN_MESSAGES, within=INGEST_RUN_WAIT_SECONDS):
            await ingest_run(runtime, events, not_next)

    @app.agent(runtime.feedback_topic, name="riskwatch-feedback")
    async def feedback(stream: faust.StreamT) -> None:
        """Operators' verdicts: the pipeline mutes the slice and closes a false alarm."""
        async for event in stream.events():
            msg = event.message
            if await not_next(msg):
                continue
            handle_feedback(runtime, msg.topic, msg.partition, msg.offset, event.value)
            await publish(runtime)

    @app.timer(TICK_SECONDS)
    async def tick() -> None:
        """Wall-clock tick: idle partitions stop holding back the watermark."""
        if not (runtime.assigned and runtime.pipeline_ready):
            return  # before the first assignment (the pipeline may still be importing)
        runtime.pipeline.tick(runtime.clock.advance(time.monotonic(), caught_up=caught_up(runtime)))
        await publish(runtime)
        if runtime.checkpointer is not None:
            await runtime.checkpointer.maintain(runtime)
            await runtime.checkpointer.maybe_save(runtime)

    @app.timer(SINK_FLUSH_SECONDS)
    async def flush_sinks() -> None:
        await runtime.sinks.flush()

    @app.timer(STATUS_SECONDS)
    async def status() -> None:
        pending = runtime.coverage_check is not None and not runtime.coverage_check.done()
        if runtime.coverage["status"] == "unknown" and runtime.assigned and not pending:
            await check_coverage(runtime)
        _log_status(runtime)

    @app.on_partitions_assigned.connect
    async def on_assigned(sender: Any, assigned: set, **kwargs: Any) -> None:
        inputs = set(runtime.topics.inputs)
        if runtime.checkpointer is not None:   # before the pipeline is touched: it may be replaced
            from streams.checkpoint import attach
            attach(app, runtime)
            runtime.checkpointer.on_assigned(
                runtime, {tp for tp in assigned if tp.topic in inputs | {runtime.topics.feedback}})
        runtime.assigned = {tp for tp in assigned if tp.topic in inputs}
        # Clock first: a partition that has not delivered yet holds the watermark back
        # from this moment until it has been idle long enough.
        runtime.pipeline.tick(runtime.clock.advance(time.monotonic(), caught_up=False))
        runtime.pipeline.assign_sources(sorted((tp.topic, tp.partition) for tp in runtime.assigned))
        runtime.coverage_check = asyncio.ensure_future(check_coverage(runtime))
        if runtime.ready_after is None:
            runtime.ready_after = round(time.monotonic() - runtime.started_at, 3)
            logger.info("worker ready after %.1fs: %d input partitions assigned",
                        runtime.ready_after, len(runtime.assigned))
        else:
            logger.info("rebalanced: %d input partitions assigned", len(runtime.assigned))

    @app.on_before_shutdown.connect
    async def on_shutdown(sender: Any, **kwargs: Any) -> None:
        # Runs after the consumer stopped and before faust flushes the producer, so the
        # last alerts still reach their topic.
        if runtime.pipeline_ready:
            if runtime.checkpointer is not None:
                # Open buckets stay open: they are in the final checkpoint and close
                # normally after the restart (closing them now would change outputs).
                await publish(runtime)
                await runtime.checkpointer.save_now(runtime)
            elif runtime.flush_on_stop:
                async with runtime.lock:
                    runtime.pipeline.flush()
            await publish(runtime)
        await runtime.sinks.close()
        if runtime.pending_letters:   # dead letters of the sinks' last flush (a webhook's 4xx)
            await publish(runtime)
        _log_status(runtime)

    if app.conf.web_enabled:
        @app.page("/stats/")
        async def stats_page(web: Any, request: Any) -> Any:
            return web.bytes(orjson.dumps(runtime.snapshot(), default=str),
                             content_type="application/json")
