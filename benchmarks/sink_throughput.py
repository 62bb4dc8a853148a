"""Rows per second of the sinks, inserting aggregate rows (the widest high-volume kind).

Usage::

    .venv/bin/python benchmarks/sink_throughput.py [--rows 200000] [--batch-size 10000]
                                                   [--repeat 5] [--compare-inserts]

The rows are aggregate rows shaped and distributed as the pipeline's (see
:func:`aggregate_rows`): ~10,000 slices per 5-minute bucket, most recurring bucket after
bucket, ~12,500 distinct slices per 100k rows (a simulator week's aggregates: 3.2-3.7k, so
the data is less repetitive than the pipeline's own; the header prints the figure).

Each sink gets the same rows through the public contract (``add`` with a token per
source range of ``batch-size`` rows, ``flush`` after each range, then ``close``), timed
end to end: encoding, writing and, for chDB, parsing, sorting and compressing the parts.
Every run writes to a fresh destination (identical tokens would be deduplicated), which
is checked and dropped afterwards so that its background merges do not slow the next run.
chDB rates vary a lot between runs on a busy 2-core machine (its parsing and background
merges compete for the cores with everything else), hence the median, the range, and
rows per CPU-second next to rows per second.

``--compare-inserts`` also times other ways of getting the same batches into chDB, which
is how ChdbSink's insert path was chosen.

``--clickhouse-server`` starts the machine's ``clickhouse-server`` (Debian 18.16 here) on a
free loopback port and times :class:`~sinks.clickhouse.server_sink.ClickHouseServerSink`
(clickhouse-driver, columnar inserts of ``--server-batch-size`` rows) against
``clickhouse-client`` inserting the same rows and columns from a TabSeparated file on
stdin: records through ``add()`` (a dict per row); the same dicts a source range at a
time through ``Sink.add_records`` (transposed into a column block); the same rows
as the pipeline keeps its aggregates, columns (``streams.aggregate_rows``, built untimed,
one block per source range), through ``add_columns()``, which is how the worker's sink
feeder and replay hand them to a columnar sink (``Sink.add_records``); and those blocks once more
with pipelined chunks (``chunk_rows=--chunk-rows``: each batch inserted as INSERTs of that
many rows, the sink's writer thread inserting one while the caller builds the next).
Every server sink first writes the bucket before the timed rows, untimed, as a worker's
long-lived sink has (its per-slice encodings, ``sinks/clickhouse/repeat_cache.py``, are
then those a running worker has); ~1.3 % of the timed rows are of a slice new to the sink
(printed; a simulator week: 1.0 %).  They
alternate (rows, columns, chunked, client, rows, …) so that other load hits them alike,
and the ratios are the medians of the per-run ratios.  Besides wall rates it prints CPU per row
of the inserting process and of the server (both share the machine's cores), where one
run's wall time goes (``add()``, building columns, the driver's encoding and sending,
waiting for the server), and the CPU of building and encoding per DDL profile without a
server (the modern profile cannot be inserted here).  ``--only-server`` skips JSONL and
chDB.
"""

from __future__ import annotations

import argparse
import functools
import os
import pathlib
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

from sinks import ChdbSink, JsonlSink
from sinks.clickhouse.chdb_sink import _INSERT_SETTINGS
from sinks.jsonl import encode_array
from streams.aggregate_rows import slice_name

REGIONS = ["广东", "浙江", "江苏", "上海", "北京", "四川", "湖北", "山东", "河南", "河北",
           "湖南", "安徽", "福建", "辽宁", "陕西", "重庆", "天津", "江西", "广西", "云南",
           "山西", "吉林", "黑龙江", "贵州", "内蒙古", "新疆", "甘肃", "海南", "宁夏", "青海",
           "西藏"]
CARRIERS = ["中通", "圆通", "申通", "韵达", "顺丰", "京东", "极兔", "邮政"]
CATEGORIES = ["服装", "数码", "家电", "美妆", "食品", "母婴", "家居", "运动", "图书", "生鲜",
              "汽配", "宠物"]
INTENTS = ["delivery_delay", "pickup_urge", "lost_parcel", "damaged", "wrong_delivery",
           "fake_shipment", "quality", "weight_mismatch", "duplicate_charge", "refund",
           "service_attitude", "customs", "other"]
#: Slices of the benchmark's platform (the pipeline's slice kinds, default settings).
MERCHANTS, MERCHANT_INTENTS = 8_000, 3_700
#: Share of its slices a bucket has rows for (a slice without orders or complaints in a
#: bucket has no row): consecutive buckets share most slices, some come and go.
ACTIVE_SHARE = 0.8

Rows = list[dict[str, Any]]


@functools.cache
def slice_population() -> tuple[dict[str, str], ...]:
    """The dimensions of every slice, kinds and order as the pipeline's default settings.

    ~12.5k slices: every region, carrier, category, intent, region x carrier, region x
    intent, carrier x intent, 8,000 merchants and 3,700 merchant x intent pairs; 64 % with
    one dimension, 36 % with two (a simulator week: 63 % / 36 %).
    """
    dims: list[dict[str, str]] = [{}]  # built once: a slice's values are the same objects
    # in every bucket, as the pipeline's come from its slice keys
    dims += [{"region": r} for r in REGIONS] + [{"carrier": c} for c in CARRIERS]
    dims += [{"category": c} for c in CATEGORIES] + [{"intent": i} for i in INTENTS]
    dims += [{"merchant_id": f"m{m:05d}"} for m in range(MERCHANTS)]
    dims += [{"region": r, "carrier": c} for r in REGIONS for c in CARRIERS]
    dims += [{"region": r, "intent": i} for r in REGIONS for i in INTENTS]
    dims += [{"carrier": c, "intent": i} for c in CARRIERS for i in INTENTS]
    dims += [{"merchant_id": f"m{m * 7 % MERCHANTS:05d}", "intent": INTENTS[m % 13]}
             for m in range(MERCHANT_INTENTS)]
    return tuple(dims)


def aggregate_rows(n: int, seed: int = 7, *, first_bucket: int = 0,
                   buckets: int | None = None) -> Rows:
    """``n`` aggregate records shaped as the pipeline's (``Pipeline._aggregate_row``).

    Bucket after bucket (5 minutes each), every slice of :func:`slice_population` has a
    row with probability ``ACTIVE_SHARE``: ~10,000 rows per bucket, the same slices
    recurring with some churn.  That gives ~12,500 distinct slices per 100k rows, ~3.5x
    more than a simulator week's aggregates (3.2-3.7k per 100k rows: 570k rows, 313 per
    bucket, 5,937 slices, 99 % of the rows of a slice seen before; `riskwatch replay
    --aggregates-out`), so no cache is flattered by the data.  As in that week, ~9.5 % of
    the rows have complaints (then 1-2 intents in ``intents``, else ``{}``) and ~90 % have
    no ``expected`` yet.  Each row is a new dict with new maps, as the pipeline makes them.
    Buckets are numbered from ``first_bucket`` (0 = 2026-11-02 00:00); at most ``buckets``.
    """
    import random

    rng = random.Random(seed)
    rows: Rows = []
    bucket = first_bucket
    while len(rows) < n and (buckets is None or bucket < first_bucket + buckets):
        day, minute = 2 + bucket // 288, (bucket % 288) * 5
        start = f"2026-11-{day:02d}T{minute // 60:02d}:{minute % 60:02d}:00+08:00"
        minute += 5
        end = (f"2026-11-{day + minute // 1440:02d}T{minute // 60 % 24:02d}:"
               f"{minute % 60:02d}:00+08:00")
        bucket += 1
        for dims in slice_population():  # each slice's name is one string, as the
            # pipeline's (streams.aggregate_rows.slice_name); its dimensions a new dict
            name = slice_name(tuple(dims), tuple(dims.values()))
            if rng.random() >= ACTIVE_SHARE:
                continue
            complaints = 0 if rng.random() >= 0.095 else rng.randint(1, 3)
            intents = {} if not complaints else {
                rng.choice(INTENTS): complaints} if complaints < 3 else {
                "delivery_delay": 2, rng.choice(INTENTS[1:]): 1}
            rows.append({
                "bucket_start": start, "bucket_end": end, "slice": name,
                "dimensions": dict(dims), "orders": rng.randint(0, 60),
                "complaints": complaints, "exposure": round(rng.uniform(0.01, 3.0), 4),
                "expected": None if rng.random() < 0.9 else round(rng.uniform(0, 2), 4),
                "score": 0.0 if not complaints else round(rng.random(), 6),
                "intents": intents, "sensitive": 0,
            })
            if len(rows) == n:
                break
    return rows


def earlier_bucket() -> Rows:
    """The bucket before :func:`aggregate_rows`' first (other seed): what a running worker's
    sink wrote last, written untimed by every sink of the benchmark before its timed rows."""
    return aggregate_rows(len(slice_population()), seed=6, first_bucket=-1, buckets=1)


def first_sightings(rows: Rows) -> float:
    """Share of ``rows`` whose slice is neither in :func:`earlier_bucket` nor in a row before."""
    seen = {r["slice"] for r in earlier_bucket()}
    new = 0
    for r in rows:
        new += r["slice"] not in seen
        seen.add(r["slice"])
    return new / len(rows)


def distinct_slices_per_100k(rows: Rows) -> list[int]:
    """Distinct ``slice`` values in each full 100k-row stretch (one if fewer rows)."""
    step = min(100_000, len(rows))
    return [len({r["slice"] for r in rows[i:i + step]})
            for i in range(0, len(rows) - step + 1, step)]


def measure(label: str, rows: int, repeat: int, prepare: Callable[[int], Any],
            run: Callable[[Any], None], finish: Callable[[Any], None]) -> None:
    """Time ``run(prepare(n))`` ``repeat`` times (``finish`` checks and cleans, untimed).

    Prints rows per wall-clock second and rows per CPU second of this process (all its
    threads, chDB's included): the second figure barely moves when other programs load
    the machine, the first one does.
    """
    wall, cpu = [], []
    for n in range(repeat):
        target = prepare(n)
        started, cpu_started = time.perf_counter(), time.process_time()
        run(target)
        wall.append(rows / (time.perf_counter() - started))
        cpu.append(rows / (time.process_time() - cpu_started))
        finish(target)
    print(f"{label:<52} {statistics.median(wall):>9,.0f} rows/s "
          f"({min(wall):,.0f}-{max(wall):,.0f}) {statistics.median(cpu):>9,.0f} rows/CPU-s",
          flush=True)


def column_blocks(rows: Rows, batch_size: int) -> list[tuple[str, dict[str, list[Any]]]]:
    """``(token, block)`` per source range of ``batch_size`` rows: the rows as the
    pipeline keeps its aggregates (``streams.aggregate_rows.AggregateRows``), columns."""
    from streams.aggregate_rows import AggregateRows

    return [(f"aggregates:0:{start}-{start + batch_size - 1}",
             AggregateRows(rows[start:start + batch_size]).columns)
            for start in range(0, len(rows), batch_size)]


def feed_columns(sink: Any, blocks: list[tuple[str, dict[str, list[Any]]]]) -> None:
    """The blocks through ``add_columns``: what ``Sink.add_records`` does with the
    pipeline's aggregates for a columnar sink (the worker's sink feeder, replay)."""
    with sink:
        for token, block in blocks:
            sink.add_columns("aggregates", block, token=token)
            sink.flush()


def feed(sink: Any, rows: Rows, batch_size: int) -> None:
    with sink:
        for start in range(0, len(rows), batch_size):
            token = f"aggregates:0:{start}-{start + batch_size - 1}"
            for row in rows[start:start + batch_size]:
                sink.add("aggregates", row, token=token)
            sink.flush()  # once per source range, as the stream does before acking


def feed_records(sink: Any, rows: Rows, batch_size: int) -> None:
    """As :func:`feed`, but each source range's records handed over at once with
    ``add_records`` (a columnar sink gets them transposed into one column block)."""
    with sink:
        for start in range(0, len(rows), batch_size):
            sink.add_records("aggregates", rows[start:start + batch_size],
                        token=f"aggregates:0:{start}-{start + batch_size - 1}")
            sink.flush()


def chdb_alternatives(session: Any, rows: Rows, batch_size: int) -> dict[str, Callable]:
    """Other insert paths, each ``f(table)`` writing ``rows`` in batches into ``table``."""
    import orjson
    import pyarrow as pa

    batches = [rows[i:i + batch_size] for i in range(0, len(rows), batch_size)]
    settings = _INSERT_SETTINGS  # the same as ChdbSink's, so only the path differs
    arrow_schema = pa.schema([
        ("bucket_start", pa.string()), ("bucket_end", pa.string()), ("slice", pa.string()),
        ("dimensions", pa.map_(pa.string(), pa.string())), ("orders", pa.uint32()),
        ("complaints", pa.uint32()), ("exposure", pa.float64()), ("expected", pa.float64()),
        ("score", pa.float64()), ("intents", pa.map_(pa.string(), pa.uint32()))])

    def inline(table: str) -> None:
        for n, batch in enumerate(batches):
            session.query(f"INSERT INTO {table} SETTINGS {settings}, insert_deduplication_token"
                          f" = '{n}' FORMAT JSONEachRow " + encode_array(batch).decode())

    def lines(table: str) -> None:
        for n, batch in enumerate(batches):
            payload = b"\n".join([orjson.dumps(r) for r in batch])
            with session.send_insert(f"INSERT INTO {table} SETTINGS {settings}, "
                                     f"insert_deduplication_token = '{n}'",
                                     "JSONEachRow") as inserter:
                inserter.append(payload)
                inserter.finish()

    def arrow(table: str) -> None:
        for n, batch in enumerate(batches):
            tbl = pa.Table.from_pylist(   # read by name: chDB's Python(tbl) below
                [{**r, "dimensions": list(r["dimensions"].items()),
                  "intents": list(r["intents"].items())} for r in batch], schema=arrow_schema)
            session.query(
                f"INSERT INTO {table} (bucket_start, bucket_end, slice, dimensions, region, "
                "merchant_id, carrier, orders, complaints, exposure, expected, score, intents)"
                f" SETTINGS {settings}, insert_deduplication_token = '{n}' "
                "SELECT parseDateTime64BestEffort(bucket_start, 3), "
                "parseDateTime64BestEffort(bucket_end, 3), slice, dimensions, "
                "dimensions['region'], dimensions['merchant_id'], dimensions['carrier'], "
                "orders, complaints, exposure, expected, score, intents FROM Python(tbl)")
            del tbl   # the batch's memory; also the use pyflakes can see (it reads no noqa)

    return {
        "JSON array inlined in the query string": inline,
        "send_insert, object per line (orjson per row)": lines,
        "Arrow table through Python() (built in Python)": arrow,
    }


#: What the server sink sends of an aggregate row (the rest are the table's DEFAULTs, which
#: the server computes for both inserts).
SENT_COLUMNS = ("slice", "bucket_start", "bucket_end", "dimensions", "orders", "complaints",
                "exposure", "expected", "score", "intents")


def tsv(rows: Rows) -> bytes:
    """The rows as TabSeparated for the legacy (18.16) table, columns as ``SENT_COLUMNS``."""
    import orjson

    def when(text: str) -> str:  # every benchmark time is +08:00, the server's zone
        return text[:19].replace("T", " ")

    out = []
    for r in rows:
        out.append("\t".join((
            r["slice"], when(r["bucket_start"]), when(r["bucket_end"]),
            orjson.dumps(r["dimensions"]).decode(), str(r["orders"]), str(r["complaints"]),
            repr(r["exposure"]), "\\N" if r["expected"] is None else repr(r["expected"]),
            repr(r["score"]), orjson.dumps(r["intents"]).decode())))
    return ("\n".join(out) + "\n").encode()


def _cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` so far (all its threads)."""
    fields = pathlib.Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _children_cpu() -> float:
    import resource

    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


class _Split:
    """Where one insert's wall time goes: timers around the sink's column building and
    around the driver's wait for the server's answer (the rest of ``execute`` is the
    driver encoding and sending the block)."""

    def __init__(self, sink: Any) -> None:
        from sinks.clickhouse import server_sink

        self.build = self.execute = self.wait = 0.0
        self._patches: list[tuple[Any, str, Any]] = []
        self._wrap(server_sink._InsertPlan, "build", "build")
        self._wrap(server_sink._InsertPlan, "build_columns", "build")
        sink.setup()
        self._wrap(sink._client, "execute", "execute")
        self._wrap(sink._client.connection, "receive_packet", "wait")

    def _wrap(self, owner: Any, name: str, slot: str) -> None:
        original = getattr(owner, name)

        def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                setattr(self, slot, getattr(self, slot) + time.perf_counter() - started)

        self._patches.append((owner, name, original))
        setattr(owner, name, timed)

    def restore(self) -> None:
        for owner, name, original in reversed(self._patches):
            setattr(owner, name, original)


def encoding_cost(rows: Rows, batch_size: int, repeat: int) -> None:
    """This process's CPU per row to build the columns and encode the blocks, per profile.

    No server: the driver encodes into memory (``encode_block``), so the modern profile
    (Map, LowCardinality, DateTime64), which no server here speaks, is measured too; for
    records (``add``) and for the same rows as column blocks (``add_columns``); the plan
    has built the bucket before first (untimed), and the figures are medians of runs
    over the same rows (a slice's cached encodings then come from the run before).
    """
    from sinks.clickhouse.schema import TABLES
    from sinks.clickhouse.server_sink import _InsertPlan, encode_block

    batches = [rows[i:i + batch_size] for i in range(0, len(rows), batch_size)]
    blocks = [block for _token, block in column_blocks(rows, batch_size)]
    for profile in ("legacy", "modern"):
        plan = _InsertPlan.of(TABLES["aggregates"], "bench", profile)
        plan.build(earlier_bucket())  # as the server runs: the bucket before, untimed
        for label, inputs, build in (
                ("records", batches, plan.build),
                ("column blocks", blocks, lambda b: plan.build_columns(b, len(b["slice"])))):
            spent_build, spent_encode = [], []
            for _ in range(repeat):
                build_s = encode_s = 0.0
                for batch in inputs:
                    started = time.process_time()
                    _sql, data = build(batch)
                    build_s += time.process_time() - started
                    started = time.process_time()
                    encode_block(plan.types[:len(data)], data)
                    encode_s += time.process_time() - started
                spent_build.append(build_s / len(rows) * 1e6)
                spent_encode.append(encode_s / len(rows) * 1e6)
            print(f"  {profile:<7} profile, {label:<13} CPU per row: building columns "
                  f"{statistics.median(spent_build):.2f} us, driver encoding "
                  f"{statistics.median(spent_encode):.2f} us (median; no server)", flush=True)


def server_vs_client(rows: Rows, batch_size: int, repeat: int, chunk_rows: int) -> None:
    """ClickHouseServerSink vs clickhouse-client on the same server, same rows.

    The two alternate (sink, client, sink, client, …) so that load from other programs
    hits both alike; the ratio is taken per pair.  CPU seconds count the inserting process
    (this one, or the clickhouse-client child) plus the server's.
    """
    import shutil
    import subprocess

    from sinks.clickhouse.local_server import LocalClickHouseServer
    from sinks.clickhouse.server_sink import ClickHouseServerSink

    client_bin = shutil.which("clickhouse-client")
    n = len(rows)
    with tempfile.TemporaryDirectory() as tmp, LocalClickHouseServer(tmp) as server:
        admin = ClickHouseServerSink(server.url, database="bench")
        admin.setup()
        print(f"clickhouse-server {'.'.join(map(str, admin.server_version))} on 127.0.0.1:"
              f"{server.tcp_port} (profile {admin.profile}), {batch_size:,} rows per insert "
              f"(one token and flush() per {batch_size:,} source rows); every sink first "
              f"writes the bucket before, untimed: {first_sightings(rows):.1%} of the timed "
              "rows are of a slice not in it (a simulator week: 1.0 %)")
        server_pid = server.proc.pid
        data = pathlib.Path(tmp) / "rows.tsv"
        data.write_bytes(tsv(rows))
        columns = ", ".join(SENT_COLUMNS)

        earlier = earlier_bucket()

        def new_sink(k: int, chunks: int | None = None, *, warm: bool = True
                     ) -> ClickHouseServerSink:
            sink = ClickHouseServerSink(server.url, database=f"srv{k}", batch_size=batch_size,
                                        chunk_rows=chunks)
            sink.setup()  # creating the tables is not part of the insert rate
            if warm:  # the bucket before, as a running worker's sink has written it
                for row in earlier:
                    sink.add("aggregates", row, token="earlier:0")
                sink.flush()
            return sink

        regions = len({r["dimensions"].get("region", "") for r in rows})  # "" = no region

        def check_and_drop(database: str, warm: bool = True) -> None:
            [row] = admin.query(f"SELECT count() AS n, uniqExact(region) AS regions "
                                f"FROM {database}.aggregates WHERE bucket_start >= "
                                f"toDateTime('2026-11-02 00:00:00')")
            assert row == {"n": n, "regions": regions}, row
            [row] = admin.query(f"SELECT count() AS n FROM {database}.aggregates")
            assert row["n"] == n + warm * len(earlier), row
            admin.query(f"DROP DATABASE {database}")

        def run_sink(k: int, how: Callable[..., None] = feed) -> tuple[float, float, float]:
            sink = new_sink(k)
            cpu0, srv0 = time.process_time(), _cpu_seconds(server_pid)
            started = time.perf_counter()
            how(sink, rows, batch_size)
            wall = time.perf_counter() - started
            cpu, srv = time.process_time() - cpu0, _cpu_seconds(server_pid) - srv0
            check_and_drop(sink.database)
            return n / wall, cpu / n * 1e6, srv / n * 1e6

        blocks = column_blocks(rows, batch_size)

        def run_columns(k: int, chunks: int | None = None) -> tuple[float, float, float]:
            sink = new_sink(200 + k, chunks)
            cpu0, srv0 = time.process_time(), _cpu_seconds(server_pid)
            started = time.perf_counter()
            feed_columns(sink, blocks)
            wall = time.perf_counter() - started
            cpu, srv = time.process_time() - cpu0, _cpu_seconds(server_pid) - srv0
            check_and_drop(sink.database)
            return n / wall, cpu / n * 1e6, srv / n * 1e6

        def run_client(k: int) -> tuple[float, float, float]:
            new_sink(100 + k, warm=False).close()  # the same DDL through the sink's migration
            cpu0, srv0 = _children_cpu(), _cpu_seconds(server_pid)
            started = time.perf_counter()
            with open(data, "rb") as stdin:
                subprocess.run([client_bin, "--host", "127.0.0.1", "--port", str(server.tcp_port),
                                "--max_insert_block_size", str(batch_size), "--query",
                                f"INSERT INTO srv{100 + k}.aggregates ({columns}) "
                                "FORMAT TabSeparated"], stdin=stdin, check=True)
            wall = time.perf_counter() - started
            cpu, srv = _children_cpu() - cpu0, _cpu_seconds(server_pid) - srv0
            check_and_drop(f"srv{100 + k}", warm=False)
            return n / wall, cpu / n * 1e6, srv / n * 1e6

        run_sink(999)  # warm-up: imports, the server's first parts, this process's memory
        run_columns(999)
        results: dict[str, list[tuple[float, float, float]]] = {
            "sink": [], "batched": [], "columns": [], "chunked": [], "client": []}
        for k in range(repeat):
            results["sink"].append(run_sink(k))
            results["batched"].append(run_sink(500 + k, feed_records))
            results["columns"].append(run_columns(k))
            results["chunked"].append(run_columns(300 + k, chunk_rows))
            if client_bin is not None:
                results["client"].append(run_client(k))

        def line(label: str, figures: list[tuple[float, float, float]]) -> None:
            wall = [w for w, _, _ in figures]
            cpu = statistics.median(c for _, c, _ in figures)
            srv = statistics.median(s for _, _, s in figures)
            print(f"{label:<52} {statistics.median(wall):>9,.0f} rows/s "
                  f"({min(wall):,.0f}-{max(wall):,.0f}) {1e6 / (cpu + srv):>9,.0f} rows/CPU-s"
                  f" (CPU per row: inserter {cpu:.2f} us + server {srv:.2f} us)", flush=True)

        line("ClickHouseServerSink, records (add)", results["sink"])
        line("  records per kind (add_records of dicts)", results["batched"])
        line("ClickHouseServerSink, column blocks (the pipeline's)", results["columns"])
        line(f"  the same, pipelined chunks (chunk_rows={chunk_rows:,})", results["chunked"])
        if client_bin is None:
            print("clickhouse-client not installed: no comparison (make test-deps installs it)")
        else:
            line("clickhouse-client, TabSeparated on stdin", results["client"])
            for label, key in (("records", "sink"), ("add_records", "batched"),
                               ("column blocks", "columns"),
                               ("column blocks, pipelined chunks", "chunked")):
                ratios = [s[0] / c[0] for s, c in zip(results[key], results["client"])]
                print(f"server sink ({label}) / clickhouse-client = "
                      f"{statistics.median(ratios):.2f}x (per run {min(ratios):.2f}-"
                      f"{max(ratios):.2f}; targets: >= 300,000 rows/s and >= 0.5x)")

        print(f"(load average {os.getloadavg()[0]:.2f} at the end)")
        for label, run in (("records", lambda s: feed(s, rows, batch_size)),
                           ("add_records", lambda s: feed_records(s, rows, batch_size)),
                           ("column blocks", lambda s: feed_columns(s, blocks))):
            sink = new_sink(400)  # the bucket before written, untimed
            split = _Split(sink)
            started = time.perf_counter()
            run(sink)
            total = time.perf_counter() - started
            split.restore()
            check_and_drop(sink.database)
            parts = {"handing over (add, add_records, add_columns) and batching (sinks.base)":
                     total - split.build - split.execute,
                     "building columns (_InsertPlan.build)": split.build,
                     "driver: encoding and sending blocks": split.execute - split.wait,
                     "waiting for the server's answer": split.wait}
            print(f"where one run's time goes, {label}: " + "; ".join(
                f"{part} {seconds / n * 1e6:.2f} us/row" for part, seconds in parts.items()))
        # Why pipelined chunks (one INSERT each) cost the server more: every INSERT writes
        # a part, a file or two per column, whatever its size.
        sink = ClickHouseServerSink(server.url, database="part_cost")
        sink.setup()
        srv0 = _cpu_seconds(server_pid)
        for k in range(50):
            for row in rows[:10]:
                sink.add("aggregates", row, token=f"part:{k}")
            sink.flush()
        print(f"server CPU per INSERT of 10 aggregate rows (one part each): "
              f"{(_cpu_seconds(server_pid) - srv0) / 50 * 1e3:.1f} ms (mean of 50), i.e. {(_cpu_seconds(server_pid) - srv0) / 50 / chunk_rows * 1e6:.2f}"
              f" us per row at chunk_rows={chunk_rows:,}")
        sink.close()
        admin.query("DROP DATABASE part_cost")
        admin.close()


class _EncodingClient:
    """Stands in for the driver's client: encodes each block as the driver would
    (``encode_block``) and sends nothing (for :func:`sink_instructions`)."""

    def __init__(self, sink: Any) -> None:
        from sinks.clickhouse.server_sink import encode_block

        self.sink, self.encode = sink, encode_block

    def execute(self, sql: str, data: list[list[Any]], columnar: bool, settings: dict) -> None:
        self.encode(self.sink._plans["aggregates"].types[:len(data)], data)

    def disconnect(self) -> None:
        pass


def _sink_stage(stage: str, rows: Rows, batch_size: int) -> None:
    """One stage of :func:`sink_instructions`, run in a child under valgrind."""
    from sinks.clickhouse.server_sink import ClickHouseServerSink

    kind, _, cache = stage.partition(":")
    options = {"repeat_cache_keys": int(cache)} if cache else {}
    sink = ClickHouseServerSink("clickhouse://127.0.0.1/x", profile="legacy",
                                batch_size=batch_size, **options)
    sink._client = _EncodingClient(sink)
    for row in earlier_bucket():
        sink.add("aggregates", row, token="earlier:0")
    sink.flush()
    blocks = column_blocks(rows, batch_size)
    if kind == "records":
        feed(sink, rows, batch_size)
    elif kind == "blocks":
        feed_columns(sink, blocks)


def sink_instructions(n: int, batch_size: int) -> None:
    """Instructions the inserting process executes per aggregate row (legacy profile, the
    driver's encoding included, no socket), counted by valgrind: unlike times, the count
    does not move with the machine's load.  Each stage runs in a child process with the
    same hash seed (dict and set layouts, hence counts, depend on it); a child that only
    prepares the rows is subtracted."""
    import re
    import shutil
    import subprocess
    from concurrent.futures import ThreadPoolExecutor

    if shutil.which("valgrind") is None:
        print("valgrind not installed: no instruction counts (apt-get install valgrind)")
        return
    stages = ["none", "records", "blocks", "records:0", "blocks:0"]

    def count(stage: str) -> int:
        done = subprocess.run(
            ["valgrind", "--tool=cachegrind", "--cache-sim=no",
             "--cachegrind-out-file=/dev/null", sys.executable, __file__, "--rows", str(n),
             "--server-batch-size", str(batch_size), "--sink-stage", stage],
            capture_output=True, text=True, check=True,
            env={**os.environ, "PYTHONHASHSEED": "0"})
        return int(re.search(r"I\s+refs:\s+([\d,]+)", done.stderr)[1].replace(",", ""))

    with ThreadPoolExecutor(2) as pool:  # two at a time: counts do not depend on load
        counts = dict(zip(stages, pool.map(count, stages)))
    for stage in stages[1:]:
        kind, _, cache = stage.partition(":")
        print(f"  instructions per row, {kind:<7} (valgrind), slice encodings "
              f"{'not kept' if cache == '0' else 'kept'}: "
              f"{(counts[stage] - counts['none']) / n:,.0f}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--batch-size", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--compare-inserts", action="store_true")
    parser.add_argument("--clickhouse-server", action="store_true",
                        help="also time the server sink vs clickhouse-client (starts a server)")
    parser.add_argument("--server-batch-size", type=int, default=50_000)
    parser.add_argument("--chunk-rows", type=int, default=10_000,
                        help="chunk_rows of the pipelined server sink run (rows per INSERT)")
    parser.add_argument("--only-server", action="store_true", help="skip JSONL and chDB")
    parser.add_argument("--instructions", action="store_true",
                        help="only count the server sink's instructions per row (valgrind; "
                             "load-independent, ~5 minutes)")
    parser.add_argument("--sink-stage", help=argparse.SUPPRESS)  # a child of --instructions
    args = parser.parse_args()
    rows, batch_size, repeat = aggregate_rows(args.rows), args.batch_size, args.repeat
    if args.sink_stage:
        _sink_stage(args.sink_stage, rows, args.server_batch_size)
        return
    if args.instructions:
        print(f"{args.rows:,} aggregate rows, {args.server_batch_size:,} per insert")
        sink_instructions(args.rows, args.server_batch_size)
        return
    distinct = ", ".join(f"{d:,}" for d in distinct_slices_per_100k(rows))
    print(f"{args.rows:,} aggregate rows ({distinct} distinct slices per 100k rows), "
          f"flushed every {batch_size:,} rows, {repeat} runs "
          f"each (median, range); {os.cpu_count()} CPUs, load average "
          f"{os.getloadavg()[0]:.2f} at start")

    if args.clickhouse_server or args.only_server:
        server_vs_client(rows, args.server_batch_size, repeat, args.chunk_rows)
        encoding_cost(rows, args.server_batch_size, repeat)
    if args.only_server:
        return
    with tempfile.TemporaryDirectory() as tmp:
        out = pathlib.Path(tmp) / "aggregates.jsonl"

        def check_jsonl(_: Any) -> None:
            assert out.read_bytes().count(b"\n") == len(rows)

        measure("JsonlSink", len(rows), repeat,
                lambda n: JsonlSink({"aggregates": out}, mode="w", batch_size=batch_size),
                lambda sink: feed(sink, rows, batch_size), check_jsonl)

        path = str(pathlib.Path(tmp) / "chdb")
        # Holding one sink open keeps the chDB session (and its tables) between runs.
        with ChdbSink(path, database="bench") as admin:

            def new_sink(n: int) -> ChdbSink:
                sink = ChdbSink(path, database=f"bench{n}", batch_size=batch_size)
                sink.setup()  # creating the tables is not part of the insert rate
                return sink

            def drop(database: str, table: str = "aggregates") -> None:
                [row] = admin.query(f"SELECT count() AS n FROM {database}.{table} FINAL")
                assert row["n"] == len(rows), row
                admin.query(f"DROP DATABASE {database} SYNC")

            measure("ChdbSink (send_insert, JSON array per batch)", len(rows), repeat,
                    new_sink, lambda sink: feed(sink, rows, batch_size),
                    lambda sink: drop(sink.database))

            if args.compare_inserts:
                print("other ways into chDB (same batches, same table schema):")
                session = admin._shared.session
                ddl = admin.query("SHOW CREATE TABLE bench.aggregates")[0]["statement"]
                for label, method in chdb_alternatives(session, rows, batch_size).items():

                    def new_table(n: int) -> str:
                        admin.query(f"CREATE DATABASE IF NOT EXISTS cmp{n}")
                        admin.query(ddl.replace("bench.aggregates", f"cmp{n}.aggregates", 1))
                        return f"cmp{n}"

                    measure(f"  {label}", len(rows), repeat, new_table,
                            lambda db, method=method: method(f"{db}.aggregates"), drop)


if __name__ == "__main__":
    main()
