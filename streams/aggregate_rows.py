"""The per-bucket slice aggregates of a pipeline's output, kept as columns.

A bucket close emits one aggregate row per active slice: ~300 per bucket on a simulator
week, ~10,000 on a large platform.  They are kept as one list per column (a column block,
``sinks.base``), so that a columnar sink (the ClickHouse server sink) inserts them
without a dict per row (``Sink.add_records``); everything else sees a sequence of
dicts, the same dicts, keys in the same order, as the pipeline emitted before: iterating,
indexing, ``len`` and ``==`` against a list of dicts work as for a list.

Examples
--------
>>> rows = AggregateRows()
>>> rows.add("2026-11-02T08:00:00+08:00", "2026-11-02T08:05:00+08:00", "region=广东",
...          {"region": "广东"}, 40, 2, 38.5, 1.2, 0.4, {"refund": 2}, 0)
>>> len(rows), rows[0]["slice"], rows.columns["orders"]
(1, 'region=广东', [40])
>>> rows == [dict(rows[0])]
True
>>> rows.append({"slice": "all"})
Traceback (most recent call last):
ValueError: an aggregate row has exactly the keys bucket_start, bucket_end, slice, dimensions, orders, complaints, exposure, expected, score, intents, sensitive (got slice)
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

__all__ = ["AggregateRows", "COLUMNS", "slice_name"]

#: The keys of an aggregate row, in the order its dicts (and JSON lines) have them.
COLUMNS = ("bucket_start", "bucket_end", "slice", "dimensions", "orders", "complaints",
           "exposure", "expected", "score", "intents", "sensitive")
_KEYS = frozenset(COLUMNS)


@functools.lru_cache(maxsize=1 << 18)
def slice_name(kinds: tuple[str, ...], values: tuple[Any, ...]) -> str:
    """The ``slice`` of an aggregate row: ``kind=value`` pairs joined by ``|``; ``"all"``.

    One string object per slice, however many rows it has (memoised; ~100 B each, 2^18
    at most): a sink hashing or encoding it per row (the ClickHouse server sink's
    per-batch string and slice caches) then finds its hash already computed.

    >>> slice_name(("region", "carrier"), ("广东", "中通")), slice_name((), ())
    ('region=广东|carrier=中通', 'all')
    """
    return "|".join(f"{k}={v}" for k, v in zip(kinds, values)) or "all"


class AggregateRows(Sequence):
    """Aggregate rows as columns; a read-only sequence of row dicts to everyone else."""

    __slots__ = ("columns", "_lists")

    def __init__(self, rows: Iterable[dict[str, Any]] = ()) -> None:
        self._lists = tuple([] for _ in COLUMNS)
        #: Column name -> values: the rows as a column block (``sinks.base``).
        self.columns: dict[str, list[Any]] = dict(zip(COLUMNS, self._lists))
        self.extend(rows)

    def add(self, *values: Any) -> None:
        """Append one row given as its values in :data:`COLUMNS` order."""
        for column, value in zip(self._lists, values, strict=True):
            column.append(value)

    def append(self, row: dict[str, Any]) -> None:
        """Append one row dict (exactly the keys of :data:`COLUMNS`)."""
        if row.keys() != _KEYS:
            raise ValueError("an aggregate row has exactly the keys " + ", ".join(COLUMNS)
                             + " (got " + ", ".join(row) + ")")
        self.add(*map(row.__getitem__, COLUMNS))

    def extend(self, rows: Iterable[dict[str, Any]]) -> None:
        if isinstance(rows, AggregateRows):
            for mine, theirs in zip(self._lists, rows._lists):
                mine.extend(theirs)
            return
        for row in rows:
            self.append(row)

    def __len__(self) -> int:
        return len(self._lists[2])

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return (dict(zip(COLUMNS, values)) for values in zip(*self._lists))

    def __getitem__(self, index: Any) -> Any:
        if isinstance(index, slice):
            return [dict(zip(COLUMNS, values))
                    for values in zip(*(column[index] for column in self._lists))]
        return dict(zip(COLUMNS, (column[index] for column in self._lists)))

    def __eq__(self, other: object) -> bool:
        if isinstance(other, AggregateRows):
            return self.columns == other.columns
        if isinstance(other, list):
            return len(other) == len(self) and all(a == b for a, b in zip(self, other))
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]  # mutable, like a list

    def __repr__(self) -> str:
        return f"AggregateRows({len(self)} rows)"

    def __getstate__(self) -> tuple[list[Any], ...]:  # pickled in checkpoints
        return self._lists

    def __setstate__(self, lists: tuple[list[Any], ...]) -> None:
        self._lists = lists
        self.columns = dict(zip(COLUMNS, lists))
