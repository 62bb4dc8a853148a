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
