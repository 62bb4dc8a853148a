"""Settings: one frozen, validated object built at the edge (CLI/env) and passed down.

Only :func:`from_env` reads environment variables (prefix ``RISKWATCH_``); everything
below the CLI receives a :class:`PipelineSettings` explicitly.

>>> s = PipelineSettings(bucket_seconds=60)
>>> s.bucket_seconds, s.allowed_lateness_seconds
(60, 600)
>>> PipelineSettings(bucket_seconds=7)
Traceback (most recent call last):
...
riskwatch.errors.ConfigError: bucket_seconds must divide 3600 evenly (got 7)
"""

from __future__ import annotations

import dataclasses
import os

from riskwatch.errors import ConfigError

__all__ = ["PipelineSettings", "from_env"]

#: Slices aggregated per bucket; each is a tuple of dimension names ('' = global).
DEFAULT_SLICES: tuple[tuple[str, ...], ...] = (
    (),
    ("region",),
    ("merchant_id",),
    ("carrier",),
    ("category",),
    ("intent",),
    ("region", "carrier"),
    ("merchant_id", "intent"),
    # Not in the first design's list, but they give incidents their right scope: a
    # nationwide carrier damage wave is carrier x damaged, a hub's lost parcels region x
    # lost_parcel. Only complaints count in them (their exposure is carrier's/region's).
    ("carrier", "intent"),
    ("region", "intent"),
)


@dataclasses.dataclass(frozen=True, kw_only=True)
class PipelineSettings:
    """Everything the per-event code needs; identical for live and replay runs.

    Parameters
    ----------
    bucket_seconds
        Event-time bucket size. Must divide an hour so buckets align with hours/days.
    allowed_lateness_seconds
        A bucket closes when the watermark passes ``bucket_end + allowed_lateness``.
        Events for an already closed bucket are *late*: counted, stored, not aggregated.
    exposure_lag_seconds
        Mean delay between an order and a complaint about it. Order exposure is an
        exponentially weighted sum of past orders with this mean lag, so a burst of
        orders (a promotion night) raises expected complaints over the following hours.
    dedup_window_seconds
        How long an ``event_id`` is remembered for duplicate detection.
    idle_source_seconds
        Live only: a partition silent for this long (wall clock) stops holding back
        the watermark, so one idle topic cannot freeze detection.
    utc_offset_hours
        Local time for daily/weekly seasonality (China: +8).
    promotion_learning
        Learn each recurring promotion's per-slice effect on complaints and expect it
        the next time (:mod:`detectors.promotion_effects`); off, promotions are
        handled only by exposure and the market factor, with no cautious lift.
    promotion_tail_seconds
        A promotion's effect window is its calendar window plus this tail (complaints
        about its orders arrive hours later); learned and applied inside it.
    promotion_cold_lift
        Caution during a promotion's window for a slice without a learned factor (a
        promotion never seen, a slice with no complaints last time): it pages only on a
        rise over this multiple of its expected complaints (times the CUSUM's own).
    max_time_jump_seconds
        An event more than this ahead of the stream (the latest event time seen; live,
        also the wall clock) is bad input: dead-lettered, not processed. One mistyped
        year (``2099``) would otherwise close decades of empty buckets, stalling the
        pipeline, and make every later event late. Live, events up to the wall clock
        plus this are always accepted, so a stream resuming after an outage is fine; a
        replayed file with a longer gap needs ``0`` (no limit).
    pseudonym_key
        HMAC key for pseudonymised identifiers. Set it in production (env
        ``RISKWATCH_PSEUDONYM_KEY``); the default is only for demos and tests.
    """

    bucket_seconds: int = 300
    allowed_lateness_seconds: int = 600
    exposure_lag_seconds: int = 6 * 3600
    dedup_window_seconds: int = 2 * 86400
    idle_source_seconds: float = 30.0
    utc_offset_hours: int = 8
    promotion_learning: bool = True
    promotion_tail_seconds: int = 86400
    promotion_cold_lift: float = 1.5
    max_time_jump_seconds: int = 3 * 86400
    pseudonym_key: bytes = b"riskwatch-demo-key-change-me"
    slices: tuple[tuple[str, ...], ...] = DEFAULT_SLICES

    def __post_init__(self) -> None:
        if self.bucket_seconds <= 0 or 3600 % self.bucket_seconds:
            raise ConfigError(
                f"bucket_seconds must divide 3600 evenly (got {self.bucket_seconds})")
        if self.allowed_lateness_seconds < 0:
            raise ConfigError(
                f"allowed_lateness_seconds must be >= 0 (got {self.allowed_lateness_seconds})")
        if self.exposure_lag_seconds < self.bucket_seconds:
            raise ConfigError("exposure_lag_seconds must be at least one bucket "
                              f"(got {self.exposure_lag_seconds})")
        if self.dedup_window_seconds < self.allowed_lateness_seconds:
            raise ConfigError(f"allowed_lateness_seconds ({self.allowed_lateness_seconds}) must "
                              f"not exceed dedup_window_seconds ({self.dedup_window_seconds})")
        if not 0 <= self.promotion_tail_seconds <= 7 * 86400:
            raise ConfigError("promotion_tail_seconds must be between 0 and 604800 "
                              f"(got {self.promotion_tail_seconds})")
        if not 1.0 <= self.promotion_cold_lift <= 10.0:
            raise ConfigError(f"promotion_cold_lift must be between 1 and 10 (got {self.promotion_cold_lift})")
        if self.max_time_jump_seconds < 0:
            raise ConfigError(
                f"max_time_jump_seconds must be >= 0 (got {self.max_time_jump_seconds})")
        if not -12 <= self.utc_offset_hours <= 14:
            raise ConfigError(f"utc_offset_hours out of range (got {self.utc_offset_hours})")


def _int_env(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be an integer (got {raw!r})") from None


def from_env(**overrides: object) -> PipelineSettings:
    """Build settings from ``RISKWATCH_*`` environment variables plus explicit overrides.

    An override (a flag) wins over its variable, which is then not read at all: a bad
    value left in the environment does not fail a command that sets the flag.
    """
    given = {k for k, v in overrides.items() if v is not None}
    values: dict[str, object] = {}
    for name, env, default in (("bucket_seconds", "RISKWATCH_BUCKET_SECONDS", 300),
                               ("allowed_lateness_seconds", "RISKWATCH_ALLOWED_LATENESS_SECONDS", 600),
                               ("max_time_jump_seconds", "RISKWATCH_MAX_TIME_JUMP_SECONDS", 3 * 86400)):
        if name not in given:
            values[name] = _int_env(env, default)
    learning = os.environ.get("RISKWATCH_PROMOTION_LEARNING")
    if learning and "promotion_learning" not in given:
        if learning.lower() not in ("0", "1", "true", "false", "on", "off"):
            raise ConfigError(f"RISKWATCH_PROMOTION_LEARNING must be on or off (got {learning!r})")
        values["promotion_learning"] = learning.lower() in ("1", "true", "on")
    key = os.environ.get("RISKWATCH_PSEUDONYM_KEY")
    if key:
        values["pseudonym_key"] = key.encode()
    values.update({k: v for k, v in overrides.items() if v is not None})
    return PipelineSettings(**values)  # type: ignore[arg-type]
