"""A flood of malformed messages (20 000, every kind the simulator makes, cut from
complaints that carry personal data) between good ones: every one is dead-lettered with
its reason at its offset, no letter leaks personal data, the worker neither crashes nor
stalls, and the good events around the flood are processed as replay processes them."""

from __future__ import annotations

import os
import random
import time

import orjson
import pytest

from riskwatch.simulator.badinput import KINDS, malformed_line
from streams.app import TopicNames
from streams.pipeline import Pipeline
from streams.text.pii import contains_unmasked_pii
from tests.faults.harness import SETTINGS, WORKER_ARGS, dead_letter_set, stream_messages

pytestmark = [pytest.mark.faults, pytest.mark.integration]

FLOOD = 20_000
MIN_MESSAGES_PER_S = 300   # faust costs ~0.6 ms a message here; a tenth of that is "sane"


def _flood() -> list[bytes]:
    rng = random.Random(5)
    events = [e for m in stream_messages()[:600] if m.startswith(b'[{"') for e in orjson.loads(m)]
    with_pii = [orjson.dumps(e) for e in events
                if e.get("type") == "complaint" and isinstance(e.get("text"), str)]
    assert any(contains_unmasked_pii(line.decode()) for line in with_pii)
    return [malformed_line(rng, rng.choice(with_pii), n, KINDS[n % len(KINDS)]) for n in range(FLOOD)]


def test_malformed_flood_is_dead_lettered(tansu, kafka, start_worker):
    good = list(stream_messages()[:100])
    messages = good[:50] + _flood() + good[50:]
    oracle = Pipeline(SETTINGS)
    oracle.process_lines(messages, source="oracle")
    expected = {(d["offset"] - 1, d["reason"]) for d in oracle.drain().dead_letters}
    flood_offsets = set(range(50, 50 + FLOOD))
    assert flood_offsets <= {o for o, _ in expected}, "a flood message the pipeline accepts"

    prefix = "fl" + os.urandom(3).hex() + "-"
    topics = TopicNames.with_prefix(prefix, single_input=True)
    worker = start_worker(broker_url=tansu.url, prefix=prefix, extra=WORKER_ARGS)
    worker.wait_ready(timeout=60)
    kafka.produce([(topics.orders, m) for m in messages])
    started = time.monotonic()
    stats = worker.wait_processed(len(messages), timeout=240)
    elapsed = time.monotonic() - started
    assert worker.alive and stats["agent_errors"] == 0
    assert stats["pipeline"]["orders"] == oracle.stats["orders"]
    records = kafka.read(topics.dead_letters)
    rate = len(messages) / elapsed
    print(f"\nmalformed flood: {FLOOD} bad of {len(messages)} messages in {elapsed:.1f}s "
          f"({rate:.0f} messages/s incl. produce), {len(records)} dead letters")
    assert dead_letter_set(records) == expected
    assert all(orjson.loads(r.value)["reason"] for r in records)
    # dead_letter_id is random hex: 11 of its digits in a row can look like a mobile number.
    leaked = [r.offset for r in records if contains_unmasked_pii(orjson.dumps(
        {k: v for k, v in orjson.loads(r.value).items() if k != "dead_letter_id"}).decode())]
    assert not leaked, f"dead letters with personal data at {leaked[:5]}"
    assert rate >= MIN_MESSAGES_PER_S
    assert worker.stop() == 0
