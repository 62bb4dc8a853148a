"""Seeks to a checkpoint run on faust's consumer thread (streams.checkpoint.seek_on_consumer_thread).

faust's ``Consumer.seek`` calls aiokafka from the agents' thread, racing the fetcher on the
consumer thread (a standby crashed with ``KeyError(TopicPartition)`` in ``make faults``).
The stand-ins below record *which way* the seek went; the fault scenarios
(tests/faults/test_standby_takeover.py, test_kill_restart.py) run the real thing.
"""

from __future__ import annotations

import asyncio
import threading
from collections import defaultdict

from streams.checkpoint import seek_on_consumer_thread


class _ConsumerThread:
    """Runs queued calls on its own OS thread, as mode's ServiceThread.call_thread does."""

    def __init__(self) -> None:
        self.seeks: list[tuple[str, int, str]] = []

    def seek(self, tp, offset) -> None:
        self.seeks.append((tp, offset, threading.current_thread().name))

    async def call_thread(self, fun, *args):
        result: list = []
        worker = threading.Thread(target=lambda: result.append(fun(*args)), name="consumer-thread")
        worker.start()
        await asyncio.get_running_loop().run_in_executor(None, worker.join)
        return result[0]


class _Consumer:
    def __init__(self) -> None:
        self._thread = _ConsumerThread()
        self._read_offset = defaultdict(lambda: None)
        self.direct_seeks: list = []

    async def seek(self, tp, offset) -> None:  # faust's own: the racy path
        self.direct_seeks.append((tp, offset))


def test_the_seek_runs_on_the_consumer_thread_and_moves_the_read_offset() -> None:
    consumer = _Consumer()
    asyncio.run(seek_on_consumer_thread(consumer, "events-0", 42))
    assert consumer._thread.seeks == [("events-0", 42, "consumer-thread")]
    assert consumer.direct_seeks == []
    assert consumer._read_offset["events-0"] == 42


def test_a_transport_without_a_consumer_thread_uses_its_own_seek() -> None:
    class Plain:
        def __init__(self) -> None:
            self.seeks: list = []

        async def seek(self, tp, offset) -> None:
            self.seeks.append((tp, offset))

    consumer = Plain()
    asyncio.run(seek_on_consumer_thread(consumer, "events-0", 7))
    assert consumer.seeks == [("events-0", 7)]
