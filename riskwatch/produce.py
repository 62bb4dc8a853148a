"""Produce simulated traffic to a Kafka-protocol broker, optionally in compressed time.

Each line of the simulator goes to the topic of its event type (``orders``,
``order-status``, ``complaints``, ``complaint-updates``); lines that are not even JSON
go to ``orders``, where a real upstream bug would put them. Messages are keyed by
order id (complaint id for complaint updates) so one order's events share a partition.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterable, Iterator

import orjson

from riskwatch.errors import BrokerError

__all__ = ["TOPIC_OF_TYPE", "aiokafka_quiet", "produce_lines", "produce_simulation", "topic_for"]

TOPIC_OF_TYPE = {
    "order": "orders",
    "order_status": "order-status",
    "complaint": "complaints",
    "complaint_update": "complaint-updates",
}


def topic_for(line: bytes, prefix: str = "") -> tuple[str, bytes | None]:
    """(topic, key) for one JSONL line; bad lines go to ``orders`` with no key."""
    try:
        obj = orjson.loads(line)
    except orjson.JSONDecodeError:
        return prefix + "orders", None
    if not isinstance(obj, dict):
        return prefix + "orders", None
    topic = TOPIC_OF_TYPE.get(obj.get("type"), "orders")
    key = obj.get("order_id") or obj.get("complaint_id")
    return prefix + topic, key.encode() if isinstance(key, str) else None


@contextlib.contextmanager
def aiokafka_quiet() -> Iterator[None]:
    """aiokafka's log silenced: while connecting it logs each failed attempt (no handler
    configured: Python prints it to stderr), where the caller says it once."""
    aiokafka_log = logging.getLogger("aiokafka")
    level = aiokafka_log.level
    aiokafka_log.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        aiokafka_log.setLevel(level)


async def start_quietly(producer, bootstrap: str) -> None:
    """``await producer.start()``, or one :class:`BrokerError` and nothing else printed.

    While connecting, aiokafka logs each failed attempt (:func:`aiokafka_quiet`) and a
    failed start() leaves the producer open ("Unclosed AIOKafkaProducer" at exit). The
    BrokerError says it all: one line for the user.
    """
    from aiokafka.errors import KafkaError

    with aiokafka_quiet():
        try:
            await producer.start()
        except (KafkaError, OSError) as exc:
            with contextlib.suppress(Exception):
                await producer.stop()
            raise BrokerError(f"cannot connect to broker {bootstrap}: {exc}") from None


async def produce_lines(bootstrap: str, lines: Iterable[tuple[float, bytes]], *,
                        speed: float | None = None, prefix: str = "",
                        status: Callable[[str], None] | None = None,
                        should_stop: Callable[[], bool] = lambda: False,
                        batch: int = 1, tally: dict | None = None) -> int:
    """Send ``(event_epoch, line)`` pairs; with ``speed`` pace them at that many simulated
    seconds per wall second. With ``batch > 1``, up to that many consecutive events of a
    topic go in one message as a JSON array (the contract allows it, and a Kafka consumer
    pays per message, not per byte); a bad line always travels alone.
    Returns the number of lines sent. ``tally``, if given, gets ``sent`` (lines handed to
    the producer), ``first`` and ``last`` (their event times) also when the run is
    interrupted: what a Ctrl-C message reports."""
    from aiokafka import AIOKafkaProducer

    # No idempotence: the embedded broker (Tansu) rejects InitProducerId from aiokafka.
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=20, acks="all",
                                max_batch_size=256 * 1024)
    await start_quietly(producer, bootstrap)
    sent = 0
    wall0 = time.monotonic()
    last_status = wall0
    pending: dict[str, list[bytes]] = {}
    first = epoch = None   # event times of the first and the current line (pacing, tally)

    async def send_pending(topic: str) -> None:
        group = pending.pop(topic, None)
        if group:
            value = group[0] if len(group) == 1 else b"[" + b",".join(group) + b"]"
            await producer.send(topic, value)

    try:
        for epoch, line in lines:
            if should_stop():
                break
            if first is None:
                first = epoch
            if speed is not None:
                delay = (epoch - first) / speed - (time.monotonic() - wall0)
                if delay > 0.05:  # pace in 50 ms steps so batches can fill
                    for topic in list(pending):   # nothing waits while we sleep
                        await send_pending(topic)
                    await asyncio.sleep(delay)
            topic, key = topic_for(line, prefix)
            if batch > 1 and key is not None:
                pending.setdefault(topic, []).append(line)
                if len(pending[topic]) >= batch:
                    await send_pending(topic)
            else:
                await producer.send(topic, line, key=key)
            sent += 1
            now = time.monotonic()
            if status is not None and now - last_status >= 2.0:
                last_status = now
                status(f"produce: {sent:,} lines  {sent / (now - wall0):,.0f}/s")
        for topic in list(pending):
            await send_pending(topic)
        await producer.flush()
    finally:
        if tally is not None:
            # lines still waiting for their array (batch > 1) were never handed over
            tally.update(sent=sent - sum(map(len, pending.values())), first=first,
                         last=epoch if sent else None)
        await producer.stop()
    return sent


def produce_simulation(config, *, broker_url: str | None, speed: float | None,
                       manifest_path: str | None = None, calendar_path: str | None = None,
                       status: Callable[[str], None] | None = None, batch: int = 1,
                       tally: dict | None = None) -> int:
    """``riskwatch simulate --broker URL [--speed X]``: stream a simulation into Kafka
    (``tally``: see :func:`produce_lines`)."""
    from riskwatch.broker import bootstrap_from_url
    from riskwatch.simulator import calendar, generate, manifest

    if not broker_url:
        raise BrokerError("--broker kafka://HOST:PORT is required to produce (or use --out FILE)")
    bootstrap = bootstrap_from_url(broker_url)
    if manifest_path:
        with open(manifest_path, "wb") as f:
            f.write(orjson.dumps(manifest(config), option=orjson.OPT_INDENT_2))
    if calendar_path:
        with open(calendar_path, "wb") as f:
            f.write(orjson.dumps(calendar(config), option=orjson.OPT_INDENT_2))
    sent = asyncio.run(produce_lines(bootstrap, generate(config), speed=speed, status=status,
                                     batch=batch, tally=tally))
    print(f"produced {sent:,} events to {broker_url}")
    return 0
