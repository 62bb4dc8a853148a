"""Intent-mix shift: the bank and the detector agree; a shift with a flat total alarms,
a volume change with the usual mix does not; guards (minimum volume, shrinkage to the
parent's mix, protection while alarmed); the pipeline stage pages a category's shift
and keeps quiet when a complaint-rate alarm already holds the complaints."""

from __future__ import annotations

import pickle
import random

import numpy as np
import pytest

from detectors.intent_mix import RUN_COVERED, IntentMixBank, IntentMixDetector
from riskwatch.settings import PipelineSettings
from streams.mix import IntentMixStage

INTENTS = ("delivery_delay", "quality", "lost_parcel", "refund")
USUAL = (0.5, 0.2, 0.2, 0.1)


def _bucket(rng: random.Random, n: int, shares=USUAL) -> dict[str, int]:
    counts: dict[str, int] = {}
    for intent in rng.choices(INTENTS, shares, k=n):
        counts[intent] = counts.get(intent, 0) + 1
    return counts


def _matrix(buckets: list[dict[str, int]]) -> np.ndarray:
    return np.asarray([[b.get(i, 0) for i in INTENTS] for b in buckets], dtype=float)


def test_bank_rows_equal_detectors_fed_the_same_buckets():
    rng = random.Random(1)
    bank = IntentMixBank(intents=INTENTS, min_volume=10)
    rows = bank.add(3)
    dets = [IntentMixDetector(intents=INTENTS, min_volume=10) for _ in range(3)]
    for t in range(400):
        shifted = (0.1, 0.7, 0.1, 0.1) if t > 350 else USUAL
        buckets = [_bucket(rng, rng.randint(0, 8)), _bucket(rng, 5, shifted), _bucket(rng, 12)]
        scores = [d.score_one(b) for d, b in zip(dets, buckets)]
        step = bank.step(rows, _matrix(buckets), protect_at=np.full(3, 8.0))
        assert np.allclose(scores, -np.expm1(-step.evidence.max(axis=1)))
        for d, b in zip(dets, buckets):
            d.learn_one(b, protect=d.score_one(b) >= 1 - np.exp(-8.0))
    assert np.allclose(bank.shares(rows), [d.shares for d in dets])


def test_a_turn_to_one_intent_alarms_and_a_busier_day_does_not():
    rng = random.Random(2)
    det = IntentMixDetector(intents=INTENTS)
    for _ in range(600):
        det.learn_one(_bucket(rng, 6))
    level = det.threshold + np.log(len(INTENTS))
    busy = pickle.loads(pickle.dumps(det))
    # Three hours at three times the volume, the usual mix: no evidence builds up.
    for _ in range(36):
        busy.learn_one(_bucket(rng, 18))
    assert busy.evidence < level
    # The same total as usual, but two thirds of it quality (usually a fifth).
    for minutes in range(5, 241, 5):
        det.learn_one(_bucket(rng, 6, (0.15, 0.65, 0.1, 0.1)), protect=True)
        if det.evidence >= level:
            break
    assert det.evidence >= level, "a shift to quality at a flat total must alarm"
    assert minutes <= 90
    assert det.shares[1] < 0.3, "an alarmed span must stay out of the learned shares"


def test_minimum_volume_guard_and_shrinkage_to_the_parent_mix():
    det = IntentMixDetector(intents=INTENTS, min_volume=30)
    parent = dict(zip(INTENTS, USUAL))
    det.learn_one({"quality": 3}, prior=parent)
    # Three complaints, all quality: shrunk to the parent's mix, not 100 % quality.
    assert det.shares[1] == pytest.approx((3 + 20 * 0.2) / 23)
    for _ in range(5):   # still under the minimum volume: no evidence whatever the mix
        det.learn_one({"quality": 4})
    assert det.evidence == 0.0


def test_covered_complaints_are_counted_over_the_run():
    bank = IntentMixBank(intents=INTENTS, min_volume=0)
    rows = bank.add(1)
    for _ in range(200):
        bank.step(rows, np.asarray([[5.0, 2.0, 2.0, 1.0]]))
    for _ in range(3):
        bank.step(rows, np.asarray([[1.0, 1.0, 8.0, 0.0]]), covered=np.asarray([[0, 0, 6.0, 0]]))
    assert bank.column(RUN_COVERED, rows)[0].tolist() == [0.0, 0.0, 18.0, 0.0]


def _stage_with_history(seed: int = 3):
    settings = PipelineSettings()
    kind = {dims: i for i, dims in enumerate(settings.slices)}
    stage = IntentMixStage(settings, warmup_buckets=12)
    rng = random.Random(seed)
    cat = (kind[("category",)], "服饰")
    other = (kind[("category",)], "家居")
    glob = (kind[()],)

    def bucket(shifted: bool) -> dict:
        a = _bucket(rng, 8, (0.1, 0.7, 0.1, 0.1) if shifted else USUAL)
        b = _bucket(rng, 8)
        total = {i: a.get(i, 0) + b.get(i, 0) for i in INTENTS}
        return {cat: a, other: b, glob: total}

    for t in range(300):
        stage.close(t, bucket(False), [[]], set(), {})
    return stage, bucket, cat, kind


def test_stage_pages_a_categorys_shift_to_one_intent():
    stage, bucket, cat, _ = _stage_with_history()
    paged = None
    for t in range(300, 348):
        signals = stage.close(t, bucket(True), [[]], set(), {})
        mine = [s for s in signals if s.pages]
        if mine:
            paged = (t, mine[0])
            break
    assert paged is not None, "a category turning to quality must page"
    t, signal = paged
    assert signal.metric == "intent_mix"
    assert signal.dims == {"category": "服饰", "intent": "quality"}
    assert t - 300 <= 12
    assert signal.run_observed > 2 * signal.run_expected
    assert signal.contributors[0]["value"] == "quality"


def test_stage_keeps_quiet_when_a_complaint_rate_alarm_holds_the_complaints():
    stage, bucket, cat, kind = _stage_with_history()
    # Every complaint of the category is also in an alarmed complaint-rate slice.
    rate_slice = (kind[("intent",)], "quality")
    for t in range(300, 348):
        mixes = bucket(True)
        complaints = [[cat, (kind[("intent",)], intent)]
                      for intent, n in mixes[cat].items() for _ in range(n)]
        signals = stage.close(t, mixes, [complaints], {rate_slice}, {})
        assert not any(s.pages for s in signals)


def test_stage_learning_day_never_pages():
    settings = PipelineSettings()
    kind = {dims: i for i, dims in enumerate(settings.slices)}
    stage = IntentMixStage(settings, warmup_buckets=10_000)
    rng = random.Random(4)
    cat = (kind[("category",)], "服饰")
    for t in range(400):
        mix = _bucket(rng, 8, (0.1, 0.7, 0.1, 0.1) if t > 300 else USUAL)
        signals = stage.close(t, {cat: mix, (kind[()],): mix}, [[]], set(), {})
        assert not any(s.pages for s in signals)


def test_bank_pickles_only_the_rows_in_use_and_scores_alike_after():
    rng = random.Random(7)
    bank = IntentMixBank(intents=INTENTS, min_volume=10, capacity=256)
    rows = bank.add(3)
    for _ in range(60):
        bank.step(rows, _matrix([_bucket(rng, 6) for _ in rows]))
    copy = pickle.loads(pickle.dumps(bank))
    assert copy.state.shape == (9, 3, len(INTENTS))     # not the 256 rows of capacity
    assert copy.state.flags.c_contiguous
    for t in range(40):
        y = _matrix([_bucket(rng, 6, (0.1, 0.7, 0.1, 0.1) if t > 20 else USUAL) for _ in rows])
        a, b = bank.step(rows, y), copy.step(rows, y)
        assert np.array_equal(a.evidence, b.evidence) and np.array_equal(a.mu, b.mu)
    assert a.evidence.max() > 0.0
    grown = copy.add(300)                                 # grows past the pickled size
    assert copy.state.shape[1] >= 303 and np.array_equal(copy.shares(rows), bank.shares(rows))
    assert np.allclose(copy.shares(grown[:1]), 1.0 / len(INTENTS))


def test_stage_signals_do_not_depend_on_the_order_of_the_slices():
    """The stage scores rows in memory order, whatever order the pipeline's dict has."""
    settings = PipelineSettings()
    kind = {dims: i for i, dims in enumerate(settings.slices)}
    glob = (kind[()],)
    cats = [(kind[("category",)], f"类目{i}") for i in range(12)]
    stages = [IntentMixStage(settings, warmup_buckets=0) for _ in range(2)]
    rng = random.Random(9)
    paged = 0
    for t in range(360):
        mixes = {cat: _bucket(rng, 8, (0.1, 0.7, 0.1, 0.1) if t > 300 and cat == cats[3] else USUAL)
                 for cat in rng.sample(cats, 9)}
        mixes[glob] = {i: sum(m.get(i, 0) for m in mixes.values()) for i in INTENTS}
        backwards = dict(reversed(list(mixes.items())))
        out = [stage.close(t, m, [[]], set(), {}) for stage, m in zip(stages, (mixes, backwards))]
        seen = [[(s.key, s.evidence, s.pages, s.run_observed, s.run_expected) for s in signals]
                for signals in out]
        assert seen[0] == seen[1]
        paged += sum(s.pages for s in out[0])
    assert paged, "the shifted category must page (else the comparison proves little)"
    assert stages[0].rows == stages[1].rows   # new rows are created in sorted order
    assert np.array_equal(stages[0].bank.state[:, :len(stages[0])],
                          stages[1].bank.state[:, :len(stages[1])])
