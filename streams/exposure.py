"""Order exposure of every slice, advanced one bucket at a time in numpy.

Exposure of a slice is an exponentially weighted sum of its past orders with mean lag
``exposure_lag_seconds`` (complaints arrive hours after orders), weighted by the
hour-of-day factor of the bucket it is read in. Every slice that ever had an order is
advanced at every bucket close — one vectorised multiply-add over all of them — which is
cheaper than advancing each touched slice in Python and needs no catch-up for quiet
slices.

Orders arrive per *combo* (region, merchant, carrier, category) and are spread to the
order slices (global, region, merchant, carrier, category, region x carrier, ...) in
numpy: each dimension value is interned to an integer code (in order of first sight), and
each order slice keeps a table from its dimensions' codes to its row (a dense numpy array
indexed by the codes, -1 where the slice has no row yet). A bucket costs one C-level
``map`` per dimension (value -> code) and one gather per slice; orders per slice row are
one ``bincount``. Only values never seen before take a Python path.

>>> book = ExposureBook(slices=((), ("region",)), decay=0.5)
>>> book.advance(0, {("广东", "m1", "中通", "服饰"): 4, ("浙江", "m2", "中通", "服饰"): 2}, hour_factor=1.0)
>>> book.exposure((1, "广东")), book.exposure((0,))
(2.0, 3.0)
>>> book.advance(1, {}, hour_factor=2.0)       # decays; read with the hour factor
>>> row = book.key_id((1, "广东"))
>>> float(book.ex[row]), float(book.exh[row]), float(book.cum[row])
(1.0, 2.0, 4.0)
"""

from __future__ import annotations

import itertools
import math

import numpy as np

from streams.name_order import positions_of_none

__all__ = ["COMBO_FIELDS", "ExposureBook"]

Key = tuple

#: Dimensions of an order combo, in the order combos are given.
COMBO_FIELDS = ("region", "merchant_id", "carrier", "category")


class ExposureBook:
    """Exposure arrays for every order slice; see the module docstring.

    ``slices`` is the full slice list of the settings; only slices made of
    :data:`COMBO_FIELDS` dimensions get orders (the others read a parent's exposure).
    """

    def __init__(self, *, slices: tuple[tuple[str, ...], ...], decay: float) -> None:
        self.decay = decay
        self.alpha = 1.0 - decay
        self.ids: dict[Key, int] = {}
        self.keys: list[Key] = []
        # (slice index, positions of its dimensions in a combo, its table) per order
        # slice: see _SliceTable
        self._order_slices: list[tuple[int, tuple[int, ...], _SliceTable]] = []
        for i, dims in enumerate(slices):
            if set(dims) <= set(COMBO_FIELDS):
                positions = tuple(COMBO_FIELDS.index(d) for d in dims)
                self._order_slices.append((i, positions, _SliceTable(len(positions))))
        # only the dimensions some order slice uses need codes
        self._used = sorted({p for _, positions, _ in self._order_slices for p in positions})
        self._values: list[dict[str, int]] = [{} for _ in COMBO_FIELDS]   # value -> code
        self._names: list[list[str]] = [[] for _ in COMBO_FIELDS]          # code -> value
        self.ex = np.zeros(1024)     # exposure in the last advanced bucket
        self.exh = np.zeros(1024)    # the same times that bucket's hour factor
        self.cum = np.zeros(1024)    # sum of exposure x hour factor over all buckets so far
        self.first = np.zeros(1024, dtype=np.int64)  # bucket the slice was first seen
        self.bucket: int | None = None
        self.last_orders = np.zeros(0)  # orders per slice row in the last advanced bucket

    def key_id(self, key: Key) -> int:
        """The slice's row, created (with zero exposure) on first sight."""
        i = self.ids.get(key)
        if i is None:
            i = self.ids[key] = len(self.keys)
            self.keys.append(key)
            if i >= len(self.ex):
                self._grow()
            self.first[i] = self.bucket if self.bucket is not None else 0
        return i

    def _grow(self) -> None:
        n = len(self.ex) * 2
        for name in ("ex", "exh", "cum", "first"):
            old = getattr(self, name)
            new = np.zeros(n, dtype=old.dtype)
            new[:len(old)] = old
            setattr(self, name, new)

    def _codes(self, combos) -> list[np.ndarray | None]:
        """Integer code of each combo's value, per used dimension (interning new values
        in order of first sight; ``None`` for dimensions no order slice uses).

        ``zip(*combos)`` and ``map(dict.get, ...)`` run in C; only new values take the
        Python path.
        """
        out: list[np.ndarray | None] = [None] * len(COMBO_FIELDS)
        columns = list(zip(*combos))
        for p in self._used:
            column, values, names = columns[p], self._values[p], self._names[p]
            codes = list(map(values.get, column))
            if None in codes:
                for j in positions_of_none(codes):   # Python work only per missing value
                    v = column[j]
                    code = values.get(v)
                    if code is None:
                        code = values[v] = len(names)
                        names.append(v)
                    codes[j] = code
            out[p] = np.fromiter(codes, dtype=np.int64, count=len(codes))
        return out

    def _orders_per_row(self, combo_counts: dict[tuple, int]) -> np.ndarray:
        n = len(combo_counts)
        counts = np.fromiter(combo_counts.values(), dtype=np.float64, count=n)
        codes = self._codes(combo_counts)
        rows = np.empty((len(self._order_slices), n), dtype=np.int64)
        for k, (index, positions, table) in enumerate(self._order_slices):
            slice_codes = [codes[p] for p in positions]
            found = table.rows(slice_codes, [len(self._names[p]) for p in positions], n)
            missing = np.flatnonzero(found < 0)
            if len(missing):
                self._new_rows(index, positions, table, [c[missing] for c in slice_codes])
                found = table.rows(slice_codes, None, n)
            rows[k] = found
        # Each row belongs to one slice, so its orders add up in combo order as before
        # (and they are whole numbers: exact in any order).
        return np.bincount(rows.ravel(), weights=np.tile(counts, len(self._order_slices)),
                           minlength=len(self.keys))

    def _new_rows(self, index: int, positions: tuple[int, ...], table: _SliceTable,
                  codes: list[np.ndarray]) -> None:
        """Rows for the slices of ``codes`` (columns of codes of combos whose slice has
        no row yet). New slices get rows in the lexicographic order of their codes
        (values are interned in order of first sight), as they always have: the row
        order is the order slices are scored and reported in."""
        names = [self._names[p] for p in positions]
        new = set(zip(*(c.tolist() for c in codes))) if codes else {()}
        for code in sorted(new):
            row = self.key_id((index, *[n[c] for n, c in zip(names, code)]))
            table.set(code, row)

    def advance(self, bucket: int, combo_counts: dict[tuple, int], *, hour_factor: float) -> None:
        """Close ``bucket``: decay every slice, add this bucket's orders, weight by hour."""
        if self.bucket is None:
            self.bucket = bucket
            self.first[:] = bucket
        # before self.bucket moves on: a new slice's first bucket is the previous one
        orders = self._orders_per_row(combo_counts) if combo_counts else None  # may grow arrays
        n = len(self.keys)
        steps = bucket - self.bucket
        if steps > 0:
            self.ex[:n] *= self.decay ** steps
        self.bucket = bucket
        if orders is not None:
            self.ex[:n] += self.alpha * orders
            self.last_orders = orders
        else:
            self.last_orders = np.zeros(n)
        np.multiply(self.ex[:n], hour_factor, out=self.exh[:n])
        self.cum[:n] += self.exh[:n]

    # -- reads ----------------------------------------------------------------------------
    def exposure(self, key: Key) -> float:
        i = self.ids.get(key)
        return float(self.ex[i]) if i is not None else 0.0

    def orders_in_last_bucket(self) -> dict[Key, int]:
        """Orders per slice in the last advanced bucket (for aggregate rows)."""
        nz = np.nonzero(self.last_orders)[0]
        return {self.keys[i]: int(self.last_orders[i]) for i in nz}

    def __len__(self) -> int:
        return len(self.keys)


_MAX_DENSE_CELLS = 1 << 22   # cells of a dense table (int64: 32 MB); larger ones become dicts


class _SliceTable:
    """An order slice's row per code tuple of its dimensions.

    Dense: an int64 array with one axis per dimension, grown by doubling (-1 = no row
    yet), read with one fancy-indexing gather per bucket. A slice of several large
    dimensions (say merchant x region x carrier) would need a huge array: past
    ``_MAX_DENSE_CELLS`` cells the table becomes a dict keyed by code tuples (slower,
    same rows).

    >>> t = _SliceTable(2)
    >>> t.set((1, 0), 7)
    >>> t.rows([np.array([1, 0]), np.array([0, 0])], [2, 1], 2).tolist()
    [7, -1]
    """

    def __init__(self, ndim: int) -> None:
        self.ndim = ndim
        self.dense: np.ndarray | None = np.full((4,) * ndim, -1, dtype=np.int64)
        self.sparse: dict[tuple, int] = {}

    def _fit(self, sizes: list[int]) -> None:
        shape = list(self.dense.shape)
        if all(s <= c for s, c in zip(sizes, shape)):
            return
        for axis, size in enumerate(sizes):
            while shape[axis] < size:
                shape[axis] *= 2
        if math.prod(shape) > _MAX_DENSE_CELLS:
            for code in zip(*np.nonzero(self.dense >= 0)):
                code = tuple(int(c) for c in code)
                self.sparse[code] = int(self.dense[code])
            self.dense = None
            return
        grown = np.full(shape, -1, dtype=np.int64)
        grown[tuple(slice(0, c) for c in self.dense.shape)] = self.dense
        self.dense = grown

    def rows(self, codes: list[np.ndarray], sizes: list[int] | None, n: int) -> np.ndarray:
        """Row per combo (-1: none yet); ``sizes``: values per dimension (to fit)."""
        if self.dense is not None and sizes is not None:
            self._fit(sizes)
        if self.dense is not None:
            if not self.ndim:
                return np.full(n, self.dense[()])
            return self.dense[tuple(codes)]
        keys = zip(*(c.tolist() for c in codes)) if self.ndim else itertools.repeat((), n)
        return np.fromiter(map(self.sparse.get, keys, itertools.repeat(-1)), dtype=np.int64,
                           count=n)

    def set(self, code: tuple, row: int) -> None:
        if self.dense is not None:
            self.dense[code] = row
        else:
            self.sparse[code] = row
