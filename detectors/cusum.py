"""The two-CUSUM step every slice bank shares (complaint rate, order surge, intent mix).

Each bank keeps, per row, two CUSUM statistics (a sensitive one and a steep one for
slices that normally see almost nothing) and the current *run*: what was observed and
expected since the statistics last left zero, and for how many buckets. Only the
log-likelihood ratio of a span differs between detectors, and it always has the shape
``y * weight - drift``:

- Poisson (complaints per exposure, orders per market share):
  ``weight = ln(rho)``, ``drift = (rho - 1) * mu``;
- Bernoulli (one intent's share of a slice's ``n`` complaints, share ``p0`` against
  ``p1``): ``weight = ln(p1 / p0) - ln((1 - p1) / (1 - p0))``,
  ``drift = -n * ln((1 - p1) / (1 - p0))``.

:func:`cusum_step` applies one span to a block of rows in place and returns the larger
statistic (the evidence). Columns are passed by index, so each bank keeps its own
layout; the arithmetic is written once (``(S + y * weight) - drift``, clipped to
``[0, cap]``), in the order the banks used before they shared it, so their outputs are
unchanged to the last bit.

Examples
--------
>>> import numpy as np
>>> s = np.zeros((2, 5))          # columns: slow, spike, run observed, run expected, buckets
>>> mu = np.array([2.0, 2.0])
>>> ev = cusum_step(s, (0, 1), (2, 3, 4), y=np.array([2.0, 9.0]), mu=mu,
...                 weights=(np.log(4.0), np.log(20.0)), drifts=(3.0 * mu, 19.0 * mu), cap=33.0)
>>> ev.round(2).tolist()          # the first row saw what it expected: no run
[0.0, 6.48]
>>> s[1, 2:].tolist()             # the second row's run: 9 observed, 2 expected, 1 bucket
[9.0, 2.0, 1.0]
"""

from __future__ import annotations

import numpy as np

__all__ = ["UsedRowsPickle", "cusum_step"]


def cusum_step(s: np.ndarray, stats: tuple[int, int], run: tuple[int, int, int], *,
               y: np.ndarray, mu: np.ndarray, weights: tuple, drifts: tuple,
               cap: float, buckets: float | np.ndarray = 1.0) -> np.ndarray:
    """Advance both CUSUMs of every row of ``s`` by one span; return the evidence.

    ``stats`` are the columns of the sensitive and the steep statistic, ``run`` the
    columns of the run's observed count, expected count and buckets (consecutive).
    ``weights`` / ``drifts`` give each statistic's increment ``y * weight - drift``.
    A run starts when the statistics leave zero and ends when both are back at zero.
    """
    slow_col, spike_col = stats
    obs_col, exp_col, buckets_col = run
    slow, spike = s[:, slow_col], s[:, spike_col]   # views: stepped in place
    # Both statistics are >= 0, so "either ran before" is "their sum is above zero".
    stop = (slow + spike) <= 0.0
    # Few ufunc calls, in place: a close of a few dozen rows (overdue lanes) costs its
    # number of numpy calls, a close of a million cells (intent mix) its passes over
    # them. S + y * weight is y * weight + S (addition commutes, to the bit); maximum
    # then minimum is np.clip without its Python wrappers, the same values, as a
    # statistic is never -0.0 (a sum of non-negative terms minus a non-negative drift).
    for stat, weight, drift in ((slow, weights[0], drifts[0]), (spike, weights[1], drifts[1])):
        stat += y * weight
        stat -= drift
        np.minimum(np.maximum(stat, 0.0, out=stat), cap, out=stat)
    evidence = np.maximum(slow, spike)
    # The run: carried where a statistic ran before and still runs, started where one
    # leaves zero, zero where none runs (each column on its own: contiguous in a
    # column-major block).
    idle = evidence <= 0.0
    stop |= idle          # the cells whose run does not carry on
    for col, add in ((obs_col, y), (exp_col, mu), (buckets_col, np.floor(buckets))):
        column = s[:, col]
        np.copyto(column, 0.0, where=stop)
        column += add
        np.copyto(column, 0.0, where=idle)
    return evidence


class UsedRowsPickle:
    """Pickling for a bank whose ``state`` array grows by doubling: only the ``size``
    rows in use are written (a checkpoint of a bank with spare capacity stays small),
    and the restored array is C-contiguous (steps write through reshaped views)."""

    state: np.ndarray
    size: int

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["state"] = self.state[:self.size].copy()
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self.state = np.ascontiguousarray(self.state)
