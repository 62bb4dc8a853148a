"""Bad flags and files refused in one line, before anything is made, run or printed.

Each case names what the user saw before: a traceback, a warning before the real error,
a result printed before the error, a directory left behind, or a flag silently ignored.
"""

from __future__ import annotations

import subprocess
import sys

import orjson
import pytest

from tests.test_cli import _REPO, assert_one_error, riskwatch

_CAL = {"name": "x", "start": "2026-11-02T00:00:00+08:00", "end": "2026-11-02T06:00:00+08:00",
        "kind": "promotion"}


@pytest.fixture
def events(tmp_path):
    path = tmp_path / "events.jsonl"
    path.write_bytes(orjson.dumps({"type": "order", "event_id": "e1", "ts": "2026-11-02T01:00:00+08:00",
                                   "order_id": "O1", "merchant_id": "m1", "region": "广东",
                                   "carrier": "中通", "category": "服饰", "amount": 10}) + b"\n")
    return path


# -- the calendar ------------------------------------------------------------------------
@pytest.mark.parametrize("raw, message", [
    # a UnicodeDecodeError traceback
    (b'[{"name": "\xff"}]', "calendar is not UTF-8 text: byte 0xff at line 1, column 12 "
                           "(save it as UTF-8)"),
    (b'[\n  {"name": "caf\xe9"}\n]', "calendar is not UTF-8 text: byte 0xe9 at line 2, column 16"),
    # taken: a window covering no second
    (orjson.dumps([{**_CAL, "end": _CAL["start"]}]),
     "calendar entry 0 ('x'): end equals start, an empty window"),
    (orjson.dumps([{**_CAL, "end": "2026-11-01T00:00:00+08:00"}]),
     "calendar entry 0 ('x'): end is before start"),
])
def test_a_bad_calendar_is_one_error_line(raw, message, events, tmp_path):
    (tmp_path / "cal.json").write_bytes(raw)
    r = riskwatch("replay", str(events), "--calendar", "cal.json", "--alerts-out", "a.jsonl",
                  cwd=tmp_path)
    assert_one_error(r, message)
    assert not (tmp_path / "a.jsonl").exists()


def test_a_month_long_maintenance_window_is_taken_with_a_warning(events, tmp_path):
    windows = [{**_CAL, "name": "upgrade", "kind": "maintenance", "end": "2026-12-04T00:00:00+08:00"},
               {**_CAL, "name": "night", "kind": "maintenance"},
               {**_CAL, "name": "sale", "end": "2026-12-31T00:00:00+08:00"}]   # not maintenance
    (tmp_path / "cal.json").write_bytes(orjson.dumps(windows))
    r = riskwatch("replay", str(events), "--calendar", "cal.json", "--alerts-out", "a.jsonl",
                  "--quiet", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stderr.splitlines() == [
        "riskwatch: warning: --calendar cal.json: calendar entry 0 ('upgrade'): a maintenance "
        "window of 32 days: nobody is paged for all of it"]


# -- chDB paths --------------------------------------------------------------------------
@pytest.mark.parametrize("command", [
    ["report", "--out", "x.html"], ["dashboards", "check"], ["merchant-api", "--secret", "k"]])
@pytest.mark.parametrize("store, message", [
    # left data/ metadata/ store/ tmp/ (and empty tables) in a directory that was no store
    ("empty", "--chdb empty: not a chDB database (no metadata/ directory in it); point it at "
              "the --chdb directory of a replay, a worker or `make demo`"),
    ("store", "--chdb store: no database 'riskwatch' in this chDB directory (it has other)"),
])
def test_read_only_commands_open_only_an_existing_chdb_database(command, store, message, tmp_path):
    (tmp_path / "empty").mkdir()
    made = riskwatch("db", "migrate", "--chdb", "store", "--database", "other", cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    r = riskwatch(*command, "--chdb", store, cwd=tmp_path)
    assert_one_error(r, message)
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before   # nothing made


@pytest.mark.parametrize("args", [["replay", "EVENTS", "--alerts-out", "a.jsonl"], ["db", "migrate"]])
def test_a_new_chdb_database_needs_an_existing_parent_directory(args, events, tmp_path):
    # `replay --chdb /nonexist/x` made /nonexist/x, every missing parent included
    r = riskwatch(*[str(events) if a == "EVENTS" else a for a in args], "--chdb", "no/such/db",
                  cwd=tmp_path)
    assert_one_error(r, "--chdb: directory no/such does not exist")
    assert not (tmp_path / "no").exists() and not (tmp_path / "a.jsonl").exists()


# -- demo, secrets, simulate, evaluate -----------------------------------------------------
def test_demo_refuses_a_duration_too_short_to_stream_anything(tmp_path):
    # --duration 5: 0 events, "recall 0.00", exit 0
    r = riskwatch("demo", "--duration", "5", "--data-dir", "dd", cwd=tmp_path)
    assert_one_error(r, "--duration 5: the demo needs at least 20 seconds")
    assert r.stdout == "" and not (tmp_path / "dd").exists()


def test_merchant_api_takes_secret_before_or_after_token(tmp_path):
    # before `token` it was overwritten by the subcommand's default: "give --secret or set ..."
    env = {"RISKWATCH_MERCHANT_SECRET": ""}
    before = riskwatch("merchant-api", "--secret", "k1", "token", "m1", cwd=tmp_path, env=env)
    after = riskwatch("merchant-api", "token", "m1", "--secret", "k1", cwd=tmp_path, env=env)
    assert before.returncode == after.returncode == 0, before.stderr + after.stderr
    assert before.stdout == after.stdout and len(before.stdout.strip()) == 64
    other = riskwatch("merchant-api", "token", "m1", "--secret", "k2", cwd=tmp_path, env=env)
    assert other.stdout != before.stdout


@pytest.mark.parametrize("args, env, message", [
    (["merchant-api", "token", "m1", "--secret", ""], {},
     "riskwatch merchant-api token: error: argument --secret: must not be empty"),
    (["merchant-api", "--secret", " ", "token", "m1"], {},
     "riskwatch merchant-api: error: argument --secret: must not be empty"),
    (["merchant-api", "token", "m1"], {"RISKWATCH_MERCHANT_SECRET": "  "},
     "riskwatch: error: $RISKWATCH_MERCHANT_SECRET is blank: a signature made with an empty key"),
    # '' fell back to the variable without a word; ' ' was used as the key
    (["replay", "EVENTS", "--alerts-out", "a.jsonl", "--webhook-url", "http://127.0.0.1:9/h",
      "--webhook-secret", ""], {"RISKWATCH_WEBHOOK_SECRET": "k"},
     "riskwatch replay: error: argument --webhook-secret: must not be empty"),
    (["replay", "EVENTS", "--alerts-out", "a.jsonl", "--webhook-url", "http://127.0.0.1:9/h",
      "--webhook-secret", " "], {}, "riskwatch replay: error: argument --webhook-secret: must not be"),
    (["replay", "EVENTS", "--alerts-out", "a.jsonl", "--webhook-url", "http://127.0.0.1:9/h"],
     {"RISKWATCH_WEBHOOK_SECRET": " "}, "riskwatch: error: $RISKWATCH_WEBHOOK_SECRET is blank"),
    # ignored without a word
    (["replay", "EVENTS", "--alerts-out", "a.jsonl", "--webhook-secret", "k"], {},
     "riskwatch: error: --webhook-secret applies to --webhook-url only"),
])
def test_an_empty_signing_key_is_refused(args, env, message, events, tmp_path):
    r = riskwatch(*[str(events) if a == "EVENTS" else a for a in args], cwd=tmp_path,
                  env={"RISKWATCH_MERCHANT_SECRET": "", "RISKWATCH_WEBHOOK_SECRET": "", **env})
    assert (r.returncode, r.stdout) == (2, ""), r.stderr
    assert r.stderr.splitlines()[-1].startswith(message), r.stderr
    assert "Traceback" not in r.stderr and not (tmp_path / "a.jsonl").exists()


_SHORT = ["--days", "1", "--orders-per-day", "2000"]   # a run simulate warns about


@pytest.mark.parametrize("args, message", [
    # each printed the incident-placement warning (3 lines) before the error
    (["--manifest", "m.json"], "give --out FILE (JSONL) or --broker kafka://HOST:PORT"),
    (["--speed", "60"], "give --out FILE (JSONL) or --broker kafka://HOST:PORT"),
    # went on to connect to notaurl:9092 and failed with a Kafka client error
    (["--broker", "notaurl"], "--broker: 'notaurl' is not a Kafka broker address "
                              "(expected kafka://HOST:PORT)"),
    # conflicting flags: the second was silently ignored
    (["--out", "e.jsonl", "--no-promotions", "--promotion-strain", "2"],
     "--no-promotions and --promotion-strain: without promotion nights there is no strain"),
    (["--out", "e.jsonl", "--no-promotions", "--no-promotion-strain"],
     "--no-promotions and --no-promotion-strain"),
    (["--broker", "kafka://127.0.0.1:9", "--intents-out", "i.jsonl"],
     "--intents-out applies to --out only"),
])
def test_simulate_checks_every_flag_before_it_warns_or_writes(args, message, tmp_path):
    r = riskwatch("simulate", *_SHORT, *args, cwd=tmp_path)
    assert_one_error(r, message)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("args, env, message", [
    (["--no-promotion-learning", "--promotion-cold-lift", "2"], {},
     "--no-promotion-learning and --promotion-cold-lift: --promotion-cold-lift tunes promotion "
     "learning, which --no-promotion-learning turns off; give one of them"),
    (["--promotion-tail-hours", "12"], {"RISKWATCH_PROMOTION_LEARNING": "off"},
     "RISKWATCH_PROMOTION_LEARNING=off and --promotion-tail-hours"),
])
def test_tuning_promotion_learning_that_is_off_is_an_error(args, env, message, events, tmp_path):
    r = riskwatch("replay", str(events), "--alerts-out", "a.jsonl", *args, cwd=tmp_path, env=env)
    assert_one_error(r, message)
    assert not (tmp_path / "a.jsonl").exists()


def test_evaluate_checks_its_aggregates_before_evaluating(tmp_path):
    # it printed the whole evaluation, then "cannot read aggregates nope"
    (tmp_path / "m.json").write_text('{"incidents": [], "promotions": []}')
    (tmp_path / "a.jsonl").write_bytes(orjson.dumps(
        {"alert_id": "a1", "status": "firing", "ts": "2026-11-03T10:00:00+08:00",
         "dimensions": {}, "metric": "complaint_rate"}) + b"\n")
    r = riskwatch("evaluate", "--truth", "m.json", "--alerts", "a.jsonl", "--aggregates", "nope",
                  "--report", "r.html", cwd=tmp_path)
    assert_one_error(r, "--aggregates nope: cannot read it: No such file or directory")
    assert r.stdout == "" and not (tmp_path / "r.html").exists()


# -- --version and the settings' help ----------------------------------------------------
def test_version_prints_the_package_version(tmp_path):
    import riskwatch as package

    r = subprocess.run([sys.executable, "-m", "riskwatch", "--version"], capture_output=True,
                       text=True, cwd=tmp_path, env={"PYTHONPATH": _REPO, "PATH": "/usr/bin:/bin"})
    assert (r.returncode, r.stdout) == (0, f"riskwatch {package.__version__}\n"), r.stderr
    import tomllib
    from pathlib import Path

    project = tomllib.loads((Path(_REPO) / "pyproject.toml").read_text())
    # the one version: the wheel's is read from riskwatch.__version__
    assert project["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "riskwatch.__version__"}


@pytest.mark.parametrize("command", ["replay", "worker"])
def test_every_setting_flag_help_names_its_environment_variable(command):
    from riskwatch.cli import _SETTINGS_ENV, build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command").choices[command]
    helps = {opt: action.help for action in sub._actions for opt in action.option_strings}
    for env, name, _ in _SETTINGS_ENV:
        assert env in helps[f"--{name.replace('_', '-')}"], name
    assert "RISKWATCH_PROMOTION_LEARNING" in helps["--no-promotion-learning"]


# -- a chDB directory another process holds ------------------------------------------------
@pytest.mark.parametrize("command", [
    ["report", "--chdb", "db", "--out", "o.html"],
    ["dashboards", "check", "--chdb", "db"],
    ["merchant-api", "--chdb", "db", "--port", "0", "--secret", "k"],
])
def test_a_chdb_directory_a_running_worker_holds_is_named_with_its_process(command, tmp_path):
    """`report` (or `dashboards check`, `merchant-api`) on the --chdb directory of a worker
    that is running: chDB printed a raw `Code: 76 ... Cannot lock file` line, then an error
    that guessed "another process may hold it". ClickHouse flocks <dir>/status, which names
    the holder's PID: the error names it and says what to do."""
    import fcntl
    import os

    db = tmp_path / "db"
    (db / "metadata").mkdir(parents=True)
    (db / "metadata" / "riskwatch.sql").write_text("ATTACH DATABASE riskwatch\n")
    (db / "status").write_text("PID: 4242\nStarted at: 2026-11-25 08:08:42\nRevision: 54515\n")
    fd = os.open(db / "status", os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)   # as the worker's chDB holds it
        r = riskwatch(*command, cwd=tmp_path, timeout=120)
    finally:
        os.close(fd)
    assert_one_error(r, f"chDB at '{db}' is in use by process 4242: a chDB directory can be "
                        "open in one process at a time; stop the worker or replay writing it first")
    assert sorted(p.name for p in db.iterdir()) == ["metadata", "status"]   # nothing made there


@pytest.mark.parametrize("command, made", [
    (["worker", "--chdb", "db", "--data-dir", "data", "--duration", "5"], "data"),
    (["demo", "--chdb", "db", "--data-dir", "demo", "--duration", "20"], "demo"),
])
def test_a_worker_or_demo_on_a_held_chdb_directory_is_refused_before_anything_starts(
        command, made, tmp_path):
    """A second worker on a running worker's --chdb directory was refused only when its
    sinks opened: after its embedded broker had started and created the topics (three
    log lines), then stopped. The refusal is now the first and only thing it prints,
    and nothing is made (no data directory, no broker)."""
    import fcntl
    import os

    db = tmp_path / "db"
    db.mkdir()
    (db / "status").write_text("PID: 4242\nStarted at: 2026-11-25 08:08:42\nRevision: 54515\n")
    fd = os.open(db / "status", os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)   # as the running worker's chDB holds it
        r = riskwatch(*command, cwd=tmp_path, timeout=120)
    finally:
        os.close(fd)
    assert_one_error(r, f"chDB at '{db}' is in use by process 4242: a chDB directory can be "
                        "open in one process at a time; stop the worker or replay writing it first")
    assert not (tmp_path / made).exists()
