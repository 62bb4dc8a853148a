"""Time: order intensity by minute, the business calendar, and fast timestamp text.

Order arrivals are an inhomogeneous Poisson process whose rate per minute is
``orders_per_day / 1440 x daily profile x weekly profile x promotion multiplier``, all
in China local time. The same curve, convolved with the complaint lag, gives the
expected complaint *exposure* that the incident planner needs.

>>> cfg = SimulationConfig(days=7)
>>> [(e["name"], e["start"], e["kind"]) for e in calendar(cfg)]
[('双11预热', '2026-11-04T20:00:00+08:00', 'promotion'),
 ('订单中心例行维护', '2026-11-05T03:00:00+08:00', 'maintenance'),
 ('周末大促', '2026-11-07T20:00:00+08:00', 'promotion')]
"""

from __future__ import annotations

import dataclasses
import datetime as dt

import numpy as np

from riskwatch.simulator.config import CHINA, SimulationConfig

__all__ = [
    "COMPLAINT_LAG_MEAN",
    "COMPLAINT_LAG_MIN",
    "DAILY_PROFILE",
    "PROMOTION_STRAIN",
    "STRAINED_INTENTS",
    "WEEKLY_PROFILE",
    "TimeText",
    "Window",
    "calendar",
    "complaint_exposure",
    "minute_intensity",
    "windows",
]

CHINA_OFFSET = 8 * 3600

#: Relative order rate by local hour: trough 02:00-07:00, peaks 10-11h and 20-22h.
DAILY_PROFILE = np.array([
    0.55, 0.30, 0.16, 0.10, 0.08, 0.09, 0.16, 0.35, 0.65, 0.95, 1.25, 1.30,
    1.10, 1.05, 1.10, 1.10, 1.05, 1.00, 1.00, 1.15, 1.40, 1.55, 1.45, 1.00,
])
DAILY_PROFILE = DAILY_PROFILE / DAILY_PROFILE.mean()
#: Relative order rate Monday..Sunday (weekend a bit higher), mean 1.
WEEKLY_PROFILE = np.array([0.96, 0.95, 0.96, 0.97, 1.00, 1.09, 1.07])
WEEKLY_PROFILE = WEEKLY_PROFILE / WEEKLY_PROFILE.mean()

#: Complaint lag after the order: COMPLAINT_LAG_MIN + Exponential, mean 6 hours in total.
COMPLAINT_LAG_MIN = 600
COMPLAINT_LAG_MEAN = 6 * 3600
#: Complaints that would land at 01:00-07:00 move to 07:00-10:00 with this probability.
NIGHT_PUSH = 0.7
NIGHT_HOURS = (1, 7)
MORNING_HOURS = (7, 10)


#: Promotion strain: complaints per order placed in a promotion window, relative to a
#: normal night, per carrier, for the logistics intents of :data:`STRAINED_INTENTS`
#: (the same factor every occurrence). Why these values: on Double 11 / 618 nights the
#: franchise-network budget carriers (极兔 J&T, 申通 STO) run out of sorting and
#: last-mile capacity first — backlogs at transfer centres, couriers who cannot keep up
#: with pickups — and their delay / pickup-urge / lost-parcel complaints per order rise
#: by about 1.6-1.8x; the large franchise networks (中通, 圆通, 韵达) and EMS add
#: seasonal capacity and rise a little (1.1x); 顺丰 and 京东物流 run their own fleets and
#: warehouses and hold their normal rate. Other intents (quality, refund, ...) are about
#: the goods, not the parcel, and do not change.
PROMOTION_STRAIN: dict[str, float] = {
    "中通": 1.1, "圆通": 1.1, "韵达": 1.1, "申通": 1.6, "极兔": 1.8,
    "顺丰": 1.0, "邮政EMS": 1.1, "京东物流": 1.0,
}
#: The intents a promotion strains (logistics problems of an overloaded network).
STRAINED_INTENTS: tuple[str, ...] = ("delivery_delay", "pickup_urge", "lost_parcel")


@dataclasses.dataclass(frozen=True)
class Window:
    """One calendar entry; ``start``/``end`` are epoch seconds, ``multiplier`` the order factor."""

    name: str
    kind: str   # "promotion" | "maintenance"
    start: int
    end: int
    multiplier: float = 1.0

    def to_json(self) -> dict[str, str]:
        return {"name": self.name, "start": rfc3339(self.start), "end": rfc3339(self.end),
                "kind": self.kind}


def rfc3339(epoch: int) -> str:
    """Epoch seconds as RFC 3339 in China time, e.g. ``2026-11-02T08:15:03+08:00``."""
    return dt.datetime.fromtimestamp(epoch, CHINA).isoformat()


def _local_midnight(epoch: int) -> int:
    return epoch - (epoch + CHINA_OFFSET) % 86400


def _promotion(day: dt.date, slot: int) -> tuple[str, float]:
    """Name and order multiplier of the promotion night on ``day`` (slot 0 midweek, 1 weekend)."""
    if day.month == 11 and day.day == 11:
        return "双11狂欢夜", 5.0
    if day.month == 11 and day.day < 11:
        return ("双11预热", 4.0) if slot == 0 else ("周末大促", 3.5)
    if day.month == 6 and 18 <= day.day <= 25:
        return ("618大促", 4.5) if day.day == 18 else ("618返场", 3.5)
    return ("周中秒杀", 3.0) if slot == 0 else ("周末大促", 3.5)


def windows(config: SimulationConfig) -> list[Window]:
    """Calendar windows inside the simulated period, sorted by start.

    Promotion nights run 20:00-24:00 local on the 3rd and 6th day of every simulated
    week; a one-hour maintenance of the order system runs 03:00-04:00 on the 4th day.
    Only windows entirely inside ``[start, end)`` are kept.
    """
    start, end = config.start_epoch, config.end_epoch
    first = _local_midnight(start)
    out: list[Window] = []
    n_days = (end - first) // 86400 + 1
    for d in range(n_days):
        midnight = first + d * 86400
        weekday_slot = {2: 0, 5: 1}.get(d % 7)
        if config.promotions and weekday_slot is not None:
            date = dt.datetime.fromtimestamp(midnight, CHINA).date()
            name, mult = _promotion(date, weekday_slot)
            out.append(Window(name, "promotion", midnight + 20 * 3600, midnight + 86400, mult))
        if d % 7 == 3:
            # Planned work: traffic is unaffected; the entry exists so silences can be tested.
            out.append(Window("订单中心例行维护", "maintenance", midnight + 3 * 3600,
                              midnight + 4 * 3600))
    return [w for w in out if w.start >= start and w.end <= end]


def calendar(config: SimulationConfig) -> list[dict[str, str]]:
    """The business calendar: ``[{"name", "start", "end", "kind"}]`` with RFC 3339 times."""
    return [w.to_json() for w in windows(config)]


def minute_intensity(config: SimulationConfig) -> np.ndarray:
    """Expected orders in each minute of the simulation (last minute may be partial)."""
    start, span = config.start_epoch, config.span_seconds
    n = -(-span // 60)
    minute_start = start + 60 * np.arange(n, dtype=np.int64)
    local = minute_start + CHINA_OFFSET
    # Hour profile interpolated linearly between hour midpoints, so there are no steps.
    hour_pos = (local % 86400) / 3600.0 - 0.5
    lo = np.floor(hour_pos).astype(int)
    frac = hour_pos - lo
    daily = DAILY_PROFILE[lo % 24] * (1 - frac) + DAILY_PROFILE[(lo + 1) % 24] * frac
    weekday = (local // 86400 + 3) % 7  # 1970-01-01 was a Thursday
    rate = config.orders_per_day / 1440.0 * daily * WEEKLY_PROFILE[weekday]
    for w in windows(config):
        if w.kind == "promotion":
            rate[(minute_start >= w.start) & (minute_start < w.end)] *= w.multiplier
    tail = span - 60 * (n - 1)
    rate[-1] *= tail / 60.0
    return rate


def complaint_exposure(config: SimulationConfig, intensity: np.ndarray) -> np.ndarray:
    """Expected complaints per minute if every order complained with probability 1.

    The order curve convolved with the complaint-lag distribution, then the night push
    (people do not complain at 03:00, they do it after breakfast) applied per local day.
    """
    n = len(intensity)
    mean_exp = (COMPLAINT_LAG_MEAN - COMPLAINT_LAG_MIN) / 60.0
    lag_min = COMPLAINT_LAG_MIN // 60
    k = np.arange(int(mean_exp * 14) + 1)
    # P(lag in minute m) for the exponential part, shifted by the minimum lag
    survival = np.exp(-np.append(k, k[-1] + 1) / mean_exp)
    kernel = np.concatenate([np.zeros(lag_min), -np.diff(survival)])
    size = n + len(kernel)
    fft_n = 1 << (size - 1).bit_length()
    conv = np.fft.irfft(np.fft.rfft(intensity, fft_n) * np.fft.rfft(kernel, fft_n), fft_n)[:n]
    conv = np.clip(conv, 0.0, None)
    local = config.start_epoch + CHINA_OFFSET + 60 * np.arange(n, dtype=np.int64)
    hour = (local % 86400) // 3600
    day = local // 86400
    day -= day[0]
    night = (hour >= NIGHT_HOURS[0]) & (hour < NIGHT_HOURS[1])
    morning = (hour >= MORNING_HOURS[0]) & (hour < MORNING_HOURS[1])
    moved = np.where(night, conv * NIGHT_PUSH, 0.0)
    per_day = np.bincount(day, weights=moved, minlength=int(day[-1]) + 1)
    minutes_of_morning = (MORNING_HOURS[1] - MORNING_HOURS[0]) * 60
    return conv - moved + np.where(morning, per_day[day] / minutes_of_morning, 0.0)


class TimeText:
    """Fast RFC 3339 text for epoch seconds (China time), about 0.2 us per call.

    ``datetime`` formatting costs ~2 us; a million events need something cheaper, so the
    date prefix is cached per local day and the clock part (with the offset) is a table
    of 86,400 strings. The byte tables are public for the engine's formatting loops.

    >>> tt = TimeText()
    >>> tt.text(1793578503)
    '2026-11-02T08:15:03+08:00'
    >>> tt.day_prefix(tt.local_day(1793578503)) + tt.clock_bytes[8 * 3600 + 15 * 60 + 3]
    b'2026-11-02T08:15:03+08:00'
    """

    def __init__(self) -> None:
        two = [f"{i:02d}" for i in range(60)]
        self.clock = [f"{h}:{m}:{s}+08:00" for h in two[:24] for m in two for s in two]
        self.clock_bytes = [c.encode() for c in self.clock]
        self._days: dict[int, str] = {}

    @staticmethod
    def local_day(epoch: int) -> int:
        """Days since 1970-01-01 in China local time."""
        return (epoch + CHINA_OFFSET) // 86400

    def _day(self, day: int) -> str:
        text = self._days.get(day)
        if text is None:
            date = dt.date(1970, 1, 1) + dt.timedelta(days=day)
            text = self._days[day] = f"{date.isoformat()}T"
        return text

    def day_prefix(self, day: int) -> bytes:
        """``b"2026-11-02T"`` for a local day number."""
        return self._day(day).encode()

    def text(self, epoch: int) -> str:
        local = epoch + CHINA_OFFSET
        return self._day(local // 86400) + self.clock[local % 86400]
