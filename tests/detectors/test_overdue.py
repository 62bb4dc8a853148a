"""Overdue deliveries: a lane whose deliveries stall pages ``overdue_delivery``; healthy
lanes, a slower lane and a busier day do not; the state stays bounded."""

from __future__ import annotations

import collections
import datetime as dt
import pickle
import random

import orjson

from riskwatch.calendar import Calendar
from riskwatch.settings import PipelineSettings
from streams.signals import SignalStage

DAY = 86400
LANES = [("广东", "中通"), ("浙江", "中通"), ("广东", "顺丰"), ("四川", "邮政")]
JAM = ("广东", "中通")


def _run(days: float, jam_at: int | None, seed: int = 5):
    """Each lane ships ~4 parcels a bucket; transit 1-2 days (邮政 2-4 days). With a jam,
    the jammed lane's deliveries due in the 18 hours after ``jam_at`` are held a day
    (as the simulator's hub jam: those due during it and 12 hours after)."""
    rng = random.Random(seed)
    stage = SignalStage(PipelineSettings(), warmup_buckets=288, quiet_buckets=6)
    deliveries: dict[int, list] = collections.defaultdict(list)
    alerts, n = [], 0
    for b in range(int(days * 288)):
        bstart = b * 300
        for lane in LANES:
            for _ in range(rng.randint(2, 6) * (2 if 288 * 2 <= b < 288 * 2 + 48 else 1)):
                n += 1
                order = f"o{n}"
                stage.delivery.lanes.current[order] = lane
                shipped = bstart + rng.randrange(300)
                stage.delivery.on_status(bstart, shipped, order, "shipped")
                slow = 2.0 if lane[1] == "邮政" else 1.0
                at = shipped + int(rng.uniform(1.0, 2.0) * slow * DAY)
                if jam_at is not None and lane == JAM and jam_at <= at < jam_at + 18 * 3600:
                    at += DAY
                deliveries[at - at % 300].append((at, order))
        for at, order in deliveries.pop(bstart, ()):
            stage.delivery.on_status(bstart, at, order, "delivered")
        alerts += stage.close(bstart, {}, Calendar())
    return stage, alerts


def test_a_stalled_lane_pages_overdue_and_healthy_lanes_do_not():
    jam = 4 * DAY + 10 * 3600
    stage, alerts = _run(6, jam)
    fired = [a for a in alerts if a["status"] == "firing"]
    assert fired, "the jam was not seen"
    assert {a["metric"] for a in fired} == {"overdue_delivery"}
    assert orjson.loads(orjson.dumps(alerts)) == alerts   # plain JSON for every sink
    scopes = {tuple(sorted(a["dimensions"].items())) for a in fired}
    assert (("carrier", "中通"), ("region", "广东")) in scopes
    assert all(a["dimensions"].get("region", "广东") == "广东"
               and a["dimensions"]["carrier"] == "中通" for a in fired)
    first = min(dt.datetime.fromisoformat(a["ts"]).timestamp() for a in fired)
    # Parcels fall overdue only when their lane's transit time has passed: a jam shows
    # within hours, not minutes (the complaint rate is the fast signal).
    assert jam < first <= jam + 12 * 3600
    assert len({a["alert_id"] for a in fired if "region" in a["dimensions"]}) == 1  # no flapping
    assert any(a["status"] == "resolved" for a in alerts)
    assert stage.delivery.expired == 0


def test_no_jam_no_overdue_alert_and_bounded_state():
    stage, alerts = _run(6, None)
    assert alerts == []
    tracker = stage.delivery
    # Only parcels within the horizon are tracked: about the last 4 days' shipments
    # of the slow lane and 2 days' of the others, not the whole run.
    assert len(tracker.in_flight) < 4 * 288 * 6 * 2
    size = len(pickle.dumps(stage))
    assert size < 4_000_000


def test_overdue_scorer_priors_and_levels_per_row_equal_their_definition():
    """The scorer's per-row arrays (parent row, lane or carrier, first bucket) give what
    looking each lane up gives: a lane's prior is its carrier's rate (a lane seen before
    its carrier adopts it when it arrives), a carrier's the market's; lanes only have
    the raised alarm level; a watched lane without due parcels adds nothing to the market."""
    from streams.delivery import OverdueScorer

    scorer = OverdueScorer()
    rng = random.Random(3)
    scorer.close(0, {("广东", "中通"): [5, 1]}, set(), learning=True, warmup_buckets=0)
    assert scorer.parent_row[scorer.rows[("广东", "中通")]] == -1   # its carrier not seen yet
    for b in range(1, 200):
        due = {}
        for lane in LANES:
            n = rng.randint(0, 12)
            late = sum(rng.random() < 0.15 for _ in range(n))
            for key in (lane, (None, lane[1])):
                counts = due.setdefault(key, [0, 0])
                counts[0] += n
                counts[1] += late
        scorer.close(b, due, set(), learning=b < 20, warmup_buckets=0)
    for key, row in scorer.rows.items():
        parent = scorer.parent_row[row]
        if key[0] is None:
            assert parent == -1 and not scorer.is_lane[row]
        else:
            assert scorer.is_lane[row] and scorer.keys[parent] == (None, key[1])
    market = (scorer.market_due, scorer.market_overdue)
    quiet = ("四川", "邮政")
    scorer.close(200, {}, {quiet}, learning=False, warmup_buckets=0)
    fade = 0.5 ** (1.0 / scorer.bank.half_life)
    assert (scorer.market_due, scorer.market_overdue) == (market[0] * fade, market[1] * fade)
    signals = scorer.close(201, {}, {quiet}, learning=False, warmup_buckets=0)
    assert [s.key for s in signals] == [("overdue_delivery", ("carrier", "邮政"), ("region", "四川"))]
    assert signals[0].observed == 0.0 and signals[0].contributors[0]["due"] == 0
