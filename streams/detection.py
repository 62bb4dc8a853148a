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

    # A phase of at most this many slices runs in plain Python (:meth:`_phase_few`):
    # below it numpy's fixed cost per call outweighs its speed per row.
    small_phase = 64

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
        # Keys created since the ranks were last brought up to date: merged into the
        # order only when a large close needs the ranks (small closes sort their few
        # keys), so a close that creates a slice does not pay a pass over all ranks.
        self._unranked: list[Key] = []
        self._fade_of: dict[int, float] = {}   # span length -> fade (_fades)
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
        if (len(keys) <= self.small_phase and not promotion
                and isinstance(self.bank.threshold, float)):
            self._phase_few(keys, bucket, complaints, market, warmup_buckets, results)
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
            self._unranked = []
        if self.sorted_keys is not None:
            # New rows in key order, then every row in key order by its rank.
            if new_keys:
                self._create(sorted(new_keys), bucket)
                rows[unseen] = np.fromiter(map(rows_of.__getitem__, new_keys),
                                           dtype=np.int64, count=len(new_keys))
            self._rank_unranked()
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

    def _phase_few(self, keys: list[Key], bucket: int, complaints: dict[Key, int],
                   market: float, warmup_buckets: int, results: list[Evaluation]) -> None:
        """:meth:`_phase` of a few slices, outside promotion windows, in plain Python.

        Why: a quiet bucket scores a few dozen slices (the simulator week: ~25 and the
        global one), and :meth:`_phase` costs its ~100 numpy calls of a few
        microseconds whatever the number of rows. Here the rows' state is read out
        with one gather per array, stepped by :meth:`ComplaintRateBank.step_rows` and
        written back with one scatter per array. The values are :meth:`_phase`'s to the
        bit: the same IEEE operations in the same order, and the two transcendental
        functions (the fade of a quiet span, the score's ``expm1``) still in numpy
        (``tests/detectors/test_slice_order.py`` compares both paths on random closes).
        """
        bank, book = self.bank, self.book
        rows_of = self.rows
        first_new = len(self.row_keys)
        kind_counts = self._per_kind.copy()   # before new slices
        keys = _sorted(keys)   # plain keys: their rank order (see _phase)
        new_keys = [k for k in keys if k not in rows_of]
        if new_keys:
            if self.sorted_keys is not None and not all(map(_plain, new_keys)):
                self.sorted_keys = None
                self._unranked = []
            self._create(new_keys, bucket)
        rows = list(map(rows_of.__getitem__, keys))
        # The Bonferroni level of _phase: a kind's count includes its new slices up to
        # the slice itself (keys are grouped by kind, in key order).
        threshold = bank.threshold
        levels = []
        kind, new_in_kind = -1, 0
        for key, row in zip(keys, rows):
            if key[0] != kind:
                kind, new_in_kind = key[0], 0
            if row >= first_new:
                new_in_kind += 1
            n = kind_counts[kind] + new_in_kind
            levels.append(threshold + math.log(n / 30.0) if n > 30 else threshold)
        r = np.asarray(rows, dtype=np.int64)
        ex_rows = self.ex_row[r]
        exh, cum = book.exh[ex_rows].tolist(), book.cum[ex_rows].tolist()
        prior = self._prior_few(rows, [key[0] for key in keys])   # rates before this bucket
        states = bank.state[r].tolist()
        # Buckets a slice had no complaint in: learned in one span (as _phase).
        gaps = [bucket - 1 - last for last in self.last_bucket[r].tolist()]
        gap_exposure = [(c - h) - seen for c, h, seen in zip(cum, exh, self.cum_seen[r].tolist())]
        quiet = [i for i, (gap, exposure) in enumerate(zip(gaps, gap_exposure))
                 if gap > 0 and exposure > 0]
        if quiet:
            spans = [gaps[i] for i in quiet]
            fades = self._fades(spans)
            bank.step_rows([states[i] for i in quiet], exposure=[gap_exposure[i] for i in quiet],
                           prior=[prior[i] for i in quiet], y=[0.0] * len(quiet),
                           fades=fades, buckets=[float(gap) for gap in spans])
        counts = list(map(complaints.get, keys, itertools.repeat(0)))
        age = [bucket - first for first in book.first[ex_rows].tolist()]
        mu, evidence = bank.step_rows(
            states, exposure=exh, prior=prior, y=[float(c) for c in counts],
            hour_factor=market, protect_at=levels,
            learning=[a < warmup_buckets for a in age])
        bank.state[r] = states
        self.last_bucket[r] = bucket
        self.cum_seen[r] = cum
        # score = -expm1(-evidence) in numpy, as _phase; 0.0 where the evidence is (most
        # rows: numpy's expm1 of -0.0 is -0.0 too)
        score = [0.0] * len(evidence)
        running = [i for i, e in enumerate(evidence) if e > 0.0]
        if running:
            values = -np.expm1(-np.asarray([evidence[i] for i in running]))
            for i, value in zip(running, values.tolist()):
                score[i] = value
        results.extend(map(
            Evaluation, keys, counts, mu, book.ex[ex_rows].tolist(), score,
            [slow if slow >= spike else spike for _, _, slow, spike, *_ in states], levels,
            [e >= level for e, level in zip(evidence, levels)],
            [s[RUN_OBS] for s in states], [s[RUN_EXP] for s in states],
            [int(s[RUN_BUCKETS]) for s in states], age))

    def _fades(self, spans: list[int]) -> list[float]:
        """The baseline's fade over quiet spans of ``spans`` buckets, as
        :meth:`ComplaintRateBank.step` computes it in numpy, remembered per length (the
        same few lengths recur every close; the same input gives the same bits)."""
        known = self._fade_of
        missing = [span for span in set(spans) if span not in known]
        if missing:
            fades = 0.5 ** (np.asarray(missing, dtype=np.float64) / self.bank.half_life)
            if len(known) > 4096:   # a bound for long gaps seen once
                known.clear()
            known.update(zip(missing, fades.tolist()))
        return list(map(known.__getitem__, spans))

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
        new = slice(first, need)   # the new rows are the last ones
        self.ex_row[new] = ex_rows
        self.parent_row[new] = parents
        kinds = [k[0] for k in keys]
        self.row_kind[new] = kinds
        for kind in kinds:
            self._per_kind[kind] += 1
        self.last_bucket[new] = bucket - 1
        self.cum_seen[new] = book.cum[ex_rows] - book.exh[ex_rows]
        if self.sorted_keys is not None:
            self._unranked.extend(keys)
        self.bank.add(len(rows))
        # Twice: a new intent slice's own prior first, then its new children's from it.
        if len(rows) <= self.small_phase:
            self.bank.state[new, LAST_PRIOR] = self._prior_few(rows, kinds)
            self.bank.state[new, LAST_PRIOR] = self._prior_few(rows, kinds)
        else:
            r = np.arange(first, need)
            self.bank.state[r, LAST_PRIOR] = self._prior(r)
            self.bank.state[r, LAST_PRIOR] = self._prior(r)

    def _rank_unranked(self) -> None:
        """Merge the keys created since the last merge into the key order (their rows
        are the last ones); shift the ranks behind them."""
        if not self._unranked:
            return
        keys = sorted(self._unranked)
        self._unranked = []
        rows = np.fromiter(map(self.rows.__getitem__, keys), dtype=np.int64, count=len(keys))
        old = self.sorted_keys
        at = [bisect.bisect_left(old, k) for k in keys]   # old keys before each new key
        places = np.asarray(at, dtype=np.int64)
        known = len(old)
        if known:
            older = self.rank[:len(self.row_keys) - len(keys)]
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

    def _prior_few(self, rows: list[int], kinds: list[int]) -> list[float]:
        """:meth:`_prior` of a few ``rows`` (of slice kinds ``kinds``) in plain Python:
        the same operations on the same values (a few numpy calls fewer)."""
        grow = self.rows.get(self.global_key)
        parents = self.parent_row[rows].tolist()
        *parent_rates, base = self.bank.rates_of_rows(
            np.asarray(parents + [-1 if grow is None else grow], dtype=np.int64), 0.01)
        per_intent, intent_base = self._per_intent_prior.tolist(), base / len(INTENTS)
        return [0.01 if row == grow else rate if parent >= 0
                else intent_base if per_intent[kind] else base
                for row, kind, parent, rate in zip(rows, kinds, parents, parent_rates)]

    def __getstate__(self) -> dict:
        # The key order is derived from ``row_keys``: rebuilt on load, not checkpointed
        # (and a checkpoint taken before it existed loads as well).
        state = dict(self.__dict__)
        state.pop("sorted_keys", None)
        state.pop("rank", None)
        state.pop("_unranked", None)
        state.pop("_fade_of", None)
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self.rank = np.zeros(len(self.last_bucket), dtype=np.int64)
        self._unranked = []
        self._fade_of = {}
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
