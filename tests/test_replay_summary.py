"""The replay summary counts the alerts of every metric, as the alerts file holds them.

Until 2026-11-24 its ``alerts fired`` counted complaint-rate pages only: a replay
whose file held 15 complaint-rate and 2 order-surge episodes said ``alerts fired 15``.
"""

from __future__ import annotations

import re

import orjson

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
