"""Checkpoint files without a broker: exact resume, atomic numbered files, and a restart
that survives a corrupt or incompatible checkpoint (fast; runs in ``make test``)."""

from __future__ import annotations

import asyncio
import collections
import json
import logging
import pickle
import types

import pytest

from riskwatch.errors import CheckpointError
from streams.agents import BacklogClock
from streams.checkpoint import (MAGIC, CheckpointStore, LiveCheckpointer, encode_state,
                                settings_digest)
from streams.pipeline import Pipeline
from tests.faults.harness import SETTINGS, stream_messages

DIGEST = settings_digest(SETTINGS)


def _run(pipeline: Pipeline, lines: list[bytes], first: int) -> list:
    pipeline.process_lines(lines, source="t", first_offset=first)
    out = pipeline.drain()
    letters = [{k: v for k, v in d.items() if k != "ts"} for d in out.dead_letters]  # ts: wall clock
    return [out.alerts, out.aggregates, out.complaints, out.scores, letters]


def test_resumed_pipeline_equals_uninterrupted(tmp_path):
    lines = list(stream_messages()[:2400])   # two and a half days: alerts on both sides
    half = 1500
    straight = Pipeline(SETTINGS, keep_aggregates=True)
    first_half = _run(straight, lines[:half], 1)
    expected = _run(straight, lines[half:], half + 1)

    resumed = Pipeline(SETTINGS, keep_aggregates=True)
    assert _run(resumed, lines[:half], 1) == first_half
    store = CheckpointStore(tmp_path, settings_digest=DIGEST)
    store.write(encode_state(resumed, {("t", 0): half}), {("t", 0): half})
    del resumed
    ckpt = store.load_latest()
    assert ckpt.positions == {("t", 0): half}
    got = _run(ckpt.pipeline, lines[half:], half + 1)
    assert expected[0], "no alert after the checkpoint: the comparison would be weak"
    assert got == expected


def test_checkpoint_from_before_shared_order_values_resumes_exactly(tmp_path):
    # Pipelines written before Pipeline._shared_values existed (same STATE_VERSION) load
    # with a fresh table and go on exactly as an uninterrupted run.
    lines = list(stream_messages()[:1200])
    half = 700
    straight = Pipeline(SETTINGS, keep_aggregates=True)
    _run(straight, lines[:half], 1)
    expected = _run(straight, lines[half:], half + 1)

    old = Pipeline(SETTINGS, keep_aggregates=True)
    _run(old, lines[:half], 1)
    del old._shared_values   # what the previous code pickled
    store = CheckpointStore(tmp_path, settings_digest=DIGEST)
    store.write(encode_state(old, {("t", 0): half}), {("t", 0): half})
    restored = store.load_latest().pipeline
    assert restored._shared_values == {}
    assert _run(restored, lines[half:], half + 1) == expected


def test_files_are_numbered_atomic_and_pruned(tmp_path):
    store = CheckpointStore(tmp_path, settings_digest=DIGEST, keep=3)
    for i in range(5):
        store.write(encode_state(Pipeline(SETTINGS), {("t", 0): i}), {("t", 0): i})
    assert [seq for seq, _ in store.paths()] == [5, 4, 3]
    assert not list(tmp_path.glob(".tmp-*")), "a temp file was left behind"
    assert store.load_latest().positions == {("t", 0): 4}


@pytest.mark.parametrize("damage", ["truncate", "flip", "garbage", "empty"])
def test_corrupt_newest_is_skipped_for_the_previous(tmp_path, caplog, damage):
    store = CheckpointStore(tmp_path, settings_digest=DIGEST)
    store.write(encode_state(Pipeline(SETTINGS), {("t", 0): 10}), {("t", 0): 10})
    newest = store.write(encode_state(Pipeline(SETTINGS), {("t", 0): 20}), {("t", 0): 20})
    data = newest.read_bytes()
    newest.write_bytes({"truncate": data[: len(data) // 2],
                        "flip": data[:-100] + bytes([data[-100] ^ 0xFF]) + data[-99:],
                        "garbage": b"\x00" * 64, "empty": b""}[damage])
    with caplog.at_level(logging.WARNING, logger="streams.checkpoint"):
        ckpt = store.load_latest()
    assert ckpt is not None and ckpt.positions == {("t", 0): 10}
    assert "ignoring corrupt checkpoint" in caplog.text and newest.name in caplog.text


def _rewrite_header(path, **changes):
    data = path.read_bytes()
    end = data.index(b"\n", len(MAGIC))
    header = json.loads(data[len(MAGIC):end])
    header.update(changes)
    path.write_bytes(MAGIC + json.dumps(header).encode() + data[end:])


@pytest.mark.parametrize("changes", [{"state": 999}, {"python": "2.7"}, {"format": 0},
                                     {"riskwatch": "0.0.1"}, {"settings": "another"}])
def test_incompatible_checkpoint_is_a_clear_error(tmp_path, changes):
    store = CheckpointStore(tmp_path, settings_digest=DIGEST)
    path = store.write(encode_state(Pipeline(SETTINGS), {}), {})
    _rewrite_header(path, **changes)
    with pytest.raises(CheckpointError, match="incompatible worker") as info:
        store.load_latest()
    assert not info.value.corrupt
    assert next(iter(changes)) in str(info.value)


def test_state_the_code_no_longer_has_is_incompatible(tmp_path):
    store = CheckpointStore(tmp_path, settings_digest=DIGEST)
    body = pickle.dumps({"pipeline": types.SimpleNamespace(), "positions": {}})
    body = body.replace(b"SimpleNamespace", b"SimpleNamespacX")   # a class since removed
    store.write(body, {})
    with pytest.raises(CheckpointError, match="does not match this version of the code"):
        store.load_latest()


def _runtime(pipeline: Pipeline) -> types.SimpleNamespace:
    runtime = types.SimpleNamespace(pipeline=pipeline, positions={}, pending_letters=[],
                                    clock=BacklogClock(start=0.0))
    runtime.replace_pipeline = lambda p: setattr(runtime, "pipeline", p)
    return runtime


TP = collections.namedtuple("TP", "topic partition")


def _assigned(*tps):
    return {TP(t, p) for t, p in tps}


def test_worker_starts_fresh_on_an_incompatible_checkpoint(tmp_path, caplog):
    store = CheckpointStore(tmp_path, settings_digest=DIGEST)
    old = Pipeline(SETTINGS)
    old.counters["messages"] = 7
    _rewrite_header(store.write(encode_state(old, {("t", 0): 7}), {("t", 0): 7}), state=0)
    fresh = Pipeline(SETTINGS)
    runtime = _runtime(fresh)
    with caplog.at_level(logging.INFO, logger="streams.checkpoint"):
        LiveCheckpointer(store).on_assigned(runtime, _assigned(("t", 0)))   # must not raise
    assert runtime.pipeline is fresh and runtime.positions == {}
    assert "cannot use checkpoint" in caplog.text and "starting with empty state" in caplog.text


def test_an_incompatible_checkpoint_says_what_differs_and_how_to_keep_it(tmp_path, caplog):
    """A restart with a mistyped setting said only "settings '9c6e356fb81945d9' !=
    '4d40a29f5ae7cf52'", then replaced the learned state's files with its own
    checkpoints (three kept): the operator learned neither which setting nor that the
    state was about to go."""
    CheckpointStore(tmp_path, settings_digest=DIGEST).write(encode_state(Pipeline(SETTINGS), {}), {})
    store = CheckpointStore(tmp_path, settings_digest="another")
    with caplog.at_level(logging.INFO, logger="streams.checkpoint"):
        LiveCheckpointer(store).on_assigned(_runtime(Pipeline(SETTINGS)), _assigned(("t", 0)))
    assert "(other pipeline settings: --bucket-seconds," in caplog.text
    assert (f"The files in {tmp_path} are deleted once this worker has written 3 checkpoints: "
            "to keep that state, stop this worker and start it with the settings and version "
            "that wrote them") in caplog.text


def test_worker_restores_state_positions_and_clock(tmp_path):
    store = CheckpointStore(tmp_path, settings_digest=DIGEST)
    old = Pipeline(SETTINGS)
    old.process_lines(list(stream_messages()[:200]), source="t")
    store.write(encode_state(old, {("t", 0): 200}, wall=1234.5), {("t", 0): 200})
    runtime = _runtime(Pipeline(SETTINGS, keep_aggregates=True))
    checkpointer = LiveCheckpointer(store)
    checkpointer.on_assigned(runtime, _assigned(("t", 0)))
    assert runtime.pipeline.counters == old.counters
    assert runtime.pipeline.keep_aggregates          # this run's settings win
    assert runtime.positions == {("t", 0): 199}      # last processed offset
    assert runtime.clock.now == 1234.5
    tps = _assigned(("t", 0), ("t", 1))
    # A partition the checkpoint never saw is read from its start.
    assert sorted((tp.partition, o) for tp, o in checkpointer.resume_offsets(runtime, tps).items()) \
        == [(0, 200), (1, 0)]


def test_layout_change_without_version_bump_is_caught(tmp_path):
    store = CheckpointStore(tmp_path, settings_digest=DIGEST)
    old = Pipeline(SETTINGS)
    del old.__dict__["feedback"]       # as if written by a version without that attribute
    store.write(encode_state(old, {}), {})
    runtime = _runtime(fresh := Pipeline(SETTINGS))
    LiveCheckpointer(store).on_assigned(runtime, _assigned(("t", 0)))
    assert runtime.pipeline is fresh


class _Consumer:
    """Stands in for faust's consumer in these broker-less unit tests: records the
    seeks asked for and reports a fixed end offset."""

    def __init__(self, highwater: int | None = None) -> None:
        self.seeks: list[tuple[str, int, int]] = []
        self.highwater_value = highwater

    def highwater(self, tp):
        return self.highwater_value

    async def seek(self, tp, offset):
        self.seeks.append((tp.topic, tp.partition, offset))


def _msg(topic, partition, offset):
    return types.SimpleNamespace(topic=topic, partition=partition, offset=offset,
                                 tp=TP(topic, partition))


def test_the_restored_state_takes_exactly_the_next_offset(tmp_path):
    store = CheckpointStore(tmp_path, settings_digest=DIGEST)
    store.write(encode_state(Pipeline(SETTINGS), {("t", 0): 100}), {("t", 0): 100})
    runtime = _runtime(Pipeline(SETTINGS))
    runtime.app = types.SimpleNamespace(consumer=_Consumer(highwater=500))
    checkpointer = LiveCheckpointer(store)
    checkpointer.on_assigned(runtime, _assigned(("t", 0)))

    def admit(offset, topic="t"):
        ok = asyncio.run(checkpointer.admit(runtime, _msg(topic, 0, offset)))
        if ok:
            runtime.positions[(topic, 0)] = offset     # what handle_message does
        return ok

    # faust resumed fetching at the committed offset before seeking back to 100
    assert not admit(105)
    assert runtime.app.consumer.seeks == [("t", 0, 100)], "ahead of the state: sought back"
    assert not admit(99)                      # a redelivery: skipped, no seek
    assert [admit(o) for o in (100, 101)] == [True, True]
    # Stale fetches keep arriving after the state moved on: neither taken twice nor
    # skipped over (the gate before 2026-11-24 took both: 100 twice, 102..104 never).
    assert not admit(100)
    assert not admit(105)
    assert admit(102)
    assert checkpointer.gate.counters["redelivered"] == 2
    assert checkpointer.gate.counters["ahead"] == 2
    # A log that no longer holds the state's position (recreated topic, empty broker).
    runtime.app.consumer.highwater_value = 40
    assert admit(3)
    assert admit(7, topic="other")            # a partition the state never saw
    assert checkpointer.stats()["offsets"]["log_restarts"] == 1
