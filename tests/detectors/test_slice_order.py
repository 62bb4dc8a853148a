"""The complaint-rate close puts slices in key order without sorting them per close.

:class:`streams.detection.SliceScorer` keeps every known key's place in the sorted order
(a rank per row) and orders a close's slices by it. These tests hold it to what sorting
each close's keys gave: evaluations in key order, alarm levels counting a kind's new
slices in key order, the same after a checkpoint round trip, and keys with a
non-string value falling back to per-close sorting (as text).
"""

from __future__ import annotations

import math
import pickle
import random

from riskwatch.settings import PipelineSettings
from streams.detection import SliceScorer
from streams.slicing import COMPLAINT_FIELDS, key_builder

REGIONS = ["广东", "浙江", "江苏", "四川", "北京"]
CARRIERS = ["中通", "圆通", "顺丰"]


def _bucket(rng: random.Random, build, merchants: int):
    orders, complaints = {}, {}
    for _ in range(rng.randint(5, 40)):
        region, carrier = rng.choice(REGIONS), rng.choice(CARRIERS)
        merchant = f"m{rng.randrange(merchants):04d}"
        orders[(region, merchant, carrier, "服饰")] = rng.randint(1, 30)
        for key in build(region, merchant, carrier, "服饰", rng.choice(["lost_parcel", "refund"])):
            complaints[key] = complaints.get(key, 0) + 1
    return orders, complaints


def _reference_levels(scorer: SliceScorer, known: set, per_kind: dict, keys) -> list[float]:
    """Levels as the per-key loop computed them: a kind's count grows key by key."""
    out = []
    for key in keys:
        if key not in known:
            known.add(key)
            per_kind[key[0]] = per_kind.get(key[0], 0) + 1
        n = per_kind[key[0]]
        out.append(scorer.bank.threshold + math.log(n / 30.0) if n > 30 else scorer.bank.threshold)
    return out


def test_close_orders_slices_and_counts_new_ones_in_key_order():
    settings = PipelineSettings()
    build = key_builder(settings.slices, COMPLAINT_FIELDS)
    rng = random.Random(11)
    scorer = SliceScorer(settings)
    known, per_kind = {scorer.global_key}, {}
    restored = None
    for bucket in range(60):
        # Shops keep arriving: most closes create slices between known ones.
        orders, complaints = _bucket(rng, build, merchants=20 + 5 * bucket)
        out = scorer.close(bucket, 10, orders, complaints, set())
        keys = [e.key for e in out[1:]]
        assert out[0].key == scorer.global_key
        assert keys == sorted(set(complaints) - {scorer.global_key})
        assert [e.level for e in out[1:]] == _reference_levels(scorer, known, per_kind, keys)
        if bucket == 30:   # a checkpoint: the key order is rebuilt on load
            restored = pickle.loads(pickle.dumps(scorer))
            assert "rank" not in scorer.__getstate__()
        elif restored is not None:
            again = restored.close(bucket, 10, orders, complaints, set())
            assert [(e.key, e.level, e.expected, e.evidence) for e in again] == \
                [(e.key, e.level, e.expected, e.evidence) for e in out]
    assert max(per_kind.values()) > 30   # levels above the base level were checked too


def test_a_key_with_a_non_string_value_falls_back_to_sorting_as_text():
    settings = PipelineSettings()
    scorer = SliceScorer(settings)
    region = settings.slices.index(("region",))
    first = {(region, "广东"): 2, (region, "浙江"): 1}
    scorer.close(0, 10, {("广东", "m1", "中通", "服饰"): 10}, first, set())
    assert scorer.sorted_keys is not None
    odd = {(region, "广东"): 1, (region, 7): 1, (region, 10): 1}
    out = scorer.close(1, 10, {("广东", "m1", "中通", "服饰"): 10}, odd, set())
    assert scorer.sorted_keys is None
    assert [e.key for e in out[1:]] == [(region, 10), (region, 7), (region, "广东")]


def _fields(evaluations) -> list[tuple]:
    """Every field of every evaluation, floats by their repr (0.0 and -0.0 differ)."""
    return [tuple(repr(getattr(e, f)) for f in e.__struct_fields__) for e in evaluations]


def test_small_closes_in_python_are_the_numpy_close_to_the_bit():
    """A close of a few slices runs in plain Python (``SliceScorer._phase_few``); fed
    the same buckets, it must leave every evaluation field and every bit of state where
    the numpy close leaves them: new slices (their ranks merged late, by a large close
    or a checkpoint), quiet gaps, incidents that alarm and are protected, warm-up,
    alerts' extra keys, resets, and large closes in between."""
    settings = PipelineSettings()
    build = key_builder(settings.slices, COMPLAINT_FIELDS)
    rng = random.Random(23)
    numpy_only, mixed = SliceScorer(settings), SliceScorer(settings)
    numpy_only.small_phase = 0
    alarmed = small = 0
    restored = False
    for bucket in range(400):
        big = bucket % 37 == 36
        orders, complaints = _bucket(rng, build, merchants=40 + bucket // 4)
        if big:   # a large close (numpy in both): many shops at once
            for _ in range(4):
                more_orders, more = _bucket(rng, build, merchants=400)
                orders.update(more_orders)
                for k, v in more.items():
                    complaints[k] = complaints.get(k, 0) + v
        if 100 <= bucket < 130:   # an incident: one shop's complaints jump
            for key in build("广东", "m0001", "中通", "服饰", "lost_parcel"):
                complaints[key] = complaints.get(key, 0) + 6
        extra = set(rng.sample(sorted(numpy_only.rows), 5)) if numpy_only.rows else set()
        args = (bucket, bucket // 12 % 24, orders, complaints, extra, 30)
        want, got = numpy_only.close(*args), mixed.close(*args)
        assert _fields(got) == _fields(want), bucket
        small += len(got) <= mixed.small_phase + 1
        alarmed += sum(e.alarmed for e in got)
        for name in ("last_bucket", "cum_seen", "ex_row", "parent_row", "row_kind"):
            assert getattr(mixed, name).tobytes() == getattr(numpy_only, name).tobytes(), name
        used = len(numpy_only.bank)   # (a restored bank has no spare capacity)
        assert mixed.bank.state[:used].tobytes() == numpy_only.bank.state[:used].tobytes()
        if bucket % 50 == 7:
            key = rng.choice(sorted(numpy_only.rows))
            numpy_only.reset(key)
            mixed.reset(key)
        if bucket > 200 and not restored and mixed._unranked:
            # a checkpoint with keys not merged into the order yet
            mixed, restored = pickle.loads(pickle.dumps(mixed)), True
    mixed._rank_unranked()
    assert mixed.sorted_keys == numpy_only.sorted_keys
    assert mixed.rank.tobytes() == numpy_only.rank.tobytes()
    assert restored and small > 100 and alarmed > 10
