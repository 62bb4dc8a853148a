"""The numpy bank the pipeline runs is the readable detector, row for row.

``ComplaintRateDetector`` is the definition (and the river estimator of the conformance
test); ``ComplaintRateBank`` applies the same maths to many slices at once. Fed the same
spans — quiet catch-up spans, alarms that are protected, new slices still learning,
resets — every row must end where its detector ends.
"""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from detectors import ComplaintRateDetector
from detectors.rate_bank import ComplaintRateBank


@pytest.mark.parametrize("params", list(ComplaintRateDetector._unit_test_params()))
def test_bank_rows_follow_their_detectors(params):
    rng = np.random.default_rng(3)
    n = 40
    bank = ComplaintRateBank(**params)
    dets = [ComplaintRateDetector(**params) for _ in range(n)]
    rows = bank.add(n)
    level = bank.threshold + 1.0
    alarms = 0
    for step in range(600):
        exposure = rng.gamma(2.0, 50.0, n)
        prior = np.where(rng.random(n) < 0.2, 0.0, rng.uniform(0.005, 0.05, n))
        # Promotion windows: a per-row learned factor, a cautious lift where none is.
        promotion = step % 50 < 10
        hour = (float(rng.uniform(0.5, 2.0)) * np.where(rng.random(n) < 0.5, 1.7, 1.0)
                if promotion else float(rng.uniform(0.5, 2.0)))
        lift = np.where(rng.random(n) < 0.3, 1.5, 1.0) if promotion else 1.0
        buckets = rng.integers(1, 4, n).astype(float)
        rate = np.where(rng.random(n) < 0.05, 0.2, 0.02)        # some incidents
        y = rng.poisson(rate * exposure * hour).astype(float)
        learning = rng.random(n) < 0.1
        got = bank.step(rows, exposure=exposure, prior=prior, y=y, hour_factor=hour,
                        buckets=buckets, protect_at=np.full(n, level), learning=learning,
                        lift=lift)
        alarms += int((got.evidence >= level).sum())
        for i, det in enumerate(dets):
            x = {"exposure": exposure[i], "prior_rate": prior[i],
                 "hour_factor": hour[i] if promotion else hour, "buckets": buckets[i],
                 "alarm_lift": lift[i] if promotion else 1.0}
            score = det.score_one(x, y[i])
            mu = det.expected(x)
            det.learn_one(x, y[i], protect=(-np.log1p(-score) if score < 1 else np.inf) >= level
                          and not learning[i])
            if learning[i]:
                det.cusum = det.cusum_spike = 0.0
            assert got.mu[i] == pytest.approx(mu, rel=1e-9, abs=1e-12)
        if step % 97 == 0:
            bank.reset(rows[:5])
            for det in dets[:5]:
                det.cusum = det.cusum_spike = 0.0
    for i, det in enumerate(dets):
        assert bank.rate(rows[i:i + 1])[0] == pytest.approx(det.rate, rel=1e-9)
        assert bank.evidence(rows[i:i + 1])[0] == pytest.approx(det.evidence, rel=1e-9, abs=1e-9)
    assert 0 < alarms < 600 * n / 2  # the stream exercised protected and learned spans


def test_bank_pickles_only_its_rows_and_keeps_working():
    bank = ComplaintRateBank()
    rows = bank.add(3, prior_rate=0.02)
    bank.step(rows, exposure=np.full(3, 100.0), prior=np.full(3, 0.02), y=np.array([1.0, 2.0, 9.0]))
    clone = pickle.loads(pickle.dumps(bank))
    assert clone.state.shape == (3, 8)
    np.testing.assert_array_equal(clone.evidence(rows), bank.evidence(rows))
    more = clone.add(2000)            # grows past the pickled size
    assert len(clone) == 2003 and more[0] == 3


@pytest.mark.parametrize("params", list(ComplaintRateDetector._unit_test_params()))
def test_step_rows_in_python_is_the_numpy_step_to_the_bit(params):
    """``step_rows`` (the small close's step, plain Python) leaves every row bit for bit
    where :meth:`step` leaves it: quiet spans of several buckets with their fade, hour
    factors, priors <= 0 (the row keeps its last), protected alarms (also past
    ``max_protect_buckets``), learning rows, rows hitting the evidence cap."""
    rng = np.random.default_rng(5)
    n = 30
    a, b = ComplaintRateBank(**params), ComplaintRateBank(**params)
    rows = a.add(n)
    b.add(n)
    alarms = learned = 0
    for step in range(800):
        exposure = rng.gamma(2.0, 50.0, n)
        prior = np.where(rng.random(n) < 0.2, 0.0, rng.uniform(0.005, 0.05, n))
        rate = np.where(rng.random(n) < 0.1, 0.3, 0.02)        # incidents
        protect = np.full(n, a.threshold + rng.uniform(0.0, 3.0))
        if step % 3 == 0:   # a quiet catch-up span (no hour factor, whole buckets, y = 0)
            spans = rng.integers(1, 500, n).astype(float)
            got = a.step(rows, exposure=exposure, prior=prior, y=np.zeros(n), buckets=spans)
            states = b.state[rows].tolist()
            fades = (0.5 ** (np.asarray(spans, dtype=np.float64) / b.half_life)).tolist()
            mu, evidence = b.step_rows(states, exposure=exposure.tolist(), prior=prior.tolist(),
                                       y=[0.0] * n, fades=fades, buckets=spans.tolist())
        else:
            hour = 1.0 if step % 5 == 0 else float(rng.uniform(0.3, 6.0))
            y = rng.poisson(rate * exposure * hour).astype(float)
            learning = rng.random(n) < 0.1
            got = a.step(rows, exposure=exposure, prior=prior, y=y, hour_factor=hour,
                         protect_at=protect, learning=learning)
            states = b.state[rows].tolist()
            mu, evidence = b.step_rows(states, exposure=exposure.tolist(), prior=prior.tolist(),
                                       y=y.tolist(), hour_factor=hour, protect_at=protect.tolist(),
                                       learning=learning.tolist())
            alarms += int((got.evidence >= protect).sum())
            learned += int(learning.sum())
        b.state[rows] = states
        assert np.asarray(mu).tobytes() == got.mu.tobytes()
        assert np.asarray(evidence).tobytes() == got.evidence.tobytes()
        assert a.state.tobytes() == b.state.tobytes(), step
    assert alarms > 100 and learned > 100
    assert (a.state[:n, 6] > a.max_protect_buckets).any()   # long runs were seen too
