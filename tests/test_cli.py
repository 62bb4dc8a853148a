"""The command line as a user meets it: real subprocesses, real files, clear errors."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import orjson
import pytest

from tests.conftest import free_port, need_broker
from tests.streamkit import steady_stream


# This checkout's code first: with ``cwd`` elsewhere, ``python -m`` would import the
# package the interpreter has installed, which may be another checkout.
_REPO = str(Path(__file__).resolve().parents[1])

# An alert id as riskwatch makes them: <16 hex fingerprint>-<start bucket>.
_ALERT_ID = "0123456789abcdef-5978857"


def riskwatch(*args: str, cwd=None, env=None, timeout: float = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, **(env or {})}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, (_REPO, env.get("PYTHONPATH"))))
    return subprocess.run([sys.executable, "-m", "riskwatch.cli", *args], capture_output=True,
                          text=True, cwd=cwd, timeout=timeout, env=env)


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
    (["replay", "EVENTS", "--alerts-out", "a.jsonl", "--bucket-seconds", "7"],
     "argument --bucket-seconds: must divide 3600 evenly (e.g. 60, 300, 900), got 7"),
    (["evaluate", "--truth", "EVENTS", "--alerts", "EVENTS"], "not valid JSON"),
    (["simulate", "--out", "x.jsonl", "--days", "1", "--label-share", "1.5"], "must be in [0, 1]"),
    (["simulate"], "give --out FILE"),
    (["replay", "EVENTS"], "the following arguments are required: --alerts-out"),
    (["worker", "--broker", "http://127.0.0.1:9"], "is not a Kafka broker address (expected kafka://HOST:PORT)"),
    (["simulate", "--days", "0.1", "--broker", "https://x"], "is not a Kafka broker address"),
    (["report", "--chdb", "nope", "--out", "x.html"], "--chdb nope: no such directory"),
    (["report", "--chdb", ".", "--out", "no/such/x.html"], "directory no/such does not exist"),
    # checked before the panels run (it was found only when writing, after all of them)
    (["report", "--chdb", ".", "--out", "/proc/riskwatch-x.html"], "--out: cannot write /proc/riskwatch-x.html"),
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


@pytest.mark.parametrize("args, command", [
    (["simulate", "--bogus"], "riskwatch simulate"),
    (["replay", "EVENTS", "--alerts-out", "a.jsonl", "--bogus"], "riskwatch replay"),
    (["db", "migrate", "--bogus", "x"], "riskwatch db migrate"),
    (["merchant-api", "token", "m0001", "--bogus"], "riskwatch merchant-api token"),
])
def test_an_unknown_flag_is_named_by_its_subcommand(args, command, events, tmp_path):
    # It was the top parser's `usage: riskwatch [-h] COMMAND ...` and
    # `riskwatch: error: unrecognized arguments: --bogus`, with no command named.
    r = riskwatch(*[a.replace("EVENTS", str(events)) for a in args], cwd=tmp_path)
    assert (r.returncode, r.stdout) == (2, ""), r.stderr
    assert r.stderr.startswith(f"usage: {command} [-h]"), r.stderr
    unknown = " ".join(args[args.index("--bogus"):])
    assert r.stderr.splitlines()[-1] == (f"{command}: error: unrecognized arguments: {unknown} "
                                         f"(see {command} --help)")
    assert list(tmp_path.iterdir()) == []   # refused before anything ran


def _every_command() -> list[tuple[str, ...]]:
    """The words of riskwatch and of each of its (sub)commands: (), ("replay",), ("db", "migrate"), ..."""
    import argparse

    from riskwatch.cli import build_parser

    found: list[tuple[str, ...]] = []

    def walk(parser: argparse.ArgumentParser, words: tuple[str, ...]) -> None:
        found.append(words)
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    walk(sub, (*words, name))

    walk(build_parser(), ())
    return found


@pytest.mark.parametrize("words", _every_command(), ids=lambda words: " ".join(words) or "riskwatch")
def test_an_unknown_flag_is_named_before_missing_arguments(words, capsys, tmp_path, monkeypatch):
    # `riskwatch replay --bogus` answered "the following arguments are required: events,
    # --alerts-out"; only once those were given did it say that --bogus was unknown.
    from riskwatch.cli import main

    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exited:
        main([*words, "--bogus"])
    assert exited.value.code == 2
    command = " ".join(("riskwatch", *words))
    err = capsys.readouterr().err
    assert err.startswith(f"usage: {command} "), err
    assert err.splitlines()[-1] == (f"{command}: error: unrecognized arguments: --bogus "
                                    f"(see {command} --help)")
    assert list(tmp_path.iterdir()) == []   # refused before anything ran


@pytest.mark.parametrize("args", [
    ["dashboards", "build", "--out", "out", "--clickhouse-user", "EMPTY"],
    ["dashboards", "build", "--out", "out", "--database", "EMPTY"],
    ["dashboards", "build", "--out", "out", "--clickhouse-host", "EMPTY"],
    ["dashboards", "push", "--url", "http://127.0.0.1:9", "--clickhouse-user", "EMPTY"],
    ["dashboards", "push", "--url", "http://127.0.0.1:9", "--database", "EMPTY"],
    ["dashboards", "check", "--chdb", "store", "--database", "EMPTY"],
    ["report", "--chdb", "store", "--out", "o.html", "--database", "EMPTY"],
    ["db", "migrate", "--chdb", "store", "--database", "EMPTY"],
])
@pytest.mark.parametrize("empty", ["", " "])
def test_an_empty_database_or_clickhouse_user_is_refused_naming_the_flag(args, empty, tmp_path):
    # They were taken as given: `dashboards build` wrote a datasource with no user or
    # database, and `db migrate --chdb` quietly used "riskwatch" instead.
    flag = args[args.index("EMPTY") - 1]
    command = " ".join(args[:2] if args[0] in ("dashboards", "db") else args[:1])
    r = riskwatch(*[empty if a == "EMPTY" else a for a in args], cwd=tmp_path)
    assert (r.returncode, r.stdout) == (2, ""), r.stderr
    assert r.stderr.splitlines()[-1] == (f"riskwatch {command}: error: argument {flag}: "
                                         f"must not be empty, got {empty!r}")
    assert list(tmp_path.iterdir()) == []


def test_python_dash_m_riskwatch_is_the_command(tmp_path):
    # It said "No module named riskwatch.__main__; 'riskwatch' is a package and cannot
    # be directly executed".
    env = {**os.environ, "PYTHONPATH": _REPO}
    ok = subprocess.run([sys.executable, "-m", "riskwatch", "simulate", "--out", "-", "--days", "0.1",
                         "--orders-per-day", "1000"], capture_output=True, cwd=tmp_path, env=env)
    assert ok.returncode == 0 and ok.stdout.startswith(b'{"type":"order"'), ok.stderr
    bad = subprocess.run([sys.executable, "-m", "riskwatch", "nosuch"], capture_output=True,
                         text=True, cwd=tmp_path, env=env)
    assert bad.returncode == 2 and "riskwatch: error: argument COMMAND" in bad.stderr, bad.stderr


def test_dashboards_build_refuses_dash_for_its_directory(tmp_path):
    # It made a directory named '-' and said "wrote 4 files under -".
    r = riskwatch("dashboards", "build", "--out", "-", cwd=tmp_path)
    assert_one_error(r, "--out -: the provisioning files go to a directory")
    assert list(tmp_path.iterdir()) == []


def assert_one_error(r: subprocess.CompletedProcess, message: str) -> None:
    """Exit status 2 and exactly one stderr line, ``riskwatch: error: ...`` with ``message``."""
    assert r.returncode == 2, (r.returncode, r.stderr)
    lines = r.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("riskwatch: error: "), r.stderr
    assert message in lines[0], r.stderr


@pytest.mark.parametrize("args", [
    ["worker", "--broker", "kafka://127.0.0.1:abc", "--data-dir", "wd"],
    ["worker", "--broker", "notaurl:abc", "--data-dir", "wd"],
    ["simulate", "--days", "0.1", "--broker", "kafka://127.0.0.1:abc"],
])
def test_broker_port_that_is_not_a_number_is_one_error(args, tmp_path):
    r = riskwatch(*args, cwd=tmp_path)
    assert_one_error(r, "--broker: ")
    assert "port 'abc' is not a whole number from 1 to 65535" in r.stderr
    assert not (tmp_path / "wd").exists()   # refused before the worker set up its state


@pytest.mark.parametrize("args, env, source", [
    # The worker's --broker defaults to $RISKWATCH_BROKER: the error said "--broker: ..."
    # to a user who typed no --broker.
    (["worker", "--data-dir", "wd"], {"RISKWATCH_BROKER": "kafka://127.0.0.1:abc"},
     "riskwatch: error: $RISKWATCH_BROKER: "),
    (["worker", "--data-dir", "wd", "--broker", "kafka://127.0.0.1:abc"],
     {"RISKWATCH_BROKER": "kafka://127.0.0.1:9092"}, "riskwatch: error: --broker: "),
    # python -m streams.worker named neither
    (["-m", "streams.worker", "--data-dir", "wd"], {"RISKWATCH_BROKER": "kafka://127.0.0.1:abc"},
     "riskwatch worker: $RISKWATCH_BROKER: "),
    (["-m", "streams.worker", "--data-dir", "wd", "--broker", "kafka://127.0.0.1:abc"], {},
     "riskwatch worker: --broker: "),
    # feedback stored the verdict, then failed to send it: "could not send ... BrokerError"
    (["feedback", _ALERT_ID, "--verdict", "confirmed", "--store", "wd", "--broker",
      "kafka://127.0.0.1:abc"], {}, "riskwatch: error: --broker: "),
])
def test_a_bad_broker_url_is_named_by_where_it_came_from(args, env, source, tmp_path):
    if args[0] == "-m":
        env = {**os.environ, **env, "PYTHONPATH": _REPO}
        r = subprocess.run([sys.executable, *args], capture_output=True, text=True, cwd=tmp_path,
                           timeout=300, env=env)
    else:
        r = riskwatch(*args, cwd=tmp_path, env=env)
    assert (r.returncode, r.stdout) == (2, ""), r.stderr
    assert r.stderr.splitlines() == [f"{source}'kafka://127.0.0.1:abc': port 'abc' is not a whole "
                                     "number from 1 to 65535 (expected kafka://HOST:PORT)"]
    assert not (tmp_path / "wd").exists()   # refused before any state or verdict was written



_SECRET_CH = "clickhouse://u:s3cretPW@host:99999/db"


@pytest.mark.parametrize("args, env, message", [
    # An http client takes these and fails at each post, which the sink retried forever
    # as a receiver that is down.
    (["replay", "EVENTS", "--alertmanager-url", "http://h:70000"], {},
     "--alertmanager-url: port must be 1-65535 in 'http://h:70000'"),
    (["replay", "EVENTS", "--webhook-url", "http://", "--webhook-secret", "k"], {},
     "--webhook-url: expected http(s)://HOST[:PORT], got 'http://'"),
    (["replay", "EVENTS", "--grafana-annotations-url", "http://h:0"], {},
     "--grafana-annotations-url: port must be 1-65535"),
    # Put into every alert's links as they were.
    (["replay", "EVENTS", "--grafana-url", "notaurl"], {}, "--grafana-url: expected http(s)://"),
    (["replay", "EVENTS", "--runbook-url", "javascript:alert(1)"], {},
     "--runbook-url: expected http(s)://HOST[:PORT], got 'javascript:alert(1)'"),
    (["worker", "--data-dir", "wd", "--alertmanager-url", "http://am:99999"], {},
     "--alertmanager-url: port must be 1-65535"),
    (["demo", "--data-dir", "wd", "--webhook-url", "hook:1"], {}, "--webhook-url: expected"),
    # The password was echoed in the error line.
    (["replay", "EVENTS", "--clickhouse-url", _SECRET_CH], {},
     "--clickhouse-url: bad ClickHouse URL 'clickhouse://u@host:99999/db': the port must be"),
    (["replay", "EVENTS"], {"RISKWATCH_CLICKHOUSE_URL": _SECRET_CH},
     "$RISKWATCH_CLICKHOUSE_URL: bad ClickHouse URL 'clickhouse://u@host:99999/db'"),
    (["worker", "--data-dir", "wd", "--clickhouse-url", _SECRET_CH], {},
     "--clickhouse-url: bad ClickHouse URL 'clickhouse://u@host:99999/db'"),
    (["db", "migrate", "--clickhouse-url", _SECRET_CH], {},
     "--clickhouse-url: bad ClickHouse URL 'clickhouse://u@host:99999/db'"),
    # db migrate did not read the variable ("give exactly one of --chdb PATH or ...")
    (["db", "migrate"], {"RISKWATCH_CLICKHOUSE_URL": _SECRET_CH},
     "$RISKWATCH_CLICKHOUSE_URL: bad ClickHouse URL 'clickhouse://u@host:99999/db'"),
    (["db", "migrate", "--clickhouse-url", _SECRET_CH], {"RISKWATCH_CLICKHOUSE_URL": "http://x"},
     "--clickhouse-url: bad ClickHouse URL 'clickhouse://u@host:99999/db'"),   # the flag wins
    (["replay", "EVENTS", "--grafana-annotations-url", "http://admin:s3cretPW@h:70000"], {},
     "port must be 1-65535 in 'http://admin@h:70000'"),
])
def test_a_bad_output_url_is_one_error_line_without_its_password(args, env, message, events,
                                                                  tmp_path):
    if args[0] == "replay":
        args = [*args, "--alerts-out", "a.jsonl", "--quiet"]
    args = [a.replace("EVENTS", str(events)) for a in args]
    r = riskwatch(*args, cwd=tmp_path, env={"RISKWATCH_CLICKHOUSE_URL": "", **env})
    assert_one_error(r, message)
    assert "s3cretPW" not in r.stderr
    assert not (tmp_path / "wd").exists() and not (tmp_path / "a.jsonl").exists()


def test_db_migrate_reads_the_clickhouse_url_variable_as_replay_does(tmp_path):
    # It ignored $RISKWATCH_CLICKHOUSE_URL: "give exactly one of --chdb PATH or --clickhouse-url".
    port = free_port()   # nothing listens there
    env = {"RISKWATCH_CLICKHOUSE_URL": f"clickhouse://default:s3cretPW@127.0.0.1:{port}/risk"}
    r = riskwatch("db", "migrate", cwd=tmp_path, env=env)
    assert_one_error(r, f"cannot reach ClickHouse at clickhouse://default@127.0.0.1:{port}/risk ")
    assert "s3cretPW" not in r.stderr
    # a flag given wins over the variable
    other = free_port()
    r = riskwatch("db", "migrate", "--clickhouse-url", f"clickhouse://w@127.0.0.1:{other}/db",
                  cwd=tmp_path, env=env)
    assert_one_error(r, f"cannot reach ClickHouse at clickhouse://w@127.0.0.1:{other}/db ")
    r = riskwatch("db", "migrate", cwd=tmp_path, env={"RISKWATCH_CLICKHOUSE_URL": ""})
    assert_one_error(r, "give exactly one of --chdb PATH or --clickhouse-url URL "
                        "(or set $RISKWATCH_CLICKHOUSE_URL)")


@pytest.mark.parametrize("flags, message", [
    (["--alertmanager-url", "URL"], "riskwatch: error: cannot reach the Alertmanager at URL (ConnectError: "),
    (["--webhook-url", "URL/hook", "--webhook-secret", "k"],
     "riskwatch: error: cannot reach the webhook at URL/hook (ConnectError: "),
    (["--grafana-annotations-url", "URL"], "riskwatch: error: cannot reach Grafana at URL (connection refused)"),
])
def test_replay_refuses_a_receiver_it_cannot_reach_before_it_starts(flags, message, events,
                                                                     tmp_path):
    """It read the whole file, then retried the first post for ever: a batch run checks
    its receivers up front, as it checks a ClickHouse server."""
    url = f"http://127.0.0.1:{free_port()}"   # nothing listens there
    flags = [f.replace("URL", url.replace("http://", "http://ops:s3cretPW@")) for f in flags]
    r = riskwatch("replay", str(events), "--alerts-out", "a.jsonl", "--quiet", *flags,
                  cwd=tmp_path, timeout=60)
    assert_one_error(r, "")
    assert r.stderr.startswith(message.replace("URL", url.replace("http://", "http://ops@"))), r.stderr
    assert "s3cretPW" not in r.stderr and not (tmp_path / "a.jsonl").exists()


def test_replay_posts_its_alerts_to_a_receiver_that_is_up(events, tmp_path):
    from tests.alerting.amkit import RecordingReceiver

    with RecordingReceiver() as receiver:
        r = riskwatch("replay", str(events), "--alerts-out", "a.jsonl", "--quiet",
                      "--webhook-url", f"{receiver.url}/hook", "--webhook-secret", "k", cwd=tmp_path)
        posts = [q for q in receiver.snapshot() if q["path"] == "/hook"]
    assert r.returncode == 0, r.stderr
    assert len(posts) == len((tmp_path / "a.jsonl").read_bytes().splitlines()) > 0


def _unwritable(tmp_path: Path) -> Path:
    """A file path this user cannot create: in a read-only directory, or (as root, who
    writes anywhere) in sysfs."""
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    for path in (ro / "e.jsonl", Path("/sys/kernel/riskwatch-e.jsonl")):
        try:
            open(path, "ab").close()
        except OSError:
            return path
        path.unlink()
    pytest.skip("no unwritable path on this machine")


_SIM = ["simulate", "--days", "0.2", "--orders-per-day", "100", "--merchants", "10"]


@pytest.mark.parametrize("args, message", [
    (_SIM + ["--out", "d"], "--out: d is a directory"),
    (_SIM + ["--out", "e.jsonl", "--manifest", "d"], "--manifest: d is a directory"),
    (_SIM + ["--out", "e.jsonl", "--intents-out", "d"], "--intents-out: d is a directory"),
    (_SIM + ["--out", "e.jsonl", "--calendar-out", "d"], "--calendar-out: d is a directory"),
    (_SIM + ["--out", "no/such/e.jsonl"], "--out: directory no/such does not exist"),
    (_SIM + ["--out", "RO"], "--out: cannot write RO: Permission denied"),
    (_SIM + ["--out", "s.jsonl", "--manifest", "s.jsonl"], "--out and --manifest both name s.jsonl"),
    (_SIM + ["--out", "s.jsonl", "--calendar-out", "d/../s.jsonl"],
     "--out and --calendar-out both name d/../s.jsonl"),
    # Flags the run would silently ignore.
    (_SIM + ["--out", "s.jsonl", "--broker", "kafka://127.0.0.1:1"],
     "give --out FILE or --broker URL, not both"),
    (_SIM + ["--out", "s.jsonl", "--speed", "3600"], "--speed and --batch apply to --broker only"),
    (_SIM + ["--out", "s.jsonl", "--batch", "5"], "--speed and --batch apply to --broker only"),
    (_SIM + ["--out", "s.jsonl", "--promotion-strain", "2", "--no-promotion-strain"],
     "give --promotion-strain SCALE or --no-promotion-strain, not both"),
    # '-' is stdout for the events only; it made a file named '-'
    (_SIM + ["--out", "-", "--manifest", "-"], "--manifest -: this output is written to a file, "
     "not to stdout (only `riskwatch simulate --out -` streams to stdout); give a file name"),
])
def test_simulate_refuses_outputs_that_cannot_work(args, message, tmp_path):
    (tmp_path / "d").mkdir()
    ro = str(_unwritable(tmp_path)) if "RO" in args else "RO"
    r = riskwatch(*[a.replace("RO", ro) for a in args], cwd=tmp_path)
    assert_one_error(r, message.replace("RO", ro))
    assert sorted(p.name for p in tmp_path.iterdir()) == (["d", "ro"] if "RO" in args else ["d"])


def test_simulate_out_dash_writes_the_events_to_stdout_and_nothing_else(tmp_path):
    # It wrote a file named '-' (and the summary to stdout).
    args = [*_SIM, "--orders-per-day", "2000", "--manifest", "m.json"]
    r = riskwatch(*args, "--out", "-", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.json"]
    lines = r.stdout.splitlines()
    assert len(lines) > 100
    assert sum(line.startswith('{"type":"order",') for line in lines) > 100
    # the summary and the progress line are on stderr: stdout is the stream, byte for byte
    assert f"wrote {len(lines):,} lines to standard output in " in r.stderr
    assert "ground truth -> m.json" in r.stderr
    assert riskwatch(*args, "--out", "e.jsonl", cwd=tmp_path).returncode == 0
    assert r.stdout.encode() == (tmp_path / "e.jsonl").read_bytes()


@pytest.mark.parametrize("flag", ["--alerts-out", "--complaints-out", "--dead-letters-out",
                                  "--aggregates-out", "--scores-out"])
def test_replay_refuses_dash_for_an_output(flag, events, tmp_path):
    # It wrote a file named '-' (with the summary on stdout); one rule for every output
    # file flag: '-' is stdout only for `simulate --out -`.
    args = ["--alerts-out", "a.jsonl"] if flag != "--alerts-out" else []
    r = riskwatch("replay", str(events), *args, flag, "-", cwd=tmp_path)
    assert_one_error(r, f"{flag} -: this output is written to a file, not to stdout")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("args, message", [
    (["EVENTS", "--alerts-out", "EVENTS"], "--alerts-out EVENTS is the events file"),
    (["EVENTS", "--alerts-out", "a.jsonl", "--dead-letters-out", "LINK"],
     "--dead-letters-out LINK is the events file"),
    (["EVENTS", "--alerts-out", "a.jsonl", "--scores-out", "./a.jsonl"],
     "--alerts-out and --scores-out both name ./a.jsonl"),
    (["d", "--alerts-out", "a.jsonl"], "events file d is a directory"),
])
def test_replay_never_writes_over_its_input(args, message, tmp_path):
    events = tmp_path / "events.jsonl"
    original = b'{"type":"order"}\n'
    events.write_bytes(original)
    (tmp_path / "link.jsonl").symlink_to(events)
    (tmp_path / "d").mkdir()
    subst = {"EVENTS": str(events), "LINK": "link.jsonl"}
    r = riskwatch("replay", *[subst.get(a, a) for a in args], cwd=tmp_path)
    assert_one_error(r, message.replace("EVENTS", str(events)).replace("LINK", "link.jsonl"))
    assert events.read_bytes() == original


def test_replay_from_stdin_refuses_to_write_over_it(tmp_path):
    events = tmp_path / "events.jsonl"
    events.write_bytes(b'{"type":"order"}\n')
    with events.open("rb") as stdin:
        r = subprocess.run([sys.executable, "-m", "riskwatch.cli", "replay", "-", "--alerts-out",
                            str(events)], stdin=stdin, capture_output=True, text=True, cwd=tmp_path,
                           env={**os.environ, "PYTHONPATH": _REPO}, timeout=300)
    assert_one_error(r, "is the events file")
    assert events.read_bytes() == b'{"type":"order"}\n'


def test_replay_refuses_a_gzipped_file_with_a_hint(events, tmp_path):
    import gzip
    packed = tmp_path / "ev.jsonl.gz"
    packed.write_bytes(gzip.compress(events.read_bytes()[:20_000]))
    r = riskwatch("replay", str(packed), "--alerts-out", "a.jsonl", "--quiet", cwd=tmp_path)
    assert_one_error(r, f"events file {packed} looks gzip-compressed: decompress first, "
                        f"e.g. `zcat {packed} | riskwatch replay - ...`")


def test_replay_drops_a_leading_utf8_bom(events, tmp_path):
    lines = events.read_bytes().splitlines(keepends=True)[:3]
    bom = tmp_path / "bom.jsonl"
    bom.write_bytes(b"\xef\xbb\xbf" + b"".join(lines))   # as a Windows editor saves it
    r = riskwatch("replay", str(bom), "--alerts-out", "a.jsonl", "--dead-letters-out", "dl.jsonl",
                  "--quiet", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "(3 events)" in r.stdout and "dead letters 0 " in r.stdout
    assert (tmp_path / "dl.jsonl").read_bytes() == b""


_ALERT = {"alert_id": "a1", "status": "firing", "ts": "2026-11-03T10:00:00+08:00",
          "dimensions": {"region": "广东"}, "metric": "complaint_rate"}


@pytest.mark.parametrize("record, message", [
    ({"complaint_id": "c1", "status": "open", "ts": "2026-11-03T10:00:00+08:00", "masked_text": "x"},
     "line 2: not an alert record: it looks like an enriched complaint (replay --complaints-out)"),
    ({"dead_letter_id": "d1", "reason": "bad_json", "offset": 6},
     "line 2: not an alert record: it looks like a dead letter (replay --dead-letters-out)"),
    ({"slice": "region", "bucket_start": "2026-11-03T10:00:00+08:00", "complaints": 3},
     "line 2: not an alert record: it looks like a slice aggregate (replay --aggregates-out)"),
    ({"merchant_id": "m1", "score": 80.0, "tier": "good", "ts": "2026-11-03T10:00:00+08:00"},
     "line 2: not an alert record: it looks like a merchant score (replay --scores-out)"),
    ({"type": "order", "event_id": "e1", "ts": "2026-11-03T10:00:00+08:00"},
     "line 2: not an alert record: it looks like an input event"),
    ({**_ALERT, "ts": "2026-11-03T10:00:00"}, "line 2: 'ts' has no UTC offset"),
    ({"alert_id": "a2", "ts": "2026-11-03T10:00:00+08:00"}, "line 2: not an alert record: no 'status'"),
    ([1, 2], "line 2: a JSON list, not an alert record"),
    # was skipped without a word: its episode neither ended nor counted
    ({**_ALERT, "status": "weird"}, "line 2: 'status' is neither 'firing' nor 'resolved'"),
])
def test_evaluate_refuses_a_file_that_is_not_alerts(record, message, tmp_path):
    (tmp_path / "m.json").write_text('{"incidents": [], "promotions": []}')
    # The first line is a good alert: a wrong file is refused wherever its first bad line is.
    (tmp_path / "x.jsonl").write_bytes(orjson.dumps(_ALERT) + b"\n" + orjson.dumps(record) + b"\n")
    r = riskwatch("evaluate", "--truth", "m.json", "--alerts", "x.jsonl", cwd=tmp_path)
    assert_one_error(r, f"--alerts x.jsonl, {message}")


@pytest.mark.parametrize("mode", [["feedback", _ALERT_ID, "--verdict", "confirmed"],
                                  ["feedback", "--report"]])
@pytest.mark.parametrize("kind, message", [
    ("events", "line 1: not an alert record: it looks like an input event"),
    ("complaints", "line 1: not an alert record: it looks like an enriched complaint"),
    ("text", "line 1: not a JSON alert line"),
])
def test_feedback_refuses_a_file_that_is_not_alerts_as_evaluate_does(mode, kind, message, events,
                                                                     tmp_path):
    """feedback --alerts read every JSON line and kept the firing ones: a complaints file
    gave a report without a word ("never fired" with a verdict), a line that is not JSON
    the decoder's message. It reads with evaluate's loader now: the same refusal."""
    wrong = {"events": events.read_bytes(),
             "complaints": orjson.dumps({"complaint_id": "c1", "ts": "2026-11-03T10:00:00+08:00",
                                         "intent": "lost_parcel", "masked_text": "x"}) + b"\n",
             "text": b"alert_id,status\n"}[kind]
    (tmp_path / "x.jsonl").write_bytes(wrong)
    store = tmp_path / "fb.jsonl"
    saved = orjson.dumps({"alert_id": _ALERT_ID, "verdict": "expected"}) + b"\n"
    store.write_bytes(saved)
    r = riskwatch(*mode, "--store", "fb.jsonl", "--alerts", "x.jsonl", cwd=tmp_path)
    assert_one_error(r, f"--alerts x.jsonl, {message}")
    assert store.read_bytes() == saved   # no verdict stored against a wrong file
    (tmp_path / "m.json").write_text('{"incidents": [], "promotions": []}')
    assert riskwatch("evaluate", "--truth", "m.json", "--alerts", "x.jsonl",
                     cwd=tmp_path).stderr == r.stderr


@pytest.mark.parametrize("value, message", [
    ("-500", "argument --grace-minutes: must be >= 0, got -500"),
    ("nan", "argument --grace-minutes: expected a number, got 'nan'"),
])
def test_evaluate_grace_minutes_must_be_a_number_at_least_zero(value, message, tmp_path):
    (tmp_path / "m.json").write_text('{"incidents": [], "promotions": []}')
    (tmp_path / "a.jsonl").write_bytes(orjson.dumps(_ALERT) + b"\n")
    r = riskwatch("evaluate", "--truth", "m.json", "--alerts", "a.jsonl", "--grace-minutes", value,
                  cwd=tmp_path)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert r.stderr.splitlines()[-1] == f"riskwatch evaluate: error: {message}"


_INCIDENT = {"id": "inc-01", "kind": "carrier_damage", "dimensions": {"region": "广东"},
             "intent": "damaged", "start": "2026-11-03T10:00:00+08:00",
             "end": "2026-11-03T12:00:00+08:00", "metrics": ["complaint_rate"]}


@pytest.mark.parametrize("incident, message", [
    # KeyError tracebacks
    ({"foo": 1}, "incident 2 of 2: no 'id'"),
    ({k: v for k, v in _INCIDENT.items() if k != "kind"}, "incident 2 of 2: no 'kind'"),
    ({k: v for k, v in _INCIDENT.items() if k != "end"}, "incident 2 of 2: no 'end' time"),
    # ValueError tracebacks
    ({**_INCIDENT, "start": "yesterday"}, "incident 2 of 2: 'start' is not an RFC 3339 time"),
    ({**_INCIDENT, "dimensions": "x"}, "incident 2 of 2: 'dimensions' is not an object"),
    # scored without a word: an empty window, a time in this machine's zone, a substring test
    ({**_INCIDENT, "end": "2026-11-03T09:00:00+08:00"}, "incident 2 of 2: 'end' is before 'start'"),
    ({**_INCIDENT, "start": "2026-11-03T10:00:00"}, "incident 2 of 2: 'start' has no UTC offset"),
    ({**_INCIDENT, "metrics": "complaint_rate"}, "incident 2 of 2: 'metrics' is not a list"),
    (_INCIDENT, "incident 2 of 2: 'id' is the same as incident 1's"),
    ("inc-02", "incident 2 of 2: a JSON str, not an incident object"),
])
def test_evaluate_names_the_bad_incident_and_field(incident, message, tmp_path):
    (tmp_path / "m.json").write_bytes(orjson.dumps({"incidents": [_INCIDENT, incident],
                                                    "promotions": []}))
    (tmp_path / "a.jsonl").write_bytes(orjson.dumps(_ALERT) + b"\n")
    r = riskwatch("evaluate", "--truth", "m.json", "--alerts", "a.jsonl", cwd=tmp_path)
    assert_one_error(r, f"--truth m.json, {message}")


def test_evaluate_without_incidents_says_recall_is_undefined(tmp_path):
    """A manifest without incidents printed recall 1.00: a perfect score for no evidence."""
    (tmp_path / "m.json").write_text('{"incidents": [], "promotions": []}')
    (tmp_path / "a.jsonl").write_bytes(orjson.dumps(_ALERT) + b"\n")
    (tmp_path / "none.jsonl").write_bytes(b"")
    r = riskwatch("evaluate", "--truth", "m.json", "--alerts", "a.jsonl", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "recall n/a (no incidents in the manifest)" in r.stdout.splitlines()[0]
    r = riskwatch("evaluate", "--truth", "m.json", "--alerts", "none.jsonl", "--json", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    result = orjson.loads(r.stdout)
    assert (result["recall"], result["precision"]) == (None, None)   # and no alerts: no precision


@pytest.mark.parametrize("report, message", [
    # each was overwritten with the HTML page, exit 0
    ("agg.jsonl", "--report agg.jsonl is the --aggregates file: writing it would destroy the input"),
    ("m.json", "--report m.json is the --truth file: writing it would destroy the input"),
    ("a.jsonl", "--report a.jsonl is the --alerts file: writing it would destroy the input"),
    # these two failed only after the evaluation had run and printed its tables
    ("no/such/r.html", "--report: directory no/such does not exist"),
    ("adir", "--report: adir is a directory; give a file name"),
])
def test_evaluate_checks_its_report_path_before_evaluating(report, message, tmp_path):
    (tmp_path / "m.json").write_text('{"incidents": [], "promotions": []}')
    (tmp_path / "a.jsonl").write_bytes(orjson.dumps(_ALERT) + b"\n")
    (tmp_path / "agg.jsonl").write_bytes(b"")
    (tmp_path / "adir").mkdir()
    before = {name: (tmp_path / name).read_bytes() for name in ("m.json", "a.jsonl", "agg.jsonl")}
    r = riskwatch("evaluate", "--truth", "m.json", "--alerts", "a.jsonl", "--aggregates", "agg.jsonl",
                  "--report", report, cwd=tmp_path)
    assert_one_error(r, message)
    assert r.stdout == ""   # refused before the evaluation, not after it printed
    assert {name: (tmp_path / name).read_bytes() for name in before} == before


@pytest.mark.parametrize("args, env, message", [
    (["replay", "EVENTS", "--alerts-out", "a.jsonl", "--promotion-cold-lift", "50"], {},
     "riskwatch replay: error: argument --promotion-cold-lift: must be in [1, 10], got 50"),
    (["replay", "EVENTS", "--alerts-out", "a.jsonl"], {"RISKWATCH_BUCKET_SECONDS": "-60"},
     "riskwatch: error: RISKWATCH_BUCKET_SECONDS=-60: must be > 0, got -60"),
    (["replay", "EVENTS", "--alerts-out", "a.jsonl"], {"RISKWATCH_ALLOWED_LATENESS_SECONDS": "-5"},
     "riskwatch: error: RISKWATCH_ALLOWED_LATENESS_SECONDS=-5: must be >= 0, got -5"),
    (["simulate", "--out", "x.jsonl", "--start", "2026-11-02T00:00:00"], {},
     "riskwatch: error: --start 2026-11-02T00:00:00: no UTC offset; add one, "
     "e.g. 2026-11-02T00:00:00+08:00"),
    (["simulate", "--out", "x.jsonl", "--incidents", "-1"], {},
     "riskwatch: error: --incidents must be between 0 and 500 (got -1)"),
    # it wrote an empty (or one-line) events file and said nothing
    (["simulate", "--out", "x.jsonl", "--orders-per-day", "1"], {},
     "riskwatch: error: --orders-per-day must be between 100 and 50000000 (got 1)"),
    (["simulate", "--out", "x.jsonl", "--orders-per-day", "99", "--days", "1"], {},
     "riskwatch: error: --orders-per-day must be between 100 and 50000000 (got 99)"),
])
def test_errors_name_the_flag_or_variable_and_the_value_as_typed(args, env, message, events,
                                                                  tmp_path):
    r = riskwatch(*[a.replace("EVENTS", str(events)) for a in args], cwd=tmp_path, env=env)
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    assert r.stderr.splitlines()[-1] == message
    assert list(tmp_path.iterdir()) == []   # refused before any file was written


def test_simulate_a_tiny_market_writes_no_incident_it_cannot_carry(tmp_path):
    # 2.4 night hours of 100 orders a day: a couple of orders. The old fixed-size incidents
    # wrote 215 complaints and a brushing ring 53 fake orders into it, with no word said.
    r = riskwatch("simulate", "--days", "0.1", "--orders-per-day", "100", "--merchants", "10",
                  "--out", "e.jsonl", "--manifest", "m.json", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stderr.count("riskwatch: warning: ") == 1, r.stderr
    assert "12 of --incidents 12 and 2 of --surge-incidents 2 and 2 of --mix-incidents 2 " \
        "could not be placed" in r.stderr
    assert orjson.loads((tmp_path / "m.json").read_bytes())["incidents"] == []
    counts = dict(part.rsplit(" ", 1) for part in r.stdout.splitlines()[0].split(": ", 1)[1]
                  .split(", "))
    assert int(counts["complaints"]) < 0.3 * int(counts["orders"])   # see test_simulator_scale


def test_simulate_to_a_broker_nobody_runs_is_one_error_line(tmp_path):
    port = free_port()   # nothing listens there
    r = riskwatch(*_SIM, "--incidents", "0", "--surge-incidents", "0", "--mix-incidents", "0",
                  "--broker", f"kafka://127.0.0.1:{port}", cwd=tmp_path)
    # No aiokafka log line, no "Unclosed AIOKafkaProducer" warning: only the error.
    assert_one_error(r, f"cannot connect to broker 127.0.0.1:{port}")


def test_simulate_warns_when_requested_incidents_cannot_be_detected(tmp_path):
    from riskwatch.simulator import SimulationConfig, manifest
    from riskwatch.simulator.incidents import KINDS

    small = ["simulate", "--out", "e.jsonl", "--orders-per-day", "2000", "--merchants", "100"]
    r = riskwatch(*small, "--days", "1", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    warnings = [line for line in r.stderr.splitlines() if line.startswith("riskwatch: warning: ")]
    assert len(warnings) == 1, r.stderr
    # A day of 2000 orders carries some of the 12 complaint incidents, not all of them
    # (riskwatch.simulator.incidents.INCIDENT_BUDGET): the warning names the rest.
    planned = manifest(SimulationConfig(days=1, orders_per_day=2000, merchants=100))["incidents"]
    kept = sum(i["kind"] in KINDS for i in planned)
    assert 0 < kept < 12
    n = len(planned)
    assert f"{n} of {n} incidents start in the first day, which the detectors spend learning" \
        in warnings[0]
    assert f"{12 - kept} of --incidents 12 and 2 of --mix-incidents 2 could not be placed " \
        "(too short a run, or too small a market to see them" in warnings[0]
    assert (tmp_path / "e.jsonl").stat().st_size > 0
    r = riskwatch(*small, "--days", "3", "--incidents", "2", "--mix-incidents", "0", cwd=tmp_path)
    assert r.returncode == 0 and "warning" not in r.stderr, r.stderr


def _worker_module(*args: str, cwd) -> subprocess.CompletedProcess:
    """``python -m streams.worker``: the worker's own parser, which the demo starts."""
    env = {**os.environ, "PYTHONPATH": _REPO}
    env.pop("RISKWATCH_BROKER", None)
    return subprocess.run([sys.executable, "-m", "streams.worker", *args], capture_output=True,
                          text=True, cwd=cwd, timeout=120, env=env)


@pytest.mark.parametrize("args, message", [
    # bind() raised an OverflowError traceback
    (["--broker", "kafka://127.0.0.1:1", "--web-port", "70000"],
     "--web-port: must be a TCP port 1-65535, got 70000"),
    # mkdir raised FileExistsError / NotADirectoryError tracebacks; the checkpoint one only
    # after the embedded broker had started (no --broker here: nothing may start)
    (["--broker", "kafka://127.0.0.1:1", "--data-dir", "file.jsonl"],
     "--data-dir: file.jsonl exists and is not a directory"),
    (["--broker", "kafka://127.0.0.1:1", "--data-dir", "file.jsonl/wd"],
     "--data-dir: cannot make file.jsonl/wd: file.jsonl is not a directory"),
    (["--data-dir", "wd", "--duration", "8", "--checkpoint-dir", "file.jsonl"],
     "--checkpoint-dir: file.jsonl exists and is not a directory"),
    # a directory that cannot be made (no permission; here /proc, which refuses any new
    # entry even to root): a FileNotFoundError traceback after the broker had started
    # (now refused before it would reach a broker)
    (["--broker", "kafka://127.0.0.1:1", "--data-dir", "wd", "--checkpoint-dir",
      "/proc/riskwatch-ckpt"],
     "--checkpoint-dir: cannot make /proc/riskwatch-ckpt: No such file or directory"),
    # the embedded broker starts empty: a restarted worker sought to the checkpoint's
    # positions past its new log and skipped that many messages without a word
    (["--data-dir", "wd", "--duration", "8", "--checkpoint-dir", "ck"],
     "--checkpoint-dir needs --broker (or $RISKWATCH_BROKER): the embedded broker starts "
     "empty on every run, so a checkpoint's input positions would point past its messages "
     "and the restarted worker would skip them"),
    # said "[Errno 2] No such file or directory: 'nope.json'"; replay's message is this one
    (["--broker", "kafka://127.0.0.1:1", "--data-dir", "wd", "--calendar", "nope.json"],
     "cannot read calendar file nope.json: No such file or directory"),
])
@pytest.mark.parametrize("command", ["riskwatch worker", "python -m streams.worker"])
def test_worker_refuses_bad_paths_and_ports_before_starting(command, args, message, tmp_path):
    (tmp_path / "file.jsonl").write_text("{}\n")
    env = {"RISKWATCH_BROKER": ""}
    if command == "riskwatch worker":
        r = riskwatch("worker", *args, cwd=tmp_path, env=env)
        assert_one_error(r, message)
    else:
        r = _worker_module(*args, cwd=tmp_path)
        assert (r.returncode, r.stdout) == (2, ""), r.stderr
        assert r.stderr.splitlines() == [f"riskwatch worker: {message}"]
    assert not (tmp_path / "wd").exists()   # refused before the data dir (and a broker)


@pytest.mark.parametrize("command", ["riskwatch worker", "python -m streams.worker"])
def test_a_webhook_without_a_secret_is_refused_before_the_broker_starts(command, tmp_path):
    """The error came after the embedded broker had started (its log lines first) and the
    data directory had been made."""
    args = ["--data-dir", "wd", "--duration", "8", "--webhook-url", "http://127.0.0.1:1/hook"]
    message = "--webhook-url needs a signing secret: --webhook-secret or RISKWATCH_WEBHOOK_SECRET"
    if command == "riskwatch worker":
        r = riskwatch("worker", *args, cwd=tmp_path,
                      env={"RISKWATCH_BROKER": "", "RISKWATCH_WEBHOOK_SECRET": ""})
        assert_one_error(r, message)
    else:
        env = {k: v for k, v in os.environ.items()
               if k not in ("RISKWATCH_BROKER", "RISKWATCH_WEBHOOK_SECRET")}
        r = subprocess.run([sys.executable, "-m", "streams.worker", *args], capture_output=True,
                           text=True, cwd=tmp_path, timeout=120, env={**env, "PYTHONPATH": _REPO})
        assert (r.returncode, r.stderr) == (2, f"riskwatch worker: {message}\n")
    assert not (tmp_path / "wd").exists()


def test_a_checkpoint_dir_the_worker_cannot_write_is_refused(tmp_path, monkeypatch):
    """An existing checkpoint directory the worker may not write (another user's): it ran
    on, with a PermissionError traceback at every checkpoint and none written, its clean
    stop's included (which leaves the open buckets to the checkpoint: lost)."""
    import tempfile

    from riskwatch.commands import make_writable_dir
    from riskwatch.errors import ConfigError

    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(tempfile, "mkstemp", refuse)
    with pytest.raises(ConfigError) as caught:
        make_writable_dir("--checkpoint-dir", tmp_path)
    assert str(caught.value) == (f"--checkpoint-dir: cannot write in {tmp_path}: Permission "
                                 "denied; give a directory this user can write")
    monkeypatch.undo()
    assert make_writable_dir("--checkpoint-dir", tmp_path / "new") == tmp_path / "new"
    assert list((tmp_path / "new").iterdir()) == []   # the probe is gone


@pytest.mark.parametrize("start, days, message", [
    # were OverflowError "date value out of range" / ValueError "year 10000 is out of range"
    ("9999-12-31T23:00:00+08:00", "0.05", "--start 9999-12-31T23:00:00+08:00 plus 0.05 days "
     "ends after 9999-01-01T00:00:00Z (a simulation must end in the year 9998 at the latest)"),
    ("9999-12-25T00:00:00+08:00", "10", "--start 9999-12-25T00:00:00+08:00 plus 10 days ends after"),
    ("0001-01-01T00:00:00+08:00", "0.05",
     "--start 0001-01-01T00:00:00+08:00 is before 1970-01-01T00:00:00Z"),
])
def test_simulate_refuses_a_start_outside_the_years_event_times_can_hold(start, days, message,
                                                                         tmp_path):
    r = riskwatch("simulate", "--days", days, "--start", start, "--out", "s.jsonl", cwd=tmp_path)
    assert_one_error(r, message)
    assert not (tmp_path / "s.jsonl").exists()


@pytest.mark.skipif(not Path("/proc/self/mem").exists(), reason="needs Linux /proc")
def test_replay_turns_a_read_error_into_one_error_line(tmp_path):
    # /proc/self/mem opens but every read fails with EIO: was an OSError traceback
    r = riskwatch("replay", "/proc/self/mem", "--alerts-out", "a.jsonl", cwd=tmp_path)
    assert_one_error(r, "cannot read events file /proc/self/mem: Input/output error")


def test_replay_reads_a_pipe_or_device_as_a_stream(events, tmp_path):
    # `replay <(zcat ...)`, a named pipe and /dev/null were "events file not found"
    r = riskwatch("replay", "/dev/null", "--alerts-out", "null.jsonl", "--quiet", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("replayed 0 lines")
    fifo = tmp_path / "events.fifo"
    os.mkfifo(fifo)
    env = {**os.environ, "PYTHONPATH": _REPO}
    with subprocess.Popen([sys.executable, "-m", "riskwatch.cli", "replay", str(fifo), "--alerts-out",
                           "piped.jsonl", "--quiet"], cwd=tmp_path, env=env, text=True,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE) as proc:
        # Open the writing end only once the replay has opened its end (ENXIO until then),
        # so a replay that refuses the pipe fails this test instead of hanging it.
        while proc.poll() is None:
            try:
                fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
            except OSError:
                time.sleep(0.05)
                continue
            os.set_blocking(fd, True)
            with open(fd, "wb") as writer:
                writer.write(events.read_bytes())
            break
        out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    assert riskwatch("replay", str(events), "--alerts-out", "file.jsonl", "--quiet",
                     cwd=tmp_path).returncode == 0
    piped = (tmp_path / "piped.jsonl").read_bytes()
    assert piped and piped == (tmp_path / "file.jsonl").read_bytes()


@pytest.mark.parametrize("args, env, message", [
    # said "dedup_window_seconds must cover allowed_lateness_seconds", naming no flag or limit
    (["replay", "EVENTS", "--alerts-out", "a.jsonl", "--allowed-lateness-seconds", "200000"], {},
     "--allowed-lateness-seconds 200000: must not exceed the dedup window of 172800 seconds"),
    (["replay", "EVENTS", "--alerts-out", "a.jsonl"], {"RISKWATCH_ALLOWED_LATENESS_SECONDS": "200000"},
     "RISKWATCH_ALLOWED_LATENESS_SECONDS=200000: must not exceed the dedup window of 172800"),
    (["worker", "--broker", "kafka://127.0.0.1:1", "--data-dir", "wd",
      "--allowed-lateness-seconds", "172801"], {},
     "--allowed-lateness-seconds 172801: must not exceed the dedup window of 172800 seconds"),
    # the chDB directory was made, then the alerts file failed on it ("Is a directory")
    (["replay", "EVENTS", "--alerts-out", "store", "--chdb", "store"], {},
     "--alerts-out and --chdb both name store; give each its own path"),
])
def test_replay_and_worker_refuse_conflicting_settings_before_making_anything(args, env, message,
                                                                              events, tmp_path):
    r = riskwatch(*[a.replace("EVENTS", str(events)) for a in args], cwd=tmp_path, env=env)
    assert_one_error(r, message)
    assert sorted(p.name for p in tmp_path.iterdir()) == []   # no chDB, data dir or output


@pytest.mark.parametrize("args, message", [
    # were a NotADirectoryError traceback (rmtree of a file) and a chDB failure in worker.log
    (["--data-dir", "file.jsonl"], "--data-dir: file.jsonl exists and is not a directory"),
    (["--chdb", "file.jsonl"], "--chdb: file.jsonl exists and is not a directory"),
    # these the worker found after ~20 s of status lines, ending "the worker exited early
    # (status 2); see dd/worker.log", with the reason only in the log
    (["--alertmanager-url", "notaurl"], "--alertmanager-url"),
    (["--clickhouse-url", "http://x"], "bad ClickHouse URL 'http://x'"),
    (["--webhook-url", "http://127.0.0.1:9/hook"], "--webhook-url needs a signing secret"),
    # was 'orders_per_day must be ...' (no flag), after dd/ was made
    (["--orders-per-day", "50"], "--orders-per-day must be between 100"),
])
def test_demo_refuses_bad_flags_before_starting_anything(args, message, tmp_path):
    (tmp_path / "file.jsonl").write_text("{}\n")
    data_dir = [] if "--data-dir" in args else ["--data-dir", "dd"]
    r = riskwatch("demo", "--duration", "20", *data_dir, *args, cwd=tmp_path,
                  env={"RISKWATCH_WEBHOOK_SECRET": "", "RISKWATCH_CLICKHOUSE_URL": ""})
    assert_one_error(r, message)
    assert r.stdout == "" and not (tmp_path / "dd").exists()   # nothing printed or made


def test_demo_never_empties_a_directory_it_did_not_make(tmp_path):
    """The demo empties its --data-dir at each start: never a user's own directory."""
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "thesis.tex").write_text("years of work\n")
    r = riskwatch("demo", "--duration", "20", "--data-dir", "mine", cwd=tmp_path)
    assert_one_error(r, "--data-dir mine holds files that are not a previous demo's")
    assert (tmp_path / "mine" / "thesis.tex").read_text() == "years of work\n"


def test_need_broker_skips_without_the_broker_binary_and_fails_under_ci(monkeypatch):
    """tests.conftest.need_broker, shared by the demo tests here and in test_pii_outputs."""
    import riskwatch.broker
    from riskwatch.errors import BrokerError

    def missing() -> str:
        raise BrokerError("no tansu binary on PATH")

    monkeypatch.setattr(riskwatch.broker, "find_broker_binary", missing)
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="^no tansu binary on PATH$"):
        need_broker()
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI=true: integration prerequisites"):
        need_broker()


@pytest.mark.integration
def test_demo_says_why_its_worker_exited_early(tmp_path):
    need_broker()
    # The worker reads this variable and refuses it; the demo does not look at it.
    r = riskwatch("demo", "--duration", "20", "--data-dir", "dd", cwd=tmp_path,
                  env={"RISKWATCH_ALLOWED_LATENESS_SECONDS": "soon"})
    assert r.returncode == 2, r.stderr
    assert r.stderr.splitlines()[-1] == (
        "riskwatch: error: the worker exited early (status 2): RISKWATCH_ALLOWED_LATENESS_SECONDS "
        "must be an integer (got 'soon'); see dd/worker.log")


@pytest.mark.integration
def test_demo_stores_in_the_chdb_path_given(tmp_path):
    need_broker()
    # --chdb was dropped: the data went to DATA_DIR/chdb whatever the flag said
    r = riskwatch("demo", "--duration", "20", "--days", "0.2", "--orders-per-day", "3000",
                  "--data-dir", "dd", "--chdb", "store", cwd=tmp_path)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    assert "embedded ClickHouse (chDB) at store:" in r.stdout
    assert (tmp_path / "store").is_dir() and not (tmp_path / "dd" / "chdb").exists()
    assert (tmp_path / "dd" / ".riskwatch-demo").is_file()   # so the next demo may empty it


def test_an_error_line_never_quotes_a_phone_number_from_a_users_file(events, tmp_path):
    """riskwatch.cli masks the error line as a whole: messages quote values from files."""
    calendar = tmp_path / "cal.json"
    calendar.write_text('[{"name": "x", "start": "2026-11-01T00:00:00+08:00", '
                        '"end": "2026-11-02T00:00:00+08:00", "kind": "13812345678"}]')
    out = riskwatch("replay", str(events), "--calendar", str(calendar),
                    "--alerts-out", str(tmp_path / "a.jsonl"))
    assert out.returncode == 2
    assert out.stderr.startswith("riskwatch: error: invalid calendar") and out.stderr.count("\n") == 1
    assert "13812345678" not in out.stderr and "138****5678" in out.stderr
