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
import sys

import pytest
from river import base

import detectors


def iter_detectors():
    for name in detectors.__all__:
        obj = getattr(detectors, name)
        if inspect.isclass(obj) and issubclass(obj, base.Estimator):
            for params in obj._unit_test_params():
                yield obj(**params)


def _stream(n: int, seed: int = 1):
    rng = random.Random(seed)
    for _ in range(n):
        exposure = rng.uniform(50, 150)
        # Poisson-ish counts around 2 % of exposure.
        y = sum(rng.random() < exposure * 0.02 / 20 for _ in range(20))
        yield {"exposure": exposure}, y


def check_score_is_pure(det):
    for x, y in _stream(200):
        det.learn_one(x, y)
    before = pickle.dumps(det)
    x = {"exposure": 100.0}
    det.score_one(x, 7)
    assert pickle.dumps(det) == before, "score_one changed the detector's state"
    assert x == {"exposure": 100.0}, "score_one mutated its input"


def check_score_before_learning(det):
    score = det.score_one({"exposure": 10.0}, 1)
    assert 0.0 <= score <= 1.0


def check_pickling(det):
    for x, y in _stream(300):
        det.learn_one(x, y)
    twin = pickle.loads(pickle.dumps(det))
    for x, y in _stream(50, seed=2):
        assert twin.score_one(x, y) == det.score_one(x, y)
        twin.learn_one(x, y)
        det.learn_one(x, y)


def check_clone_is_unfitted(det):
    for x, y in _stream(300):
        det.learn_one(x, y)
    fresh = det.clone()
    assert fresh._get_params() == det._get_params()
    never_fitted = type(det)(**det._get_params())
    assert pickle.dumps(fresh) == pickle.dumps(never_fitted)
    assert pickle.dumps(fresh) != pickle.dumps(det)


def check_bounded_memory(det):
    def size():
        return len(pickle.dumps(det))
    for x, y in _stream(1000):
        det.learn_one(x, y)
    first = size()
    for x, y in _stream(5000, seed=3):
        det.learn_one(x, y)
    assert size() <= first * 1.1, "state grows with the stream"
    assert size() < 2048, "state per slice must stay under 2 KB"


def check_anomaly_outscores_normal(det):
    for x, y in _stream(500):
        det.learn_one(x, y)
    normal = det.score_one({"exposure": 100.0}, 2)
    spike = det.score_one({"exposure": 100.0}, 15)
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
