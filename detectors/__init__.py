"""Anomaly detectors: river-style estimators, pure Python, no I/O.

Every detector follows river's anomaly protocol: ``score_one`` is pure and returns a
score in [0, 1] (high = anomalous), ``learn_one`` updates state and returns nothing,
and the pipeline always scores a span *before* learning it (prequential order).
Deciding whether a score is an alert is the alerting stage's job, not the detector's.

Slice detectors: :class:`ComplaintRateDetector` (complaints per order exposure) and
:class:`OrderSurgeDetector` (a shop's orders against its share of the market) and
:class:`OverdueRateDetector` (a lane's overdue parcels per due parcel) and
:class:`IntentMixDetector` (a slice whose complaints turn to one intent).
``series_detector()`` is the general single-series detector (any numeric stream, no
tuning): ``score_one(ts, value)`` / ``learn_one(ts, value)``.
"""

from __future__ import annotations

from detectors.complaint_rate import ComplaintRateDetector
from detectors.intent_mix import IntentMixDetector
from detectors.order_surge import OrderSurgeDetector
from detectors.overdue import OverdueRateDetector
from detectors.series import SeriesDetector, series_detector

__all__ = ["ComplaintRateDetector", "IntentMixDetector", "OrderSurgeDetector", "OverdueRateDetector", "SeriesDetector",
           "series_detector"]
