"""Overdue deliveries: a lane's learned transit time, and the overdue share per due parcel.

A parcel shipped on a lane (region x carrier) is *due* when the lane's learned transit
time has passed since it shipped; it is *overdue* if it has not been delivered by then.
The share of due parcels that are overdue is low and steady on a healthy lane (the
transit time learned is a high quantile, so about ``1 - q`` of parcels, plus exceptions)
and jumps when a hub jams or a carrier stalls, often hours before customers complain.

Two pieces:

- :class:`TransitQuantile`: the lane's transit time, a streaming quantile (stochastic
  approximation with a step relative to the current estimate: bounded state, O(1) per
  delivery, follows slow drifts such as a carrier getting faster).
- :class:`OverdueRateDetector`: overdue parcels given due parcels, the Poisson CUSUM of
  :class:`~detectors.complaint_rate.ComplaintRateDetector` with defaults for this
  count ("complaints" are overdue parcels, "exposure" is due parcels). The pipeline runs
  the same maths for every lane in one :class:`~detectors.rate_bank.ComplaintRateBank`;
  a close of a few dozen lanes steps its rows with :func:`step_rows` (the bank's step in
  Python floats, the same bits without numpy's fixed cost per call).
"""

from __future__ import annotations

import math

import numpy as np

from detectors.complaint_rate import ComplaintRateDetector
from detectors.rate_bank import CS, ES, LAST_PRIOR, RUN_BUCKETS, SLOW, SPIKE

__all__ = ["OverdueRateDetector", "TransitQuantile", "rates_of_rows", "step_rows"]


class TransitQuantile:
    """Streaming ``q`` quantile of a lane's transit time from censored checks, O(1) state.

    Each parcel answers once "did it take longer than the current estimate?": when it is
    delivered (its transit time is known), or when it is still in flight after the
    estimate has passed (then certainly longer). Each answer moves the estimate by
    ``step * estimate`` times ``q`` (longer) or ``-(1 - q)`` (not longer), so it settles
    where a share ``q`` of parcels arrive in time (large steps while young, see
    :meth:`observe`). Learning from delivered parcels
    alone would be biased early on: only the fast parcels have arrived.

    >>> import random
    >>> rng = random.Random(1)
    >>> tq = TransitQuantile(q=0.9, initial=1.0)
    >>> for _ in range(20000):
    ...     tq.observe(rng.uniform(1.0, 3.0) > tq.value)
    >>> round(tq.value, 1)                     # the 90 % point of U(1, 3) is 2.8
    2.8
    >>> tq.n
    20000
    """

    __slots__ = ("q", "step", "value", "n")

    def __init__(self, q: float = 0.9, step: float = 0.005, initial: float = 2 * 86400.0) -> None:
        self.q, self.step = q, step
        self.value = initial
        self.n = 0

    def observe(self, longer: bool) -> None:
        self.n += 1
        # Robbins-Monro: big steps while young (converges within a few hundred
        # checks), down to ``step`` (follows drifts without jitter).
        delta = max(self.step, 0.3 / math.sqrt(self.n + 9)) * self.value
        self.value += delta * self.q if longer else -delta * (1.0 - self.q)

    def observe_longer(self, k: int) -> None:
        """``k`` answers "longer" in a row (a cohort's undelivered parcels).

        >>> a, b = TransitQuantile(initial=10.0), TransitQuantile(initial=10.0)
        >>> a.observe_longer(3)
        >>> for _ in range(3):
        ...     b.observe(True)
        >>> (a.value, a.n) == (b.value, b.n)
        True
        """
        step, q, value, n = self.step, self.q, self.value, self.n
        for _ in range(k):
            n += 1
            value += max(step, 0.3 / math.sqrt(n + 9)) * value * q
        self.value, self.n = value, n

    def __getstate__(self) -> tuple:
        return (self.q, self.step, self.value, self.n)

    def __setstate__(self, state: tuple) -> None:
        self.q, self.step, self.value, self.n = state


class OverdueRateDetector(ComplaintRateDetector):
    """Overdue parcels per due parcel of a lane (``y`` overdue, ``x["exposure"]`` due).

    Same maths and parameters as :class:`ComplaintRateDetector`; the defaults differ: the
    prior overdue share is 10 % (a 0.9 transit quantile), design ratios are lower (a jam
    makes a share of a lane's parcels late, not all of them) and the baseline forgets
    faster (two days: transit times drift with volume and weather), but an alarmed
    span stays out of it for up to 12 hours (a jam's late parcels keep falling due).

    >>> det = OverdueRateDetector()
    >>> for _ in range(600):                       # 10 of 100 due parcels are late
    ...     det.learn_one({"exposure": 100.0}, 10)
    >>> round(det.rate, 3)
    0.1
    >>> det.score_one({"exposure": 100.0}, 12)     # a normal bucket
    0.0
    >>> det.score_one({"exposure": 100.0}, 40)     # a jammed hub: 40 % overdue
    1.0
    """

    def __init__(self, rho: float = 3.0, rho_spike: float = 10.0, threshold: float = 11.0,
                 half_life: float = 576.0, prior_rate: float = 0.1,
                 prior_strength: float = 5.0, max_evidence: float = 400.0,
                 max_protect_buckets: int = 144, max_cusum: float = 3.0) -> None:
        super().__init__(rho=rho, rho_spike=rho_spike, threshold=threshold,
                         half_life=half_life, prior_rate=prior_rate,
                         prior_strength=prior_strength, max_evidence=max_evidence,
                         max_protect_buckets=max_protect_buckets, max_cusum=max_cusum)

    @classmethod
    def _unit_test_params(cls):
        yield {}


def rates_of_rows(bank, rows: np.ndarray, default: float) -> list[float]:
    """``ComplaintRateBank.rate`` of each row in ``rows`` as Python floats; ``default``
    for a row < 0 (the numpy close: ``np.where(rows >= 0, bank.rate(rows), default)``).
    Each distinct row once: the rows are a close's parents, its few carriers.

    >>> from detectors.rate_bank import ComplaintRateBank
    >>> bank = ComplaintRateBank(prior_rate=0.1)
    >>> _ = bank.add(1)
    >>> rates_of_rows(bank, np.array([0, -1, 0]), 0.5) == [float(bank.rate(np.array([0]))[0]), 0.5,
    ...                                                    float(bank.rate(np.array([0]))[0])]
    True
    """
    ps = bank.prior_strength
    rows = rows.tolist()
    distinct = list(set(rows))
    rate = {-1: default}
    for row, s in zip(distinct, bank.state[[max(row, 0) for row in distinct]].tolist()):
        if row >= 0:
            lp = s[LAST_PRIOR]
            # (a conditional, not max(): the builtin costs ten float operations; the
            # same value as np.maximum for every number, NaN aside, which no row holds)
            rate[row] = (s[CS] + ps) / (s[ES] + ps / (lp if lp > 1e-9 else 1e-9))
    return list(map(rate.__getitem__, rows))


def step_rows(bank, rows: np.ndarray, *, counts: np.ndarray, prior: list[float],
              protect_at: np.ndarray, learning: np.ndarray | None = None
              ) -> tuple[np.ndarray, np.ndarray, list[int]]:
    """:meth:`ComplaintRateBank.step` of a few rows (one span each, no hour factor,
    one bucket) in a third of its numpy calls; ``counts`` is (rows, 2): exposure and
    ``y`` per row. Returns ``(mu, evidence, alarmed)``, ``alarmed`` the positions whose
    evidence reached ``protect_at``.

    Why: on a few dozen rows a numpy call costs its fixed ~1-5 us, not its arithmetic,
    and the bank's step makes ~50 of them. Here the two CUSUMs and the two faded sums
    are stepped as (rows, 2) blocks (one call for both columns), and what only a few
    rows need (a running CUSUM, a protected baseline, a learning restart) is done for
    those rows alone, in Python. Every value is computed by the same IEEE operations
    in the same order as the bank's step (and :func:`detectors.cusum.cusum_step`), so
    the bank ends bit for bit where its own step leaves it
    (``tests/detectors/test_overdue_small_close.py``). Rows must be distinct.

    >>> from detectors.rate_bank import ComplaintRateBank
    >>> a, b = ComplaintRateBank(prior_rate=0.1), ComplaintRateBank(prior_rate=0.1)
    >>> rows = a.add(2); _ = b.add(2)
    >>> for _ in range(50):
    ...     _ = a.step(rows, exposure=np.array([50.0, 50.0]), prior=np.array([0.1, 0.1]),
    ...                y=np.array([5.0, 30.0]), protect_at=np.array([11.0, 11.0]))
    ...     _ = step_rows(b, rows, counts=np.array([[50.0, 5.0], [50.0, 30.0]]),
    ...                   prior=[0.1, 0.1], protect_at=np.array([11.0, 11.0]))
    >>> a.state.tobytes() == b.state.tobytes()
    True
    """
    s = bank.state[rows]
    if not min(prior) > 0:   # the bank's step: a prior <= 0 keeps the row's last one
        prior = [p if p > 0 else last for p, last in zip(prior, s[:, LAST_PRIOR].tolist())]
    n, y = counts[:, 0], counts[:, 1]
    ps = bank.prior_strength
    # (a conditional, not max(): the same value as np.maximum for every number but NaN)
    floor = np.array([p if p > 1e-9 else 1e-9 for p in prior])
    # mu = rate * exposure, the rate as ComplaintRateBank._rate
    floor = np.divide(ps, floor, out=floor)
    floor += s[:, ES]
    mu = s[:, CS] + ps
    mu /= floor
    mu *= n
    # Both CUSUMs at once: (y * weight + S) - drift, clipped to [0, cap].
    stats = y[:, None] * np.array([bank._log_rho, bank._log_spike])
    stats += s[:, SLOW:SPIKE + 1]
    stats -= mu[:, None] * np.array([bank.rho - 1.0, bank.rho_spike - 1.0])
    np.minimum(np.maximum(stats, 0.0, out=stats), bank.max_cusum * bank.threshold, out=stats)
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
    sums = s[:, CS:ES + 1] * bank._unit_fade
    sums += counts[:, ::-1]
    alarmed = (evidence >= protect_at).nonzero()[0].tolist()
    for i in alarmed:   # protected while alarmed, for at most max_protect_buckets
        if not (run[i, 2] > bank.max_protect_buckets or (learning is not None and learning[i])):
            sums[i] = s[i, CS:ES + 1]
    scale = np.maximum(sums[:, 0], 1e-300)
    scale = np.divide(bank.max_evidence, scale, out=scale)
    sums *= np.minimum(scale, 1.0, out=scale)[:, None]
    if learning is not None and learning.any():   # a learning row's CUSUMs restart
        stats[learning] = 0.0
    bank.state[rows] = np.concatenate((sums, stats, run, np.array(prior)[:, None]), axis=1)
    return mu, evidence, alarmed
