"""The simulator's one configuration object, validated on construction.

>>> SimulationConfig(days=1.0, orders_per_day=5000).merchants
2000
>>> SimulationConfig(pii_share=1.5)
Traceback (most recent call last):
...
riskwatch.errors.ConfigError: pii_share must be between 0 and 1 (got 1.5)
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
from typing import Any

from riskwatch.errors import ConfigError

__all__ = ["CHINA", "SimulationConfig"]

#: China Standard Time; every simulated timestamp carries this offset.
CHINA = dt.timezone(dt.timedelta(hours=8))

# Upper bounds that keep a typo (days=7000) from becoming a run that never ends.
_MAX_DAYS = 400.0
_MAX_ORDERS_PER_DAY = 50_000_000
# Below this a day has about no complaint and an hour-long run a line or none: the file
# came out empty or nearly so, with no word said. A hundred is the smallest market the
# simulator sizes its incidents for (and warns about the ones it cannot carry).
_MIN_ORDERS_PER_DAY = 100
_MAX_MERCHANTS = 1_000_000
_MAX_INCIDENTS = 500
# Event times are UNIX seconds shown in China time: before 1970 or past the year 9998
# (9999 would be the last year a China-time datetime can show) the simulator stops with an
# OverflowError or "year out of range" traceback.
_FIRST_START = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)
_LAST_END = dt.datetime(9999, 1, 1, tzinfo=dt.timezone.utc)


@dataclasses.dataclass(frozen=True, kw_only=True)
class SimulationConfig:
    """What to simulate. Every field is validated; errors name the field.

    Parameters
    ----------
    start
        First instant simulated (timezone-aware). Default: Monday 2026-11-02 00:00 China time.
    days
        Length of the simulation in days (fractions allowed).
    orders_per_day
        Average orders per day before promotions; hours and weekdays follow seasonality.
        At least 100 (fewer make an empty or nearly empty stream).
    merchants
        Number of shops (ids ``m0001``...), with Zipf-like sizes.
    seed
        Seed of every random draw; the same config gives byte-identical output.
    incidents
        How many incidents to inject (ground truth in the manifest); 0 allowed.
    surge_incidents
        How many ``new_shop_order_surge`` incidents to inject on top (a young shop's
        orders jump 10-50x: brushing); 0 allowed. They never change the other events.
    mix_incidents
        How many ``intent_mix_shift`` incidents to inject on top (a category's complaints
        turn to one intent, their total unchanged); 0 allowed. They change only the
        complaints they turn (text and agent label), never the other events.
    promotions
        Whether the calendar has promotion nights (3-5x orders, same complaint rate per order
        on average).
    promotion_strain
        How hard promotion nights strain logistics, as a scale of
        ``riskwatch.simulator.seasonality.PROMOTION_STRAIN``: at 1.0 (default) orders
        placed in a promotion window see budget carriers' delay / pickup / lost-parcel
        complaints per order rise 1.6-1.8x, others ~1.1x, the same every occurrence;
        ``s`` scales the rise (a factor ``f`` becomes ``1 + s (f - 1)``: 2.0 is a
        爆仓 night, 极兔 2.6x); 0 switches it off. Listed in the manifest (not an
        incident). Adds complaints only: every other line is byte-identical without it.
    label_share
        Share of complaints that get an agent's ``complaint_update`` with the true intent.
    pii_share
        Share of complaint texts with embedded personal data.
    malformed_share, duplicate_share, late_share
        Shares of emitted lines that are malformed, exact re-sends, or 2-6 hours late.
    statuses
        Whether ``order_status`` events (shipped, delivered, ...) are emitted.
    """

    start: dt.datetime = dt.datetime(2026, 11, 2, tzinfo=CHINA)
    days: float = 7.0
    orders_per_day: int = 50_000
    merchants: int = 2000
    seed: int = 7
    incidents: int = 12
    surge_incidents: int = 2
    mix_incidents: int = 2
    promotions: bool = True
    promotion_strain: float = 1.0
    label_share: float = 0.2
    pii_share: float = 0.3
    malformed_share: float = 0.001
    duplicate_share: float = 0.002
    late_share: float = 0.001
    statuses: bool = True

    def __post_init__(self) -> None:
        if not isinstance(self.start, dt.datetime):
            raise ConfigError(f"start must be a datetime (got {self.start!r})")
        if self.start.tzinfo is None or self.start.utcoffset() is None:
            raise ConfigError(f"start must be timezone-aware, e.g. +08:00 (got {self.start!r})")
        _number("days", self.days, low=1 / 24, high=_MAX_DAYS)
        if self.start < _FIRST_START:
            raise ConfigError(f"start {self.start.isoformat()} is before 1970-01-01T00:00:00Z "
                              "(event times are UNIX seconds)")
        if self.start > _LAST_END - dt.timedelta(days=self.days):   # start + days could overflow
            raise ConfigError(f"start {self.start.isoformat()} plus {self.days:g} days ends after "
                              "9999-01-01T00:00:00Z (a simulation must end in the year 9998 "
                              "at the latest)")
        _integer("orders_per_day", self.orders_per_day, low=_MIN_ORDERS_PER_DAY,
                 high=_MAX_ORDERS_PER_DAY)
        _integer("merchants", self.merchants, low=1, high=_MAX_MERCHANTS)
        _integer("seed", self.seed, low=0, high=2**63 - 1)
        _integer("incidents", self.incidents, low=0, high=_MAX_INCIDENTS)
        _integer("surge_incidents", self.surge_incidents, low=0, high=_MAX_INCIDENTS)
        _integer("mix_incidents", self.mix_incidents, low=0, high=_MAX_INCIDENTS)
        _number("promotion_strain", self.promotion_strain, low=0.0, high=5.0)
        for name in ("promotions", "statuses"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(f"{name} must be true or false (got {getattr(self, name)!r})")
        for name in ("label_share", "pii_share"):
            _share(name, getattr(self, name), high=1.0)
        # Above a half, "bad input" would be most of the stream: surely a mistake.
        for name in ("malformed_share", "duplicate_share", "late_share"):
            _share(name, getattr(self, name), high=0.5)

    @property
    def start_epoch(self) -> int:
        """``start`` as whole UNIX seconds."""
        return math.floor(self.start.timestamp())

    @property
    def span_seconds(self) -> int:
        """Simulated length in whole seconds."""
        return int(round(self.days * 86400))

    @property
    def end_epoch(self) -> int:
        """First second after the simulation (events have ``ts < end_epoch``)."""
        return self.start_epoch + self.span_seconds

    def to_json(self) -> dict[str, Any]:
        """All fields, JSON-safe (``start`` as RFC 3339 in China time)."""
        out = dataclasses.asdict(self)
        out["start"] = self.start.astimezone(CHINA).isoformat()
        return out


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _number(name: str, value: object, *, low: float, high: float) -> None:
    if not _is_number(value) or not math.isfinite(value):
        raise ConfigError(f"{name} must be a number (got {value!r})")
    if not low <= value <= high:
        raise ConfigError(f"{name} must be between {low:g} and {high:g} (got {value!r})")


def _integer(name: str, value: object, *, low: int, high: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool):
        raise ConfigError(f"{name} must be an integer (got {value!r})")
    if not low <= value <= high:
        raise ConfigError(f"{name} must be between {low} and {high} (got {value!r})")


def _share(name: str, value: object, *, high: float) -> None:
    if not _is_number(value) or not math.isfinite(value):
        raise ConfigError(f"{name} must be a number between 0 and {high:g} (got {value!r})")
    if not 0.0 <= value <= high:
        raise ConfigError(f"{name} must be between 0 and {high:g} (got {value!r})")
