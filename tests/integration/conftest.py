"""Integration fixtures: a real Tansu broker, real worker subprocesses, plain Kafka clients.

- ``tansu`` (session): one :class:`~riskwatch.broker.EmbeddedBroker` on a free loopback
  port. Tests isolate themselves with a unique topic prefix and app id (= consumer
  group), so a stopped worker's lingering group member never delays another test.
- ``start_worker`` (factory): ``python -m streams.worker`` as a subprocess, logging to a
  file; stopped with SIGTERM, then SIGKILL if it hangs (measured: a worker whose broker
  vanished ignored SIGTERM).
- :func:`produce` / :func:`read_topic`: an independent aiokafka client, not faust.

No broker binary: a skip with the reason on a laptop, a failure under ``CI=true``.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import pytest

from riskwatch.broker import EmbeddedBroker, find_broker_binary
from riskwatch.errors import BrokerError
from tests.conftest import free_port, unavailable

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def broker_binary() -> str:
    try:
        return find_broker_binary()
    except BrokerError as exc:
        unavailable(str(exc))
        raise  # unreachable; keeps type checkers happy


@pytest.fixture(scope="session")
def tansu(broker_binary: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedBroker]:
    with EmbeddedBroker(data_dir=tmp_path_factory.mktemp("tansu"), binary=broker_binary) as broker:
        yield broker


def unique_prefix(tag: str) -> str:
    return f"{tag}{uuid.uuid4().hex[:6]}-"


def _clean_env() -> dict[str, str]:
    # The worker must see exactly the settings the test passes on its command line.
    env = {k: v for k, v in os.environ.items() if not k.startswith("RISKWATCH_")}
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env["PYTHONUNBUFFERED"] = "1"
    return env


class WorkerProcess:
    """One ``python -m streams.worker`` subprocess with its ``/stats/`` page."""

    def __init__(self, args: list[str], *, web_port: int, log_path: Path) -> None:
        self.args = args
        self.web_port = web_port
        self.log_path = log_path
        self.started_at = time.monotonic()
        with open(log_path, "wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "streams.worker", *args], cwd=ROOT, env=_clean_env(),
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stats(self) -> dict | None:
        url = f"http://127.0.0.1:{self.web_port}/stats/"
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                return json.loads(resp.read())
        except (urllib.error.URLError, OSError, ValueError):
            return None

    def wait_for(self, predicate: Callable[[dict], bool], *, timeout: float, what: str) -> dict:
        deadline = time.monotonic() + timeout
        last: dict | None = None
        while time.monotonic() < deadline:
            if not self.alive:
                raise AssertionError(f"worker exited ({self.proc.returncode}) while waiting for "
                                     f"{what}; log:\n{self.log_text()[-4000:]}")
            stats = self.stats()
            if stats is not None:
                last = stats
                if predicate(stats):
                    return stats
            time.sleep(0.2)
        raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}; last stats "
                             f"{json.dumps(last)[:1500]}; log:\n{self.log_text()[-4000:]}")

    def wait_ready(self, timeout: float = 40.0) -> float:
        """Wait until partitions are assigned; return seconds since spawn."""
        self.wait_for(lambda s: bool(s["assigned"]), timeout=timeout, what="partition assignment")
        return time.monotonic() - self.started_at

    def wait_processed(self, messages: int, timeout: float = 40.0) -> dict:
        """Wait until the pipeline saw ``messages`` input messages and the lag is 0."""
        return self.wait_for(
            lambda s: s["pipeline"].get("messages", 0) >= messages and s["total_lag"] == 0,
            timeout=timeout, what=f"{messages} messages processed")

    def stop(self, timeout: float = 20.0, sig: int = signal.SIGTERM) -> int:
        """Ask the worker to stop; SIGKILL after ``timeout``. Returns the exit code."""
        if self.alive:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(f"worker ignored SIGTERM for {timeout:.0f}s and was killed; "
                                 f"log:\n{self.log_text()[-4000:]}") from None


@pytest.fixture
def start_worker(tmp_path: Path) -> Iterator[Callable[..., WorkerProcess]]:
    """Factory: ``start_worker(broker_url=..., prefix=..., extra=[...])``."""
    workers: list[WorkerProcess] = []

    def _start(*, broker_url: str | None, prefix: str, extra: Iterable[str] = ()) -> WorkerProcess:
        web_port = free_port()
        args = ["--data-dir", str(tmp_path / f"data-{len(workers)}"), "--web-port", str(web_port),
                "--topic-prefix", prefix, "--app-id", f"{prefix}app", "--log-level", "info",
                "--stop-timeout", "15",   # its own watchdog fires before our SIGKILL at 20 s
                *extra]
        if broker_url is not None:
            args += ["--broker", broker_url]
        worker = WorkerProcess(args, web_port=web_port, log_path=tmp_path / f"worker-{len(workers)}.log")
        workers.append(worker)
        return worker

    yield _start
    for worker in workers:
        if worker.alive:
            worker.proc.send_signal(signal.SIGTERM)
            try:
                worker.proc.wait(10)
            except subprocess.TimeoutExpired:
                worker.proc.kill()
                worker.proc.wait()


# -- an independent Kafka client ---------------------------------------------------------

class KafkaClient:
    """Plain aiokafka producer/reader against one bootstrap address (sync wrappers)."""

    def __init__(self, bootstrap: str) -> None:
        self.bootstrap = bootstrap

    def produce(self, messages: Iterable[tuple[str, bytes]]) -> list[tuple[str, int, int]]:
        """Send ``(topic, value)`` messages in order; return ``(topic, partition, offset)`` each."""
        return asyncio.run(self._produce(list(messages)))

    def read(self, topic: str, timeout: float = 15.0) -> list:
        """Every record of ``topic`` up to its end offsets at call time (no consumer group)."""
        return asyncio.run(self._read(topic, timeout))

    async def _produce(self, messages: list[tuple[str, bytes]]) -> list[tuple[str, int, int]]:
        from aiokafka import AIOKafkaProducer

        producer = AIOKafkaProducer(bootstrap_servers=self.bootstrap, linger_ms=5)
        await producer.start()
        try:
            futures = [await producer.send(topic, value) for topic, value in messages]
            metas = [await f for f in futures]
        finally:
            await producer.stop()
        return [(m.topic, m.partition, m.offset) for m in metas]

    async def _read(self, topic: str, timeout: float) -> list:
        from aiokafka import AIOKafkaConsumer, TopicPartition

        consumer = AIOKafkaConsumer(bootstrap_servers=self.bootstrap, enable_auto_commit=False,
                                    auto_offset_reset="earliest", group_id=None)
        await consumer.start()
        try:
            if topic not in await consumer.topics():  # also refreshes the metadata
                raise AssertionError(f"topic {topic} does not exist")
            tps = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic))]
            consumer.assign(tps)
            await consumer.seek_to_beginning(*tps)
            end = await consumer.end_offsets(tps)
            records: list = []
            deadline = time.monotonic() + timeout
            while any([await consumer.position(tp) < end[tp] for tp in tps]):
                if time.monotonic() > deadline:
                    raise AssertionError(f"could not read {topic} to its end offsets {end}")
                batch = await consumer.getmany(timeout_ms=500)
                for recs in batch.values():
                    records.extend(recs)
            return sorted(records, key=lambda r: (r.partition, r.offset))
        finally:
            await consumer.stop()


@pytest.fixture(scope="session")
def kafka(tansu: EmbeddedBroker) -> KafkaClient:
    return KafkaClient(tansu.bootstrap)
