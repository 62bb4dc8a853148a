"""Bucket close: order exposure, per-slice detectors, hour-of-day factors.

Called by the pipeline once per closed event-time bucket with that bucket's counts.
Exposures of all slices advance together in numpy (:mod:`streams.exposure`); Python
work is proportional to the slices with *complaints* in the bucket: a detector that was
quiet for a while learns its quiet span in one step (the exposure it accumulated is
the difference of a cumulative sum). That is what lets 100k slices share one process.

Order exposure of a slice is an exponentially weighted sum of its past orders with
mean lag ``exposure_lag_seconds``: a complaint about an order arrives hours after it,
so a promotion night's orders raise the expected complaints over the following hours,
and the complaint *rate* (per exposure) stays flat. What a promotion does *unevenly* —
a budget carrier's network jams, its delay complaints per order rise more than the
market's — is learned per promotion and slice (:mod:`detectors.promotion_effects`) and
expected the next time; a slice without a learned effect is cautious instead.
"""

from __future__ import annotations

import bisect
import itertools
import math

import msgspec
import numpy as np

from detectors.promotion_effects import PromotionEffects
from detectors.rate_bank import (LAST_PRIOR, RUN_BUCKETS, RUN_EXP, RUN_OBS, SLOW, SPIKE,
                                 ComplaintRateBank)
from riskwatch.calendar import Calendar
from riskwatch.events import INTENTS
from riskwatch.settings import PipelineSettings
from streams.exposure import ExposureBook

__all__ = ["Evaluation", "SliceScorer"]

Key = tuple


class Evaluation(msgspec.Struct, eq=False, gc=False):
    """What the detector said about one slice in one bucket.

    A msgspec struct: a close builds one per active slice straight from its columns, in
    C (a Python ``__init__`` per slice was a third of a 100k-slice close). ``eq=False``
    keeps identity comparison and hashing, as a plain object has.
    """

    key: tuple
    observed: int
    expected: float
    exposure: float
    score: float
    evidence: float
    level: float
    alarmed: bool
    run_observed: float
    run_expected: float
    run_buckets: int
    age_buckets: int
    # Inside a promotion's effect window: its name, the learned factor included in
    # ``expected`` and the cautious lift of the CUSUMs (1.0 where a factor is learned).
    promotion: str = ""
    promotion_factor: float = 1.0
    promotion_lift: float = 1.0


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
        # Every known key in sorted order and each row's place in it: a close puts its
        # active slices in key order with one argsort of ints instead of sorting 100k
        # tuples of strings (a third of the close). None once a key holds a value that
        # is not a string (then each close sorts its keys, as text where needed).
        self.sorted_keys: list[Key] | None = []
        self.rank = np.zeros(1024, dtype=np.int64)
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
        # Learned per-slice effects of recurring promotions (None: not learned, no lift).
        self.promotions = (PromotionEffects(tail_seconds=settings.promotion_tail_seconds,
                                            cold_lift=settings.promotion_cold_lift)
                           if settings.promotion_learning else None)

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
              warmup_buckets: int = 0, calendar: Calendar | None = None) -> list[Evaluation]:
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

        ``calendar``: its promotions' effect windows are where learned promotion effects
        apply (and are learned); maintenance windows play no part here.
        """
        in_promotion = self._enter_promotion(bucket, calendar)
        h = self.hour_factor(hour)
        self.book.advance(bucket, order_combos, hour_factor=h)
        keys = set(complaints) | extra_keys
        keys.discard(self.global_key)
        results: list[Evaluation] = []
        self._phase([self.global_key], bucket, complaints, 1.0, warmup_buckets, results, False)
        y, mu = results[0].observed, results[0].expected
        # Always learned, even when the global slice looks anomalous: it never pages,
        # and protecting it would freeze a wrong morning factor forever.
        fade = 0.5 ** (1 / 2016)
        self.hour_observed[hour] = self.hour_observed[hour] * fade + y
        self.hour_expected[hour] = self.hour_expected[hour] * fade + mu / h
        market = self._market_factor(y, mu)
        self._phase(list(keys), bucket, complaints, market, warmup_buckets, results,
                    in_promotion)
        self._normalise_hours()
        return results

    def _phase(self, keys: list[Key], bucket: int, complaints: dict[Key, int], market: float,
               warmup_buckets: int, results: list[Evaluation], promotion: bool) -> None:
        """Score ``keys`` (any order) and append their evaluations in key order.

        Per slice, only C-level loops run (map, zip, numpy): row lookups, the counts,
        and the evaluations themselves.
        """
        if not keys:
            return
        bank, book = self.bank, self.book
        rows_of = self.rows
        first_new = len(self.row_keys)
        kind_counts = np.asarray(self._per_kind, dtype=np.int64)   # before new slices
        rows = np.fromiter(map(rows_of.get, keys, itertools.repeat(-1)), dtype=np.int64,
                           count=len(keys))
        unseen = np.flatnonzero(rows < 0)
        new_keys = [keys[i] for i in unseen.tolist()]
        if self.sorted_keys is not None and not all(map(_plain, new_keys)):
            self.sorted_keys = None
        if self.sorted_keys is not None:
            # New rows in key order, then every row in key order by its rank.
            if new_keys:
                self._create(sorted(new_keys), bucket)
                rows[unseen] = np.fromiter(map(rows_of.__getitem__, new_keys),
                                           dtype=np.int64, count=len(new_keys))
            order = np.argsort(self.rank[rows])
            rows = rows[order]
            keys = list(map(keys.__getitem__, order.tolist()))
        else:
            keys = _sorted(keys)
            if new_keys:
                self._create([k for k in keys if k not in rows_of], bucket)
            rows = np.fromiter(map(rows_of.__getitem__, keys), dtype=np.int64, count=len(keys))
        r = rows
        # Many slices of a kind, many chances of a fluke: the alarm level rises with the
        # log of how many slices of this kind are watched (Bonferroni for a
        # likelihood-ratio threshold: N slices at level h + ln N fail as often as one
        # slice at h). A kind's count includes its new slices up to the slice itself
        # (keys are grouped by kind, new ones counted in key order).
        kinds = self.row_kind[r]
        n_kind = kind_counts[kinds]
        new = r >= first_new
        if new.any():
            seen_new = np.cumsum(new)
            starts = np.flatnonzero(np.r_[True, kinds[1:] != kinds[:-1]])
            before_group = (seen_new - new)[starts]
            n_kind = n_kind + seen_new - np.repeat(before_group, np.diff(np.r_[starts, len(r)]))
        values, which = np.unique(n_kind, return_inverse=True)
        threshold = bank.threshold
        level = np.asarray([threshold + math.log(n / 30.0) if n > 30 else threshold
                            for n in values.tolist()])[which]
        levels = level.tolist()
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
            quiet = bank.step(c, exposure=gap_exposure[catch_up], prior=prior[catch_up],
                              y=np.zeros(len(c)), buckets=gap[catch_up].astype(np.float64))
            if promotion:
                self._observe_span(c, self.last_bucket[c] + 1, bucket - 1, quiet.mu)
        # ints: they go into the aggregate rows
        counts = list(map(complaints.get, keys, itertools.repeat(0)))
        y = np.asarray(counts, dtype=np.float64)
        # Exposure already carries the hour-of-day factor (streams.exposure); the
        # market factor scales every slice but the global one.
        age = bucket - book.first[ex_rows]
        factor: float | np.ndarray = market
        lift: float | np.ndarray = 1.0
        if promotion:
            # The promotion's learned effect is part of the expectation (and of the
            # exposure the baseline learns: its extra complaints do not inflate the
            # slice's normal rate); a slice without one is cautious instead.
            learned, lift = self.promotions.factors(r)
            factor = market * learned
        step = bank.step(r, exposure=exh, prior=prior, y=y, hour_factor=factor,
                         protect_at=level, learning=age < warmup_buckets, lift=lift)
        if promotion:
            self.promotions.observe(r, y=y, mu=step.mu / learned)
        alarmed = step.evidence >= level
        self.last_bucket[r] = bucket
        self.cum_seen[r] = cum
        score = -np.expm1(-step.evidence)
        after = bank.state[r]
        columns = [keys, counts, step.mu.tolist(), book.ex[ex_rows].tolist(),
                   score.tolist(), after[:, SLOW:SPIKE + 1].max(axis=1).tolist(), levels,
                   alarmed.tolist(), after[:, RUN_OBS].tolist(), after[:, RUN_EXP].tolist(),
                   after[:, RUN_BUCKETS].astype(np.int64).tolist(), age.tolist()]
        if promotion:
            columns += [itertools.repeat(self.promotions.occurrence.name), learned.tolist(),
                        lift.tolist()]
        results.extend(map(Evaluation, *columns))

    # -- promotions -------------------------------------------------------------------
    def _enter_promotion(self, bucket: int, calendar: Calendar | None) -> bool:
        """Open, continue or fold a promotion's effect window at ``bucket``; True inside
        one. Before a window is folded, the quiet exposure its slices accumulated since
        they were last scored is counted as expected complaints (else a slice seen in
        few buckets would look like it complained more than it did)."""
        fx = self.promotions
        if fx is None:
            return False
        entries = ([(e.name, e.kind, e.start, e.end) for e in calendar.promotions()]
                   if calendar is not None else [])
        if fx.occurrence is None and not entries:
            return False
        epoch = bucket * self.settings.bucket_seconds
        now = fx.window_at(epoch, entries)
        if fx.occurrence is not None and (now is None or now[:3] != fx.occurrence[:3]):
            touched = fx.touched_rows()
            touched = touched[touched < len(self.row_keys)]
            if len(touched):
                pending = self.book.cum[self.ex_row[touched]] - self.cum_seen[touched]
                mu = self.bank.rate(touched, self._prior(touched)) * np.maximum(pending, 0.0)
                self._observe_span(touched, self.last_bucket[touched] + 1, bucket - 1, mu)
        return fx.begin_bucket(epoch, entries)

    def _observe_span(self, rows: np.ndarray, first: np.ndarray, last: int | np.ndarray,
                      mu: np.ndarray) -> None:
        """Count the expected complaints ``mu`` of quiet spans (buckets ``first`` to
        ``last``) in the open promotion window: the share of each span inside it, in the
        phase of the middle of that share."""
        fx, bs = self.promotions, self.settings.bucket_seconds
        occ = fx.occurrence
        lo = np.maximum(first, -(-occ.start // bs))
        hi = np.minimum(last, (occ.end - 1) // bs)
        inside = np.maximum(hi - lo + 1, 0)
        share = inside / np.maximum(np.asarray(last) - first + 1, 1)
        phase = np.where(inside > 0, fx.phase_of((lo + hi) // 2 * bs), -1)
        fx.observe(rows, y=0.0, mu=mu * share, phase=phase)

    def _create(self, keys: list[Key], bucket: int) -> None:
        """New detector rows for ``keys`` (in key order): row numbers, exposure row,
        prior parent, no history before now, and their places in the key order."""
        first = len(self.row_keys)
        rows = list(range(first, first + len(keys)))
        self.rows.update(zip(keys, rows))
        self.row_keys.extend(keys)
        need = rows[-1] + 1
        if need > len(self.last_bucket):
            size = max(need, 2 * len(self.last_bucket))
            for name in ("ex_row", "last_bucket", "cum_seen", "parent_row", "row_kind", "rank"):
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
        for key in keys:
            self._per_kind[key[0]] += 1
        self.last_bucket[r] = bucket - 1
        self.cum_seen[r] = book.cum[ex_rows] - book.exh[ex_rows]
        if self.sorted_keys is not None:
            self._insert_ranks(keys, r)
        self.bank.add(len(rows))
        # Twice: a new intent slice's own prior first, then its new children's from it.
        self.bank.state[r, LAST_PRIOR] = self._prior(r)
        self.bank.state[r, LAST_PRIOR] = self._prior(r)

    def _insert_ranks(self, keys: list[Key], rows: np.ndarray) -> None:
        """Merge sorted new ``keys`` into the key order; shift the ranks behind them."""
        old = self.sorted_keys
        at = [bisect.bisect_left(old, k) for k in keys]   # old keys before each new key
        places = np.asarray(at, dtype=np.int64)
        known = len(old)
        if known:
            older = self.rank[:rows[0]]
            older += np.searchsorted(places, older, side="right")
        self.rank[rows] = places + np.arange(len(keys))
        merged: list[Key] = []
        start = 0
        for place, key in zip(at, keys):
            merged.extend(old[start:place])
            merged.append(key)
            start = place
        merged.extend(old[start:])
        self.sorted_keys = merged

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

    def __getstate__(self) -> dict:
        # The key order is derived from ``row_keys``: rebuilt on load, not checkpointed
        # (and a checkpoint taken before it existed loads as well).
        state = dict(self.__dict__)
        state.pop("sorted_keys", None)
        state.pop("rank", None)
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self.rank = np.zeros(len(self.last_bucket), dtype=np.int64)
        keys = self.row_keys
        self.sorted_keys = sorted(keys) if all(map(_plain, keys)) else None
        if self.sorted_keys:
            at = np.fromiter(map(self.rows.__getitem__, self.sorted_keys), dtype=np.int64,
                             count=len(keys))
            self.rank[at] = np.arange(len(keys))

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


def _plain(key: Key) -> bool:
    """Does ``key`` hold only strings after its slice index (so keys sort in C)?"""
    return all(type(v) is str for v in key[1:])


def _sorted(keys: list[Key]) -> list[Key]:
    try:
        return sorted(keys)  # values are strings: tuples compare in C
    except TypeError:        # a non-string value somewhere: compare as text
        return sorted(keys, key=_sort_key)
