"""The business calendar: promotion nights and maintenance windows.

The file is a JSON list of ``{"name", "start", "end", "kind"}`` with ``kind`` either
``promotion`` (more orders, so more complaints, but *not* a higher complaint rate) or
``maintenance`` (planned work: detection goes on, nobody is paged).

>>> cal = Calendar.from_json(b'[{"name":"D11","start":"2026-11-10T20:00:00+08:00",'
...                          b'"end":"2026-11-11T02:00:00+08:00","kind":"promotion"}]')
>>> cal.kinds_at(1794312000 + 3600)   # 2026-11-10T21:00+08:00
frozenset({'promotion'})
>>> Calendar.from_json(b'[{"name":"x","start":"2026-11-10T20:00:00+08:00",'
...                    b'"end":"2026-11-10T19:00:00+08:00","kind":"promotion"}]')
Traceback (most recent call last):
...
riskwatch.errors.CalendarError: calendar entry 0 ('x'): end is before start
>>> Calendar.from_json(b'[{"name":"\\xff"}]')
Traceback (most recent call last):
...
riskwatch.errors.CalendarError: calendar is not UTF-8 text: byte 0xff at line 1, column 11 (save it as UTF-8)
>>> Calendar.from_json(b'[{"name":"upgrade","start":"2026-11-01T00:00:00+08:00",'
...                    b'"end":"2026-12-15T00:00:00+08:00","kind":"maintenance"}]').warnings
("calendar entry 0 ('upgrade'): a maintenance window of 44 days: nobody is paged for all of it",)
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Literal

import msgspec

from riskwatch.errors import CalendarError
from riskwatch.events import epoch_of

__all__ = ["Calendar", "CalendarEntry"]

#: A maintenance window longer than this is allowed, with a warning: it mutes paging for
#: all of it, and a month-long one is more likely a typo (a month or year) than planned.
LONG_MAINTENANCE_DAYS = 31


class _Entry(msgspec.Struct, frozen=True):
    name: str
    start: str   # RFC 3339 with offset, checked by epoch_of (the events' rule: msgspec's
    end: str     # datetime takes naive times, "+0800" and a space for the "T")
    kind: Literal["promotion", "maintenance"]


@dataclasses.dataclass(frozen=True)
class CalendarEntry:
    name: str
    start: int  # epoch seconds
    end: int
    kind: str


@dataclasses.dataclass(frozen=True)
class Calendar:
    """A list of calendar entries with a lookup by event time."""

    entries: tuple[CalendarEntry, ...] = ()
    #: What is allowed but probably a mistake (a very long maintenance window), for the
    #: command that loaded the file to show; not part of the calendar's value.
    warnings: tuple[str, ...] = dataclasses.field(default=(), compare=False)

    @classmethod
    def from_json(cls, raw: bytes) -> Calendar:
        try:
            raw.decode("utf-8")   # msgspec raised a bare UnicodeDecodeError traceback
        except UnicodeDecodeError as exc:
            line = raw.count(b"\n", 0, exc.start) + 1
            column = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
            raise CalendarError(f"calendar is not UTF-8 text: byte 0x{raw[exc.start]:02x} at line "
                                f"{line}, column {column} (save it as UTF-8)") from None
        try:
            items = msgspec.json.decode(raw, type=list[_Entry])
        except msgspec.ValidationError as exc:
            raise CalendarError(f"invalid calendar: {exc} (expected a JSON list of "
                                '{"name","start","end","kind"} with kind promotion|maintenance)') from None
        except msgspec.DecodeError as exc:
            raise CalendarError(f"calendar is not valid JSON: {exc}") from None
        entries, warnings = [], []
        for i, e in enumerate(items):
            try:
                start, end = epoch_of(e.start), epoch_of(e.end)
            except ValueError as exc:
                raise CalendarError(f"calendar entry {i} ({e.name!r}): {exc}") from None
            if end < start:
                raise CalendarError(f"calendar entry {i} ({e.name!r}): end is before start")
            if end == start:   # covers no second (end is exclusive): surely a typo
                raise CalendarError(f"calendar entry {i} ({e.name!r}): end equals start, an "
                                    "empty window")
            days = (end - start) / 86400
            if e.kind == "maintenance" and days > LONG_MAINTENANCE_DAYS:
                warnings.append(f"calendar entry {i} ({e.name!r}): a maintenance window of "
                                f"{days:.0f} days: nobody is paged for all of it")
            entries.append(CalendarEntry(e.name, start, end, e.kind))
        return cls(tuple(sorted(entries, key=lambda e: e.start)), tuple(warnings))

    @classmethod
    def load(cls, path: str | Path) -> Calendar:
        try:
            raw = Path(path).read_bytes()
        except OSError as exc:
            raise CalendarError(f"cannot read calendar file {path}: {exc.strerror}") from None
        return cls.from_json(raw)

    def kinds_at(self, epoch: int) -> frozenset[str]:
        """Kinds of the entries covering ``epoch`` (start inclusive, end exclusive)."""
        return frozenset(e.kind for e in self.entries if e.start <= epoch < e.end)

    def in_maintenance(self, epoch: int) -> bool:
        return any(e.kind == "maintenance" and e.start <= epoch < e.end for e in self.entries)

    def promotions(self) -> list[CalendarEntry]:
        return [e for e in self.entries if e.kind == "promotion"]
