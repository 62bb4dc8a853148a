"""Alert lifecycle: fire, escalate, resolve — with hysteresis and stable identities.

Modelled on Prometheus Alertmanager's alert domain: an alert is identified by its label
set (here: metric + slice dimensions) through a *fingerprint* that is stable across
restarts and processes; each episode gets an ``alert_id`` (fingerprint + start bucket).

Hysteresis: an alert fires when the detector's evidence crosses its threshold, and
resolves only after ``quiet_buckets`` consecutive buckets in which the slice's recent
count is back near its expectation. Firing and resolving use different rules, so an
incident whose complaints arrive in bursts does not flap.

Severity (escalates during an episode, never drops):

======  ====================================================================
blue    the detector is alarmed (evidence >= threshold): worth a look
yellow  observed >= 2.5x expected and >= 10 excess complaints
orange  observed >= 3x expected, >= 30 excess, running >= 30 minutes
red     observed >= 4x expected, >= 100 excess, running >= 1 hour; or a wide
        slice (global, region, carrier) at >= 3x, >= 30 excess, for >= 1 hour
======  ====================================================================

>>> fingerprint("complaint_rate", {"region": "广东", "carrier": "中通"})
'167c0feb71275f03'
>>> severity(observed=40, expected=10, run_minutes=35, wide=False)
'orange'
"""

from __future__ import annotations

import hashlib

__all__ = ["SEVERITIES", "AlertEpisode", "fingerprint", "severity"]

SEVERITIES = ("blue", "yellow", "orange", "red")
_WIDE = frozenset({(), ("region",), ("carrier",)})


def fingerprint(metric: str, dimensions: dict[str, str]) -> str:
    """Stable 16-hex identity of an alert series: same slice + metric, same fingerprint."""
    labels = "|".join(f"{k}={dimensions[k]}" for k in sorted(dimensions))
    return hashlib.sha256(f"{metric}|{labels}".encode()).hexdigest()[:16]


def severity(*, observed: float, expected: float, run_minutes: float, wide: bool) -> str:
    """Severity from the size of the excess, its ratio and its duration (table above)."""
    ratio = observed / max(expected, 1e-9)
    excess = observed - expected
    if (ratio >= 4 and excess >= 100 and run_minutes >= 60) or \
            (wide and ratio >= 3 and excess >= 30 and run_minutes >= 60):
        return "red"
    if ratio >= 3 and excess >= 30 and run_minutes >= 30:
        return "orange"
    if ratio >= 2.5 and excess >= 10:
        return "yellow"
    return "blue"


def is_wide(dims: tuple[str, ...]) -> bool:
    return dims in _WIDE


class AlertEpisode:
    """One firing episode of one slice (mutable, owned by the pipeline)."""

    __slots__ = ("alert_id", "fingerprint", "severity", "start_bucket", "fired_bucket", "recent",
                 "quiet", "observed", "expected")

    def __init__(self, fp: str, start_bucket: int, fired_bucket: int | None = None) -> None:
        self.fingerprint = fp
        self.alert_id = f"{fp}-{start_bucket}"
        self.severity = "blue"
        self.start_bucket = start_bucket   # where the slice's run began (the alert's identity)
        # The bucket it paged in: what began after it is not what the page was about.
        self.fired_bucket = start_bucket if fired_bucket is None else fired_bucket
        self.recent: list[tuple[float, float]] = []  # last buckets' (observed, expected)
        self.quiet = 0
        self.observed = 0.0
        self.expected = 0.0

    def note_bucket(self, observed: float, expected: float, window: int) -> bool:
        """Record a bucket; return True when the slice counts as quiet again.

        Quiet = over the last ``window`` buckets the count is within what the baseline
        explains (observed <= 1.5 x expected + 1), a rule that tolerates the gaps
        between bursts of a small slice's incident.
        """
        self.recent.append((observed, expected))
        if len(self.recent) > window:
            del self.recent[0]
        obs = sum(o for o, _ in self.recent)
        exp = sum(e for _, e in self.recent)
        return len(self.recent) >= window and obs <= 1.5 * exp + 1.0

    def escalate(self, new: str) -> bool:
        """Raise severity (never lower it); True if it changed."""
        if SEVERITIES.index(new) > SEVERITIES.index(self.severity):
            self.severity = new
            return True
        return False
