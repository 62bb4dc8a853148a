"""Order surges of new or small shops: a shop's share of the market, Poisson CUSUM.

Why this shape
--------------
"A new shop with abnormal sales growth" is the classic brushing / fake-order signal: a
young or small shop whose orders jump 10-50x within hours. Raw order counts cannot
tell it from a promotion night (every shop sells 3-5x) or from a busy hour, so each
shop learns its *share of the market's orders*: the expected orders of a bucket are
``share * market orders of the bucket``. The market count carries the hour of day, the
weekday and the calendar's promotion lift at once (a promotion night lifts every shop,
so the expectation rises with it, and no separate seasonal model is needed per shop).

The share is shrunk towards a peer prior (``prior_share``: the mean shop share of the
shop's category) with ``prior_strength`` pseudo-orders, so a shop that opened an hour
ago starts from what shops like it sell. Evidence is a Poisson CUSUM with a steep
design ratio (``rho`` 10): ``S = max(0, S + y ln(rho) - (rho - 1) mu)``, the
log-likelihood ratio of "the shop sells ``rho`` times its share since the run began".
Shops selling less than ``(rho - 1) / ln(rho)`` = 3.9x their share never accumulate
evidence, so ordinary growth, a good day or a shop that is somewhat bigger than its
peers stay silent. A second, steeper CUSUM (``rho_spike`` 50) is for the tiny shops
that sell a few orders a day: there each order is worth ``ln 50`` of evidence, so a
brushing ring pages within two buckets, while its steep drift keeps it silent in
shops that sell every few minutes. The evidence is the larger of the two. ``max_evidence`` caps the effective order count of the baseline
(overdispersion: real shops' days differ more than Poisson says).

:class:`OrderSurgeDetector` is the readable river estimator (one shop);
:class:`OrderSurgeBank` is the same maths as rows of one numpy matrix, which is how the
pipeline runs it for every shop at a bucket close (``tests/detectors/test_order_surge.py``
checks that they agree). Whether a surge *pages* (only new or small shops: a big shop's
own sale is not fraud) is the alert stage's decision (:mod:`streams.signals`).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
from river import base

from detectors.cusum import UsedRowsPickle, cusum_step

__all__ = ["OrderSurgeBank", "OrderSurgeDetector", "SurgeStep"]


class OrderSurgeDetector(base.SupervisedAnomalyDetector):
    """Per-shop order-surge detector (supervised: ``y`` is the shop's order count).

    ``x`` describes the scored span:

    - ``market``: orders of the whole market in the span,
    - ``prior_share``: the peers' share per shop (default the ``prior_share`` param),
    - ``buckets``: how many buckets the span covers (default 1).

    Parameters
    ----------
    rho
        Design ratio of the CUSUM: the multiple of its share a shop must sell.
    rho_spike
        Design ratio of the steep CUSUM (tiny shops).
    threshold
        CUSUM alarm level ``h``; the score is ``1 - exp(-S)``.
    half_life
        Half-life of the learned share, in buckets (2016 = one week of 5 min).
    prior_share
        Fallback peer share when ``x`` gives none.
    prior_strength
        Pseudo-orders of prior: how many orders a shop needs to move its share away
        from its peers'.
    max_evidence
        Cap on the effective order count of the baseline (overdispersion).
    max_protect_buckets
        An alarmed span stays out of the baseline for at most this many buckets of a
        run (72 = six hours); a shop that keeps selling more has grown.
    max_cusum
        Cap of the CUSUM as a multiple of ``threshold`` (drains soon after a surge).

    Examples
    --------
    >>> det = OrderSurgeDetector(prior_share=0.001)
    >>> for _ in range(3000):                         # 1 % of a 200-order market
    ...     det.learn_one({"market": 200.0}, 2)
    >>> round(det.share, 4)                          # shrunk a little towards its peers
    0.0096
    >>> det.score_one({"market": 200.0}, 3)           # a normal bucket
    0.0
    >>> det.score_one({"market": 1000.0}, 10)         # promotion night: market x5
    0.0
    >>> det.score_one({"market": 200.0}, 30)          # fifteen times its share
    1.0
    >>> round(det.expected({"market": 200.0}), 2)
    1.91
    """

    def __init__(self, rho: float = 10.0, rho_spike: float = 50.0, threshold: float = 11.0,
                 half_life: float = 2016.0, prior_share: float = 0.001,
                 prior_strength: float = 10.0, max_evidence: float = 2000.0,
                 max_protect_buckets: int = 72, max_cusum: float = 3.0) -> None:
        self.rho = rho
        self.rho_spike = rho_spike
        self.threshold = threshold
        self.half_life = half_life
        self.prior_share = prior_share
        self.prior_strength = prior_strength
        self.max_evidence = max_evidence
        self.max_protect_buckets = max_protect_buckets
        self.max_cusum = max_cusum
        self.orders_sum = 0.0     # faded orders of the shop
        self.market_sum = 0.0     # faded orders of the market over the same spans
        self.cusum = 0.0
        self.cusum_spike = 0.0
        self.run_observed = 0.0
        self.run_expected = 0.0
        self.run_buckets = 0
        self.last_prior = prior_share

    @property
    def share(self) -> float:
        """Shrunk share of the market's orders."""
        return self._share(self.last_prior)

    def _share(self, prior: float) -> float:
        return ((self.orders_sum + self.prior_strength)
                / (self.market_sum + self.prior_strength / max(prior, 1e-12)))

    def expected(self, x: dict) -> float:
        """Expected orders of the shop over the span ``x``."""
        return self._share(x.get("prior_share") or self.last_prior) * x.get("market", 0.0)

    def _next(self, x: dict, y: float) -> tuple[float, float, float]:
        mu = self.expected(x)
        cap = self.max_cusum * self.threshold
        s = self.cusum + y * math.log(self.rho) - (self.rho - 1.0) * mu
        spike = self.cusum_spike + y * math.log(self.rho_spike) - (self.rho_spike - 1.0) * mu
        return min(max(0.0, s), cap), min(max(0.0, spike), cap), mu

    def score_one(self, x: dict, y: float) -> float:  # type: ignore[override]
        """``1 - exp(-S)`` for the larger CUSUM after the span (pure)."""
        s, spike, _ = self._next(x, y)
        return 1.0 - math.exp(-max(s, spike))

    def learn_one(self, x: dict, y: float, *, protect: bool = False) -> None:  # type: ignore[override]
        """Advance the CUSUM; unless ``protect``, learn the span into the share."""
        prior = x.get("prior_share")
        if prior:
            self.last_prior = prior
        s, spike, mu = self._next(x, y)
        buckets = x.get("buckets", 1)
        if s > 0.0 or spike > 0.0:
            if self.cusum == 0.0 and self.cusum_spike == 0.0:   # a new run: the change point
                self.run_observed, self.run_expected, self.run_buckets = 0.0, 0.0, 0
            self.run_observed += y
            self.run_expected += mu
            self.run_buckets += int(buckets)
        else:
            self.run_observed, self.run_expected, self.run_buckets = 0.0, 0.0, 0
        self.cusum, self.cusum_spike = s, spike
        if protect and self.run_buckets <= self.max_protect_buckets:
            return
        fade = 0.5 ** (buckets / self.half_life)
        self.orders_sum = self.orders_sum * fade + y
        self.market_sum = self.market_sum * fade + x.get("market", 0.0)
        if self.orders_sum > self.max_evidence:
            scale = self.max_evidence / self.orders_sum
            self.orders_sum *= scale
            self.market_sum *= scale

    @property
    def evidence(self) -> float:
        """The larger CUSUM (log-likelihood ratio of "the shop surges")."""
        return max(self.cusum, self.cusum_spike)

    @classmethod
    def _unit_test_params(cls):
        yield {}
        yield {"rho": 6.0, "rho_spike": 20.0, "threshold": 8.0, "prior_share": 0.01}


class SurgeStep(NamedTuple):
    """What one :meth:`OrderSurgeBank.step` saw, per row given (same order)."""

    mu: np.ndarray        # expected orders of the span
    evidence: np.ndarray  # the larger CUSUM after the span


# Columns of the bank's state matrix.
OS, MS, CUSUM, SPIKE, RUN_OBS, RUN_EXP, RUN_BUCKETS, LAST_PRIOR = range(8)
_COLUMNS = 8


class OrderSurgeBank(UsedRowsPickle):
    """Rows of :class:`OrderSurgeDetector` s (same parameters, same maths) in numpy.

    >>> bank = OrderSurgeBank()
    >>> rows = bank.add(2, prior_share=0.001)
    >>> for _ in range(3000):
    ...     _ = bank.step(rows, market=np.array([200.0, 200.0]), prior=np.array([0.001, 0.001]),
    ...                   y=np.array([2.0, 0.0]))
    >>> np.round(bank.share(rows), 4).tolist()
    [0.0096, 0.0]
    >>> step = bank.step(rows, market=np.array([200.0, 200.0]), prior=np.array([0.001, 0.001]),
    ...                  y=np.array([2.0, 12.0]))     # the quiet shop sells 12 at once
    >>> step.evidence.round(1).tolist()
    [0.0, 33.0]
    """

    def __init__(self, rho: float = 10.0, rho_spike: float = 50.0, threshold: float = 11.0,
                 half_life: float = 2016.0, prior_share: float = 0.001,
                 prior_strength: float = 10.0, max_evidence: float = 2000.0,
                 max_protect_buckets: int = 72, max_cusum: float = 3.0,
                 capacity: int = 256) -> None:
        self.rho, self.threshold, self.half_life = rho, threshold, half_life
        self.rho_spike = rho_spike
        self._log_spike = math.log(rho_spike)
        self.prior_share, self.prior_strength = prior_share, prior_strength
        self.max_evidence, self.max_protect_buckets = max_evidence, max_protect_buckets
        self.max_cusum = max_cusum
        self._log_rho = math.log(rho)
        self.size = 0
        self.state = np.zeros((capacity, _COLUMNS))

    def __len__(self) -> int:
        return self.size

    def add(self, n: int, *, prior_share: float | np.ndarray | None = None) -> np.ndarray:
        """Append ``n`` fresh rows; return their row numbers."""
        start, end = self.size, self.size + n
        if end > len(self.state):
            grown = np.zeros((max(end, 2 * len(self.state)), _COLUMNS))
            grown[:start] = self.state[:start]
            self.state = grown
        self.state[start:end] = 0.0
        self.state[start:end, LAST_PRIOR] = self.prior_share if prior_share is None else prior_share
        self.size = end
        return np.arange(start, end)

    def share(self, rows: np.ndarray, prior: np.ndarray | None = None) -> np.ndarray:
        s = self.state[rows]
        return self._share(s, s[:, LAST_PRIOR] if prior is None else prior)

    def _share(self, s: np.ndarray, prior: np.ndarray) -> np.ndarray:
        return ((s[:, OS] + self.prior_strength)
                / (s[:, MS] + self.prior_strength / np.maximum(prior, 1e-12)))

    def column(self, name: int, rows: np.ndarray) -> np.ndarray:
        return self.state[rows, name]

    def reset(self, rows) -> None:
        """Start fresh CUSUM runs (after an alert resolved)."""
        self.state[rows, CUSUM] = 0.0
        self.state[rows, SPIKE] = 0.0

    def step(self, rows: np.ndarray, *, market: np.ndarray, prior: np.ndarray, y: np.ndarray,
             buckets: float | np.ndarray = 1.0, protect_at: np.ndarray | None = None,
             learning: np.ndarray | None = None) -> SurgeStep:
        """Score, then learn, one span per row (``learn_one`` of the detector, vectorised).

        ``protect_at``: rows whose evidence reaches it keep the span out of the share
        (for at most ``max_protect_buckets`` of a run). ``learning`` rows learn every
        span and their CUSUM restarts (the pipeline's first day).
        """
        s = self.state[rows]
        prior = np.where(prior > 0, prior, s[:, LAST_PRIOR])
        mu = self._share(s, prior) * market
        evidence = cusum_step(s, (CUSUM, SPIKE), (RUN_OBS, RUN_EXP, RUN_BUCKETS), y=y, mu=mu,
                              weights=(self._log_rho, self._log_spike),
                              drifts=((self.rho - 1.0) * mu, (self.rho_spike - 1.0) * mu),
                              cap=self.max_cusum * self.threshold, buckets=buckets)
        s[:, LAST_PRIOR] = prior
        fade = 0.5 ** (np.asarray(buckets, dtype=np.float64) / self.half_life)
        learn = np.ones(len(rows), dtype=bool)
        if protect_at is not None:
            learn = (evidence < protect_at) | (s[:, RUN_BUCKETS] > self.max_protect_buckets)
        if learning is not None:
            learn |= learning
        os_ = np.where(learn, s[:, OS] * fade + y, s[:, OS])
        ms = np.where(learn, s[:, MS] * fade + market, s[:, MS])
        scale = np.minimum(1.0, self.max_evidence / np.maximum(os_, 1e-300))
        s[:, OS], s[:, MS] = os_ * scale, ms * scale
        if learning is not None:
            s[learning, CUSUM:SPIKE + 1] = 0.0
        self.state[rows] = s
        return SurgeStep(mu, evidence)
