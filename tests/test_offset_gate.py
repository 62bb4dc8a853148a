"""The offset gate against a model of how faust hands out messages around seeks.

The model keeps what made the old gate lose and double messages (a CI run lost 42
after a standby takeover; local runs processed hundreds twice): the consumer fetches in
batches, the drain loop keeps handing out the batch it holds after a seek, faust drops
offsets below the highest it handed out (its read offset), a seek resets that read
offset a moment after it lands, and the agent takes messages from a queue. Whatever the
interleaving, the state must take exactly the offsets after the checkpoint, in order.
No broker here: the fault suite (``tests/faults/test_standby_takeover.py``,
``test_kill_restart.py``) runs the same gate against the real one.
"""

from __future__ import annotations

import random

import pytest

from streams.offset_gate import ADMIT, AHEAD, REDELIVERED, SEEK_INTERVAL, OffsetGate

KEY = ("orders", 0)


class FaustModel:
    """One partition as faust's consumer hands it to an agent."""

    def __init__(self, log_end: int, committed: int, rng: random.Random, *,
                 final_end: int | None = None) -> None:
        self.log_end, self.rng = log_end, rng
        self.final_end = final_end or log_end   # the producer keeps writing up to here
        self.highwater: int | None = None       # the log end as of the last fetch
        self.fetch_at = committed          # faust resumes at the committed offset...
        self.in_hand: list[int] = []       # the fetched batch the drain loop iterates
        self.read_offset: int | None = None
        self.queue: list[int] = []         # handed out, not yet taken by the agent
        self.pending_read_offset: int | None = None

    def step(self) -> None:
        move = self.rng.random()
        if self.log_end < self.final_end and move < 0.2:
            self.log_end = min(self.log_end + self.rng.randint(1, 12), self.final_end)  # live traffic
        elif self.pending_read_offset is not None and move < 0.3:
            self.read_offset, self.pending_read_offset = self.pending_read_offset, None
        elif not self.in_hand and self.fetch_at < self.log_end:
            size = self.rng.randint(1, 40)
            self.in_hand = list(range(self.fetch_at, min(self.fetch_at + size, self.log_end)))
            self.fetch_at += len(self.in_hand)
            self.highwater = self.log_end
        elif self.in_hand:
            offset = self.in_hand.pop(0)
            if self.read_offset is None or offset >= self.read_offset:
                self.queue.append(offset)
                self.read_offset = offset
            # else: faust drops it ("DROPPED MESSAGE ROFF")

    def seek(self, offset: int) -> None:
        """Position moves now; the batch in hand is still handed out; the read offset
        follows a moment later (set by the caller's thread)."""
        self.fetch_at = offset
        self.pending_read_offset = offset


def run_gate(seed: int, *, checkpoint: int = 100, log_end: int = 400,
             final_end: int | None = None) -> tuple[list[int], OffsetGate]:
    rng = random.Random(seed)
    committed = rng.randint(checkpoint - 60, checkpoint + 60)
    faust = FaustModel(log_end, committed, rng, final_end=final_end)
    gate, positions = OffsetGate(), {KEY: checkpoint - 1}
    gate.open_window(KEY)                # the restore
    seek_back_at = rng.randint(0, 30)    # the post-rebalance seek to the checkpoint
    taken: list[int] = []
    now = 0.0
    for step in range(60_000):
        now += 0.01
        if step == seek_back_at:
            faust.seek(checkpoint)
            gate.open_window(KEY)
        if rng.random() < 0.6:
            faust.step()
        elif faust.queue:
            offset = faust.queue.pop(0)
            verdict = gate.check(positions, KEY, offset, log_end=faust.highwater, now=now)
            if verdict == ADMIT:
                taken.append(offset)
                positions[KEY] = offset
            elif verdict == AHEAD:
                target = gate.seek_due(positions, KEY, now)
                if target is not None:
                    faust.seek(target)
                    gate.seek_done(KEY, now)
            else:
                assert verdict == REDELIVERED
        elif gate.stuck and step % 100 == 0:          # the wall-clock tick
            target = gate.seek_due(positions, KEY, now)
            if target is not None:
                faust.seek(target)
                gate.seek_done(KEY, now)
        if positions[KEY] == faust.final_end - 1 and not faust.queue and not faust.in_hand:
            break
    return taken, gate


@pytest.mark.parametrize("seed", range(150))
def test_every_offset_after_the_checkpoint_is_taken_once_in_order(seed):
    assert run_gate(seed)[0] == list(range(100, 400))


@pytest.mark.parametrize("seed", range(100))
def test_the_same_while_the_log_keeps_growing(seed):
    """Live traffic: seek windows end at a log end that moves (the end must be the one
    known after the seek, or a message fetched before it could pass as a gap)."""
    assert run_gate(seed, log_end=150, final_end=450)[0] == list(range(100, 450))


def test_the_model_exercises_the_hard_cases():
    """The interleavings above must include what broke the old gate: stale deliveries
    after the checkpoint's message (old gate: taken twice) and messages faust dropped
    below its read offset (old gate: lost when a later one was taken)."""
    runs = [run_gate(seed)[1].counters for seed in range(150)]
    assert sum(c["redelivered"] > 0 for c in runs) > 30
    assert sum(c["ahead"] > 0 for c in runs) > 30


def test_offsets_without_a_record_are_passed_over_only_on_the_brokers_word():
    gate, positions = OffsetGate(), {KEY: 99}
    gate.open_window(KEY)
    assert gate.check(positions, KEY, 250, log_end=300, now=0.0) == AHEAD
    assert gate.record_at(positions, KEY, None) == 0, "no record found: keep waiting"
    assert gate.record_at(positions, KEY, 100, log_start=0) == 0, "100 exists: keep waiting"
    assert positions[KEY] == 99
    assert gate.record_at(positions, KEY, 250, log_start=250) == 150   # retention
    assert positions[KEY] == 249 and gate.counters["no_record"] == 150
    assert gate.check(positions, KEY, 250) == ADMIT


def test_gaps_in_the_log_itself_are_admitted_outside_a_seek_window():
    """Transaction markers take offsets no consumer sees; in steady state the state
    takes the next record after one, and counts the gap."""
    gate, positions = OffsetGate(), {KEY: 9}
    records = [o for o in range(10, 60) if o % 10 != 5]     # a marker at every x5
    for offset in records:
        assert gate.check(positions, KEY, offset, log_end=60) == ADMIT
        positions[KEY] = offset
    assert gate.counters["gaps"] == 5 and gate.counters["ahead"] == 0
    # Right after a seek the same gap is held back until the state reaches the end
    # of what was fetched before it (then the broker probe, or that end, settles it).
    gate.open_window(KEY)
    positions[KEY] = 14
    assert gate.check(positions, KEY, 16, log_end=60) == AHEAD
    positions[KEY] = 60
    assert gate.check(positions, KEY, 62, log_end=80) == ADMIT, "past the window's end"


def test_seeks_are_spaced_and_one_at_a_time():
    gate, positions = OffsetGate(), {KEY: 99}
    gate.open_window(KEY)
    gate.check(positions, KEY, 120, now=10.0)
    assert gate.seek_due(positions, KEY, 10.0) == 100
    assert gate.seek_due(positions, KEY, 11.0) is None, "the first is still in flight"
    gate.seek_done(KEY, 11.0)
    assert gate.seek_due(positions, KEY, 11.0 + SEEK_INTERVAL / 2) is None
    assert gate.seek_due(positions, KEY, 11.0 + SEEK_INTERVAL) == 100
    gate.check(positions, KEY, 100, now=12.0)
    assert gate.seek_due(positions, KEY, 13.0) is None, "caught up: nothing to seek"


def test_a_stuck_partition_is_probed_then_reported_at_intervals():
    from streams.offset_gate import PROBE_AFTER, PROBE_INTERVAL

    gate, positions = OffsetGate(), {KEY: 99}
    gate.open_window(KEY)
    gate.check(positions, KEY, 120, now=0.0)
    assert not gate.probe_due(KEY, PROBE_AFTER / 2)
    assert gate.probe_due(KEY, PROBE_AFTER)
    assert not gate.probe_due(KEY, PROBE_AFTER + 1), "asked again only after the interval"
    assert gate.probe_due(KEY, PROBE_AFTER + PROBE_INTERVAL)
    assert not gate.report_due(KEY, PROBE_INTERVAL - 1)
    assert gate.report_due(KEY, PROBE_INTERVAL)
    gate.check(positions, KEY, 100, now=40.0)
    assert not gate.report_due(KEY, 100.0), "admitted again: nothing to report"


def test_revoked_partitions_are_forgotten_and_a_restore_opens_windows():
    gate, other = OffsetGate(), ("orders", 1)
    gate.open_window(KEY)
    gate.open_window(other)
    gate.check({other: 9}, other, 20, now=0.0)
    gate.keep_only({KEY})
    assert set(gate.windows) == {KEY} and not gate.stuck
    gate.check({KEY: 9}, KEY, 20, now=0.0)
    gate.restored([KEY, other])
    assert not gate.stuck and gate.windows == {KEY: None, other: None}
