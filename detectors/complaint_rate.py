"""Complaint rate given order exposure: a Poisson CUSUM on a shrunk, learned baseline.

Why this shape
--------------
A complaint count means nothing without the orders it could come from: 3 complaints
out of 40 orders is not 300 out of 4,000. Each slice therefore learns its own rate
``p`` (complaints per unit of *order exposure*) and the expected count of a bucket is
``p * exposure * hour_factor``. The rate is shrunk towards a peer/parent rate with
``prior_strength`` pseudo-complaints, so a new or tiny slice starts from its peers
instead of a noisy raw ratio.

Evidence is accumulated with the Poisson CUSUM (Page 1954; Lucas 1985): for a
design ratio ``rho`` the statistic ``S = max(0, S + c*ln(rho) - (rho - 1)*mu)`` is the
log-likelihood ratio of "the rate has been ``rho`` times normal since the run began"
against "normal". It needs one float of state, reacts within one bucket to a big spike,
and accumulates small-but-sustained excesses in tiny slices that a per-bucket test
would never see. ``exp(S)`` is a likelihood ratio, so the score ``1 - exp(-S)`` is in
[0, 1] and ``score >= 1 - exp(-threshold)`` is the alarm.

State per slice is a handful of floats (no per-slice river model: 100k slices must fit).
"""

from __future__ import annotations

import math

from river import base

__all__ = ["ComplaintRateDetector"]


class ComplaintRateDetector(base.SupervisedAnomalyDetector):
    """Per-slice complaint-rate anomaly detector (supervised: ``y`` is the complaint count).

    ``x`` carries the exposure of the scored span and context:

    - ``exposure``: order exposure of the span (orders spread over the complaint lag),
    - ``hour_factor``: seasonal multiplier of the span (default 1),
    - ``prior_rate``: peer/parent rate used for shrinkage (default ``prior_rate`` param),
    - ``buckets``: how many buckets the span covers (default 1; >1 catches up a gap),
    - ``alarm_lift``: caution for the CUSUMs only (default 1): they test a rise over
      ``alarm_lift`` times the expected count while the baseline learns the span as
      usual (a promotion whose effect on the slice is not learned yet).

    Two CUSUMs run side by side: a sensitive one (``rho``) that accumulates sustained
    excesses in busy slices, and a steep one (``rho_spike``) for slices that normally see
    almost no complaints (a shop, a shop x intent): each complaint is worth
    ``ln(rho_spike)`` of evidence there, so a handful page within minutes, while its steep
    drift keeps it silent in busy slices. The score is the larger of the two.

    Parameters
    ----------
    rho
        Design ratio of the sensitive CUSUM: the rate multiple it is tuned to detect.
        Rates below ``(rho - 1) / ln(rho)`` times normal (2.16 for 4) never accumulate.
    rho_spike
        Design ratio of the steep CUSUM. 20 against 6 before: on five simulated weeks
        the median delay fell from 15 to 10-15 minutes and precision rose. 50 against
        20 (with the pipeline's ``min_excess`` 3.5): a shop x intent expecting ~0.01
        complaints pages on its 4th complaint instead of its 6th (ln 50 = 3.9 each),
        which took the backtest's median delay from 10-15 to 5-10 minutes; its drift
        (49 x expected) keeps it silent wherever a bucket expects 0.1 or more.
    threshold
        CUSUM alarm level ``h``; the score crosses ``1 - exp(-h)`` at the alarm.
    half_life
        Half-life of the learned baseline, in buckets (2016 = one week of 5 min).
    prior_rate
        Fallback prior rate when ``x`` gives none.
    prior_strength
        Pseudo-complaints of prior: how much evidence the slice needs to move its
        rate away from its peers'.
    max_evidence
        Cap on the effective complaint count of the baseline. Real rates drift from
        day to day (overdispersion); capping keeps the baseline's uncertainty realistic
        so large slices do not page on a 5 % wobble.
    max_protect_buckets
        An alarmed span is kept out of the baseline for at most this many buckets of a
        run (72 = six hours). A rise that lasts longer is a new normal (a shop that
        grew, a region whose rate was learned too low): without this limit the slice
        would stop learning and stay alarmed for ever.
    max_cusum
        Cap of each CUSUM, as a multiple of ``threshold``: evidence beyond it says
        nothing new, and a capped statistic drains within hours once the rise ends.

    Examples
    --------
    >>> import math
    >>> det = ComplaintRateDetector(prior_rate=0.02)
    >>> for _ in range(300):                       # a normal day: 2 % of exposure
    ...     det.learn_one({"exposure": 100.0}, 2)
    >>> round(det.rate, 4)
    0.02
    >>> det.score_one({"exposure": 100.0}, 2)      # a normal bucket
    0.0
    >>> det.score_one({"exposure": 100.0}, 14)     # seven times the expected count
    0.999998
    >>> alarm = 1 - math.exp(-det.threshold)
    >>> det.score_one({"exposure": 100.0}, 14) >= alarm   # alarms in one bucket
    True
    >>> det.score_one({"exposure": 4.0}, 1) >= alarm      # one complaint, tiny slice: no
    False
    """

    def __init__(
        self,
        rho: float = 4.0,
        rho_spike: float = 50.0,
        threshold: float = 11.0,
        half_life: float = 2016.0,
        prior_rate: float = 0.01,
        prior_strength: float = 3.0,
        max_evidence: float = 400.0,
        max_protect_buckets: int = 72,
        max_cusum: float = 3.0,
    ) -> None:
        self.rho = rho
        self.rho_spike = rho_spike
        self.threshold = threshold
        self.half_life = half_life
        self.prior_rate = prior_rate
        self.prior_strength = prior_strength
        self.max_evidence = max_evidence
        self.max_protect_buckets = max_protect_buckets
        self.max_cusum = max_cusum
        # Learned state: faded sums of complaints and exposure, and the CUSUM.
        self.complaints_sum = 0.0
        self.exposure_sum = 0.0
        self.cusum = 0.0          # sensitive CUSUM
        self.cusum_spike = 0.0    # spike CUSUM
        self.run_observed = 0.0   # complaints since the current CUSUM run began
        self.run_expected = 0.0   # expected complaints over the same span
        self.run_buckets = 0
        self.last_prior = prior_rate

    # -- baseline -------------------------------------------------------------------
    @property
    def rate(self) -> float:
        """Shrunk complaint rate per unit of exposure."""
        return self._rate(self.last_prior)

    def _rate(self, prior: float) -> float:
        prior = max(prior, 1e-9)
        a = self.complaints_sum + self.prior_strength
        b = self.exposure_sum + self.prior_strength / prior
        return a / b

    def expected(self, x: dict) -> float:
        """Expected complaints over the span described by ``x``."""
        prior = x.get("prior_rate") or self.last_prior
        return self._rate(prior) * x.get("exposure", 0.0) * x.get("hour_factor", 1.0)

    def _next_cusums(self, x: dict, y: float) -> tuple[float, float, float]:
        mu = self.expected(x) * x.get("alarm_lift", 1.0)
        slow = self.cusum + y * math.log(self.rho) - (self.rho - 1.0) * mu
        spike = self.cusum_spike + y * math.log(self.rho_spike) - (self.rho_spike - 1.0) * mu
        cap = self.max_cusum * self.threshold
        return min(max(0.0, slow), cap), min(max(0.0, spike), cap), mu

    # -- river protocol -------------------------------------------------------------
    def score_one(self, x: dict, y: float) -> float:  # type: ignore[override]
        """Score of the span: ``1 - exp(-S)`` for the larger CUSUM after it (pure)."""
        slow, spike, _ = self._next_cusums(x, y)
        return 1.0 - math.exp(-max(slow, spike))

    def learn_one(self, x: dict, y: float, *, protect: bool = False) -> None:  # type: ignore[override]
        """Advance the CUSUM and, unless ``protect``, learn the span into the baseline.

        ``protect=True`` keeps an anomalous span out of the baseline (river's
        ``protect_anomaly_detector``): an incident must not teach the slice that
        incidents are normal.
        """
        prior = x.get("prior_rate")
        if prior:
            self.last_prior = prior
        slow, spike, mu = self._next_cusums(x, y)
        if slow > 0.0 or spike > 0.0:
            if self.cusum == 0.0 and self.cusum_spike == 0.0:
                # A new run begins: this is the change-point estimate of an episode.
                self.run_observed, self.run_expected, self.run_buckets = 0.0, 0.0, 0
            self.run_observed += y
            self.run_expected += mu
            self.run_buckets += int(x.get("buckets", 1))
        else:
            self.run_observed, self.run_expected, self.run_buckets = 0.0, 0.0, 0
        self.cusum, self.cusum_spike = slow, spike
        if protect and self.run_buckets <= self.max_protect_buckets:
            return
        fade = 0.5 ** (x.get("buckets", 1) / self.half_life)
        self.complaints_sum = self.complaints_sum * fade + y
        self.exposure_sum = self.exposure_sum * fade + x.get("exposure", 0.0) * x.get("hour_factor", 1.0)
        if self.complaints_sum > self.max_evidence:
            # Keep the ratio, cap the evidence (see ``max_evidence``).
            scale = self.max_evidence / self.complaints_sum
            self.complaints_sum *= scale
            self.exposure_sum *= scale

    @property
    def evidence(self) -> float:
        """Current log-likelihood ratio of "rate is up" (the larger CUSUM)."""
        return max(self.cusum, self.cusum_spike)

    @property
    def alarmed(self) -> bool:
        """True while either CUSUM is at or above the alarm threshold."""
        return self.evidence >= self.threshold

    @classmethod
    def _unit_test_params(cls):
        yield {}
        yield {"rho": 3.0, "rho_spike": 8.0, "threshold": 6.0, "prior_rate": 0.05}
