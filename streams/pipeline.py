"""The per-event engine shared by the live faust app and ``riskwatch replay``.

One :class:`Pipeline` receives raw messages (bytes: an event object or a JSON array of
events) with their position, and produces output records in event time:

1. decode + validate (:mod:`riskwatch.events`); bad input -> dead-letter record;
2. drop duplicates by ``event_id`` (counted); events for an already closed bucket are
   *late*: counted and stored, not aggregated;
3. complaints: mask personal data, classify intent, score sentiment
   (:mod:`streams.complaints`), auto-resolve when the order status makes them moot;
4. count orders and complaints per slice and event-time bucket (an order's repeat
   complaints once per slice and :data:`REPEAT_WINDOW_SECONDS`);
5. when the watermark passes a bucket's end (+ allowed lateness) the bucket closes:
   every touched slice is scored (:mod:`streams.detection`) and alerts fire, escalate
   or resolve (:mod:`streams.paging`, :mod:`streams.alerting`).

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

from riskwatch.events import (_MINUTE_CACHE, _SECONDS, BadEvent, Complaint, ComplaintUpdate,
                              Event, Order, OrderStatus, decode_events, epoch_of)
from riskwatch.settings import PipelineSettings
from streams.aggregate_rows import AggregateRows, slice_name
from streams.alerting import AlertEpisode
from streams.open_alerts import OpenAlerts, RecentAlerts
from streams.paging import METRIC, AlertStage
from streams.complaints import PICKED_UP, ComplaintDesk
from streams.detection import Evaluation, SliceScorer
from streams.feedback import FeedbackBook
from streams.dead_letters import dead_letter, internal_error_letter
from streams.ingest import Deduplicator, GenerationalMap
from streams.merchant_scores import MerchantScores
from streams.scope import IncidentScope
from streams.mix import IntentMixStage
from streams.signals import SignalStage
from streams.slicing import COMPLAINT_FIELDS, key_builder
from streams.watermark import Watermark

# No limit on how far ahead of the stream an event may be (max_time_jump_seconds 0).
_NO_LIMIT = float("inf")

__all__ = ["REPEAT_WINDOW_SECONDS", "Outputs", "Pipeline"]

#: A complaint about an order already counted in a slice less than this long ago (event
#: time) is not counted again in that slice's complaint rate nor its intent mix.
REPEAT_WINDOW_SECONDS = 24 * 3600

_decode_event = msgspec.json.Decoder(Event).decode
_decode_array = msgspec.json.Decoder(list[Event]).decode


def _valid_array(raw: bytes) -> list | None:
    """The events of a JSON array message if all of them decode as valid events, else
    None. Their timestamps are checked by :meth:`Pipeline._on_events`, which turns a bad
    one into the same dead letter as :func:`decode_events` (index and excerpt included),
    so they are not parsed twice."""
    try:
        return _decode_array(raw)
    except (msgspec.DecodeError, UnicodeDecodeError):
        return None


@dataclasses.dataclass
class Outputs:
    """Records produced since the last :meth:`Pipeline.drain`, by kind."""

    alerts: list[dict] = dataclasses.field(default_factory=list)
    complaints: list[dict] = dataclasses.field(default_factory=list)
    dead_letters: list[dict] = dataclasses.field(default_factory=list)
    aggregates: AggregateRows = dataclasses.field(default_factory=AggregateRows)
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


class Pipeline(AlertStage):
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
        Complaints above expectation an episode needs before it pages (3.5: a slice
        expecting almost nothing pages on its 4th complaint; was 5, the 6th, which cost
        a shop's slow incident 10 minutes. A long run must also show it within the last
        half hour, :meth:`~streams.paging.AlertStage._recent_enough`).
    explain_share
        Share of a slice's excess a more specific slice must carry to be paged instead.
    pending_buckets
        Buckets an alarm must hold before it pages (Prometheus' ``for:``): one noisy
        bucket of a small slice decays; a real incident keeps coming.
    """

    def __init__(self, settings: PipelineSettings | None = None, calendar: Calendar | None = None,
                 *, keep_events: bool = False, keep_aggregates: bool = False,
                 warmup_seconds: int = 86400, quiet_buckets: int = 6, min_excess: float = 3.5,
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
        # Order -> (category, merchant) for the dedup window: a complaint counts in its
        # order's category; refunds and overdue deliveries count in its merchant's score.
        # One map, not two: at a large platform's rate the maps hold millions of orders,
        # and an insert into a dict of millions misses the CPU cache.
        self._order_profile = GenerationalMap(settings.dedup_window_seconds)
        # Order -> {slice: epoch of its last *counted* complaint}: a customer writing
        # again about the same order is one problem, not a spike (see _count_complaints).
        self._counted_orders = GenerationalMap(REPEAT_WINDOW_SECONDS)
        self.merchant_scores = MerchantScores(settings.bucket_seconds, settings.utc_offset_hours)
        # Which slices a complaint counts in, as a compiled key builder (orders are
        # spread to their slices by streams.exposure).
        self._complaint_keys = key_builder(settings.slices, COMPLAINT_FIELDS)
        self._intent_pos = self.scorer.intent_pos
        self._max_epoch = -1
        # Live: the wall clock (epoch seconds), set by the agent before each run; events
        # up to it plus max_time_jump_seconds are accepted even after a long outage.
        self.now_epoch: float | None = None
        self._top: list[dict] = []  # most anomalous slices of the last closed bucket
        # The global slice is scored (it sets the market factor, dashboards show it) but
        # never pages: a platform-wide incident is always about some intent, region or
        # carrier, and those slices page with the right scope.
        self._silent_slices = {i for i, dims in enumerate(settings.slices) if not dims}
        self.scope = IncidentScope(settings, self._recent_complaints, explain_share,
                                   self.explained)
        self.feedback = FeedbackBook()  # operators' verdicts, see apply_feedback
        # Signals beyond the complaint rate (order surges, ...), scored at bucket close.
        self.signals = SignalStage(settings, warmup_buckets=self.warmup_buckets,
                                   quiet_buckets=quiet_buckets)
        self.signals.feedback = self.feedback
        self._delivery = self.signals.delivery            # shipped -> delivered per order
        self.mix = IntentMixStage(settings, warmup_buckets=self.warmup_buckets)  # streams.mix
        self._order_lane = self._delivery.lanes           # order -> (region, carrier)
        # category, merchant and lane values of the order maps, one object each
        self._shared_values: dict = {}
        self._close_due = 1 << 62   # event time at which the next bucket may close
        self.open_alerts = OpenAlerts()  # firing alerts as emitted (see streams.open_alerts)
        self.recent_alerts = RecentAlerts()  # the last week's alerts: verdicts on them are known
        self.counters = dict.fromkeys(
            ("messages", "orders", "order_status", "complaints", "complaint_updates",
             "bad", "duplicates", "late", "internal_errors", "buckets_closed",
             "alerts_fired", "alerts_escalated", "alerts_resolved", "alerts_explained",
             "alerts_uncovered", "alerts_twinned"), 0)

    def __setstate__(self, state: dict) -> None:
        # A checkpoint written before the shared order-map values existed (same
        # STATE_VERSION: nothing else changed) starts a fresh table; after that the
        # pickle keeps the sharing (it stores each shared object once).
        state.setdefault("_shared_values", {})
        # ... and before the recent alerts were kept: it knows only the firing ones.
        state.setdefault("recent_alerts", RecentAlerts())
        self.__dict__.update(state)

    # -- input ------------------------------------------------------------------------
    def assign_sources(self, sources: list[tuple[str, int | None]]) -> None:
        """Live: the partitions this worker owns hold back the watermark."""
        self.watermark.assign(sources, self._wall)

    def process(self, raw: bytes, *, source: str, partition: int | None, offset: int) -> None:
        """Process one message or line. Never raises because of its content."""
        self.counters["messages"] += 1
        self._process_message(raw, source, partition, offset)

    def process_lines(self, lines: list[bytes], *, source: str, first_offset: int = 1) -> None:
        """:meth:`process` for many lines of one file (replay's hot loop).

        Same results as calling :meth:`process` per line with offsets ``first_offset``,
        ``first_offset + 1``, ...: runs of lines that decode as one event each are fed
        to :meth:`_on_events`, which checks for a bucket close after every line as
        :meth:`process` does; any other line takes :meth:`process`'s own path.
        """
        decode, src = _decode_event, (source, None)
        run: list = []
        start = first_offset
        for offset, raw in enumerate(lines, first_offset):
            try:
                run.append(decode(raw))
            # arrays, and every kind of bad input (msgspec checks UTF-8 inside strings
            # only, and raises UnicodeDecodeError there)
            except (msgspec.DecodeError, UnicodeDecodeError):
                if run:
                    self._on_events(run, src, start, 1, lines, first_offset)
                    run = []
                self._process_message(raw, source, None, offset)
                start = offset + 1
        if run:
            self._on_events(run, src, start, 1, lines, first_offset)
        self.counters["messages"] += len(lines)

    def _process_message(self, raw: bytes, source: str, partition: int | None, offset: int) -> None:
        src = (source, partition)
        try:
            try:
                # Fast path: one valid event object (the common case), or a whole array of
                # valid events; timestamps are validated in _on_events.
                events = (_decode_event(raw),)
            except (msgspec.DecodeError, UnicodeDecodeError):  # arrays, any bad input
                events = _valid_array(raw)
                if events is None:
                    events, bad = decode_events(raw)
                    for b in bad:
                        self.counters["bad"] += 1
                        self.out.dead_letters.append(dead_letter(
                            b, raw, source=source, partition=partition, offset=offset,
                            recorded_at=self._now_iso()))
        except Exception as exc:  # noqa: BLE001 - containment: one bad event must not stop us
            self._internal_error(exc, source, partition, offset)
            return
        # One message: its events share the offset, the close check comes after all of them.
        self._on_events(events, src, offset, 0, raw)

    def _internal_error(self, exc: Exception, source: str, partition: int | None,
                        offset: int) -> None:
        """A bug met by one message: counted and dead-lettered, the stream goes on."""
        self.counters["internal_errors"] += 1
        self.out.dead_letters.append(internal_error_letter(
            exc, source=source, partition=partition, offset=offset, recorded_at=self._now_iso()))

    def _on_events(self, events, src: tuple[str, int | None], offset: int, step: int,
                   raw: bytes | list[bytes] = b"", first_line: int = 0) -> None:
        """Process decoded events in order: the per-event code of live and replay.

        ``step`` 1: one event per line (offsets ``offset``, ``offset + 1``, ...), a bucket
        may close after each, ``raw`` the lines (``raw[o - first_line]`` is line ``o``);
        ``step`` 0: the events of one message (one offset), ``raw`` the message, the
        close check comes after the last one. An event with a bad timestamp becomes the
        dead letter :func:`decode_events` would give it (``raw`` for its excerpt). A
        failing event is contained (dead letter ``internal error``) and the others go on.

        The hottest code of riskwatch (~1 us of Python per event matters at 100k/s):
        state lives in locals, reloaded after a bucket close (which swaps the dedup
        generations and pops buckets); Deduplicator.seen, Watermark.observe, epoch_of's
        fast path and GenerationalMap.__setitem__ are inlined (keep them in step).
        """
        c = self.counters
        n_orders = n_status = n_complaints = n_updates = n_dups = n_late = 0
        minute_cache, seconds = _MINUTE_CACHE, _SECONDS
        bucket_seconds = self.bucket_seconds
        wm_max = self.watermark._max
        src_max = wm_max.get(src, -1)
        wall = self._wall
        keep_events = self.keep_events
        close_each = step == 1
        desk = self.desk
        open_by_order = desk.open_by_order
        picked_statuses = PICKED_UP
        note_status = self.merchant_scores.note_status
        delivery_statuses = self._delivery._statuses
        shared = self._shared_values.setdefault
        reload = failed = False
        reload = True
        # Events further ahead of the stream than max_time_jump_seconds are bad input
        # (one mistyped year would close years of empty buckets and make every later
        # event late). Live, the wall clock counts as "the stream" too (now_epoch).
        max_jump = self.settings.max_time_jump_seconds
        now_epoch = self.now_epoch or -1
        future_limit = (max(self._max_epoch, now_epoch) + max_jump
                        if max_jump and max(self._max_epoch, now_epoch) >= 0 else _NO_LIMIT)
        last_bstart = None
        bucket = None
        for event in events:
            if reload:
                reload = False
                dedup_cur, dedup_prev = self.dedup.current, self.dedup.previous
                profile_of = self._order_profile.current
                profile_prev = self._order_profile.previous
                lane_of = self._order_lane.current
                picked_cur, picked_prev = desk.picked_up.current, desk.picked_up.previous
                delivered_cur = desk.delivered.current
                delivered_prev = desk.delivered.previous
                closed_until = self.closed_until
                close_due = self._close_due
                last_bstart = None
            try:
                ts = event.ts
                # epoch_of, inlined: "YYYY-MM-DDTHH:MM:SS+08:00" by minute and second (the
                # caches hold only what passed its RFC 3339 check: a hit is RFC 3339)
                minutes = minute_cache.get(ts[19:])
                epoch = None
                if minutes is not None and len(ts) == 25 and ts[16] == ":":
                    base = minutes.get(ts[:16])
                    if base is not None:
                        second = seconds.get(ts[17:19])
                        if second is not None:
                            epoch = base + second
                if epoch is None or epoch > future_limit:
                    try:
                        if epoch is None:
                            epoch = epoch_of(ts)
                        if epoch > future_limit:
                            raise ValueError(self._too_far_ahead(ts, epoch))
                    except ValueError as exc:
                        c["bad"] += 1
                        if step:
                            index, message = 0, raw[offset - first_line] if raw else b""
                        else:   # its place in the message's array (rare: search by identity)
                            index = next(i for i, e in enumerate(events) if e is event)
                            message = raw
                        bad = BadEvent(index, "invalid field", f"{exc} - at `$.ts`",
                                       event.event_id, type(event).__struct_config__.tag)
                        self.out.dead_letters.append(dead_letter(
                            bad, message, source=src[0], partition=src[1], offset=offset,
                            recorded_at=self._now_iso()))
                        offset += step
                        continue
                event_id = event.event_id
                if event_id in dedup_cur or event_id in dedup_prev:
                    n_dups += 1
                    offset += step
                    continue
                dedup_cur.add(event_id)
                if epoch > src_max:
                    src_max = wm_max[src] = epoch
                    if epoch > self._max_epoch:
                        self._max_epoch = epoch
                        if max_jump:
                            future_limit = max(epoch, now_epoch) + max_jump
                if wall is not None:
                    self.watermark._last_seen[src] = wall
                bstart = epoch - epoch % bucket_seconds
                if closed_until is None:
                    if self.next_close is None or bstart < self.next_close:
                        self.next_close = bstart
                        close_due = self._close_due = (
                            bstart + bucket_seconds + self.settings.allowed_lateness_seconds)
                    late = False
                else:
                    late = bstart < closed_until
                    if late:
                        n_late += 1
                kind = type(event)
                if kind is Order:
                    n_orders += 1
                    order_id = event.order_id
                    # The order maps hold each order for days: one shared object per
                    # category, merchant, (category, merchant) and lane instead of the
                    # decoder's fresh copies (less memory per order, and later lookups
                    # hit a few hot objects).
                    category = shared(event.category, event.category)
                    merchant = shared(event.merchant_id, event.merchant_id)
                    profile = (category, merchant)
                    lane = (event.region, event.carrier)
                    profile_of[order_id] = shared(profile, profile)
                    lane_of[order_id] = shared(lane, lane)
                    if not late:
                        if bstart != last_bstart:
                            bucket = self.buckets.get(bstart) or self._bucket(bstart)
                            last_bstart = bstart
                        combo = (event.region, merchant, event.carrier, category)
                        combos = bucket.order_combos
                        combos[combo] = combos.get(combo, 0) + 1
                elif kind is OrderStatus:
                    n_status += 1
                    order_id, status = event.order_id, event.status
                    # ComplaintDesk.on_status, inlined (keep in step): first pickup and
                    # delivery times, then the complaints the status may make moot.
                    if status in picked_statuses:
                        first = picked_cur.get(order_id)
                        if first is None:
                            first = picked_prev.get(order_id)
                        if first is None or epoch < first:
                            picked_cur[order_id] = epoch
                        if status == "delivered":
                            first = delivered_cur.get(order_id)
                            if first is None:
                                first = delivered_prev.get(order_id)
                            if first is None or epoch < first:
                                delivered_cur[order_id] = epoch
                    if open_by_order.get(order_id):
                        updated = desk.resolve_waiting(order_id)
                        if updated:
                            self.out.complaints.extend(updated)
                    if not late:
                        if status in _SCORED_STATUSES:
                            # The order's merchant (unknown: older than the dedup window
                            # or never seen; not scored)
                            profile = profile_of.get(order_id)
                            if profile is None:
                                profile = profile_prev.get(order_id)
                            if profile is not None:
                                merchant = profile[1]
                                days = None
                                if status == "delivered":
                                    picked = picked_cur.get(order_id)
                                    if picked is None:
                                        picked = picked_prev.get(order_id)
                                    days = None if picked is None else (epoch - picked) / 86400
                                note_status(bstart, merchant, status, days)
                        if status == "shipped" or status == "delivered":
                            # DeliveryTracker.on_status, inlined
                            batch = delivery_statuses.get(bstart)
                            if batch is None:
                                batch = delivery_statuses[bstart] = []
                            batch.append((epoch, order_id, status))
                elif kind is Complaint:
                    n_complaints += 1
                    if late:  # its bucket is closed: classified now, not counted
                        self.out.complaints.append(self.desk.on_complaint(
                            event, epoch,
                            self._category_of_order(event.order_id)))
                        self.out.complaints.extend(self.desk.take_early_updates(event.complaint_id))
                    else:  # classified when its bucket closes (streams.complaints: determinism)
                        self._bucket(bstart).arrived.append(
                            (epoch, event.complaint_id, event.event_id, event))
                else:
                    n_updates += 1
                    self.out.complaints.extend(
                        self.desk.on_update(event, epoch, None if late else bstart))
                    if not late and (event.status is not None or event.csat is not None):
                        self.merchant_scores.note_update(bstart, event.complaint_id, event.status,
                                                         event.csat)
                if keep_events:
                    self.out.events.append(_event_row(event, epoch, src, offset, late, self.tz))
            except Exception as exc:  # noqa: BLE001 - containment: one bad event must not stop us
                self._internal_error(exc, src[0], src[1], offset)
                if not close_each:
                    failed = True
                    break   # a message is contained as a whole: its other events are skipped
                offset += step
                continue
            if close_each and self._max_epoch >= close_due:
                c["orders"] += n_orders; c["order_status"] += n_status
                c["complaints"] += n_complaints; c["complaint_updates"] += n_updates
                c["duplicates"] += n_dups; c["late"] += n_late
                n_orders = n_status = n_complaints = n_updates = n_dups = n_late = 0
                self._maybe_close()
                reload = True
            offset += step
        c["orders"] += n_orders; c["order_status"] += n_status
        c["complaints"] += n_complaints; c["complaint_updates"] += n_updates
        c["duplicates"] += n_dups; c["late"] += n_late
        if not close_each and not failed and self._max_epoch >= self._close_due:
            self._maybe_close()

    def _too_far_ahead(self, ts: str, epoch: int) -> str:
        reference = max(self._max_epoch, self.now_epoch or -1)
        latest = dt.datetime.fromtimestamp(reference, self.tz).isoformat()
        what = "the wall clock" if reference > self._max_epoch else "the latest event time"
        return (f"{ts!r} is {(epoch - reference) / 86400:.1f} days ahead of {what} ({latest}); "
                f"more than --max-time-jump-seconds {self.settings.max_time_jump_seconds} "
                "(0: no limit, for a file with a longer gap)")

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
            category = self._category_of_order(oid)
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
            counted = self._counted_orders.get(oid) if oid else None
            if oid:  # re-set: the entry lives a window past its last counted complaint
                counted = self._counted_orders[oid] = {} if counted is None else counted
            for key in keys:
                if None in key:
                    continue  # e.g. a complaint without a carrier is in no carrier slice
                # The rate and the intent mix count an order once per slice and
                # REPEAT_WINDOW_SECONDS: four complaints about one parcel are one unhappy
                # customer, not a spike nor a shift (the complaint itself is still
                # recorded, classified and an example).
                if counted is not None:
                    last = counted.get(key)
                    fresh = last is None or epoch - last >= REPEAT_WINDOW_SECONDS
                    if fresh:
                        counted[key] = epoch
                else:
                    fresh = True
                if fresh:
                    b.complaints[key] = b.complaints.get(key, 0) + 1
                    if self._intent_pos[key[0]] < 0:
                        mix = b.intents.setdefault(key, {})
                        mix[intent] = mix.get(intent, 0) + 1
                if flagged:  # a surge of threats (12315, media, lawyers) is a signal
                    b.sensitive[key] = b.sensitive.get(key, 0) + 1
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
                                        set(self.firing) | set(self.pending), self.warmup_buckets,
                                        self.calendar)
        self._alerting(bstart, bucket, evaluations)
        mix = self.mix.close(bindex, bucket.intents, self._recent_complaints,
                             self.firing.keys() | self.explained.keys() | self.pending.keys(),
                             self.signals.firing)
        signal_records = self.signals.close(bstart, bucket.order_combos, self.calendar, mix)
        self.out.alerts.extend(signal_records)
        for rec in signal_records:   # replay --feedback: a verdict that waited for its alert
            if rec["status"] == "firing" and rec["alert_id"] in self.feedback.waiting:
                self.apply_feedback(self.feedback.waiting.pop(rec["alert_id"]))
        top = heapq.nlargest(5, evaluations, key=lambda e: (e.evidence, str(e.key)))
        self._top = [{"slice": self._dims(e.key), "observed": e.observed,
                      "expected": round(e.expected, 2), "evidence": round(e.evidence, 2),
                      "level": round(e.level, 2), "firing": e.key in self.firing} for e in top]
        if self.keep_aggregates:
            bucket.orders = self.scorer.book.orders_in_last_bucket()
            self._aggregate_rows(bstart, bucket, evaluations)
        self.dedup.prune(bstart)
        self.desk.prune(bstart)
        self._order_profile.prune(bstart)
        self._counted_orders.prune(bstart)

    def _dims(self, key: tuple) -> dict[str, str]:
        return dict(zip(self.settings.slices[key[0]], key[1:]))

    def _aggregate_rows(self, bstart: int, bucket: _Bucket, evaluations: list[Evaluation]) -> None:
        rows = self.out.aggregates
        if type(rows) is list:  # a checkpoint of a version that kept rows as dicts
            rows = self.out.aggregates = AggregateRows(rows)
        start, end = self._iso(bstart), self._iso(bstart + self.bucket_seconds)
        seen = set()
        for e in evaluations:
            seen.add(e.key)
            self._aggregate_row(rows, start, end, e.key, bucket, int(e.observed),
                                e.exposure, e.expected, e.score)
        for key in bucket.orders:
            if key not in seen:
                self._aggregate_row(rows, start, end, key, bucket, 0,
                                    self.scorer.book.exposure(key), None, 0.0)

    def _aggregate_row(self, rows: AggregateRows, start: str, end: str, key: tuple,
                       bucket: _Bucket, complaints: int, exposure: float,
                       expected: float | None, score: float) -> None:
        rows.add(start, end, slice_name(self.settings.slices[key[0]], key[1:]), self._dims(key),
                 bucket.orders.get(self.scorer.exposure_key(key), 0), complaints,
                 round(exposure, 4), round(expected, 4) if expected is not None else None,
                 round(score, 6), dict(bucket.intents.get(key, {})),
                 bucket.sensitive.get(key, 0))

    # -- merchant scores --------------------------------------------------------------
    def _category_of_order(self, order_id: str | None) -> str | None:
        """The order's category; None if the order is older than the dedup window or
        was never seen (the complaint then counts in no category slice)."""
        profile = self._order_profile.get(order_id) if order_id else None
        return None if profile is None else profile[0]

    def _merchant_of_complaint(self, complaint_id: str) -> str | None:
        record = self.desk.records.get(complaint_id)
        return None if record is None else record["merchant_id"]

    # -- output -----------------------------------------------------------------------
    def drain(self) -> Outputs:
        """Take the records produced so far."""
        out, self.out = self.out, Outputs()
        if out.alerts:
            self.open_alerts.update(out.alerts)   # checkpointed: sinks are primed from it
            self.recent_alerts.update(out.alerts, now=self.closed_until)
        return out

    def alert_metric(self, alert_id: str) -> str | None:
        """The metric of an alert this pipeline raised (firing, or emitted within the last
        :data:`~streams.open_alerts.RECENT_ALERT_SECONDS` of event time, drained or not);
        None for an alert it does not know: from before a restart without checkpoints,
        older than that, or never raised (a mistyped id)."""
        for record in reversed(self.out.alerts):   # not drained yet
            if record["alert_id"] == alert_id:
                return str(record.get("metric"))
        if any(ep.alert_id == alert_id for ep in self.firing.values()):
            return METRIC
        signal = next((key for key, ep in self.signals.firing.items() if ep.alert_id == alert_id), None)
        if signal is not None:
            return str(signal[0])
        return self.recent_alerts.metric_of(alert_id)

    @property
    def stats(self) -> dict:
        wm = self.watermark.value(self._wall)
        c = self.counters
        # Every decoded event with a valid time: counted per kind, or dropped as duplicate.
        events = sum(c[k] for k in ("orders", "order_status", "complaints",
                                    "complaint_updates", "duplicates"))
        # Alerts of every metric: the paging stage's (complaint rate) and the signal
        # stage's (order surge, overdue delivery, intent mix) episodes.
        signal = self.signals.counters
        return {**c, "events": events,
                "alerts_fired": c["alerts_fired"] + signal["fired"],
                "alerts_escalated": c["alerts_escalated"] + signal["escalated"],
                "alerts_resolved": c["alerts_resolved"] + signal["resolved"],
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
