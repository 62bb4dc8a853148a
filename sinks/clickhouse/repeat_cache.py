"""Encode a column's value once per row key while it repeats, across batches (bounded).

An aggregate row is a slice's figures for one bucket, and the same slices come back in
every bucket (a simulator week: 99 % of the rows are of a slice seen before; a platform
with ~100k active slices sends each one every 5 minutes).  A slice's ``dimensions`` map
never changes, yet encoding it (JSON text on servers without ``Map``, a ``{bytes: ...}``
dict on newer ones) was the biggest per-row cost of building an aggregates insert.
:class:`RepeatCache` keeps, per row key (the ``slice``), the last value seen and its
encoding, and hands the encoding out again while the value is *equal* to that one: one
dict lookup and one comparison per row, all at C speed, instead of an encoder call and a
new bytes object.

What is sent for a hit is the encoding of an *equal* earlier value (``==``): for the maps
of these tables (str keys, str or int values) that is the same value, and the same bytes
on the wire whenever equal maps list their keys in the same order (the pipeline builds a
slice's maps in one fixed order).  Values are stored as shallow copies taken when they
are encoded, so a caller that changes a map after handing it over cannot make the cache
send a stale encoding; a value that cannot be copied safely (anything but ``None``,
``str``, ``bytes``, numbers and flat dicts of those) is encoded every time.

Memory is bounded: when a batch would take the cache past ``limit`` keys, the cache is
emptied first (then refilled by that batch, up to ``limit`` keys).  An entry of a
``dimensions`` map costs ~360 bytes (the slice string, a copy of the map, its JSON;
measured with tracemalloc over 100k slices of 1-3 dimensions), ~47 MB at the default
131,072 keys; a platform with more slices per bucket than ``limit`` only loses the
cache's gain (each bucket refills it), never correctness.

Examples
--------
>>> import orjson
>>> encodes = []
>>> def to_json(values):
...     encodes.append(len(values))
...     return [orjson.dumps(v) for v in values]
>>> cache = RepeatCache(to_json, limit=100)
>>> cache(["a", "b"], [{"region": "广东"}, {}])
[b'{"region":"\\xe5\\xb9\\xbf\\xe4\\xb8\\x9c"}', b'{}']
>>> cache(["b", "a", "b"], [{}, {"region": "广东"}, {"refund": 1}])  # only the new value
[b'{}', b'{"region":"\\xe5\\xb9\\xbf\\xe4\\xb8\\x9c"}', b'{"refund":1}']
>>> encodes, len(cache)
([2, 1], 2)
"""

from __future__ import annotations

import itertools
import operator
from collections.abc import Callable
from typing import Any

__all__ = ["RepeatCache", "DEFAULT_LIMIT"]

#: Keys kept by default: above the ~100k slices a large platform has per bucket.
DEFAULT_LIMIT = 1 << 17

_MISSING = object()  # equal to nothing: a key not in the cache
_NOT_CACHED = (_MISSING, None)
_last, _encoded = operator.itemgetter(0), operator.itemgetter(1)
_SCALARS = frozenset({str, bytes, int, float, type(None)})


def _snapshot(value: Any) -> Any:
    """A copy of ``value`` that later changes to ``value`` cannot reach, or ``_MISSING``."""
    if type(value) is dict:
        return value.copy() if set(map(type, value.values())) <= _SCALARS else _MISSING
    return value if type(value) in _SCALARS else _MISSING


class RepeatCache:
    """``keys, values -> encoded values``: ``encode`` called only for values that changed.

    Parameters
    ----------
    encode
        Encodes a list of values (a column converter of ``server_sink``).
    limit
        Most keys kept; the cache is emptied before a batch would exceed it.
    """

    def __init__(self, encode: Callable[[list[Any]], list[Any]], *,
                 limit: int = DEFAULT_LIMIT) -> None:
        if limit < 1:
            raise ValueError(f"limit must be >= 1 (got {limit})")
        self.encode = encode
        self.limit = limit
        self._entries: dict[Any, tuple[Any, Any]] = {}  # key -> (copy of value, encoding)

    def __len__(self) -> int:
        return len(self._entries)

    def clear(self) -> None:
        self._entries.clear()

    def __call__(self, keys: list[Any], values: list[Any]) -> list[Any]:
        """The encodings of ``values``, row ``i`` belonging to ``keys[i]``."""
        try:
            if not self._entries:  # a cold cache: every row is new
                first = dict(zip(reversed(keys), range(len(keys) - 1, -1, -1)))
                return self._learn(first, values, self.encode(values))
            pairs = list(map(self._entries.get, keys, itertools.repeat(_NOT_CACHED)))
            last = list(map(_last, pairs))
            if last == values:  # every row repeats its key's cached value: no encoding
                return list(map(_encoded, pairs))
            same = list(map(operator.eq, last, values))
        except (TypeError, ValueError):  # an unhashable key, a value without a plain ==
            return self.encode(values)
        changed = list(itertools.compress(range(len(values)), map(operator.not_, same)))
        changed_keys = list(map(keys.__getitem__, changed))
        first = dict(zip(reversed(changed_keys), reversed(changed)))  # key -> first row
        if 2 * len(changed) > len(values):  # mostly new keys: encoding all costs less
            out = self.encode(values)
        else:
            out = self._encode_changed(pairs, values, changed, changed_keys, first)
        return self._learn(first, values, out)

    def _learn(self, first: dict[Any, int], values: list[Any], out: list[Any]) -> list[Any]:
        """Keep each key's value of row ``first[key]`` and its encoding ``out[row]``."""
        entries, limit = self._entries, self.limit
        if len(entries) + len(first) > limit:
            entries.clear()
        for key, i in first.items():  # each key keeps its first changed row's value
            snapshot = _snapshot(values[i])
            if snapshot is _MISSING:  # not safely comparable later: never a hit
                entries.pop(key, None)
            elif len(entries) < limit or key in entries:
                entries[key] = (snapshot, out[i])
        return out

    def _encode_changed(self, pairs: list[tuple[Any, Any]], values: list[Any],
                        changed: list[int], changed_keys: list[Any],
                        first: dict[Any, int]) -> list[Any]:
        """The hits' cached encodings, and the changed rows' encoded once per key.

        The other changed rows of a key (a new slice in several buckets of one batch)
        take its first changed row's encoding when their value equals it; C-speed passes.
        """
        out = list(map(_encoded, pairs))
        fresh = self.encode(list(map(values.__getitem__, first.values())))
        learned = dict(zip(first, zip(map(values.__getitem__, first.values()), fresh)))
        batch_pairs = list(map(learned.__getitem__, changed_keys))
        for i, encoded in zip(changed, map(_encoded, batch_pairs)):
            out[i] = encoded
        differ = list(itertools.compress(changed, map(operator.not_, map(
            operator.eq, map(_last, batch_pairs), map(values.__getitem__, changed)))))
        if differ:  # a key whose value changes within the batch: each row encoded
            for i, encoded in zip(differ, self.encode(list(map(values.__getitem__, differ)))):
                out[i] = encoded
        return out
