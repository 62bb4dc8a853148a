"""Intent-mix incidents: a slice's complaints turn to one intent, their total unchanged.

Kind ``intent_mix_shift``: for three to nine daytime hours the complaints of one
product category turn to ``delivery_delay`` (the category's goods stuck at a shared
warehouse: pre-sale stock that did not come). ``quality`` (a bad batch sold by many
shops) was tried and dropped: capped at 1.6x nationwide it reaches only 2.5x in the
category, which at ~10 complaints an hour the detector saw in one of four weeks.
Each normal complaint of the category written in the window keeps its intent with
probability ``1 - swap`` and becomes the target intent otherwise, so the target's
share rises from ``p`` to ``p + swap * (1 - p)`` (0.4-0.55 more: 2.5-4x) while the
category's complaint total stays what it was (1.0x).

Why a category, and why this intent: the complaint-rate detector watches intents per
region, carrier and shop, never per category, and the category's total does not move.
The turned complaints spread over every shop, region and carrier of the category, and
the shift is capped so that nationwide they lift the intent by at most 1.6x (rates
below ~2x stay under the complaint-rate CUSUMs). So only the intent mix should see it;
the manifest says so: ``"metrics": ["intent_mix"]``.

Planned from the seed alone (random stream ``[seed, 31]``), kept an hour clear of the
complaint incidents; a swapped complaint is written by a composer of its own, after the
main one wrote (and dropped) the original text, so every other line of a seed stays
byte-identical with or without these incidents.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from riskwatch.events import INTENTS
from riskwatch.simulator.config import SimulationConfig
from riskwatch.simulator.seasonality import CHINA_OFFSET, rfc3339
from riskwatch.simulator.world import (BASE_COMPLAINT_RATE, CARRIER_FACTOR, CATEGORY_FACTOR,
                                       CATEGORY_NAMES, INTENT_MIX, World)

__all__ = ["MIX_KIND", "MixShift", "plan_mix_shifts"]

MIX_KIND = "intent_mix_shift"
_TARGETS = ("delivery_delay",)
_SHIFT = (0.40, 0.55)          # added share of the target intent
_MAX_NATIONWIDE = 1.6          # the intent nationwide, at most this multiple
_HOURS = (3.0, 9.0)
_START_HOURS = (7, 15)         # local start hour: categories are busy in the daytime
_BUSIEST = 3                   # categories drawn among the busiest by complaints
_STEP = 300
#: Expected complaints of the category in the window, at least: a mix is a share, and
#: a share of a dozen complaints says little (the shift must be visible to be truth).
_MIN_COMPLAINTS = 35.0


@dataclasses.dataclass(frozen=True, eq=False)
class MixShift:
    """One planned shift: complaints of ``category`` in [start, end) may turn to ``intent``."""

    id: str
    start: int
    end: int
    category: int
    intent: str
    swap: float                 # probability that a complaint of another intent turns
    normal_share: float         # the target's usual share in the category
    normal_complaints: float    # expected complaints of the category in the window
    kind: str = MIX_KIND

    @property
    def dimensions(self) -> dict[str, str]:
        return {"category": CATEGORY_NAMES[self.category]}

    @property
    def intent_index(self) -> int:
        return INTENTS.index(self.intent)

    def to_json(self) -> dict:
        p, n = self.normal_share, self.normal_complaints
        shifted = p + self.swap * (1.0 - p)
        return {
            "id": self.id, "kind": self.kind, "dimensions": self.dimensions,
            "intent": self.intent, "metrics": ["intent_mix"],
            # The turned complaints lift the intent's rate everywhere a little (a carrier
            # x delivery_delay, a big shop of the category): such a complaint-rate page
            # is a side effect of this incident, not a false one (riskwatch evaluate).
            "tolerated_metrics": ["complaint_rate"],
            "start": rfc3339(self.start), "end": rfc3339(self.end),
            # The target intent's share multiple; the total stays 1.0x.
            "multiplier": round(shifted / p, 2), "total_multiplier": 1.0,
            "share_before": round(p, 3), "share_during": round(shifted, 3),
            "expected_extra_complaints": int(round(self.swap * (1.0 - p) * n)),
            "expected_normal_complaints": round(p * n, 2),
            "expected_slice_complaints": round(n, 1),
            "extra_by_intent": {self.intent: int(round(self.swap * (1.0 - p) * n))},
        }

    def turn(self, ts: int, intent: int, category: int, roll: float) -> int | None:
        """The new intent of a complaint (``roll`` uniform in [0, 1)), or None."""
        if (category == self.category and self.start <= ts < self.end
                and intent != self.intent_index and roll < self.swap):
            return self.intent_index
        return None


def category_mix(world: World, t: int) -> tuple[np.ndarray, np.ndarray]:
    """Expected complaints per order of the market by category, and each category's
    intent shares (``[category, intent]``), at epoch ``t``."""
    x = world.open_weights(t) * world.quality * BASE_COMPLAINT_RATE
    mass = world._carrier_category_mass(x) * CARRIER_FACTOR[:, None] * CATEGORY_FACTOR[None, :]
    by_intent = np.einsum("ck,kci->ki", mass, INTENT_MIX)
    rates = by_intent.sum(axis=1)
    return rates, by_intent / rates[:, None]


def plan_mix_shifts(config: SimulationConfig, world: World, exposure: np.ndarray,
                    busy: list[tuple[int, int]], first_number: int) -> list[MixShift]:
    """``config.mix_incidents`` shifts, deterministic for the seed.

    ``exposure`` is the complaint exposure per simulated minute; ``busy`` the (start,
    end) of the complaint incidents (kept an hour clear). Shifts start after the first
    (learning) day and end two hours before the simulation does.
    """
    n = config.mix_incidents
    if n == 0:
        return []
    rng = np.random.default_rng([config.seed, 31])
    start, end = config.start_epoch, config.end_epoch
    lo = start + min(86400, (end - start) // 3)
    hi = end - min(2 * 3600, (end - lo) // 6)
    rates, shares = category_mix(world, lo)
    busiest = np.argsort(-rates)[:_BUSIEST]
    out: list[MixShift] = []
    placed = list(busy)
    for i in range(n):
        for _ in range(200):
            hours = math.exp(rng.uniform(math.log(_HOURS[0]), math.log(_HOURS[1])))
            duration = int(hours * 3600) // _STEP * _STEP
            day = int(rng.integers((lo + CHINA_OFFSET) // 86400, (hi + CHINA_OFFSET) // 86400 + 1))
            t0 = (day * 86400 - CHINA_OFFSET
                  + int(rng.integers(_START_HOURS[0] * 3600, _START_HOURS[1] * 3600)))
            t0 = -(-t0 // _STEP) * _STEP
            # Weighted by volume squared: a shift is only visible with tens of complaints.
            weight = rates[busiest] ** 2
            category = int(rng.choice(busiest, p=weight / weight.sum()))
            intent = str(rng.choice(_TARGETS))
            shift = float(rng.uniform(*_SHIFT))
            if t0 < lo or t0 + duration > hi:
                continue
            # Nationwide, the turned complaints lift the intent by at most _MAX_NATIONWIDE.
            k = INTENTS.index(intent)
            nationwide = float(rates @ shares[:, k])
            shift = min(shift, (_MAX_NATIONWIDE - 1.0) * nationwide / float(rates[category]))
            if (shares[category, k] + shift) / shares[category, k] < 2.5:
                continue
            m0, m1 = (t0 - start) // 60, (t0 + duration - start) // 60
            if float(exposure[m0:m1].sum()) * float(rates[category]) < _MIN_COMPLAINTS:
                continue   # too few complaints to tell a mix from chance
            if any(t0 < e + 3600 and s < t0 + duration + 3600 for s, e in placed):
                continue
            break
        else:
            continue
        p = float(shares[category, INTENTS.index(intent)])
        normal = float(exposure[m0:m1].sum()) * float(rates[category])
        placed.append((t0, t0 + duration))
        out.append(MixShift(f"inc-{first_number + i:02d}", t0, t0 + duration, category, intent,
                            swap=float(shift / (1.0 - p)), normal_share=p, normal_complaints=normal))
    return out
