"""The server sink's encodings kept per slice across batches (sinks/clickhouse/repeat_cache.py).

What matters: the bytes on the wire are those the driver sends for the same values without
the cache, whatever repeats, changes or is mutated between batches; and memory stays
within the limit.
"""

from __future__ import annotations

import random
from collections.abc import Iterator

import pytest

from riskwatch.errors import ConfigError
from sinks.clickhouse.repeat_cache import RepeatCache
from sinks.clickhouse.schema import TABLES
from sinks.clickhouse.server_sink import ClickHouseServerSink, _InsertPlan, encode_block


class Counting:
    """An encoder that says which values it was asked for."""

    def __init__(self) -> None:
        self.calls: list[list] = []

    def __call__(self, values: list) -> list:
        self.calls.append(list(values))
        return [repr(sorted(v.items())) if isinstance(v, dict) else repr(v) for v in values]


def test_a_repeated_value_is_encoded_once_and_a_changed_one_again() -> None:
    encode = Counting()
    cache = RepeatCache(encode, limit=10)
    dims = [{"region": "广东"}, {"carrier": "中通"}]
    assert cache(["a", "b", "a"], [dims[0], dims[1], dict(dims[0])]) == [
        "[('region', '广东')]", "[('carrier', '中通')]", "[('region', '广东')]"]
    assert cache(["b", "a"], [{"carrier": "中通"}, {"region": "广东"}]) == [
        "[('carrier', '中通')]", "[('region', '广东')]"]
    assert len(encode.calls) == 1  # the second batch: all hits, no encoder call
    assert cache(["a", "b"], [{"region": "浙江"}, {"carrier": "中通"}]) == [
        "[('region', '浙江')]", "[('carrier', '中通')]"]
    assert encode.calls[-1] == [{"region": "浙江"}]  # only what changed


def test_a_key_whose_value_changes_within_a_batch_gets_each_value() -> None:
    encode = Counting()
    cache = RepeatCache(encode, limit=10)
    cache(["s"], [{}])
    got = cache(["s", "s", "s", "t", "t"], [{"x": 1}, {}, {"x": 2}, {"y": 1}, {"y": 1}])
    assert got == ["[('x', 1)]", "[]", "[('x', 2)]", "[('y', 1)]", "[('y', 1)]"]
    assert cache(["s", "t"], [{"x": 1}, {"y": 1}]) == ["[('x', 1)]", "[('y', 1)]"]


def test_a_map_changed_after_it_was_handed_over_is_not_sent_stale() -> None:
    cache = RepeatCache(Counting(), limit=10)
    intents = {"refund": 1}
    assert cache(["s"], [intents]) == ["[('refund', 1)]"]
    intents["refund"] = 2  # the same object, now another value
    assert cache(["s"], [intents]) == ["[('refund', 2)]"]
    nested = {"a": [1]}  # not a flat map: never kept, always encoded
    cache(["n"], [nested])
    nested["a"].append(2)
    assert cache(["n"], [nested]) == ["[('a', [1, 2])]"]


def test_memory_stays_within_the_limit_and_odd_keys_fall_back() -> None:
    encode = Counting()
    cache = RepeatCache(encode, limit=3)
    for start in range(0, 20, 2):
        keys = [f"k{start}", f"k{start + 1}"]
        assert cache(keys, [{"k": k} for k in keys]) == [repr([("k", k)]) for k in keys]
        assert len(cache) <= 3
    big = [f"b{i}" for i in range(10)]  # one batch of more keys than the limit
    assert cache(big, big) == [repr(k) for k in big] and len(cache) == 3
    assert cache([["unhashable"]], ["v"]) == ["'v'"]
    with pytest.raises(ValueError):
        RepeatCache(Counting(), limit=0)
    with pytest.raises(ConfigError, match="repeat_cache_keys"):
        ClickHouseServerSink("clickhouse://127.0.0.1/riskwatch", repeat_cache_keys=-1)


def _aggregate_batches(seed: int) -> Iterator[list[dict]]:
    """Aggregate rows as the pipeline makes them, slices recurring over 6 batches, with
    intents that come and go and a slice whose dimensions map is mutated in place."""
    rng = random.Random(seed)
    slices = [("all", {})] + [(f"region={r}", {"region": r}) for r in ("广东", "浙江")] + [
        (f"region={r}|carrier={c}", {"region": r, "carrier": c})
        for r in ("广东", "浙江", "四川") for c in ("中通", "顺丰")] + [
        (f"merchant_id=m{m:03d}", {"merchant_id": f"m{m:03d}"}) for m in range(40)]
    shared = {"merchant_id": "m-shared"}
    for batch in range(6):
        rows = []
        for bucket in range(3):
            start = f"2026-11-02T{batch:02d}:{bucket * 5:02d}:00+08:00"
            for name, dims in rng.sample(slices, 30) + [("merchant_id=m-shared", shared)]:
                complaints = rng.choice([0, 0, 0, 1, 2])
                rows.append({
                    "bucket_start": start, "bucket_end": start, "slice": name,
                    "dimensions": dims if dims is shared else dict(dims),
                    "orders": rng.randint(0, 9), "complaints": complaints,
                    "exposure": rng.random(), "expected": rng.choice([None, 1.5]),
                    "score": 0.0, "sensitive": 0,
                    "intents": {} if not complaints else {"refund": complaints}})
        yield rows
        shared["merchant_id"] = f"m-shared-{batch}"  # a caller reusing its map object


@pytest.mark.parametrize("profile", ["legacy", "modern"])
@pytest.mark.parametrize("as_blocks", [False, True])
def test_cached_batches_put_the_drivers_bytes_on_the_wire(profile: str, as_blocks: bool) -> None:
    """Batch after batch, the cached plan sends what an uncached plan sends for the same
    rows, and what the driver sends for those values as text (no strings_as_bytes)."""
    cached = _InsertPlan.of(TABLES["aggregates"], "riskwatch", profile)
    plain = _InsertPlan.of(TABLES["aggregates"], "riskwatch", profile, cache_keys=0)
    assert set(cached.repeats) == {"dimensions"} and not plain.repeats
    for rows in _aggregate_batches(seed=3):
        # The bytes the driver sends for these values, taken before the cache sees them.
        _sql, expected = plain.build(rows)
        expected_wire = encode_block(plain.types[:len(expected)], expected)
        if as_blocks:
            block = {name: [r[name] for r in rows] for name in rows[0]}
            _sql, data = cached.build_columns(block, len(rows))
        else:
            _sql, data = cached.build(rows)
        assert encode_block(cached.types[:len(data)], data) == expected_wire
    assert 0 < len(cached.repeats["dimensions"]) <= 50


def test_the_sink_passes_its_cache_size_to_its_plans() -> None:
    off = ClickHouseServerSink("clickhouse://127.0.0.1/riskwatch", profile="legacy",
                               repeat_cache_keys=0)
    off._client = object()  # as setup() leaves it; _plan needs no server
    assert off._plan("aggregates").repeats == {}
    on = ClickHouseServerSink("clickhouse://127.0.0.1/riskwatch", profile="legacy",
                              repeat_cache_keys=7)
    on._client = object()
    assert {c.limit for c in on._plan("aggregates").repeats.values()} == {7}
    assert on._plan("alerts").repeats == {}  # other tables' rows do not recur
