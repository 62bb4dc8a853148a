"""Replay's fast paths give exactly what the per-message path gives.

``Pipeline.process_lines`` (replay), JSON-array messages (batching producers) and
``replay_lines``' chunking are faster ways to run the same per-event code; these tests
feed the same messages both ways, with every kind of trouble mixed in (malformed lines,
bad timestamps, duplicates, late events, arrays, blank lines), and compare every output.
The exposure and intent-model caches are checked against a from-scratch computation.
"""

from __future__ import annotations

import pickle
import random

import numpy as np
import orjson
import pytest

import streams.pipeline as pipeline_module
import streams.replay as replay_module
from riskwatch.settings import DEFAULT_SLICES
from streams.exposure import ExposureBook
from streams.pipeline import Outputs, Pipeline
from streams.replay import replay_lines
from streams.text.intent import IntentClassifier
from tests.streamkit import START, TEXTS, decode_event_by_event, iso, steady_stream


def _comparable(out: Outputs) -> dict:
    """Outputs as plain data, minus the dead letters' wall-clock ``ts``."""
    data = {kind: list(records) for kind, records in out.items()}
    data["dead_letters"] = [{k: v for k, v in d.items() if k != "ts"} for d in data["dead_letters"]]
    return orjson.loads(orjson.dumps(data))


def _per_message(lines: list[bytes], **kw) -> tuple[dict, dict]:
    p = Pipeline(keep_events=True, keep_aggregates=True, **kw)
    for n, line in enumerate(lines, 1):
        p.process(line, source="file", partition=None, offset=n)
    p.flush()
    return _comparable(p.drain()), p.stats


def _troubled_stream(seed: int = 5) -> list[bytes]:
    """A day of traffic with bad, duplicate, late and array lines mixed in."""
    rng = random.Random(seed)
    lines = steady_stream(days=1.0, orders_per_day=8000, rate=0.05, seed=seed)
    late = orjson.dumps({"type": "order", "event_id": "late-1", "ts": iso(START.timestamp() + 60),
                         "order_id": "L1", "merchant_id": "m1", "region": "广东",
                         "carrier": "中通", "category": "服饰", "amount": 1})
    bad_ts = orjson.dumps({"type": "order_status", "event_id": "bt-1", "ts": "昨天下午三点",
                           "order_id": "O1", "status": "shipped"})
    complaint = orjson.dumps({"type": "complaint", "event_id": "late-c", "ts": iso(START.timestamp() + 90),
                              "complaint_id": "lc1", "order_id": "O3", "merchant_id": "m2",
                              "region": "浙江", "carrier": "顺丰", "channel": "app",
                              "text": TEXTS["damaged"] + " 电话13812345678"})
    trouble = [b"not json", b'{"type":"order"', b"[1,2]", b"{}", b"42", bad_ts,
               b'{"type":"order_v2","event_id":"x1","ts":"2026-11-02T10:00:00+08:00"}']
    out: list[bytes] = []
    for i, line in enumerate(lines):
        out.append(line)
        if rng.random() < 0.004:
            out.append(rng.choice(trouble))
        if rng.random() < 0.003:
            out.append(line)                       # an exact re-send
        if rng.random() < 0.002:                   # a batching producer's array
            out.append(b"[" + b",".join(lines[max(0, i - 3):i + 1]) + b"]")
        if i == len(lines) // 2:
            out += [late, complaint]
    return out


def test_process_lines_equals_process_per_message():
    lines = _troubled_stream()
    expected, expected_stats = _per_message(lines)
    p = Pipeline(keep_events=True, keep_aggregates=True)
    sizes = [1, 7, 500, 3, 20_000]
    i = 0
    while i < len(lines):
        n = sizes[i % len(sizes)]
        p.process_lines(lines[i:i + n], source="file", first_offset=i + 1)
        i += n
    p.flush()
    assert expected_stats["bad"] > 0 and expected_stats["duplicates"] > 0 and expected_stats["late"] > 0
    assert p.stats == expected_stats
    assert _comparable(p.drain()) == expected


def test_replay_lines_chunks_and_blank_lines(monkeypatch):
    lines = _troubled_stream(seed=8)
    with_blanks = []
    for i, line in enumerate(lines):
        with_blanks.append(line + b"\n")
        if i % 997 == 0:
            with_blanks.append(b"  \n")
    # the same lines one message each, blank lines skipped but numbered
    p = Pipeline(keep_events=True, keep_aggregates=True)
    for n, line in enumerate(with_blanks, 1):
        if line.strip():
            p.process(line, source="file", partition=None, offset=n)
    p.flush()
    expected = _comparable(p.drain())

    monkeypatch.setattr(replay_module, "_DRAIN_EVERY", 997)  # blank lines at chunk ends too
    q = Pipeline(keep_events=True, keep_aggregates=True)
    got = Outputs()
    hand_offs = []

    def on_output(out: Outputs) -> None:
        hand_offs.append(len(out))
        for kind, records in out.items():
            getattr(got, kind).extend(records)

    result = replay_lines(q, iter(with_blanks), source="file", on_output=on_output)
    assert result["blank_lines"] == sum(1 for line in with_blanks if not line.strip())
    assert result["lines"] == len(with_blanks)
    assert len(hand_offs) > 10
    assert _comparable(got) == expected


def test_array_messages_take_the_fast_path_with_the_same_results(monkeypatch):
    lines = steady_stream(days=0.5, orders_per_day=8000, rate=0.05, seed=9)
    messages = [b"[" + b",".join(lines[i:i + 25]) + b"]" for i in range(0, len(lines), 25)]
    bad_ts = orjson.dumps({"type": "order_status", "event_id": "bt-2", "ts": "2026-11-02T10:00:00",
                           "order_id": "O1", "status": "shipped"})
    messages.insert(40, b"[" + lines[0] + b"," + bad_ts + b"]")   # a duplicate and a bad time
    fast, fast_stats = _per_message(messages)
    decoded = []
    real = pipeline_module._valid_array

    def spy(raw):
        events = real(raw)
        decoded.append(events is not None)
        return events

    monkeypatch.setattr(pipeline_module, "_valid_array", spy)
    _per_message(messages)
    # every array decodes once, the one with a bad time too: its timestamps are checked
    # in the per-event loop, not in a second pass over the array
    assert decoded.count(True) == len(messages)
    monkeypatch.setattr(pipeline_module, "_valid_array", lambda raw: None)
    slow, slow_stats = _per_message(messages)   # decode_events: event by event
    assert fast_stats == slow_stats and fast == slow
    letter = [d for d in fast["dead_letters"] if d["event_id"] == "bt-2"]
    assert letter and letter[0]["index"] == 1 and letter[0]["offset"] == 41
    assert "no UTC offset" in letter[0]["detail"]
    assert letter[0]["payload_excerpt"].startswith('[{"type":"order"')   # the message's own bytes


def test_a_bad_time_is_dead_lettered_with_its_place_and_excerpt_on_every_path():
    good = orjson.dumps({"type": "order", "event_id": "g1", "ts": "2026-11-02T10:00:00+08:00",
                         "order_id": "O9", "merchant_id": "m1", "region": "广东", "carrier": "中通",
                         "category": "服饰", "amount": 5})
    bad = orjson.dumps({"type": "order_status", "event_id": "bt-3", "ts": "2026-11-02 10:00",
                        "order_id": "O9", "status": "shipped"})
    inputs = {"single": [bad], "array": [b"[" + good + b"," + good + b"," + bad + b"]"],
              "array of one": [b"[" + bad + b"]"]}
    for name, messages in inputs.items():
        fast, _ = _per_message(messages)
        p = Pipeline(keep_events=True, keep_aggregates=True)
        p.process_lines(messages, source="file")          # replay's path
        lines = _comparable(p.drain())
        with pytest.MonkeyPatch.context() as m:
            decode_event_by_event(m)
            slow, _ = _per_message(messages)               # decode_events only
        assert fast["dead_letters"] == slow["dead_letters"] == lines["dead_letters"], name
        (letter,) = fast["dead_letters"]
        assert letter["index"] == (0 if name != "array" else 2), name
        assert letter["reason"] == "invalid field" and "$.ts" in letter["detail"]
        assert letter["payload_excerpt"] and letter["event_id"] == "bt-3"
        assert len(fast["events"]) == (1 if name == "array" else 0)   # the good one, once


def test_exposure_gives_a_new_value_of_a_two_dimension_slice_its_own_row():
    # A carrier first seen in the third bucket: region x carrier slices must not share
    # rows with the slices of the first buckets (keys are values, not radix codes).
    book = ExposureBook(slices=((), ("region", "carrier")), decay=0.5)
    book.advance(0, {("广东", "m1", "中通", "k"): 2, ("浙江", "m1", "中通", "k"): 1}, hour_factor=1.0)
    book.advance(1, {("北京", "m1", "中通", "k"): 4}, hour_factor=1.0)
    book.advance(2, {("广东", "m1", "顺丰", "k"): 8, ("北京", "m1", "中通", "k"): 1}, hour_factor=1.0)
    assert len(set(book.keys)) == len(book.keys) == 5
    orders = book.orders_in_last_bucket()
    assert orders == {(0,): 9, (1, "广东", "顺丰"): 8, (1, "北京", "中通"): 1}
    assert book.exposure((1, "广东", "顺丰")) == pytest.approx(4.0)


def test_exposure_rows_follow_first_sight_order_across_buckets():
    rng = random.Random(2)
    book = ExposureBook(slices=DEFAULT_SLICES, decay=0.9)
    totals: dict = {}
    for bucket in range(60):
        combos: dict = {}
        for _ in range(rng.randint(0, 80)):
            c = (f"r{rng.randint(0, 9)}", f"m{rng.randint(0, 200)}", f"c{rng.randint(0, 4)}", f"k{rng.randint(0, 5)}")
            combos[c] = combos.get(c, 0) + 1
        book.advance(bucket, combos, hour_factor=1.0)
        for (region, merchant, carrier, category), n in combos.items():
            for key in ((0,), (1, region), (2, merchant), (3, carrier), (4, category), (6, region, carrier)):
                totals[key] = totals.get(key, 0) + n
    assert set(book.keys) == set(totals) and len(book.keys) == len(totals)
    # rows in order of first sight: a slice seen in an earlier bucket has a lower row
    first_bucket = {k: int(book.first[book.key_id(k)]) for k in totals}
    assert [first_bucket[k] for k in book.keys] == sorted(first_bucket[k] for k in book.keys)


def test_incremental_intent_model_equals_a_full_rebuild():
    clf = IntentClassifier(seeded=True)
    rng = random.Random(4)
    texts = [t + suffix for t in TEXTS.values() for suffix in ("", "，快点处理", "!!!", "还要等几天")]
    for i in range(200):
        text = rng.choice(texts) + str(i % 7) + rng.choice("啊吧呢嘛哦")
        clf.predict_one(text)                   # refreshes incrementally
        clf.learn_one(text, rng.choice(["delivery_delay", "damaged", "quality", "other"]))
    probe = [t + "？" for t in texts]
    incremental = [clf._model.predict_proba_one(t) for t in probe]
    rebuilt = pickle.loads(pickle.dumps(clf))   # caches dropped: a full rebuild
    assert [rebuilt._model.predict_proba_one(t) for t in probe] == incremental
    rows = clf._model._rows
    assert np.array_equal(clf._model._matrix[[rows[g] for g in rebuilt._model._rows]],
                          rebuilt._model._matrix[:len(rebuilt._model._rows)])
