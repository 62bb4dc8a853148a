"""Many :class:`~detectors.complaint_rate.ComplaintRateDetector` s at once, in numpy.

The pipeline watches every slice with complaints — tens per bucket on a quiet day,
100k+ on a big platform — and a Python object per slice costs tens of microseconds per
update. :class:`ComplaintRateBank` keeps the same state as the detector (faded sums of
complaints and exposure, two CUSUMs, the current run) as columns of arrays, one row per
slice, and applies one bucket to any set of rows with a handful of vector operations.

The maths is the detector's, line for line; ``tests/detectors/test_rate_bank.py`` checks
that a bank row and a detector fed the same spans stay equal. The detector remains the
readable definition (and the river estimator of the conformance test); the bank is how
the pipeline runs it.

Examples
--------
>>> import numpy as np
>>> bank = ComplaintRateBank(prior_rate=0.02)
>>> rows = bank.add(2, prior_rate=0.02)
>>> for _ in range(300):                       # a normal day for both: 2 % of exposure
...     _ = bank.step(rows, exposure=np.array([100.0, 100.0]), prior=np.array([0.02, 0.02]),
...                   y=np.array([2.0, 2.0]))
>>> np.round(bank.rate(rows), 4).tolist()
[0.02, 0.02]
>>> step = bank.step(rows, exposure=np.array([100.0, 100.0]), prior=np.array([0.02, 0.02]),
...                  y=np.array([2.0, 14.0]))   # the second slice: seven times expected
>>> step.evidence.round(1).tolist(), step.mu.round(2).tolist()
([0.0, 13.4], [2.0, 2.0])
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from detectors.cusum import UsedRowsPickle, cusum_step

__all__ = ["BankStep", "ComplaintRateBank"]

class BankStep(NamedTuple):
    """What one :meth:`ComplaintRateBank.step` saw, per row given (same order)."""

    mu: np.ndarray        # expected complaints of the span
    evidence: np.ndarray  # the larger CUSUM after the span (log-likelihood ratio)


# Columns of the state matrix: one row per detector, gathered and scattered in one go
# per bucket (fancy indexing costs more than the arithmetic on a few dozen rows).
CS, ES, SLOW, SPIKE, RUN_OBS, RUN_EXP, RUN_BUCKETS, LAST_PRIOR = range(8)


class ComplaintRateBank(UsedRowsPickle):
    """Rows of complaint-rate detectors; parameters as :class:`ComplaintRateDetector`."""

    def __init__(self, rho: float = 4.0, rho_spike: float = 50.0, threshold: float = 11.0,
                 half_life: float = 2016.0, prior_rate: float = 0.01,
                 prior_strength: float = 3.0, max_evidence: float = 400.0,
                 max_protect_buckets: int = 72, max_cusum: float = 3.0,
                 capacity: int = 1024) -> None:
        self.rho, self.rho_spike, self.threshold = rho, rho_spike, threshold
        self.half_life, self.prior_rate = half_life, prior_rate
        self.prior_strength, self.max_evidence = prior_strength, max_evidence
        self.max_protect_buckets, self.max_cusum = max_protect_buckets, max_cusum
        self._log_rho, self._log_spike = math.log(rho), math.log(rho_spike)
        # The fade of one bucket, computed as step computes any other (same bits).
        self._unit_fade = 0.5 ** (np.asarray(1.0, dtype=np.float64) / half_life)
        self.size = 0
        self.state = np.zeros((capacity, 8))

    def __len__(self) -> int:
        return self.size

    def add(self, n: int, *, prior_rate: float | np.ndarray | None = None) -> np.ndarray:
        """Append ``n`` fresh detectors; return their row numbers."""
        start, end = self.size, self.size + n
        if end > len(self.state):
            grown = np.zeros((max(end, 2 * len(self.state)), 8))
            grown[:start] = self.state[:start]
            self.state = grown
        self.state[start:end, LAST_PRIOR] = self.prior_rate if prior_rate is None else prior_rate
        self.size = end
        return np.arange(start, end)

    def rate(self, rows: np.ndarray, prior: np.ndarray | None = None) -> np.ndarray:
        """Shrunk complaint rate per unit of exposure (``prior`` defaults to the last one)."""
        s = self.state[rows]
        return self._rate(s, s[:, LAST_PRIOR] if prior is None else prior)

    def _rate(self, s: np.ndarray, prior: np.ndarray) -> np.ndarray:
        return ((s[:, CS] + self.prior_strength)
                / (s[:, ES] + self.prior_strength / np.maximum(prior, 1e-9)))

    def column(self, name: int, rows: np.ndarray) -> np.ndarray:
        """One state column (``CS``, ``SLOW``, ``RUN_OBS``, ...) for ``rows``."""
        return self.state[rows, name]

    def evidence(self, rows: np.ndarray) -> np.ndarray:
        """Current log-likelihood ratio of "rate is up" (the larger CUSUM) per row."""
        return self.state[rows, SLOW:SPIKE + 1].max(axis=1)

    def reset(self, rows: np.ndarray | list[int]) -> None:
        """Start fresh CUSUM runs (e.g. after an alert resolved)."""
        self.state[rows, SLOW] = 0.0
        self.state[rows, SPIKE] = 0.0

    def step(self, rows: np.ndarray, *, exposure: np.ndarray, prior: np.ndarray, y: np.ndarray,
             hour_factor: float | np.ndarray = 1.0, buckets: float | np.ndarray = 1.0,
             protect_at: np.ndarray | None = None, learning: np.ndarray | None = None,
             lift: float | np.ndarray = 1.0) -> BankStep:
        """Score, then learn, one span per row: ``learn_one`` of the detector, vectorised.

        A row whose evidence reaches ``protect_at`` (its alarm level) keeps the span out
        of its baseline but still advances its CUSUMs, as the detector's
        ``learn_one(..., protect=True)``, unless the row is ``learning`` (a new slice
        whose baseline is still forming: it learns everything and its CUSUMs restart).

        ``lift`` is caution for the CUSUMs only (the detector's ``x["alarm_lift"]``):
        they test a rise over ``lift`` times the expected count, the run's expected
        count includes it, the baseline learns the span as usual (a promotion whose
        effect on a slice is not learned yet, :mod:`detectors.promotion_effects`).
        """
        # Small closes (a few dozen overdue lanes) cost their number of numpy calls:
        # calls whose result is known are skipped (a factor of exactly 1.0, a fade of
        # one bucket, masks without a True).
        unit_factor = isinstance(hour_factor, float) and hour_factor == 1.0
        s = self.state[rows]
        prior = np.where(prior > 0, prior, s[:, LAST_PRIOR])
        mu = self._rate(s, prior) * exposure
        if not unit_factor:
            mu *= hour_factor
        # Poisson CUSUMs and the current run (detectors.cusum, shared by the banks).
        tested = mu if isinstance(lift, float) and lift == 1.0 else mu * lift
        evidence = cusum_step(s, (SLOW, SPIKE), (RUN_OBS, RUN_EXP, RUN_BUCKETS), y=y, mu=tested,
                              weights=(self._log_rho, self._log_spike),
                              drifts=((self.rho - 1.0) * tested, (self.rho_spike - 1.0) * tested),
                              cap=self.max_cusum * self.threshold, buckets=buckets)
        s[:, LAST_PRIOR] = prior
        # The baseline learns the span unless it is protected as anomalous.
        if isinstance(buckets, float) and buckets == 1.0:
            fade = self._unit_fade
        else:
            fade = 0.5 ** (np.asarray(buckets, dtype=np.float64) / self.half_life)
        if learning is not None and not learning.any():
            learning = None
        cs = s[:, CS] * fade
        cs += y
        es = s[:, ES] * fade
        es += exposure if unit_factor else exposure * hour_factor
        if protect_at is not None:
            # Protected while alarmed, for at most max_protect_buckets of a run.
            learn = (evidence < protect_at) | (s[:, RUN_BUCKETS] > self.max_protect_buckets)
            if learning is not None:
                learn |= learning
            cs = np.where(learn, cs, s[:, CS])
            es = np.where(learn, es, s[:, ES])
        # Keep the ratio, cap the evidence (see the detector's ``max_evidence``).
        scale = np.minimum(1.0, self.max_evidence / np.maximum(cs, 1e-300))
        cs *= scale
        es *= scale
        s[:, CS], s[:, ES] = cs, es
        if learning is not None:
            s[learning, SLOW:SPIKE + 1] = 0.0
        self.state[rows] = s
        return BankStep(mu, evidence)

    def step_rows(self, states: list[list[float]], *, exposure: list[float], prior: list[float],
                  y: list[float], hour_factor: float = 1.0, fades: list[float] | None = None,
                  buckets: list[float] | None = None, protect_at: list[float] | None = None,
                  learning: list[bool] | None = None) -> tuple[list[float], list[float]]:
        """:meth:`step` in plain Python on rows already read out of the bank.

        ``states`` are rows of :attr:`state` as lists (``state[rows].tolist()``), stepped
        in place: the caller writes them back (one call for all). ``fades`` is each
        span's fade, ``0.5 ** (buckets / half_life)`` as :meth:`step` computes it (in
        numpy: the only transcendental function of a step, kept where it was), default
        one bucket's; ``buckets`` whole numbers of buckets (default 1.0). Returns
        ``(mu, evidence)`` as lists.

        Why: a complaint-rate close of a quiet bucket scores a few dozen slices, and
        :meth:`step` costs its ~40 numpy calls of a few microseconds each whatever the
        number of rows; in Python a row costs ~2 us. Every value is computed by the
        same IEEE operations in the same order as :meth:`step` and
        :func:`detectors.cusum.cusum_step`, so the bank ends bit for bit where its own
        step leaves it (keep the three in step; ``tests/detectors/test_rate_bank.py``).

        >>> a, b = ComplaintRateBank(prior_rate=0.1), ComplaintRateBank(prior_rate=0.1)
        >>> rows = a.add(2); _ = b.add(2)
        >>> for _ in range(50):
        ...     _ = a.step(rows, exposure=np.array([50.0, 50.0]), prior=np.array([0.1, 0.1]),
        ...                y=np.array([5.0, 30.0]), protect_at=np.array([11.0, 11.0]))
        ...     states = b.state[rows].tolist()
        ...     _ = b.step_rows(states, exposure=[50.0, 50.0], prior=[0.1, 0.1],
        ...                     y=[5.0, 30.0], protect_at=[11.0, 11.0])
        ...     b.state[rows] = states
        >>> a.state.tobytes() == b.state.tobytes()
        True
        """
        ps, w_slow, w_spike = self.prior_strength, self._log_rho, self._log_spike
        d_slow, d_spike = self.rho - 1.0, self.rho_spike - 1.0
        cap, max_protect = self.max_cusum * self.threshold, self.max_protect_buckets
        max_evidence, unit_fade = self.max_evidence, float(self._unit_fade)
        unit_factor = hour_factor == 1.0   # (x * 1.0 is x: skipping it changes no bit)
        mus: list[float] = []
        evidences: list[float] = []
        for i, s in enumerate(states):
            cs, es, slow, spike, run_obs, run_exp, run_buckets, last_prior = s
            p, x, yi = prior[i], exposure[i], y[i]
            if not p > 0:   # np.where(prior > 0, prior, last prior)
                p = last_prior
            # _rate * exposure; a conditional for np.maximum (the same value, NaN aside)
            mu = (cs + ps) / (es + ps / (p if p > 1e-9 else 1e-9)) * x
            if not unit_factor:
                mu *= hour_factor
            # cusum_step: (S + y * weight) - drift, clipped to [0, cap]
            stop = slow + spike <= 0.0
            slow = slow + yi * w_slow - d_slow * mu
            slow = slow if slow > 0.0 else 0.0
            slow = slow if slow < cap else cap
            spike = spike + yi * w_spike - d_spike * mu
            spike = spike if spike > 0.0 else 0.0
            spike = spike if spike < cap else cap
            evidence = slow if slow >= spike else spike
            span = 1.0 if buckets is None else buckets[i]
            if evidence <= 0.0:
                run_obs = run_exp = run_buckets = 0.0
            elif stop:
                run_obs, run_exp, run_buckets = 0.0 + yi, 0.0 + mu, 0.0 + span
            else:
                run_obs, run_exp, run_buckets = run_obs + yi, run_exp + mu, run_buckets + span
            fade = unit_fade if fades is None else fades[i]
            learn_cs = cs * fade + yi
            learn_es = es * fade + (x if unit_factor else x * hour_factor)
            relearn = learning is not None and learning[i]
            if (protect_at is None or evidence < protect_at[i] or run_buckets > max_protect
                    or relearn):
                cs, es = learn_cs, learn_es
            scale = max_evidence / (cs if cs > 1e-300 else 1e-300)
            if scale < 1.0:   # (np.minimum(1.0, scale): a factor of 1.0 changes no bit)
                cs *= scale
                es *= scale
            if relearn:
                slow = spike = 0.0
            s[:] = (cs, es, slow, spike, run_obs, run_exp, run_buckets, p)
            mus.append(mu)
            evidences.append(evidence)
        return mus, evidences

    def rates_of_rows(self, rows: np.ndarray, default: float) -> list[float]:
        """:meth:`rate` of each row in ``rows`` as Python floats; ``default``
        for a row < 0 (as ``np.where(rows >= 0, self.rate(rows), default)``).
        Each distinct row once: the rows are a close's parents, its few carriers.

        >>> bank = ComplaintRateBank(prior_rate=0.1)
        >>> _ = bank.add(1)
        >>> bank.rates_of_rows(np.array([0, -1, 0]), 0.5) == [float(bank.rate(np.array([0]))[0]), 0.5,
        ...                                                    float(bank.rate(np.array([0]))[0])]
        True
        """
        ps = self.prior_strength
        rows = rows.tolist()
        distinct = list(set(rows))
        rate = {-1: default}
        for row, s in zip(distinct, self.state[[max(row, 0) for row in distinct]].tolist()):
            if row >= 0:
                lp = s[LAST_PRIOR]
                # (a conditional, not max(): the builtin costs ten float operations; the
                # same value as np.maximum for every number, NaN aside, which no row holds)
                rate[row] = (s[CS] + ps) / (s[ES] + ps / (lp if lp > 1e-9 else 1e-9))
        return list(map(rate.__getitem__, rows))

    def step_few(self, rows: np.ndarray, *, counts: np.ndarray, prior: list[float],
                 protect_at: np.ndarray, learning: np.ndarray | None = None
                 ) -> tuple[np.ndarray, np.ndarray, list[int]]:
        """:meth:`step` of a few rows (one span each, no hour factor,
        one bucket) in a third of its numpy calls; ``counts`` is (rows, 2): exposure and
        ``y`` per row. Returns ``(mu, evidence, alarmed)``, ``alarmed`` the positions whose
        evidence reached ``protect_at``.

        Why: on a few dozen rows a numpy call costs its fixed ~1-5 us, not its arithmetic,
        and the bank's step makes ~50 of them. Here the two CUSUMs and the two faded sums
        are stepped as (rows, 2) blocks (one call for both columns), and what only a few
        rows need (a running CUSUM, a protected baseline, a learning restart) is done for
        those rows alone, in Python. Every value is computed by the same IEEE operations
        in the same order as :meth:`step` (and :func:`detectors.cusum.cusum_step`), so
        the bank ends bit for bit where its own step leaves it (keep the two in step)
        (``tests/detectors/test_overdue_small_close.py``). Rows must be distinct.

        >>> a, b = ComplaintRateBank(prior_rate=0.1), ComplaintRateBank(prior_rate=0.1)
        >>> rows = a.add(2); _ = b.add(2)
        >>> for _ in range(50):
        ...     _ = a.step(rows, exposure=np.array([50.0, 50.0]), prior=np.array([0.1, 0.1]),
        ...                y=np.array([5.0, 30.0]), protect_at=np.array([11.0, 11.0]))
        ...     _ = b.step_few(rows, counts=np.array([[50.0, 5.0], [50.0, 30.0]]),
        ...                  prior=[0.1, 0.1], protect_at=np.array([11.0, 11.0]))
        >>> a.state.tobytes() == b.state.tobytes()
        True
        """
        s = self.state[rows]
        if not min(prior) > 0:   # the bank's step: a prior <= 0 keeps the row's last one
            prior = [p if p > 0 else last for p, last in zip(prior, s[:, LAST_PRIOR].tolist())]
        n, y = counts[:, 0], counts[:, 1]
        ps = self.prior_strength
        # (a conditional, not max(): the same value as np.maximum for every number but NaN)
        floor = np.array([p if p > 1e-9 else 1e-9 for p in prior])
        # mu = rate * exposure, the rate as ComplaintRateBank._rate
        floor = np.divide(ps, floor, out=floor)
        floor += s[:, ES]
        mu = s[:, CS] + ps
        mu /= floor
        mu *= n
        # Both CUSUMs at once: (y * weight + S) - drift, clipped to [0, cap].
        stats = y[:, None] * np.array([self._log_rho, self._log_spike])
        stats += s[:, SLOW:SPIKE + 1]
        stats -= mu[:, None] * np.array([self.rho - 1.0, self.rho_spike - 1.0])
        np.minimum(np.maximum(stats, 0.0, out=stats), self.max_cusum * self.threshold, out=stats)
        evidence = np.maximum(stats[:, 0], stats[:, 1])
        # The current run: zero where no CUSUM runs (most rows), else carried or started.
        run = np.zeros((len(rows), 3))
        running = evidence.nonzero()[0]   # evidence > 0 (it is never negative)
        if len(running):
            before = s[running].tolist()
            run[running] = [
                (o + yi, e + m, b + 1.0) if (sl > 0.0 or sp > 0.0) else (0.0 + yi, 0.0 + m, 0.0 + 1.0)
                for (_, _, sl, sp, o, e, b, _), yi, m in zip(before, y[running].tolist(),
                                                              mu[running].tolist())]
        # Faded sums [cs, es] learn [y, exposure]; capped at max_evidence (same ratio).
        sums = s[:, CS:ES + 1] * self._unit_fade
        sums += counts[:, ::-1]
        alarmed = (evidence >= protect_at).nonzero()[0].tolist()
        for i in alarmed:   # protected while alarmed, for at most max_protect_buckets
            if not (run[i, 2] > self.max_protect_buckets or (learning is not None and learning[i])):
                sums[i] = s[i, CS:ES + 1]
        scale = np.maximum(sums[:, 0], 1e-300)
        scale = np.divide(self.max_evidence, scale, out=scale)
        sums *= np.minimum(scale, 1.0, out=scale)[:, None]
        if learning is not None and learning.any():   # a learning row's CUSUMs restart
            stats[learning] = 0.0
        self.state[rows] = np.concatenate((sums, stats, run, np.array(prior)[:, None]), axis=1)
        return mu, evidence, alarmed
