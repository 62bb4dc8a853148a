"""Soak: the live worker at a steady rate for a long time; memory, lag and ClickHouse parts.

    .venv/bin/python benchmarks/soak.py                      # 30 minutes (the issue's run)
    .venv/bin/python benchmarks/soak.py --minutes 2          # a short smoke run
    nohup .venv/bin/python benchmarks/soak.py > soak.log 2>&1 &

What runs (real processes on loopback, free ports, all stopped at the end):
embedded Tansu broker -> ``python -m streams.worker --clickhouse-url ...`` (faust, the real
pipeline, every output kind stored) -> a throwaway ClickHouse server
(:class:`sinks.clickhouse.local_server.LocalClickHouseServer`, Debian's 18.16). chDB cannot
be used here: it is single-process, so nobody could read ``system.parts`` while the worker
holds it. Without ``clickhouse-server`` (or with ``--no-clickhouse``) the worker stores
nothing and the part columns stay empty.

Traffic: the simulator (incidents, promotions, PII, malformed lines, duplicates, late
events) in compressed time, but paced by *count*: ``--rate`` events per wall second,
sent as JSON arrays of ``--batch`` events per message (one topic per event type), so the
input rate is steady while simulated time runs about a simulated week per 30 minutes at
the defaults.

Every ``--every`` seconds one row goes to the CSV: wall time, events produced and
processed, worker / broker / ClickHouse RSS, consumer lag (the worker's ``/stats/``:
highwater minus processed offset, in messages, and the same in events: produced minus
processed), active parts per table (``system.parts``), alerts sent, the load average.
At the end: a chart (PNG + SVG) and a summary (memory growth MB/h by least squares over
the run after the first 10 % and over its last third, max lag, parts at the end and at most).

The embedded broker keeps every message in memory (Tansu's memory store has no retention),
so its RSS grows with the data sent; it is sampled to tell the two apart.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import csv
import datetime as dt
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from riskwatch.broker import EmbeddedBroker, create_topics  # noqa: E402
from riskwatch.produce import topic_for  # noqa: E402
from riskwatch.simulator import SimulationConfig, generate  # noqa: E402
from streams.app import TopicNames  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
FIELDS = ["elapsed_s", "wall", "produced_events", "processed_events", "events_per_s",
          "lag_messages", "lag_events", "worker_rss_mb", "broker_rss_mb", "clickhouse_rss_mb",
          "parts_total", "parts_max_table", "parts_by_table", "alerts_sent", "slices",
          "watermark", "load1"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_mb(pid: int | None) -> float | None:
    """Resident set size of a process from /proc (None when it is gone)."""
    if pid is None:
        return None
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        return None
    return None


def worker_stats(port: int) -> dict | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/stats/", timeout=5) as r:
            return json.loads(r.read())
    except (OSError, ValueError):
        return None


class Producer(threading.Thread):
    """Simulator lines at a steady ``rate`` events/s, ``batch`` events per message.

    A thread with its own event loop, so sampling never stalls the pacing.
    """

    def __init__(self, bootstrap: str, prefix: str, config: SimulationConfig, rate: float,
                 batch: int, seconds: float) -> None:
        super().__init__(name="soak-producer", daemon=True)
        self.bootstrap, self.prefix, self.config = bootstrap, prefix, config
        self.rate, self.batch, self.seconds = rate, batch, seconds
        self.sent = 0
        self.messages = 0
        self.exhausted = False
        self.error: BaseException | None = None
        self.stop_flag = threading.Event()

    def run(self) -> None:
        try:
            asyncio.run(self._run())
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            self.error = exc

    async def _run(self) -> None:
        from aiokafka import AIOKafkaProducer

        producer = AIOKafkaProducer(bootstrap_servers=self.bootstrap, linger_ms=5,
                                    max_batch_size=512 * 1024)
        await producer.start()
        pending: dict[str, list[bytes]] = {}

        async def send(topic: str) -> None:
            group = pending.pop(topic, None)
            if group:
                await producer.send(topic, b"[" + b",".join(group) + b"]")
                self.messages += 1

        try:
            lines = generate(self.config)
            t0 = time.monotonic()
            step = 0.1
            while not self.stop_flag.is_set():
                elapsed = time.monotonic() - t0
                if elapsed >= self.seconds:
                    break
                due = int(self.rate * (elapsed + step)) - self.sent
                for _ in range(max(due, 0)):
                    item = next(lines, None)
                    if item is None:
                        self.exhausted = True
                        break
                    topic, key = topic_for(item[1], self.prefix)
                    if key is None:   # malformed: alone, as a real upstream bug would send it
                        await producer.send(topic, item[1])
                        self.messages += 1
                    else:
                        pending.setdefault(topic, []).append(item[1])
                        if len(pending[topic]) >= self.batch:
                            await send(topic)
                    self.sent += 1
                for topic in list(pending):   # nothing waits longer than one step
                    await send(topic)
                if self.exhausted:
                    break
                await asyncio.sleep(max(t0 + elapsed + step - time.monotonic(), 0.0))
            await producer.flush()
        finally:
            await producer.stop()


def clickhouse_parts(client) -> dict[str, int]:
    rows = client.execute("SELECT table, count() FROM system.parts "
                          "WHERE active AND database = 'riskwatch' GROUP BY table")
    return {table: int(n) for table, n in rows}


def slope_mb_per_hour(rows: list[dict], key: str, until: float,
                      skip: float = 0.1) -> float | None:
    """Least-squares slope of ``key`` over elapsed time while traffic flowed (``until``),
    after the first ``skip`` of it (10 %: warm-up, the first slices and buffers; 2/3: the
    last third, which tells a plateau once the event-time windows are full)."""
    pts = [(r["elapsed_s"], r[key]) for r in rows if r.get(key) is not None and r["elapsed_s"] <= until]
    if len(pts) < 3:
        return None
    start = pts[-1][0] * skip
    pts = [p for p in pts if p[0] >= start] or pts
    n = len(pts)
    mx = sum(x for x, _ in pts) / n
    my = sum(y for _, y in pts) / n
    var = sum((x - mx) ** 2 for x, _ in pts)
    if var == 0:
        return None
    return sum((x - mx) * (y - my) for x, y in pts) / var * 3600


def chart(rows: list[dict], path: Path, title: str) -> list[Path]:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    minutes = [r["elapsed_s"] / 60 for r in rows]
    fig, axes = plt.subplots(3, 1, figsize=(9, 8.5), sharex=True)
    ax = axes[0]
    for key, label in (("worker_rss_mb", "worker"), ("broker_rss_mb", "broker (Tansu, no retention)"),
                       ("clickhouse_rss_mb", "ClickHouse server")):
        ys = [r[key] for r in rows]
        if any(y is not None for y in ys):
            ax.plot(minutes, [y if y is not None else float("nan") for y in ys], label=label)
    ax.set_ylabel("RSS (MB)")
    ax.legend(loc="upper left", fontsize=8)
    ax.grid(alpha=0.3)
    ax.set_title(title, fontsize=10)
    ax = axes[1]
    ax.plot(minutes, [r["lag_events"] if r["lag_events"] is not None else float("nan") for r in rows],
            label="lag (events produced - processed)")
    ax.set_ylabel("consumer lag (events)")
    ax2 = ax.twinx()
    ax2.plot(minutes, [r["events_per_s"] or 0 for r in rows], color="tab:gray", alpha=0.5,
             label="processed events/s")
    ax2.set_ylabel("events/s", color="tab:gray")
    ax.legend(loc="upper left", fontsize=8)
    ax.grid(alpha=0.3)
    ax = axes[2]
    ax.plot(minutes, [r["parts_total"] if r["parts_total"] is not None else float("nan") for r in rows],
            label="active parts, all tables")
    ax.plot(minutes, [r["parts_max_table"] if r["parts_max_table"] is not None else float("nan")
                      for r in rows], label="active parts, largest table")
    ax.set_ylabel("ClickHouse parts")
    ax.set_xlabel("minutes")
    ax.legend(loc="upper left", fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    out = []
    for suffix in (".png", ".svg"):
        target = path.with_suffix(suffix)
        fig.savefig(target, dpi=110)
        out.append(target)
    plt.close(fig)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--minutes", type=float, default=30.0, help="length of the run (default 30)")
    ap.add_argument("--rate", type=float, default=1000.0, help="events per second (default 1000)")
    ap.add_argument("--batch", type=int, default=20, help="events per message (default 20)")
    ap.add_argument("--every", type=float, default=10.0, help="seconds between samples")
    ap.add_argument("--orders-per-day", type=int, default=200_000,
                    help="simulated volume; with --rate it sets how fast simulated time runs")
    ap.add_argument("--no-clickhouse", action="store_true", help="no ClickHouse sink")
    ap.add_argument("--out", type=Path, default=RESULTS / "soak",
                    help="results path without suffix (.csv, .png, .svg, .json)")
    args = ap.parse_args()
    seconds = args.minutes * 60
    # Enough simulated days for the whole run at this rate (~1.25 events per order).
    days = max(1.0, seconds * args.rate / (args.orders_per_day * 1.2) * 1.2)
    config = SimulationConfig(days=round(days, 2), orders_per_day=args.orders_per_day,
                              merchants=2000, seed=7, incidents=max(4, int(days * 2)))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="soak-"))
    prefix = f"soak{int(time.time()) % 100000}-"
    topics = TopicNames.with_prefix(prefix)
    server = None
    worker = None
    producer = None
    rows: list[dict] = []
    print(f"soak: {args.minutes:g} min at {args.rate:,.0f} events/s in {args.batch}-event messages; "
          f"simulation {config.days} days x {config.orders_per_day:,} orders/day, "
          f"{config.incidents} incidents; load average {os.getloadavg()[0]:.1f} on "
          f"{os.cpu_count()} cores", flush=True)
    def stop_worker() -> None:
        # Before the broker stops: a worker whose broker vanished cannot stop cleanly.
        if producer is not None:
            producer.stop_flag.set()
        if worker is not None and worker.poll() is None:
            worker.send_signal(signal.SIGTERM)
            try:
                worker.wait(60)
            except subprocess.TimeoutExpired:
                worker.kill()
                worker.wait()

    try:
        with EmbeddedBroker(data_dir=work / "broker") as broker, contextlib.ExitStack() as stack:
            stack.callback(stop_worker)
            asyncio.run(create_topics(broker.bootstrap, topics.all, 1))
            extra: list[str] = []
            ch = None
            if not args.no_clickhouse:
                from sinks.clickhouse.local_server import LocalClickHouseServer, find_server_binary
                if find_server_binary() is None:
                    print("clickhouse-server not installed: running without a ClickHouse sink "
                          "(apt-get install clickhouse-server for part counts)", flush=True)
                else:
                    server = LocalClickHouseServer(work / "clickhouse").start()
                    extra = ["--clickhouse-url", server.url]
                    from clickhouse_driver import Client
                    ch = Client(host="127.0.0.1", port=server.tcp_port, user="default")
            port = free_port()
            log = open(work / "worker.log", "wb")
            worker = subprocess.Popen(
                [sys.executable, "-m", "streams.worker", "--broker", broker.url,
                 "--data-dir", str(work / "worker"), "--web-port", str(port),
                 "--topic-prefix", prefix, "--app-id", f"{prefix}app", *extra],
                cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                st = worker_stats(port)
                if st and st.get("ready_after_s") is not None:
                    break
                if worker.poll() is not None:
                    raise SystemExit(f"worker exited early:\n{(work / 'worker.log').read_text()[-3000:]}")
                time.sleep(0.5)
            else:
                raise SystemExit("worker not ready within 120 s")
            print(f"worker ready (pid {worker.pid}, /stats/ on port {port}); producing", flush=True)
            producer = Producer(broker.bootstrap, prefix, config, args.rate, args.batch, seconds)
            t0 = time.monotonic()
            producer.start()
            last_events, last_t = 0, t0
            next_sample = t0
            with open(args.out.with_suffix(".csv"), "w", newline="") as f:
                out = csv.DictWriter(f, FIELDS)
                out.writeheader()
                # Run the producer's time, then give the worker up to a minute to drain.
                while True:
                    now = time.monotonic()
                    if now < next_sample:
                        time.sleep(min(next_sample - now, 1.0))
                        continue
                    next_sample += args.every
                    st = worker_stats(port) or {}
                    pipe = st.get("pipeline") or {}
                    # every line the producer sent ends up as an event or a bad-input record;
                    # a malformed line that is an array of non-events ("[1,2]", one of the
                    # simulator's) is one bad record per element, so processed can end a
                    # few dozen above produced (45 in 4.2M lines, 70 minutes)
                    processed = (pipe["events"] + pipe.get("bad", 0)) if "events" in pipe else None
                    parts: dict[str, int] = {}
                    if ch is not None:
                        try:
                            parts = clickhouse_parts(ch)
                        except Exception as exc:  # noqa: BLE001 - report and keep sampling
                            print(f"  system.parts failed: {exc!r}", flush=True)
                    events_per_s = None
                    if processed is not None:
                        events_per_s = round((processed - last_events) / max(now - last_t, 1e-9), 1)
                        last_events, last_t = processed, now
                    row = {
                        "elapsed_s": round(now - t0, 1),
                        "wall": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
                        "produced_events": producer.sent,
                        "processed_events": processed,   # events + bad lines
                        "events_per_s": events_per_s,
                        "lag_messages": st.get("total_lag"),
                        "lag_events": max(producer.sent - processed, 0) if processed is not None else None,
                        "worker_rss_mb": rss_mb(worker.pid if worker.poll() is None else None),
                        "broker_rss_mb": rss_mb(broker.pid),
                        "clickhouse_rss_mb": rss_mb(server.proc.pid if server and server.proc else None),
                        "parts_total": sum(parts.values()) if parts else None,
                        "parts_max_table": max(parts.values()) if parts else None,
                        "parts_by_table": json.dumps(parts, sort_keys=True) if parts else "",
                        "alerts_sent": (st.get("sent") or {}).get("alerts"),
                        "slices": pipe.get("slices"),
                        "watermark": pipe.get("watermark"),
                        "load1": round(os.getloadavg()[0], 2),
                    }
                    rows.append(row)
                    out.writerow(row)
                    f.flush()
                    print(f"  {row['elapsed_s'] / 60:5.1f} min: produced {row['produced_events']:,} "
                          f"processed {processed if processed is not None else '?':,} "
                          f"({events_per_s or 0:,.0f}/s) lag {row['lag_events']} ev "
                          f"worker {row['worker_rss_mb']} MB broker {row['broker_rss_mb']} MB "
                          f"parts {row['parts_total']} alerts {row['alerts_sent']} "
                          f"slices {row['slices']} wm {row['watermark']} load {row['load1']}",
                          flush=True)
                    if worker.poll() is not None:
                        print("worker died: see the log below", flush=True)
                        print((work / "worker.log").read_text()[-3000:])
                        break
                    if producer.error is not None:
                        raise SystemExit(f"producer failed: {producer.error!r}")
                    if not producer.is_alive() and (row["lag_events"] == 0
                                                    or now - t0 > seconds + 60):
                        break
    finally:
        stop_worker()
        if server is not None:
            server.stop()
        keep = (work / "worker.log").read_bytes()[-20000:] if (work / "worker.log").exists() else b""
        args.out.with_suffix(".worker-log-tail.txt").write_bytes(keep)
        shutil.rmtree(work, ignore_errors=True)
    if not rows:
        return 1
    title = (f"soak {args.minutes:g} min, {args.rate:,.0f} events/s ({args.batch}/message), "
             f"{dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC, load avg "
             f"{min(r['load1'] for r in rows):.1f}-{max(r['load1'] for r in rows):.1f} on 2 cores")
    charts = chart(rows, args.out, title)
    worker_rss = [r["worker_rss_mb"] for r in rows if r["worker_rss_mb"] is not None]
    lags = [r["lag_events"] for r in rows if r["lag_events"] is not None]
    lag_msgs = [r["lag_messages"] for r in rows if r["lag_messages"] is not None]
    parts = [r["parts_total"] for r in rows if r["parts_total"] is not None]
    summary = {
        "minutes": args.minutes, "rate": args.rate, "batch": args.batch,
        "produced_events": rows[-1]["produced_events"], "processed_events": rows[-1]["processed_events"],
        "worker_rss_mb_first_last_max": [worker_rss[0], worker_rss[-1], max(worker_rss)] if worker_rss else None,
        "worker_growth_mb_per_h": round(slope_mb_per_hour(rows, "worker_rss_mb", seconds) or 0, 1),
        "worker_growth_last_third_mb_per_h": round(
            slope_mb_per_hour(rows, "worker_rss_mb", seconds, skip=2 / 3) or 0, 1),
        "broker_growth_mb_per_h": round(slope_mb_per_hour(rows, "broker_rss_mb", seconds) or 0, 1),
        "max_lag_events": max(lags) if lags else None,
        "max_lag_messages": max(lag_msgs) if lag_msgs else None,
        "parts_last_max": [parts[-1], max(parts)] if parts else None,
        "parts_by_table_last": rows[-1]["parts_by_table"],
        "alerts_sent": rows[-1]["alerts_sent"], "slices": rows[-1]["slices"],
        "load1_min_max": [min(r["load1"] for r in rows), max(r["load1"] for r in rows)],
        "charts": [str(p.relative_to(ROOT)) if p.is_relative_to(ROOT) else str(p) for p in charts],
    }
    args.out.with_suffix(".json").write_text(json.dumps(summary, indent=1, ensure_ascii=False))
    print("\nsummary:")
    for key, value in summary.items():
        print(f"  {key}: {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
