"""Merchant quality scores (0-100): how a shop compares with its peers, updated at bucket close.

Every merchant keeps a few *exponentially decayed* counts (half-life ``half_life_days``):
orders, complaints (also weighted by how much the intent is the merchant's doing),
severe complaints (priority P1/P2 or a sensitive word), repeat complaints (a second
complaint about the same order), refunds/returns, deliveries and overdue deliveries
(delivered more than ``overdue_days`` after pickup), tickets resolved/escalated, CSAT,
and complaints per intent. Its *peers* are the merchants of the same category (the
category of its first orders), whose summed counts decay the same way.

**Shrinkage.** Each rate is a posterior mean with a prior taken from the peers: a Gamma
prior worth ``prior_orders`` orders at the peer rate for per-order rates, a Beta prior
for shares (overdue deliveries, escalations) and ``prior_ratings`` ratings at the peer
mean for CSAT. A new shop with one complaint in three orders moves only a little; a
shop with 2,000 orders is judged on its own record.

**Score.** Each component compares the merchant's posterior rate with the peer rate
(``ratio``): at half the peer rate or better it earns all its points, at three times
it earns none, linearly in between, so a merchant exactly at the peer rate earns 80 %.
The points (``COMPONENT_POINTS``, summing to 100) are the explanation: ``components``
holds the points earned per component and ``<component>_vs_peers`` the ratio, plus the
two intents most above the peers. Tiers: excellent >= 85, good >= 70, watch >= 55,
otherwise at risk.

**Determinism and cost.** Inputs are bucketed by event time and applied when their
bucket closes, like the pipeline's counts, so live and replay agree. State is one numpy
row of 31 float64 per merchant (~250 bytes; 100k merchants ~25 MB); a merchant's row is
decayed lazily when touched. A score record is emitted for a merchant with activity in
the closing bucket when its score moved by ``min_change`` points, its tier changed, or
``heartbeat_seconds`` passed since its last record. ``change_1d`` is the move since the
start of the previous local day; :attr:`MerchantScores.movers` holds the biggest moves
of the last full day.

Three shops of 400 orders, one with ten times the complaints of the others, and a new
shop whose first three orders brought one complaint (a third of its orders!):

>>> ms = MerchantScores(bucket_seconds=300, score_every=1)
>>> ms.note_orders(0, {("r", m, "c", "k"): n for m, n in
...                    [("m1", 400), ("m2", 400), ("m3", 400), ("new", 3)]})
>>> for m, n in [("m1", 4), ("m2", 40), ("m3", 4), ("new", 1)]:
...     for i in range(n):
...         ms.note_complaint(0, {"merchant_id": m, "intent": "quality", "priority": "P4",
...                               "sensitive": [], "order_id": f"{m}-{i}"})
>>> {r["merchant_id"]: (r["score"], r["tier"]) for r in ms.close(0, 300)}
{'m1': (86.04, 'excellent'), 'm2': (68.36, 'watch'), 'm3': (86.04, 'excellent'), 'new': (79.0, 'good')}

The new shop is judged mostly by its peers until it has a record of its own.
"""

from __future__ import annotations

import datetime as dt
import heapq
import operator
from collections.abc import Callable, Mapping

import numpy as np

from streams.ingest import GenerationalMap
from streams.name_order import NameOrder, positions_of_none
from streams.text.intent import INTENTS

__all__ = ["COMPONENT_POINTS", "INTENT_WEIGHTS", "MerchantScores", "tier_of"]

# Field columns of the per-merchant state.
_ORD, _CMP, _WCMP, _SEV, _REP, _REF, _DLV, _OVD, _RES, _ESC, _CSUM, _CN = range(12)
_INTENT0 = 12
_NFIELDS = _INTENT0 + len(INTENTS)
# Row bookkeeping columns (separate array): last bucket decayed to, last emitted score,
# bucket of the last record, score now, score at the start of the current / last day.
_LAST, _EMITTED, _EMITTED_AT, _SCORE, _DAY, _PREV_DAY = range(6)

#: How much of a complaint of each intent is the merchant's doing (weights of the
#: weighted complaint rate): a fake shipment or a bad product is; a slow courier mostly not.
INTENT_WEIGHTS: dict[str, float] = {
    "delivery_delay": 0.5, "pickup_urge": 1.0, "lost_parcel": 0.5, "damaged": 1.0,
    "wrong_delivery": 0.7, "fake_shipment": 2.5, "quality": 2.0, "weight_mismatch": 0.5,
    "duplicate_charge": 1.0, "refund": 1.5, "service_attitude": 1.0, "customs": 0.3,
    "other": 0.5,
}
_WEIGHTS = np.array([INTENT_WEIGHTS[i] for i in INTENTS])
_INTENT_INDEX = {name: i for i, name in enumerate(INTENTS)}

#: Points of each component (sum 100).
COMPONENT_POINTS: dict[str, float] = {
    "complaints": 35.0, "severity": 15.0, "repeat": 10.0, "refunds": 15.0,
    "overdue": 10.0, "resolution": 10.0, "csat": 5.0,
}
_TIERS = ((85.0, "excellent"), (70.0, "good"), (55.0, "watch"))
_TIER_NAMES = ("at_risk", "watch", "good", "excellent")   # by np.digitize(score, [55, 70, 85])
_INTENT_KEYS = [f"intent_{name}_vs_peers" for name in INTENTS]
_MERCHANT = operator.itemgetter(1)   # of an order combo


def tier_of(score: float) -> str:
    """``excellent`` (>= 85), ``good`` (>= 70), ``watch`` (>= 55) or ``at_risk``.

    >>> [tier_of(s) for s in (92, 80, 60, 20)]
    ['excellent', 'good', 'watch', 'at_risk']
    """
    for low, name in _TIERS:
        if score >= low:
            return name
    return "at_risk"


def _quality(ratio: np.ndarray) -> np.ndarray:
    # all points at <= half the peer rate, none at >= 3x, linear in between
    return np.clip(1.0 - (ratio - 0.5) / 2.5, 0.0, 1.0)


class MerchantScores:
    """Per-merchant decayed counts and scores; see the module docstring.

    Parameters
    ----------
    bucket_seconds
        The pipeline's bucket size (decay is per bucket).
    utc_offset_hours
        Local time of record timestamps and of day boundaries (movers).
    half_life_days
        Half-life of every count.
    prior_orders
        Strength of the peer prior for per-order rates, in orders.
    prior_deliveries, prior_tickets, prior_ratings
        Strengths of the priors of the overdue share, the escalation share and CSAT.
    min_change, heartbeat_seconds
        When an active merchant gets a new record (see the module docstring).
    score_every
        Score at the close of every n-th bucket (bucket index + 1 divisible by n; 6 =
        every 30 minutes of event time), from the inputs of the buckets since: scoring
        costs ~3 ms a time at 2,000 merchants, so scoring every 5-minute bucket would
        cost about as much as the rest of the pipeline.
    repeat_window_seconds
        How long a complained-about order is remembered to spot repeat complaints.
    """

    def __init__(self, bucket_seconds: int, utc_offset_hours: int = 8, *,
                 half_life_days: float = 7.0, prior_orders: float = 300.0,
                 prior_deliveries: float = 50.0, prior_tickets: float = 20.0,
                 prior_ratings: float = 10.0, min_change: float = 1.0,
                 heartbeat_seconds: int = 12 * 3600,
                 repeat_window_seconds: int = 7 * 86400, score_every: int = 6) -> None:
        self.bucket_seconds = bucket_seconds
        self.tz = dt.timezone(dt.timedelta(hours=utc_offset_hours))
        self.offset = utc_offset_hours * 3600
        self.half_life_days = half_life_days
        self.decay = 0.5 ** (bucket_seconds / (half_life_days * 86400))
        self.prior_orders = prior_orders
        self.prior_deliveries = prior_deliveries
        self.prior_tickets = prior_tickets
        self.prior_ratings = prior_ratings
        self.min_change = min_change
        self.heartbeat_buckets = max(1, heartbeat_seconds // bucket_seconds)
        self.score_every = score_every
        self._acc: dict[str, list[float]] = {}   # inputs since the last scoring close
        self._acc_orders = np.zeros(1024)         # row -> orders since the last scoring close
        self.rows: dict[str, int] = {}           # merchant -> row
        self.merchants: list[str] = []
        self._name_order = NameOrder()            # rows by merchant name, kept across closes
        self.category_of = np.zeros(1024, dtype=np.int64)   # row -> category index
        self.categories: dict[str | None, int] = {}
        self.counts = np.zeros((1024, _NFIELDS))
        self.meta = np.zeros((1024, 6))
        self.peers = np.zeros((0, _NFIELDS))      # category -> decayed sums
        # bucket -> merchant -> counts (plain lists: cheaper than tiny arrays per event)
        self._pending: dict[int, dict[str, list[float]]] = {}
        self._pending_updates: dict[int, list[tuple[str, str | None, float | None]]] = {}
        self._complained = GenerationalMap(repeat_window_seconds)
        self._day: int | None = None
        self.movers: list[dict] = []              # biggest moves of the last full day
        self.records_emitted = 0

    def __len__(self) -> int:
        return len(self.merchants)

    # -- inputs (bucketed by event time) --------------------------------------------------
    def _add(self, bucket_start: int, merchant: str, field: int, value: float = 1.0) -> None:
        per = self._pending.setdefault(bucket_start, {})
        row = per.get(merchant)
        if row is None:
            row = per[merchant] = [0.0] * _NFIELDS
        row[field] += value

    def note_orders(self, bucket_start: int, order_combos: Mapping[tuple, int]) -> None:
        """Orders of a bucket, as the pipeline counts them: ``{(region, merchant, carrier,
        category): n}``. A merchant's peer group is the category of its first bucket with
        orders (the category with most orders in it; ties by name)."""
        # Orders need no bucket of their own: they are counted at their bucket's close,
        # which is now. The combos are read as a column of merchants (C-level maps);
        # orders per row are one bincount (whole numbers: exact in any order).
        if not order_combos:
            return
        combos = list(order_combos)
        n = len(combos)
        rows = self.rows
        found = list(map(rows.get, map(_MERCHANT, combos)))
        if None in found:
            counts = list(order_combos.values())
            new: dict[str, dict] = {}
            missing = list(positions_of_none(found))
            for j in missing:
                _, merchant, _, category = combos[j]
                cats = new.setdefault(merchant, {})
                cats[category] = cats.get(category, 0) + counts[j]
            for merchant in sorted(new):   # rows in a fixed order, whatever the dict order
                cats = new[merchant]
                self._row(merchant, min(cats, key=lambda c: (-cats[c], str(c))))
            for j in missing:
                found[j] = rows[combos[j][1]]
        r = np.fromiter(found, dtype=np.int64, count=n)
        orders = np.bincount(r, weights=np.fromiter(order_combos.values(), dtype=np.float64,
                                                    count=n), minlength=len(self.merchants))
        self._acc_orders[:len(orders)] += orders

    def note_complaint(self, bucket_start: int, record: Mapping) -> None:
        """A classified complaint record (at its bucket's close)."""
        merchant = record["merchant_id"]
        per = self._pending.setdefault(bucket_start, {})
        row = per.get(merchant)
        if row is None:
            row = per[merchant] = [0.0] * _NFIELDS
        intent = _INTENT_INDEX.get(record["intent"], _INTENT_INDEX["other"])
        row[_CMP] += 1
        row[_WCMP] += INTENT_WEIGHTS[INTENTS[intent]]
        row[_INTENT0 + intent] += 1
        if record.get("priority") in ("P1", "P2") or record.get("sensitive"):
            row[_SEV] += 1
        oid = record.get("order_id")
        if oid:
            if self._complained.get(oid) is not None:
                row[_REP] += 1
            self._complained[oid] = 1

    def note_status(self, bucket_start: int, merchant: str, status: str,
                    days_since_pickup: float | None = None, overdue_days: float = 2.0) -> None:
        """An order status of a known merchant: refunded/returned count as refunds; a
        delivery is overdue when it came more than ``overdue_days`` after pickup."""
        if status in ("refunded", "returned"):
            self._add(bucket_start, merchant, _REF)
        elif status == "delivered":
            self._add(bucket_start, merchant, _DLV)
            if days_since_pickup is not None and days_since_pickup > overdue_days:
                self._add(bucket_start, merchant, _OVD)

    def note_update(self, bucket_start: int, complaint_id: str, status: str | None,
                    csat: float | None) -> None:
        """A complaint update; its merchant is looked up when the bucket closes."""
        if status in ("resolved", "escalated", "reopened") or csat is not None:
            self._pending_updates.setdefault(bucket_start, []).append((complaint_id, status, csat))

    # -- close --------------------------------------------------------------------------
    def close(self, bucket_start: int, bucket_end: int,
              merchant_of: Callable[[str], str | None] | None = None) -> list[dict]:
        """Apply the bucket's inputs and return the score records it produces."""
        bindex = bucket_start // self.bucket_seconds
        self.peers *= self.decay
        pending = self._pending.pop(bucket_start, {})
        for cid, status, csat in sorted(self._pending_updates.pop(bucket_start, ()),
                                        key=_update_key):
            merchant = merchant_of(cid) if merchant_of else None
            if merchant is None:
                continue
            row = pending.get(merchant)
            if row is None:
                row = pending[merchant] = [0.0] * _NFIELDS
            if status == "resolved":
                row[_RES] += 1
            elif status in ("escalated", "reopened"):
                row[_ESC] += 1
            if csat is not None:
                row[_CSUM] += csat
                row[_CN] += 1
        self._complained.prune(bucket_start)
        for merchant, row in pending.items():
            acc = self._acc.get(merchant)
            if acc is None:
                self._acc[merchant] = row
            else:   # element-wise in C; adding the zeros changes nothing (counts are >= 0)
                acc[:] = map(operator.add, acc, row)
        out: list[dict] = []
        scoring = (bindex + 1) % self.score_every == 0
        ordered = self._acc_orders[:len(self.merchants)] > 0 if scoring else None
        if scoring and (self._acc or ordered.any()):
            acc = self._acc
            self._acc = {}
            known = self.rows
            for m in sorted(acc.keys() - known.keys()):   # complaints of unknown shops
                self._row(m, None)
            # the scored rows in merchant-name order, without sorting thousands of names
            scored = np.zeros(len(self.merchants), dtype=bool)
            scored[:len(ordered)] = ordered
            scored[[known[m] for m in acc]] = True
            by_name = self._name_order.rows(self.merchants)
            rows = by_name[scored[by_name]]
            names = list(map(self.merchants.__getitem__, rows.tolist()))
            add = np.zeros((len(names), _NFIELDS))
            add[:, _ORD] = self._acc_orders[rows]
            self._acc_orders[rows] = 0.0
            if acc:   # complaints, statuses, updates: far fewer than orders
                position = dict(zip(names, range(len(names))))
                # 0.0 + x is x: the same floats as adding each list to its row
                add[[position[m] for m in acc]] += np.array(list(acc.values()))
            # lazy decay of the touched rows to this bucket
            age = bindex - self.meta[rows, _LAST]
            self.counts[rows] *= (self.decay ** age)[:, None]
            self.meta[rows, _LAST] = bindex
            self.counts[rows] += add
            np.add.at(self.peers, self.category_of[rows], add)
            scores, components = self._score(rows)
            out = self._records(names, rows, scores, components, bindex, bucket_end)
        self._roll_day(bucket_end)
        return out

    def _row(self, merchant: str, category: str | None) -> int:
        row = len(self.merchants)
        if row == len(self.counts):
            for name in ("counts", "meta", "_acc_orders", "category_of"):
                old = getattr(self, name)
                setattr(self, name, np.concatenate([old, np.zeros_like(old)]))
        cat = self.categories.get(category)
        if cat is None:
            cat = self.categories[category] = len(self.categories)
            self.peers = np.vstack([self.peers, np.zeros(_NFIELDS)])
        self.rows[merchant] = row
        self.merchants.append(merchant)
        self.category_of[row] = cat
        self.meta[row, _EMITTED] = np.nan
        return row

    def _score(self, rows: np.ndarray) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        c = self.counts[rows]
        p = self.peers[self.category_of[rows]]
        # Peer groups with no orders yet (complaints of unknown shops): all merchants.
        total = self.peers.sum(axis=0)
        empty = p[:, _ORD] <= 0
        p[empty] = total
        k = self.prior_orders
        peer_orders = np.maximum(p[:, _ORD], 1.0)
        ratios: dict[str, np.ndarray] = {}
        for name, field in (("complaints", _WCMP), ("severity", _SEV), ("repeat", _REP),
                            ("refunds", _REF)):
            peer_rate = np.maximum(p[:, field] / peer_orders, 1e-4)
            post = (c[:, field] + k * peer_rate) / (c[:, _ORD] + k)
            # No such event among the peers yet: no reference, so neutral for everyone.
            ratios[name] = np.where(p[:, field] > 0, post / peer_rate, 1.0)
        for name, hit, base, k2 in (("overdue", _OVD, _DLV, self.prior_deliveries),
                                    ("resolution", _ESC, None, self.prior_tickets)):
            denom_c = c[:, base] if base is not None else c[:, _RES] + c[:, _ESC]
            denom_p = p[:, base] if base is not None else p[:, _RES] + p[:, _ESC]
            peer_share = np.clip(p[:, hit] / np.maximum(denom_p, 1.0), 0.01, 0.99)
            post = (c[:, hit] + k2 * peer_share) / (denom_c + k2)
            ratios[name] = np.where(denom_p > 0, post / peer_share, 1.0)
        peer_csat = np.where(p[:, _CN] > 0, p[:, _CSUM] / np.maximum(p[:, _CN], 1e-9), 3.5)
        post_csat = (c[:, _CSUM] + self.prior_ratings * peer_csat) / (c[:, _CN] + self.prior_ratings)
        ratios["csat"] = (5.0 - post_csat) / np.maximum(5.0 - peer_csat, 0.1)
        components = {name: COMPONENT_POINTS[name] * _quality(r) for name, r in ratios.items()}
        score = sum(components.values())
        components.update({f"{name}_vs_peers": r for name, r in ratios.items()})
        # intents most above the peers (explanation only)
        peer_int = (p[:, _INTENT0:] + k * 1e-4) / (peer_orders[:, None])
        mine = (c[:, _INTENT0:] + k * peer_int) / (c[:, [_ORD]] + k)
        components["_intent_ratio"] = mine / np.maximum(peer_int, 1e-9)
        components["_orders"] = c[:, _ORD]
        components["_complaints"] = c[:, _CMP]
        return score, components

    def _records(self, names, rows, scores, components, bindex, bucket_end) -> list[dict]:
        meta = self.meta
        scores = np.round(scores, 2)
        last = meta[rows, _EMITTED]
        first = np.isnan(last)
        # first sight: its own first score is its baseline for change_1d
        meta[rows[first], _DAY] = meta[rows[first], _PREV_DAY] = scores[first]
        meta[rows, _SCORE] = scores
        tiers = np.digitize(scores, [55.0, 70.0, 85.0])
        with np.errstate(invalid="ignore"):
            due = (first | (np.abs(scores - last) >= self.min_change)
                   | (tiers != np.digitize(np.nan_to_num(last), [55.0, 70.0, 85.0]))
                   | (bindex - meta[rows, _EMITTED_AT] >= self.heartbeat_buckets))
        idx = np.flatnonzero(due)
        if not len(idx):
            return []
        emit_rows = rows[idx]
        meta[emit_rows, _EMITTED] = scores[idx]
        meta[emit_rows, _EMITTED_AT] = bindex
        ts = dt.datetime.fromtimestamp(bucket_end, self.tz).isoformat()
        names_out = [n for n in components if not n.startswith("_")]
        columns = [np.round(components[n][idx], 3).tolist() for n in names_out]
        ratio = components["_intent_ratio"][idx]
        top2 = np.argsort(-ratio, axis=1, kind="stable")[:, :2]
        top2_ratio = np.take_along_axis(ratio, top2, axis=1).tolist()
        top2 = top2.tolist()
        tiers = tiers[idx].tolist()
        orders = np.round(components["_orders"][idx], 1).tolist()
        counts = np.round(components["_complaints"][idx], 2).tolist()
        change = np.round(scores[idx] - meta[emit_rows, _PREV_DAY], 2).tolist()
        out = []
        for k, (i, score, values) in enumerate(zip(idx.tolist(), scores[idx].tolist(),
                                                    zip(*columns))):
            comps = dict(zip(names_out, values))
            for j, r in zip(top2[k], top2_ratio[k]):
                if r > 1.2:
                    comps[_INTENT_KEYS[j]] = round(r, 3)
            comps["orders"] = orders[k]
            comps["complaint_count"] = counts[k]
            out.append({"merchant_id": names[i], "ts": ts, "score": score,
                        "tier": _TIER_NAMES[tiers[k]], "components": comps, "change_1d": change[k]})
        self.records_emitted += len(out)
        return out

    def _roll_day(self, bucket_end: int) -> None:
        day = (bucket_end + self.offset) // 86400
        if self._day is None:
            self._day = day
            return
        if day == self._day:
            return
        self._day = day
        n = len(self.merchants)
        meta = self.meta[:n]
        change = meta[:, _SCORE] - meta[:, _DAY]
        top = heapq.nlargest(10, range(n), key=lambda r: (abs(change[r]), -r))
        self.movers = [{"merchant_id": self.merchants[r], "score": round(float(meta[r, _SCORE]), 2),
                        "change": round(float(change[r]), 2)} for r in top if change[r]]
        meta[:, _PREV_DAY] = meta[:, _DAY]
        meta[:, _DAY] = meta[:, _SCORE]

    def distribution(self) -> dict[str, int]:
        """Merchants per tier, by their latest score (for reports and the demo view)."""
        out = {"excellent": 0, "good": 0, "watch": 0, "at_risk": 0}
        emitted = self.meta[:len(self.merchants), _EMITTED]
        for score in emitted[~np.isnan(emitted)].tolist():
            out[tier_of(score)] += 1
        return out


def _update_key(item: tuple) -> tuple:
    cid, status, csat = item
    return (cid, status or "", -1.0 if csat is None else csat)

