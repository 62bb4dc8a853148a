"""The command line as a user meets it: real subprocesses, real files, clear errors."""

from __future__ import annotations

import subprocess
import sys

import orjson
import pytest

from tests.streamkit import steady_stream


def riskwatch(*args: str, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "riskwatch.cli", *args], capture_output=True,
                          text=True, cwd=cwd, timeout=300)


@pytest.fixture(scope="module")
def events(tmp_path_factory):
    path = tmp_path_factory.mktemp("cli") / "events.jsonl"
    lines = steady_stream(days=1.4, incident=("广东", "中通", 26.0, 28.0, 0.3))
    lines.insert(5, b'{"type":"order","event_id":')          # malformed
    lines.insert(9, lines[8])                                # duplicate
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path


def test_replay_writes_every_requested_output(events, tmp_path):
    out = {k: tmp_path / f"{k}.jsonl" for k in ("alerts", "complaints", "dead", "agg")}
    r = riskwatch("replay", str(events), "--alerts-out", str(out["alerts"]),
                  "--complaints-out", str(out["complaints"]), "--dead-letters-out", str(out["dead"]),
                  "--aggregates-out", str(out["agg"]), "--quiet")
    assert r.returncode == 0, r.stderr
    assert "dead letters 1" in r.stdout and "duplicates dropped 1" in r.stdout
    alerts = [orjson.loads(x) for x in out["alerts"].read_bytes().splitlines()]
    assert any(a["status"] == "firing" for a in alerts)
    assert {"alert_id", "fingerprint", "status", "severity", "metric", "dimensions", "ts", "bucket_start",
            "bucket_end", "observed", "expected", "score", "summary", "contributors", "examples"} <= set(alerts[0])
    dead = [orjson.loads(x) for x in out["dead"].read_bytes().splitlines()]
    assert len(dead) == 1 and dead[0]["offset"] == 6 and dead[0]["source"] == "file:events.jsonl"
    complaints = [orjson.loads(x) for x in out["complaints"].read_bytes().splitlines()]
    assert complaints and {"complaint_id", "ts", "intent", "intent_confidence", "sentiment", "masked_text",
                           "auto_resolved"} <= set(complaints[0])
    assert out["agg"].stat().st_size > 0


def test_replay_is_deterministic(events, tmp_path):
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    for path in (a, b):
        assert riskwatch("replay", str(events), "--alerts-out", str(path), "--quiet").returncode == 0
    assert a.read_bytes() == b.read_bytes() and a.stat().st_size > 0


def test_evaluate_scores_a_replay(tmp_path):
    truth, cal, ev, alerts = (tmp_path / n for n in ("truth.json", "cal.json", "ev.jsonl", "alerts.jsonl"))
    r = riskwatch("simulate", "--out", str(ev), "--manifest", str(truth), "--calendar-out", str(cal),
                  "--days", "2", "--orders-per-day", "20000", "--incidents", "2",
                  "--surge-incidents", "1", "--merchants", "300")
    assert r.returncode == 0, r.stderr
    r = riskwatch("replay", str(ev), "--calendar", str(cal), "--alerts-out", str(alerts), "--quiet")
    assert r.returncode == 0, r.stderr
    r = riskwatch("evaluate", "--truth", str(truth), "--alerts", str(alerts), "--json")
    assert r.returncode == 0, r.stderr
    result = orjson.loads(r.stdout)
    assert result["incidents"] == 3 and result["detected"] >= 1
    assert {"complaint_rate", "order_surge"} <= set(result["by_metric"])


@pytest.mark.parametrize("args, message", [
    # was an IsADirectoryError traceback after every query had run
    (["report", "--chdb", ".", "--out", "."], "--out .: is a directory; give the HTML file to write"),
    # a file as --chdb: ~37 lines of chDB C++ stack and a hint blaming another process
    (["replay", "EVENTS", "--alerts-out", "a.jsonl", "--chdb", "file.jsonl"],
     "--chdb: file.jsonl is a file, not a chDB data directory"),
    (["db", "migrate", "--chdb", "file.jsonl"], "--chdb: file.jsonl is a file, not a chDB data directory"),
    # report and dashboards check said "no such directory" of an existing file
    (["report", "--chdb", "file.jsonl", "--out", "x.html"], "--chdb: file.jsonl is a file, not a chDB"),
    (["dashboards", "check", "--chdb", "file.jsonl"], "--chdb: file.jsonl is a file, not a chDB"),
])
def test_storage_commands_refuse_bad_paths_in_one_line(args, message, events, tmp_path):
    """report, db, merchant-api, feedback: a bad path is one `riskwatch: error:` line, exit 2."""
    (tmp_path / "file.jsonl").write_text("{}\n")
    args = [a.replace("EVENTS", str(events)) for a in args]
    r = riskwatch(*args, cwd=tmp_path)
    assert (r.returncode, r.stdout) == (2, ""), r.stderr
    assert r.stderr.startswith("riskwatch: error: ") and r.stderr.count("\n") == 1, r.stderr
    assert message in r.stderr


@pytest.mark.parametrize("args, message", [
    (["replay", "missing.jsonl", "--alerts-out", "a.jsonl"], "events file not found: missing.jsonl"),
    (["replay", "EVENTS", "--alerts-out", "no/such/dir/a.jsonl"], "directory no/such/dir does not exist"),
    (["replay", "EVENTS", "--alerts-out", "a.jsonl", "--calendar", "CAL"], "invalid calendar"),
    (["replay", "EVENTS", "--alerts-out", "a.jsonl", "--bucket-seconds", "7"], "bucket_seconds must divide 3600"),
    (["evaluate", "--truth", "EVENTS", "--alerts", "EVENTS"], "not valid JSON"),
    (["simulate", "--out", "x.jsonl", "--days", "1", "--label-share", "1.5"], "must be in [0, 1]"),
    (["simulate"], "give --out FILE"),
    (["replay", "EVENTS"], "the following arguments are required: --alerts-out"),
    (["worker", "--broker", "http://127.0.0.1:9"], "is not a Kafka broker address (expected kafka://HOST:PORT)"),
    (["simulate", "--days", "0.1", "--broker", "https://x"], "is not a Kafka broker address"),
    (["report", "--chdb", "nope", "--out", "x.html"], "--chdb nope: no such directory"),
    (["report", "--chdb", ".", "--out", "no/such/x.html"], "directory no/such does not exist"),
    (["dashboards", "check", "--chdb", "nope"], "--chdb nope: no such directory"),
])
def test_bad_input_gets_one_clear_error(args, message, events, tmp_path):
    (tmp_path / "cal.json").write_text('[{"name": "x"}]')
    args = [a.replace("EVENTS", str(events)).replace("CAL", str(tmp_path / "cal.json")) for a in args]
    r = riskwatch(*args, cwd=tmp_path)
    assert r.returncode == 2
    assert message in r.stderr
    assert "Traceback" not in r.stderr
    assert not (tmp_path / "nope").exists()  # a bad --chdb path is not created as a side effect
