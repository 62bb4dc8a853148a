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
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Literal

import msgspec

from riskwatch.errors import CalendarError
from riskwatch.events import epoch_of

__all__ = ["Calendar", "CalendarEntry"]


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

    @classmethod
    def from_json(cls, raw: bytes) -> Calendar:
        try:
            items = msgspec.json.decode(raw, type=list[_Entry])
        except msgspec.ValidationError as exc:
            raise CalendarError(f"invalid calendar: {exc} (expected a JSON list of "
                                '{"name","start","end","kind"} with kind promotion|maintenance)') from None
        except msgspec.DecodeError as exc:
            raise CalendarError(f"calendar is not valid JSON: {exc}") from None
        entries = []
        for i, e in enumerate(items):
            try:
                start, end = epoch_of(e.start), epoch_of(e.end)
            except ValueError as exc:
                raise CalendarError(f"calendar entry {i} ({e.name!r}): {exc}") from None
            if end < start:
                raise CalendarError(f"calendar entry {i} ({e.name!r}): end is before start")
            entries.append(CalendarEntry(e.name, start, end, e.kind))
        return cls(tuple(sorted(entries, key=lambda e: e.start)))

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
