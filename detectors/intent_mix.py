"""Intent-mix shift: a slice whose complaints turn to one intent, whatever their total.

Why this shape
--------------
A shop that stops shipping real parcels, a hub that starts losing them, a category
whose goods arrive broken: the *kind* of complaint changes, often before (or without)
the number of complaints rising. The complaint-rate detector sees a slice x intent
rise only when it is several times normal; a slice without intent children (a
category, a region x carrier) it does not see at all when the total stays flat.

Each slice learns its intent shares ``p`` (faded counts per intent, shrunk towards its
parent's shares with ``prior_strength`` pseudo-complaints: a new or tiny slice starts
from the market's mix). Given the ``n`` complaints of a bucket, each intent's count is
binomial ``(n, p_i)``: the total cancels out, so promotion nights, busy mornings and
a mis-learned exposure do not move it. Per intent, two Bernoulli CUSUMs accumulate
the log-likelihood ratio of "the share is ``rho`` times normal" (a sensitive one and a
steep ``rho_spike`` one for intents a slice almost never sees), with the step shared
by every bank (:func:`detectors.cusum.cusum_step`): a complaint of the intent adds
``ln(p1 / p) - ln((1 - p1) / (1 - p))``, every complaint subtracts
``-ln((1 - p1) / (1 - p))``. The slice's evidence is the largest over intents; the
pipeline adds ``ln(number of intents)`` to the alarm level (Bonferroni over intents)
and pages only a run whose binomial tail (its count of the intent among all its
complaints), times the number of intents, is below ``alpha``
(:meth:`IntentMixBank.run_tail`).

Minimum-volume guard: a slice's CUSUMs stay at zero until it has learned
``min_volume`` complaints (its own shares are still mostly its parent's). An alarmed
slice keeps the bucket out of its shares for at most ``max_protect_buckets`` of a run.

:class:`IntentMixBank` is all slices as rows of one numpy array (how the pipeline runs
it, :mod:`streams.mix`); :class:`IntentMixDetector` is one slice, the river estimator of
the conformance test, and runs a one-row bank, so the two cannot disagree.

Examples
--------
>>> det = IntentMixDetector(intents=("delay", "lost", "damaged"))
>>> for _ in range(200):                               # 60 % delay, 20 % lost, 20 % damaged
...     det.learn_one({"delay": 6, "lost": 2, "damaged": 2})
>>> [round(p, 2) for p in det.shares]
[0.6, 0.2, 0.2]
>>> det.score_one({"delay": 6, "lost": 2, "damaged": 2})   # the usual mix
0.0
>>> round(det.score_one({"delay": 2, "lost": 8, "damaged": 0}), 4)  # same total, mostly lost
0.9992
>>> det.score_one({"delay": 60, "lost": 20, "damaged": 20})  # ten times the total, same mix
0.0
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
from river import base
from scipy import stats

from detectors.cusum import UsedRowsPickle, cusum_step
from riskwatch.events import INTENTS

__all__ = ["IntentMixBank", "IntentMixDetector", "MixStep"]

# Columns per (row, intent) cell. RUN_COVERED: complaints of the run that the caller
# said were already explained elsewhere (the pipeline: in a complaint-rate alarm).
# RUN_TOTAL: all complaints of the slice over the run (the binomial's n).
COUNT, SLOW, SPIKE, RUN_OBS, RUN_EXP, RUN_BUCKETS, PRIOR, RUN_COVERED, RUN_TOTAL = range(9)
_COLUMNS = 9


class MixStep(NamedTuple):
    """What one :meth:`IntentMixBank.step` saw: arrays of shape (rows, intents)."""

    mu: np.ndarray        # expected count per intent given the bucket's total
    evidence: np.ndarray  # the larger CUSUM per intent after the bucket
    observed: np.ndarray  # the bucket's count per intent


class IntentMixBank(UsedRowsPickle):
    """Rows of intent-mix detectors (one per slice), parameters as the detector's.

    ``state`` is laid out column by column, ``(columns, rows, intents)``: a step reads
    a few columns of many rows, and each row's 13 intents of one column then sit side
    by side in memory (one or two cache lines, not 13).

    >>> bank = IntentMixBank(intents=("a", "b"), min_volume=10)
    >>> rows = bank.add(2)
    >>> usual = np.array([[8.0, 2.0], [8.0, 2.0]])
    >>> for _ in range(100):
    ...     _ = bank.step(rows, usual)
    >>> np.round(bank.shares(rows), 2).tolist()
    [[0.8, 0.2], [0.8, 0.2]]
    >>> step = bank.step(rows, np.array([[8.0, 2.0], [4.0, 6.0]]))  # row 1: b triples
    >>> step.evidence.max(axis=1).round(1).tolist()
    [0.0, 3.5]
    """

    def __init__(self, intents: tuple[str, ...] = INTENTS, rho: float = 2.5,
                 rho_spike: float = 8.0, threshold: float = 8.0, half_life: float = 2016.0,
                 prior_strength: float = 20.0, min_volume: float = 30.0,
                 max_evidence: float = 400.0, max_protect_buckets: int = 72,
                 max_cusum: float = 2.0, capacity: int = 256) -> None:
        self.intents = tuple(intents)
        self.rho, self.rho_spike, self.threshold = rho, rho_spike, threshold
        self.half_life, self.prior_strength = half_life, prior_strength
        self.min_volume, self.max_evidence = min_volume, max_evidence
        self.max_protect_buckets, self.max_cusum = max_protect_buckets, max_cusum
        self.size = 0
        self.state = np.zeros((_COLUMNS, capacity, len(self.intents)))

    def __len__(self) -> int:
        return self.size

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["state"] = self.state[:, :self.size].copy()   # the rows in use only
        return state

    def add(self, n: int, prior: np.ndarray | None = None) -> np.ndarray:
        """Append ``n`` fresh rows (prior shares: uniform unless given); return them."""
        start, end = self.size, self.size + n
        if end > self.state.shape[1]:
            grown = np.zeros((_COLUMNS, max(end, 2 * self.state.shape[1]), len(self.intents)))
            grown[:, :start] = self.state[:, :start]
            self.state = grown
        self.state[:, start:end] = 0.0
        self.state[PRIOR, start:end] = (1.0 / len(self.intents)) if prior is None else prior
        self.size = end
        return np.arange(start, end)

    def shares(self, rows: np.ndarray, prior: np.ndarray | None = None) -> np.ndarray:
        """Shrunk intent shares per row (``prior`` defaults to each row's last one)."""
        return self._shares(self.state[COUNT][rows],
                            self.state[PRIOR][rows] if prior is None else prior)

    def _shares(self, counts: np.ndarray, prior: np.ndarray,
                total: np.ndarray | None = None) -> np.ndarray:
        if total is None:
            total = counts.sum(axis=1, keepdims=True)
        shares = counts + self.prior_strength * prior
        shares /= total + self.prior_strength
        return shares

    def volume(self, rows: np.ndarray) -> np.ndarray:
        """Learned (faded) complaints per row: what the minimum-volume guard checks."""
        return self.state[COUNT][rows].sum(axis=1)

    def column(self, name: int, rows: np.ndarray) -> np.ndarray:
        """One cell column (``RUN_OBS``, ``RUN_EXP``, ...) as (rows, intents)."""
        return self.state[name][rows]

    def reset(self, rows) -> None:
        """Start fresh CUSUM runs (after an alert resolved)."""
        self.state[SLOW:SPIKE + 1, rows] = 0.0

    def run_tail(self, observed, total, share) -> np.ndarray:
        """Bonferroni-corrected binomial tail of a run: ``K * P(X >= observed)``,
        X ~ Binomial(total, share) (``share``: the run's expected count / total)."""
        tail = stats.binom.sf(np.asarray(observed) - 1.0, np.maximum(total, 0.0),
                              np.clip(share, 1e-12, 1.0))
        return np.minimum(1.0, tail * len(self.intents))

    def step(self, rows: np.ndarray, y: np.ndarray, *, prior: np.ndarray | None = None,
             buckets: float | np.ndarray = 1.0, protect_at: np.ndarray | None = None,
             learning: np.ndarray | None = None, factor: np.ndarray | None = None,
             covered: np.ndarray | float | None = None, commit: bool = True) -> MixStep:
        """Score, then learn, one bucket per row; ``y`` is (rows, intents) counts.

        ``buckets``: buckets since the row last learned (its counts fade by as much).
        ``factor`` (rows, intents): multiplies the shares the bucket is scored against
        (each intent's on its own, at most 0.95; learning is unaffected), e.g. the
        market's recent mix against its usual one. ``covered`` (rows, intents):
        complaints of the bucket explained elsewhere, summed over the run in
        ``RUN_COVERED`` (``0.0``: none of them, the same as a matrix of zeros).
        ``protect_at``: rows whose evidence reaches it keep the bucket out of their
        shares (for at most ``max_protect_buckets`` of a run). ``learning`` rows (and
        rows below ``min_volume``) learn everything and their CUSUMs restart.
        ``commit=False`` computes the step without changing the bank (a pure score).
        """
        if not commit:   # a pure score: step, then put the rows back as they were
            saved = self.state[:, rows].copy()
            try:
                return self.step(rows, y, prior=prior, buckets=buckets, protect_at=protect_at,
                                 learning=learning, factor=factor, covered=covered)
            finally:
                self.state[:, rows] = saved
        # Columns are read and written where needed, not whole rows: a row holds 13
        # intents x 9 columns, and a close touches most of them only to count.
        state, k = self.state, len(self.intents)
        if prior is not None:
            state[PRIOR, rows] = prior
        counts = state[COUNT][rows]
        total = counts.sum(axis=1, keepdims=True)
        p = self._shares(counts, state[PRIOR][rows], total)
        if factor is not None:
            # Each intent is tested on its own (binomial of its count given the total),
            # so a factor moves only its intent's share: no renormalisation.
            p *= factor
            np.minimum(p, 0.95, out=p)
        n = y.sum(axis=1, keepdims=True)
        mu = n * p
        # Only cells with a complaint or a running CUSUM can move: an intent the bucket
        # did not see, with its statistics at zero, stays at zero (its step is a drift
        # down, clipped). Most cells of a bucket are such; skipping them is most of the
        # cost of a close. Both statistics are >= 0: "either runs" is "their sum > 0".
        stats = state[SLOW:SPIKE + 1][:, rows]
        running = (stats[0] + stats[1]).ravel() > 0.0
        yf = y.ravel()
        seen = yf > 0.0
        # Cells with a complaint first, then the running ones without: only the first
        # need the weight of a complaint (three of the six logarithms).
        with_y = np.flatnonzero(seen)
        m = len(with_y)
        sel = np.concatenate((with_y, np.flatnonzero(running > seen)))
        # (row x intent) cells of the selected positions, as indices into each
        # column's flat (rows x intents) plane.
        at_row, at_intent = np.divmod(sel, k)
        cell = rows[at_row] * k + at_intent
        planes = state.reshape(_COLUMNS, -1)   # a view
        # The columns a step moves, gathered once as (5, cells) and (2, cells)
        # (COUNT and PRIOR are per row); cusum_step sees the first block as (cells, 5)
        # through a transposed view (its columns shifted by one).
        block = planes[SLOW:RUN_BUCKETS + 1][:, cell]
        totals = planes[RUN_COVERED:RUN_TOTAL + 1][:, cell]
        cells = block.T
        pa = p.ravel()[sel]
        na = n.ravel()[at_row]
        was_running = running[sel]
        # Alternatives: rho times the share, at most half way to 1 (a share near 1 has
        # nowhere to go, and ln(1 - p1) must stay finite).
        # (In place where the formula allows: each temporary is a pass over ~1M cells.)
        half_way = 1.0 + pa
        half_way *= 0.5
        p1 = self.rho * pa
        np.minimum(p1, half_way, out=p1)
        p1s = self.rho_spike * pa
        np.minimum(p1s, half_way, out=p1s)
        log_stay = _log1p_of_negative(pa)
        stay = _log1p_of_negative(p1)
        stay -= log_stay
        stay_s = _log1p_of_negative(p1s)
        stay_s -= log_stay
        # A complaint's weight, ln(p1 / p) - (ln(1 - p1) - ln(1 - p)), where y > 0;
        # elsewhere y * weight is 0 * weight = +0.0 (the weight is finite and >= 0),
        # so a weight of 0.0 gives the same bits.
        weight, weight_s = np.zeros(len(sel)), np.zeros(len(sel))
        log_p = np.log(pa[:m])
        np.log(p1[:m], out=weight[:m])
        weight[:m] -= log_p
        weight[:m] -= stay[:m]
        np.log(p1s[:m], out=weight_s[:m])
        weight_s[:m] -= log_p
        weight_s[:m] -= stay_s[:m]
        minus_n = np.negative(na)
        stay *= minus_n     # the drifts: -n ln((1 - p1) / (1 - p))
        stay_s *= minus_n
        ysel = yf[sel]
        ev = cusum_step(
            cells, (SLOW - 1, SPIKE - 1), (RUN_OBS - 1, RUN_EXP - 1, RUN_BUCKETS - 1),
            y=ysel, mu=na * pa, weights=(weight, weight_s), drifts=(stay, stay_s),
            cap=self.max_cusum * self.threshold)
        # Run totals: carried while the cell runs on, restarted when it starts, zero
        # when it stops (as the run columns in cusum_step).
        stop = ev <= 0.0
        fresh = ~was_running
        fresh |= stop
        run_total = totals[RUN_TOTAL - RUN_COVERED]
        np.copyto(run_total, 0.0, where=fresh)
        run_total += na
        np.copyto(run_total, 0.0, where=stop)
        if covered is not None:
            run_covered = totals[0]
            np.copyto(run_covered, 0.0, where=fresh)
            if isinstance(covered, np.ndarray):
                run_covered += covered.ravel()[sel]
                np.copyto(run_covered, 0.0, where=stop)
            # else: nothing covered this bucket (+ 0.0 changes no bit; stop is in fresh)
        planes[SLOW:RUN_BUCKETS + 1, cell] = block
        planes[RUN_COVERED:RUN_TOTAL + 1, cell] = totals
        evidence = np.zeros(y.size)
        evidence[sel] = ev
        evidence = evidence.reshape(y.shape)
        learn = np.ones(len(rows), dtype=bool)
        if protect_at is not None:
            learn = evidence.max(axis=1) < protect_at
            # Protected rows (alarmed: few) learn anyway once their run is long.
            hot = np.flatnonzero(~learn)
            if len(hot):
                learn[hot] = state[RUN_BUCKETS][rows[hot]].max(axis=1) > self.max_protect_buckets
        young = total[:, 0] < self.min_volume
        if learning is not None:
            young |= learning
        learn |= young
        fade = 0.5 ** (np.asarray(buckets, dtype=np.float64) / self.half_life)
        # (Passes over every cell are a close's main cost: skip a where that keeps all.)
        learned = counts * np.reshape(fade, (-1, 1))
        learned += y
        counts = learned if learn.all() else np.where(learn[:, None], learned, counts)
        total = counts.sum(axis=1, keepdims=True)
        state[COUNT, rows] = counts * np.minimum(1.0, self.max_evidence / np.maximum(total, 1e-300))
        if young.any():
            restart = rows[young]
            state[SLOW:RUN_BUCKETS + 1, restart] = 0.0
            state[RUN_COVERED:RUN_TOTAL + 1, restart] = 0.0
        return MixStep(mu, np.where(young[:, None], 0.0, evidence) if young.any() else evidence, y)


def _log1p_of_negative(x: np.ndarray) -> np.ndarray:
    """``np.log1p(-x)`` with one temporary."""
    out = np.negative(x)
    return np.log1p(out, out=out)


class IntentMixDetector(base.AnomalyDetector):
    """Intent-mix shift of one slice; ``x`` maps intent -> complaints of the bucket.

    Unknown intents are ignored; missing ones count 0. ``learn_one(x, prior=...)``
    accepts the parent's shares (a mapping intent -> share) for shrinkage.

    Parameters
    ----------
    intents
        The intent taxonomy (default: the event contract's 13 intents).
    rho
        Share multiple the sensitive CUSUM is designed for.
    rho_spike
        Share multiple of the steep CUSUM (intents the slice almost never sees).
    threshold
        CUSUM alarm level ``h``; the score is ``1 - exp(-S)``.
    half_life
        Half-life of the learned shares, in buckets (2016 = one week of 5 min).
    prior_strength
        Pseudo-complaints of the parent's mix in the shares.
    min_volume
        Learned complaints before the CUSUMs may accumulate (minimum-volume guard).
    max_evidence
        Cap on the learned complaint count (real mixes drift: overdispersion).
    max_protect_buckets
        An alarmed bucket stays out of the shares for at most this many buckets of a run.
    max_cusum
        Cap of each CUSUM as a multiple of ``threshold``.
    """

    def __init__(self, intents: tuple[str, ...] = INTENTS, rho: float = 2.5,
                 rho_spike: float = 8.0, threshold: float = 8.0, half_life: float = 2016.0,
                 prior_strength: float = 20.0, min_volume: float = 30.0,
                 max_evidence: float = 400.0, max_protect_buckets: int = 72,
                 max_cusum: float = 2.0) -> None:
        self.intents = tuple(intents)
        self.rho = rho
        self.rho_spike = rho_spike
        self.threshold = threshold
        self.half_life = half_life
        self.prior_strength = prior_strength
        self.min_volume = min_volume
        self.max_evidence = max_evidence
        self.max_protect_buckets = max_protect_buckets
        self.max_cusum = max_cusum
        self._bank = IntentMixBank(self.intents, rho, rho_spike, threshold, half_life,
                                   prior_strength, min_volume, max_evidence,
                                   max_protect_buckets, max_cusum, capacity=1)
        self._row = self._bank.add(1)

    def _counts(self, x: dict) -> np.ndarray:
        return np.asarray([[float(x.get(i, 0) or 0) for i in self.intents]])

    def _prior(self, prior: dict | None) -> np.ndarray | None:
        if not prior:
            return None
        p = np.asarray([[max(float(prior.get(i, 0.0)), 1e-6) for i in self.intents]])
        return p / p.sum()

    @property
    def shares(self) -> list[float]:
        """Shrunk shares per intent (order of ``intents``)."""
        return self._bank.shares(self._row)[0].tolist()

    @property
    def evidence(self) -> float:
        """The largest CUSUM over intents (log-likelihood ratio of "the mix shifted")."""
        return float(self._bank.state[SLOW:SPIKE + 1, 0].max())

    def score_one(self, x: dict) -> float:
        """``1 - exp(-S)`` for the largest CUSUM after the bucket ``x`` (pure)."""
        step = self._bank.step(self._row, self._counts(x), commit=False)
        return -math.expm1(-float(step.evidence.max()))

    def learn_one(self, x: dict, prior: dict | None = None, *, protect: bool = False) -> None:
        """Advance the CUSUMs and (unless ``protect`` while alarmed) learn the shares."""
        self._bank.step(self._row, self._counts(x), prior=self._prior(prior),
                        protect_at=np.asarray([0.0 if protect else math.inf]))

    @classmethod
    def _unit_test_params(cls):
        yield {}
        yield {"intents": ("delivery_delay", "lost_parcel", "damaged", "other"),
               "rho": 3.0, "threshold": 7.0, "min_volume": 10.0}
