"""``riskwatch demo``: the whole system on one laptop, in compressed time.

Starts the embedded Kafka-protocol broker (Tansu), a live worker process writing to
embedded ClickHouse (chDB), and the simulator producing a few days of traffic with
incidents in about a minute; shows a live terminal view (alerts as they fire and
resolve, the most anomalous slices, events/s, lag); then stops everything it started,
scores the alerts against the simulator's ground truth and lists the chDB tables.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import orjson

from riskwatch.broker import EmbeddedBroker, create_topics
from riskwatch.commands import check_dirs, simulation_config
from riskwatch.errors import BrokerError, ConfigError, RiskwatchError

if TYPE_CHECKING:   # for annotations only: the sinks load when the demo builds them
    from sinks.wiring import OutputOptions

__all__ = ["MIN_DURATION_SECONDS", "run_demo"]

_SEVERITY_STYLE = {"blue": "bold blue", "yellow": "bold yellow", "orange": "bold dark_orange",
                   "red": "bold red"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _View:
    """Live terminal view (rich) or, when stdout is not a terminal, status lines."""

    def __init__(self, duration: float) -> None:
        from rich.console import Console

        self.console = Console()
        self.duration = duration
        self.alerts: list[dict] = []
        self.stats: dict = {}
        self.started = time.monotonic()
        self.live = None
        self._last_line = 0.0

    def __enter__(self):
        if self.console.is_terminal:
            from rich.live import Live
            self.live = Live(self.render(), console=self.console, refresh_per_second=2)
            self.live.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        if self.live is not None:
            self.live.update(self.render())
            self.live.__exit__(*exc)

    def update(self) -> None:
        if self.live is not None:
            self.live.update(self.render())
            return
        now = time.monotonic()
        if now - self._last_line >= 5.0:
            self._last_line = now
            p = self.stats.get("pipeline", {})
            print(f"[{now - self.started:5.0f}s] event time {p.get('watermark')}  "
                  f"events {p.get('events', 0):,}  {self.stats.get('events_per_s', 0):,.0f}/s  "
                  f"lag {self.stats.get('total_lag', '-')}  alerts fired {p.get('alerts_fired', 0)} "
                  f"resolved {p.get('alerts_resolved', 0)}  dead letters {p.get('bad', 0)}", flush=True)

    def alert(self, record: dict) -> None:
        self.alerts.append(record)
        if self.live is None:
            print(f"ALERT {record['status']:<8} {record['severity']:<6} {record['summary']}", flush=True)

    def render(self):
        from rich.console import Group
        from rich.panel import Panel
        from rich.table import Table

        p = self.stats.get("pipeline", {})
        head = Table.grid(padding=(0, 2))
        head.add_row(
            f"[b]event time[/b] {p.get('watermark') or '-'}",
            f"[b]events[/b] {p.get('events', 0):,} ({self.stats.get('events_per_s', 0):,.0f}/s)",
            f"[b]lag[/b] {self.stats.get('total_lag', '-')}",
            f"[b]firing[/b] {p.get('firing', 0)}",
            f"[b]dead letters[/b] {p.get('bad', 0)}  [b]late[/b] {p.get('late', 0)}  "
            f"[b]dup[/b] {p.get('duplicates', 0)}",
            f"[b]auto-resolved[/b] {p.get('auto_resolved', 0)}",
            f"[dim]{time.monotonic() - self.started:.0f}/{self.duration:.0f}s[/dim]")
        head.add_row(*_complaint_cells(p))
        alerts = Table(title="alerts (newest first)", expand=True)
        for col in ("event time", "status", "severity", "slice", "observed", "expected"):
            alerts.add_column(col)
        for a in reversed(self.alerts[-12:]):
            where = " ".join(f"{k}={v}" for k, v in a["dimensions"].items()) or "all"
            alerts.add_row(a["ts"][5:16].replace("T", " "), a["status"],
                           f"[{_SEVERITY_STYLE.get(a['severity'], '')}]{a['severity']}[/]",
                           where, f"{a['observed']:.0f}", f"{a['expected']:.1f}")
        top = Table(title="most anomalous slices, last closed bucket (evidence = log-likelihood "
                          "ratio of a rise; the slice pages when it reaches its level)", expand=True)
        for col in ("slice", "observed", "expected", "evidence", "level", ""):
            top.add_column(col)
        for t in p.get("top_slices", []):
            where = " ".join(f"{k}={v}" for k, v in t["slice"].items()) or "all"
            top.add_row(where, str(t["observed"]), f"{t['expected']:.2f}", f"{t['evidence']:.1f}",
                        f"{t['level']:.1f}", "[bold red]firing[/]" if t.get("firing") else "")
        return Panel(Group(head, alerts, top), title="riskwatch demo", border_style="cyan")


async def _watch(bootstrap: str, port: int, view: _View, deadline: float,
                 producer_done: asyncio.Event, worker: subprocess.Popen | None = None) -> None:
    import httpx
    from aiokafka import AIOKafkaConsumer

    consumer = AIOKafkaConsumer("alerts", bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                                group_id=None, enable_auto_commit=False)
    await consumer.start()
    try:
        async with httpx.AsyncClient(timeout=2.0) as client:
            drained_since = None
            while time.monotonic() < deadline:
                if worker is not None and worker.poll() is not None:
                    break   # the worker died: run_demo says why, no 20 s of stale status lines
                batch = await consumer.getmany(timeout_ms=500)
                for records in batch.values():
                    for r in records:
                        view.alert(orjson.loads(r.value))
                with contextlib.suppress(httpx.HTTPError, ValueError):
                    view.stats = (await client.get(f"http://127.0.0.1:{port}/stats/")).json()
                view.update()
                if producer_done.is_set() and view.stats.get("total_lag") == 0:
                    drained_since = drained_since or time.monotonic()
                    if time.monotonic() - drained_since > 3:
                        break  # everything produced has been processed
    finally:
        await consumer.stop()


async def _run(bootstrap: str, port: int, config, speed: float, view: _View, duration: float,
               worker: subprocess.Popen) -> int:
    from riskwatch.produce import produce_lines
    from riskwatch.simulator import generate

    started = time.monotonic()
    deadline = started + duration
    producer_done = asyncio.Event()

    async def produce() -> int:
        try:
            return await produce_lines(bootstrap, generate(config), speed=speed, batch=50,
                                       should_stop=lambda: time.monotonic() > deadline - 5
                                       or worker.poll() is not None)
        finally:
            producer_done.set()

    producer = asyncio.create_task(produce())
    await _watch(bootstrap, port, view, deadline + 20, producer_done, worker)
    return await producer


#: Shortest --duration. The simulator streams --days in the first 3/4 of the duration
#: and stops 5 s before its end (for the worker to catch up): at 0.75 d <= d - 5, i.e.
#: from 20 s, it streams all of them. Measured on 2 busy cores: the worker is ready after
#: ~7 s; 5 s gave 0 events (recall 0.00), 15 s 85 % of the events, 20 s all (recall 1.00).
MIN_DURATION_SECONDS = 20


def run_demo(*, duration: float = 90.0, data_dir: Path = Path("riskwatch-data/demo"),
             days: float = 2.5, orders_per_day: int = 20_000, outputs: OutputOptions | None = None) -> int:
    """Run the demo; returns the exit status. See the module docstring."""
    from riskwatch.simulator import calendar, manifest
    from sinks.wiring import OutputOptions

    if duration < MIN_DURATION_SECONDS:
        raise ConfigError(f"--duration {duration:g}: the demo needs at least "
                          f"{MIN_DURATION_SECONDS} seconds (its worker takes ~7 s to start; "
                          f"below {MIN_DURATION_SECONDS} s the simulator cannot stream --days "
                          f"before it stops, and few or no events arrive)")
    outputs = outputs or OutputOptions()
    chdb = Path(outputs.chdb_path) if outputs.chdb_path else data_dir / "chdb"
    # Every flag checked here, before anything is deleted, made or started: the worker
    # would find a bad one only after the broker and the simulator were running, and its
    # error went to worker.log behind ~20 s of status lines.
    check_dirs({"--data-dir": data_dir, "--chdb": chdb})
    # A chDB directory a running worker (or demo) holds: refused here, not by our worker
    # after the broker started, and before a previous demo's directory is emptied under it.
    from sinks.clickhouse.chdb_sink import check_not_held
    check_not_held(chdb)
    _check_output_flags(outputs)
    config = simulation_config({"days": days, "orders_per_day": orders_per_day},
                               merchants=600, incidents=max(3, int(days * 2)))
    # A fresh demo each time: chDB keeps its directory locked per process, and old
    # tables would mix two runs. Only a previous demo's directory (or an empty one) is
    # emptied: `--data-dir ~` must not delete a home directory.
    if data_dir.exists():
        if any(data_dir.iterdir()) and not _is_demo_dir(data_dir):
            raise ConfigError(f"--data-dir {data_dir} holds files that are not a previous demo's; "
                              "give a new or empty directory (the demo empties it at each start)")
        shutil.rmtree(data_dir)
    data_dir.mkdir(parents=True)
    (data_dir / _DEMO_MARK).write_text("made by `riskwatch demo`, which empties this directory "
                                       "at each start\n")
    (data_dir / "truth.json").write_bytes(orjson.dumps(manifest(config), option=orjson.OPT_INDENT_2))
    (data_dir / "calendar.json").write_bytes(orjson.dumps(calendar(config), option=orjson.OPT_INDENT_2))
    # Leave a quarter of the time for the worker to drain and for the summary.
    speed = days * 86400 / max(duration * 0.75, 1.0)
    print(f"riskwatch demo: {days:g} simulated days ({orders_per_day:,} orders/day, "
          f"{len(manifest(config)['incidents'])} injected incidents) in ~{duration:.0f}s "
          f"(1 s = {speed / 60:.0f} simulated minutes); data in {data_dir}/", flush=True)
    log = open(data_dir / "worker.log", "wb")
    worker = None
    try:
        with EmbeddedBroker(data_dir=data_dir / "broker") as broker:
            # streams.app.TopicNames().all, spelled out: importing it would load faust here
            asyncio.run(create_topics(broker.bootstrap, ["orders", "order-status", "complaints",
                                                         "complaint-updates", "alerts",
                                                         "dead-letters", "merchant-scores",
                                                         "complaint-records", "feedback"]))
            port = _free_port()
            worker = subprocess.Popen(
                [sys.executable, "-m", "streams.worker", "--broker", broker.url,
                 "--data-dir", str(data_dir / "worker"), "--chdb", str(chdb),
                 "--web-port", str(port), "--calendar", str(data_dir / "calendar.json"),
                 "--log-level", "info", *_output_flags(outputs)],
                stdout=log, stderr=subprocess.STDOUT, env=_worker_env(outputs))
            with _View(duration) as view:
                sent = asyncio.run(_run(broker.bootstrap, port, config, speed, view, duration, worker))
            if worker.poll() is not None:
                reason = _worker_error(data_dir / "worker.log")
                raise RiskwatchError(f"the worker exited early (status {worker.returncode})"
                                     f"{': ' + reason if reason else ''}; "
                                     f"see {data_dir / 'worker.log'}")
            _stop(worker)
            worker = None
    except BrokerError:
        raise
    except KeyboardInterrupt:
        print("\ninterrupted: stopping the worker and the broker", file=sys.stderr)
        return 130
    finally:
        if worker is not None:
            _stop(worker)
        log.close()
    alerts = view.alerts
    (data_dir / "alerts.jsonl").write_bytes(b"".join(orjson.dumps(a) + b"\n" for a in alerts))
    _summary(data_dir, sent, alerts, chdb)
    return 0


_DEMO_MARK = ".riskwatch-demo"


def _is_demo_dir(path: Path) -> bool:
    """Made by a demo: its mark, or (demos before the mark) its manifest, calendar and log."""
    return (path / _DEMO_MARK).is_file() or all(
        (path / name).is_file() for name in ("truth.json", "calendar.json", "worker.log"))


def _output_flags(outputs: OutputOptions | None) -> list[str]:
    """The user's extra output flags (--alertmanager-url ...) for the worker; the chDB
    path is passed on its own (the user's --chdb or the demo's DATA_DIR/chdb)."""
    if outputs is None:
        return []
    import dataclasses

    from sinks.wiring import worker_flags
    return worker_flags(dataclasses.replace(outputs, chdb_path=None))


def _check_output_flags(outputs: OutputOptions) -> None:
    """The worker's own checks of the output flags, run here: each sink refuses a bad
    flag with a ConfigError when it is built, and connects to nothing before setup()."""
    import dataclasses

    from sinks.wiring import build_sinks
    build_sinks(dataclasses.replace(outputs, chdb_path=None))   # chDB: checked by check_dirs


def _worker_env(outputs: OutputOptions) -> dict[str, str]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    if outputs.webhook_secret:   # not a flag (visible to local users): the worker reads this
        env["RISKWATCH_WEBHOOK_SECRET"] = outputs.webhook_secret
    return env


_WORKER_ERROR_PREFIXES = ("riskwatch worker: ", "riskwatch: error: ")


def _worker_error(log_path: Path) -> str | None:
    """The last error line the worker wrote (``riskwatch worker: ...``, else the last
    line of a traceback), so the user sees why without opening the log."""
    try:
        lines = log_path.read_text(errors="replace").splitlines()
    except OSError:
        return None
    for line in reversed(lines):
        for prefix in _WORKER_ERROR_PREFIXES:
            if line.startswith(prefix):
                return line[len(prefix):]
    for line in reversed(lines):
        if line and not line[0].isspace() and ("Error" in line or "ERROR" in line):
            return line.strip()
    return None


def _stop(worker: subprocess.Popen) -> None:
    worker.send_signal(signal.SIGTERM)
    try:
        worker.wait(timeout=40)
    except subprocess.TimeoutExpired:
        worker.kill()
        worker.wait()


def _complaint_cells(p: dict) -> list[str]:
    """Auto-resolution share and merchant score tiers, for the view's second row."""
    days = p.get("auto_resolution") or []
    tickets = sum(d["tickets"] for d in days)
    auto = sum(d["auto_resolved"] for d in days)
    hours = sum(d["hours_saved"] for d in days)
    tiers = p.get("score_tiers") or {}
    return [f"[b]closed without an agent[/b] {auto / tickets if tickets else 0:.1%} of {tickets:,} "
            f"tickets ({hours:,.1f} h saved)",
            f"[b]merchant scores[/b] ({p.get('merchants_scored', 0):,}) "
            f"[green]excellent {tiers.get('excellent', 0)}[/]  good {tiers.get('good', 0)}  "
            f"[yellow]watch {tiers.get('watch', 0)}[/]  [red]at risk {tiers.get('at_risk', 0)}[/]",
            f"[b]intent labels learned[/b] {p.get('intent_labels_learned', 0):,}"]


def _summary(data_dir: Path, sent: int, alerts: list[dict], chdb: Path) -> None:
    from riskwatch.evaluate import evaluate, format_report

    print(f"\nproduced {sent:,} events; {len(alerts)} alert state changes "
          f"(saved to {data_dir / 'alerts.jsonl'})")
    truth = orjson.loads((data_dir / "truth.json").read_bytes())
    print("\nagainst the simulator's ground truth:")
    print(format_report(evaluate(truth, alerts)))
    try:
        from sinks.clickhouse import ChdbSink
        sink = ChdbSink(str(chdb))
        sink.setup()
        print(f"\nembedded ClickHouse (chDB) at {chdb}:")
        for table in ("events", "aggregates", "alerts", "complaints", "dead_letters", "scores"):
            rows = sink.query(f"SELECT count() AS n FROM riskwatch.{table} FINAL")
            print(f"  {table:<13} {rows[0]['n']:>10,} rows")
        sink.close()
    except Exception as exc:  # noqa: BLE001 - the summary must not hide the demo's result
        print(f"(could not read chDB tables: {exc})")
