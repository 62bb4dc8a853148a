"""An event far ahead of the stream is bad input, not the new present.

One mistyped year (``2099``) used to advance the watermark by decades: the pipeline then
closed every empty bucket in between (a replay spun for more than 11 minutes on one such
line in 20k) and counted every later event as late. ``max_time_jump_seconds`` (default
3 days) dead-letters an event further ahead than that of the latest event time (live:
of the wall clock too, so a stream resuming after an outage is accepted).
"""

from __future__ import annotations

import datetime as dt

import orjson
import pytest

from riskwatch.errors import ConfigError
from riskwatch.settings import PipelineSettings, from_env
from streams.pipeline import Pipeline
from tests.streamkit import START, iso, steady_stream

DAY = 86400


def _run(lines: list[bytes], **settings) -> Pipeline:
    p = Pipeline(PipelineSettings(**settings), keep_aggregates=True)
    p.process_lines(lines, source="events")
    p.flush()
    return p


def _order(event_id: str, epoch: float) -> bytes:
    return orjson.dumps({"type": "order", "event_id": event_id, "ts": iso(epoch),
                         "order_id": f"O-{event_id}", "merchant_id": "m1", "region": "广东",
                         "carrier": "中通", "category": "服饰", "amount": 10})


@pytest.fixture(scope="module")
def stream() -> list[bytes]:
    return steady_stream(days=1.5, orders_per_day=4000, rate=0.05)


def _outputs(p: Pipeline) -> tuple:
    return (p.out.alerts, p.out.complaints, p.out.scores, list(p.out.aggregates),
            {k: v for k, v in p.counters.items() if k not in ("bad", "messages")})


@pytest.mark.parametrize("ahead", [DAY * 365 * 73, DAY * 30, DAY * 3 + 1])
def test_an_event_too_far_ahead_is_a_dead_letter_and_changes_nothing_else(stream, ahead):
    plain = _run(stream)
    # a mistyped time a few hundred events in: the stream's time is then START + minutes
    at = 300
    latest = max(dt.datetime.fromisoformat(orjson.loads(line)["ts"]).timestamp()
                 for line in stream[:at])
    now = iso(latest)
    bad = _order("typo-1", latest + ahead)
    mixed = _run([*stream[:at], bad, *stream[at:]])
    assert _outputs(mixed) == _outputs(plain)   # alerts, tables, late count: all unchanged
    assert mixed.counters["bad"] == plain.counters["bad"] + 1
    [letter] = [d for d in mixed.out.dead_letters if d["event_id"] == "typo-1"]
    assert letter["reason"] == "invalid field"
    assert "days ahead of the latest event time" in letter["detail"]
    assert "--max-time-jump-seconds 259200" in letter["detail"] and "$.ts" in letter["detail"]
    assert now[:10] in letter["detail"]


def test_a_gap_within_the_limit_is_taken_and_a_longer_one_needs_the_limit_off():
    first = [_order(f"a{i}", START.timestamp() + 60 * i) for i in range(50)]
    after = [_order(f"b{i}", START.timestamp() + 2.5 * DAY + 60 * i) for i in range(50)]
    p = _run([*first, *after])
    assert p.counters["orders"] == 100 and p.counters["bad"] == 0
    later = [_order(f"c{i}", START.timestamp() + 5 * DAY + 60 * i) for i in range(50)]
    p = _run([*first, *later])
    # the first of them is refused, and so is every one after it: loud, not silent
    assert p.counters["orders"] == 50 and p.counters["bad"] == 50
    p = _run([*first, *later], max_time_jump_seconds=0)
    assert p.counters["orders"] == 100 and p.counters["bad"] == 0


def test_live_the_wall_clock_counts_as_the_present():
    """A worker restarted after a week's outage: its state's latest event is a week old,
    the new events are now. They are accepted; one from next year still is not."""
    old = [_order(f"a{i}", START.timestamp() + 60 * i) for i in range(20)]
    p = Pipeline(PipelineSettings())
    p.process_lines(old, source="events")
    p.now_epoch = START.timestamp() + 7 * DAY
    p.process_lines([_order("next-year-1", START.timestamp() + 372 * DAY)]
                    + [_order(f"n{i}", START.timestamp() + 7 * DAY + 60 * i) for i in range(20)],
                    source="events")
    assert p.counters["orders"] == 40 and p.counters["bad"] == 1
    [letter] = p.out.dead_letters
    assert letter["event_id"] == "next-year-1" and "ahead of the wall clock" in letter["detail"]


def test_the_setting_is_checked(monkeypatch):
    with pytest.raises(ConfigError, match="max_time_jump_seconds must be >= 0"):
        PipelineSettings(max_time_jump_seconds=-1)
    monkeypatch.setenv("RISKWATCH_MAX_TIME_JUMP_SECONDS", "3600")
    assert from_env().max_time_jump_seconds == 3600
