"""The overdue scorer's small-close path (Python floats) and its numpy path give the
same bits: bank state, market sums and signals, over random closes with new lanes,
carriers arriving after their lanes, watched lanes without due parcels, learning and
warm-up rows, jams that alarm (protected baselines, runs past the protection limit)
and baselines at the evidence cap."""

from __future__ import annotations

import random

import numpy as np
import pytest

from streams import delivery
from streams.delivery import OverdueScorer

REGIONS = ["广东", "浙江", "四川", "北京", "新疆", "上海"]
CARRIERS = ["中通", "顺丰", "邮政", "极兔"]


def _closes(seed: int, buckets: int):
    """Random due dicts (lanes and their carriers), with jams on some lanes."""
    rng = random.Random(seed)
    jammed: dict[tuple, int] = {}
    for b in range(buckets):
        due: dict[tuple, list[int]] = {}
        for region in REGIONS:
            for carrier in CARRIERS:
                if rng.random() < 0.35:
                    continue
                lane = (region, carrier)
                if lane not in jammed and rng.random() < 0.01:
                    jammed[lane] = b + rng.randint(100, 300)   # a jam until then
                n = rng.choice([1, 2, 5, 20, 80, 400])
                share = 0.7 if jammed.get(lane, -1) > b else 0.1
                late = sum(rng.random() < share for _ in range(n))
                # Some lanes come before their carrier's row exists (first closes).
                keys = [lane] if b < 3 and rng.random() < 0.5 else [lane, (None, carrier)]
                for key in keys:
                    counts = due.setdefault(key, [0, 0])
                    counts[0] += n
                    counts[1] += late
        watched = {(r, c) for r in REGIONS for c in CARRIERS if rng.random() < 0.05}
        yield b, dict(rng.sample(list(due.items()), len(due))), watched


def _run(monkeypatch, small_rows: int, seed: int, buckets: int):
    monkeypatch.setattr(delivery, "SMALL_CLOSE_ROWS", small_rows)
    scorer = OverdueScorer()
    out = []
    for b, due, watched in _closes(seed, buckets):
        signals = scorer.close(b, due, watched, learning=b < 10, warmup_buckets=30)
        out.append([(s.key, s.observed, s.expected, s.evidence, s.level, s.pages,
                     s.run_observed, s.run_expected, s.run_buckets, s.contributors,
                     s.reset.row) for s in signals])
    return scorer, out


@pytest.mark.parametrize("seed", [1, 2])
def test_small_close_path_gives_the_numpy_path_bits(monkeypatch, seed):
    numpy_scorer, numpy_out = _run(monkeypatch, 0, seed, 700)
    small_scorer, small_out = _run(monkeypatch, 10_000, seed, 700)
    assert numpy_scorer.bank.size == small_scorer.bank.size > 20
    size = numpy_scorer.bank.size
    assert numpy_scorer.bank.state[:size].tobytes() == small_scorer.bank.state[:size].tobytes()
    assert (numpy_scorer.market_due, numpy_scorer.market_overdue) == (
        small_scorer.market_due, small_scorer.market_overdue)
    assert numpy_scorer.rows == small_scorer.rows
    assert np.array_equal(numpy_scorer.parent_row, small_scorer.parent_row)
    assert small_out == numpy_out
    # The run exercised what the paths could disagree on.
    state = small_scorer.bank.state[:size]
    signals = [s for close in small_out for s in close]
    assert any(s[5] for s in signals)                          # pages (alarmed lanes)
    assert any(not s[5] for s in signals)                      # watched / learning rows
    assert any(s[8] > small_scorer.bank.max_protect_buckets for s in signals)
    assert (state[:, 0] >= small_scorer.bank.max_evidence * (1 - 1e-12)).any()   # capped


def test_small_closes_are_the_ones_the_benchmark_times():
    """A regional network's closes (a few dozen lanes due) take the small path; a
    city-level one's thousands of lanes the numpy path."""
    assert 66 <= delivery.SMALL_CLOSE_ROWS < 6020
