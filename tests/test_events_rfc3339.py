"""Event times are RFC 3339 (§5.6) with an offset, not whatever ISO 8601 fromisoformat takes.

Through :func:`epoch_of`, :func:`decode_events`, the pipeline's replay (whose per-event
loop inlines epoch_of's fast path) and the business calendar file.
"""

from __future__ import annotations

import orjson
import pytest

from riskwatch.calendar import Calendar
from riskwatch.errors import CalendarError
from riskwatch.events import decode_events, epoch_of
from streams.pipeline import Pipeline
from streams.replay import replay_file

CANONICAL = "2026-11-02T10:26:17+08:00"
EPOCH = 1793586377   # CANONICAL, 2026-11-02T02:26:17Z

#: RFC 3339 timestamps (and what they are in whole UNIX seconds).
ACCEPTED = [
    (CANONICAL, EPOCH),
    ("2026-11-02T02:26:17Z", EPOCH),
    ("2026-11-02T02:26:17z", EPOCH),                 # §5.6 note: "Z" may be lowercase
    ("2026-11-02t02:26:17Z", EPOCH),                 # ... and so may "T"
    ("2026-11-02t10:26:17+08:00", EPOCH),
    ("2026-11-02T10:26:17.5+08:00", EPOCH),          # fractions: a dot, any digits, floored
    ("2026-11-02T10:26:17.123456789+08:00", EPOCH),
    ("2026-11-01T21:56:17-04:30", EPOCH),
    ("2026-11-02T02:26:17-00:00", EPOCH),            # §4.3 unknown local offset
    ("2016-12-31T23:59:60Z", 1483228799),            # leap second: counted as :59
    ("2017-01-01T07:59:60+08:00", 1483228799),
]

#: ISO 8601 forms (or plain mistakes) that are not RFC 3339.
REJECTED = [
    "2026-11-02T10:26+08:00",          # no seconds
    "2026-11-02T03+08:00",             # hour only
    "2026-W45-1T10:26:00+08:00",       # week date (25 characters, like the canonical form)
    "2026-306T10:26:17+08:00",         # ordinal date
    "2026-11-02T10:26:17+0800",        # offset without colon
    "2026-11-02T10:26:17+08",          # offset hours only
    "2026-11-02T10:26:17+08:00:00",    # offset with seconds
    "20261102T032617+08:00",           # basic format
    "2026-11-02T032617+08:00",
    "2026-11-02T10:26:17,5+08:00",     # comma fraction
    "2026-11-02T10:26:17.+08:00",      # dot without digits
    "2026-11-02 10:26:17+08:00",       # space separator: only "by agreement", not ours
    "2026-11-02T10:26:17+08:00 ",      # trailing space
    "2026-11-02T10:26:17+08:00\n",
    "2026-11-02T10:26:17+0800 ",       # 25 characters with the canonical's fixed positions
    "2026-11-02T10:26:17 08:00",
    "２026-11-02T10:26:17+08:00",      # a non-ASCII digit
    "2026-02-30T10:26:17+08:00",       # no such date
    "2026-11-02T24:00:00+08:00",       # hour 24
    "2026-11-02T10:60:17+08:00",
    "2026-11-02T10:26:61+08:00",
    "2026-11-02T10:26:17+24:00",       # offset out of range
    "2026-11-02T10:26:17+08:60",
]


@pytest.mark.parametrize("ts, epoch", ACCEPTED)
def test_rfc3339_times_are_accepted(ts, epoch):
    assert epoch_of(ts) == epoch_of(ts) == epoch      # second call: from a cache
    events, bad = decode_events(_order("ok", ts))
    assert bad == [] and events[0].epoch == epoch


@pytest.mark.parametrize("ts", REJECTED)
def test_iso8601_times_that_are_not_rfc3339_are_rejected(ts):
    epoch_of(CANONICAL)   # the fast path's caches know this minute and offset
    with pytest.raises(ValueError, match="is not RFC 3339") as info:
        epoch_of(ts)
    assert "expected YYYY-MM-DDTHH:MM:SS" in str(info.value)
    _, bad = decode_events(_order("bad", ts))
    assert bad[0].reason == "invalid field" and bad[0].detail.endswith("- at `$.ts`")
    assert "is not RFC 3339" in bad[0].detail and bad[0].event_id == "bad"


def test_a_time_without_offset_still_says_so():
    with pytest.raises(ValueError, match="has no UTC offset"):
        epoch_of("2026-11-02T10:26:17")
    with pytest.raises(ValueError, match="has no UTC offset"):
        epoch_of("2026-11-02 10:26")


def test_replay_dead_letters_non_rfc3339_times_and_processes_lowercase_z(tmp_path):
    # Canonical events first: the inlined fast path then knows the minute and the offset
    # of every rejected variant below, which must still not get through it.
    good = [_order("g1", CANONICAL), _order("g2", "2026-11-02T10:26:18+08:00"),
            _order("z1", "2026-11-02T02:26:19z"), _order("t1", "2026-11-02t10:26:20+08:00"),
            _order("leap", "2026-11-02T10:26:60+08:00")]
    bad = [_order(f"b{i}", ts) for i, ts in enumerate(t for t in REJECTED if "\n" not in t)]
    array = b"[" + _order("a1-good", "2026-11-02T02:26:21Z") + b"," \
        + _order("a1-bad", "2026-11-02T10:26+08:00") + b"]"
    path = tmp_path / "events.jsonl"
    path.write_bytes(b"\n".join(good + bad + [array]) + b"\n")
    letters = []
    p = Pipeline(keep_events=True)
    result = replay_file(p, path, on_output=lambda out: letters.extend(out.dead_letters))
    by_id = {d["event_id"]: d for d in letters}
    assert sorted(by_id) == sorted([f"b{i}" for i in range(len(bad))] + ["a1-bad"])
    for letter in letters:
        assert letter["reason"] == "invalid field"
        assert "is not RFC 3339" in letter["detail"] and "`$.ts`" in letter["detail"]
        assert "expected YYYY-MM-DDTHH:MM:SS" in letter["detail"]
    assert by_id["a1-bad"]["index"] == 1
    assert result["events"] == len(good) + 1   # the lowercase-z, "t" and leap ones too
    assert result["bad"] == len(bad) + 1
    assert p.counters["bad"] == len(bad) + 1


def test_the_calendar_file_follows_the_same_rule():
    def entry(start, end="2026-11-11T02:00:00+08:00"):
        return orjson.dumps([{"name": "D11", "start": start, "end": end, "kind": "promotion"}])

    cal = Calendar.from_json(entry("2026-11-10t12:00:00z"))
    assert cal.entries[0].start == epoch_of("2026-11-10T20:00:00+08:00")
    for start in ("2026-11-10T20:00:00+0800", "2026-11-10 20:00:00+08:00", "2026-11-10T20:00+08:00"):
        with pytest.raises(CalendarError, match="entry 0 .* is not RFC 3339"):
            Calendar.from_json(entry(start))
    with pytest.raises(CalendarError, match="has no UTC offset"):
        Calendar.from_json(entry("2026-11-10T20:00:00"))


def _order(event_id: str, ts: str) -> bytes:
    return orjson.dumps({"type": "order", "event_id": event_id, "ts": ts, "order_id": f"o-{event_id}",
                         "merchant_id": "m1", "region": "广东", "carrier": "中通",
                         "category": "服饰", "amount": 9.9})
