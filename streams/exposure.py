"""Order exposure of every slice, advanced one bucket at a time in numpy.

Exposure of a slice is an exponentially weighted sum of its past orders with mean lag
``exposure_lag_seconds`` (complaints arrive hours after orders), weighted by the
hour-of-day factor of the bucket it is read in. Every slice that ever had an order is
advanced at every bucket close — one vectorised multiply-add over all of them — which is
cheaper than advancing each touched slice in Python and needs no catch-up for quiet
slices.

Orders arrive per *combo* (region, merchant, carrier, category) and are spread to the
order slices (global, region, merchant, carrier, category, region x carrier, ...) in
numpy: each dimension value is interned to an integer, a slice's key is a mixed-radix
code of its dimensions' integers, and orders per slice are one ``bincount`` over the
combos of the bucket. A combo's rows (one per order slice) are remembered, so a bucket
costs one C-level ``map`` over its combos; only combos never seen before take a Python
path.

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
import operator

import numpy as np

__all__ = ["COMBO_FIELDS", "ExposureBook"]

Key = tuple

_COMBO_CACHE_SIZE = 300_000   # combos whose rows are remembered (~150 bytes each)

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
        # (slice index, positions of its dimensions in a combo) for the order slices
        # (slice index, positions of its dimensions in a combo, combo -> slice values,
        # slice values -> row) for the order slices
        self._order_slices = []
        for i, dims in enumerate(slices):
            if set(dims) <= set(COMBO_FIELDS):
                positions = [COMBO_FIELDS.index(d) for d in dims]
                values_of = operator.itemgetter(*positions) if positions else None
                self._order_slices.append((i, positions, values_of, {}))
        self._combo_rows: dict[tuple, tuple[int, ...]] = {}   # combo -> row per order slice
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

    def _codes(self, combos: list[tuple]) -> list[np.ndarray]:
        """Integer code of each combo's value, per dimension (interning new values).

        ``zip(*combos)`` and ``map(dict.get, ...)`` run in C; only new values take the
        Python path.
        """
        out = []
        for column, values, names in zip(zip(*combos), self._values, self._names):
            codes = list(map(values.get, column))
            if None in codes:
                # Python work only per missing value: list.index scans in C.
                j = codes.index(None)
                while True:
                    v = column[j]
                    code = values.get(v)
                    if code is None:
                        code = values[v] = len(names)
                        names.append(v)
                    codes[j] = code
                    try:
                        j = codes.index(None, j + 1)
                    except ValueError:
                        break
            out.append(np.asarray(codes, dtype=np.int64))
        return out

    def _orders_per_row(self, combo_counts: dict[tuple, int]) -> np.ndarray:
        combos = list(combo_counts)
        counts = np.fromiter(combo_counts.values(), dtype=np.float64, count=len(combos))
        combo_rows = self._combo_rows
        if len(combo_rows) > _COMBO_CACHE_SIZE:
            combo_rows.clear()   # O(1) amortised; the slices keep their rows anyway
        found = list(map(combo_rows.get, combos))      # in C: a combo's rows, one per slice
        if None in found:
            new = [c for c, f in zip(combos, found) if f is None]
            combo_rows.update(zip(new, zip(*self._slice_rows_of(new))))   # in C
            found = list(map(combo_rows.get, combos))
        width = len(self._order_slices)
        flat = np.fromiter(itertools.chain.from_iterable(found), dtype=np.int64,
                           count=len(combos) * width)
        return np.bincount(flat, weights=np.repeat(counts, width), minlength=len(self.keys))

    def _slice_rows_of(self, combos: list[tuple]) -> list[list[int]]:
        """Per order slice, the row of each combo's slice (created on first sight)."""
        n = len(combos)
        row_parts = []
        codes = None
        for index, positions, values_of, rows in self._order_slices:
            # slice values of every combo, then their rows: both loops run in C
            values = list(map(values_of, combos)) if positions else [()] * n
            found = list(map(rows.get, values))
            if None in found:
                # New slices get rows in the order of their mixed-radix codes (values
                # interned in order of first sight), as they always have: the row order
                # is the order slices are scored and reported in.
                if codes is None:
                    codes = self._codes(combos)
                    sizes = [len(names) + 1 for names in self._names]
                new: dict[tuple, int] = {}   # new slice value -> its first combo
                j = found.index(None)        # (list.index scans in C)
                while True:
                    new.setdefault(values[j], j)
                    try:
                        j = found.index(None, j + 1)
                    except ValueError:
                        break

                def code_of(j, positions=positions):
                    code = 0
                    for p in positions:
                        code = code * sizes[p] + int(codes[p][j])
                    return code
                for value, j in sorted(new.items(), key=lambda item: code_of(item[1])):
                    rows[value] = self.key_id((index, *[combos[j][p] for p in positions]))
                found = list(map(rows.get, values))
            row_parts.append(found)
        return row_parts

    def advance(self, bucket: int, combo_counts: dict[tuple, int], *, hour_factor: float) -> None:
        """Close ``bucket``: decay every slice, add this bucket's orders, weight by hour."""
        if self.bucket is None:
            self.bucket = bucket
            self.first[:] = bucket
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
