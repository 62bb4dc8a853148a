"""Learned per-slice effects of recurring promotions (Double 11, 618, weekend sales).

Why
---
A promotion night multiplies orders; order exposure follows them, so the complaint
*rate* detector expects more complaints, and the pipeline's market factor absorbs a
rise shared by every slice. What neither absorbs is a promotion's *uneven* strain: the
budget carriers' networks jam, and their delay / pickup-urge complaints per order rise
more than the market's, every time, by a similar factor. Unlearned, that pages on
every promotion, and risk teams learn to ignore the pages.

:class:`PromotionEffects` learns, per promotion identity (its calendar name, with the
kind ``promotion`` as a pooled fallback for a name never seen) and per slice row, the
ratio of observed to expected complaints over the promotion's *effect window* — from
its start to its end plus ``tail_seconds`` (complaints about the night's orders arrive
hours later) — split into phases by hours since the start (the strain peaks while the
night's orders are young, and fades). Expected is what the detector computed,
market factor included, so only what is specific to the slice is learned. A ratio is
shrunk towards 1 with ``prior_complaints`` pseudo-complaints and averaged over
occurrences (EW in log space, weight ``occurrence_weight``).

During the next occurrence's window the pipeline multiplies a slice's expected
complaints by its learned factor (:meth:`factors`). A slice without one — a promotion
never seen before, or a slice that had no complaints last time — gets a *cautious
lift* instead: its CUSUMs test a rise over ``cold_lift`` times the expectation, so an
unknown strain of up to ~``cold_lift`` x 2.16 (the sensitive CUSUM's break-even at
rho 4) does not page, while a real incident (several times normal on its slice) still
does. Maintenance windows are not promotions: never learned from.

Memory is bounded: a dense accumulator exists only while a window is open (two floats
per row and phase), and at most ``max_identities`` learned tables are kept (the
least recently seen dropped), each holding only the rows that had complaints.

Examples
--------
>>> import numpy as np
>>> fx = PromotionEffects(tail_seconds=3600, phase_hours=(), prior_complaints=10.0)
>>> night = [("双11预热", "promotion", 0, 3600)]
>>> rows = np.array([0, 1])
>>> fx.begin_bucket(0, night)            # first occurrence: nothing learned yet
True
>>> f, lift = fx.factors(rows)
>>> f.tolist(), lift.tolist()
([1.0, 1.0], [1.5, 1.5])
>>> for t in range(0, 7200, 300):        # row 1 sees twice its expected complaints
...     if fx.begin_bucket(t, night):
...         fx.observe(rows, y=np.array([5.0, 10.0]), mu=np.array([5.0, 5.0]))
>>> fx.begin_bucket(7200, night)         # the window is over: folded into the table
False
>>> fx.learned("双11预热", 0, rows).round(2).tolist()   # (240 + 10) / (120 + 10)
[1.0, 1.92]
>>> night2 = [("双11狂欢夜", "promotion", 86400, 90000)]
>>> fx.begin_bucket(86400, night2)       # a new name borrows the kind's factors
True
>>> f, lift = fx.factors(np.array([0, 1, 2]))
>>> f.round(2).tolist(), lift.tolist()   # row 2 had no complaints last time: cautious
([1.0, 1.92, 1.0], [1.0, 1.0, 1.5])
>>> fx.occurrence.name, fx.occurrence.source
('双11狂欢夜', 'promotion')
"""

from __future__ import annotations

import math
from collections import OrderedDict
from typing import Iterable, NamedTuple

import numpy as np
from river import base

__all__ = ["Occurrence", "PromotionEffects"]

#: (name, kind, start epoch, end epoch) of a calendar entry.
Entry = tuple[str, str, int, int]


class Occurrence(NamedTuple):
    """The promotion whose effect window covers the current bucket."""

    name: str
    kind: str
    start: int
    end: int          # start of the window's end: the promotion's end + tail
    source: str       # which table its factors came from: the name, the kind, or "" (cold)


class _Table:
    """Learned factors of one identity: sorted rows, ``(phases, rows)`` log factors."""

    __slots__ = ("rows", "log_factor", "occurrences")

    def __init__(self, phases: int) -> None:
        self.rows = np.zeros(0, dtype=np.int64)
        self.log_factor = np.zeros((phases, 0))
        self.occurrences = 0


class PromotionEffects(base.Base):
    """Per-slice, per-promotion multipliers of expected complaints, learned online.

    Parameters
    ----------
    tail_seconds
        How long after a promotion's end its orders' complaints keep arriving: the effect
        window is ``[start, end + tail_seconds)`` (24 h covers the complaint lag).
    phase_hours
        Phase boundaries in hours since the start: a factor is learned per phase (the
        strain peaks while the night's orders are young; a single factor over a day
        would under-correct the peak and over-correct the tail).
    prior_complaints
        Pseudo-complaints of shrinkage: a factor is ``(observed + k) / (expected + k)``,
        so a slice needs evidence before it expects a promotion to differ.
    occurrence_weight
        Weight of the newest occurrence in the EW average over occurrences (log space).
    cold_lift
        Caution during a promotion's window for a slice without a learned factor: its
        CUSUMs test a rise over ``cold_lift`` times its expected complaints.
    min_factor, max_factor
        Learned factors are clipped to ``[min_factor, max_factor]``. ``min_factor`` 1
        (default): a promotion only teaches a slice to expect *more*. An estimate from
        a night or two is noisy, and a slice learned low would be more sensitive than
        usual during the next promotion — on seed 7 a region x intent learned at 0.75
        paged an incident on the wrong slice, leaving its sibling unexplained.
    max_identities
        Learned tables kept (promotion names plus the pooled kinds); the least recently
        seen is dropped beyond it.
    """

    def __init__(self, tail_seconds: int = 86400, phase_hours: tuple[float, ...] = (4.0, 8.0, 16.0),
                 prior_complaints: float = 10.0, occurrence_weight: float = 0.5,
                 cold_lift: float = 1.5, min_factor: float = 1.0, max_factor: float = 4.0,
                 max_identities: int = 64) -> None:
        self.tail_seconds = tail_seconds
        self.phase_hours = tuple(phase_hours)
        self.prior_complaints = prior_complaints
        self.occurrence_weight = occurrence_weight
        self.cold_lift = cold_lift
        self.min_factor = min_factor
        self.max_factor = max_factor
        self.max_identities = max_identities
        self._bounds = [int(h * 3600) for h in self.phase_hours]
        self.tables: OrderedDict[str, _Table] = OrderedDict()
        self.occurrence: Occurrence | None = None
        self.phase = 0
        # Per occurrence: dense log factors to apply (NaN = none learned) and the
        # accumulators of observed / expected complaints, both (phases, rows).
        self._apply = np.zeros((self.phases, 0))
        self._observed = np.zeros((self.phases, 0))
        self._expected = np.zeros((self.phases, 0))

    @property
    def phases(self) -> int:
        return len(self.phase_hours) + 1

    # -- which window, which phase ----------------------------------------------------
    def window_at(self, epoch: int, promotions: Iterable[Entry]) -> Occurrence | None:
        """The latest-started promotion whose effect window covers ``epoch``."""
        best = None
        for name, kind, start, end in promotions:
            if start <= epoch < end + self.tail_seconds and (best is None or start >= best[2]):
                best = (name, kind, start, end + self.tail_seconds)
        return None if best is None else Occurrence(*best, source="")

    def begin_bucket(self, epoch: int, promotions: Iterable[Entry]) -> bool:
        """Enter the bucket starting at ``epoch``: fold a finished (or superseded)
        occurrence into its tables, open a new one. True while inside a window."""
        now = self.window_at(epoch, promotions)
        current = self.occurrence
        if current is not None and (now is None or now[:3] != current[:3]):
            self._fold()
        if now is not None and (self.occurrence is None or now[:3] != self.occurrence[:3]):
            self._open(now)
        if self.occurrence is None:
            return False
        offset = epoch - self.occurrence.start
        self.phase = sum(offset >= b for b in self._bounds)
        return True

    def phase_of(self, epoch: np.ndarray) -> np.ndarray:
        """Phase of each epoch of the open occurrence (``-1`` outside its window)."""
        occ = self.occurrence
        offset = np.asarray(epoch) - occ.start
        phase = np.searchsorted(np.asarray(self._bounds), offset, side="right")
        return np.where((offset >= 0) & (epoch < occ.end), phase, -1)

    # -- applying ---------------------------------------------------------------------
    def factors(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(factor, lift)`` per row for the current phase: the learned multiplier of
        expected complaints (1 where none is learned) and the cautious lift (``cold_lift``
        exactly where none is learned, else 1)."""
        self._grow(int(rows.max()) + 1 if len(rows) else 0)
        log_f = self._apply[self.phase, rows]
        cold = np.isnan(log_f)
        return np.exp(np.where(cold, 0.0, log_f)), np.where(cold, self.cold_lift, 1.0)

    def learned(self, identity: str, phase: int, rows: np.ndarray) -> np.ndarray:
        """Learned factor of ``rows`` in ``phase`` of ``identity`` (NaN: none)."""
        table = self.tables.get(identity)
        out = np.full(len(rows), np.nan)
        if table is not None and len(table.rows):
            at = np.minimum(np.searchsorted(table.rows, rows), len(table.rows) - 1)
            hit = table.rows[at] == rows
            out[hit] = np.exp(table.log_factor[phase, at[hit]])
        return out

    # -- learning ---------------------------------------------------------------------
    def touched_rows(self) -> np.ndarray:
        """Rows with observed or expected complaints in the open occurrence so far."""
        return np.flatnonzero((self._observed + self._expected).sum(axis=0) > 0)

    def observe(self, rows: np.ndarray, *, y: np.ndarray, mu: np.ndarray,
                phase: np.ndarray | int | None = None) -> None:
        """Add observed ``y`` and expected ``mu`` complaints of ``rows`` to the open
        occurrence. ``mu`` is the expectation *without* the promotion factor (the
        detector's, market factor included); ``phase`` defaults to the current one
        (an array spreads catch-up spans over their phases; ``-1`` is dropped).
        ``rows`` must not repeat (one span per row per call)."""
        if self.occurrence is None or not len(rows):
            return
        self._grow(int(rows.max()) + 1)
        if phase is None:
            self._observed[self.phase, rows] += y
            self._expected[self.phase, rows] += mu
            return
        phase = np.broadcast_to(phase, rows.shape)
        keep = phase >= 0
        self._observed[phase[keep], rows[keep]] += np.broadcast_to(y, rows.shape)[keep]
        self._expected[phase[keep], rows[keep]] += mu[keep]

    def _open(self, occ: Occurrence) -> None:
        apply = np.full((self.phases, max(self._observed.shape[1], 64)), np.nan)
        source = ""
        for identity in (occ.kind, occ.name):   # the name's factors override the kind's
            table = self.tables.get(identity)
            if table is None or not len(table.rows):
                continue
            need = int(table.rows[-1]) + 1
            if need > apply.shape[1]:
                grown = np.full((self.phases, max(need, 2 * apply.shape[1])), np.nan)
                grown[:, :apply.shape[1]] = apply
                apply = grown
            apply[:, table.rows] = table.log_factor
            source = identity
            self.tables.move_to_end(identity)
        self._apply = apply
        self._observed = np.zeros(apply.shape)
        self._expected = np.zeros(apply.shape)
        self.occurrence = occ._replace(source=source)
        self.phase = 0

    def _grow(self, size: int) -> None:
        have = self._observed.shape[1]
        if size <= have:
            return
        size = max(size, 2 * have, 64)
        for name, fill in (("_apply", np.nan), ("_observed", 0.0), ("_expected", 0.0)):
            old = getattr(self, name)
            new = np.full((self.phases, size), fill)
            new[:, :old.shape[1]] = old
            setattr(self, name, new)

    def _fold(self) -> None:
        """Fold the open occurrence's ratios into its name's and its kind's tables.

        Rows with at least one complaint's worth of observed or expected complaints
        learn; the others stay without a factor (cautious next time)."""
        occ = self.occurrence
        obs, exp = self._observed, self._expected
        rows = np.flatnonzero((obs + exp).sum(axis=0) >= 1.0)
        if len(rows):
            k = self.prior_complaints
            ratio = np.clip(np.log((obs[:, rows] + k) / (exp[:, rows] + k)),
                            math.log(self.min_factor), math.log(self.max_factor))
            for identity in (occ.name, occ.kind):
                self._update(identity, rows, ratio)
        self.occurrence = None
        self._apply = np.full((self.phases, 0), np.nan)
        self._observed = np.zeros((self.phases, 0))
        self._expected = np.zeros((self.phases, 0))

    def _update(self, identity: str, rows: np.ndarray, log_ratio: np.ndarray) -> None:
        table = self.tables.pop(identity, None) or _Table(self.phases)
        merged = np.union1d(table.rows, rows)
        log_f = np.full((self.phases, len(merged)), np.nan)
        log_f[:, np.searchsorted(merged, table.rows)] = table.log_factor
        at = np.searchsorted(merged, rows)
        old = log_f[:, at]
        w = self.occurrence_weight
        log_f[:, at] = np.where(np.isnan(old), log_ratio, (1.0 - w) * old + w * log_ratio)
        table.rows, table.log_factor = merged, log_f
        table.occurrences += 1
        self.tables[identity] = table
        while len(self.tables) > self.max_identities:
            self.tables.popitem(last=False)

    def summary(self) -> dict[str, dict]:
        """Per learned identity: occurrences, rows and the largest factor (for logs)."""
        return {name: {"occurrences": t.occurrences, "rows": len(t.rows),
                       "max_factor": round(float(np.exp(t.log_factor.max())), 3)
                       if t.log_factor.size else 1.0}
                for name, t in self.tables.items()}

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["tables"] = [(k, t.rows, t.log_factor, t.occurrences) for k, t in self.tables.items()]
        return state

    def __setstate__(self, state: dict) -> None:
        tables = OrderedDict()
        for key, rows, log_factor, occurrences in state.pop("tables"):
            t = _Table(len(log_factor))
            t.rows, t.log_factor, t.occurrences = rows, log_factor, occurrences
            tables[key] = t
        self.__dict__.update(state)
        self.tables = tables

    @classmethod
    def _unit_test_params(cls):
        yield {}
        yield {"tail_seconds": 3600, "phase_hours": (), "cold_lift": 2.0}
