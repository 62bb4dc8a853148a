"""The per-event engine shared by the live faust app and ``riskwatch replay``.

One :class:`Pipeline` receives raw messages (bytes: an event object or a JSON array of
events) with their position, and produces output records in event time:

1. decode + validate (:mod:`riskwatch.events`); bad input -> dead-letter record;
2. drop duplicates by ``event_id`` (counted); events for an already closed bucket are
   *late*: counted and stored, not aggregated;
3. complaints: mask personal data, classify intent, score sentiment
   (:mod:`streams.complaints`), auto-resolve when the order status makes them moot;
4. count orders and complaints per slice and event-time bucket;
5. when the watermark passes a bucket's end (+ allowed lateness) the bucket closes:
   every touched slice is scored (:mod:`streams.detection`) and alerts fire, escalate
   or resolve (:mod:`streams.alerting`).

Everything is deterministic given the same events: replaying a file and consuming the
same events from Kafka give the same alerts, whatever the interleaving of topics.

>>> p = Pipeline()
>>> p.process(b'{"type":"order","event_id":"e1","ts":"2026-11-02T10:00:00+08:00",'
...           b'"order_id":"o1","merchant_id":"m1","region":"r","carrier":"c",'
...           b'"category":"k","amount":1}', source="file", partition=None, offset=1)
>>> p.process(b'{"type":"order"', source="file", partition=None, offset=2)
>>> out = p.drain()
>>> [d["reason"] for d in out.dead_letters], p.stats["orders"]
(['malformed json'], 1)
"""

from __future__ import annotations

import collections
import dataclasses
import datetime as dt
import heapq
import time

from riskwatch.calendar import Calendar
import msgspec

from riskwatch.events import (BadEvent, Complaint, ComplaintUpdate, Event, Order, OrderStatus,
                              decode_events, epoch_of)
from riskwatch.settings import PipelineSettings
from streams.alert_context import incident_context
from streams.alerting import AlertEpisode, fingerprint, is_wide, severity
from streams.complaints import ComplaintDesk
from streams.detection import Evaluation, SliceScorer
from streams.feedback import QUIETING, FeedbackBook, parse_feedback
from streams.ingest import Deduplicator, GenerationalMap, dead_letter, internal_error_letter
from streams.merchant_scores import MerchantScores
from streams.scope import IncidentScope
from streams.slicing import COMPLAINT_FIELDS, key_builder
from streams.watermark import Watermark

__all__ = ["Outputs", "Pipeline"]

METRIC = "complaint_rate"
_decode_event = msgspec.json.Decoder(Event).decode


@dataclasses.dataclass
class Outputs:
    """Records produced since the last :meth:`Pipeline.drain`, by kind."""

    alerts: list[dict] = dataclasses.field(default_factory=list)
    complaints: list[dict] = dataclasses.field(default_factory=list)
    dead_letters: list[dict] = dataclasses.field(default_factory=list)
    aggregates: list[dict] = dataclasses.field(default_factory=list)
    events: list[dict] = dataclasses.field(default_factory=list)
    scores: list[dict] = dataclasses.field(default_factory=list)

    def items(self):
        """(kind, records) pairs, the shape sinks take."""
        return [(f.name, getattr(self, f.name)) for f in dataclasses.fields(self)]

    def __len__(self) -> int:
        return sum(len(r) for _, r in self.items())


class _Bucket:
    __slots__ = ("orders", "order_combos", "complaints", "intents", "examples", "complaint_keys",
                 "arrived", "sensitive")

    def __init__(self) -> None:
        self.orders: dict[tuple, int] = {}
        # Orders per (region, merchant, carrier, category), expanded into slices at close:
        # one dict update per order instead of one per slice (the hottest loop).
        self.order_combos: dict[tuple, int] = {}
        self.complaints: dict[tuple, int] = {}
        self.intents: dict[tuple, dict[str, int]] = {}   # intent mix of non-intent slices
        self.examples: dict[tuple, list[tuple[int, str, str]]] = {}
        self.complaint_keys: list[tuple] = []   # per complaint: the slices it counted in
        self.arrived: list[tuple] = []          # complaints to count when the bucket closes
        self.sensitive: dict[tuple, int] = {}   # complaints with a sensitive word, per slice


class Pipeline:
    """Deterministic per-event processing; see the module docstring.

    Parameters
    ----------
    settings
        :class:`~riskwatch.settings.PipelineSettings` (bucket size, lateness, ...).
    calendar
        Business calendar: no alert fires inside a maintenance window.
    keep_events, keep_aggregates
        Also emit one masked row per event / per slice and bucket (for storage).
    warmup_seconds
        A slice pages only once it has been active this long: a new slice is in
        learning mode, its baseline borrowed from its peers.
    quiet_buckets
        A firing alert resolves after this many buckets back near normal.
    min_excess
        Complaints above expectation an episode needs before it pages.
    explain_share
        Share of a slice's excess a more specific slice must carry to be paged instead.
    pending_buckets
        Buckets an alarm must hold before it pages (Prometheus' ``for:``): one noisy
        bucket of a small slice decays; a real incident keeps coming.
    """

    def __init__(self, settings: PipelineSettings | None = None, calendar: Calendar | None = None,
                 *, keep_events: bool = False, keep_aggregates: bool = False,
                 warmup_seconds: int = 86400, quiet_buckets: int = 6, min_excess: float = 5.0,
                 explain_share: float = 0.6, pending_buckets: int = 0) -> None:
        self.settings = settings = settings or PipelineSettings()
        self.calendar = calendar or Calendar()
        self.keep_events = keep_events
        self.keep_aggregates = keep_aggregates
        self.bucket_seconds = settings.bucket_seconds
        self.warmup_buckets = warmup_seconds // settings.bucket_seconds
        self.quiet_buckets = quiet_buckets
        self.min_excess = min_excess
        self.explain_share = explain_share
        self.tz = dt.timezone(dt.timedelta(hours=settings.utc_offset_hours))
        self.watermark = Watermark(settings.allowed_lateness_seconds, settings.idle_source_seconds)
        self.dedup = Deduplicator(settings.dedup_window_seconds)
        self.scorer = SliceScorer(settings)
        self.desk = ComplaintDesk(settings)
        self.out = Outputs()
        self.buckets: dict[int, _Bucket] = {}
        self.next_close: int | None = None     # start epoch of the oldest open bucket
        self.closed_until: int | None = None   # end of the newest closed bucket
        self.firing: dict[tuple, AlertEpisode] = {}
        self.explained: dict[tuple, tuple] = {}  # slice -> the slice paged instead
        self._explainer_excess: dict[tuple, float] = {}  # ... and how big that incident got
        self.pending: dict[tuple, int] = {}      # alarmed slice -> first bucket alarmed
        self.pending_buckets = pending_buckets
        # Slices of each complaint of the last half hour: which alarmed slices share them.
        self._recent_complaints: collections.deque[list[tuple]] = collections.deque(maxlen=6)
        self._wall: float | None = None
        # Order -> category for the dedup window: a complaint counts in its order's category.
        self._order_category = GenerationalMap(settings.dedup_window_seconds)
        # Order -> merchant, for refunds and overdue deliveries in merchant scores.
        self._order_merchant = GenerationalMap(settings.dedup_window_seconds)
        self.merchant_scores = MerchantScores(settings.bucket_seconds, settings.utc_offset_hours)
        # Which slices a complaint counts in, as a compiled key builder (orders are
        # spread to their slices by streams.exposure).
        self._complaint_keys = key_builder(settings.slices, COMPLAINT_FIELDS)
        self._intent_pos = self.scorer.intent_pos
        self._max_epoch = -1
        self._top: list[dict] = []  # most anomalous slices of the last closed bucket
        # The global slice is scored (it sets the market factor, dashboards show it) but
        # never pages: a platform-wide incident is always about some intent, region or
        # carrier, and those slices page with the right scope.
        self._silent_slices = {i for i, dims in enumerate(settings.slices) if not dims}
        self.scope = IncidentScope(settings, self._recent_complaints, explain_share,
                                   self.explained)
        self.feedback = FeedbackBook()  # operators' verdicts, see apply_feedback
        self._close_due = 1 << 62   # event time at which the next bucket may close
        self.counters = dict.fromkeys(
            ("messages", "orders", "order_status", "complaints", "complaint_updates",
             "bad", "duplicates", "late", "internal_errors", "buckets_closed",
             "alerts_fired", "alerts_escalated", "alerts_resolved", "alerts_explained"), 0)

    # -- input ------------------------------------------------------------------------
    def assign_sources(self, sources: list[tuple[str, int | None]]) -> None:
        """Live: the partitions this worker owns hold back the watermark."""
        self.watermark.assign(sources, self._wall)

    def process(self, raw: bytes, *, source: str, partition: int | None, offset: int) -> None:
        """Process one message or line. Never raises because of its content."""
        self.counters["messages"] += 1
        try:
            try:
                # Fast path: one valid event object (the common case); its timestamp is
                # validated in _on_event.
                events = (_decode_event(raw),)
            except msgspec.DecodeError:  # arrays, and every kind of bad input
                events, bad = decode_events(raw)
                for b in bad:
                    self.counters["bad"] += 1
                    self.out.dead_letters.append(dead_letter(
                        b, raw, source=source, partition=partition, offset=offset,
                        recorded_at=self._now_iso()))
            src = (source, partition)
            for event in events:
                self._on_event(event, src, offset)
        except Exception as exc:  # noqa: BLE001 - containment: one bad event must not stop us
            self.counters["internal_errors"] += 1
            self.out.dead_letters.append(internal_error_letter(
                exc, source=source, partition=partition, offset=offset, recorded_at=self._now_iso()))
            return
        if self._max_epoch >= self._close_due:
            self._maybe_close()

    def process_lines(self, lines: list[bytes], *, source: str, first_offset: int = 1) -> None:
        """:meth:`process` for many lines of one file (replay's hot loop).

        Same results as calling :meth:`process` per line with offsets ``first_offset``,
        ``first_offset + 1``, ...; the loop and the fast path are inlined because at
        100k lines/s a method call per line is a tenth of the budget.
        """
        c = self.counters
        decode, on_event = _decode_event, self._on_event
        src = (source, None)
        offset = first_offset - 1
        for offset, raw in enumerate(lines, first_offset):
            try:
                event = decode(raw)
            except msgspec.DecodeError:  # arrays, and every kind of bad input
                c["messages"] -= 1       # process() counts it
                self.process(raw, source=source, partition=None, offset=offset)
                continue
            try:
                on_event(event, src, offset)
            except Exception as exc:  # noqa: BLE001 - containment, as in process()
                c["internal_errors"] += 1
                self.out.dead_letters.append(internal_error_letter(
                    exc, source=source, partition=None, offset=offset,
                    recorded_at=self._now_iso()))
                continue
            if self._max_epoch >= self._close_due:
                self._maybe_close()
        c["messages"] += offset - first_offset + 1

    def _on_event(self, event, src: tuple[str, int | None], offset: int) -> None:
        # The hottest code of riskwatch (~1 us of Python per line matters at 100k/s):
        # locals instead of attribute lookups; Deduplicator.seen and Watermark.observe
        # are inlined below (keep them in step with those methods).
        c = self.counters
        event_id = event.event_id
        try:
            epoch = epoch_of(event.ts)
        except ValueError as exc:
            c["bad"] += 1
            bad = BadEvent(0, "invalid field", f"{exc} - at `$.ts`", event_id,
                           type(event).__struct_config__.tag)
            self.out.dead_letters.append(dead_letter(
                bad, b"", source=src[0], partition=src[1], offset=offset, recorded_at=self._now_iso()))
            return
        dedup = self.dedup
        if event_id in dedup.current or event_id in dedup.previous:
            c["duplicates"] += 1
            return
        dedup.current.add(event_id)
        wm = self.watermark
        if epoch > wm._max.get(src, -1):
            wm._max[src] = epoch
            if epoch > self._max_epoch:
                self._max_epoch = epoch
        if self._wall is not None:
            wm._last_seen[src] = self._wall
        bstart = epoch - epoch % self.bucket_seconds
        if self.closed_until is None:
            if self.next_close is None or bstart < self.next_close:
                self.next_close = bstart
                self._close_due = bstart + self.bucket_seconds + self.settings.allowed_lateness_seconds
            late = False
        else:
            late = bstart < self.closed_until
            if late:
                c["late"] += 1
        kind = type(event)
        if kind is Order:
            c["orders"] += 1
            category = event.category
            self._order_category.current[event.order_id] = category
            self._order_merchant.current[event.order_id] = event.merchant_id
            if not late:
                bucket = self.buckets.get(bstart) or self._bucket(bstart)
                combo = (event.region, event.merchant_id, event.carrier, category)
                combos = bucket.order_combos
                combos[combo] = combos.get(combo, 0) + 1
        elif kind is OrderStatus:
            c["order_status"] += 1
            updated = self.desk.on_status(event, epoch)
            if updated:
                self.out.complaints.extend(updated)
            if event.status in _SCORED_STATUSES and not late:
                self._score_status(event, epoch, bstart)
        elif kind is Complaint:
            c["complaints"] += 1
            if late:  # its bucket is closed: classified now, not counted
                self.out.complaints.append(self.desk.on_complaint(
                    event, epoch, self._order_category.get(event.order_id) if event.order_id else None))
                self.out.complaints.extend(self.desk.take_early_updates(event.complaint_id))
            else:  # classified when its bucket closes (streams.complaints: determinism)
                self._bucket(bstart).arrived.append((epoch, event.complaint_id, event.event_id, event))
        else:
            c["complaint_updates"] += 1
            self.out.complaints.extend(self.desk.on_update(event, epoch, None if late else bstart))
            if not late and (event.status is not None or event.csat is not None):
                self.merchant_scores.note_update(bstart, event.complaint_id, event.status, event.csat)
        if self.keep_events:
            self.out.events.append(_event_row(event, epoch, src, offset, late, self.tz))

    def _bucket(self, bstart: int) -> _Bucket:
        b = self.buckets.get(bstart)
        if b is None:
            b = self.buckets[bstart] = _Bucket()
        return b

    def _count_complaints(self, b: _Bucket) -> None:
        """Count the bucket's complaints in their slices, at close.

        Counting waits for the close because a complaint's category is its *order's*
        category, and the order may be read after the complaint when they come from
        different topics; by the close, the watermark guarantees the order was seen.
        """
        bstart = None
        for epoch, cid, _, event in sorted(b.arrived, key=_arrival_key):
            oid = event.order_id
            # None (order unknown or older than the dedup window): no category slice.
            category = self._order_category.get(oid) if oid else None
            # Classified with the model as of the previous bucket's close: the intent
            # counted here is the one of the complaint record, on every path.
            record = self.desk.on_complaint(event, epoch, category)
            self.out.complaints.append(record)
            self.out.complaints.extend(self.desk.take_early_updates(cid))
            if bstart is None:
                bstart = epoch - epoch % self.bucket_seconds
            self.merchant_scores.note_complaint(bstart, record)
            merchant, region, carrier = event.merchant_id, event.region, event.carrier
            intent, masked = record["intent"], record["masked_text"]
            flagged = bool(record["sensitive"])
            example = (epoch, cid, masked)
            keys = self._complaint_keys(region, merchant, carrier, category, intent)
            b.complaint_keys.append(keys)
            for key in keys:
                if None in key:
                    continue  # e.g. a complaint without a carrier is in no carrier slice
                b.complaints[key] = b.complaints.get(key, 0) + 1
                if flagged:  # a surge of threats (12315, media, lawyers) is a signal
                    b.sensitive[key] = b.sensitive.get(key, 0) + 1
                if self._intent_pos[key[0]] < 0:
                    mix = b.intents.setdefault(key, {})
                    mix[intent] = mix.get(intent, 0) + 1
                ex = b.examples.setdefault(key, [])
                # Keep the 3 earliest examples: deterministic whatever the arrival order.
                if len(ex) < 3 or example < ex[-1]:
                    ex.append(example)
                    ex.sort()
                    del ex[3:]

    # -- time -------------------------------------------------------------------------
    def tick(self, wall_time: float) -> None:
        """Live: advance wall-clock time so idle sources stop holding the watermark."""
        self._wall = wall_time
        self._maybe_close()

    def _maybe_close(self) -> None:
        if self.next_close is None:
            return
        wm = self.watermark.value(self._wall)
        if wm is None:
            return
        while self.next_close + self.bucket_seconds <= wm:
            self._close(self.next_close)
        # Nothing can close before some source reaches this event time again.
        self._close_due = self.next_close + self.bucket_seconds + self.settings.allowed_lateness_seconds

    def flush(self) -> None:
        """Close every open bucket (end of input)."""
        if self.buckets:
            last = max(self.buckets)
            while self.next_close is not None and self.next_close <= last:
                self._close(self.next_close)

    def _close(self, bstart: int) -> None:
        bucket = self.buckets.pop(bstart, None) or _Bucket()
        self._count_complaints(bucket)
        self.desk.learn_bucket(bstart)   # after classifying: see streams.complaints
        self.merchant_scores.note_orders(bstart, bucket.order_combos)
        self.out.scores.extend(self.merchant_scores.close(
            bstart, bstart + self.bucket_seconds, self._merchant_of_complaint))
        self.next_close = self.closed_until = bstart + self.bucket_seconds
        self.counters["buckets_closed"] += 1
        bindex = bstart // self.bucket_seconds
        hour = ((bstart + self.settings.utc_offset_hours * 3600) // 3600) % 24
        evaluations = self.scorer.close(bindex, hour, bucket.order_combos, bucket.complaints,
                                        set(self.firing) | set(self.pending), self.warmup_buckets)
        self._alerting(bstart, bucket, evaluations)
        top = heapq.nlargest(5, evaluations, key=lambda e: (e.evidence, str(e.key)))
        self._top = [{"slice": self._dims(e.key), "observed": e.observed,
                      "expected": round(e.expected, 2), "evidence": round(e.evidence, 2),
                      "level": round(e.level, 2), "firing": e.key in self.firing} for e in top]
        if self.keep_aggregates:
            bucket.orders = self.scorer.book.orders_in_last_bucket()
            self._aggregate_rows(bstart, bucket, evaluations)
        self.dedup.prune(bstart)
        self.desk.prune(bstart)
        self._order_category.prune(bstart)
        self._order_merchant.prune(bstart)

    # -- alerting ---------------------------------------------------------------------
    def _alerting(self, bstart: int, bucket: _Bucket, evaluations: list[Evaluation]) -> None:
        bindex = bstart // self.bucket_seconds
        maintenance = self.calendar.in_maintenance(bstart)
        self._recent_complaints.append(bucket.complaint_keys)
        by_key = {e.key: e for e in evaluations}
        candidates = [e for e in evaluations
                      if e.alarmed and e.key not in self.firing and not maintenance
                      and e.key[0] not in self._silent_slices
                      and e.age_buckets >= self.warmup_buckets
                      and e.run_observed - e.run_expected >= self.min_excess
                      and not (self.feedback and self.feedback.blocks(
                          fingerprint(METRIC, self._dims(e.key)), bucket=bindex,
                          evidence=e.evidence, level=e.level))]
        alarmed = {e.key: e for e in evaluations if e.alarmed}
        alarmed.update({k: by_key[k] for k in self.firing if k in by_key})
        if maintenance:
            # Planned work explains what we see: nobody is paged now, and the evidence
            # gathered during the window must not page the moment it ends.
            for e in evaluations:
                if e.alarmed and e.key not in self.firing:
                    self.scorer.reset(e.key)
        for e in evaluations:
            if e.key in self.explained and e.evidence == 0.0:
                del self.explained[e.key]  # the parent's run is over
                self._explainer_excess.pop(e.key, None)
        still = {e.key for e in candidates}
        for key in [k for k in self.pending if k not in still]:
            del self.pending[key]  # the alarm did not hold
        links = {e.key: self._explainer(e, alarmed, bucket) for e in candidates}
        pages = self._paging(links, by_key)
        for e in candidates:
            child = None if e.key in pages else links[e.key]
            if child is not None:
                # One incident, one page: the child slice that explains most of this
                # slice's excess is paged; this one stays quiet until its run ends.
                if e.key not in self.explained:
                    self.counters["alerts_explained"] += 1
                    self.explained[e.key] = child
                    explainer = alarmed.get(child)
                    self._explainer_excess[e.key] = (
                        explainer.run_observed - explainer.run_expected if explainer else 0.0)
                continue
            since = self.pending.setdefault(e.key, bindex)
            if bindex - since < self.pending_buckets:
                continue  # like Prometheus' ``for:``: the alarm must hold a little first
            del self.pending[e.key]
            episode = AlertEpisode(fingerprint(METRIC, self._dims(e.key)),
                                   bindex - max(e.run_buckets - 1, 0))
            self.firing[e.key] = episode
            self._update_episode(episode, e)
            self.counters["alerts_fired"] += 1
            self.out.alerts.append(self._alert_record(episode, e, bstart, bucket, "firing"))
            if episode.alert_id in self.feedback.waiting:  # replay --feedback: answered at once
                self.apply_feedback(self.feedback.waiting.pop(episode.alert_id))
        for key in sorted(set(self.firing) - {e.key for e in candidates}, key=str):
            e = by_key.get(key)
            if e is None:
                continue
            episode = self.firing[key]
            quiet = episode.note_bucket(e.observed, e.expected, self.quiet_buckets)
            if quiet:
                del self.firing[key]
                self.scorer.reset(key)
                for parent in [p for p, c in self.explained.items() if c == key]:
                    del self.explained[parent]
                    self.scorer.reset(parent)
                self.counters["alerts_resolved"] += 1
                self.out.alerts.append(self._alert_record(episode, e, bstart, bucket, "resolved"))
            elif self._update_episode(episode, e):
                self.counters["alerts_escalated"] += 1
                self.out.alerts.append(self._alert_record(episode, e, bstart, bucket, "firing"))

    def _explainer(self, e: Evaluation, alarmed: dict, bucket) -> tuple | None:
        """Which slice explains ``e`` now. An explanation sticks for the rest of the run
        (no flapping between scopes) unless ``e`` outgrows it: a slice explained by a
        small shop in the first minutes of a carrier-wide wave must page once the wave
        is more than twice the shop."""
        sticky = self.explained.get(e.key)
        if sticky is not None:
            other = alarmed.get(sticky)
            if other is not None:  # remember how big the explaining incident got
                self._explainer_excess[e.key] = other.run_observed - other.run_expected
            if e.run_observed - e.run_expected <= 2.0 * self._explainer_excess.get(e.key, 0.0):
                return sticky
            del self.explained[e.key]
        return self.scope.explainer(e, alarmed, bucket)

    def _paging(self, links: dict[tuple, tuple | None], by_key: dict) -> set[tuple]:
        """The candidates that page, given which slice explains which (``links``).

        A candidate nothing explains pages; one explained by another stays quiet. The
        rules can chain into a cycle (A explains B explains A): then the member of the
        cycle with the most evidence pages, so an incident is never left without one.
        """
        pages = set()
        for start in links:
            path, key = [start], start
            while True:
                nxt = links[key] if key in links else self.explained.get(key)
                if nxt is None:
                    if key == start:
                        pages.add(start)
                    break
                if nxt in path:
                    cycle = [k for k in path[path.index(nxt):] if k in by_key]
                    if start == max(cycle, key=lambda k: (by_key[k].evidence, str(k)), default=None):
                        pages.add(start)
                    break
                path.append(nxt)
                key = nxt
        return pages

    def _update_episode(self, episode: AlertEpisode, e: Evaluation) -> bool:
        if e.run_buckets:
            episode.observed, episode.expected = e.run_observed, e.run_expected
        minutes = (e.run_buckets * self.bucket_seconds) / 60
        sev = severity(observed=episode.observed, expected=episode.expected,
                       run_minutes=minutes, wide=is_wide(self.settings.slices[e.key[0]]))
        return episode.escalate(sev)

    def _dims(self, key: tuple) -> dict[str, str]:
        return dict(zip(self.settings.slices[key[0]], key[1:]))

    def _alert_record(self, episode: AlertEpisode, e: Evaluation, bstart: int,
                      bucket: _Bucket, status: str) -> dict:
        dims = self._dims(e.key)
        bend = bstart + self.bucket_seconds
        obs, exp = episode.observed, episode.expected
        ratio = obs / max(exp, 1e-9)
        where = " ".join(f"{k}={v}" for k, v in dims.items()) or "全部 (all)"
        mix = bucket.intents.get(e.key, {})
        total = sum(mix.values()) or 1
        contributors = [{"dimension": "intent", "value": k, "complaints": n, "share": round(n / total, 3)}
                        for k, n in sorted(mix.items(), key=lambda kv: (-kv[1], kv[0]))[:3]]
        if status == "firing":
            exp_text = f"{exp:.2f}" if exp < 1 else f"{exp:.1f}"
            zh, en = ("100 倍以上", "over 100x") if ratio >= 100 else (f"{ratio:.1f} 倍", f"{ratio:.1f}x")
            summary = (f"{where} 投诉率异常: 实际 {obs:.0f} 件, 预期 {exp_text} 件 ({zh}) | "
                       f"complaints {obs:.0f} vs {exp_text} expected ({en})")
        else:
            summary = f"{where} 投诉率已恢复正常 | complaint rate back to normal"
        return {
            "alert_id": episode.alert_id,
            "fingerprint": episode.fingerprint,
            "status": status,
            "severity": episode.severity,
            "metric": METRIC,
            "dimensions": dims,
            "ts": self._iso(bend),
            "bucket_start": self._iso(bstart),
            "bucket_end": self._iso(bend),
            "observed": round(obs, 3),
            "expected": round(exp, 3),
            "score": round(e.score, 6),
            "summary": summary,
            "contributors": contributors,
            "examples": [text for _, _, text in bucket.examples.get(e.key, [])],
            "context": incident_context(self._recent_complaints, e.key, self.settings.slices),
        }

    def _aggregate_rows(self, bstart: int, bucket: _Bucket, evaluations: list[Evaluation]) -> None:
        seen = set()
        for e in evaluations:
            seen.add(e.key)
            self.out.aggregates.append(self._aggregate_row(
                bstart, e.key, bucket, int(e.observed), e.exposure, e.expected, e.score))
        for key in bucket.orders:
            if key not in seen:
                self.out.aggregates.append(self._aggregate_row(
                    bstart, key, bucket, 0, self.scorer.book.exposure(key), None, 0.0))

    def _aggregate_row(self, bstart, key, bucket, complaints, exposure, expected, score) -> dict:
        dims = self._dims(key)
        return {
            "bucket_start": self._iso(bstart),
            "bucket_end": self._iso(bstart + self.bucket_seconds),
            "slice": "|".join(f"{k}={v}" for k, v in dims.items()) or "all",
            "dimensions": dims,
            "orders": bucket.orders.get(self.scorer.exposure_key(key), 0),
            "complaints": complaints,
            "exposure": round(exposure, 4),
            "expected": round(expected, 4) if expected is not None else None,
            "score": round(score, 6),
            "intents": dict(bucket.intents.get(key, {})),
            "sensitive": bucket.sensitive.get(key, 0),
        }

    # -- merchant scores --------------------------------------------------------------
    def _score_status(self, event: OrderStatus, epoch: int, bstart: int) -> None:
        merchant = self._order_merchant.get(event.order_id)
        if merchant is None:
            return  # order older than the dedup window (or never seen): not scored
        days = None
        if event.status == "delivered":
            picked = self.desk.picked_up.get(event.order_id)
            days = None if picked is None else (epoch - picked) / 86400
        self.merchant_scores.note_status(bstart, merchant, event.status, days)

    def _merchant_of_complaint(self, complaint_id: str) -> str | None:
        record = self.desk.records.get(complaint_id)
        return None if record is None else record["merchant_id"]

    # -- feedback ---------------------------------------------------------------------
    def apply_feedback(self, record: dict) -> dict:
        """Apply an operator's verdict on an alert (rules in :mod:`streams.feedback`).

        ``expected`` / ``false_alarm`` on a firing episode resolve it now (a ``resolved``
        record with ``"feedback"``) and mute its slice; a verdict on an episode that has
        not fired yet waits for it. Returns the validated record; a bad one raises
        :class:`~riskwatch.errors.ConfigError`.
        """
        rec = record if "start_bucket" in record else parse_feedback(record)
        now = self.closed_until // self.bucket_seconds if self.closed_until is not None else None
        key = next((k for k, ep in self.firing.items() if ep.alert_id == rec["alert_id"]), None)
        if key is None:
            if now is None or rec["start_bucket"] >= now:
                self.feedback.waiting[rec["alert_id"]] = rec
            else:
                self.feedback.record(rec, from_bucket=now)
            return rec
        self.feedback.record(rec, from_bucket=now)
        if rec["verdict"] not in QUIETING:
            return rec
        episode = self.firing.pop(key)
        self.scorer.reset(key)
        for parent in [p for p, c in self.explained.items() if c == key]:
            del self.explained[parent]
            self.scorer.reset(parent)
            self.feedback.learn(fingerprint(METRIC, self._dims(parent)), rec["verdict"], from_bucket=now)
        self.counters["alerts_resolved"] += 1
        dims, bend = self._dims(key), self.closed_until
        where = " ".join(f"{k}={v}" for k, v in dims.items()) or "全部 (all)"
        zh = {"expected": "预期内", "false_alarm": "误报"}[rec["verdict"]]
        self.out.alerts.append({
            "alert_id": episode.alert_id, "fingerprint": episode.fingerprint, "status": "resolved",
            "severity": episode.severity, "metric": METRIC, "dimensions": dims,
            "ts": self._iso(bend), "bucket_start": self._iso(bend - self.bucket_seconds),
            "bucket_end": self._iso(bend), "observed": round(episode.observed, 3),
            "expected": round(episode.expected, 3), "score": 0.0,
            "summary": f"{where} 值班人员标记为{zh} | marked {rec['verdict']} by on-call",
            "contributors": [], "examples": [], "feedback": rec["verdict"]})
        return rec

    # -- output -----------------------------------------------------------------------
    def drain(self) -> Outputs:
        """Take the records produced so far."""
        out, self.out = self.out, Outputs()
        return out

    @property
    def stats(self) -> dict:
        wm = self.watermark.value(self._wall)
        c = self.counters
        # Every decoded event with a valid time: counted per kind, or dropped as duplicate.
        events = sum(c[k] for k in ("orders", "order_status", "complaints",
                                    "complaint_updates", "duplicates"))
        return {**c, "events": events,
                "watermark": self._iso(wm) if wm is not None else None,
                "open_buckets": len(self.buckets),
                "slices": len(self.scorer),
                "firing": len(self.firing),
                "auto_resolved": self.desk.auto_resolved,
                "auto_resolution": self.desk.auto_resolution_report()[-14:],
                "intent_labels_learned": self.desk.labels_learned,
                "merchants_scored": len(self.merchant_scores),
                "score_tiers": self.merchant_scores.distribution(),
                "score_movers": self.merchant_scores.movers,
                "top_slices": self._top}

    def _iso(self, epoch: int) -> str:
        return dt.datetime.fromtimestamp(epoch, self.tz).isoformat()

    def _now_iso(self) -> str:
        return dt.datetime.fromtimestamp(int(time.time()), self.tz).isoformat()


_SCORED_STATUSES = frozenset({"delivered", "refunded", "returned"})


def _arrival_key(arrived: tuple) -> tuple:
    return arrived[:3]   # (epoch, complaint_id, event_id): unique, whatever the arrival order


def _event_row(event, epoch, src, offset, late, tz) -> dict:
    return {
        "event_id": event.event_id,
        "type": type(event).__struct_config__.tag,
        "ts": dt.datetime.fromtimestamp(epoch, tz).isoformat(),
        "order_id": getattr(event, "order_id", None),
        "merchant_id": getattr(event, "merchant_id", None),
        "region": getattr(event, "region", None),
        "carrier": getattr(event, "carrier", None),
        "category": getattr(event, "category", None),
        "amount": getattr(event, "amount", None),
        "status": event.status if isinstance(event, (OrderStatus, ComplaintUpdate)) else None,
        "complaint_id": getattr(event, "complaint_id", None),
        "late": late,
        "source": src[0],
        "partition": src[1],
        "offset": offset,
    }
