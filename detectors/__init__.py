"""Anomaly detectors: river-style estimators, pure Python, no I/O.

Every detector follows river's anomaly protocol: ``score_one`` is pure and returns a
score in [0, 1] (high = anomalous), ``learn_one`` updates state and returns nothing,
and the pipeline always scores a span *before* learning it (prequential order).
Deciding whether a score is an alert is the alerting stage's job, not the detector's.
"""

from __future__ import annotations

from detectors.complaint_rate import ComplaintRateDetector

__all__ = ["ComplaintRateDetector"]
