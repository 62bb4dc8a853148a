"""sinks.clickhouse.native_block: the sink's block encoding is the driver's, byte for byte.

No server: both encodings run against an in-memory socket (``native_block.encode``) and
the bytes are compared for random columns of every type the sink sends, with NULLs,
values the fast path must leave to the driver (datetimes, bools, strings in a number
column) and values out of range, for the protocol revision of this driver and for an
old one (Debian's 18.16 negotiates 54,4xx: no custom-serialization byte).  The real
server's view of the same inserts is in ``tests/integration/test_clickhouse_server.py``.
"""

from __future__ import annotations

import datetime as dt
import random

import pytest
from clickhouse_driver import defines
from clickhouse_driver.errors import TypeMismatchError

from sinks.clickhouse.native_block import encode, writer_for

TZ = dt.timezone(dt.timedelta(hours=8))
OLD_REVISION = defines.DBMS_MIN_REVISION_WITH_CUSTOM_SERIALIZATION - 1
REVISIONS = [defines.CLIENT_REVISION, OLD_REVISION]


def random_column(rng: random.Random, type_: str, n: int) -> list:
    nullable = type_.startswith("Nullable(")
    inner = type_[9:-1] if nullable else type_

    def value():
        if nullable and rng.random() < 0.4:
            return None
        if inner.startswith("DateTime"):
            return rng.randint(0, 2**32 - 1)
        if inner.startswith("Float"):
            return rng.choice([rng.uniform(-1e6, 1e6), rng.randint(-5, 5), 0.0, float("inf")])
        if inner.startswith("UInt"):
            return rng.randint(0, 2 ** (int(inner[4:]) - 1))
        if inner.startswith("Int"):
            bits = int(inner[3:])
            return rng.randint(-2 ** (bits - 1), 2 ** (bits - 1) - 1)
        return rng.choice([b"", "广东".encode(), b"x" * rng.randint(1, 300)])
    return [value() for _ in range(n)]


TYPES = ["DateTime('Asia/Shanghai')", "DateTime", "Nullable(Float64)", "Nullable(Float32)",
         "Nullable(Int32)", "Nullable(UInt64)", "Nullable(DateTime('Asia/Shanghai'))",
         "UInt32", "Float64", "Int64", "String"]


@pytest.mark.parametrize("revision", REVISIONS)
@pytest.mark.parametrize("seed", range(5))
def test_random_blocks_are_the_drivers_bytes(seed: int, revision: int) -> None:
    rng = random.Random(seed)
    types = [(f"c{i}", t) for i, t in enumerate(rng.sample(TYPES, k=rng.randint(1, len(TYPES))))]
    n = rng.choice([1, 7, 1000, 20_000])
    data = [random_column(rng, t, n) for _name, t in types]
    fast = encode(types, data, revision=revision)
    assert fast == encode(types, data, fast=False, revision=revision)


@pytest.mark.parametrize("type_, values", [
    ("DateTime('Asia/Shanghai')", [dt.datetime(2026, 11, 2, 8, tzinfo=TZ), 1793577600]),
    ("Nullable(DateTime('Asia/Shanghai'))", [None, dt.datetime(2026, 11, 2, 8, tzinfo=TZ)]),
    ("Nullable(Float64)", [True, None, 1.5]),  # a bool: the driver decides what it is
    ("Nullable(Int32)", [None, 2.0]),           # a float in an integer column: an error
    ("Nullable(Float64)", [None, None]),         # nothing but NULLs
])
def test_values_the_fast_path_leaves_to_the_driver(type_: str, values: list) -> None:
    def outcome(fast: bool) -> bytes | str:
        try:
            return encode([("c", type_)], [values], fast=fast)
        except TypeMismatchError as exc:
            return str(exc)
    assert outcome(True) == outcome(False)


@pytest.mark.parametrize("type_, values", [
    ("DateTime", [2**32]), ("Nullable(UInt32)", [None, -1]), ("Nullable(Int32)", [2**31]),
])
def test_values_out_of_range_fail_as_in_the_driver(type_: str, values: list) -> None:
    with pytest.raises(TypeMismatchError):
        encode([("c", type_)], [values], fast=False)
    with pytest.raises(TypeMismatchError):
        encode([("c", type_)], [values])


def test_the_callers_lists_are_not_changed() -> None:
    values = [None, 1.5, None]
    writer = writer_for("Nullable(Float64)")

    class Buffer(bytearray):
        write = bytearray.extend
    buffer = Buffer()
    assert writer(values, buffer)
    assert values == [None, 1.5, None]  # a retry converts the same block again
    assert bytes(buffer[:3]) == b"\x01\x00\x01"


def test_only_columns_the_driver_loops_over_have_a_writer() -> None:
    assert writer_for("DateTime('Asia/Shanghai')") and writer_for("Nullable(UInt8)")
    for type_ in ("String", "UInt32", "Float64", "LowCardinality(String)", "Array(String)",
                  "Map(String, UInt32)", "DateTime64(3, 'Asia/Shanghai')", "Nullable(String)"):
        assert writer_for(type_) is None, type_


def test_columns_of_different_lengths_are_refused() -> None:
    with pytest.raises(ValueError, match="Different rows length"):
        encode([("a", "DateTime"), ("b", "DateTime")], [[1, 2], [1]])
