"""The merchant API served for real: ``riskwatch merchant-api`` (uvicorn) on a free loopback
port, queried with httpx. A merchant reads its own score and nothing else."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
import orjson
import pytest

from riskwatch.merchant_api import issue_token
from streams.text import contains_unmasked_pii
from tests.conftest import free_port, wait_until_serving

ROOT = Path(__file__).resolve().parents[2]
SECRET = "test-secret-not-for-production"


def _stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()


@pytest.fixture(scope="module")
def api(scored_day, tmp_path_factory):
    _, scores, _ = scored_day
    path = tmp_path_factory.mktemp("api") / "scores.jsonl"
    path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in scores))
    port = free_port()
    log = (path.parent / "api.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "riskwatch.cli", "merchant-api", "--scores", str(path),
         "--port", str(port)], cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
        env={**os.environ, "RISKWATCH_MERCHANT_SECRET": SECRET})
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_serving(base, proc, timeout=30, log=(path.parent / "api.log").read_text)
        yield base, scores, path.parent / "api.log"
    finally:
        _stop(proc)
        log.close()


def _merchants(scores):
    counts = {}
    for r in scores:
        counts[r["merchant_id"]] = counts.get(r["merchant_id"], 0) + 1
    return sorted(counts, key=lambda m: (-counts[m], m))


@pytest.mark.integration
def test_merchant_reads_its_own_score_components_and_trend(api):
    base, scores, _ = api
    m = _merchants(scores)[0]
    r = httpx.get(f"{base}/v1/merchants/{m}/score",
                  headers={"Authorization": f"Bearer {issue_token(SECRET, m)}"})
    assert r.status_code == 200, r.text
    body = r.json()
    mine = [s for s in scores if s["merchant_id"] == m]
    assert body["merchant_id"] == m
    assert body["score"] == mine[-1]["score"] and body["tier"] == mine[-1]["tier"]
    assert body["components"] == mine[-1]["components"]
    assert [p["score"] for p in body["trend"]] == [s["score"] for s in mine[-48:]]
    assert len(body["trend"]) >= 2


@pytest.mark.integration
def test_merchant_cannot_read_another_merchants_score(api):
    base, scores, log = api
    a, b = _merchants(scores)[:2]
    token_a = issue_token(SECRET, a)
    r = httpx.get(f"{base}/v1/merchants/{b}/score", headers={"Authorization": f"Bearer {token_a}"})
    assert r.status_code == 403 and b not in r.text and "score" not in r.json()
    # the same answer for a merchant that does not exist: ids cannot be probed
    r = httpx.get(f"{base}/v1/merchants/m-nope/score", headers={"Authorization": f"Bearer {token_a}"})
    assert r.status_code == 403
    # no token, a malformed one, another scheme: 401
    assert httpx.get(f"{base}/v1/merchants/{a}/score").status_code == 401
    for header in (f"Bearer {token_a[:-1]}", f"Basic {token_a}", "Bearer"):
        assert httpx.get(f"{base}/v1/merchants/{a}/score",
                         headers={"Authorization": header}).status_code == 401
    # a token made with another secret
    forged = issue_token("another-secret", b)
    assert httpx.get(f"{base}/v1/merchants/{b}/score",
                     headers={"Authorization": f"Bearer {forged}"}).status_code == 403


@pytest.mark.integration
def test_authenticated_merchant_without_a_score_gets_404(api):
    base, _, _ = api
    r = httpx.get(f"{base}/v1/merchants/m9999x/score",
                  headers={"Authorization": f"Bearer {issue_token(SECRET, 'm9999x')}"})
    assert r.status_code == 404


@pytest.mark.integration
def test_responses_and_log_hold_no_personal_data(api):
    base, scores, log = api
    for m in _merchants(scores)[:20]:
        r = httpx.get(f"{base}/v1/merchants/{m}/score",
                      headers={"Authorization": f"Bearer {issue_token(SECRET, m)}"})
        assert r.status_code == 200
        assert not contains_unmasked_pii(r.text)
    assert not contains_unmasked_pii(log.read_text(encoding="utf-8", errors="replace"))
    assert SECRET not in log.read_text(encoding="utf-8", errors="replace")


def test_token_command_prints_the_hmac_token():
    out = subprocess.run([sys.executable, "-m", "riskwatch.cli", "merchant-api", "token", "m0042",
                          "--secret", SECRET], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == issue_token(SECRET, "m0042")
    bad = subprocess.run([sys.executable, "-m", "riskwatch.cli", "merchant-api", "token", "m1"],
                         cwd=ROOT, capture_output=True, text=True,
                         env={k: v for k, v in os.environ.items() if k != "RISKWATCH_MERCHANT_SECRET"})
    assert bad.returncode == 2 and "RISKWATCH_MERCHANT_SECRET" in bad.stderr
    for empty in ("", "  "):   # a token for no merchant is refused, not printed
        none = subprocess.run([sys.executable, "-m", "riskwatch.cli", "merchant-api", "token", empty,
                               "--secret", SECRET], cwd=ROOT, capture_output=True, text=True)
        assert (none.returncode, none.stdout) == (2, "")
        assert none.stderr == "riskwatch: error: merchant id is empty\n"


def test_help_shows_the_token_subcommand_as_optional_and_the_secret_variable():
    # The usage ended in a bare `token ...`, as if a token had to be given; the secret,
    # which may come from $RISKWATCH_MERCHANT_SECRET, showed only as an optional flag.
    env = {k: v for k, v in os.environ.items() if k != "RISKWATCH_MERCHANT_SECRET"}
    out = subprocess.run([sys.executable, "-m", "riskwatch.cli", "merchant-api", "--help"],
                         cwd=ROOT, capture_output=True, text=True, check=True, env=env).stdout
    usage = out.split("\n\n", 1)[0].split("\n")
    assert usage == [
        "usage: riskwatch merchant-api (--scores FILE | --chdb PATH | --clickhouse-url URL) "
        "[--host HOST] [--port PORT]",
        "       [--secret SECRET]",
        "       riskwatch merchant-api token MERCHANT_ID [--secret SECRET]"]
    assert "token ..." not in out
    assert "if that is not given, $RISKWATCH_MERCHANT_SECRET" in " ".join(out.split())
    token = subprocess.run([sys.executable, "-m", "riskwatch.cli", "merchant-api", "token", "--help"],
                           cwd=ROOT, capture_output=True, text=True, check=True, env=env).stdout
    assert token.startswith("usage: riskwatch merchant-api token [-h] [--secret SECRET] MERCHANT_ID\n")
    # and the variable alone is enough, as the help says
    printed = subprocess.run([sys.executable, "-m", "riskwatch.cli", "merchant-api", "token", "m0042"],
                             cwd=ROOT, capture_output=True, text=True, check=True,
                             env={**env, "RISKWATCH_MERCHANT_SECRET": SECRET}).stdout
    assert printed.strip() == issue_token(SECRET, "m0042")


_LOAD_CHDB = """
import sys, orjson
from sinks.clickhouse import ChdbSink
sink = ChdbSink(sys.argv[2])
sink.setup()
for line in open(sys.argv[1], "rb"):
    sink.add("scores", orjson.loads(line))
sink.close()
"""


@pytest.mark.integration
def test_api_serves_scores_from_chdb(api, tmp_path):
    """The same scores stored in embedded ClickHouse, served with ``--chdb``."""
    _, scores, log = api
    jsonl = tmp_path / "scores.jsonl"
    jsonl.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in scores))
    db = tmp_path / "chdb"
    load = subprocess.run([sys.executable, "-c", _LOAD_CHDB, str(jsonl), str(db)], cwd=ROOT,
                          capture_output=True, text=True)
    assert load.returncode == 0, load.stderr
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "riskwatch.cli", "merchant-api", "--chdb", str(db),
         "--port", str(port), "--secret", SECRET], cwd=ROOT,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_serving(base, proc, timeout=60)
        a, b = _merchants(scores)[:2]
        r = httpx.get(f"{base}/v1/merchants/{a}/score",
                      headers={"Authorization": f"Bearer {issue_token(SECRET, a)}"}, timeout=30)
        assert r.status_code == 200, r.text
        body = r.json()
        mine = [s for s in scores if s["merchant_id"] == a]
        assert body["score"] == mine[-1]["score"] and body["tier"] == mine[-1]["tier"]
        assert body["components"]["complaints"] == mine[-1]["components"]["complaints"]
        assert [p["score"] for p in body["trend"]] == [s["score"] for s in mine[-48:]]
        # the same times as the JSONL backend serves (was 'YYYY-MM-DD hh:mm:ss.sss', no offset)
        assert body["ts"] == mine[-1]["ts"]
        assert [p["ts"] for p in body["trend"]] == [s["ts"] for s in mine[-48:]]
        # the move since the previous day is stored too (was null from this backend)
        moved = [m for m in _merchants(scores)
                 if [s for s in scores if s["merchant_id"] == m][-1]["change_1d"]]
        assert moved, "the fixture's merchants should include one whose score moved"
        r = httpx.get(f"{base}/v1/merchants/{moved[0]}/score", timeout=30, headers={
            "Authorization": f"Bearer {issue_token(SECRET, moved[0])}"})
        last = [s for s in scores if s["merchant_id"] == moved[0]][-1]
        assert r.json()["change_1d"] == last["change_1d"] != 0
        r = httpx.get(f"{base}/v1/merchants/{b}/score",
                      headers={"Authorization": f"Bearer {issue_token(SECRET, a)}"})
        assert r.status_code == 403
    finally:
        _stop(proc)


def _cli(*args: str, cwd=ROOT) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "riskwatch.cli", "merchant-api", *args, "--secret", SECRET],
                          cwd=cwd, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("args, message", [
    # was an OverflowError traceback from the socket call
    (["--scores", "SCORES", "--port", "-1"], "--port: must be a TCP port 0-65535 (0: any free port), got -1"),
    (["--scores", "SCORES", "--port", "70000"], "--port: must be a TCP port 0-65535 (0: any free port), got 70000"),
    # an events file was served: HTTP 200 with "score": null for every merchant
    (["--scores", "EVENTS"], "--scores EVENTS:2: not a merchant score record (no 'score', 'tier')"),
    # a missing chDB directory was created empty and served (every merchant 404)
    (["--chdb", "nosuchdb"], "--chdb nosuchdb: no such directory"),
    # a file: a page of chDB C++ stack
    (["--chdb", "EVENTS"], "--chdb: EVENTS is a file, not a chDB data directory"),
    # a directory: "scores file not found"
    (["--scores", "."], "--scores . is a directory; give the scores JSONL file"),
    # a running worker's scores are on a ClickHouse server (a chDB path is one process's)
    (["--scores", "SCORES", "--clickhouse-url", "clickhouse://127.0.0.1:1/riskwatch"],
     "give one of --scores FILE, --chdb PATH or --clickhouse-url URL, not --scores and --clickhouse-url"),
    (["--clickhouse-url", "http://127.0.0.1:8123/"], "--clickhouse-url: "),
    (["--clickhouse-url", "clickhouse://127.0.0.1:1/riskwatch"],
     "cannot reach ClickHouse at clickhouse://default@127.0.0.1:1/riskwatch"),
])
def test_bad_flags_are_one_line_errors(tmp_path, args, message):
    (tmp_path / "scores.jsonl").write_bytes(b'{"merchant_id":"m1","ts":"2026-11-02T08:00:00+08:00",'
                                            b'"score":80.0,"tier":"good","components":{}}\n')
    (tmp_path / "events.jsonl").write_bytes(
        b'{"merchant_id":"m1","ts":"2026-11-02T08:00:00+08:00","score":80.0,"tier":"good"}\n'
        b'{"type":"order","order_id":"o1","merchant_id":"m1","ts":"2026-11-02T08:00:00+08:00"}\n')
    names = {"SCORES": str(tmp_path / "scores.jsonl"), "EVENTS": str(tmp_path / "events.jsonl")}
    r = _cli(*[names.get(a, a) for a in args], cwd=tmp_path)
    assert (r.returncode, r.stdout) == (2, ""), r.stderr
    assert r.stderr.startswith(f"riskwatch: error: {message.replace('EVENTS', names['EVENTS'])}"), r.stderr
    assert r.stderr.count("\n") == 1, r.stderr
    assert not (tmp_path / "nosuchdb").exists()


@pytest.mark.integration
def test_port_0_announces_the_port_it_listens_on(tmp_path):
    """--port 0 printed http://127.0.0.1:0/...; now the port the system picked, which answers."""
    scores = tmp_path / "scores.jsonl"
    scores.write_bytes(b'{"merchant_id":"m1","ts":"2026-11-02T08:00:00+08:00","score":80.0,"tier":"good"}\n')
    proc = subprocess.Popen([sys.executable, "-m", "riskwatch.cli", "merchant-api", "--scores", str(scores),
                             "--port", "0", "--secret", SECRET], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        line = proc.stdout.readline()
        assert line.startswith("merchant API on http://127.0.0.1:"), line
        port = int(line.split("127.0.0.1:")[1].split("/")[0])
        assert port > 0
        r = httpx.get(f"http://127.0.0.1:{port}/v1/merchants/m1/score", timeout=10,
                      headers={"Authorization": f"Bearer {issue_token(SECRET, 'm1')}"})
        assert r.status_code == 200 and r.json()["score"] == 80.0
    finally:
        _stop(proc)


@pytest.mark.integration
def test_an_empty_chdb_store_is_served_with_one_warning(tmp_path):
    """A store no worker has written to yet: the API starts (it may start before the worker)
    and says once why every merchant gets 404, instead of a silent wall of 404s."""
    subprocess.run([sys.executable, "-m", "riskwatch.cli", "db", "migrate", "--chdb",
                    str(tmp_path / "db")], cwd=ROOT, capture_output=True, check=True, timeout=300)
    proc = subprocess.Popen([sys.executable, "-m", "riskwatch.cli", "merchant-api", "--chdb",
                             str(tmp_path / "db"), "--port", "0", "--secret", SECRET], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()   # printed after the check
        assert line.startswith("merchant API on http://127.0.0.1:"), line
        port = int(line.split("127.0.0.1:")[1].split("/")[0])
        r = httpx.get(f"http://127.0.0.1:{port}/v1/merchants/m1/score", timeout=10,
                      headers={"Authorization": f"Bearer {issue_token(SECRET, 'm1')}"})
        assert r.status_code == 404
    finally:
        _stop(proc)
    assert proc.stderr.readline().startswith(
        f"riskwatch: warning: no merchant scores in {tmp_path / 'db'} yet")


def test_an_empty_scores_file_is_served_with_one_warning(tmp_path):
    """As an empty chDB store: a replay that has not written its scores yet."""
    (tmp_path / "scores.jsonl").write_bytes(b"")
    proc = subprocess.Popen([sys.executable, "-m", "riskwatch.cli", "merchant-api", "--scores",
                             str(tmp_path / "scores.jsonl"), "--port", "0", "--secret", SECRET],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        assert line.startswith("merchant API on http://127.0.0.1:"), line
    finally:
        _stop(proc)
    assert proc.stderr.readline() == (
        f"riskwatch: warning: no merchant scores in {tmp_path / 'scores.jsonl'} yet: every "
        "merchant gets 404 until `riskwatch replay --scores-out` writes some\n")
