"""One conformance test for every detector in ``detectors/`` (river's habit).

Each detector class declares ``_unit_test_params()``; every check below runs against
every parameter set. Checks: scoring is pure, scoring works before any learning,
pickling round-trips the state, cloning gives an unfitted twin, memory stays bounded,
and an obvious anomaly outscores normal data (river's prequential ROC idea).
"""

from __future__ import annotations

import inspect
import pickle
import random

import datetime as dt

import pytest
from river import base

import detectors
from detectors.intent_mix import IntentMixDetector
from detectors.order_surge import OrderSurgeDetector
from detectors.series import SeriesDetector


def iter_detectors():
    for name in detectors.__all__:
        obj = getattr(detectors, name)
        if inspect.isclass(obj) and issubclass(obj, base.Estimator):
            for params in obj._unit_test_params():
                yield obj(**params)


def _stream(det, n: int, seed: int = 1):
    """``learn_one``/``score_one`` arguments (tuples) of normal data for ``det``."""
    rng = random.Random(seed)
    if isinstance(det, IntentMixDetector):
        # One bucket's complaints by intent: ~12 complaints, half of them the first intent.
        weights = [6.0] + [6.0 / (len(det.intents) - 1)] * (len(det.intents) - 1)
        for _ in range(n):
            counts = {}
            for intent in rng.choices(det.intents, weights, k=rng.randint(8, 16)):
                counts[intent] = counts.get(intent, 0) + 1
            yield (counts,)
        return
    if isinstance(det, SeriesDetector):
        # (ts, value): a 5-minute series around 100, continuing after earlier streams.
        start = _T0 + dt.timedelta(days=30 * seed)
        for i in range(n):
            yield start + dt.timedelta(minutes=5 * i), 100.0 + rng.gauss(0, 5)
        return
    if isinstance(det, OrderSurgeDetector):
        # (market orders of the bucket, the shop's orders): a shop with 1 % of the market.
        for _ in range(n):
            market = rng.uniform(100, 300)
            yield {"market": market}, sum(rng.random() < market * 0.01 / 20 for _ in range(20))
        return
    for _ in range(n):
        exposure = rng.uniform(50, 150)
        # Poisson-ish counts around 2 % of exposure.
        y = sum(rng.random() < exposure * 0.02 / 20 for _ in range(20))
        yield {"exposure": exposure}, y


_T0 = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)


def _probe(det, spike: bool) -> tuple:
    """``score_one`` arguments of a normal point, or of an obvious anomaly."""
    if isinstance(det, SeriesDetector):
        return _T0 + dt.timedelta(days=1000), 200.0 if spike else 101.0
    if isinstance(det, IntentMixDetector):
        # The same total; the spike turns it to the second intent.
        first, second = det.intents[0], det.intents[1]
        return ({first: 1, second: 11},) if spike else ({first: 6, second: 1},)
    if isinstance(det, OrderSurgeDetector):
        return {"market": 200.0}, 40 if spike else 2
    return {"exposure": 100.0}, 15 if spike else 2


def check_score_is_pure(det):
    for args in _stream(det, 200):
        det.learn_one(*args)
    before = pickle.dumps(det)
    args = _probe(det, spike=True)
    kept = pickle.dumps(args)
    det.score_one(*args)
    assert pickle.dumps(det) == before, "score_one changed the detector's state"
    assert pickle.dumps(args) == kept, "score_one mutated its input"


def check_score_before_learning(det):
    score = det.score_one(*_probe(det, spike=False))
    assert 0.0 <= score <= 1.0


def check_pickling(det):
    for args in _stream(det, 300):
        det.learn_one(*args)
    twin = pickle.loads(pickle.dumps(det))
    for args in _stream(det, 50, seed=2):
        assert twin.score_one(*args) == det.score_one(*args)
        twin.learn_one(*args)
        det.learn_one(*args)


def check_clone_is_unfitted(det):
    for args in _stream(det, 300):
        det.learn_one(*args)
    fresh = det.clone()
    assert fresh._get_params() == det._get_params()
    never_fitted = type(det)(**det._get_params())
    assert pickle.dumps(fresh) == pickle.dumps(never_fitted)
    assert pickle.dumps(fresh) != pickle.dumps(det)


def check_bounded_memory(det):
    def size():
        return len(pickle.dumps(det))
    for args in _stream(det, 1000):
        det.learn_one(*args)
    first = size()
    for args in _stream(det, 5000, seed=3):
        det.learn_one(*args)
    assert size() <= first * 1.1, "state grows with the stream"
    assert size() < 2048, "state per slice must stay under 2 KB"


def check_anomaly_outscores_normal(det):
    for args in _stream(det, 500):
        det.learn_one(*args)
    normal = det.score_one(*_probe(det, spike=False))
    spike = det.score_one(*_probe(det, spike=True))
    assert spike > normal
    assert spike > 0.99


CHECKS = [check_score_is_pure, check_score_before_learning, check_pickling,
          check_clone_is_unfitted, check_bounded_memory, check_anomaly_outscores_normal]


@pytest.mark.parametrize(
    "det, check",
    [pytest.param(det, check, id=f"{det}:{check.__name__}")
     for det in iter_detectors() for check in CHECKS])
def test_detector_conformance(det, check):
    check(det.clone())


def test_every_exported_detector_is_covered():
    exported = {n for n in detectors.__all__ if inspect.isclass(getattr(detectors, n))}
    covered = {type(d).__name__ for d in iter_detectors()}
    assert exported == covered
