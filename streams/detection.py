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

from detectors.complaint_rate import ComplaintRateDetector
from riskwatch.events import INTENTS
from riskwatch.settings import PipelineSettings
from streams.exposure import ExposureBook

__all__ = ["Evaluation", "SliceScorer"]

Key = tuple


class _Slice:
    __slots__ = ("det", "bucket", "cum_seen")

    def __init__(self, det: ComplaintRateDetector, bucket: int, cum_seen: float) -> None:
        self.det = det
        self.bucket = bucket      # last bucket learned
        self.cum_seen = cum_seen  # hour-weighted exposure ``cum`` already learned


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
        self.detectors: dict[Key, _Slice] = {}
        self._per_kind = [0] * len(self.slices)   # detectors per slice kind
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

    def _prior_rate(self, key: Key) -> float:
        if key == self.global_key:
            return 0.01  # the market's own prior: never its own rate (that would feed back)
        glob = self.detectors.get(self.global_key)
        base = glob.det.rate if glob else 0.01
        if self.intent_pos[key[0]] < 0:
            return base
        intent = key[self.intent_pos[key[0]]]
        if self.intent_slice is not None and key[0] != self.intent_slice:
            parent = self.detectors.get((self.intent_slice, intent))
            if parent is not None:
                return parent.det.rate
        return base / len(INTENTS)

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
        """
        h = self.hour_factor(hour)
        book = self.book
        book.advance(bucket, order_combos, hour_factor=h)
        keys = set(complaints) | extra_keys
        keys.discard(self.global_key)
        results = []
        market = 1.0
        # The global slice goes first: its surprise in this bucket is the market factor
        # the other slices are scaled by.
        for key in [self.global_key, *sorted(keys, key=_sort_key)]:
            row = book.key_id(self.exposure_key(key))
            ex, exh, cum = float(book.ex[row]), float(book.exh[row]), float(book.cum[row])
            state = self.detectors.get(key)
            prior = self._prior_rate(key)
            if state is None:
                det = ComplaintRateDetector(prior_rate=prior, **self.detector_params)
                state = self.detectors[key] = _Slice(det, bucket - 1, cum - exh)
                self._per_kind[key[0]] += 1
            det = state.det
            gap_buckets = bucket - 1 - state.bucket
            if gap_buckets > 0:
                # Buckets this slice had no complaint in: learn them in one span.
                gap_exposure = (cum - exh) - state.cum_seen
                if gap_exposure > 0:
                    det.learn_one({"exposure": gap_exposure, "buckets": gap_buckets,
                                   "prior_rate": prior}, 0)
            # Exposure already carries the hour-of-day factor (streams.exposure); the
            # market factor scales every slice but the global one.
            x = {"exposure": exh, "prior_rate": prior, "hour_factor": market}
            y = complaints.get(key, 0)
            score = det.score_one(x, y)
            mu = det.expected(x)
            # Many slices of a kind, many chances of a fluke: the alarm level rises with
            # the log of how many slices of this kind are watched (Bonferroni for a
            # likelihood-ratio threshold: N slices at level h + ln N fail as often as
            # one slice at h).
            n_kind = self._per_kind[key[0]]
            level = det.threshold + 1.0 * math.log(max(1.0, n_kind / 30.0))
            alarmed = score >= 1.0 - math.exp(-level)
            age = bucket - int(book.first[row])
            warming = age < warmup_buckets
            det.learn_one(x, y, protect=alarmed and not warming)
            if warming:
                det.cusum = det.cusum_spike = 0.0
            state.bucket, state.cum_seen = bucket, cum
            if key == self.global_key:
                # Always learned, even when the global slice looks anomalous: it never
                # pages, and protecting it would freeze a wrong morning factor forever.
                fade = 0.5 ** (1 / 2016)
                self.hour_observed[hour] = self.hour_observed[hour] * fade + y
                self.hour_expected[hour] = self.hour_expected[hour] * fade + mu / h
                market = self._market_factor(y, mu)
            results.append(Evaluation(
                key, y, mu, ex, score, det.evidence, level, alarmed,
                det.run_observed, det.run_expected, det.run_buckets, age))
        self._normalise_hours()
        return results

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

    def reset(self, key: Key) -> None:
        """Start a fresh CUSUM run for ``key`` (after its alert resolved)."""
        state = self.detectors.get(key)
        if state is not None:
            state.det.cusum = state.det.cusum_spike = 0.0

    def __len__(self) -> int:
        return len(self.detectors)


def _sort_key(key: Key) -> tuple:
    return (key[0], tuple(str(v) for v in key[1:]))
