"""The riskwatch exception hierarchy (one tree, like httpx's).

::

    RiskwatchError
    ├── ConfigError          bad settings, flags or files given by the user
    │   └── CalendarError    the --calendar file is not a valid calendar
    ├── InputError           an input file cannot be read at all (a bad *line* is a dead letter)
    ├── BrokerError          the Kafka broker cannot be started or reached
    ├── CheckpointError      a pipeline checkpoint is corrupt or from an incompatible worker
    └── SinkError            a sink failed
        └── SinkBackpressure the sink is overloaded; retry after ``retry_after`` seconds

Bad *events* never raise: they become dead-letter records and processing goes on.
"""

from __future__ import annotations

__all__ = [
    "BrokerError",
    "CalendarError",
    "CheckpointError",
    "ConfigError",
    "InputError",
    "RiskwatchError",
    "SinkBackpressure",
    "SinkError",
]


class RiskwatchError(Exception):
    """Base of every error riskwatch raises on purpose."""


class ConfigError(RiskwatchError):
    """A setting, flag or configuration file is invalid; the message names it."""


class CalendarError(ConfigError):
    """The business calendar file is invalid."""


class InputError(RiskwatchError):
    """An input file cannot be opened or read."""


class BrokerError(RiskwatchError):
    """The Kafka-protocol broker cannot be started or reached."""


class CheckpointError(RiskwatchError):
    """A pipeline checkpoint cannot be used (:mod:`streams.checkpoint`).

    ``corrupt`` is true for a damaged file (skipped: the previous checkpoint is used);
    false for one written by an incompatible worker (start with empty state).
    """

    def __init__(self, message: str, *, corrupt: bool = False) -> None:
        super().__init__(message)
        self.corrupt = corrupt


class SinkError(RiskwatchError):
    """Writing to a sink failed."""


class SinkBackpressure(SinkError):
    """The sink is overloaded; the caller should wait ``retry_after`` seconds and retry."""

    def __init__(self, retry_after: float, message: str = "sink overloaded") -> None:
        super().__init__(f"{message} (retry after {retry_after:.1f}s)")
        self.retry_after = retry_after
