"""The complaint desk: enrich complaints and close the ones an order status makes moot.

Each complaint is masked (personal data never leaves this module unmasked), classified
by intent, scored for anger and escalation signals, and emitted as a complaint record.
A later record with the same ``complaint_id`` supersedes the earlier one (sinks keep
the latest ``version``): agent corrections, status changes, auto-resolution.

**Learning from agents, deterministically.** The live app and ``riskwatch replay`` must
give the same records whatever order the topics are read in, so the intent model may
change only at points fixed in event time: bucket closes. The pipeline hands a
complaint over when its bucket closes (:meth:`ComplaintDesk.on_complaint`, in
``(ts, complaint_id)`` order), and only *then* :meth:`ComplaintDesk.learn_bucket` learns
the agent labels (``complaint_update.intent``) whose event time falls in that bucket,
in ``(ts, event_id)`` order, from the complaints' masked texts. So a complaint is
classified by the model as of the end of the bucket before its own, on both paths;
labels held for a still-open bucket wait in :attr:`ComplaintDesk.labels_waiting`.
A label whose complaint is unknown at that close (older than the ticket window, or
timestamped after its label) is dropped and counted; late labels are not learned.

Auto-resolution is decided on *event time*, so it does not depend on which topic the
worker happened to read first: a "where is my parcel" complaint (delivery_delay) is
moot once the order is delivered *after* the complaint was raised (one raised after
delivery is not moot: the customer says it never arrived); a pickup_urge complaint
once the parcel has been picked up (shipped or any later status), also when that
happened before the customer complained.
"""

from __future__ import annotations

import bisect
import collections
import datetime as dt

from riskwatch.events import Complaint, ComplaintUpdate, OrderStatus, epoch_of
from riskwatch.settings import PipelineSettings
from streams.ingest import GenerationalMap
from streams.dead_letters import mask_short as _mask_short
from streams.text import IntentClassifier, anger_and_sentiment, mask_pii, priority, sensitive_flags

__all__ = ["AUTO_RESOLVABLE", "HANDLING_MINUTES", "PICKED_UP", "ComplaintDesk"]

#: Intents an order status can make moot.
AUTO_RESOLVABLE = frozenset({"delivery_delay", "pickup_urge"})
PICKED_UP = _PICKED_UP = frozenset({"shipped", "in_transit", "out_for_delivery", "delivered"})
#: Average agent minutes per ticket, the time an auto-resolved ticket saves (industry
#: figures for after-sales chat/phone tickets are 8-15 minutes).
HANDLING_MINUTES = 12.0


class ComplaintDesk:
    """Stateful complaint enrichment; state is bounded by the dedup window."""

    def __init__(self, settings: PipelineSettings, classifier: IntentClassifier | None = None,
                 *, ticket_window_seconds: int = 7 * 86400) -> None:
        # Open tickets are kept for a week (deliveries take days); order statuses only
        # for the dedup window (they matter when a status is read before a complaint
        # raised earlier, which the watermark bounds).
        self.settings = settings
        self.ticket_window_seconds = ticket_window_seconds
        # Seeded: a learned model with a vocabulary from day one (30 ms to build).
        # Consulted on every text: learned_below=0.6 (the model only where the rules are
        # unsure) keeps intent-slice counts steadier as it learns (simulated week:
        # precision 0.86 vs 0.85) but leaves the rules' confident mistakes in place
        # (unlabelled accuracy on day 2: 0.85 vs 0.94).
        self.classifier = classifier or IntentClassifier(seeded=True)
        self._labels: dict[int, list[tuple[int, str, str, str]]] = {}  # bucket -> labels
        self.labels_learned = 0
        self.labels_dropped = 0
        self.tz = dt.timezone(dt.timedelta(hours=settings.utc_offset_hours))
        # local_time's cache: the day (local seconds at its midnight) and its "YYYY-MM-DDT"
        self._offset = settings.utc_offset_hours * 3600
        self._offset_text = dt.datetime.fromtimestamp(0, self.tz).isoformat()[19:]   # "+08:00"
        self._day: tuple[int | None, str] = (None, "")
        self.records: dict[str, dict] = {}                # complaint_id -> latest record
        self._epoch: dict[str, int] = {}                  # complaint_id -> complaint time
        # order_id -> first picked-up / delivery time, kept one to two dedup windows
        self.picked_up = GenerationalMap(settings.dedup_window_seconds)
        self.delivered = GenerationalMap(settings.dedup_window_seconds)
        # order_id -> its complaints, for the statuses read after them. Auto-resolved ones
        # stay: an earlier status read later moves their resolution earlier (or undoes
        # it: a first delivery before the complaint), as the fold in event time says.
        self.open_by_order: dict[str, list[str]] = {}
        self.auto_resolved = 0
        # local day -> [tickets raised, auto-resolved later]: the auto-resolution report
        self.daily: dict[str, list[int]] = {}
        self._early_updates: dict[str, list[ComplaintUpdate]] = {}
        # complaint_id -> the model's (intent, confidence), and its agent updates sorted by
        # (event time, event_id): the record's intent, status and auto-resolution are
        # these folded in event time (_fold), so they do not depend on whether the
        # order-status or the complaint-updates topic was read first.
        self._model: dict[str, tuple[str, float]] = {}
        self._updates: dict[str, list[tuple[int, str, str | None, str | None, float | None]]] = {}
        self._order_times: dict[str, tuple[int | None, int | None]] = {}   # see _fold
        # Expiry queues in arrival order (see streams.ingest.Deduplicator for why not dicts).
        self._complaint_queue: collections.deque[tuple[int, str]] = collections.deque()

    def on_complaint(self, e: Complaint, epoch: int, category: str | None) -> dict:
        masked = mask_pii(e.text)
        # The masked text, like what the model learns from (learn_bucket).
        intent, confidence = self.classifier.predict_one(masked, e.declared_type)
        flags = sensitive_flags(e.text)
        if e.channel == "12315":  # filed through the consumer-protection hotline itself
            flags = flags | {"regulator"}
        anger, polarity = anger_and_sentiment(e.text)   # one lexicon scan for both
        record = {
            "complaint_id": e.complaint_id,
            "ts": self.local_time(epoch),
            "intent": intent,
            "intent_confidence": round(confidence, 4),
            "intent_source": "model",
            "sentiment": round(polarity, 4),
            "masked_text": masked,
            "auto_resolved": False,
            "auto_resolved_at": None,
            "time_saved_minutes": 0.0,
            "order_id": e.order_id,
            "merchant_id": e.merchant_id,
            "region": e.region,
            "carrier": e.carrier,
            "category": category,
            # Free-form strings of the producer's: usually a menu value ("app", "vip"),
            # but whatever a form put there reaches tables and dashboards, so masked too.
            "channel": _mask_short(e.channel),
            "customer_tier": _mask_short(e.customer_tier),
            "declared_type": _mask_short(e.declared_type),
            "anger": round(anger, 4),
            "sensitive": sorted(flags),
            "priority": priority(anger, flags, e.customer_tier),
            "status": "open",
            "version": 1,
        }
        self.records[e.complaint_id] = record
        self._epoch[e.complaint_id] = epoch
        self._model[e.complaint_id] = (intent, record["intent_confidence"])
        self.daily.setdefault(record["ts"][:10], [0, 0])[0] += 1
        self._complaint_queue.append((epoch, e.complaint_id))
        if e.order_id:
            record = self._refold(record) or record   # moot already: resolved at once
            # Resolved or not, a status read later may change it (see open_by_order).
            self.open_by_order.setdefault(e.order_id, []).append(e.complaint_id)
        return record

    def local_time(self, epoch: int) -> str:
        """``datetime.fromtimestamp(epoch, self.tz).isoformat()``, e.g.
        ``2026-11-02T13:45:07+08:00``, formatted from a cached date (a third of the cost;
        it ran per complaint). Whole seconds only: other numbers take the datetime path.

        >>> desk = ComplaintDesk(PipelineSettings())
        >>> desk.local_time(1793000123), desk.local_time(1793000123.5)
        ('2026-10-26T15:35:23+08:00', '2026-10-26T15:35:23.500000+08:00')
        """
        if type(epoch) is not int:
            return dt.datetime.fromtimestamp(epoch, self.tz).isoformat()
        second = (epoch + self._offset) % 86400   # of the local day
        midnight = epoch - second
        day, date = self._day
        if midnight != day:
            date = dt.datetime.fromtimestamp(midnight, self.tz).isoformat()[:11]
            self._day = (midnight, date)
        return (f"{date}{second // 3600:02d}:{second // 60 % 60:02d}:{second % 60:02d}"
                f"{self._offset_text}")

    def take_early_updates(self, complaint_id: str) -> list[dict]:
        """Apply agent updates that were read before their complaint; returns the
        superseding records. Kept apart from :meth:`on_complaint` so that what the
        pipeline *counts* (the model's intent at arrival) does not depend on which topic
        was read first."""
        early = self._early_updates.pop(complaint_id, None)
        if not early:
            return []
        return [self._apply_update(self.records[complaint_id], u, epoch_of(u.ts))
                for u in sorted(early, key=lambda u: (u.ts, u.event_id))]

    def on_status(self, e: OrderStatus, epoch: int) -> list[dict]:
        """Note the order's pickup / delivery time; return the complaints it makes moot.

        The pipeline inlines the first part (it runs per status event) and calls
        :meth:`resolve_waiting` only for orders in :attr:`open_by_order`: keep in step.
        """
        oid, status = e.order_id, e.status
        if status in _PICKED_UP:
            picked = self.picked_up   # GenerationalMap.get inlined: this runs per status event
            first = picked.current.get(oid)
            if first is None:
                first = picked.previous.get(oid)
            if first is None or epoch < first:
                picked.current[oid] = epoch
            if status == "delivered":
                first = self.delivered.get(oid)
                if first is None or epoch < first:
                    self.delivered.current[oid] = epoch
        if not self.open_by_order.get(oid):
            return []
        return self.resolve_waiting(oid)

    def resolve_waiting(self, oid: str) -> list[dict]:
        """Refold the complaints about ``oid`` after one of its statuses; return those
        whose record changed: newly auto-resolved, mostly, or resolved at an earlier
        time (a status read after a later one)."""
        waiting = self.open_by_order.get(oid)
        if not waiting:
            return []
        updated, kept = [], []
        for cid in waiting:
            record = self.records.get(cid)
            if record is None:
                continue   # past the ticket window: off the list
            kept.append(cid)
            changed = self._refold(record)   # a status changes only the auto-resolution
            if changed is not None:
                updated.append(changed)
        if kept:
            self.open_by_order[oid] = kept
        else:
            del self.open_by_order[oid]
        return updated

    @property
    def labels_waiting(self) -> int:
        """Agent labels held until their bucket closes."""
        return sum(len(v) for v in self._labels.values())

    def learn_bucket(self, bucket_start: int) -> int:
        """Learn the agent labels of the bucket starting at ``bucket_start`` (call at its
        close, after its complaints were classified). Returns how many were learned."""
        learned = 0
        for _, _, cid, intent in sorted(self._labels.pop(bucket_start, ())):
            record = self.records.get(cid)
            if record is None:
                self.labels_dropped += 1
                continue
            self.classifier.learn_one(record["masked_text"], intent)
            learned += 1
        self.labels_learned += learned
        return learned

    def on_update(self, e: ComplaintUpdate, epoch: int | None = None,
                  bucket_start: int | None = None) -> list[dict]:
        """Apply an agent update. With ``bucket_start`` (the update's open bucket), its
        intent label is also kept for :meth:`learn_bucket`."""
        if e.intent is not None and bucket_start is not None:
            self._labels.setdefault(bucket_start, []).append(
                (epoch, e.event_id, e.complaint_id, e.intent))
        record = self.records.get(e.complaint_id)
        if record is None:
            # Read before its complaint (another topic): keep it until the complaint comes.
            if len(self._early_updates) < 100_000:
                self._early_updates.setdefault(e.complaint_id, []).append(e)
            return []
        return [self._apply_update(record, e, epoch_of(e.ts) if epoch is None else epoch)]

    def _apply_update(self, record: dict, e: ComplaintUpdate, epoch: int) -> dict:
        """A new version of ``record`` with the update in its history (always emitted,
        as an agent touched the ticket), its state refolded."""
        bisect.insort(self._updates.setdefault(e.complaint_id, []),
                      (epoch, e.event_id, e.intent, e.status, e.csat), key=_update_order)
        record = self._refold(record, always=True)
        oid = record["order_id"]
        # Listed since its arrival; not so in a checkpoint written before 2026-11-24,
        # which dropped auto-resolved tickets from the list.
        if oid and e.complaint_id not in self.open_by_order.get(oid, ()):
            self.open_by_order.setdefault(oid, []).append(e.complaint_id)
        return record

    def _refold(self, record: dict, *, always: bool = False) -> dict | None:
        """``record`` with its state folded from its history, as a new version (the old
        one may sit in an output batch), or None when nothing changed (unless ``always``)."""
        state = self._fold(record)
        if not always and all(record.get(k) == v for k, v in state.items()):
            return None
        new = {**record, **state, "version": record["version"] + 1}
        if new["auto_resolved"] != record["auto_resolved"]:   # the report counts final states
            step = 1 if new["auto_resolved"] else -1
            self.auto_resolved += step
            day = self.daily.get(record["ts"][:10])
            if day is not None:
                day[1] += step
        self.records[record["complaint_id"]] = new
        return new

    def _fold(self, record: dict) -> dict:
        """Intent, status, csat and auto-resolution of a complaint from its model intent,
        its agent updates and its order's first pickup and delivery, in event time.

        Walking the complaint's time line (raised, updates, pickup, delivery): an update
        sets the intent / status / csat it carries; the ticket is auto-resolved at the
        first point where its intent is one a status can make moot, the order is moot for
        it (picked up for ``pickup_urge``; delivered after the complaint was raised for
        ``delivery_delay``) and no agent had resolved it. Updates at one instant come
        before the check.
        """
        cid = record["complaint_id"]
        raised = self._epoch[cid]
        intent, confidence = self._model[cid]
        source, status, csat, auto_at = "model", "open", record.get("csat"), None
        oid = record["order_id"]
        # The order's first pickup / delivery, remembered per complaint: the desk's order
        # maps forget after the dedup window, and a later update must not undo a
        # resolution they justified.
        picked, delivered = self._order_times.get(cid, (None, None))
        if oid:
            picked = _earliest(picked, self.picked_up.get(oid))
            delivered = _earliest(delivered, self.delivered.get(oid))
            if picked is not None or delivered is not None:
                self._order_times[cid] = (picked, delivered)
        if delivered is not None and delivered < raised:
            delivered = None   # delivered before the complaint: a delay complaint stays open
        # When the order is moot for each intent a status can make moot (AUTO_RESOLVABLE)
        moot_since = {"pickup_urge": picked, "delivery_delay": delivered}
        updates = self._updates.get(cid, ())
        points = [(raised, 1)] + [(max(u[0], raised), 0, i) for i, u in enumerate(updates)]
        points += [(max(t, raised), 1) for t in (picked, delivered) if t is not None]
        for point in sorted(points):
            at = point[0]
            if point[1] == 0:
                _, _, new_intent, new_status, new_csat = updates[point[2]]
                if new_intent is not None:
                    intent, confidence, source = new_intent, 1.0, "agent"
                if new_status is not None:
                    status = new_status
                if new_csat is not None:
                    csat = new_csat
            moot = moot_since.get(intent)
            if auto_at is None and status != "resolved" and moot is not None and moot <= at:
                status, auto_at = "auto_resolved", at
        state = {"intent": intent, "intent_confidence": confidence, "intent_source": source,
                 "status": status, "auto_resolved": auto_at is not None,
                 "auto_resolved_at": None if auto_at is None else self.local_time(auto_at),
                 "time_saved_minutes": HANDLING_MINUTES if auto_at is not None else 0.0}
        if csat is not None:
            state["csat"] = csat
        return state

    def auto_resolution_report(self) -> list[dict]:
        """Per local day of the complaint: tickets, how many were closed without an
        agent (auto-resolved), their share and the agent hours saved.

        >>> desk = ComplaintDesk(PipelineSettings())
        >>> desk.daily = {"2026-11-02": [40, 10]}
        >>> desk.auto_resolution_report()
        [{'day': '2026-11-02', 'tickets': 40, 'auto_resolved': 10, 'share': 0.25, 'hours_saved': 2.0}]
        """
        return [{"day": day, "tickets": n, "auto_resolved": auto,
                 "share": round(auto / n, 4) if n else 0.0,
                 "hours_saved": round(auto * HANDLING_MINUTES / 60, 2)}
                for day, (n, auto) in sorted(self.daily.items())]

    def prune(self, watermark: int) -> None:
        """Forget order statuses older than the dedup window, tickets older than a week."""
        self.picked_up.prune(watermark)
        self.delivered.prune(watermark)
        queue = self._complaint_queue
        cutoff = watermark - self.ticket_window_seconds
        while queue and queue[0][0] < cutoff:
            _, cid = queue.popleft()
            self._epoch.pop(cid, None)
            self._model.pop(cid, None)
            self._updates.pop(cid, None)
            self._order_times.pop(cid, None)
            record = self.records.pop(cid, None)
            oid = record and record["order_id"]
            if oid in self.open_by_order:
                left = [c for c in self.open_by_order[oid] if c != cid]
                if left:
                    self.open_by_order[oid] = left
                else:
                    del self.open_by_order[oid]


def _update_order(update: tuple) -> tuple[int, str]:
    return update[0], update[1]   # event time, then event_id: a total order


def _earliest(a: int | None, b: int | None) -> int | None:
    return b if a is None else a if b is None else min(a, b)
