"""No unmasked phone, ID or card number in ANY output of a real run.

Two runs. First a replay run in subprocesses, the way users run riskwatch: ``riskwatch simulate`` with
a high share of texts carrying personal data and bad input, ``riskwatch replay`` writing
every record kind to JSONL, the same events stored in embedded ClickHouse (chDB; every
table dumped back), and the merchant API answering for the scored merchants. Every
byte of every output (files, table dumps, command output, API responses) is scanned
with :func:`~streams.text.pii.contains_unmasked_pii`, and the *input* is checked to
hold such numbers, so the test can fail. Second ``riskwatch demo`` itself (live worker,
embedded broker): worker log, demo output, alerts and every chDB table.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import httpx
import pytest

from riskwatch.merchant_api import issue_token
from streams.text import contains_unmasked_pii
from tests.conftest import free_port, need_broker

ROOT = Path(__file__).resolve().parents[1]

# Replays the events into chDB (all record kinds, masked event rows included) and dumps
# every table as JSON lines: a separate process, since chDB allows one path per process.
_CHDB_SCRIPT = textwrap.dedent("""
    import sys
    from sinks.clickhouse import ChdbSink
    from streams.pipeline import Pipeline
    from streams.replay import replay_file
    events, db, dump = sys.argv[1:4]
    sink = ChdbSink(db)
    sink.setup()
    p = Pipeline(keep_events=True, keep_aggregates=True)
    def on_output(out):
        for kind, records in out.items():
            for r in records:
                sink.add(kind, r)
        sink.flush()
    replay_file(p, events, on_output=on_output)
    sink.close()
    sink = ChdbSink(db)
    with open(dump, "w", encoding="utf-8") as fh:
        for t in sink.query("SELECT name FROM system.tables WHERE database = 'riskwatch'"):
            for row in sink.query(f"SELECT * FROM riskwatch.`{t['name']}`"):
                fh.write(t["name"] + " " + repr(row) + "\\n")
    sink.close()
""")


def _run(args: list[str], **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=600, **kw)


def _lines_with_pii(text: str) -> list[str]:
    return [line[:200] for line in text.splitlines() if contains_unmasked_pii(line)]


def _assert_no_simulated_names(source: str, outputs: dict[str, str], at_least: int) -> None:
    """No full name the simulator wrote into ``source`` (after cue words, roles as in
    快递员叫…, relations as in 我老公…, 寄给…的) appears in any output. The scanner cannot
    tell a name from a word, but the names the simulator drew from its own surname and
    given-name lists can be found in its output."""
    from riskwatch.simulator.pii import GIVEN_NAMES, SURNAMES
    given = "|".join(sorted(GIVEN_NAMES, key=len, reverse=True))
    names = set(re.findall(f"(?:{'|'.join(SURNAMES)})(?:{given})", source))
    assert len(names) >= at_least, "the input must carry names for this test to mean anything"
    named = {where: sorted(n for n in names if n in text) for where, text in outputs.items()}
    assert not any(named.values()), {k: v[:5] for k, v in named.items() if v}


@pytest.mark.integration
def test_no_unmasked_personal_data_in_any_output(tmp_path):
    events = tmp_path / "events.jsonl"
    sim = _run(["-m", "riskwatch.cli", "simulate", "--days", "0.5", "--orders-per-day", "20000",
                "--merchants", "300", "--pii-share", "0.9", "--malformed-share", "0.01",
                "--out", str(events)])
    assert sim.returncode == 0, sim.stderr
    raw = events.read_text(encoding="utf-8")
    assert len(_lines_with_pii(raw)) > 50, "the input must carry personal data for this test to mean anything"

    out = {k: tmp_path / f"{k}.jsonl" for k in ("alerts", "complaints", "dead-letters", "aggregates",
                                                 "scores")}
    rep = _run(["-m", "riskwatch.cli", "replay", str(events),
                *[a for k, p in out.items() for a in (f"--{k}-out", str(p))]])
    assert rep.returncode == 0, rep.stderr
    chdb = _run(["-c", _CHDB_SCRIPT, str(events), str(tmp_path / "chdb"), str(tmp_path / "tables.txt")])
    assert chdb.returncode == 0, chdb.stderr

    outputs = {f"{k}.jsonl": p.read_text(encoding="utf-8") for k, p in out.items()}
    outputs["replay output"] = rep.stdout + rep.stderr
    outputs["chDB tables"] = (tmp_path / "tables.txt").read_text(encoding="utf-8")
    outputs["chDB run output"] = chdb.stdout + chdb.stderr
    # the outputs are not empty: complaints (with masked texts), dead letters and scores exist
    complaints = [json.loads(line) for line in outputs["complaints.jsonl"].splitlines()]
    assert len(complaints) > 100 and any("****" in c["masked_text"] for c in complaints)
    assert outputs["dead-letters.jsonl"].count("\n") > 10
    assert outputs["scores.jsonl"].count("\n") > 10
    for table in ("complaints", "events", "dead_letters", "scores", "aggregates"):
        assert f"\n{table} " in "\n" + outputs["chDB tables"], table

    # the merchant API, for real, over the scores just written
    port = free_port()
    secret = "pii-test-secret"
    log = (tmp_path / "api.log").open("wb")
    api = subprocess.Popen([sys.executable, "-m", "riskwatch.cli", "merchant-api", "--scores",
                            str(out["scores"]), "--port", str(port)], cwd=ROOT, stdout=log,
                           stderr=subprocess.STDOUT,
                           env={**os.environ, "RISKWATCH_MERCHANT_SECRET": secret})
    try:
        base = f"http://127.0.0.1:{port}"
        _wait(base, api)
        merchants = sorted({json.loads(line)["merchant_id"]
                            for line in outputs["scores.jsonl"].splitlines()})[:30]
        bodies = [httpx.get(f"{base}/v1/merchants/{m}/score",
                            headers={"Authorization": f"Bearer {issue_token(secret, m)}"}).text
                  for m in merchants]
        outputs["API responses"] = "\n".join(bodies)
        assert all('"score"' in b for b in bodies)
    finally:
        api.terminate()
        api.wait(10)
        log.close()
    outputs["API log"] = (tmp_path / "api.log").read_text(encoding="utf-8", errors="replace")

    leaks = {name: _lines_with_pii(text) for name, text in outputs.items()}
    assert not any(leaks.values()), {k: v[:3] for k, v in leaks.items() if v}
    _assert_no_simulated_names(raw, outputs, at_least=10)


def _wait(base: str, proc: subprocess.Popen) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.2)
    pytest.fail("merchant API did not start")


_DUMP_TABLES = textwrap.dedent("""
    import sys
    from sinks.clickhouse import ChdbSink
    sink = ChdbSink(sys.argv[1])
    with open(sys.argv[2], "w", encoding="utf-8") as fh:
        for t in sink.query("SELECT name FROM system.tables WHERE database = 'riskwatch'"):
            for row in sink.query(f"SELECT * FROM riskwatch.`{t['name']}`"):
                fh.write(t["name"] + " " + repr(row) + "\\n")
    sink.close()
""")


@pytest.mark.integration
def test_no_unmasked_personal_data_in_a_live_demo_run(tmp_path):
    """``riskwatch demo``: embedded broker, a live worker writing chDB, the simulator
    producing texts with personal data. Scans the worker log, the demo's output and
    alerts file, and every chDB table the live worker filled."""
    from riskwatch.simulator import SimulationConfig, generate

    need_broker()
    data = tmp_path / "demo"
    demo = _run(["-m", "riskwatch.cli", "demo", "--duration", "30", "--days", "1",
                 "--data-dir", str(data)])
    assert demo.returncode == 0, demo.stdout[-2000:] + demo.stderr[-2000:]
    cfg = json.loads((data / "truth.json").read_text())["config"]
    sim = SimulationConfig(days=cfg["days"], orders_per_day=cfg["orders_per_day"],
                           merchants=cfg["merchants"], seed=cfg["seed"],
                           incidents=cfg["incidents"])
    produced = [line.decode() for _, line in generate(sim)]
    assert sum(contains_unmasked_pii(x) for x in produced if '"complaint"' in x) > 20

    dump = _run(["-c", _DUMP_TABLES, str(data / "chdb"), str(tmp_path / "tables.txt")])
    assert dump.returncode == 0, dump.stderr
    outputs = {
        "demo output": demo.stdout + demo.stderr,
        "worker log": (data / "worker.log").read_text(encoding="utf-8", errors="replace"),
        "alerts.jsonl": (data / "alerts.jsonl").read_text(encoding="utf-8"),
        "chDB tables": (tmp_path / "tables.txt").read_text(encoding="utf-8"),
    }
    assert "\ncomplaints " in "\n" + outputs["chDB tables"]
    assert "\nscores " in "\n" + outputs["chDB tables"]
    leaks = {name: _lines_with_pii(text) for name, text in outputs.items()}
    assert not any(leaks.values()), {k: v[:3] for k, v in leaks.items() if v}
    _assert_no_simulated_names("\n".join(produced), outputs, at_least=5)
