"""Complaint and complaint_update events: who complains, through which channel, and
how agents follow up.

The customer picks a complaint type from a menu (``declared_type``) and is right only
about half of the time; an agent's ``complaint_update`` later carries the true intent
for ``label_share`` of complaints. Updates that would fall after the end of the
simulation are dropped, like every other event.
"""

from __future__ import annotations

import math
import random

import orjson

from riskwatch.events import INTENTS
from riskwatch.simulator.seasonality import TimeText
from riskwatch.simulator.texts import TextComposer

__all__ = ["ComplaintFactory"]

_CHANNELS = ("app", "hotline", "wechat", "web", "12315")
_CHANNEL_WEIGHTS = (45, 18, 22, 8, 7)
# 12315 is the state consumer hotline: people go there for product and money disputes.
_CHANNEL_WEIGHTS_DISPUTE = (40, 18, 20, 8, 14)
_DISPUTES = {"quality", "fake_shipment", "refund", "duplicate_charge"}
_TIERS = ("normal", "vip", "svip", None)
_TIER_WEIGHTS = (70, 15, 5, 10)
#: Plausible wrong menu picks per true intent.
_CONFUSIONS: dict[str, tuple[str, ...]] = {
    "delivery_delay": ("pickup_urge", "lost_parcel", "other"),
    "pickup_urge": ("delivery_delay", "other"),
    "lost_parcel": ("delivery_delay", "wrong_delivery"),
    "damaged": ("quality", "refund"),
    "wrong_delivery": ("lost_parcel", "delivery_delay"),
    "fake_shipment": ("delivery_delay", "lost_parcel", "refund"),
    "quality": ("damaged", "refund", "other"),
    "weight_mismatch": ("duplicate_charge", "refund", "other"),
    "duplicate_charge": ("refund", "other"),
    "refund": ("duplicate_charge", "quality", "other"),
    "service_attitude": ("other", "delivery_delay"),
    "customs": ("delivery_delay", "other"),
    "other": ("service_attitude", "refund"),
}
_CSAT_RESOLVED = (12, 10, 18, 27, 33)   # weights for 1..5
_CSAT_ESCALATED = (30, 25, 20, 15, 10)


class ComplaintFactory:
    """Build the JSON lines of one complaint and its follow-up updates.

    Parameters
    ----------
    rng
        Randomness for channel, tier, declared type and updates (not the text).
    composer
        Writes the complaint text.
    label_share
        Probability of an agent update carrying the true intent.
    end
        Epoch second where the simulation ends; later updates are dropped.
    """

    def __init__(self, rng: random.Random, composer: TextComposer, label_share: float,
                 end: int, time_text: TimeText) -> None:
        self._rng = rng
        self._composer = composer
        self._label_share = label_share
        self._end = end
        self._tt = time_text

    def build(self, number: int, ts: int, intent: int, *, order: int | None, merchant: str,
              region: str, carrier: str | None, category: str, amount: float,
              keep_order: bool = False) -> list[tuple[int, str, bytes]]:
        """``[(ts, type, line)]``: the complaint first, then its updates in time order.

        ``keep_order`` disables the random loss of the order reference (incident
        complaints keep theirs, so they stay in the incident's carrier slice).
        """
        rng = self._rng
        name = INTENTS[intent]
        text, _ = self._composer.compose(name, category=category, carrier=carrier,
                                         region=region, amount=amount)
        # 5% of complaints arrive without an order reference (hotline, typed wrongly...).
        if order is not None and rng.random() < 0.05 and not keep_order:
            order = None
        channel = rng.choices(_CHANNELS, _CHANNEL_WEIGHTS_DISPUTE if name in _DISPUTES
                              else _CHANNEL_WEIGHTS)[0]
        roll = rng.random()
        if roll < 0.5:
            declared = name
        elif roll < 0.85:
            declared = rng.choice(_CONFUSIONS[name])
        else:
            declared = None
        complaint_id = f"c-{number}"
        event = {
            "type": "complaint", "event_id": f"ev-c-{number}", "ts": self._tt.text(ts),
            "complaint_id": complaint_id,
            "order_id": None if order is None else f"o-{order}",
            "merchant_id": merchant, "region": region,
            "carrier": None if order is None else carrier,
            "channel": channel, "text": text, "declared_type": declared,
            "customer_tier": rng.choices(_TIERS, _TIER_WEIGHTS)[0],
        }
        out = [(ts, "complaint", orjson.dumps(event))]
        updates: list[tuple[int, str | None, str | None, int | None]] = []
        if rng.random() < self._label_share:
            updates.append((ts + rng.randint(600, 10800), name, None, None))
        if rng.random() < 0.6:
            first = ts + int(min(72 * 3600, max(1800, rng.lognormvariate(math.log(8 * 3600), 0.8))))
            if rng.random() < 0.85:
                csat = rng.choices(range(1, 6), _CSAT_RESOLVED)[0] if rng.random() < 0.8 else None
                updates.append((first, None, "resolved", csat))
                if rng.random() < 0.05:
                    reopened = first + rng.randint(2 * 3600, 24 * 3600)
                    updates.append((reopened, None, "reopened", None))
            else:
                updates.append((first, None, "escalated", None))
                csat = rng.choices(range(1, 6), _CSAT_ESCALATED)[0]
                updates.append((first + rng.randint(6 * 3600, 48 * 3600), None, "resolved", csat))
        updates.sort(key=lambda u: u[0])
        for k, (uts, label, status, csat) in enumerate(updates, start=1):
            if uts >= self._end:
                continue
            out.append((uts, "complaint_update", orjson.dumps({
                "type": "complaint_update", "event_id": f"ev-u-{number}-{k}",
                "ts": self._tt.text(uts), "complaint_id": complaint_id,
                "intent": label, "status": status, "csat": csat,
            })))
        return out
