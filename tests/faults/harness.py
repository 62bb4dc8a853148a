"""The seeded stream, the oracle and the checks every fault scenario shares.

The stream: four simulated days (~120k events) with incidents, malformed lines, exact
duplicates, late events (2-6 h) and complaint texts with personal data, packed the way
batching producers send them (JSON arrays of up to 40 events; malformed lines alone).
All of it goes to *one* topic with one partition (``--single-input-topic``), so the
worker reads the messages in exactly the order replay reads the lines: the oracle is
an in-process :class:`~streams.pipeline.Pipeline` over the same messages, late events
included. The oracle does not flush at the end: a worker stopped with checkpoints
keeps its open buckets, so both sides are compared on the buckets closed by event time.
"""

from __future__ import annotations

import functools
import json
import time
from collections import Counter
from pathlib import Path

from riskwatch.settings import PipelineSettings
from tests.alerting.amkit import RecordingReceiver

BUCKET_SECONDS = 300
LATENESS_SECONDS = 600
SETTINGS = PipelineSettings(bucket_seconds=BUCKET_SECONDS, allowed_lateness_seconds=LATENESS_SECONDS)
WORKER_ARGS = ["--bucket-seconds", str(BUCKET_SECONDS),
               "--allowed-lateness-seconds", str(LATENESS_SECONDS), "--single-input-topic"]
BATCH = 40


@functools.lru_cache(maxsize=1)
def stream_messages() -> tuple[bytes, ...]:
    """The seeded stream as Kafka message values, in order (cached per test session)."""
    from riskwatch.simulator import SimulationConfig, generate

    config = SimulationConfig(days=4, orders_per_day=15_000, merchants=400, incidents=5, seed=23,
                              malformed_share=0.002, duplicate_share=0.003, late_share=0.003,
                              pii_share=0.3)
    messages: list[bytes] = []
    chunk: list[bytes] = []
    for _, line in generate(config):
        if not line.startswith(b"{") or not line.endswith(b"}"):
            if chunk:
                messages.append(b"[" + b",".join(chunk) + b"]")
                chunk = []
            messages.append(line)          # a malformed line travels alone
            continue
        chunk.append(line)
        if len(chunk) == BATCH:
            messages.append(b"[" + b",".join(chunk) + b"]")
            chunk = []
    if chunk:
        messages.append(b"[" + b",".join(chunk) + b"]")
    return tuple(messages)


def alert_identity(alert: dict) -> tuple:
    """What makes an alert record the same record (the output contract's dedup key)."""
    return (alert["alert_id"], alert["status"], alert["ts"])


@functools.lru_cache(maxsize=1)
def oracle() -> dict:
    """Replay of :func:`stream_messages` in-process (line ``i + 1`` = topic offset ``i``)."""
    from streams.pipeline import Pipeline

    pipeline = Pipeline(SETTINGS, keep_aggregates=True, keep_events=True)
    pipeline.process_lines(list(stream_messages()), source="oracle")
    out = pipeline.drain()
    return {
        "alerts": out.alerts,
        "event_ids": frozenset(e["event_id"] for e in out.events),
        "aggregates": {_agg_key(r): _agg_value(r) for r in out.aggregates},
        "dead_letters": {(d["offset"] - 1, d["reason"]) for d in out.dead_letters},
        "stats": pipeline.stats,
    }


def _epoch(value: str) -> int:
    import datetime as dt
    return int(dt.datetime.fromisoformat(value).timestamp())


def _agg_key(row: dict) -> tuple:
    return (row["slice"], _epoch(row["bucket_start"]))


def _agg_value(row: dict) -> tuple:
    return (row["orders"], row["complaints"], round(row["exposure"], 4),
            None if row["expected"] is None else round(row["expected"], 4), round(row["score"], 6))


def compare_alerts(live: list[dict], expected: list[dict]) -> dict:
    """Lost, extra and redelivered alert records (identity = alert_id + status + ts)."""
    live_ids = Counter(alert_identity(a) for a in live)
    want = Counter(alert_identity(a) for a in expected)
    assert max(want.values(), default=1) == 1, "the oracle itself repeats an alert record"
    by_id = {alert_identity(a): a for a in live}
    differing = [k for k, a in ((alert_identity(e), e) for e in expected)
                 if k in by_id and _alert_body(by_id[k]) != _alert_body(a)]
    return {"lost": sorted(set(want) - set(live_ids)), "extra": sorted(set(live_ids) - set(want)),
            "redelivered": sum(n - 1 for n in live_ids.values()), "differing": differing}


def _alert_body(alert: dict) -> tuple:
    return (alert["fingerprint"], alert["severity"], alert["bucket_start"], alert["observed"],
            alert["expected"], alert["examples"])


def read_aggregates(chdb_path: Path) -> tuple[dict, int, list]:
    """Rows of the worker's chDB ``aggregates`` table: (distinct rows by key, raw row
    count, keys whose repeated rows disagree)."""
    from sinks.clickhouse import ChdbSink

    sink = ChdbSink(str(chdb_path))
    sink.setup()
    try:
        rows = sink.query("SELECT slice, toUnixTimestamp(bucket_start) AS b, orders, complaints, "
                          "exposure, expected, score FROM riskwatch.aggregates")
    finally:
        sink.close()
    seen: dict[tuple, tuple] = {}
    conflicts = []
    for r in rows:
        key = (r["slice"], int(r["b"]))
        value = (r["orders"], r["complaints"], round(r["exposure"], 4),
                 None if r["expected"] is None else round(r["expected"], 4), round(r["score"], 6))
        if key in seen and seen[key] != value:
            conflicts.append((key, seen[key], value))
        seen[key] = value
    return seen, len(rows), conflicts


def compare_aggregates(live: dict, expected: dict) -> dict:
    lost = [k for k in expected if k not in live]
    extra = [k for k in live if k not in expected]
    differ = [(k, live[k], expected[k]) for k in expected if k in live and live[k] != expected[k]]
    return {"lost": lost, "extra": extra, "differ": differ}


def dead_letter_set(records: list) -> set:
    """(offset, reason) of dead letters read from the topic (a redelivery counts once)."""
    return {(d["offset"], d["reason"]) for d in (json.loads(r.value) for r in records)}


def wait_until(predicate, *, timeout: float, what: str, every: float = 0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


# -- a ClickHouse server as the dashboards read it --------------------------------------------

def _read_server_table(url: str, select: str, table: str) -> tuple[list[dict], int]:
    """``select`` over ``riskwatch.<table> FINAL`` (what a dashboard sees) and the table's
    raw row count (what was written, duplicates included)."""
    from sinks.clickhouse.server_sink import ClickHouseServerSink

    sink = ClickHouseServerSink(url, migrate_schema=False)
    sink.setup()
    try:
        rows = sink.query(f"SELECT {select} FROM riskwatch.{table} FINAL")
        [raw] = sink.query(f"SELECT count() AS n FROM riskwatch.{table}")
    finally:
        sink.close()
    return rows, int(raw["n"])


def read_server_aggregates(url: str) -> tuple[dict, int, int]:
    """The ``aggregates`` table of a ClickHouse server read the way the dashboards read it
    (``FINAL``): (rows by (slice, bucket), rows visible more than once, raw row count)."""
    rows, raw = _read_server_table(url, "slice, toUnixTimestamp(bucket_start) AS b, orders, "
                                        "complaints, exposure, expected, score", "aggregates")
    seen: dict[tuple, tuple] = {}
    twice = 0
    for r in rows:
        key = (r["slice"], int(r["b"]))
        twice += key in seen
        seen[key] = (r["orders"], r["complaints"], round(r["exposure"], 4),
                     None if r["expected"] is None else round(r["expected"], 4), round(r["score"], 6))
    return seen, twice, raw


def read_server_alerts(url: str) -> tuple[Counter, int]:
    """Alert records in a ClickHouse server under ``FINAL``: identities visible (with
    how often each shows) and the raw row count."""
    rows, raw = _read_server_table(url, "alert_id, status, toUnixTimestamp(ts) AS t", "alerts")
    return Counter((r["alert_id"], r["status"], int(r["t"])) for r in rows), raw


def read_server_event_ids(url: str) -> tuple[set, int, int]:
    """``event_id`` of the ``events`` table under ``FINAL``: (ids, rows visible more than
    once, raw row count)."""
    rows, raw = _read_server_table(url, "event_id", "events")
    ids = {r["event_id"] for r in rows}
    return ids, len(rows) - len(ids), raw


def alert_time_identity(alert: dict) -> tuple:
    """:func:`alert_identity` with the time as epoch seconds (how ClickHouse stores it)."""
    return (alert["alert_id"], alert["status"], _epoch(alert["ts"]))


class Sampler:
    """Polls a worker's ``/stats/`` every ``every`` s in a thread: (monotonic, stats) pairs,
    so a test can say what consumption and lag did during a fault."""

    def __init__(self, worker, every: float = 1.0) -> None:
        import threading

        self.worker, self.every = worker, every
        self.samples: list[tuple[float, dict]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            stats = self.worker.stats()
            if stats is not None:
                self.samples.append((time.monotonic(), stats))
            self._stop.wait(self.every)

    def __enter__(self) -> "Sampler":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(5)

    def between(self, start: float, end: float) -> list[dict]:
        return [s for t, s in self.samples if start <= t <= end]


# -- receivers that go down -------------------------------------------------------------------

class Outage:
    """The clock of a receiver's outage: it starts at the first request the receiver
    sees (the first alert it is sent), so the outage surely meets alert traffic. One
    clock may be shared by receivers that should fail together."""

    def __init__(self) -> None:
        import threading

        self.started: float | None = None
        self._lock = threading.Lock()

    def elapsed(self) -> float:
        with self._lock:
            if self.started is None:
                self.started = time.monotonic()
            return time.monotonic() - self.started


class FlakyReceiver(RecordingReceiver):
    """A recording receiver (``tests/alerting/amkit.py``) that answers 500 while the
    ``down_seconds`` of its :class:`Outage` last, then 200, or, with ``forward_to``,
    passes the request on to that server (a front of a real Alertmanager) and answers
    what it answered. Every request is recorded."""

    def __init__(self, outage: Outage, down_seconds: float, forward_to: str | None = None) -> None:
        super().__init__()
        self.outage, self.down_seconds, self.forward_to = outage, down_seconds, forward_to

    def answer(self, path: str, body: bytes, headers) -> int:
        import urllib.error
        import urllib.request

        if self.outage.elapsed() < self.down_seconds:
            return 500
        if self.forward_to is None:
            return 200
        request = urllib.request.Request(self.forward_to + path, data=body, method="POST",
                                         headers={"Content-Type": headers.get("Content-Type", "")})
        try:
            with urllib.request.urlopen(request, timeout=10) as resp:
                return resp.status
        except urllib.error.HTTPError as exc:
            return exc.code

    @property
    def recovered_at(self) -> float | None:
        """Monotonic time the outage of this receiver ended (None: it never started)."""
        started = self.outage.started
        return None if started is None else started + self.down_seconds


def attempts_within(policy, seconds: float) -> int:
    """The most attempts a :class:`~sinks.base.RetryPolicy` makes in ``seconds`` of
    failures: the first at once, then one per backoff step at its shortest (full jitter).

    >>> from sinks.base import RetryPolicy
    >>> attempts_within(RetryPolicy(initial_delay=1, max_delay=4, jitter=0.0), 10)  # t=0 1 3 7
    4
    """
    attempts, spent = 1, 0.0
    while True:
        low = min(policy.max_delay, policy.initial_delay * policy.multiplier ** (attempts - 1))
        spent += low * (1 - policy.jitter)
        if spent > seconds:
            return attempts
        attempts += 1
