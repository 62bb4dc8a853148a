"""``riskwatch replay --chdb``: the store gets every table, as from the live worker.

Until 2026-11-24 a replay into chDB stored alerts, complaints and scores but no
aggregates unless ``--aggregates-out`` was also given, so ``riskwatch report`` and
``dashboards check`` on that database said "no aggregates". Real subprocesses: the
embedded engine is bound to one path per process.
"""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from tests.streamkit import steady_stream
from tests.test_cli import riskwatch

_COUNT = """
import sys
from sinks.clickhouse import ChdbSink
sink = ChdbSink(sys.argv[1])
sink.setup()
for table in ("aggregates", "events"):
    rows = sink.query(f"SELECT count() AS n FROM riskwatch.{table} FINAL")
    print(table, rows[0]["n"])
sink.close()
"""


def _table_counts(db) -> dict[str, int]:
    r = subprocess.run([sys.executable, "-c", _COUNT, str(db)], capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stderr
    return {name: int(n) for name, n in (line.split() for line in r.stdout.splitlines())}


@pytest.fixture
def events(tmp_path):
    path = tmp_path / "events.jsonl"
    path.write_bytes(b"\n".join(steady_stream(days=1.4, incident=("广东", "中通", 26.0, 28.0, 0.3)))
                     + b"\n")
    return path


def test_replay_into_chdb_stores_aggregates_and_events(events, tmp_path):
    db = tmp_path / "chdb"
    stored = riskwatch("replay", str(events), "--alerts-out", str(tmp_path / "a.jsonl"),
                       "--chdb", str(db), "--quiet")
    assert stored.returncode == 0, stored.stderr
    agg = tmp_path / "agg.jsonl"
    files = riskwatch("replay", str(events), "--alerts-out", str(tmp_path / "b.jsonl"),
                      "--aggregates-out", str(agg), "--quiet")
    assert files.returncode == 0, files.stderr

    counts = _table_counts(db)
    assert counts["aggregates"] == len(agg.read_bytes().splitlines()) > 0
    kinds = re.search(r"orders ([\d,]+)  order_status ([\d,]+)  complaints ([\d,]+)  "
                      r"complaint_updates ([\d,]+)", stored.stdout)
    assert kinds, stored.stdout
    assert counts["events"] == sum(int(n.replace(",", "")) for n in kinds.groups()) > 0
