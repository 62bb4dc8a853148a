"""Rows kept in the order of their names while rows are appended (merchant scores and
the shop-surge scorer list their rows by name at every close).

Sorting thousands of names per close, or again whenever a few names were added, costs
milliseconds; the new names are sorted alone and inserted where ``np.searchsorted`` on
an object array (Python's own string comparison, so the order of ``sorted()``) puts
them. :func:`positions_of_none` finds the names of a bucket that have no row yet."""
from __future__ import annotations

from collections.abc import Iterator

import numpy as np


def positions_of_none(found: list) -> Iterator[int]:
    """Positions of ``None`` in ``found``, in order: the names a lookup such as
    ``list(map(rows.get, names))`` did not find. ``list.index`` scans in C, so a bucket
    with a few new names costs a few scans, not a Python loop over all of them. The
    caller may fill in a yielded position before asking for the next one.

    >>> found = [3, None, 5, None]
    >>> for j in positions_of_none(found):
    ...     found[j] = -j
    >>> found
    [3, -1, 5, -3]
    """
    j = -1
    while True:
        try:
            j = found.index(None, j + 1)
        except ValueError:
            return
        yield j


class NameOrder:
    """Row numbers (indexes into a growing list of unique names) sorted by name.

    >>> names = ["m3", "m1"]
    >>> order = NameOrder()
    >>> order.rows(names).tolist()
    [1, 0]
    >>> names += ["m2", "m0", "m4"]
    >>> order.rows(names).tolist()
    [3, 1, 2, 0, 4]
    >>> [names[r] for r in order.rows(names)] == sorted(names)
    True
    """

    def __init__(self) -> None:
        self.order = np.zeros(0, dtype=np.int64)
        self.sorted_names = np.zeros(0, dtype=object)

    def rows(self, names: list[str]) -> np.ndarray:
        """All rows of ``names`` (appended to since the last call, never reordered) by name."""
        done = len(self.order)
        if done < len(names):
            new = sorted(range(done, len(names)), key=names.__getitem__)
            new_names = np.empty(len(new), dtype=object)
            new_names[:] = [names[i] for i in new]
            # names are unique: each new one goes before the first larger old one
            at = np.searchsorted(self.sorted_names, new_names)
            self.order = np.insert(self.order, at, new)
            self.sorted_names = np.insert(self.sorted_names, at, new_names)
        return self.order
