"""A general single-series anomaly detector: any numeric stream, no tuning.

Why this shape
--------------
The best published streaming detectors on the NAB benchmark (HTM, CAD OSE, ARTime)
share three ideas, which this detector keeps in a few hundred bytes of state:

1. **Predict, then judge the surprise.** A small ensemble of forecasters runs side by
   side — exponentially weighted levels with slow to fast memories, each with and
   without a learned daily (hour-of-day, linearly interpolated) and weekly
   (day-of-week) profile — and the one with the lowest recent absolute error is
   trusted. A random walk (a price) picks the fast level, white noise the slow one, a
   traffic count the seasonal one: no period or smoothing constant to tune. Updates
   are clipped at a few scales (Huber), so an outlier does not drag the baseline.
2. **Surprise in units of the series' own noise.** The residual is divided by a
   robust, slowly forgetting mean absolute error, scaled by an hour-of-day factor once
   a day has been seen (a count is noisier at noon than at night): the detector never
   needs to know whether values are 1e-3 or 1e6.
3. **Anomaly likelihood (Ahmad et al. 2017, HTM).** Besides the point surprise, a
   short-window mean of the surprise is compared with its long-run distribution: a
   change of variance or a small sustained drift that no single point gives away
   still raises the score.

A level shift is first an anomaly, then the new normal: after ``shift_run``
consecutive surprises beyond ``shift_z`` on the same side every level re-baselines
on the recent values, instead of paging for hours while a slow average catches up.

References
----------
Ahmad, Lavin, Purdy, Agha (2017). Unsupervised real-time anomaly detection for
streaming data. Neurocomputing 262.
Lavin, Ahmad (2015). Evaluating real-time anomaly detection algorithms — the Numenta
Anomaly Benchmark. IEEE ICMLA.
"""

from __future__ import annotations

import datetime as dt
import math

from river import base

__all__ = ["SeriesDetector", "series_detector"]

_DAY = 86_400.0
_SQRT2 = math.sqrt(2.0)


class SeriesDetector(base.AnomalyDetector):
    """Anomaly score in [0, 1] for each value of one numeric time series.

    Prequential: call ``score_one(ts, value)`` then ``learn_one(ts, value)`` for each
    point, in time order. ``score_one`` is pure; before enough points it returns 0.

    The score is ``1 - p ** (1/4)`` where ``p`` is the smaller of the point's tail
    probability and the likelihood's: 0.9 is ``p = 1e-4`` (the best single threshold
    on the benchmark corpus, ``benchmarks/series_detector.py``), 0.99 is ``p = 1e-8``.
    Timestamps give the hour of day and day of week in their own time zone.

    Parameters
    ----------
    alphas
        Smoothing constants of the candidate levels (per observation), slow to fast.
    error_alpha
        Memory of the forecasters' recent absolute errors used to pick the best one.
    scale_alpha
        Memory of the noise scale (mean absolute residual of the chosen forecaster).
    clip
        Learning clips a residual at this many scales (Huber-style robustness).
    warmup
        Points learned before any non-zero score.
    shift_z, shift_run
        A run of ``shift_run`` residuals beyond ``shift_z`` scales on one side is a
        level shift: flagged while it builds, then re-baselined.
    short_alpha, long_alpha
        Memories of the short and long windows of the anomaly likelihood.

    Examples
    --------
    >>> import datetime as dt, math, random
    >>> rng = random.Random(1)
    >>> det = series_detector()
    >>> t0 = dt.datetime(2026, 11, 2, tzinfo=dt.timezone.utc)
    >>> for i in range(3 * 288):                   # three days at 5 minutes, daily cycle
    ...     ts = t0 + dt.timedelta(minutes=5 * i)
    ...     value = 1000 + 400 * math.sin(2 * math.pi * i / 288) + rng.gauss(0, 20)
    ...     det.learn_one(ts, value)
    >>> ts = t0 + dt.timedelta(days=3)
    >>> normal = 1000 + rng.gauss(0, 20)
    >>> det.score_one(ts, normal) < 0.9
    True
    >>> det.score_one(ts, normal + 300) > 0.999     # 15 noise scales above the cycle
    True
    >>> det.season                                  # it found the daily cycle itself
    'daily'
    """

    def __init__(
        self,
        alphas: tuple = (0.01, 0.05, 0.2, 0.6),
        error_alpha: float = 0.05,
        scale_alpha: float = 0.02,
        clip: float = 4.0,
        warmup: int = 12,
        shift_z: float = 3.5,
        shift_run: int = 5,
        short_alpha: float = 0.25,
        long_alpha: float = 0.005,
    ) -> None:
        self.alphas = alphas
        self.error_alpha = error_alpha
        self.scale_alpha = scale_alpha
        self.clip = clip
        self.warmup = warmup
        self.shift_z = shift_z
        self.shift_run = shift_run
        self.short_alpha = short_alpha
        self.long_alpha = long_alpha
        k = len(alphas)
        self.n = 0
        self.first_ts = None       # epoch seconds of the first point
        self.last_ts = None
        self.step = 0.0            # typical seconds between points (EW mean)
        # Candidate forecasters: k plain levels, k levels of the deseasonalised series,
        # and one slow "season base" level the profiles are learned against.
        self.levels = [0.0] * (2 * k + 1)
        self.errors = [0.0] * (2 * k)
        self.day = [0.0] * 24      # hour-of-day profile (additive)
        self.week = [0.0] * 7      # day-of-week profile (additive)
        self.hour_scale = [1.0] * 24
        self.scale = 0.0           # mean absolute residual of the chosen forecaster
        self.slow_scale = 0.0      # same for the best slow forecaster (long-term view)
        self.magnitude = 0.0       # EW mean of |value|: floor for the scale
        self.runs = [0, 0, 0, 0]   # level shift: runs of big surprises (see _maybe_rebaseline)
        self.run_value = 0.0       # mean value over the current run
        self.run_deseasonalised = 0.0
        self.short = 0.0           # likelihood: short-window mean surprise
        self.long_mean = 0.0       # likelihood: long-window mean and variance
        self.long_var = 1.0

    # -- seasonality --------------------------------------------------------------------
    @property
    def span_days(self) -> float:
        return 0.0 if self.first_ts is None else (self.last_ts - self.first_ts) / _DAY

    @property
    def season(self) -> str:
        """Which seasonality the forecasters may use so far: none, daily or weekly."""
        span = self.span_days
        return "weekly" if span >= 14 else "daily" if span >= 1.5 else "none"

    def _seasonal(self, ts: dt.datetime, weekly: bool) -> tuple[float, int, float]:
        hour = ts.hour + ts.minute / 60.0 + ts.second / 3600.0
        # Interpolate between hour centres so a 5-minute series sees a smooth profile.
        pos = hour - 0.5
        lo = math.floor(pos)
        frac = pos - lo
        lo %= 24
        value = self.day[lo] * (1.0 - frac) + self.day[(lo + 1) % 24] * frac
        if weekly:
            value += self.week[ts.weekday()]
        return value, lo, frac

    # -- the forecast and its surprise (pure) ---------------------------------------------
    def _assess(self, ts: dt.datetime, value: float):
        """Surprises of ``value`` for the short-term view (the best forecaster: catches
        spikes) and the long-term view (the best slow forecaster: catches a day that
        does not look like the usual day, a drift, a shift the fast levels follow)."""
        season = self.season
        seasonal, lo, frac = self._seasonal(ts, season == "weekly")
        alphas = self.alphas
        k = len(alphas)
        errors, levels = self.errors, self.levels
        best, best_slow = 0, -1
        for i in range(2 * k if season != "none" else k):
            error = errors[i]
            if error < errors[best]:
                best = i
            if alphas[i % k] <= 0.05 and (best_slow < 0 or error < errors[best_slow]):
                best_slow = i
        residual = value - levels[best] - (seasonal if best >= k else 0.0)
        residual_slow = value - levels[best_slow] - (seasonal if best_slow >= k else 0.0)
        factor = self.hour_scale[(ts.hour + (ts.minute >= 30)) % 24] if season != "none" else 1.0
        floor = max(1e-9 * self.magnitude, 1e-12)
        z = residual / max(self.scale * factor, floor)
        if best_slow < 0 or errors[best_slow] > 2.0 * errors[best] or self.n < 8 * self.warmup:
            # The long-term normal does not predict this series (a random walk): its
            # view would only repeat that the walk wandered. Nor while its slowly
            # forgetting scale is still settling.
            z_slow = z
        else:
            z_slow = residual_slow / max(self.slow_scale * factor, 0.5 * errors[best_slow], floor)
        return z, z_slow, residual, residual_slow, seasonal, lo, frac, season, factor

    def score_one(self, ts: dt.datetime, value: float) -> float:  # type: ignore[override]
        """Anomaly score of ``value`` at ``ts`` in [0, 1], without learning it."""
        if self.n < self.warmup or not math.isfinite(value):
            return 0.0
        z, z_slow = self._assess(ts, value)[:2]
        # Point evidence: two-sided tail probability of the larger surprise, read as a
        # robust z (the scale is a mean absolute error, 0.8 standard deviations for
        # Gaussian noise).
        surprise = min(max(abs(z), abs(z_slow)), 50.0)
        point_tail = math.erfc(surprise * 0.8 / _SQRT2)
        # Likelihood: is the recent mean long-term surprise unusual for this series?
        # One-sided: a recent calm is not an anomaly.
        short = self.short + self.short_alpha * (min(abs(z_slow), 10.0) - self.short)
        drift = (short - self.long_mean) / max(math.sqrt(self.long_var), 0.1)
        likelihood_tail = math.erfc(max(drift, 0.0) / _SQRT2)
        # Score = 1 - tail ** (1/4): the same order as the tail probability, but a
        # Gaussian 8-sigma point is 0.9999, not a float-rounded 1.0, so thresholds keep
        # their resolution (HTM reports its likelihood on a log scale for the same reason).
        return 1.0 - min(point_tail, likelihood_tail) ** 0.25

    # -- learning -------------------------------------------------------------------------
    def learn_one(self, ts: dt.datetime, value: float) -> None:  # type: ignore[override]
        """Learn ``value`` at ``ts`` (after scoring it)."""
        value = float(value)
        if not math.isfinite(value):
            return  # a NaN or infinity teaches nothing (and scores 0)
        epoch = ts.timestamp()
        if self.first_ts is None:
            self.first_ts = self.last_ts = epoch
            self.levels = [value] * len(self.levels)
            self.magnitude = abs(value)
            self.n = 1
            return
        gap = epoch - self.last_ts
        if gap > 0:
            self.step = gap if self.step == 0.0 else self.step + 0.05 * (gap - self.step)
        self.last_ts = max(self.last_ts, epoch)
        z, z_slow, residual, residual_slow, seasonal, lo, frac, season, factor = self._assess(ts, value)
        self.n += 1
        self.magnitude += 0.01 * (abs(value) - self.magnitude)
        self._learn_forecasters(value, seasonal)
        self._learn_profiles(ts, value, seasonal, lo, frac)
        self._learn_scale(ts, z, residual, residual_slow, factor, season)
        self.short += self.short_alpha * (min(abs(z_slow), 10.0) - self.short)
        if self.n > self.warmup:
            delta = self.short - self.long_mean
            self.long_mean += self.long_alpha * delta
            self.long_var = (1 - self.long_alpha) * (self.long_var + self.long_alpha * delta * delta)
        self._maybe_rebaseline(z, z_slow, value, value - seasonal)

    def _learn_forecasters(self, value: float, seasonal: float) -> None:
        # The hot loop of the detector: plain arithmetic, no calls.
        k = len(self.alphas)
        levels, errors, clip, ea = self.levels, self.errors, self.clip, self.error_alpha
        deseasonalised = value - seasonal
        for i, alpha in enumerate(self.alphas + self.alphas):
            residual = (deseasonalised if i >= k else value) - levels[i]
            err = residual if residual >= 0.0 else -residual
            error = errors[i]
            if error == 0.0:
                errors[i] = err
            else:
                bound = clip * error
                if err > bound:
                    err = bound
                    residual = bound if residual > 0.0 else -bound
                errors[i] = error + ea * (err - error)
            levels[i] += alpha * residual

    def _learn_profiles(self, ts: dt.datetime, value: float, seasonal: float, lo: int,
                        frac: float) -> None:
        # Profiles learn against a slow base level (about half a day of memory): a fast
        # level would absorb the daily cycle and leave the profile flat.
        per_hour = 3600.0 / self.step if self.step > 0 else 1.0
        per_day = 24.0 * per_hour
        base_i = len(self.levels) - 1
        base_alpha = min(0.05, 2.0 / per_day)
        residual = value - self.levels[base_i] - seasonal
        if self.scale > 0.0:
            bound = self.clip * self.scale * 2.0
            residual = bound if residual > bound else -bound if residual < -bound else residual
        self.levels[base_i] += base_alpha * residual
        # Memory of about a week of days for the daily profile, three weeks for weekly.
        day_alpha = min(0.5, 1.0 / (max(per_hour, 1.0) * 7.0))
        self.day[lo] += day_alpha * (1.0 - frac) * residual
        self.day[(lo + 1) % 24] += day_alpha * frac * residual
        week_alpha = min(0.5, 1.0 / (per_day * 3.0))
        self.week[ts.weekday()] += week_alpha * residual
        if self.n % 64 == 0:
            # Keep the profiles centred so the levels carry the series' mean.
            mean_day, mean_week = sum(self.day) / 24, sum(self.week) / 7
            self.day = [d - mean_day for d in self.day]
            self.week = [w - mean_week for w in self.week]
            k = len(self.alphas)
            for i in range(k, len(self.levels)):
                self.levels[i] += mean_day + mean_week

    def _learn_scale(self, ts: dt.datetime, z: float, residual: float, residual_slow: float,
                     factor: float, season: str) -> None:
        if self.scale == 0.0:
            self.scale, self.slow_scale = abs(residual), abs(residual_slow)
            return
        bound = self.clip + 2.0
        self.scale += self.scale_alpha * (min(abs(residual) / factor, bound * self.scale) - self.scale)
        # The long-term view's scale forgets slowly: a day unlike the usual day must stay
        # surprising for the day, not for an hour.
        slow_alpha = self.scale_alpha / 4
        self.slow_scale += slow_alpha * (min(abs(residual_slow) / factor, bound * max(self.slow_scale, 1e-12))
                                         - self.slow_scale)
        # The hour-of-day noise factor learns from the first day on; it is used once a
        # daily season is allowed.
        per_hour = 3600.0 / self.step if self.step > 0 else 1.0
        hour_alpha = min(0.2, 1.0 / (max(per_hour, 1.0) * 5.0))
        hour = (ts.hour + (ts.minute >= 30)) % 24
        ratio = min(abs(z) * factor if season != "none" else abs(z), self.clip * 2)
        self.hour_scale[hour] = min(max(self.hour_scale[hour] + hour_alpha * (ratio - self.hour_scale[hour]),
                                        0.1), 10.0)

    def _maybe_rebaseline(self, z: float, z_slow: float, value: float, deseasonalised: float) -> None:
        # Runs of surprises beyond shift_z, per view and side (fast up, fast down, slow
        # up, slow down), and the mean value over the current run: fixed-size state.
        runs, limit = self.runs, self.shift_z
        beyond = (z > limit, z < -limit, z_slow > limit, z_slow < -limit)
        if not any(beyond):
            if any(runs):
                self.runs = [0, 0, 0, 0]
            return
        for j in range(4):
            runs[j] = runs[j] + 1 if beyond[j] else 0
        length = min(max(runs), self.shift_run)
        self.run_value += (value - self.run_value) / length
        self.run_deseasonalised += (deseasonalised - self.run_deseasonalised) / length
        if max(runs) >= self.shift_run:
            k = len(self.alphas)
            for i in range(len(self.levels)):
                self.levels[i] = self.run_value if i < k else self.run_deseasonalised
            self.runs = [0, 0, 0, 0]

    @classmethod
    def _unit_test_params(cls):
        yield {}
        yield {"alphas": (0.02, 0.3), "warmup": 5, "shift_run": 3}


def series_detector(**params) -> SeriesDetector:
    """The general single-series detector with its defaults (no tuning needed).

    >>> det = series_detector()
    >>> det.score_one(dt.datetime(2026, 1, 1), 42.0)   # works before learning
    0.0
    """
    return SeriesDetector(**params)
