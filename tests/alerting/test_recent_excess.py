"""A long CUSUM run pages only if its excess is recent (streams.paging._recent_enough).

A slice whose rate was learned too low (on day one, or while the intent classifier was
still learning) creeps up for hours: 17 complaints against 4.2 expected over five hours
in backtest seed 13's 湖南, one complaint an hour lately. Its evidence is a baseline
error spread thin, not an incident; a run of the same length whose excess came in the
last half hour still pages.
"""

from __future__ import annotations

from riskwatch.settings import PipelineSettings
from streams.detection import Evaluation
from streams.pipeline import Pipeline


def _stage():
    p = Pipeline(settings=PipelineSettings())
    kinds = {dims: i for i, dims in enumerate(p.settings.slices)}
    return p, (kinds[("region",)], "湖南"), (kinds[("region",)], "福建")


def _eval(key, run_observed, run_expected, run_buckets, expected=0.08):
    return Evaluation(key, 1, expected, 10.0, 1.0, 12.0, 11.0, True, run_observed,
                      run_expected, run_buckets, 2000)


def _recent(p, per_bucket: dict):
    for _ in range(p._recent_complaints.maxlen):
        p._recent_complaints.append([(key,) for key, n in per_bucket.items() for _ in range(n)])


def test_a_long_run_with_little_recent_excess_does_not_page():
    p, hunan, fujian = _stage()
    _recent(p, {hunan: 0, fujian: 1})          # one complaint per bucket in 福建, none in 湖南
    p._recent_complaints[-1].append((hunan,))  # 湖南: one complaint in the last half hour
    slow = _eval(hunan, 17, 4.2, 57)
    burst = _eval(fujian, 17, 4.2, 57)          # same run, but 6 complaints just now
    kept = p._recent_enough([slow, burst])
    assert [e.key for e in kept] == [fujian]


def test_short_runs_are_all_recent_and_unchanged():
    p, hunan, _ = _stage()
    _recent(p, {})
    short = _eval(hunan, 5, 0.1, 3)
    assert p._recent_enough([short]) == [short]


def test_recent_excess_is_measured_against_the_recent_expectation():
    p, hunan, _ = _stage()
    _recent(p, {hunan: 1})                      # 6 complaints in the window
    assert p._recent_enough([_eval(hunan, 30, 10.0, 40, expected=0.1)])   # 6 - 0.6 >= 3.5
    assert not p._recent_enough([_eval(hunan, 30, 10.0, 40, expected=0.5)])  # 6 - 3 < 3.5
