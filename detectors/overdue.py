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
  a close of a few dozen lanes steps its rows with
  :meth:`~detectors.rate_bank.ComplaintRateBank.step_few` (the bank's step in a third of
  its numpy calls, the same bits).
"""

from __future__ import annotations

import math

from detectors.complaint_rate import ComplaintRateDetector

__all__ = ["OverdueRateDetector", "TransitQuantile", "steady_after"]


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

    def observe_transits(self, transits, steady: int | None = None) -> None:
        """``observe(t > value)`` for each transit time ``t`` in turn, the same floats
        with the state in locals (the market's estimate learns from every delivery).
        ``steady``: :func:`steady_after` of ``step``, if the caller has it.

        >>> a, b = TransitQuantile(initial=10.0), TransitQuantile(initial=10.0)
        >>> a.observe_transits([12.0, 3.0, 11.0])
        >>> for t in (12.0, 3.0, 11.0):
        ...     b.observe(t > b.value)
        >>> (a.value, a.n) == (b.value, b.n)
        True
        """
        step, q, value, n = self.step, self.q, self.value, self.n
        if steady is None:
            steady = steady_after(step)
        down = 1.0 - q
        for transit in transits:
            n += 1
            # past ``steady`` answers max(step, young step) is ``step`` (steady_after)
            delta = (step if n >= steady else max(step, 0.3 / math.sqrt(n + 9))) * value
            value = value + delta * q if transit > value else value - delta * down
        self.value, self.n = value, n

    def __getstate__(self) -> tuple:
        return (self.q, self.step, self.value, self.n)

    def __setstate__(self, state: tuple) -> None:
        self.q, self.step, self.value, self.n = state


def steady_after(step: float) -> int:
    """The answers ``n`` from which :class:`TransitQuantile`'s young step
    ``0.3 / sqrt(n + 9)`` is at most ``step``, so ``max(step, 0.3 / sqrt(n + 9))`` is
    ``step`` (for every larger ``n`` too: ``sqrt`` and ``/`` are correctly rounded,
    hence monotonic). Lets a hot loop skip the square root once an estimate is settled.

    >>> n = steady_after(0.005)
    >>> n, 0.3 / math.sqrt(n + 9) <= 0.005 < 0.3 / math.sqrt(n + 8)
    (3591, True)
    """
    n = max(int((0.3 / step) ** 2) - 9 - 100, 0)
    while 0.3 / math.sqrt(n + 9) > step:
        n += 1
    while n > 0 and 0.3 / math.sqrt(n + 8) <= step:
        n -= 1
    return n


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

