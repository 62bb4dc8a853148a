"""Bucket close: order exposure, per-slice detectors, hour-of-day factors.

Called by the pipeline once per closed event-time bucket with that bucket's counts.
Exposures of all slices advance together in numpy (:mod:`streams.exposure`); Python
work is proportional to the slices with *complaints* in the bucket: a detector that was
quiet for a while learns its quiet span in one step (the exposure it accumulated is
the difference of a cumulative sum). That is what lets 100k slices share one process.

Order exposure of a slice is an exponentially weighted sum of its past orders with
mean lag ``exposure_lag_seconds``: a complaint about an order arrives hours after it,
so a promotion night's orders raise the expected complaints over the following hours,
and the complaint *rate* (per exposure) stays flat.
"""

from __future__ import annotations

import math

import numpy as np

from detectors.rate_bank import (LAST_PRIOR, RUN_BUCKETS, RUN_EXP, RUN_OBS, SLOW, SPIKE,
                                 ComplaintRateBank)
from riskwatch.events import INTENTS
from riskwatch.settings import PipelineSettings
from streams.exposure import ExposureBook

__all__ = ["Evaluation", "SliceScorer"]

Key = tuple


class Evaluation:
    """What the detector said about one slice in one bucket."""

    __slots__ = ("key", "observed", "expected", "exposure", "score", "evidence", "level",
                 "alarmed", "run_observed", "run_expected", "run_buckets", "age_buckets")

    def __init__(self, key, observed, expected, exposure, score, evidence, level, alarmed,
                 run_observed, run_expected, run_buckets, age_buckets) -> None:
        self.key, self.observed, self.expected, self.exposure = key, observed, expected, exposure
        self.score, self.evidence, self.level, self.alarmed = score, evidence, level, alarmed
        self.run_observed, self.run_expected = run_observed, run_expected
        self.run_buckets, self.age_buckets = run_buckets, age_buckets


class SliceScorer:
    """Owns exposure state and one :class:`ComplaintRateDetector` per complaint slice."""

    def __init__(self, settings: PipelineSettings, **detector_params: float) -> None:
        self.settings = settings
        self.slices = settings.slices
        self.detector_params = detector_params
        index = {dims: i for i, dims in enumerate(self.slices)}
        if () not in index:
            raise ValueError("the global slice () must be configured")
        self.global_key: Key = (index[()],)
        self.intent_slice = index.get(("intent",))
        # For each slice: where its intent value sits in the key, and which slice
        # provides its exposure (the same dimensions without the intent).
        self.intent_pos: list[int] = []
        self.exposure_slice: list[int] = []
        for dims in self.slices:
            pos = dims.index("intent") + 1 if "intent" in dims else -1
            self.intent_pos.append(pos)
            base = tuple(d for d in dims if d != "intent")
            if base not in index:
                raise ValueError(f"slice {dims} needs slice {base} for its order exposure")
            self.exposure_slice.append(index[base])
        decay = math.exp(-settings.bucket_seconds / settings.exposure_lag_seconds)
        self.book = ExposureBook(slices=self.slices, decay=decay)
        # One detector row per complaint slice, all rows in one numpy bank.
        self.bank = ComplaintRateBank(**detector_params)
        self.rows: dict[Key, int] = {}
        self.row_keys: list[Key] = []
        self.ex_row = np.zeros(1024, dtype=np.int64)       # the row's exposure slice in the book
        self.last_bucket = np.zeros(1024, dtype=np.int64)  # last bucket the row learned
        self.cum_seen = np.zeros(1024)                     # hour-weighted exposure ``cum`` learned
        self.parent_row = np.full(1024, -1, dtype=np.int64)  # row whose rate is the prior
        self.row_kind = np.zeros(1024, dtype=np.int64)     # slice index of the row
        self._per_kind = [0] * len(self.slices)   # detectors per slice kind
        # An intent slice of a region/merchant/carrier borrows its prior from the
        # intent's own slice; the intent slice from the market's rate per intent.
        self._per_intent_prior = np.asarray([pos >= 0 for pos in self.intent_pos])
        self._prior_parent_kind = [
            self.intent_slice if pos >= 0 and i != self.intent_slice else None
            for i, pos in enumerate(self.intent_pos)]
        # Hour-of-day factor (local time), learned on the global slice.
        self.hour_observed = [0.0] * 24
        self.hour_expected = [0.0] * 24
        self.market_observed = self.market_expected = 0.0
        self._market_fade = 0.5 ** (settings.bucket_seconds / 900)

    # -- exposure ---------------------------------------------------------------------
    def exposure_key(self, key: Key) -> Key:
        i = key[0]
        pos = self.intent_pos[i]
        if pos < 0:
            return key
        return (self.exposure_slice[i],) + key[1:pos] + key[pos + 1:]

    def hour_factor(self, hour: int) -> float:
        # Shrunk towards 1 until the hour has seen a few complaints' worth of evidence.
        return (self.hour_observed[hour] + 5.0) / (self.hour_expected[hour] + 5.0)

    # -- the bucket close -------------------------------------------------------------
    def close(self, bucket: int, hour: int, order_combos: dict[tuple, int],
              complaints: dict[Key, int], extra_keys: set[Key],
              warmup_buckets: int = 0) -> list[Evaluation]:
        """Advance exposures with the bucket's orders (per region, merchant, carrier,
        category combo) and score every slice with complaints in
        ``bucket`` plus ``extra_keys`` (e.g. firing alerts, which must see quiet
        buckets to resolve). Returns evaluations sorted by key (deterministic).

        A slice younger than ``warmup_buckets`` is in learning mode: it learns every
        bucket (nothing is protected as anomalous, its baseline is still forming) and
        its CUSUM is not allowed to accumulate evidence.

        Slices are scored in two vectorised steps: the global slice first (its
        surprise is the market factor that scales all others), then all the others
        at once. A slice's prior is the global rate (per intent for intent slices) or,
        for an intent slice of a region/merchant/carrier, its intent's rate before
        this bucket.
        """
        h = self.hour_factor(hour)
        self.book.advance(bucket, order_combos, hour_factor=h)
        keys = set(complaints) | extra_keys
        keys.discard(self.global_key)
        try:
            ordered = sorted(keys)  # values are strings: tuples compare in C
        except TypeError:           # a non-string value somewhere: compare as text
            ordered = sorted(keys, key=_sort_key)
        results: list[Evaluation] = []
        self._phase([self.global_key], bucket, complaints, 1.0, warmup_buckets, results)
        y, mu = results[0].observed, results[0].expected
        # Always learned, even when the global slice looks anomalous: it never pages,
        # and protecting it would freeze a wrong morning factor forever.
        fade = 0.5 ** (1 / 2016)
        self.hour_observed[hour] = self.hour_observed[hour] * fade + y
        self.hour_expected[hour] = self.hour_expected[hour] * fade + mu / h
        market = self._market_factor(y, mu)
        self._phase(ordered, bucket, complaints, market, warmup_buckets, results)
        self._normalise_hours()
        return results

    def _phase(self, keys: list[Key], bucket: int, complaints: dict[Key, int], market: float,
               warmup_buckets: int, results: list[Evaluation]) -> None:
        if not keys:
            return
        bank, book = self.bank, self.book
        rows_of, per_kind = self.rows, self._per_kind
        rows, levels = [], []
        new_keys, new_rows = [], []
        for key in keys:
            row = rows_of.get(key)
            if row is None:
                row = rows_of[key] = len(self.row_keys)
                self.row_keys.append(key)
                new_keys.append(key)
                new_rows.append(row)
                per_kind[key[0]] += 1
            rows.append(row)
            # Many slices of a kind, many chances of a fluke: the alarm level rises
            # with the log of how many slices of this kind are watched (Bonferroni for
            # a likelihood-ratio threshold: N slices at level h + ln N fail as often
            # as one slice at h).
            n_kind = per_kind[key[0]]
            levels.append(bank.threshold + math.log(n_kind / 30.0) if n_kind > 30
                          else bank.threshold)
        if new_keys:
            self._create(new_keys, new_rows, bucket)
        r = np.asarray(rows, dtype=np.int64)
        ex_rows = self.ex_row[r]
        exh, cum = book.exh[ex_rows], book.cum[ex_rows]
        prior = self._prior(r)
        # Buckets a slice had no complaint in: learn them in one span (the exposure it
        # accumulated is a difference of cumulative sums).
        gap = bucket - 1 - self.last_bucket[r]
        gap_exposure = (cum - exh) - self.cum_seen[r]
        catch_up = (gap > 0) & (gap_exposure > 0)
        if catch_up.any():
            c = r[catch_up]
            bank.step(c, exposure=gap_exposure[catch_up], prior=prior[catch_up],
                      y=np.zeros(len(c)), buckets=gap[catch_up].astype(np.float64))
        counts = [complaints.get(k, 0) for k in keys]   # ints: they go into the aggregate rows
        y = np.asarray(counts, dtype=np.float64)
        level = np.asarray(levels)
        # Exposure already carries the hour-of-day factor (streams.exposure); the
        # market factor scales every slice but the global one.
        age = bucket - book.first[ex_rows]
        step = bank.step(r, exposure=exh, prior=prior, y=y, hour_factor=market,
                         protect_at=level, learning=age < warmup_buckets)
        alarmed = step.evidence >= level
        self.last_bucket[r] = bucket
        self.cum_seen[r] = cum
        score = -np.expm1(-step.evidence)
        after = bank.state[r]
        columns = zip(keys, counts, step.mu.tolist(), book.ex[ex_rows].tolist(),
                      score.tolist(), after[:, SLOW:SPIKE + 1].max(axis=1).tolist(), levels,
                      alarmed.tolist(), after[:, RUN_OBS].tolist(), after[:, RUN_EXP].tolist(),
                      after[:, RUN_BUCKETS].astype(np.int64).tolist(), age.tolist())
        results.extend(Evaluation(*c) for c in columns)

    def _create(self, keys: list[Key], rows: list[int], bucket: int) -> None:
        """New detector rows: exposure row, prior parent, and no history before now."""
        need = rows[-1] + 1
        if need > len(self.last_bucket):
            size = max(need, 2 * len(self.last_bucket))
            for name in ("ex_row", "last_bucket", "cum_seen", "parent_row", "row_kind"):
                old = getattr(self, name)
                new = np.full(size, -1 if name == "parent_row" else 0, dtype=old.dtype)
                new[:len(old)] = old
                setattr(self, name, new)
        book = self.book
        ex_rows = [book.key_id(self.exposure_key(k)) for k in keys]
        parents = []
        for key in keys:
            parent_kind = self._prior_parent_kind[key[0]]
            if parent_kind is None:
                parents.append(-1)
            else:
                intent = key[self.intent_pos[key[0]]]
                parents.append(self.rows.get((parent_kind, intent), -1))
        r = np.asarray(rows, dtype=np.int64)
        self.ex_row[r] = ex_rows
        self.parent_row[r] = parents
        self.row_kind[r] = [k[0] for k in keys]
        self.last_bucket[r] = bucket - 1
        self.cum_seen[r] = book.cum[ex_rows] - book.exh[ex_rows]
        self.bank.add(len(rows))
        # Twice: a new intent slice's own prior first, then its new children's from it.
        self.bank.state[r, LAST_PRIOR] = self._prior(r)
        self.bank.state[r, LAST_PRIOR] = self._prior(r)

    def _prior(self, rows: np.ndarray) -> np.ndarray:
        """Prior rate of each row: its intent's rate, else the market's (per intent)."""
        bank = self.bank
        grow = self.rows.get(self.global_key)
        base = float(bank.rate(np.asarray([grow]))[0]) if grow is not None else 0.01
        prior = np.where(self._per_intent_prior[self.row_kind[rows]], base / len(INTENTS), base)
        parents = self.parent_row[rows]
        has_parent = parents >= 0
        if has_parent.any():
            prior[has_parent] = bank.rate(parents[has_parent])
        if grow is not None:
            prior[rows == grow] = 0.01  # the market's own prior: never its own rate
        return prior

    def reset(self, key: Key) -> None:
        """Start a fresh CUSUM run for ``key`` (after its alert resolved)."""
        row = self.rows.get(key)
        if row is not None:
            self.bank.reset([row])

    def __len__(self) -> int:
        return len(self.row_keys)

    def _market_factor(self, observed: float, expected: float) -> float:
        """Recent surprise of the whole market (global observed / expected, half-life
        15 minutes, shrunk to 1). Shared swings — people complaining on waking up after
        a promotion night, a national holiday, a news story — lift every slice at once;
        scaling all slices by it leaves only what is specific to a slice. An incident in
        one slice moves it by at most that slice's share of the market."""
        fade = self._market_fade
        self.market_observed = self.market_observed * fade + observed
        self.market_expected = self.market_expected * fade + expected
        factor = (self.market_observed + 4.0) / (self.market_expected + 4.0)
        return min(max(factor, 0.3), 6.0)

    def _normalise_hours(self) -> None:
        # Pin the mean factor to 1 so the factors and the slice rates cannot drift
        # against each other (only their product is identified).
        factors = [self.hour_factor(h) for h in range(24)]
        mean = sum(factors) / 24
        if abs(mean - 1.0) > 1e-3:
            for h in range(24):
                self.hour_observed[h] = (self.hour_observed[h] + 5.0) / mean - 5.0


def _sort_key(key: Key) -> tuple:
    return (key[0], tuple(str(v) for v in key[1:]))
