"""Tests of the traffic simulator: contract, determinism, realism, ground truth, bad input."""

from __future__ import annotations

import collections
import dataclasses
import datetime as dt
import hashlib
import random
import re

import numpy as np
import orjson
import pytest

from riskwatch.calendar import Calendar
from riskwatch.errors import ConfigError
from riskwatch.events import (
    INTENTS,
    Complaint,
    ComplaintUpdate,
    Order,
    OrderStatus,
    decode_events,
    epoch_of,
)
from riskwatch.simulator import (
    SimulationConfig,
    badinput,
    calendar,
    generate,
    manifest,
    pii,
    write_files,
)
from riskwatch.simulator.incidents import KINDS
from riskwatch.simulator.seasonality import windows
from riskwatch.simulator.traffic import REPEAT_NUMBERS, STRAIN_NUMBERS
from riskwatch.simulator.texts import INTENT_PHRASES, TextComposer
from riskwatch.simulator.world import build_world

HOUR = 3600
LOCAL = 8 * HOUR

# Four days so the promotion night of day 3 has a full day of complaints after it;
# label_share=1 gives every complaint its true intent; bad input is raised so there is
# enough of it to count.
CONFIG = SimulationConfig(days=4, orders_per_day=4000, merchants=300, incidents=6,
                          label_share=1.0, malformed_share=0.004, duplicate_share=0.004,
                          late_share=0.004)


@dataclasses.dataclass
class Run:
    lines: list[tuple[int, bytes]]
    orders: dict[str, Order]
    statuses: list[OrderStatus]
    complaints: dict[str, Complaint]
    updates: list[ComplaintUpdate]
    labels: dict[str, str]
    bad_lines: int


def _decode(lines: list[tuple[int, bytes]]) -> Run:
    orders: dict[str, Order] = {}
    statuses: dict[str, OrderStatus] = {}
    complaints: dict[str, Complaint] = {}
    updates: dict[str, ComplaintUpdate] = {}
    bad = 0
    for _, line in lines:
        events, errors = decode_events(line)
        bad += bool(errors)
        for e in events:
            if isinstance(e, Order):
                orders[e.order_id] = e
            elif isinstance(e, OrderStatus):
                statuses[e.event_id] = e
            elif isinstance(e, Complaint):
                complaints[e.complaint_id] = e
            else:
                updates[e.event_id] = e
    labels = {u.complaint_id: u.intent for u in updates.values() if u.intent}
    return Run(lines, orders, list(statuses.values()), complaints, list(updates.values()),
               labels, bad)


@pytest.fixture(scope="module")
def run() -> Run:
    return _decode(list(generate(CONFIG)))


@pytest.fixture(scope="module")
def written(tmp_path_factory, run):
    out = tmp_path_factory.mktemp("sim")
    calls: list[tuple[int, float]] = []
    counts = write_files(CONFIG, out / "events.jsonl", out / "truth.json", out / "cal.json",
                         progress=lambda n, f: calls.append((n, f)))
    return out, counts, calls


def _local_hour(epoch: int) -> int:
    return (epoch + LOCAL) % 86400 // HOUR


# ----------------------------------------------------------------------------- config
@pytest.mark.parametrize(("field", "value"), [
    ("start", dt.datetime(2026, 11, 2)),          # naive
    ("start", "2026-11-02"),
    ("start", dt.datetime(1, 1, 1, tzinfo=dt.timezone.utc)),      # before UNIX time
    ("start", dt.datetime(9998, 12, 31, 12, tzinfo=dt.timezone.utc)),  # + 7 days: year 9999
    ("days", 0),
    ("days", float("nan")),
    ("orders_per_day", 0),
    ("orders_per_day", 99),                       # an empty or nearly empty stream
    ("orders_per_day", 10.5),
    ("merchants", True),
    ("seed", -1),
    ("incidents", -3),
    ("promotions", "yes"),
    ("statuses", 1),
    ("label_share", 1.5),
    ("pii_share", -0.1),
    ("malformed_share", 0.9),
    ("duplicate_share", "0.1"),
    ("late_share", float("inf")),
])
def test_config_validation_names_the_field(field, value):
    with pytest.raises(ConfigError, match=f"^{field} "):
        SimulationConfig(**{field: value})


def test_too_many_incidents_for_a_short_run_is_a_config_error():
    # in one hour, every carrier can have only one incident
    with pytest.raises(ConfigError, match="^incidents"):
        manifest(SimulationConfig(days=1 / 24, incidents=60))


def test_a_tiny_run_plans_its_surges_without_crashing(tmp_path):
    # 2.4 hours of 100 orders a day: every shop that could surge opens too late.
    # plan_surges drew a start time from an empty range (numpy: low >= high).
    counts = write_files(SimulationConfig(days=0.1, orders_per_day=100, merchants=10),
                         tmp_path / "e.jsonl", tmp_path / "m.json")
    assert counts["orders"] > 0
    surges = [i for i in orjson.loads((tmp_path / "m.json").read_bytes())["incidents"]
              if i["kind"] == "order_surge"]
    assert all(i["start"] < i["end"] for i in surges)


# ----------------------------------------------------------------------------- contract
def test_every_line_decodes_except_the_malformed_ones(run, written):
    _, counts, _ = written
    assert counts["malformed"] > 0
    assert run.bad_lines == counts["malformed"]
    assert len(run.lines) == counts["lines"]


def test_arrival_order_is_non_decreasing(run):
    arrivals = [a for a, _ in run.lines]
    assert all(a <= b for a, b in zip(arrivals, arrivals[1:]))


def test_timestamps_are_china_time_inside_the_simulation(run):
    start, end = CONFIG.start_epoch, CONFIG.end_epoch
    for e in list(run.orders.values())[:2000] + run.statuses[:2000]:
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+08:00", e.ts)
        assert start <= epoch_of(e.ts) < end


def test_write_files_writes_what_generate_yields(run, written):
    out, counts, calls = written
    data = (out / "events.jsonl").read_bytes()
    assert data == b"".join(line + b"\n" for _, line in run.lines)
    assert counts["lines"] == sum(counts[k] for k in (
        "orders", "order_status", "complaints", "complaint_updates", "malformed", "duplicates"))
    assert counts["orders"] == len(run.orders)
    assert counts["complaints"] == len(run.complaints)
    assert calls and calls[-1] == (counts["lines"], 1.0)
    assert all(a[0] < b[0] and a[1] <= b[1] for a, b in zip(calls, calls[1:]))
    truth = orjson.loads((out / "truth.json").read_bytes())
    assert truth["counts"] == {k: counts[k] for k in ("malformed", "duplicates", "late")}
    assert orjson.loads((out / "cal.json").read_bytes()) == calendar(CONFIG)


def test_same_seed_same_bytes_other_seed_other_bytes():
    small = SimulationConfig(days=1, orders_per_day=2000, merchants=100, incidents=2)

    def digest(cfg):
        h = hashlib.sha256()
        for arrival, line in generate(cfg):
            h.update(arrival.to_bytes(8, "big") + line)
        return h.hexdigest()

    assert digest(small) == digest(small)
    assert digest(small) != digest(dataclasses.replace(small, seed=8))
    assert manifest(small) == manifest(small)


def test_event_ids_are_unique_apart_from_duplicates(run, written):
    _, counts, _ = written
    ids = collections.Counter()
    for _, line in run.lines:
        events, _ = decode_events(line)
        ids.update(e.event_id for e in events)
    repeats = sum(n - 1 for n in ids.values())
    assert repeats == counts["duplicates"]


# ----------------------------------------------------------------------------- bad input
def test_duplicates_are_exact_resends_shortly_after(run, written):
    _, counts, _ = written
    first_seen: dict[bytes, int] = {}
    gaps = []
    for arrival, line in run.lines:
        if line in first_seen:
            gaps.append(arrival - first_seen[line])
        else:
            first_seen[line] = arrival
    # A malformed "{}" or "[1,2]" may repeat by chance; real re-sends are the rest.
    assert len(gaps) >= counts["duplicates"]
    assert counts["duplicates"] > 0
    assert sorted(gaps)[len(gaps) // 2] <= 300
    assert all(2 <= g <= 300 for g in sorted(gaps)[:counts["duplicates"]])


def test_late_events_arrive_hours_after_their_ts(run, written):
    _, counts, _ = written
    delays = []
    for arrival, line in run.lines:
        events, _ = decode_events(line)
        delays.extend(arrival - epoch_of(e.ts) for e in events)
    late = [d for d in delays if d >= 2 * HOUR]
    assert len(late) >= counts["late"] > 0
    assert max(delays) < 6 * HOUR + 300  # + a duplicate's re-send delay
    assert sum(d <= 3 for d in delays) > 0.95 * len(delays)


@pytest.mark.parametrize("kind", badinput.KINDS)
def test_each_malformed_kind_fails_to_decode(run, kind):
    rng = random.Random(kind)
    by_type: dict[str, bytes] = {}
    for _, line in run.lines:
        if not decode_events(line)[1]:
            by_type.setdefault(orjson.loads(line)["type"], line)
            if len(by_type) == 4:
                break
    assert set(by_type) == {"order", "order_status", "complaint", "complaint_update"}
    for line in by_type.values():
        for n in range(30):
            bad = badinput.malformed_line(rng, line, n, kind)
            assert decode_events(bad)[1], bad
            bad.decode()  # still valid UTF-8


# ----------------------------------------------------------------------------- orders
def test_daily_seasonality(run):
    hours = collections.Counter(_local_hour(epoch_of(o.ts)) for o in run.orders.values())
    night = sum(hours[h] for h in (2, 3, 4, 5))
    day = sum(hours[h] for h in (10, 11, 14, 15))
    assert night * 5 < day


def test_promotion_night_has_3_to_5x_orders_but_no_higher_complaint_rate(run):
    promos = [p for p in calendar(CONFIG) if p["kind"] == "promotion"]
    assert [p["name"] for p in promos] == ["双11预热"]
    p0, p1 = epoch_of(promos[0]["start"]), epoch_of(promos[0]["end"])
    in_promo = {o.order_id for o in run.orders.values() if p0 <= epoch_of(o.ts) < p1}
    # the same hours on the two days before
    before = [o for o in run.orders.values()
              if any(p0 - d * 86400 <= epoch_of(o.ts) < p1 - d * 86400 for d in (1, 2))]
    ratio = len(in_promo) / (len(before) / 2)
    assert 3.0 <= ratio <= 5.0
    # complaints per order, without the complaints injected by incidents
    truth = manifest(CONFIG)["incidents"]

    def injected(c: Complaint) -> bool:
        t = epoch_of(c.ts)
        return any(epoch_of(i["start"]) <= t < epoch_of(i["end"])
                   and run.labels.get(c.complaint_id) in i["extra_by_intent"]
                   and all(getattr(c, k) == v for k, v in i["dimensions"].items())
                   for i in truth)

    # ... and without the promotion strain's (test_promotion_strain_is_uneven_and_additive)
    normal = [c for c in run.complaints.values()
              if c.order_id and not injected(c) and not _strained(c)]
    old_enough = {o.order_id for o in run.orders.values() if epoch_of(o.ts) < p1}
    others = old_enough - in_promo
    rate_promo = sum(c.order_id in in_promo for c in normal) / len(in_promo)
    rate_other = sum(c.order_id in others for c in normal) / len(others)
    assert 0.6 < rate_promo / rate_other < 1.5


def _strained(c: Complaint) -> bool:
    """A complaint added by the promotion strain (numbered from STRAIN_NUMBERS)."""
    return int(c.complaint_id.removeprefix("c-")) >= STRAIN_NUMBERS and \
        int(c.complaint_id.removeprefix("c-")) < REPEAT_NUMBERS


def test_promotion_strain_is_uneven_and_additive():
    """Orders placed on a promotion night get extra logistics complaints, mostly the
    budget carriers' (PROMOTION_STRAIN); switched off, every other line is unchanged."""
    cfg = dataclasses.replace(CONFIG, orders_per_day=20000, incidents=0, days=3.5,
                              surge_incidents=0, mix_incidents=0, promotion_strain=3.0,
                              malformed_share=0.0, duplicate_share=0.0, late_share=0.0)
    lines = [line for _, line in generate(cfg)]
    plain = [line for _, line in generate(dataclasses.replace(cfg, promotion_strain=0.0))]
    known = set(plain)
    strain = [line for line in lines if line not in known]
    assert known <= set(lines) and strain
    promo = next(w for w in windows(cfg) if w.kind == "promotion")
    orders = {}
    for line in lines:
        if line.startswith(b'{"type":"order"'):
            o = orjson.loads(line)
            orders[o["order_id"]] = o
    complaints = [orjson.loads(x) for x in strain if x.startswith(b'{"type":"complaint",')]
    assert complaints and all(
        promo.start <= epoch_of(orders[c["order_id"]]["ts"]) < promo.end
        for c in complaints if c["order_id"])
    assert all(epoch_of(c["ts"]) > promo.start + 600 for c in complaints)   # the lag
    carriers = collections.Counter(c["carrier"] for c in complaints)
    assert carriers["极兔"] + carriers["申通"] > 0.6 * len(complaints)
    assert carriers["顺丰"] == carriers["京东物流"] == 0
    m = manifest(cfg)["promotion_strain"]
    assert m["enabled"] and m["carriers"]["极兔"] == pytest.approx(1 + 3 * 0.8)


def test_market_shape(run):
    orders = list(run.orders.values())
    regions = collections.Counter(o.region for o in orders)
    assert regions.most_common(1)[0][0] in {"广东", "浙江"}
    assert len(regions) >= 28 and regions["广东"] > 20 * regions.get("西藏", 0)
    carriers = collections.Counter(o.carrier for o in orders)
    assert set(carriers) == {"顺丰", "中通", "圆通", "韵达", "申通", "京东物流", "极兔", "邮政EMS"}
    merchants = collections.Counter(o.merchant_id for o in orders)
    sizes = sorted(merchants.values(), reverse=True)
    assert sizes[0] > 20 * sizes[len(sizes) // 2]  # a few huge shops, a long tail
    assert all(o.amount > 0 for o in orders)


def test_new_merchants_have_no_orders_before_opening(run):
    world = build_world(CONFIG.merchants, CONFIG.seed, CONFIG.start_epoch, CONFIG.span_seconds)
    opening = {world.merchant_ids[i]: int(world.open_at[i])
               for i in np.flatnonzero(world.open_at > CONFIG.start_epoch)}
    assert opening
    seen = 0
    for o in run.orders.values():
        if o.merchant_id in opening:
            seen += 1
            assert epoch_of(o.ts) >= opening[o.merchant_id]
    assert seen > 0


def test_order_statuses_follow_the_order(run):
    by_order = collections.defaultdict(dict)
    for s in run.statuses:
        by_order[s.order_id][s.status] = epoch_of(s.ts)
    shipped = delivered = 0
    for order_id, st in by_order.items():
        placed = epoch_of(run.orders[order_id].ts)
        if "shipped" in st:
            shipped += 1
            assert 2 * HOUR <= st["shipped"] - placed <= 36 * HOUR
        if "delivered" in st:
            delivered += 1
            assert st["delivered"] - st["shipped"] >= 86400
        assert "cancelled" not in st or "shipped" not in st
    assert shipped > 0.5 * len(run.orders) and delivered > 0.2 * len(run.orders)
    kinds = collections.Counter(s.status for s in run.statuses)
    assert kinds["exception"] and kinds["returned"] and kinds["refunded"] and kinds["cancelled"]


def test_statuses_can_be_switched_off():
    cfg = SimulationConfig(days=1, orders_per_day=1000, merchants=50, incidents=1,
                           statuses=False, malformed_share=0.0)
    types = {orjson.loads(line)["type"] for _, line in generate(cfg)}
    assert types == {"order", "complaint", "complaint_update"}


# ----------------------------------------------------------------------------- complaints
def test_complaints_refer_to_earlier_orders_and_carry_their_slice(run):
    complaints = list(run.complaints.values())
    rate = len(complaints) / len(run.orders)
    assert 0.01 < rate < 0.035  # 1.5% base plus the injected incidents
    without_order = 0
    for c in complaints:
        if c.order_id is None:
            without_order += 1
            assert c.carrier is None
            continue
        order = run.orders[c.order_id]
        assert epoch_of(c.ts) >= epoch_of(order.ts) + 600
        assert (c.merchant_id, c.region, c.carrier) == (order.merchant_id, order.region,
                                                        order.carrier)
    assert 0.01 < without_order / len(complaints) < 0.1
    assert {c.channel for c in complaints} == {"app", "hotline", "wechat", "web", "12315"}
    assert {c.customer_tier for c in complaints} == {"normal", "vip", "svip", None}


def test_declared_type_is_right_about_half_the_time(run):
    pairs = [(c.declared_type, run.labels[c.complaint_id]) for c in run.complaints.values()
             if c.complaint_id in run.labels]
    right = sum(d == t for d, t in pairs) / len(pairs)
    missing = sum(d is None for d, _ in pairs) / len(pairs)
    assert 0.4 < right < 0.6 and 0.08 < missing < 0.22
    assert {d for d, _ in pairs} - {None} <= set(INTENTS)


def test_agent_labels_and_resolutions(run):
    complaints = run.complaints
    labels = [u for u in run.updates if u.intent]
    assert len(labels) > 0.9 * len(complaints)  # label_share=1 (minus those after the end)
    for u in labels:
        lag = epoch_of(u.ts) - epoch_of(complaints[u.complaint_id].ts)
        assert 600 <= lag <= 3 * HOUR
    statuses = collections.Counter(u.status for u in run.updates if u.status)
    assert statuses["resolved"] > statuses["escalated"] > 0
    assert {u.csat for u in run.updates if u.csat is not None} == {1, 2, 3, 4, 5}


def test_label_share_is_respected():
    cfg = SimulationConfig(days=2, orders_per_day=10000, merchants=200, incidents=0,
                           label_share=0.2, malformed_share=0.0)
    r = _decode(list(generate(cfg)))
    share = len(r.labels) / len(r.complaints)
    assert 0.14 < share < 0.26


def test_night_complaints_are_pushed_to_the_morning():
    # No incidents: their complaints arrive during their window, night or day.
    cfg = SimulationConfig(days=2, orders_per_day=10000, merchants=200, incidents=0)
    r = _decode(list(generate(cfg)))
    hours = collections.Counter(_local_hour(epoch_of(c.ts)) for c in r.complaints.values())
    assert sum(hours[h] for h in range(7, 10)) > 3 * sum(hours[h] for h in range(3, 6))


# ----------------------------------------------------------------------------- texts
def test_every_intent_has_varied_wording():
    composer = TextComposer(random.Random(5), pii_share=0.3)
    texts = []
    for intent in INTENT_PHRASES:
        mine = [composer.compose(intent, category="服饰", carrier="中通", region="浙江",
                                 amount=129.0)[0] for _ in range(400)]
        assert len(set(mine)) > 300, intent
        texts += mine
    assert set(INTENT_PHRASES) == set(INTENTS)
    assert len(set(texts)) > 0.5 * len(texts)
    assert all(re.search(r"[\u4e00-\u9fff]", t) for t in texts)


def test_many_intents_in_the_stream_and_texts_vary(run):
    assert len(set(run.labels.values())) >= 11
    texts = [c.text for c in run.complaints.values()]
    assert len(set(texts)) > 0.5 * len(texts)


_ID = re.compile(r"(?<![0-9A-Za-z])\d{17}[\dXx](?![0-9A-Za-z])")
_CARD = re.compile(r"(?<!\d)62\d{2}(?: ?\d{4}){3}(?: ?\d{3})?(?!\d)")
_PHONE = re.compile(r"(?<!\d)1[3-9]\d[ -]?\d{4}[ -]?\d{4}(?!\d)|[１][３-９][０-９]{9}")
_EMAIL = re.compile(r"[\w.]+@[\w.]+\.(?:com|cn)")
_ADDRESS = re.compile(r"[市区].*?号.*?栋\d+单元\d+室")


def _personal(text: str) -> bool:
    return any(p.search(text) for p in (_ID, _CARD, _PHONE, _EMAIL, _ADDRESS))


def test_personal_data_share_and_validity(run):
    texts = [c.text for c in run.complaints.values()]
    share = sum(map(_personal, texts)) / len(texts)
    assert 0.2 < share < 0.4  # pii_share=0.3
    ids = [m for t in texts for m in _ID.findall(t)]
    cards = [m.replace(" ", "") for t in texts for m in _CARD.findall(t)]
    assert ids and cards
    assert all(pii.id_number_valid(i) for i in ids)
    assert all(pii.luhn_valid(c) and len(c) in (16, 19) for c in cards)


def test_personal_data_generators():
    rng = random.Random(11)
    ids = [pii.id_number(rng) for _ in range(2000)]
    assert all(pii.id_number_valid(i) for i in ids)
    assert any(i[-1] in "Xx" for i in ids)
    assert all(dt.date(int(i[6:10]), int(i[10:12]), int(i[12:14])) for i in ids)
    cards = [pii.bank_card(rng).replace(" ", "") for _ in range(500)]
    assert all(c.startswith("62") and pii.luhn_valid(c) for c in cards)
    phones = [pii.mobile(rng) for _ in range(1000)]
    styles = {"plain": r"1\d{10}", "spaced": r"1\d\d \d{4} \d{4}", "dashed": r"1\d\d-\d{4}-\d{4}",
              "intl": r"\+?86[ -]?1\d{10}", "fullwidth": r"[０-９]{11}"}
    for name, pattern in styles.items():
        assert any(re.fullmatch(pattern, p) for p in phones), name
    # harmless long digits: order numbers are not cards, tracking numbers keep their shape
    orders = [pii.order_number(rng) for _ in range(500)]
    assert not any(pii.luhn_valid(o) or o.startswith("62") for o in orders)
    assert re.fullmatch(r"SF\d{13}", pii.tracking_number(rng, "顺丰"))


def test_texts_carry_harmless_long_numbers(run):
    texts = " ".join(c.text for c in run.complaints.values())
    assert re.search(r"(?<!\d)[2-4]\d{18}(?!\d)", texts)       # order numbers
    assert re.search(r"(?:SF|YT|JT)\d{13}", texts)             # tracking numbers


# ----------------------------------------------------------------------------- ground truth
def test_manifest_shape_and_incident_placement():
    cfg = SimulationConfig()
    truth = manifest(cfg)
    assert set(truth) == {"version", "config", "incidents", "promotions", "promotion_strain",
                          "counts"}
    assert truth["promotion_strain"]["enabled"] and truth["promotion_strain"]["carriers"]["极兔"] == 1.8
    assert truth["version"] == 1 and truth["config"]["start"] == "2026-11-02T00:00:00+08:00"
    orjson.dumps(truth)
    incidents = [i for i in truth["incidents"] if i["kind"] in KINDS]  # complaint incidents
    assert len(incidents) == 12 and {i["kind"] for i in incidents} == set(KINDS)
    surges = [i for i in truth["incidents"] if i["kind"] == "new_shop_order_surge"]
    assert len(surges) == cfg.surge_incidents and all(i["metrics"] == ["order_surge"] for i in surges)
    mixes = [i for i in truth["incidents"] if i["kind"] == "intent_mix_shift"]
    assert len(mixes) == cfg.mix_incidents and all(i["metrics"] == ["intent_mix"] for i in mixes)
    assert len(truth["incidents"]) == len(incidents) + len(surges) + len(mixes)
    spans = []
    for i in incidents:
        s, e = epoch_of(i["start"]), epoch_of(i["end"])
        assert 1800 <= e - s <= 6 * HOUR
        assert cfg.start_epoch <= s < e <= cfg.end_epoch
        assert i["expected_extra_complaints"] >= 15 and i["multiplier"] >= 3
        assert i["intent"] in INTENTS
        spans.append((s, e, i["dimensions"]))
    assert any(_local_hour(s) < 5 for s, _, _ in spans)                    # a night one
    promos = [(epoch_of(p["start"]), epoch_of(p["end"])) for p in truth["promotions"]]
    assert any(s < p1 and p0 < e for s, e, _ in spans for p0, p1 in promos)  # one in a promo
    for a, (s1, e1, d1) in enumerate(spans):
        for s2, e2, d2 in spans[a + 1:]:
            if set(d1.items()) & set(d2.items()):
                assert e1 <= s2 or e2 <= s1  # the same slice never has two at once


def test_incidents_show_in_their_slice_and_window(run):
    truth = manifest(CONFIG)
    span_hours = CONFIG.span_seconds / HOUR
    for inc in truth["incidents"]:
        if inc["kind"] not in KINDS:
            continue  # an order surge brings no complaints (tests/detectors/test_order_surge.py)
        s, e = epoch_of(inc["start"]), epoch_of(inc["end"])
        # (labels of the last complaints may fall after the end: count unlabelled ones too)
        hits = [c for c in run.complaints.values()
                if run.labels.get(c.complaint_id, inc["intent"]) == inc["intent"]
                and all(getattr(c, k) == v for k, v in inc["dimensions"].items())]
        inside = sum(s <= epoch_of(c.ts) < e for c in hits)
        outside = len(hits) - inside
        rate_in = inside / ((e - s) / HOUR)
        rate_out = outside / (span_hours - (e - s) / HOUR)
        assert inside >= inc["expected_extra_complaints"], inc
        assert rate_in > 3 * rate_out, inc


def test_delay_incident_makes_deliveries_late():
    cfg = SimulationConfig(days=4, orders_per_day=4000, merchants=300, incidents=5, seed=3)
    inc = next(i for i in manifest(cfg)["incidents"] if i["kind"] == "carrier_region_delay")
    s, e = epoch_of(inc["start"]), epoch_of(inc["end"])
    r = _decode(list(generate(cfg)))
    jammed = (inc["dimensions"]["region"], inc["dimensions"]["carrier"])
    slice_orders = {o.order_id for o in r.orders.values() if (o.region, o.carrier) == jammed}
    deliveries = [epoch_of(st.ts) for st in r.statuses
                  if st.status == "delivered" and st.order_id in slice_orders]
    assert deliveries
    # nothing of the jammed slice is delivered while the hub is jammed
    assert not any(s <= t < e for t in deliveries)


def test_calendar_loads_in_the_pipeline():
    cal = Calendar.from_json(orjson.dumps(calendar(SimulationConfig(days=14))))
    kinds = collections.Counter(e.kind for e in cal.entries)
    assert kinds == {"promotion": 4, "maintenance": 2}
    names = [e["name"] for e in calendar(SimulationConfig(days=14)) if e["kind"] == "promotion"]
    assert names == ["双11预热", "周末大促", "双11狂欢夜", "周末大促"]
    assert calendar(SimulationConfig(days=7, promotions=False)) == [
        e for e in calendar(SimulationConfig(days=7)) if e["kind"] == "maintenance"]


def test_expected_counts_are_close_to_actual(written):
    _, counts, _ = written
    expected = manifest(CONFIG)["counts"]
    for key in ("malformed", "duplicates", "late"):
        assert 0.6 * expected[key] <= counts[key] <= 1.4 * expected[key], key
