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

import importlib
import math
import operator
from typing import NamedTuple

import numpy as np
from river import base

from detectors.cusum import UsedRowsPickle, cusum_step
from riskwatch.events import INTENTS

__all__ = ["IntentMixBank", "IntentMixDetector", "MixStep", "load_tail_model", "row_sum"]

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
        # Imported here: scipy.stats is 1.1 s of the pipeline's 1.8 s import, and a run's
        # tail is needed a few dozen times a week (replay's start-up; the live worker
        # imports it on its start-up thread, see load_tail_model).
        from scipy import stats

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

    def shares_of(self, rows: list[int]) -> list[list[float]]:
        """:meth:`shares` of ``rows`` (each row's last prior) as lists, in plain Python
        (the same floats: see :func:`row_sum`)."""
        ps = self.prior_strength
        both = self.state[COUNT:PRIOR + 1:PRIOR - COUNT][:, rows].tolist()   # COUNT, PRIOR
        return [[(c + ps * p) / (total + ps) for c, p in zip(counts, prior)]
                for counts, prior, total in zip(both[0], both[1], map(row_sum, both[0]))]

    def step_few(self, rows: list[int], y: list[list[float]], *, prior: list[list[float]],
                 buckets: np.ndarray, protect_at: list[float], learning: bool,
                 factor: list[list[float]] | None, covered: dict[tuple[int, int], float]
                 ) -> tuple[list[list[float]], list[list[float]]]:
        """:meth:`step` of a few distinct rows in plain Python; returns ``(mu, evidence)``
        as lists (rows x intents).

        ``y``, ``prior``, ``factor``: lists of the arrays :meth:`step` takes; ``buckets``:
        an array; ``covered``: (position, intent) -> complaints explained elsewhere (the
        cells of :meth:`step`'s matrix that are not zero; empty: none); ``learning``: all
        rows or none.

        Why: a quiet week's close scores a few dozen slices (half of them the global
        slice alone), and :meth:`step` costs its ~60 numpy calls of a few microseconds
        whatever the number of rows. Here the rows' columns are read and written once,
        the + - * / are Python floats (exactly rounded, as numpy's), the logarithms
        and fades stay in numpy (one call for all cells), sums over intents are
        :func:`row_sum` (numpy's order): every value is the same IEEE operation in the
        same order as :meth:`step` and :func:`detectors.cusum.cusum_step`, so the bank
        ends bit for bit where its step leaves it (keep them in step;
        ``tests/detectors/test_intent_mix_few.py``). Conditionals stand for
        np.maximum / np.minimum (the same value for every number but NaN, which no
        cell holds).
        """
        k, ps = len(self.intents), self.prior_strength
        state = self.state
        counts, slow, spike = state[COUNT:SPIKE + 1, rows].tolist()   # [position][intent]
        # Shares, the bucket's expectation; the cells that can move (a complaint or a
        # running CUSUM): those with a complaint first (they need the weights' logs).
        totals = list(map(row_sum, counts))
        mus, ns, shares = [], [], []
        seen, quiet = [], []
        for r, (c_row, p_row, y_row, total) in enumerate(zip(counts, prior, y, totals)):
            total += ps   # (the same float for every intent: added once)
            p = [(c + ps * q) / total for c, q in zip(c_row, p_row)]
            if factor is not None:
                p = [v if v < 0.95 else 0.95 for v in map(operator.mul, p, factor[r])]
            n = sum(y_row)   # whole numbers: any order gives the same float
            ns.append(n)
            shares.append(p)
            mus.append([n * v for v in p])
            for i, (yi, a, b) in enumerate(zip(y_row, slow[r], spike[r])):
                if yi > 0.0:
                    seen.append((r, i))
                elif a + b > 0.0:
                    quiet.append((r, i))
        cells = seen + quiet
        m, n_cells = len(seen), len(cells)
        pa = [shares[r][i] for r, i in cells]
        p1, p1s = [], []
        for v in pa:
            half_way = (1.0 + v) * 0.5
            a, b = self.rho * v, self.rho_spike * v
            p1.append(a if a <= half_way else half_way)
            p1s.append(b if b <= half_way else half_way)
        logs1p = np.log1p(np.array([-v for v in pa + p1 + p1s])).tolist()
        logs = np.log(np.array(pa[:m] + p1[:m] + p1s[:m])).tolist()
        # The moving cells' columns, by their index in each column's (rows x intents) plane.
        planes = state.reshape(_COLUMNS, -1)   # a view
        flat = [rows[r] * k + i for r, i in cells]
        obs, exp, run_b, _, run_cov, run_total = planes[RUN_OBS:, flat].tolist()
        evidence = [[0.0] * k for _ in rows]
        cap = self.max_cusum * self.threshold
        s0s, s1s = [], []
        for j, (r, i) in enumerate(cells):
            v, na, yi = pa[j], ns[r], y[r][i]
            log_stay = logs1p[j]
            stay = logs1p[n_cells + j] - log_stay
            stay_s = logs1p[2 * n_cells + j] - log_stay
            if j < m:
                weight = logs[m + j] - logs[j] - stay
                weight_s = logs[2 * m + j] - logs[j] - stay_s
            else:
                weight = weight_s = 0.0
            minus_n = -na
            # cusum_step: (S + y * weight) - drift, clipped to [0, cap] (max, then min)
            s0, s1 = slow[r][i], spike[r][i]
            was_running = s0 + s1 > 0.0
            s0 = s0 + yi * weight - stay * minus_n
            s1 = s1 + yi * weight_s - stay_s * minus_n
            s0 = (s0 if s0 < cap else cap) if s0 > 0.0 else 0.0
            s1 = (s1 if s1 < cap else cap) if s1 > 0.0 else 0.0
            s0s.append(s0)
            s1s.append(s1)
            ev = evidence[r][i] = s0 if s0 >= s1 else s1
            # The run (as cusum_step) and its totals (as step): zero where nothing runs,
            # carried where a statistic ran before, started where one leaves zero.
            c = covered.get((r, i))
            if ev <= 0.0:
                obs[j] = exp[j] = run_b[j] = run_total[j] = run_cov[j] = 0.0
            elif was_running:
                obs[j] += yi
                exp[j] += na * v
                run_b[j] += 1.0
                run_total[j] += na
                if c is not None:
                    run_cov[j] += c
            else:
                obs[j], exp[j], run_b[j] = 0.0 + yi, 0.0 + na * v, 0.0 + 1.0
                run_total[j] = 0.0 + na
                run_cov[j] = 0.0 if c is None else 0.0 + c
        # One write for the moving cells (PRIOR among the columns: the new prior).
        planes[SLOW:, flat] = np.array(s0s + s1s + obs + exp + run_b
                                       + [prior[r][i] for r, i in cells]
                                       + run_cov + run_total).reshape(_COLUMNS - 1, n_cells)
        # Learning: faded counts take the bucket unless the row is protected (alarmed,
        # for at most max_protect_buckets of a run); young rows learn and restart.
        fades = (0.5 ** (np.asarray(buckets, dtype=np.float64) / self.half_life)).tolist()
        max_evidence, young = self.max_evidence, []
        for r, (c_row, y_row, total, fade) in enumerate(zip(counts, y, totals, fades)):
            if total < self.min_volume or learning:
                young.append(r)
                c_row = [c * fade + yi for c, yi in zip(c_row, y_row)]
            elif (max(evidence[r]) < protect_at[r]
                  or state[RUN_BUCKETS, rows[r]].max() > self.max_protect_buckets):
                c_row = [c * fade + yi for c, yi in zip(c_row, y_row)]
            # (else protected: the counts stay as they were, capped again as step does)
            scale = max_evidence / max(row_sum(c_row), 1e-300)
            counts[r] = [c * scale for c in c_row] if scale < 1.0 else c_row
        if young:
            state[SLOW:, [rows[r] for r in young]] = 0.0   # (PRIOR too: written below)
            for r in young:
                evidence[r] = [0.0] * k
        state[COUNT:PRIOR + 1:PRIOR - COUNT, rows] = np.array([counts, prior])
        return mus, evidence


def load_tail_model() -> None:
    """Import what :meth:`IntentMixBank.run_tail` needs (scipy.stats, ~1 s) now.

    The live worker calls it on its start-up thread: otherwise the first run's tail,
    hours into a stream, holds the event loop (and every partition) for that second.
    """
    importlib.import_module("scipy.stats")


def _log1p_of_negative(x: np.ndarray) -> np.ndarray:
    """``np.log1p(-x)`` with one temporary."""
    out = np.negative(x)
    return np.log1p(out, out=out)


def row_sum(values: list[float]) -> float:
    """Sum of a row of floats in numpy's order: ``np.sum`` of a contiguous row adds
    pairwise, in eight interleaved partial sums from eight values on (its
    ``pairwise_sum``, blocks of up to 128). Floating-point addition is not associative,
    so a plain ``sum`` can differ from it in the last bit.

    >>> rows = np.random.default_rng(0).random((50, 13)) * 1000
    >>> [row_sum(row) for row in rows.tolist()] == rows.sum(axis=1).tolist()
    True
    """
    n = len(values)
    if n < 8:
        total = 0.0
        for v in values:
            total += v
        return total
    if n > 128:   # numpy halves longer rows (at a multiple of eight)
        half = n // 2
        half -= half % 8
        return row_sum(values[:half]) + row_sum(values[half:])
    r = values[:8]
    end = n - n % 8
    for start in range(8, end, 8):
        r = list(map(operator.add, r, values[start:start + 8]))
    total = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]))
    for v in values[end:]:
        total += v
    return total


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
