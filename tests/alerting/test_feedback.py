"""Operator feedback: what the pipeline learns, deterministic replay, CLI and precision."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from riskwatch.cli import main
from riskwatch.errors import ConfigError
from streams.alerting import fingerprint
from streams.feedback import load_feedback, parse_feedback
from streams.pipeline import Pipeline
from streams.replay import replay_lines
from tests.conftest import free_port
from tests.streamkit import steady_stream

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def lines() -> list[bytes]:
    return steady_stream(days=2.0, incident=("广东", "中通", 30.0, 32.0, 0.25))


@pytest.fixture(scope="module")
def baseline(lines) -> list[dict]:
    return run(lines)


def alert_line(alert_id: str, metric: str, dimensions: dict) -> str:
    """A firing record as ``replay --alerts-out`` writes it (the alerts contract in the
    README): ``feedback --alerts`` reads with evaluate's ``load_alerts``, which refuses a
    line without ``ts`` or ``status``."""
    fp, _, start = alert_id.rpartition("-")
    begin = dt.datetime.fromtimestamp(int(start) * 300, dt.timezone(dt.timedelta(hours=8)))
    end = begin + dt.timedelta(minutes=5)
    return json.dumps({
        "alert_id": alert_id, "fingerprint": fp, "status": "firing", "severity": "yellow",
        "metric": metric, "dimensions": dimensions, "ts": end.isoformat(),
        "bucket_start": begin.isoformat(), "bucket_end": end.isoformat(), "observed": 12.0,
        "expected": 3.0, "score": 9.5, "summary": "test alert", "contributors": [],
        "examples": []}, ensure_ascii=False) + "\n"


def run(lines, feedback=()) -> list[dict]:
    pipeline, alerts = Pipeline(), []
    for record in feedback:
        pipeline.apply_feedback(record)
    replay_lines(pipeline, lines, source="t", on_output=lambda out: alerts.extend(out.alerts))
    return alerts


@pytest.fixture(scope="module")
def false_alarm(lines, baseline) -> tuple[dict, list[dict]]:
    first = next(a for a in baseline if a["status"] == "firing")
    return first, run(lines, [{"alert_id": first["alert_id"], "verdict": "false_alarm",
                               "note": "known reroute"}])


def test_false_alarm_closes_the_episode_at_once_and_mutes_its_slice(baseline, false_alarm):
    first, with_fb = false_alarm
    fp = first["fingerprint"]
    mine = [a for a in with_fb if a["fingerprint"] == fp]
    # It paged (the operator saw it), then closed in the same bucket, marked.
    assert [a["status"] for a in mine[:2]] == ["firing", "resolved"]
    assert mine[1]["feedback"] == "false_alarm" and mine[1]["ts"] == mine[0]["ts"]
    assert "误报" in mine[1]["summary"]
    # No re-page of the same slice within the mute window (a day of buckets).
    start = dt.datetime.fromisoformat(first["ts"]).timestamp()
    later = [a for a in mine[2:] if a["status"] == "firing"]
    assert all(dt.datetime.fromisoformat(a["ts"]).timestamp() >= start + 86400 for a in later)
    # Without feedback the slice's episode ran for several buckets and escalated.
    assert len([a for a in baseline if a["fingerprint"] == fp]) > 2


def test_feedback_replay_is_deterministic(lines, false_alarm):
    first, with_fb = false_alarm
    assert run(lines, [{"alert_id": first["alert_id"], "verdict": "false_alarm",
                        "note": "known reroute"}]) == with_fb


def test_confirmed_changes_nothing(lines, baseline):
    first = next(a for a in baseline if a["status"] == "firing")
    assert run(lines, [{"alert_id": first["alert_id"], "verdict": "confirmed"}]) == baseline


def test_live_feedback_on_a_firing_alert(lines):
    """The live path: the verdict arrives while the alert fires (feedback topic)."""
    pipeline, alerts = Pipeline(), []

    def on_output(out):
        alerts.extend(out.alerts)
        firing = [a for a in out.alerts if a["status"] == "firing"]
        if firing and not any(a.get("feedback") for a in alerts):
            pipeline.apply_feedback({"alert_id": firing[0]["alert_id"], "verdict": "false_alarm"})

    replay_lines(pipeline, lines, source="t", on_output=on_output)
    closed = [a for a in alerts if a.get("feedback") == "false_alarm"]
    assert len(closed) == 1
    assert pipeline.feedback.slices[closed[0]["fingerprint"]].level_bump == 1.0


def test_an_alert_id_retyped_in_capitals_reaches_its_alert(lines, tmp_path, capsys):
    """An id typed as E030F8B0E19A5A70-5978786 was accepted, stored and sent, and the
    live worker counted it as applied, but it matched no firing episode and muted a
    slice that does not exist: the page stayed open and nothing said why. Ids that no
    fingerprint has ('0x...', '_') were accepted the same way."""
    pipeline, alerts = Pipeline(), []

    def on_output(out):
        alerts.extend(out.alerts)
        firing = [a for a in out.alerts if a["status"] == "firing"]
        if firing and not any(a.get("feedback") for a in alerts):
            pipeline.apply_feedback({"alert_id": firing[0]["alert_id"].upper(),
                                     "verdict": "false_alarm"})

    replay_lines(pipeline, lines, source="t", on_output=on_output)
    closed = [a for a in alerts if a.get("feedback") == "false_alarm"]
    assert len(closed) == 1 and closed[0]["fingerprint"] in pipeline.feedback.slices
    # the CLI stores the id as the pipeline spells it, and finds it in --alerts
    fp = fingerprint("complaint_rate", {"region": "广东"})
    alerts_file = tmp_path / "alerts.jsonl"
    alerts_file.write_text(alert_line(f"{fp}-7", "complaint_rate", {"region": "广东"}))
    store = tmp_path / "fb.jsonl"
    assert main(["feedback", f"{fp.upper()}-7", "--verdict", "expected", "--store", str(store),
                 "--alerts", str(alerts_file)]) == 0
    assert [(r["alert_id"], r["metric"]) for r in load_feedback(store)] == [(f"{fp}-7", "complaint_rate")]
    for bad in ("0x" + fp[2:] + "-7", fp[:8] + "_" + fp[9:] + "-7"):
        with pytest.raises(ConfigError, match="fingerprint is not hex"):
            parse_feedback({"alert_id": bad, "verdict": "confirmed"})


def test_fingerprints_are_stable_across_processes():
    """Same slice + metric, same fingerprint, whatever the process or hash seed."""
    code = "from streams.alerting import fingerprint; print(fingerprint('complaint_rate', {'region': '广东', 'carrier': '中通'}))"
    outs = set()
    for seed in ("0", "1", "12345"):
        env = {**os.environ, "PYTHONHASHSEED": seed, "PYTHONPATH": str(ROOT)}
        outs.add(subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                                check=True).stdout.strip())
    assert outs == {fingerprint("complaint_rate", {"carrier": "中通", "region": "广东"})}
    assert fingerprint("complaint_rate", {"region": "广东"}) != fingerprint("complaint_rate", {"region": "浙江"})


def test_bad_feedback_is_a_clear_error(tmp_path):
    with pytest.raises(ConfigError, match="verdict"):
        parse_feedback({"alert_id": "167c0feb71275f03-1", "verdict": "maybe"})
    with pytest.raises(ConfigError, match="alert id"):
        parse_feedback({"alert_id": "nope", "verdict": "confirmed"})
    bad = tmp_path / "fb.jsonl"
    bad.write_text('{"alert_id": "167c0feb71275f03-1", "verdict": "confirmed"}\n{oops\n')
    with pytest.raises(ConfigError, match="fb.jsonl:2"):
        load_feedback(bad)
    # the reason quotes the bad value: a phone number in it was printed as typed
    bad.write_text('{"alert_id": "客户 13812345678", "verdict": "confirmed"}\n')
    with pytest.raises(ConfigError, match=r"fb.jsonl:1: .*138\*\*\*\*5678") as caught:
        load_feedback(bad)
    assert "13812345678" not in str(caught.value)


def test_cli_records_masks_and_reports(tmp_path, capsys):
    store = tmp_path / "fb"
    fp = fingerprint("complaint_rate", {"region": "广东"})
    assert main(["feedback", f"{fp}-10", "--verdict", "false_alarm", "--note", "客户 13812345678",
                 "--store", f"{store}/"]) == 0
    assert main(["feedback", f"{fp}-20", "--verdict", "confirmed", "--store", str(store)]) == 0
    saved = (store / "feedback.jsonl").read_text(encoding="utf-8")
    assert "13812345678" not in saved and "138****5678" in saved
    alerts = tmp_path / "alerts.jsonl"
    alerts.write_text("".join(alert_line(f"{fp}-{n}", "complaint_rate", {"region": "广东"})
                              for n in (10, 20, 30)), encoding="utf-8")
    capsys.readouterr()
    assert main(["feedback", "--report", "--store", str(store), "--alerts", str(alerts), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report == {"complaint_rate": {"confirmed": 1, "expected": 0, "false_alarm": 1,
                                         "unreviewed": 1, "precision": 0.5,
                                         "metric_from": {"--alerts": 3}}}
    assert main(["feedback", "nope-1", "--verdict", "confirmed", "--store", str(store)]) == 2


def test_replay_feedback_flag(tmp_path):
    events = tmp_path / "ev.jsonl"
    events.write_bytes(b"\n".join(steady_stream(days=2.0, incident=("广东", "中通", 30.0, 32.0, 0.25))) + b"\n")
    out1, out2 = tmp_path / "a1.jsonl", tmp_path / "a2.jsonl"
    assert main(["replay", str(events), "--alerts-out", str(out1), "--quiet"]) == 0
    first = next(json.loads(line) for line in out1.read_text().splitlines())
    fb = tmp_path / "fb.jsonl"
    fb.write_text(json.dumps({"alert_id": first["alert_id"], "verdict": "false_alarm"}) + "\n")
    assert main(["replay", str(events), "--alerts-out", str(out2), "--feedback", str(fb), "--quiet"]) == 0
    second = [json.loads(line) for line in out2.read_text().splitlines()]
    assert any(a.get("feedback") == "false_alarm" and a["alert_id"] == first["alert_id"] for a in second)


def test_false_alarm_on_an_order_surge_alert_resolves_and_mutes_it():
    """Signal alerts (streams/signals.py) take verdicts like complaint-rate alerts: the
    episode resolves at once with ``"feedback"`` and the same surge does not page again."""
    import random

    import numpy as np

    from tests.detectors.test_order_surge import _market, _run

    p = Pipeline()
    stage, rng, day = p.signals, random.Random(1), 288
    _run(stage, range(0, 2 * day), lambda b: _market(rng, b))

    def brushing(b: int) -> dict:
        shops = _market(rng, b)
        shops["new1"] = 4 if b >= 2 * day + 36 else int(np.random.default_rng(b).poisson(0.1))
        return shops

    fired, b = [], 2 * day
    while not fired and b < 2 * day + 60:
        fired = [a for a in _run(stage, range(b, b + 1), brushing) if a["status"] == "firing"]
        b += 1
    assert fired and fired[0]["metric"] == "order_surge"
    p.closed_until = b * 300
    p.apply_feedback({"alert_id": fired[0]["alert_id"], "verdict": "false_alarm"})
    (resolved,) = p.drain().alerts
    assert (resolved["status"], resolved["feedback"], resolved["alert_id"]) == \
        ("resolved", "false_alarm", fired[0]["alert_id"])
    again = _run(stage, range(b, b + 12), brushing)   # the brushing goes on for an hour
    assert [a for a in again if a["status"] == "firing"] == []


def test_alert_metrics_are_the_pipelines_detectors():
    """--metric accepts ALERT_METRICS: exactly the metrics the pipeline raises alerts with."""
    from streams.delivery import OverdueScorer
    from streams.feedback import ALERT_METRICS
    from streams.mix import IntentMixStage
    from streams.paging import METRIC
    from streams.signals import ShopSurgeScorer

    assert set(ALERT_METRICS) == {METRIC, ShopSurgeScorer.metric, OverdueScorer.metric,
                                  IntentMixStage.metric}


def test_cli_verdict_metric_is_the_alerts_own_or_unknown(tmp_path, capsys):
    """A verdict was stored with metric complaint_rate unless --metric said otherwise, so a
    false alarm on an order_surge alert counted against complaint_rate in --report."""
    surge = fingerprint("order_surge", {"merchant_id": "m1"})
    alerts = tmp_path / "alerts.jsonl"
    alerts.write_text(alert_line(f"{surge}-7", "order_surge", {"merchant_id": "m1"}))
    store = tmp_path / "fb.jsonl"
    assert main(["feedback", f"{surge}-7", "--verdict", "false_alarm", "--store", str(store),
                 "--alerts", str(alerts)]) == 0
    assert main(["feedback", f"{surge}-8", "--verdict", "confirmed", "--store", str(store)]) == 0
    assert [r["metric"] for r in load_feedback(store)] == ["order_surge", "unknown"]
    capsys.readouterr()
    assert main(["feedback", "--report", "--store", str(store), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert set(report) == {"order_surge", "unknown"}
    # where each metric came from: the verdict's --alerts file, or nowhere
    assert (report["order_surge"]["metric_from"], report["unknown"]["metric_from"]) == \
        ({"alerts file": 1}, {"nowhere": 1})
    assert main(["feedback", "--report", "--store", str(store)]) == 0
    out = capsys.readouterr().out
    assert "alerts file 1" in out and "unknown: verdicts recorded without --alerts, --metric or --broker" in out


@pytest.mark.parametrize("args, message", [
    (["--metric", "bogus"], "--metric: 'bogus' is not a riskwatch detector; one of complaint_rate, "
                            "order_surge, overdue_delivery, intent_mix"),
    (["--alerts", "ALERTS", "--metric", "complaint_rate"],
     "--metric complaint_rate: alert ID has metric order_surge in ALERTS"),
    (["--alerts", "ALERTS", "--alert-id", "0123456789abcdef-5"],
     "--alerts: alert 0123456789abcdef-5 never fired in ALERTS"),
    # a missing parent was created (mkdir -p) without a word
    (["--store", "STORE/no/such/x/"], "--store: directory STORE/no/such does not exist"),
    # --store FILE then --store FILE/: FileExistsError
    (["--store", "STORE/fb/"], "--store STORE/fb/: STORE/fb is a file, not a directory"),
])
def test_cli_refuses_a_bad_metric_or_store_in_one_line(tmp_path, capsys, args, message):
    surge = fingerprint("order_surge", {"merchant_id": "m1"})
    alerts = tmp_path / "alerts.jsonl"
    alerts.write_text(alert_line(f"{surge}-7", "order_surge", {"merchant_id": "m1"}))
    (tmp_path / "fb").write_text("")
    names = {"ALERTS": str(alerts), "ID": f"{surge}-7", "STORE": str(tmp_path)}
    alert_id = f"{surge}-7"
    if "--alert-id" in args:
        alert_id = args[args.index("--alert-id") + 1]
        args = args[:args.index("--alert-id")]
    args = ["--store", str(tmp_path / "fb.jsonl"), *args]
    argv = [a.replace("ALERTS", names["ALERTS"]).replace("STORE", names["STORE"]) for a in args]
    assert main(["feedback", alert_id, "--verdict", "false_alarm", *argv]) == 2
    for key, value in names.items():
        message = message.replace(key, value)
    err = capsys.readouterr().err
    assert err.startswith(f"riskwatch: error: {message}") and err.count("\n") == 1, err
    assert not (tmp_path / "no").exists() and not (tmp_path / "fb.jsonl").exists()


def test_cli_verdict_to_a_broker_nobody_runs_is_one_error_line(tmp_path):
    # aiokafka logged each failed connection attempt to stderr before our error line.
    port = free_port()   # nothing listens there
    store = tmp_path / "fb.jsonl"
    root = Path(__file__).resolve().parents[2]
    r = subprocess.run([sys.executable, "-m", "riskwatch.cli", "feedback", "0123456789abcdef-7", "--verdict",
                        "false_alarm", "--store", str(store), "--broker", f"kafka://127.0.0.1:{port}"],
                       capture_output=True, text=True, timeout=120, cwd=root,
                       env={**os.environ, "PYTHONPATH": str(root)})
    assert r.returncode == 2, r.stderr
    assert r.stderr.startswith("riskwatch: error: could not send the verdict") and r.stderr.count("\n") == 1, r.stderr
    assert len(store.read_text().splitlines()) == 1   # saved all the same


def _store_lines() -> dict[str, bytes]:
    """Files a --store must not be appended to, as a user might name one by mistake."""
    good = json.dumps({"alert_id": "0123456789abcdef-6", "verdict": "expected"}).encode() + b"\n"
    alert = alert_line("0123456789abcdef-7", "complaint_rate", {"region": "广东"}).encode()
    return {
        "alerts": alert,
        "events": b"\n".join(steady_stream(days=0.05)) + b"\n",
        "binary": bytes(range(256)) * 40,
        # only the last line gives it away (a verdict appended after an events dump)
        "tail": good + b'{"type": "order", "event_id": "e1"}\n',
        # the reason quotes the value: a phone number in it is masked
        "pii": json.dumps({"alert_id": "13812345678", "verdict": "expected"}).encode() + b"\n",
    }


@pytest.mark.parametrize("kind, alerts_flag, message", [
    ("alerts", True, "--store STORE is the --alerts file: a verdict appended to it would corrupt it"),
    ("alerts", False, "--store STORE: line 1 is not a feedback record: feedback 'verdict' must be one of"),
    ("events", False, "--store STORE: line 1 is not a feedback record: feedback record needs a "
                      "string 'alert_id'"),
    ("binary", False, "--store STORE: line 1 is not a feedback record: not a JSON line"),
    ("tail", False, "--store STORE: its last line is not a feedback record"),
    ("pii", False, "--store STORE: line 1 is not a feedback record: not a riskwatch alert id: "
                   "'138****5678'"),
])
def test_cli_refuses_to_append_a_verdict_to_a_file_that_is_not_a_store(tmp_path, capsys, kind,
                                                                         alerts_flag, message):
    """A verdict was appended to any file --store named: the alerts file it was read from,
    an events file, a binary file."""
    store = tmp_path / f"{kind}.jsonl"
    content = _store_lines()[kind]
    store.write_bytes(content)
    fp = fingerprint("complaint_rate", {"region": "广东"})
    extra = ["--alerts", str(store)] if alerts_flag else []
    if alerts_flag:   # the alert must be in the file, or --alerts refuses first
        store.write_bytes(alert_line(f"{fp}-7", "complaint_rate", {"region": "广东"}).encode())
        content = store.read_bytes()
    assert main(["feedback", f"{fp}-7", "--verdict", "confirmed", "--store", str(store), *extra]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"riskwatch: error: {message.replace('STORE', str(store))}"), err
    assert err.count("\n") == 1 and "13812345678" not in err, err
    assert store.read_bytes() == content


def test_cli_verdict_after_a_store_line_without_its_newline_starts_a_line(tmp_path):
    """A store edited by hand may end without a newline: the verdict was glued to its last
    line, and the store could no longer be read."""
    store = tmp_path / "fb.jsonl"
    store.write_text(json.dumps({"alert_id": "0123456789abcdef-6", "verdict": "expected"}))
    assert main(["feedback", "0123456789abcdef-7", "--verdict", "confirmed", "--store", str(store)]) == 0
    assert [r["alert_id"] for r in load_feedback(store)] == ["0123456789abcdef-6", "0123456789abcdef-7"]
    assert main(["feedback", "0123456789abcdef-8", "--verdict", "confirmed", "--store", str(store)]) == 0
    assert store.read_text().count("\n") == 3   # no blank line added when it ends with one


@pytest.mark.parametrize("args, message", [
    # printed the report and stored nothing, without a word
    (["ID", "--verdict", "confirmed", "--report"],
     "--report only prints precision and records nothing: drop ALERT_ID and --verdict to see it"),
    (["--report", "--broker", "kafka://127.0.0.1:9"], "drop --broker to see it"),
    # ignored: the verdict was stored and one line printed
    (["ID", "--verdict", "confirmed", "--json"], "--json is only for --report"),
])
def test_cli_recording_and_reporting_are_separate_runs(tmp_path, capsys, args, message):
    store = tmp_path / "fb.jsonl"
    saved = json.dumps({"alert_id": "0123456789abcdef-6", "verdict": "expected"}).encode() + b"\n"
    store.write_bytes(saved)
    argv = [a.replace("ID", "0123456789abcdef-7") for a in args]
    assert main(["feedback", *argv, "--store", str(store)]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.count("\n") == 1, captured
    assert captured.err.startswith("riskwatch: error: ") and message in captured.err, captured.err
    assert store.read_bytes() == saved


def test_feedback_sends_to_the_broker_in_riskwatch_broker_and_says_when_it_sends_nowhere(
        tmp_path, capsys, monkeypatch):
    """The worker takes $RISKWATCH_BROKER; feedback ignored it, so with the variable set
    and no --broker a verdict was stored in the file only, and nothing said that the
    live workers never heard of it."""
    import riskwatch.commands.feedback as feedback_command

    fp = fingerprint("complaint_rate", {"region": "广东"})
    store = tmp_path / "fb.jsonl"
    monkeypatch.delenv("RISKWATCH_BROKER", raising=False)
    assert main(["feedback", f"{fp}-10", "--verdict", "confirmed", "--store", str(store)]) == 0
    assert (f"not sent to live workers (no --broker, no $RISKWATCH_BROKER): a replay applies "
            f"it with --feedback {store}") in capsys.readouterr().out

    sent = []

    async def fake_send(bootstrap, topic, line, key):   # the send itself: test_alertmanager.py
        sent.append((bootstrap, topic, json.loads(line)["alert_id"]))
    monkeypatch.setattr(feedback_command, "_send", fake_send)
    monkeypatch.setenv("RISKWATCH_BROKER", "kafka://127.0.0.1:9")
    assert main(["feedback", f"{fp}-11", "--verdict", "confirmed", "--store", str(store)]) == 0
    assert sent == [("127.0.0.1:9", "feedback", f"{fp}-11")]
    assert "sent to kafka://127.0.0.1:9 topic feedback" in capsys.readouterr().out
    # a bad variable is named as the variable, before anything is stored
    monkeypatch.setenv("RISKWATCH_BROKER", "kafka://host:notaport")
    before = store.read_bytes()
    assert main(["feedback", f"{fp}-12", "--verdict", "confirmed", "--store", str(store)]) == 2
    assert "$RISKWATCH_BROKER" in capsys.readouterr().err and store.read_bytes() == before
