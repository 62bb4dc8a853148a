"""The faust-streaming application: configuration and topics, nothing else.

:func:`create_app` builds one :class:`faust.App` wired to a
:class:`~streams.pipeline.Pipeline`; the agent, timers, signals and the ``/stats/`` page
live in :mod:`streams.agents`. A factory instead of a module-level ``app`` because the
broker URL, the topic prefix (tests) and the sinks are only known at run time.

Settings that matter, and why (measured on Tansu, see notes/libraries.md §1 and §5):

- ``processing_guarantee="at_least_once"`` and default producer settings: Tansu rejects
  idempotent/transactional producers, so faust's ``exactly_once`` fails at startup.
  Duplicates after a crash are absorbed by the pipeline's dedup and idempotent sinks.
- ``broker_session_timeout=10`` / ``broker_heartbeat_interval=2``: Tansu holds every
  JoinGroup for ``session_timeout / 2``; with faust's default 60 s each start or
  rebalance waits 30 s, and a killed worker's member lingers that long.
- ``value_serializer="raw"``: we parse and validate bytes ourselves so a malformed
  message becomes a dead letter instead of a faust decode error.
- ``store="memory://"`` and no tables: detector state lives in the pipeline's memory;
  tables would write every update to a changelog topic (1.8k events/s measured).
- ``web_bind="127.0.0.1"``: faust binds 0.0.0.0 by default.
- ``producer_linger=0.01``: outputs (merchant scores above all: ~8k per 150k events) wait
  up to 10 ms to share a produce request instead of one request each; +7-10 % events
  per CPU-second with batched input (``benchmarks/live_throughput.py``). faust still
  flushes the producer before it commits input offsets.
- ``consumer_max_fetch_size=32 MiB`` (aiokafka's ``max_partition_fetch_bytes``, faust's
  default 1 MiB): aiokafka asks for a partition's next records only once the previous
  fetch is consumed, so the worker waits a broker round trip per fetch. With 50-event
  arrays 1 MiB is ~6k events (~0.1 s of work) and the worker sat idle 30-45 % of the
  time: 34-42k events/s at 56-63k per CPU-second; with 4 MiB or more 54-58k at 59-62k
  (``benchmarks/live_throughput.py --only throughput --modes batched``, 2026-11-24).
  Now 32 MiB: a large platform's input is mostly one topic (orders, until statuses
  catch up), and aiokafka fetches a partition again only once its buffered records
  are consumed, so with a single busy partition each 4 MiB cost a round trip with
  nothing else to do: 1M-orders/day events (``--world platform``) ran 40-43k events/s
  at 57-67k per CPU-second, the worker in ``select`` 36 % of the time (py-spy
  ``--idle``). 32 MiB: medians of three 55.0k / 60.7k / 58.5k (16 MiB: 49.3k / 61.0k /
  48.5k; 4 MiB: 41.7k / 41.8k / 41.8k); the simulated world unchanged (58.0k against
  61.3k, within its spread). One event per message already fills a fetch with ~6k
  messages. The memory bound is aiokafka's ``fetch_max_bytes`` (50 MiB) per fetch
  response, unchanged.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import faust

from riskwatch.settings import PipelineSettings

__all__ = ["TopicNames", "create_app"]


@dataclasses.dataclass(frozen=True)
class TopicNames:
    """Kafka topic names; ``TopicNames.with_prefix("t1-")`` isolates a test run.

    >>> t = TopicNames.with_prefix("t1-")
    >>> t.orders, t.dead_letters
    ('t1-orders', 't1-dead-letters')
    >>> len(t.inputs), len(t.all)
    (4, 9)
    """

    orders: str = "orders"
    order_status: str = "order-status"
    complaints: str = "complaints"
    complaint_updates: str = "complaint-updates"
    alerts: str = "alerts"
    dead_letters: str = "dead-letters"
    merchant_scores: str = "merchant-scores"
    # Enriched complaint records (intent, masked text, auto-resolution; a later record of
    # one complaint_id with a higher version supersedes): what a ticket system consumes.
    complaint_records: str = "complaint-records"
    feedback: str = "feedback"   # operators' verdicts on alerts (riskwatch feedback --broker)

    @classmethod
    def with_prefix(cls, prefix: str = "", *, single_input: bool = False) -> TopicNames:
        """``single_input``: every event type on one topic, ``<prefix>events``.

        >>> TopicNames.with_prefix("t1-", single_input=True).inputs
        ('t1-events',)
        """
        names = {f.name: prefix + f.default for f in dataclasses.fields(cls)}
        if single_input:
            names.update(dict.fromkeys(("orders", "order_status", "complaints", "complaint_updates"),
                                       prefix + "events"))
        return cls(**names)

    @property
    def inputs(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(
            (self.orders, self.order_status, self.complaints, self.complaint_updates)))

    @property
    def outputs(self) -> tuple[str, ...]:
        return (self.alerts, self.dead_letters, self.merchant_scores, self.complaint_records)

    @property
    def all(self) -> tuple[str, ...]:
        return self.inputs + self.outputs + (self.feedback,)

    def for_event_type(self, event_type: str) -> str:
        """The input topic producers should use for an event ``type`` (unknown: orders).

        Any topic accepts any event type; this only keeps each topic homogeneous.
        """
        return {"order": self.orders, "order_status": self.order_status,
                "complaint": self.complaints, "complaint_update": self.complaint_updates,
                }.get(event_type, self.orders)


def create_app(settings: PipelineSettings, *, broker_url: str, data_dir: str | os.PathLike[str],
               sinks: Iterable[Any] = (), web_port: int | None = None,
               app_id: str = "riskwatch", topic_partitions: int = 1, topic_prefix: str = "",
               calendar: Any = None, flush_on_stop: bool = True, single_input: bool = False,
               checkpoint_dir: str | os.PathLike[str] | None = None,
               checkpoint_seconds: float = 30.0, checkpoint_messages: int = 100_000) -> faust.App:
    """Build the faust app feeding a :class:`~streams.pipeline.Pipeline`.

    Parameters
    ----------
    settings
        Pipeline settings, identical to the ones ``riskwatch replay`` uses.
    broker_url
        ``kafka://host:port`` (several: ``kafka://a:9092;kafka://b:9092``).
    data_dir
        Root data directory; faust's own files go to ``<data_dir>/faust``.
    sinks
        Objects with ``setup()/add(kind, record, token=None)/flush()/close()``; they get
        every output kind (alerts, complaints, dead_letters, aggregates, events, scores).
    web_port
        Serve ``/stats/`` on ``127.0.0.1:web_port``; ``None`` disables the web server.
    app_id
        faust app id = Kafka consumer group id.
    topic_partitions
        Partition count used when faust declares topics (ours are created up front).
    topic_prefix
        Prefix for every topic name (tests run isolated apps on one broker).
    calendar
        :class:`~riskwatch.calendar.Calendar` of promotions and maintenance windows.
    flush_on_stop
        Close all open buckets at shutdown, like replay does at the end of a file. The
        alternative loses them anyway: their events are committed and the pipeline's
        state is in memory. Ignored with checkpoints (the buckets live on in the checkpoint).
    single_input
        Read every event type from one topic, ``<prefix>events`` (see :class:`TopicNames`):
        on one partition the processing order is the topic's order, so live output equals
        replay of the same messages exactly, late events included.
    checkpoint_dir, checkpoint_seconds, checkpoint_messages
        Write the pipeline's state to this directory every so many seconds or input
        messages and at a clean stop, and resume from it (:mod:`streams.checkpoint`);
        share it between the workers of one consumer group. ``None``: no checkpoints.

    The app's runtime state (pipeline, counters) is ``app.riskwatch``.
    """
    from streams import agents  # late: agents imports this module's TopicNames

    topics = TopicNames.with_prefix(topic_prefix, single_input=single_input)
    datadir = Path(data_dir) / "faust"
    datadir.mkdir(parents=True, exist_ok=True)
    app = faust.App(
        app_id,
        broker=broker_url,
        autodiscover=False,
        datadir=str(datadir),
        store="memory://",
        processing_guarantee="at_least_once",
        producer_linger=0.01,   # see the module docstring
        consumer_max_fetch_size=32 * 1024 * 1024,   # see the module docstring
        broker_session_timeout=10,
        broker_heartbeat_interval=2,
        key_serializer="raw",
        value_serializer="raw",
        topic_partitions=topic_partitions,
        topic_disable_leader=True,       # no on_leader timers: skip the extra leader topic
        web_enabled=web_port is not None,
        web_port=web_port if web_port is not None else 6066,
        web_bind="127.0.0.1",
        web_host="127.0.0.1",
        web_in_thread=False,
        worker_redirect_stdouts=False,
    )
    runtime = agents.LiveRuntime(
        app, settings, topics, sinks=list(sinks), calendar=calendar, flush_on_stop=flush_on_stop)
    if checkpoint_dir is not None:
        from streams.checkpoint import CheckpointStore, LiveCheckpointer, settings_digest
        runtime.checkpointer = LiveCheckpointer(
            CheckpointStore(checkpoint_dir, settings_digest=settings_digest(settings)),
            every_seconds=checkpoint_seconds, every_messages=checkpoint_messages)
    agents.register(app, runtime)
    app.riskwatch = runtime  # type: ignore[attr-defined]
    return app
