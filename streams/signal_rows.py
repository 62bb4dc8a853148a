"""One signal detector's evaluation of one slice in one bucket, and its one builder.

:class:`~streams.signals.ShopSurgeScorer` (``order_surge``) and
:class:`~streams.delivery.OverdueScorer` (``overdue_delivery``) score many slices per
bucket as rows of a numpy bank, then hand :class:`~streams.signals.SignalStage` a
:class:`Signal` for each slice that matters (alarmed, or with an open episode).
:func:`build_signals` is how both turn bank rows into signals.

>>> import numpy as np
>>> from detectors.rate_bank import BankStep, ComplaintRateBank
>>> bank = ComplaintRateBank()
>>> rows = bank.add(2)
>>> step = BankStep(mu=np.array([1.0, 2.0]), evidence=np.array([0.0, 12.5]))
>>> [s] = build_signals("m", [1], rows=rows, bank=bank, step=step, observed=np.array([1.0, 9.0]),
...                     level=np.array([11.0, 11.0]), dims=lambda i: {"carrier": "中通"},
...                     pages=lambda i, evidence, run_observed, run_expected: True,
...                     contributors=lambda i: [])
>>> s.key, s.observed, s.expected, s.evidence, s.pages
(('m', ('carrier', '中通')), 9.0, 2.0, 12.5, True)
"""

from __future__ import annotations

from typing import Callable

import numpy as np

__all__ = ["RowReset", "Signal", "build_signals"]

# Columns of the current run in both banks' state matrices (detectors.rate_bank and
# detectors.order_surge lay them out alike).
from detectors.order_surge import RUN_BUCKETS, RUN_EXP, RUN_OBS  # noqa: E402
from detectors import rate_bank as _rate_bank  # noqa: E402

assert (RUN_OBS, RUN_EXP, RUN_BUCKETS) == (_rate_bank.RUN_OBS, _rate_bank.RUN_EXP,
                                           _rate_bank.RUN_BUCKETS)


class Signal:
    """One slice's evaluation by a signal detector in one bucket."""

    __slots__ = ("metric", "dims", "observed", "expected", "evidence", "level", "pages",
                 "run_observed", "run_expected", "run_buckets", "contributors", "reset")

    def __init__(self, metric: str, dims: dict[str, str], observed: float, expected: float,
                 evidence: float, level: float, pages: bool, run_observed: float,
                 run_expected: float, run_buckets: int, contributors: list[dict],
                 reset: Callable[[], None]) -> None:
        self.metric, self.dims, self.observed, self.expected = metric, dims, observed, expected
        self.evidence, self.level, self.pages = evidence, level, pages
        self.run_observed, self.run_expected, self.run_buckets = run_observed, run_expected, run_buckets
        self.contributors, self.reset = contributors, reset

    @property
    def key(self) -> tuple:
        return (self.metric, *sorted(self.dims.items()))


class RowReset:
    """A picklable "start a fresh CUSUM run for this bank row" (after a resolve)."""

    __slots__ = ("bank", "row")

    def __init__(self, bank, row: int) -> None:
        self.bank, self.row = bank, row

    def __call__(self) -> None:
        self.bank.reset([self.row])


def build_signals(metric: str, keep, *, rows: np.ndarray, bank, step, observed: np.ndarray,
                  level: np.ndarray, dims: Callable[[int], dict],
                  pages: Callable[[int, float, float, float], bool],
                  contributors: Callable[[int], list[dict]]) -> list[Signal]:
    """Signals for positions ``keep`` of one bank step over ``rows``.

    ``observed``/``level`` are per position; ``dims(i)``, ``pages(i, evidence,
    run_observed, run_expected)`` and ``contributors(i)`` say the rest. Only the kept
    positions are turned into Python objects (a few per bucket, of thousands scored).
    """
    if not keep:
        return []
    after = bank.state[rows[keep]]
    out = []
    for j, i in enumerate(keep):
        evidence = float(step.evidence[i])
        run_observed, run_expected = float(after[j, RUN_OBS]), float(after[j, RUN_EXP])
        out.append(Signal(metric, dims(i), float(observed[i]), float(step.mu[i]), evidence,
                          float(level[i]), pages(i, evidence, run_observed, run_expected),
                          run_observed, run_expected, int(after[j, RUN_BUCKETS]),
                          contributors(i), RowReset(bank, int(rows[i]))))
    return out
