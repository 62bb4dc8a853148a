"""Publishing what the live pipeline produced: output topics first, then the sinks.

:func:`publish` drains the pipeline into a backlog (:class:`Unpublished`) and sends the
backlog in order. A send that fails is *not* dropped: the record stays at the head of
the backlog and is tried again after a pause (0.5 s doubling to 30 s, an error line
each time) while the caller waits. The agent calls ``publish`` after every run of
messages and faust acks those messages only afterwards, so a topic that cannot be
written stops consumption (lag grows, ``publish_errors`` and ``unpublished`` in
``/stats/``) instead of acking past outputs nobody received: back-pressure, as for a
sink that is down.

When the app is stopping there is no one left to wait for: ``publish`` then tries the
backlog once and leaves what failed in it. A checkpoint is never written while the
backlog holds anything (:meth:`streams.checkpoint.LiveCheckpointer.save`), so a worker
with checkpoints redoes those outputs after its restart; without checkpoints the loss
is logged as an error with the number of records.

Until 2026-11-24 a failed send was logged and the rest of the drained outputs, sinks
included, were dropped.
"""

from __future__ import annotations

import asyncio
import collections
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import orjson

from sinks.base import RetryPolicy

if TYPE_CHECKING:
    from streams.agents import LiveRuntime

__all__ = ["PUBLISH_RETRY", "Unpublished", "has_output", "publish"]

logger = logging.getLogger(__name__)

# Pauses between attempts at a record an output topic did not take.
PUBLISH_RETRY = RetryPolicy(initial_delay=0.5, max_delay=30.0, jitter=0.0)
# While pausing, how often to look whether the app began to stop.
_STOP_POLL_SECONDS = 0.25


class Unpublished:
    """Outputs drained from the pipeline and not yet handed on, oldest first.

    ``records`` are ``(kind, record)`` pairs for the output topics; ``batches`` are the
    ``[(kind, records), ...]`` lists for the sinks. Both survive a failed or cancelled
    :func:`publish`: an item leaves only after it was handed on (a send whose answer was
    lost may be repeated, which at-least-once allows; a record is never skipped).
    """

    def __init__(self) -> None:
        self.records: collections.deque[tuple[str, dict]] = collections.deque()
        self.batches: collections.deque[list[tuple[str, Sequence[dict]]]] = collections.deque()

    def __len__(self) -> int:
        return len(self.records) + sum(len(recs) for batch in self.batches for _, recs in batch)

    def __bool__(self) -> bool:
        return bool(self.records or self.batches)

    def extend(self, out: Any, topic_kinds: Sequence[str]) -> None:
        """Queue one drained :class:`~streams.pipeline.Outputs`."""
        for kind in topic_kinds:
            self.records.extend((kind, record) for record in getattr(out, kind))
        batch = [(kind, recs) for kind, recs in out.items() if recs]
        if batch:
            self.batches.append(batch)


_OUTPUT_KINDS: dict[type, tuple[str, ...]] = {}


def has_output(runtime: LiveRuntime) -> bool:
    """Anything for :func:`publish` to send? Most messages produce nothing, and the lock,
    the drain and ``len(Outputs)`` (``dataclasses.fields`` per call) cost ~5 % of a worker
    fed one event per message (``benchmarks/live_throughput.py --profile``)."""
    if runtime.pending_letters or runtime.unpublished:
        return True
    out = runtime.pipeline.out
    kinds = _OUTPUT_KINDS.get(type(out))
    if kinds is None:   # every kind Outputs has, read once: a new kind cannot be skipped
        kinds = _OUTPUT_KINDS[type(out)] = tuple(kind for kind, _ in out.items())
    for kind in kinds:
        if getattr(out, kind):
            return True
    return False


def _key(kind: str, record: dict) -> bytes | None:
    # Partitioning keys: one alert episode, one source topic, one merchant, one
    # complaint's versions stay ordered.
    value = {"alerts": record.get("fingerprint"), "dead_letters": record.get("source"),
             "scores": record.get("merchant_id"),
             "complaints": record.get("complaint_id")}.get(kind)
    return str(value).encode() if value is not None else None


async def publish(runtime: LiveRuntime) -> None:
    """Drain the pipeline; send alerts/dead letters/scores/complaints to their topics,
    everything to the sinks.

    Never raises: a failed send is retried until it lands (see the module docstring),
    or left in ``runtime.unpublished`` when the app is stopping.
    """
    if not has_output(runtime):
        return
    async with runtime.lock:
        backlog: Unpublished = runtime.unpublished
        out = runtime.pipeline.drain()
        if runtime.pending_letters:
            out.dead_letters.extend(runtime.pending_letters)
            runtime.pending_letters = []
        backlog.extend(out, tuple(runtime.output_topics))
        attempt = 0
        while backlog:
            try:
                await _hand_on(runtime, backlog)
                return
            except Exception as exc:  # noqa: BLE001 - an agent that raises stops consuming (faust #175)
                attempt += 1
                runtime.publish_errors += 1
                if runtime.app.should_stop:
                    fate = ("no checkpoint is written past them, so the restart redoes them"
                            if runtime.checkpointer is not None
                            else "they are lost: run workers with --checkpoint-dir")
                    logger.error("stopping with %d output record(s) not published (%r); %s",
                                 len(backlog), exc, fate)
                    return
                pause = PUBLISH_RETRY.delay(attempt)
                logger.error("publishing failed (attempt %d, %d record(s) waiting, next try in "
                             "%.1f s; consumption waits): %r", attempt, len(backlog), pause, exc)
                await _pause(runtime, pause)


async def _hand_on(runtime: LiveRuntime, backlog: Unpublished) -> None:
    """Send the backlog's records, then queue its sink batches; each leaves on success."""
    topics, sent = runtime.output_topics, runtime.sent
    records = backlog.records
    while records:
        kind, record = records[0]
        await topics[kind].send(key=_key(kind, record), value=orjson.dumps(record, default=str))
        records.popleft()
        sent[kind] += 1
    while backlog.batches:
        batch = backlog.batches.popleft()
        try:
            # SinkFeeder.add queues the batch before its first await (the await is only
            # back-pressure), so a cancellation there must not queue it a second time.
            await runtime.sinks.add(batch)
        except Exception:
            backlog.batches.appendleft(batch)   # raised before it was queued
            raise


async def _pause(runtime: LiveRuntime, seconds: float) -> None:
    """Sleep ``seconds``, waking early when the app begins to stop."""
    loop = asyncio.get_running_loop()
    until = loop.time() + seconds
    while not runtime.app.should_stop and loop.time() < until:
        await asyncio.sleep(min(_STOP_POLL_SECONDS, until - loop.time()))
