"""The replay summary counts the alerts of every metric, as the alerts file holds them.

Until 2026-11-24 its ``alerts fired`` counted complaint-rate pages only: a replay
whose file held 15 complaint-rate and 2 order-surge episodes said ``alerts fired 15``.
"""

from __future__ import annotations

import re

import orjson
import pytest

from tests.test_cli import riskwatch


def test_summary_counts_episodes_of_every_metric(tmp_path):
    ev, alerts = tmp_path / "ev.jsonl", tmp_path / "alerts.jsonl"
    r = riskwatch("simulate", "--out", str(ev), "--days", "2", "--orders-per-day", "20000",
                  "--incidents", "2", "--surge-incidents", "1", "--merchants", "300")
    assert r.returncode == 0, r.stderr
    r = riskwatch("replay", str(ev), "--alerts-out", str(alerts), "--quiet")
    assert r.returncode == 0, r.stderr
    records = [orjson.loads(line) for line in alerts.read_bytes().splitlines()]
    assert len({a["metric"] for a in records}) > 1, "the stream should page on two metrics"
    said = re.search(r"alerts fired (\d+)  escalated (\d+)  resolved (\d+)", r.stdout)
    assert said, r.stdout
    fired, _, resolved = map(int, said.groups())
    assert fired == len({a["alert_id"] for a in records})
    assert resolved == sum(a["status"] == "resolved" for a in records)


# -- what the summary says about input it could not use -----------------------------------
# Each of these was unsaid, exit 0: a user saw "dead letters 1,234" (or nothing wrong at
# all) and had to guess, or to have given --dead-letters-out, to learn why.

def _orders(prefix: str, start: str, n: int) -> list[bytes]:
    import datetime as dt

    t0 = dt.datetime.fromisoformat(start)
    return [orjson.dumps({"type": "order", "event_id": f"{prefix}{i}",
                          "ts": (t0 + dt.timedelta(minutes=i)).isoformat(),
                          "order_id": f"O-{prefix}{i}", "merchant_id": "m1", "region": "广东",
                          "carrier": "中通", "category": "服饰", "amount": 10})
            for i in range(n)]


def _warnings(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("riskwatch: warning: ")]


def test_a_gap_longer_than_the_time_jump_limit_is_said_with_the_fix(tmp_path):
    # Two one-day files 17 days apart, concatenated: the second one was dead-lettered
    # whole, exit 0, and the reason was only in a --dead-letters-out file if one was given.
    events = tmp_path / "both.jsonl"
    events.write_bytes(b"\n".join(_orders("a", "2026-11-02T00:00:00+08:00", 30)
                                  + _orders("b", "2026-11-19T00:00:00+08:00", 40)) + b"\n")
    r = riskwatch("replay", str(events), "--alerts-out", str(tmp_path / "a.jsonl"), "--quiet")
    assert r.returncode == 0, r.stderr
    assert "dead letters 40 (too far ahead in time 40)  " in r.stdout
    ahead, unsaved = _warnings(r.stderr)
    assert ahead.startswith("riskwatch: warning: 40 events were dead-lettered, not processed, "
                            "as more than --max-time-jump-seconds 259200 (3 days) ahead")
    assert "replay with a larger --max-time-jump-seconds (0: no limit)" in ahead
    assert unsaved.startswith("riskwatch: warning: 40 dead letters were not saved: give "
                              "--dead-letters-out FILE")
    # the fix the warning names works, and with the letters saved nothing is left to say
    r = riskwatch("replay", str(events), "--alerts-out", str(tmp_path / "a.jsonl"), "--quiet",
                  "--max-time-jump-seconds", "0")
    assert r.returncode == 0 and "dead letters 0 " in r.stdout and r.stderr == "", r.stderr
    r = riskwatch("replay", str(events), "--alerts-out", str(tmp_path / "a.jsonl"), "--quiet",
                  "--dead-letters-out", str(tmp_path / "dl.jsonl"))
    assert len(_warnings(r.stderr)) == 1 and "not saved" not in r.stderr
    assert len((tmp_path / "dl.jsonl").read_bytes().splitlines()) == 40


def test_dead_letters_are_counted_by_reason(tmp_path):
    events = tmp_path / "ev.jsonl"
    good = _orders("a", "2026-11-02T00:00:00+08:00", 5)
    events.write_bytes(b"\n".join([*good, b"{not json", b"[1]", b'{"type":"order"}',
                                   b"{also not"]) + b"\n")
    r = riskwatch("replay", str(events), "--alerts-out", str(tmp_path / "a.jsonl"), "--quiet",
                  "--dead-letters-out", str(tmp_path / "dl.jsonl"))
    assert r.returncode == 0 and r.stderr == "", r.stderr
    assert "dead letters 4 (malformed json 2, missing field 1, not an object 1)  " in r.stdout


@pytest.mark.parametrize("content, counts", [
    # pretty-printed JSON: the file is JSON, not JSONL
    (orjson.dumps([{"type": "order", "event_id": f"e{i}"} for i in range(3)],
                  option=orjson.OPT_INDENT_2), "malformed json 8, not an object 6"),
    (b"order_id,merchant_id\nO1,m1\nO2,m2\n", "malformed json 3"),   # a CSV
])
def test_an_input_without_one_valid_event_is_an_error_after_its_outputs(content, counts, tmp_path):
    events = tmp_path / "some.json"
    events.write_bytes(content)
    lines = len(content.splitlines())
    r = riskwatch("replay", str(events), "--alerts-out", str(tmp_path / "a.jsonl"), "--quiet",
                  "--dead-letters-out", str(tmp_path / "dl.jsonl"))
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert r.stderr.splitlines() == [
        f"riskwatch: error: no valid events in {events} ({lines} lines dead-lettered: {counts}); "
        "is it JSONL, one event per line?"]
    assert len((tmp_path / "dl.jsonl").read_bytes().splitlines()) == lines   # still written
    assert f"dead letters {lines} ({counts})" in r.stdout   # and the summary printed


@pytest.mark.parametrize("content", [b"", b"\n\n"])
def test_an_empty_input_is_a_warning_not_an_error(content, tmp_path):
    events = tmp_path / "empty.jsonl"
    events.write_bytes(content)
    r = riskwatch("replay", str(events), "--alerts-out", str(tmp_path / "a.jsonl"), "--quiet")
    assert r.returncode == 0, r.stderr
    assert _warnings(r.stderr) == [f"riskwatch: warning: no events in {events}: it is empty"
                                   + (" but for blank lines" if content else "")]
