"""Live throughput side by side: bare aiokafka, faust's floor, naive faust counting, riskwatch.

    .venv/bin/python benchmarks/live_throughput.py --quick          # small run, ~5 minutes
    .venv/bin/python benchmarks/live_throughput.py                  # the README figures
    .venv/bin/python benchmarks/live_throughput.py --only throughput --profile

One embedded Tansu broker; simulator events (seed 11: incidents, PII, malformed lines,
duplicates) are produced ONCE into two sets of input topics: one event per message, and
JSON arrays of ``--batch`` events per message (a bad line travels alone). Then each
consumer reads the same topics from the start with its own consumer group, in its own
process, and is timed from its first message to its last (startup and the group join,
~5 s on Tansu, are excluded):

(a) a bare aiokafka consumer that only decodes (orjson): the ceiling;
(b) a faust agent that only decodes and counts: faust's own floor per message;
(c) a straightforward faust implementation of the counting: ``group_by`` a slice key
    (merchant x 10-minute bucket), a table increment per event (changelog writes);
    for arrays one agent fans the events out to a repartition topic, a second counts;
    keys from raw bytes with orjson (faster than faust's own decoding);
(c) with Records (``r`` in ``--consumers``, one event per message only): the same counting
    as faust's own examples write it, a ``faust.Record`` per event type, topics with
    ``value_type``, ``group_by(Model.field)``: what the issue calls "a straightforward
    faust implementation";
(d) riskwatch's live worker: ``python -m streams.worker``, the real pipeline (parse,
    validate, dedup, mask, classify, aggregate, close buckets, detect, alert, publish),
    no storage sinks; timed from its ``/stats/`` page (polled every 0.1 s).

Targets (issue 7): one event per message, (d) >= 0.8x (b) and >= 5x (c); batched,
(d) >= 100k events/s per worker process, i.e. >= 0.2x (a). Printed as met / MISSED.

Other sections (``--only`` picks some): ``memory`` (a Pipeline fed synthetic complaints over
10k and 100k merchant x intent slices, tracemalloc and RSS), ``latency`` (event produced ->
alert record on the ``alerts`` topic, with the live traffic and incidents of
``benchmarks/alert_latency.py``), ``scaling`` (1, 2 and 4 worker processes in one group on
4-partition topics, batched messages). ``--profile`` runs (b) and (d) once more, sampled by
py-spy (``pip install 'py-spy==0.4.3'``, extra ``bench``), and prints their CPU microseconds
per message area by area, side by side: what (d) spends beyond faust's floor.
``--modes single`` and ``--consumers bd`` narrow the throughput section (letters a, b, c,
r, d).

Besides events per wall second, each consumer's events per CPU-second of its own process
is printed: on a shared machine that figure moves much less with the load. On this VM
even the idle machine's figures move by a third from one run to the next, (d)'s most:
``--repeat 3`` runs the consumers three times in turn, takes each ratio within a run
(its consumers ran minutes apart, not a quarter of an hour) and decides by the median.
    .venv/bin/python benchmarks/live_throughput.py --only throughput --repeat 3

Every figure depends on the machine's load (2 shared cores here): the load average is
printed with each section.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import orjson

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
from replay_throughput import WORLDS  # noqa: E402  (one definition of the simulated markets)

PY = sys.executable
#: The consumers the worker is compared with: (letter, role of its process, label).
CONSUMERS = (("a", "bare", "(a) bare aiokafka, decode only"),
             ("b", "floor", "(b) faust agent, decode + count"),
             ("c", "count", "(c) faust group_by + table per event"),
             ("r", "count-records", "(c) with faust Records, group_by(field)"))
WORKER_LABEL = "(d) riskwatch live worker"


def log(msg: str) -> None:
    print(msg, flush=True)


def load() -> str:
    return f"load avg {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def lines_in(value: bytes) -> int:
    """Events (or bad lines) one message carries: an array's length, else 1.

    >>> lines_in(b'[{"a":1},{"a":2}]'), lines_in(b'{"a":1}'), lines_in(b'not json')
    (2, 1, 1)
    """
    try:
        obj = orjson.loads(value)
    except orjson.JSONDecodeError:
        return 1
    return len(obj) if isinstance(obj, list) else 1


# -- the consumers that run in their own process (--role) -------------------------------

def _write_result(path: str, result: dict) -> None:
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(result, f)
    os.replace(tmp, path)


def role_bare(args: argparse.Namespace) -> None:
    """(a) aiokafka consumer, decode only."""
    from aiokafka import AIOKafkaConsumer

    async def run() -> None:
        consumer = AIOKafkaConsumer(*args.topics.split(","), bootstrap_servers=args.bootstrap,
                                    group_id=args.app_id, auto_offset_reset="earliest",
                                    enable_auto_commit=False, max_partition_fetch_bytes=8 << 20,
                                    fetch_max_bytes=64 << 20)
        await consumer.start()
        first = None
        messages = events = 0
        loads = orjson.loads
        cpu0 = 0.0
        try:
            while events < args.expect:
                batches = await consumer.getmany(timeout_ms=500, max_records=20_000)
                for records in batches.values():
                    if first is None:
                        first, cpu0 = time.perf_counter(), time.process_time()
                    for r in records:
                        messages += 1
                        try:
                            obj = loads(r.value)
                        except orjson.JSONDecodeError:
                            events += 1
                            continue
                        events += len(obj) if isinstance(obj, list) else 1
                if first is not None and time.perf_counter() - first > args.max_seconds:
                    break
            last = time.perf_counter()
        finally:
            await consumer.stop()
        _write_result(args.result, {"first": first, "last": last, "messages": messages, "events": events,
                                    "cpu": time.process_time() - cpu0})

    asyncio.run(run())


def role_faust(args: argparse.Namespace) -> None:
    """(b) faust agent that decodes and counts; (c) group_by + table increments."""
    import faust

    topics = args.topics.split(",")
    app = faust.App(args.app_id, broker=f"kafka://{args.bootstrap}", autodiscover=False,
                    datadir=args.datadir, store="memory://", broker_session_timeout=10,
                    broker_heartbeat_interval=2, key_serializer="raw", value_serializer="raw",
                    topic_partitions=1, topic_disable_leader=True, web_enabled=False,
                    worker_redirect_stdouts=False)
    source = app.topic(*topics, key_serializer="raw", value_serializer="raw")
    state = {"first": None, "cpu0": 0.0, "messages": 0, "events": 0, "done": False,
             "last": None, "cpu_last": 0.0}
    loads = orjson.loads

    def progress(n_events: int) -> None:
        if state["first"] is None:
            state["first"], state["cpu0"] = time.perf_counter(), time.process_time()
        state["events"] += n_events
        state["last"], state["cpu_last"] = time.perf_counter(), time.process_time()
        maybe_finish()

    def maybe_finish() -> None:
        # Timed to the last event counted, not to the cap: a consumer that stalls before
        # the end is measured over the time it was making progress.
        if not state["done"] and state["first"] is not None and (
                state["events"] >= args.expect
                or time.perf_counter() - state["first"] > args.max_seconds):
            state["done"] = True
            _write_result(args.result, {"first": state["first"], "last": state["last"],
                                        "messages": state["messages"], "events": state["events"],
                                        "cpu": state["cpu_last"] - state["cpu0"]})

    @app.timer(1.0)
    async def cap() -> None:
        # A consumer that stalls (faust's group_by producer can: "producer buffer full")
        # still reports what it did by the cap, instead of never reporting at all.
        maybe_finish()

    if args.role == "floor":
        @app.agent(source, name="floor")
        async def floor(stream: faust.StreamT) -> None:
            async for value in stream:
                state["messages"] += 1
                try:
                    obj = loads(value)
                    n = len(obj) if isinstance(obj, list) else 1
                except orjson.JSONDecodeError:
                    n = 1
                progress(n)
    elif args.role == "count-records":
        _count_with_records(app, topics, state, progress)
    else:
        counts = app.Table("slice-counts", default=int, partitions=1)

        def slice_key(event: object) -> str:
            if not isinstance(event, dict):
                return "bad"
            who = event.get("merchant_id") or event.get("order_id") or event.get("complaint_id")
            return f"{who}|{str(event.get('ts'))[:15]}"   # merchant x 10-minute bucket

        def key_of(value: bytes) -> str:
            try:
                return slice_key(loads(value))
            except orjson.JSONDecodeError:
                return "bad"

        if args.batched:
            by_slice = app.topic(f"{args.app_id}-by-slice", key_serializer="raw",
                                 value_serializer="raw", partitions=1,
                                 internal=True)   # faust creates it (1 partition, like the table)

            @app.agent(source, name="fanout")
            async def fanout(stream: faust.StreamT) -> None:
                async for value in stream:
                    state["messages"] += 1
                    try:
                        obj = loads(value)
                    except orjson.JSONDecodeError:
                        obj = [None]
                    for event in (obj if isinstance(obj, list) else [obj]):
                        await by_slice.send(key=slice_key(event).encode(), value=orjson.dumps(event))

            @app.agent(by_slice, name="count")
            async def count(stream: faust.StreamT) -> None:
                async for event in stream.events():
                    counts[event.key] += 1
                    progress(1)
        else:
            # group_by needs a single-topic stream (faust: "Topic with multiple topic names
            # cannot be identified"): one agent per input topic, all counting in one table.
            async def count(stream: faust.StreamT) -> None:
                async for key, _value in stream.group_by(key_of, name="slice").items():
                    state["messages"] += 1
                    counts[key] += 1
                    progress(1)

            for i, name in enumerate(topics):
                app.agent(app.topic(name, key_serializer="raw", value_serializer="raw"),
                          name=f"count{i}")(count)

    faust.Worker(app, loglevel="warning", quiet=True).execute_from_commandline()


def _count_with_records(app, topics: list[str], state: dict, progress) -> None:
    """(c) as faust's own examples write it: a ``faust.Record`` per event type, topics
    with ``value_type``, ``group_by(Model.field)``, a table increment per event (the
    merchant x 10-minute count of the raw variant). faust decodes every message into a
    Record, twice (source and repartition topic); a message that does not decode is
    counted and acked."""
    import faust

    class Order(faust.Record):
        type: str
        event_id: str
        ts: str
        order_id: str
        merchant_id: str
        region: str
        carrier: str
        category: str
        amount: float

    class OrderStatus(faust.Record):
        type: str
        event_id: str
        ts: str
        order_id: str
        status: str

    class Complaint(faust.Record):
        type: str
        event_id: str
        ts: str
        complaint_id: str
        order_id: str | None
        merchant_id: str
        region: str
        carrier: str | None
        channel: str
        text: str
        declared_type: str | None = None
        customer_tier: str | None = None

    class ComplaintUpdate(faust.Record):
        type: str
        event_id: str
        ts: str
        complaint_id: str
        intent: str | None = None
        status: str | None = None
        csat: float | None = None

    counts = app.Table("slice-counts", default=int, partitions=1)
    by_suffix = {"complaint-updates": (ComplaintUpdate, ComplaintUpdate.complaint_id),
                 "order-status": (OrderStatus, OrderStatus.order_id),
                 "complaints": (Complaint, Complaint.merchant_id),
                 "orders": (Order, Order.merchant_id)}

    class TolerantTopic(faust.Topic):
        # faust throws a decode error into the agent's stream, which ends the agent;
        # counted and acked instead (a subclass: faust clones topics by their type).
        async def on_value_decode_error(self, exc: Exception, message) -> None:
            state["messages"] += 1
            progress(1)

    for i, name in enumerate(topics):
        model, field = next(v for suffix, v in by_suffix.items() if name.endswith(suffix))
        topic = TolerantTopic(app, topics=[name], key_serializer="raw", value_type=model,
                              value_serializer="json")

        async def count(stream: faust.StreamT, field=field, i=i) -> None:
            async for event in stream.group_by(field, name=f"by-{field.field}-{i}"):
                state["messages"] += 1
                counts[f"{getattr(event, field.field)}|{str(event.ts)[:15]}"] += 1
                progress(1)

        app.agent(topic, name=f"count{i}")(count)


def role_memory(args: argparse.Namespace) -> None:
    """A Pipeline fed one order per merchant and one complaint per merchant x intent."""
    import gc
    import tracemalloc

    from streams.pipeline import Pipeline
    from tests.streamkit import TEXTS, iso

    intents = sorted(TEXTS)
    merchants = max(1, args.slices // len(intents))
    t0 = 1_793_500_000
    pipeline = Pipeline()
    gc.collect()
    rss0 = _rss_mb(os.getpid())
    if args.tracemalloc:   # exact Python heap, but ~4x slower (the intent classifier allocates)
        tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    started = time.perf_counter()
    offset = 0
    regions = ["广东", "浙江", "江苏", "北京", "上海", "四川"]
    carriers = ["中通", "顺丰", "圆通", "韵达"]
    for m in range(merchants):
        region, carrier = regions[m % len(regions)], carriers[m % len(carriers)]
        offset += 1
        pipeline.process(orjson.dumps(
            {"type": "order", "event_id": f"o{m}", "ts": iso(t0 + m % 250), "order_id": f"O{m}",
             "merchant_id": f"m{m}", "region": region, "carrier": carrier, "category": "服饰",
             "amount": 99}), source="orders", partition=0, offset=offset)
        for intent in intents:
            offset += 1
            pipeline.process(orjson.dumps(
                {"type": "complaint", "event_id": f"c{m}-{intent}", "ts": iso(t0 + m % 250),
                 "complaint_id": f"C{m}-{intent}", "order_id": f"O{m}", "merchant_id": f"m{m}",
                 "region": region, "carrier": carrier, "channel": "app", "text": TEXTS[intent],
                 "declared_type": None, "customer_tier": None}),
                source="complaints", partition=0, offset=offset)
    pipeline.flush()   # close the bucket: the slices' detector state is created and updated
    pipeline.drain()
    gc.collect()
    traced = tracemalloc.get_traced_memory()[0] - base if args.tracemalloc else None
    tracemalloc.stop()
    stats = pipeline.stats
    _write_result(args.result, {
        "merchants": merchants, "events": offset, "slices": stats["slices"],
        "merchant_intent_slices": merchants * len(intents),
        "traced_mb": traced / 2**20 if traced is not None else None,
        "rss_mb": (_rss_mb(os.getpid()) or 0) - (rss0 or 0), "seconds": time.perf_counter() - started})


def _rss_mb(pid: int) -> float | None:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


# -- the conductor ----------------------------------------------------------------------

# The worlds events are drawn from: WORLDS, orders a day and merchants (replay_throughput.py's).


def simulated_lines(events: int, seed: int = 11, world: str = "thin") -> list[bytes]:
    """The simulator's first ``events`` lines of a ``world`` (:data:`WORLDS`).

    The thin world closes a bucket every ~500 events, the platform one every ~4,000 in
    the day (fewer at night): per event, bucket closes cost a platform less."""
    from riskwatch.simulator import SimulationConfig, generate

    orders_per_day, merchants = WORLDS[world]
    days = max(0.2, events / (1.2 * orders_per_day))   # ~1.25 lines per order
    config = SimulationConfig(days=round(days + 0.5, 1), orders_per_day=orders_per_day,
                              merchants=merchants, seed=seed)
    out = []
    for _, line in generate(config):
        out.append(line)
        if len(out) >= events:
            break
    return out


def messages_for(lines: list[bytes], prefix: str, batch: int) -> list[tuple[str, bytes | None, bytes]]:
    """(topic, key, value): one line per message, or arrays of ``batch`` per topic."""
    from riskwatch.produce import topic_for

    out: list[tuple[str, bytes | None, bytes]] = []
    pending: dict[str, list[bytes]] = {}
    for line in lines:
        topic, key = topic_for(line, prefix)
        if batch <= 1 or key is None:
            out.append((topic, key, line))
            continue
        group = pending.setdefault(topic, [])
        group.append(line)
        if len(group) >= batch:
            out.append((topic, None, b"[" + b",".join(group) + b"]"))
            pending[topic] = []
    for topic, group in pending.items():
        if group:
            out.append((topic, None, b"[" + b",".join(group) + b"]"))
    return out


async def produce(bootstrap: str, messages: list[tuple[str, bytes | None, bytes]],
                  partitions: int = 1) -> None:
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=20, max_batch_size=1 << 20,
                                max_request_size=8 << 20)
    await producer.start()
    try:
        for i, (topic, key, value) in enumerate(messages):
            await producer.send(topic, value, key=key if partitions == 1 else None,
                                partition=(i % partitions) if partitions > 1 else None)
        await producer.flush()
    finally:
        await producer.stop()


def stop_process(proc: subprocess.Popen, timeout: float = 20.0) -> None:
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def run_role(role: str, work: Path, bootstrap: str, topics: list[str], expect: int,
             max_seconds: float, *, batched: bool = False, label: str, on_started=None) -> dict:
    """Run one consumer in its own process until it reports; returns its timing.

    ``on_started(proc)`` runs right after the process started (``--profile`` attaches py-spy).
    """
    tag = f"{role}-{'b' if batched else 's'}-{os.urandom(2).hex()}"
    result = work / f"{tag}.json"
    cmd = [PY, str(Path(__file__).resolve()), "--role", role, "--bootstrap", bootstrap,
           "--topics", ",".join(topics), "--expect", str(expect), "--max-seconds", str(max_seconds),
           "--result", str(result), "--app-id", f"bench-{tag}", "--datadir", str(work / tag)]
    if batched:
        cmd.append("--batched")
    logf = open(work / f"{tag}.log", "wb")
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=logf, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + max_seconds + 120
    try:
        if on_started is not None:
            on_started(proc)
        while not result.exists():
            if proc.poll() is not None:
                raise SystemExit(f"{label} exited with {proc.returncode}:\n"
                                 f"{(work / f'{tag}.log').read_text()[-3000:]}")
            if time.monotonic() > deadline:
                raise SystemExit(f"{label} did not finish; log:\n{(work / f'{tag}.log').read_text()[-3000:]}")
            time.sleep(0.2)
    finally:
        stop_process(proc)
        logf.close()
    r = json.loads(result.read_text())
    return _rate(r["events"], r["messages"], r["last"] - r["first"], expect, r["cpu"])


def _rate(events: int, messages: int, seconds: float, expect: int, cpu: float) -> dict:
    seconds = max(seconds, 1e-6)
    return {"events": events, "messages": messages, "seconds": seconds, "cpu_seconds": cpu,
            "events_per_s": events / seconds, "messages_per_s": messages / seconds,
            "events_per_cpu_s": events / max(cpu, 1e-6), "complete": events >= expect}


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (all its threads), from /proc."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


def stats(port: int) -> dict | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/stats/", timeout=2) as r:
            return json.loads(r.read())
    except (OSError, ValueError):
        return None


def start_worker(work: Path, broker_url: str, prefix: str, app_id: str, *, partitions: int = 1,
                 extra: list[str] = (), profile: Path | None = None) -> tuple[subprocess.Popen, int]:
    port = free_port()
    tag = f"worker-{app_id}-{port}"
    runner = [PY, "-m", "cProfile", "-o", str(profile), "-m", "streams.worker"] if profile else \
        [PY, "-m", "streams.worker"]
    logf = open(work / f"{tag}.log", "wb")
    proc = subprocess.Popen(
        [*runner, "--broker", broker_url, "--data-dir", str(work / tag), "--web-port", str(port),
         "--topic-prefix", prefix, "--app-id", app_id, "--partitions", str(partitions),
         "--log-level", "warning", *extra],
        cwd=ROOT, stdout=logf, stderr=subprocess.STDOUT)
    logf.close()
    proc.log_path = work / f"{tag}.log"  # type: ignore[attr-defined]
    return proc, port


def time_workers(workers: list[tuple[subprocess.Popen, int]], total_messages: int, expect: int,
                 max_seconds: float, label: str, before_start=None, on_ready=None) -> dict:
    """Poll the workers' /stats/ until they processed ``total_messages`` together."""
    deadline = time.monotonic() + 120
    while True:   # ready = every worker has its partitions (a stable group)
        snaps = [stats(port) for _, port in workers]
        if all(s and s.get("ready_after_s") is not None and s["assigned"] for s in snaps):
            if before_start is None:
                break
            assigned = [set(s["assigned"]) for s in snaps]
            if sum(map(len, assigned)) == len(set().union(*assigned)) == before_start["partitions"]:
                time.sleep(3)   # no rebalance in flight
                snaps2 = [stats(port) for _, port in workers]
                if all(s and set(s["assigned"]) == a for s, a in zip(snaps2, assigned, strict=True)):
                    break
        for proc, _ in workers:
            if proc.poll() is not None:
                raise SystemExit(f"{label}: worker exited:\n{proc.log_path.read_text()[-3000:]}")
        if time.monotonic() > deadline:
            raise SystemExit(f"{label}: workers not ready/stable within 120 s")
        time.sleep(0.3)
    if on_ready is not None:
        on_ready()
    if before_start is not None:
        asyncio.run(before_start["produce"]())
    first = None
    cpu0 = 0.0
    last_done = 0
    t_end = time.monotonic() + max_seconds + 60
    while time.monotonic() < t_end:
        snaps = [stats(port) for _, port in workers]
        pipes = [(s or {}).get("pipeline") or {} for s in snaps]
        messages = sum(p.get("messages", 0) for p in pipes)
        events = sum(p.get("events", 0) + p.get("bad", 0) for p in pipes)
        now = time.perf_counter()
        if messages and first is None:
            first = now
            cpu0 = sum(cpu_seconds(proc.pid) for proc, _ in workers)
        if messages > last_done:
            last_done, last_t, last_events = messages, now, events
            cpu1 = sum(cpu_seconds(proc.pid) for proc, _ in workers)
        if messages >= total_messages or (first is not None and now - first > max_seconds):
            break
        time.sleep(0.1)
    if first is None:
        raise SystemExit(f"{label}: nothing processed")
    return _rate(last_events, last_done, last_t - first, expect, cpu1 - cpu0)


def section_throughput(args, work: Path, broker, lines: dict, results: dict) -> None:
    from riskwatch.broker import create_topics
    from streams.app import TopicNames

    for mode, batch in (("single", 1), ("batched", args.batch)):
        if mode not in args.modes:
            continue
        prefix = f"lt-{mode}-"
        topics = TopicNames.with_prefix(prefix)
        asyncio.run(create_topics(broker.bootstrap, topics.all, 1))
        msgs = messages_for(lines[mode], prefix, batch)
        expect = sum(lines_in(v) for _, _, v in msgs)
        t = time.perf_counter()
        asyncio.run(produce(broker.bootstrap, msgs))
        log(f"\n== {mode}: {expect:,} events in {len(msgs):,} messages produced in "
            f"{time.perf_counter() - t:.1f}s ({load()})")
        inputs = list(topics.inputs)
        row = results.setdefault(mode, {})
        runs = row.setdefault("runs", [])
        for n in range(args.repeat):
            if args.repeat > 1:
                log(f"  -- run {n + 1} of {args.repeat}")
            runs.append(_run_consumers(args, work, broker, prefix, inputs, msgs, expect, batch))
        for key in "abcrd":   # the run with the median rate (the lower one of an even
            rates = sorted((run[key] for run in runs if key in run),   # count) stands for it
                           key=lambda r: r["events_per_s"])
            if rates:
                row[key] = rates[(len(rates) - 1) // 2]
        if args.profile:
            profile_side_by_side(args, work, broker, prefix, inputs, len(msgs), expect, mode)


def _run_consumers(args, work: Path, broker, prefix: str, inputs: list[str], msgs: list,
                   expect: int, batch: int) -> dict:
    """Each chosen consumer once, in turn, on the same topics: {key: its rate}."""
    run: dict = {}
    for key, role, label in CONSUMERS:
        if key not in args.consumers or (key == "r" and batch > 1):
            continue   # (r: events of an array are not one Record; (c) covers arrays)
        run[key] = run_role(role, work, broker.bootstrap, inputs, expect, args.max_seconds,
                            batched=batch > 1, label=label)
        _print_row(label, run[key], expect)
    if "d" in args.consumers:
        proc, port = start_worker(work, broker.url, prefix, f"rw-{prefix}{os.urandom(2).hex()}")
        try:
            run["d"] = time_workers([(proc, port)], len(msgs), expect, args.max_seconds,
                                    "(d) riskwatch worker")
        finally:
            stop_process(proc, 40)
        _print_row(WORKER_LABEL, run["d"], expect)
    return run


def _print_row(label: str, r: dict, expect: int) -> None:
    partial = "" if r["complete"] else f" (capped: {r['events']:,} of {expect:,})"
    log(f"  {label:38s} {r['events_per_s']:>9,.0f} events/s {r['messages_per_s']:>8,.0f} msg/s "
        f"{r['seconds']:5.1f}s, {r['events_per_cpu_s']:>9,.0f} events per CPU-s{partial} [{load()}]")


class Sampler:
    """py-spy attached to one process (``record --nonblocking``: the process is not
    paused, so sampling costs it nothing); :meth:`stop` makes py-spy write its stacks."""

    def __init__(self, spy: str, raw: Path) -> None:
        self.spy, self.raw = spy, raw
        self.proc: subprocess.Popen | None = None

    def start(self, pid: int) -> None:
        self.proc = subprocess.Popen(
            [self.spy, "record", "--pid", str(pid), "--rate", str(SAMPLE_RATE), "--format", "raw",
             "--output", str(self.raw), "--nonblocking"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def stop(self) -> str | None:
        if self.proc is not None:
            self.proc.send_signal(signal.SIGINT)   # py-spy writes its output on SIGINT
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        return self.raw.read_text() if self.raw.exists() else None


SAMPLE_RATE = 250   # samples per second of CPU time: one sample = 4 ms


def profile_side_by_side(args, work: Path, broker, prefix: str, inputs: list[str],
                         total_messages: int, expect: int, mode: str) -> None:
    """Sample (b) faust's floor and (d) the worker with py-spy on the same topics.

    Both read every message of the same input topics, so their samples divided by their
    messages are CPU microseconds per message, area by area: (b)'s faust + aiokafka cost
    is the floor that (d) pays too, and what (d) spends beyond it is the gap to close.
    Samples of imports (before the first message) are left out of both.
    """
    spy = shutil.which("py-spy", path=str(Path(PY).parent) + os.pathsep + os.environ.get("PATH", ""))
    if spy is None:
        log("  --profile needs py-spy: .venv/bin/pip install 'py-spy==0.4.3' (pyproject extra 'bench')")
        return
    floor_sampler = Sampler(spy, work / f"floor-{mode}.folded")
    rb = run_role("floor", work, broker.bootstrap, inputs, expect, args.max_seconds,
                  batched=mode == "batched", label="profiled (b)",
                  on_started=lambda proc: floor_sampler.start(proc.pid))
    floor_text = floor_sampler.stop()
    worker_sampler = Sampler(spy, work / f"worker-{mode}.folded")
    proc, port = start_worker(work, broker.url, prefix, f"rw-prof-{os.urandom(2).hex()}")
    try:
        rd = time_workers([(proc, port)], total_messages, expect, args.max_seconds,
                          "profiled worker", on_ready=lambda: worker_sampler.start(proc.pid))
    finally:
        worker_text = worker_sampler.stop()
        stop_process(proc, 40)
    if floor_text is None or worker_text is None:
        log("  (py-spy wrote nothing: ptrace not permitted here?)")
        return
    floor, worker = summarise_folded(floor_text), summarise_folded(worker_text)

    def per_message(samples: float, messages: int) -> float:
        return samples / SAMPLE_RATE / max(messages, 1) * 1e6   # CPU µs per message

    log(f"\n  CPU per message, py-spy at {SAMPLE_RATE} Hz ({mode}; (b) {floor['samples']:,} samples over "
        f"{rb['messages']:,} messages at {rb['messages_per_s']:,.0f}/s, (d) {worker['samples']:,} over "
        f"{rd['messages']:,} at {rd['messages_per_s']:,.0f}/s; {load()}):")
    log(f"    {'area':62s} {'(b) µs':>8s} {'(d) µs':>8s}")
    areas_b, areas_d = dict(floor["area_samples"]), dict(worker["area_samples"])
    for name in dict.fromkeys([n for n, _ in worker["area_samples"]] + [n for n, _ in floor["area_samples"]]):
        log(f"    {name:62s} {per_message(areas_b.get(name, 0), rb['messages']):8.1f} "
            f"{per_message(areas_d.get(name, 0), rd['messages']):8.1f}")
    log(f"    {'all':62s} {per_message(floor['samples'], rb['messages']):8.1f} "
        f"{per_message(worker['samples'], rd['messages']):8.1f}")
    log("  faust/aiokafka/asyncio functions, own time per message, largest (d) - (b) first:")
    own_b, own_d = dict(floor["own_samples"]), dict(worker["own_samples"])
    library = ("(faust/", "(aiokafka/", "(mode/", "(asyncio/", "(selectors.py", "(aiohttp/")
    diffs = sorted(((per_message(own_d.get(f, 0), rd["messages"]) - per_message(own_b.get(f, 0), rb["messages"]), f)
                    for f in set(own_b) | set(own_d) if any(lib in f for lib in library)), reverse=True)
    for diff, name in diffs[:12]:
        log(f"    {diff:+7.1f} µs  {name}")
    log("  riskwatch functions in (d), inclusive share of its samples:")
    for name, share in worker["inclusive"][:10]:
        log(f"    {share:6.1%}  {name}")
    for who, text in (("floor", floor_text), ("worker", worker_text)):
        keep = ROOT / "benchmarks" / "results" / f"live_{who}_{mode}.folded.txt"
        keep.parent.mkdir(parents=True, exist_ok=True)
        keep.write_text(text)
    log(f"  stacks kept in benchmarks/results/live_{{floor,worker}}_{mode}.folded.txt "
        f"(flamegraph.pl or speedscope read them)")


# Areas of the worker's time: the first pipeline area (in this order) with a frame anywhere
# in the stack; for other stacks the area of the innermost frame (the agent's own loop
# frame sits above faust's iteration, which is faust's cost, not ours; asyncio work under
# a faust frame is faust's).
AREAS = [
    ("riskwatch pipeline: complaint text (mask, intent, sentiment)", ("(streams/complaints.py", "(streams/text/")),
    ("riskwatch pipeline: bucket close, detection, alerting, scores",
     ("_maybe_close (streams/pipeline.py", "Pipeline.flush (streams/pipeline.py", "Pipeline.tick (")),
    ("riskwatch pipeline: per event (decode, validate, dedup, count)",
     ("(streams/pipeline.py", "(riskwatch/events.py", "(streams/ingest.py", "(streams/dead_letters.py", "(streams/watermark.py")),
    ("agent body: (d) riskwatch glue (publish, stats, lag), (b) decode + count",
     ("(streams/agents.py", "(benchmarks/live_throughput.py", "(live_throughput.py")),
    ("faust + aiokafka: fetch, deliver, commit, produce", ("(faust/", "(aiokafka/", "(mode/")),
    ("asyncio event loop itself", ("(asyncio/", "(selectors.py")),
]
_OUR_CODE = ("(streams/", "(riskwatch/", "(detectors/", "(sinks/")
_IMPORTING = ("_find_and_load (", "_call_with_frames_removed (")


def summarise_folded(text: str) -> dict:
    """Own, inclusive (our code) and per-area shares from py-spy's folded stacks.

    >>> r = summarise_folded("a (faust/a.py:1);b (streams/pipeline.py:9) 3\\na (faust/a.py:1) 1")
    >>> r["samples"], r["own"][0], r["areas"][0][0]
    (4, ('b (streams/pipeline.py:9)', 0.75), 'riskwatch pipeline: per event (decode, validate, dedup, count)')
    """
    own: dict[str, int] = {}
    inclusive: dict[str, int] = {}
    areas: dict[str, int] = {}
    total = 0
    for line in text.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        frames = stack.split(";")
        if any(f.startswith(_IMPORTING) for f in frames):
            continue   # start-up imports, not per-message work
        total += n
        own[frames[-1]] = own.get(frames[-1], 0) + n
        for fn in {f.split(":")[0] + ")" for f in frames if any(c in f for c in _OUR_CODE)}:
            inclusive[fn] = inclusive.get(fn, 0) + n    # per function, once per stack
        area = "other (threads, imports)"
        for name, needles in AREAS[:3]:   # pipeline work, wherever it sits in the stack
            if any(needle in frame for frame in frames for needle in needles):
                area = name
                break
        else:   # otherwise the innermost of agent glue / faust (asyncio work they start is theirs)
            area = next((name for frame in reversed(frames) for name, needles in AREAS[3:5]
                         if any(needle in frame for needle in needles)), None) or next(
                (AREAS[5][0] for frame in frames if any(n in frame for n in AREAS[5][1])), area)
        areas[area] = areas.get(area, 0) + n
    samples, total = total, max(total, 1)

    def ranked(d: dict[str, int]) -> list[tuple[str, float]]:
        return sorted(((k, v / total) for k, v in d.items()), key=lambda kv: -kv[1])
    return {"samples": samples, "own": ranked(own), "inclusive": ranked(inclusive), "areas": ranked(areas),
            "area_samples": sorted(areas.items(), key=lambda kv: -kv[1]),
            "own_samples": sorted(own.items(), key=lambda kv: -kv[1])}


def section_memory(args, work: Path, results: dict) -> None:
    log(f"\n== memory per slice ({load()})")
    out = {}
    for n in (args.slices // 10, args.slices):
        result = work / f"mem-{n}.json"
        subprocess.run([PY, str(Path(__file__).resolve()), "--role", "memory", "--slices", str(n),
                        "--result", str(result), *(["--tracemalloc"] if args.tracemalloc else [])],
                       cwd=ROOT, check=True)
        out[n] = json.loads(result.read_text())
        m = out[n]
        traced = f"traced {m['traced_mb']:.1f} MB, " if m["traced_mb"] is not None else ""
        log(f"  {m['merchant_intent_slices']:,} merchant x intent slices ({m['slices']:,} slices in all, "
            f"{m['events']:,} events): {traced}RSS +{m['rss_mb']:.1f} MB, {m['seconds']:.0f}s")
    small, big = out[args.slices // 10], out[args.slices]
    ds = big["slices"] - small["slices"]
    per_traced = ((big["traced_mb"] - small["traced_mb"]) * 2**20 / ds
                  if big["traced_mb"] is not None else None)
    per_rss = (big["rss_mb"] - small["rss_mb"]) * 2**20 / ds
    log(f"  marginal memory per active slice: {per_rss:,.0f} B RSS"
        + (f", {per_traced:,.0f} B traced" if per_traced is not None else "")
        + f"; {big['rss_mb']:,.0f} MB RSS at {big['slices']:,} slices (all pipeline state, incl. the "
        f"dedup window and order maps of the events fed, divided by slices)")
    results["memory"] = {"runs": out, "per_slice_traced_b": per_traced, "per_slice_rss_b": per_rss}


def section_latency(args, work: Path, broker, results: dict) -> None:
    """Event produced -> alert record on the alerts topic (alert_latency.py's traffic)."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import alert_latency as al
    from riskwatch.broker import create_topics
    from streams.app import TopicNames

    prefix = f"lat-{os.urandom(2).hex()}-"
    topics = TopicNames.with_prefix(prefix)
    asyncio.run(create_topics(broker.bootstrap, topics.all, 1))
    t0 = time.time()
    history = al._history(t0, 1.1)
    asyncio.run(al._produce_lines(broker.bootstrap, topics.orders, history))
    log(f"\n== event -> alert record latency ({args.incidents} incidents, bucket {args.bucket_seconds}s, "
        f"lateness 5s; history {len(history):,} events; {load()})")
    proc, port = start_worker(work, broker.url, prefix, f"{prefix}app", extra=[
        "--bucket-seconds", str(args.bucket_seconds), "--allowed-lateness-seconds", "5",
        "--idle-source-seconds", "5"])
    try:
        deadline = time.time() + 300
        while time.time() < deadline:
            st = stats(port)
            if st and st["pipeline"].get("messages", 0) >= len(history) // 50 and st["total_lag"] == 0:
                break
            if proc.poll() is not None:
                raise SystemExit(f"latency worker exited:\n{proc.log_path.read_text()[-3000:]}")
            time.sleep(1)
        else:
            raise SystemExit("latency worker did not catch up within 300 s")
        log(f"  worker caught up after {time.time() - t0:.0f}s; live traffic with incidents")
        arrivals: list[tuple[float, dict]] = []

        async def run() -> list:
            from aiokafka import AIOKafkaConsumer

            consumer = AIOKafkaConsumer(topics.alerts, bootstrap_servers=broker.bootstrap,
                                        auto_offset_reset="latest", group_id=f"{prefix}reader")
            await consumer.start()
            stop = asyncio.Event()

            async def read() -> None:
                while not stop.is_set():
                    got = await consumer.getmany(timeout_ms=200)
                    now = time.time()
                    for records in got.values():
                        arrivals.extend((now, orjson.loads(r.value)) for r in records)

            reader = asyncio.create_task(read())
            try:
                incidents = await al._produce_live(broker.bootstrap, topics.orders, args.incidents,
                                                   args.spacing, 30, random.Random(11))
                await asyncio.sleep(args.bucket_seconds + 25)
            finally:
                stop.set()
                await reader
                await consumer.stop()
            return incidents

        incidents = asyncio.run(run())
    finally:
        stop_process(proc, 40)
    # The first firing record of each alert episode (alert_id): an incident's latency is
    # that of the first *new* alert whose scope holds it (al._covers, as alert_latency.py
    # counts Alertmanager's notifications: "one incident, one page").
    first_seen: dict[str, tuple[float, dict]] = {}
    for at, rec in arrivals:
        if rec.get("status") == "firing":
            episode = rec.get("alert_id")
            if episode not in first_seen or at < first_seen[episode][0]:
                first_seen[episode] = (at, rec.get("dimensions") or {})
    latencies, missed = [], []
    for region, carrier, intent, first in incidents:
        times = [at for at, dims in first_seen.values()
                 if at >= first and al._covers(dims, region, carrier, intent)]
        if times:
            latencies.append(min(times) - first)
        else:
            missed.append(f"{region}x{carrier}x{intent}")
    latencies.sort()
    if latencies:
        p50 = latencies[len(latencies) // 2]
        p95 = latencies[min(len(latencies) - 1, round(0.95 * (len(latencies) - 1)))]
        log(f"  latency over {len(latencies)} incidents (missed {len(missed)}): p50 {p50:.1f}s "
            f"p95 {p95:.1f}s max {latencies[-1]:.1f}s; each " + " ".join(f"{x:.1f}" for x in latencies))
        log(f"  (bucket {args.bucket_seconds}s: waiting for the bucket to end is most of it; "
            f"alert_latency.py adds Alertmanager's group_wait on top)")
        results["latency"] = {"p50": p50, "p95": p95, "n": len(latencies), "missed": missed}
    else:
        log(f"  no incident alerted (missed {missed})")
        results["latency"] = {"missed": missed}


def section_scaling(args, work: Path, broker, lines: list[bytes], results: dict) -> None:
    from riskwatch.broker import create_topics
    from streams.app import TopicNames

    log(f"\n== scaling: worker processes in one group, 4-partition topics, {args.batch}-event "
        f"messages ({load()})")
    out = {}
    for n in args.workers:
        prefix = f"sc{n}-{os.urandom(2).hex()}-"
        topics = TopicNames.with_prefix(prefix)
        asyncio.run(create_topics(broker.bootstrap, topics.all, 4))
        msgs = messages_for(lines, prefix, args.batch)
        expect = sum(lines_in(v) for _, _, v in msgs)
        app_id = f"{prefix}app"
        workers = [start_worker(work, broker.url, prefix, app_id, partitions=4) for _ in range(n)]
        try:
            r = time_workers(workers, len(msgs), expect, args.max_seconds, f"{n} workers",
                             before_start={"partitions": 16,
                                           "produce": lambda m=msgs: produce(broker.bootstrap, m, 4)})
        finally:
            for proc, _ in workers:
                proc.send_signal(signal.SIGTERM)
            for proc, _ in workers:
                stop_process(proc, 40)
        out[n] = r
        _print_row(f"{n} worker process(es)", r, expect)
    base = out[args.workers[0]]["events_per_s"]
    log("  speed-up: " + ", ".join(f"{n}: {r['events_per_s'] / base:.2f}x" for n, r in out.items())
        + f"  (2 cores shared with the broker and the other engineers' work: {load()})")
    results["scaling"] = out


def verdicts(results: dict) -> None:
    log("\n== targets (issue 7)")
    s, b = results.get("single"), results.get("batched")
    if s and "d" in s:
        for key, target, what in (("b", 0.8, "faust floor"), ("c", 5.0, "naive faust counting"),
                                  ("r", 5.0, "naive faust counting with Records")):
            pairs = [(run["d"], run[key]) for run in s["runs"] if "d" in run and key in run]
            if not pairs:
                continue
            walls = sorted(d["events_per_s"] / o["events_per_s"] for d, o in pairs)
            cpus = sorted(d["events_per_cpu_s"] / o["events_per_cpu_s"] for d, o in pairs)
            # the median; of an even number of rounds the lower middle one, not the higher
            wall, cpu = statistics.median_low(walls), statistics.median_low(cpus)
            each = (f" (runs: {', '.join(f'{w:.2f}x' for w in walls)}; met in "
                    f"{sum(w >= target for w in walls)} of {len(walls)})" if len(walls) > 1 else "")
            log(f"  one event per message: riskwatch / {what} = {wall:.2f}x wall, {cpu:.2f}x per "
                f"CPU-s{' (median of runs)' if len(walls) > 1 else ''} (target >= {target:g}x: "
                f"{'met' if wall >= target else 'MISSED'}){each}")
    if b and "d" in b and "a" in b:
        d, a = b["d"]["events_per_s"], b["a"]["events_per_s"]
        log(f"  batched: riskwatch {d:,.0f} events/s per worker process (target >= 100,000: "
            f"{'met' if d >= 100_000 else 'MISSED'}); / bare aiokafka = {d / a:.3f}x (target >= 0.2x: "
            f"{'met' if d >= 0.2 * a else 'MISSED'})")
    if s or b:
        log("\n| consumer | one event per message: events/s | batched: events/s |")
        log("|---|---:|---:|")
        for key, _role, label in (*CONSUMERS, ("d", None, WORKER_LABEL)):
            cells = [f"{r[key]['events_per_s']:,.0f}" if r and key in r else "-" for r in (s, b)]
            log(f"| {label} | {cells[0]} | {cells[1]} |")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="small run (a few minutes)")
    ap.add_argument("--only", action="append", choices=["throughput", "memory", "latency", "scaling"],
                    help="run only these sections (repeatable; default all)")
    ap.add_argument("--modes", default="single,batched",
                    help="throughput section: comma-separated message modes, single and/or batched "
                         "(default %(default)s; --modes single is the one-event-per-message target alone)")
    ap.add_argument("--consumers", default="abcrd",
                    help="throughput section: which of the consumers a, b, c, r, d to run "
                         "(default %(default)s)")
    ap.add_argument("--single-events", type=int, help="events for one-per-message runs")
    ap.add_argument("--batched-events", type=int, help="events for batched runs")
    ap.add_argument("--batch", type=int, default=50, help="events per message when batched")
    ap.add_argument("--world", choices=sorted(WORLDS), default="thin",
                    help="the simulated world: thin (50k orders a day, 2,000 merchants; the "
                         "default) or platform (1M orders a day, 20,000 merchants, as "
                         "replay_throughput.py's platform day)")
    ap.add_argument("--repeat", type=int, default=1,
                    help="throughput section: run the consumers this many times in turn; the "
                         "ratios are taken per run (neighbouring in time) and their median "
                         "decides, the lower middle one of an even number (default %(default)s)")
    ap.add_argument("--max-seconds", type=float, help="cap on one consumer's measured time")
    ap.add_argument("--slices", type=int, help="merchant x intent slices for the memory section")
    ap.add_argument("--tracemalloc", action="store_true", help="memory section: also trace the heap (slow)")
    ap.add_argument("--incidents", type=int, help="incidents for the latency section")
    ap.add_argument("--spacing", type=float, default=45.0, help="seconds between incidents")
    ap.add_argument("--bucket-seconds", type=int, default=60, help="bucket size for the latency run")
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4])
    ap.add_argument("--profile", action="store_true", help="throughput section: also sample (b) and (d) with py-spy; print CPU per message "
                         "by area side by side")
    # internal: one consumer in its own process
    ap.add_argument("--role", choices=["bare", "floor", "count", "count-records", "memory"],
                    help=argparse.SUPPRESS)
    ap.add_argument("--bootstrap", help=argparse.SUPPRESS)
    ap.add_argument("--topics", help=argparse.SUPPRESS)
    ap.add_argument("--expect", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--result", help=argparse.SUPPRESS)
    ap.add_argument("--app-id", help=argparse.SUPPRESS)
    ap.add_argument("--datadir", help=argparse.SUPPRESS)
    ap.add_argument("--batched", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.role == "bare":
        role_bare(args)
        return 0
    if args.role in ("floor", "count", "count-records"):
        role_faust(args)
        return 0
    if args.role == "memory":
        role_memory(args)
        return 0
    q = args.quick
    args.modes = set(args.modes.split(","))
    if not args.modes <= {"single", "batched"} or not set(args.consumers) <= set("abcrd"):
        ap.error("--modes takes single and/or batched; --consumers letters among abcrd")
    if args.repeat < 1:
        ap.error(f"--repeat must be at least 1 (got {args.repeat})")
    args.single_events = args.single_events or (10_000 if q else 60_000)
    args.batched_events = args.batched_events or (50_000 if q else 300_000)
    args.max_seconds = args.max_seconds or (20.0 if q else 60.0)
    args.slices = args.slices or (10_000 if q else 100_000)
    args.incidents = args.incidents or (2 if q else 6)
    sections = args.only or ["throughput", "memory", "latency", "scaling"]
    from riskwatch.broker import EmbeddedBroker

    log(f"live throughput benchmark: python {sys.version.split()[0]}, {load()}")
    from replay_throughput import cpu_model, host_reference, interpreter   # same directory
    log(f"host: {cpu_model()}, {interpreter()}; reference loop {host_reference():,.2f} M iterations per CPU-second "
        "(figures compare only between hosts with the same reference)")
    results: dict = {}
    work = Path(tempfile.mkdtemp(prefix="live-bench-"))
    try:
        lines = simulated_lines(max(args.single_events, args.batched_events), world=args.world)
        log(f"world: {args.world} ({WORLDS[args.world][0]:,} orders a day, "
            f"{WORLDS[args.world][1]:,} merchants)")
        if "memory" in sections:
            section_memory(args, work, results)
        with EmbeddedBroker(data_dir=work / "broker") as broker:
            if "throughput" in sections:
                section_throughput(args, work, broker, {"single": lines[:args.single_events],
                                                        "batched": lines[:args.batched_events]}, results)
            if "scaling" in sections:
                section_scaling(args, work, broker, lines[:args.batched_events], results)
            if "latency" in sections:
                section_latency(args, work, broker, results)
        verdicts(results)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
