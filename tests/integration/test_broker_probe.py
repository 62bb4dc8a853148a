"""``riskwatch.broker.next_records`` against the real embedded broker: the offset gate's
probe (``streams/offset_gate.py``) asks it where a partition's next record is when
deliveries keep running ahead of the state."""

from __future__ import annotations

import asyncio
import os

import pytest

from riskwatch.broker import create_topics, next_records

pytestmark = pytest.mark.integration


def test_next_records_finds_the_first_record_at_or_after_an_offset(tansu, kafka):
    topic = "probe" + os.urandom(3).hex()
    asyncio.run(create_topics(tansu.bootstrap, [topic], 1))
    written = kafka.produce([(topic, b'{"n": %d}' % i) for i in range(10)])
    assert [offset for _, _, offset in written] == list(range(10))

    found = asyncio.run(next_records(tansu.bootstrap, {(topic, 0): 4}))
    assert found == {(topic, 0): (4, 0)}
    # Past the end: no record yet (the gate then keeps waiting instead of skipping).
    found = asyncio.run(next_records(tansu.bootstrap, {(topic, 0): 10}, wait=1.0))
    assert found == {(topic, 0): (None, 0)}
