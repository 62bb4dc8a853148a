"""The general series detector: better than a z-score, scale-free, seasonal, robust."""

from __future__ import annotations

import datetime as dt
import importlib.util
import math
import random
import sys
from pathlib import Path

import pytest

from detectors import series_detector


def _load_benchmark():
    # The labelled corpus and the NAB-style scoring live in the benchmark script.
    path = Path(__file__).resolve().parents[2] / "benchmarks" / "series_detector.py"
    spec = importlib.util.spec_from_file_location("series_detector_benchmark", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


bench = _load_benchmark()

T0 = dt.datetime(2026, 11, 2, tzinfo=dt.timezone(dt.timedelta(hours=8)))
ALARM = 0.99      # a tail probability of 1e-8: an unmistakable anomaly


def _feed(det, values, step_minutes=5, start=T0):
    scores = []
    for i, v in enumerate(values):
        ts = start + dt.timedelta(minutes=step_minutes * i)
        scores.append(det.score_one(ts, v))
        det.learn_one(ts, v)
    return scores


def _daily_series(n, scale, rng, noise=0.03):
    # 5-minute points with a daily cycle (busy afternoon, quiet night).
    return [scale * (1 + 0.5 * math.sin(2 * math.pi * (i / 288 - 0.3))) * (1 + rng.gauss(0, noise))
            for i in range(n)]


def test_beats_rolling_zscore_on_the_seeded_corpus():
    corpus = bench.make_corpus(seed=11, n_series=18)
    ours = bench.best_threshold(corpus, bench.run(series_detector, corpus)[0])
    zscore = bench.best_threshold(corpus, bench.run(bench.RollingZScore, corpus)[0])
    assert ours["nab"] > zscore["nab"] + 15, (ours, zscore)
    assert ours["recall"] > zscore["recall"], (ours, zscore)
    assert ours["f1"] > zscore["f1"], (ours, zscore)


@pytest.mark.parametrize("scale", [1e-3, 1.0, 37.5, 1e6])
def test_catches_an_obvious_spike_and_dip_at_any_scale(scale):
    rng = random.Random(3)
    values = _daily_series(4 * 288, scale, rng)
    spike_at, dip_at = 3 * 288 + 100, 3 * 288 + 200
    values[spike_at] *= 1.6     # ~ 20 noise scales
    values[dip_at] *= 0.4
    scores = _feed(series_detector(), values)
    assert scores[spike_at] >= ALARM
    assert scores[dip_at] >= ALARM
    normal = [s for i, s in enumerate(scores[288:]) if i + 288 not in (spike_at, dip_at)]
    assert sum(s >= ALARM for s in normal) / len(normal) < 0.01


def test_a_night_spike_that_is_normal_by_day_is_caught():
    # 1.4x the night level is below the daytime level: only a seasonal baseline sees it.
    rng = random.Random(5)
    values = _daily_series(5 * 288, 100.0, rng, noise=0.02)
    night = 4 * 288 + int(288 * 0.05)     # ~01:10, near the trough
    assert values[night] * 1.4 < max(values[3 * 288:4 * 288])
    values[night] *= 1.4
    det = series_detector()
    scores = _feed(det, values)
    assert det.season == "daily"
    assert scores[night] >= ALARM


def test_a_level_shift_is_flagged_then_becomes_the_new_normal():
    rng = random.Random(7)
    values = [50 + rng.gauss(0, 1) for _ in range(600)] + [80 + rng.gauss(0, 1) for _ in range(300)]
    scores = _feed(series_detector(), values)
    assert max(scores[600:605]) >= ALARM
    assert max(scores[650:]) < ALARM, "still alarming an hour after the shift"


def test_a_random_walk_does_not_flood_alarms():
    rng = random.Random(9)
    price, values = 100.0, []
    for _ in range(3000):
        price *= math.exp(rng.gauss(0, 0.002))
        values.append(price)
    scores = _feed(series_detector(), values, step_minutes=1)
    assert sum(s >= ALARM for s in scores) / len(scores) < 0.005


def test_a_variance_change_raises_the_likelihood():
    rng = random.Random(13)
    values = [10 + rng.gauss(0, 0.5) for _ in range(800)] + [10 + rng.gauss(0, 2.5) for _ in range(60)]
    scores = _feed(series_detector(), values)
    assert max(scores[800:860]) >= ALARM
    assert max(scores[200:800]) < ALARM


def test_bad_values_teach_nothing_and_score_zero():
    det = series_detector()
    _feed(det, [5.0 + (i % 3) for i in range(100)])
    ts = T0 + dt.timedelta(days=1)
    before = det.n
    assert det.score_one(ts, math.nan) == 0.0
    det.learn_one(ts, math.nan)
    det.learn_one(ts, math.inf)
    assert det.n == before
    assert 0.0 <= det.score_one(ts, 6.0) <= 1.0


def test_a_constant_series_then_a_change():
    scores = _feed(series_detector(), [0.0] * 300 + [1.0])
    assert max(scores[:300]) == 0.0
    assert scores[300] >= ALARM
