"""A failed send to an output topic is retried, never dropped (streams.publishing).

A real faust app and :class:`~streams.agents.LiveRuntime` (not started, no broker);
the output topics are replaced by recorders that fail on demand, because making a real
producer fail a send at a chosen record is not possible on a healthy broker. The sinks
are replaced by a recorder of the batches the worker's SinkFeeder would get.
"""

from __future__ import annotations

import asyncio
import itertools

import orjson
import pytest
from aiokafka.errors import KafkaTimeoutError
from faust.types import TP

from riskwatch.settings import PipelineSettings
from riskwatch.simulator import SimulationConfig, generate
from streams import publishing
from streams.agents import handle_message
from streams.app import TopicNames, create_app
from streams.checkpoint import CheckpointStore, LiveCheckpointer
from streams.publishing import publish


class FlakyTopic:
    """Records what is sent; raises for the sends listed in ``failures`` (a shared
    countdown of send attempts, across topics)."""

    def __init__(self, kind: str, sent: list, attempts: list, failures: set[int]) -> None:
        self.kind, self.sent, self.attempts, self.failures = kind, sent, attempts, failures

    async def send(self, *, key: bytes | None, value: bytes) -> None:
        self.attempts.append(1)
        if len(self.attempts) in self.failures:
            raise KafkaTimeoutError("metadata for the topic not available")
        self.sent.append((self.kind, key, orjson.loads(value)))


class RecordingSinks:
    def __init__(self) -> None:
        self.batches: list = []
        self.records = self.errors = self.retries = 0   # what /stats/ reads from the SinkFeeder
        self.stall = None

    async def add(self, batch) -> None:
        self.batches.append([(kind, list(recs)) for kind, recs in batch])


def _runtime(tmp_path, name: str, failures: set[int] = frozenset()):
    app = create_app(PipelineSettings(), broker_url="kafka://127.0.0.1:1", data_dir=tmp_path / name,
                     app_id=name)
    runtime = app.riskwatch
    runtime.sent_records, attempts = [], []
    runtime.output_topics = {kind: FlakyTopic(kind, runtime.sent_records, attempts, set(failures))
                             for kind in runtime.output_topics}
    runtime.sinks = RecordingSinks()
    return runtime


@pytest.fixture(scope="module")
def lines() -> list[tuple[str, bytes]]:
    """(topic, value): 3,000 simulated lines, enough for bucket closes with alerts,
    scores and complaint records, plus the simulator's malformed lines."""
    topics = TopicNames()
    out = []
    for _, line in itertools.islice(generate(SimulationConfig(
            days=0.2, orders_per_day=50_000, merchants=300, seed=5)), 3000):
        try:
            kind = orjson.loads(line).get("type")
        except (orjson.JSONDecodeError, AttributeError):
            kind = None
        out.append((topics.for_event_type(kind), line.encode() if isinstance(line, str) else line))
    return out


async def _feed(runtime, lines, *, every: int = 100) -> None:
    for offset, (topic, value) in enumerate(lines):
        handle_message(runtime, topic, 0, offset, value)
        if offset % every == every - 1:
            await publish(runtime)
    runtime.pipeline.flush()
    await publish(runtime)


@pytest.fixture(autouse=True)
def quick_retries(monkeypatch):
    monkeypatch.setattr(publishing, "PUBLISH_RETRY",
                        publishing.RetryPolicy(initial_delay=0.001, max_delay=0.004, jitter=0.0))


def _without_wall_clock(sent: list) -> list:
    """Sent records, a dead letter's wall-clock ``ts`` dropped."""
    return [(kind, key, _stable(kind, rec)) for kind, key, rec in sent]


def _batches(sinks: RecordingSinks) -> list:
    return [[(kind, [_stable(kind, rec) for rec in recs]) for kind, recs in batch]
            for batch in sinks.batches]


def _stable(kind: str, record: dict) -> dict:
    return {k: v for k, v in record.items() if not (kind == "dead_letters" and k == "ts")}


def test_failed_sends_are_retried_in_order_and_nothing_is_dropped(tmp_path, lines):
    healthy = _runtime(tmp_path, "healthy")
    asyncio.run(_feed(healthy, lines))
    kinds = {kind for kind, _, _ in healthy.sent_records}
    assert {"dead_letters", "scores", "complaints"} <= kinds, f"fixture too weak: {kinds}"

    # The 1st send fails, and the 5th to 8th (four in a row, within one publish call).
    flaky = _runtime(tmp_path, "flaky", failures={1, 5, 6, 7, 8})
    asyncio.run(_feed(flaky, lines))
    assert _without_wall_clock(flaky.sent_records) == _without_wall_clock(healthy.sent_records)
    assert _batches(flaky.sinks) == _batches(healthy.sinks)
    assert flaky.publish_errors == 5
    assert not flaky.unpublished
    assert flaky.snapshot()["unpublished"] == 0
    assert flaky.sent == healthy.sent


def test_stopping_keeps_what_failed_and_no_checkpoint_covers_it(tmp_path, lines):
    runtime = _runtime(tmp_path, "stopping", failures={1, 2, 3})
    runtime.assigned = {TP("orders", 0)}
    checkpointer = LiveCheckpointer(CheckpointStore(tmp_path / "ckpt", settings_digest="test"))
    checkpointer._owned, checkpointer._restore_needed = {("orders", 0)}, False   # as after assignment

    async def stop_then_resume() -> None:
        for offset, (topic, value) in enumerate(lines):
            handle_message(runtime, topic, 0, offset, value)
        runtime.pipeline.flush()
        runtime.checkpointer = checkpointer
        runtime.app._stopped.set()            # the app is stopping: one attempt, no waiting
        await publish(runtime)
        waiting = len(runtime.unpublished)
        assert waiting > 0 and runtime.publish_errors == 1
        assert runtime.snapshot()["unpublished"] == waiting
        assert checkpointer._snapshot(runtime) is None   # would cover unpublished outputs
        runtime.app._stopped.clear()
        await publish(runtime)                # the next try sends them, oldest first
        assert not runtime.unpublished
        assert checkpointer._snapshot(runtime) is not None

    asyncio.run(stop_then_resume())
    reference = _runtime(tmp_path, "reference")

    async def straight() -> None:
        for offset, (topic, value) in enumerate(lines):
            handle_message(reference, topic, 0, offset, value)
        reference.pipeline.flush()
        await publish(reference)

    asyncio.run(straight())
    assert _without_wall_clock(runtime.sent_records) == _without_wall_clock(reference.sent_records)
    assert _batches(runtime.sinks) == _batches(reference.sinks)


def test_a_cancelled_publish_loses_nothing(tmp_path, lines, monkeypatch):
    """The agent is cancelled at stop while a send waits for its retry: the record
    stays in the backlog for the shutdown hook's publish."""
    monkeypatch.setattr(publishing, "PUBLISH_RETRY",
                        publishing.RetryPolicy(initial_delay=30.0, max_delay=30.0, jitter=0.0))
    runtime = _runtime(tmp_path, "cancelled", failures={1})

    async def cancel_mid_retry() -> None:
        for offset, (topic, value) in enumerate(lines):
            handle_message(runtime, topic, 0, offset, value)
        runtime.pipeline.flush()
        task = asyncio.ensure_future(publish(runtime))
        while runtime.publish_errors == 0:
            await asyncio.sleep(0.001)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        waiting = len(runtime.unpublished)
        assert waiting > 0 and not runtime.sent_records
        await publish(runtime)
        assert not runtime.unpublished
        # Every waiting record was handed on once: to its topic, and to the sinks.
        assert sum(runtime.sent.values()) + sum(
            len(recs) for batch in runtime.sinks.batches for _, recs in batch) == waiting

    asyncio.run(cancel_mid_retry())
