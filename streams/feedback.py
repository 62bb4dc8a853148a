"""Operator feedback on alerts, and what the pipeline learns from it.

An on-call operator marks an alert (``riskwatch feedback ALERT_ID --verdict ...`` or a
message on the ``feedback`` topic)::

    {"alert_id": "167c0feb71275f03-5894", "verdict": "false_alarm", "note": "...", "ts": "..."}

Verdicts and what they change (:meth:`FeedbackBook.blocks`, used by
:meth:`streams.pipeline.Pipeline.apply_feedback`):

=============  =========================================================================
confirmed      a real incident: counts as a true positive; nothing else changes
expected       real but known (a planned change, a merchant's recall): the firing
               episode is closed quietly and the slice is muted for ``mute_buckets``
false_alarm    the same, and the slice's alarm level is raised by ``level_step`` (up
               to ``max_level_bump``) for good: the same pattern must not page again
=============  =========================================================================

The fingerprint is part of the ``alert_id`` (``<fingerprint>-<start bucket>``), so a
verdict reaches the right slice without any lookup, in every process. In both verdicts
that close an episode the slice's CUSUM evidence is discarded; its alarmed buckets were
already kept out of the baseline (the detector learns with ``protect=True``).

Determinism: a verdict for an episode that has not fired yet (``riskwatch replay
--feedback FILE`` loads all verdicts first) waits until that ``alert_id`` fires and is
applied in the same bucket, as if the operator had answered at once; a verdict for an
episode in the past applies from the current bucket. Either way the outcome depends on
event time only.

>>> book = FeedbackBook(mute_buckets=12)
>>> rec = parse_feedback({"alert_id": "167c0feb71275f03-100", "verdict": "false_alarm"})
>>> book.record(rec, from_bucket=101)
>>> book.blocks("167c0feb71275f03", bucket=105, evidence=20.0, level=9.0)   # muted
True
>>> book.blocks("167c0feb71275f03", bucket=113, evidence=9.5, level=9.0)    # level raised by 1
True
>>> book.blocks("167c0feb71275f03", bucket=113, evidence=10.5, level=9.0)
False
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from collections.abc import Iterable
from pathlib import Path

import orjson

from riskwatch.errors import ConfigError, InputError
from streams.text.pii import mask_pii

__all__ = ["ALERT_METRICS", "METRIC_SOURCES", "UNKNOWN_METRIC", "VERDICTS", "FeedbackBook", "load_feedback",
           "parse_feedback", "precision_report", "split_alert_id"]

VERDICTS = ("confirmed", "expected", "false_alarm")
#: The metrics (detectors) alerts are raised by: ``streams.paging.METRIC`` and the
#: ``metric`` of ShopSurgeScorer, OverdueScorer and the intent-mix scorer (a test checks).
ALERT_METRICS = ("complaint_rate", "order_surge", "overdue_delivery", "intent_mix")
#: The metric of a verdict whose alert was not looked up: guessing complaint_rate counted
#: verdicts on other detectors' alerts against it in the precision report.
UNKNOWN_METRIC = "unknown"
#: Where a recorded verdict's metric came from (``metric_source``): ``feedback --alerts``,
#: ``--metric``, or the live workers' alerts topic (``--broker``). The precision report
#: shows it per detector, with ``--alerts`` (its own file), ``recorded`` (a verdict
#: recorded before sources were kept) and ``nowhere`` (``unknown``).
METRIC_SOURCES = {"file": "alerts file", "flag": "--metric", "topic": "alerts topic"}
#: Verdicts that close the firing episode and mute the slice.
QUIETING = frozenset({"expected", "false_alarm"})
_HEX16 = re.compile(r"[0-9a-f]{16}")


def split_alert_id(alert_id: str) -> tuple[str, int]:
    """``"<fingerprint>-<start bucket>"`` -> (fingerprint, start bucket index).

    The fingerprint is lower-cased: fingerprints are lower-case hex, and a verdict on
    ``167C0FEB71275F03-5894`` (retyped from a page) was taken for a slice that does not
    exist, so it muted nothing while the worker counted it as applied.

    >>> split_alert_id("167c0feb71275f03-5894")
    ('167c0feb71275f03', 5894)
    >>> split_alert_id("167C0FEB71275F03-5894")
    ('167c0feb71275f03', 5894)
    """
    fp, sep, start = str(alert_id).rpartition("-")
    if not sep or len(fp) != 16 or not start.isdigit():
        raise ConfigError(f"not a riskwatch alert id: {alert_id!r} (expected <16 hex>-<bucket>)")
    # Not int(fp, 16): it also takes '0x', '_' and signs, which no fingerprint has.
    if not _HEX16.fullmatch(fp.lower()):
        raise ConfigError(f"not a riskwatch alert id: {alert_id!r} (fingerprint is not hex)")
    return fp.lower(), int(start)


def parse_feedback(raw: dict) -> dict:
    """Validate one feedback record; return it normalised (note PII-masked).

    Raises :class:`~riskwatch.errors.ConfigError` naming the bad field.
    """
    if not isinstance(raw, dict):
        raise ConfigError("feedback record must be a JSON object")
    alert_id = raw.get("alert_id")
    if not isinstance(alert_id, str):
        raise ConfigError("feedback record needs a string 'alert_id'")
    fp, start = split_alert_id(alert_id)
    alert_id = f"{fp}-{start}"   # as the pipeline spells it: it matches firing episodes by id
    verdict = raw.get("verdict")
    if verdict not in VERDICTS:
        raise ConfigError(f"feedback 'verdict' must be one of {', '.join(VERDICTS)} (got {verdict!r})")
    note = raw.get("note")
    record = {"alert_id": alert_id, "fingerprint": fp, "start_bucket": start, "verdict": verdict,
              "metric": str(raw.get("metric") or UNKNOWN_METRIC),
              "note": mask_pii(str(note))[:500] if note else None,
              "ts": str(raw.get("ts") or dt.datetime.now(dt.UTC).isoformat(timespec="seconds"))}
    if raw.get("metric_source") in METRIC_SOURCES.values():
        record["metric_source"] = raw["metric_source"]
    return record


def load_feedback(path: str | Path) -> list[dict]:
    """Every feedback record of a JSONL file, or of ``feedback.jsonl`` in a directory."""
    p = Path(path)
    if p.is_dir():
        p = p / "feedback.jsonl"
    try:
        lines = p.read_bytes().splitlines()
    except OSError as exc:
        raise InputError(f"cannot read feedback file {p}: {exc.strerror}") from None
    records = []
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            records.append(parse_feedback(orjson.loads(line)))
        except (orjson.JSONDecodeError, ConfigError) as exc:
            # masked: parse_feedback's reason quotes the value, which may be personal data
            raise ConfigError(f"{p}:{n}: bad feedback record: {mask_pii(str(exc))}") from None
    return records


@dataclasses.dataclass
class _SliceFeedback:
    muted_until: int = -1      # bucket index (exclusive)
    level_bump: float = 0.0


class FeedbackBook:
    """Per-fingerprint mutes and raised alarm levels learned from verdicts.

    Parameters
    ----------
    mute_buckets
        Buckets a slice stays muted after an ``expected`` / ``false_alarm`` verdict
        (288 = one day of 5-minute buckets).
    level_step
        Evidence (nats) added to the slice's alarm level per ``false_alarm``.
    max_level_bump
        Cap of the added level: feedback may quiet a slice, never blind it.
    """

    def __init__(self, *, mute_buckets: int = 288, level_step: float = 1.0,
                 max_level_bump: float = 3.0) -> None:
        self.mute_buckets = mute_buckets
        self.level_step = level_step
        self.max_level_bump = max_level_bump
        self.slices: dict[str, _SliceFeedback] = {}
        self.waiting: dict[str, dict] = {}   # alert_id -> verdict waiting for the alert to fire
        self.applied: list[dict] = []

    def __bool__(self) -> bool:
        return bool(self.slices)

    def record(self, rec: dict, *, from_bucket: int) -> None:
        """Apply a verdict from bucket ``from_bucket`` on."""
        self.applied.append(rec)
        self.learn(rec["fingerprint"], rec["verdict"], from_bucket=from_bucket)

    def learn(self, fp: str, verdict: str, *, from_bucket: int) -> None:
        """Apply ``verdict`` to slice ``fp`` (also used for the wider slices it explained:
        the same pattern seen from above must not page instead)."""
        if verdict not in QUIETING:
            if verdict == "confirmed" and fp in self.slices:
                self.slices[fp].level_bump = 0.0  # it was real after all
            return
        state = self.slices.setdefault(fp, _SliceFeedback())
        state.muted_until = max(state.muted_until, from_bucket + self.mute_buckets)
        if verdict == "false_alarm":
            state.level_bump = min(state.level_bump + self.level_step, self.max_level_bump)

    def blocks(self, fp: str, *, bucket: int, evidence: float, level: float) -> bool:
        """Whether feedback keeps slice ``fp`` from paging in ``bucket``."""
        state = self.slices.get(fp)
        if state is None:
            return False
        return bucket < state.muted_until or evidence < level + state.level_bump


def precision_report(feedback: Iterable[dict], alerts: Iterable[dict] = ()) -> dict:
    """Per detector (metric): verdict counts and precision = (confirmed + expected) / judged.

    ``expected`` counts as a correct detection that needed no action. With ``alerts``
    (alert records), episodes without any verdict are counted as ``unreviewed`` and an
    alert's own metric wins over its verdict's (``unknown`` when recorded without
    ``--alerts``, ``--metric`` or the alerts topic); the latest verdict per alert wins.
    Each row's ``metric_from`` counts where its alerts' metric came from
    (:data:`METRIC_SOURCES`, ``--alerts``, ``recorded``, ``nowhere``).

    >>> fb = [{"alert_id": "a-1", "metric": "complaint_rate", "verdict": "confirmed"},
    ...       {"alert_id": "a-2", "metric": "complaint_rate", "verdict": "false_alarm"},
    ...       {"alert_id": "a-3", "metric": "complaint_rate", "verdict": "expected"}]
    >>> precision_report(fb)["complaint_rate"]["precision"]
    0.667
    """
    latest: dict[str, dict] = {}
    for rec in feedback:
        latest[rec["alert_id"]] = rec
    metric_of = {a["alert_id"]: a.get("metric", "complaint_rate") for a in alerts}
    report: dict[str, dict] = {}

    def row_of(metric: str, source: str) -> dict:
        row = report.setdefault(metric, {**dict.fromkeys((*VERDICTS, "unreviewed"), 0), "metric_from": {}})
        row["metric_from"][source] = row["metric_from"].get(source, 0) + 1
        return row

    for alert_id, rec in latest.items():
        if alert_id in metric_of:
            row = row_of(metric_of[alert_id], "--alerts")
        else:
            metric = rec.get("metric") or UNKNOWN_METRIC
            row = row_of(metric, rec.get("metric_source")
                         or ("nowhere" if metric == UNKNOWN_METRIC else "recorded"))
        row[rec["verdict"]] += 1
    for alert_id, metric in metric_of.items():
        if alert_id not in latest:
            row_of(metric, "--alerts")["unreviewed"] += 1
    for row in report.values():
        true = row["confirmed"] + row["expected"]
        judged = true + row["false_alarm"]
        row["precision"] = round(true / judged, 3) if judged else None
    return dict(sorted(report.items()))
