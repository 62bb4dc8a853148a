"""Intent-mix shifts of every slice at bucket close (metric ``intent_mix``).

The pipeline already counts each closed bucket's complaints by intent for every slice
without an intent dimension (``_Bucket.intents``: the global slice, region, merchant,
carrier, category, region x carrier); this stage scores those mixes with one
:class:`~detectors.intent_mix.IntentMixBank` and hands :class:`~streams.signals.SignalStage`
a :class:`~streams.signals.Signal` per alarmed slice, so intent-mix alerts share the
signals' lifecycle (fingerprint = metric + slice + intent, maintenance windows, the
learning day, operator feedback, severity, resolve).

A slice's prior mix is its parent's: the market's mix for a region, shop, carrier or
category, the carrier's for a region x carrier. The global slice learns, never pages.

What pages: a slice whose largest intent CUSUM reached its alarm level (the bank's
threshold + ln(intents) + ln(slices of the kind / 30)) and held it for
``pending_buckets``, and whose run of that intent is mostly its own. Complaints that
arrived while one of their slices was paged by the complaint rate *for their intent*
(:meth:`IntentMixStage._covered_now`) count as covered; at most ``cover_share`` of the run may
be covered, and the uncovered part must exceed expectation by ``min_excess`` with a
Bonferroni tail <= ``alpha``. A region's lost-parcel wave shifts the region's mix too,
but it is the complaint-rate page's incident: one incident, one page; so is the shift of
a slice inside a slice paged for that intent (a carrier paged for damaged parcels: its
region x carrier slices turning to "damaged", :meth:`IntentMixStage._inside_page`). Also: a shift the
whole market shares (the intent classifier learning from agents' labels, a news story)
raises every slice's expectation of that intent (:meth:`IntentMixStage._market_factor`).
"""

from __future__ import annotations

import itertools
import math
import operator
from collections.abc import Iterable, Mapping

import numpy as np

from detectors.intent_mix import (COUNT, RUN_BUCKETS, RUN_COVERED, RUN_EXP, RUN_OBS, RUN_TOTAL,
                                  SLOW, SPIKE, IntentMixBank, MixStep, row_sum)
from riskwatch.settings import PipelineSettings
from streams.signals import Signal

__all__ = ["IntentMixStage"]

#: Closes of at most this many slices skip np.unique (fixed cost beats its savings).
SMALL_CLOSE_ROWS = 256
#: Closes of at most this many slices are scored in plain Python (``_score_few``): the
#: global slice's own close (half of a quiet week's steps) in half the time; from about
#: six slices numpy's fixed cost per call is the cheaper (measured on the benchmark week).
FEW_ROWS = 4

Key = tuple


class IntentMixStage:
    """Scores the intent mix of every slice with complaints (see the module docstring)."""

    metric = "intent_mix"

    def __init__(self, settings: PipelineSettings, *, warmup_buckets: int,
                 pending_buckets: int = 2, alpha: float = 0.01, cover_share: float = 0.5,
                 min_excess: float = 5.0, market_half_life: float = 24.0,
                 market_strength: float = 30.0, **detector_params: float) -> None:
        self.slices = settings.slices
        self.warmup_buckets = warmup_buckets
        self.pending_buckets = pending_buckets
        self.alpha = alpha
        self.cover_share = cover_share
        self.min_excess = min_excess
        self.market_half_life = market_half_life
        self.market_strength = market_strength
        self.bank = IntentMixBank(**detector_params)
        self.intents = self.bank.intents
        self._intent_index = {name: i for i, name in enumerate(self.intents)}
        index = {dims: i for i, dims in enumerate(self.slices)}
        self.global_key: Key = (index[()],)
        self.intent_kind = index.get(("intent",))
        # Parent slice kind of each kind (its mix is the prior): for two dimensions the
        # last one alone when configured (region x carrier -> carrier), else global.
        self.parent_kind: list[int | None] = []
        for dims in self.slices:
            parent = (dims[-1],) if len(dims) > 1 and (dims[-1],) in index else ()
            self.parent_kind.append(None if not dims else index[parent])
        self.rows: dict[Key, int] = {}
        self.parent_row = np.full(256, -1, dtype=np.int64)   # row whose mix is the prior
        self.per_kind = [0] * len(self.slices)
        self.last_bucket = np.zeros(256, dtype=np.int64)
        # Recent complaints by intent per row (half-life ``market_half_life`` buckets):
        # the market's recent mix without the row's own complaints (see _market_factor).
        self.recent = np.zeros((256, len(self.intents)))
        self.first_bucket: int | None = None
        self.pending: dict[tuple, int] = {}        # (slice, intent) -> first alarmed bucket
        self.episodes: dict[tuple, tuple] = {}     # signal key -> (slice, intent)
        # complaint-rate slice with an intent -> last bucket it was alarmed (_inside_page)
        self.intent_pages: dict[Key, int] = {}
        self._day_buckets = 86400 // settings.bucket_seconds

    def __len__(self) -> int:
        return len(self.rows)

    def watched(self, firing: Mapping[tuple, object]) -> set[tuple]:
        """(slice, intent) of this stage's open episodes (``firing``: the signal stage's)."""
        for key in [k for k in self.episodes if k not in firing]:
            del self.episodes[key]
        return set(self.episodes.values())

    def close(self, bucket: int, mixes: Mapping[Key, dict[str, int]],
              recent: Iterable[list[tuple]], alarmed: set[Key],
              firing: Mapping[tuple, object]) -> list[Signal]:
        """Score the closed ``bucket``'s slice mixes; return signals of alarmed slices.

        ``mixes``: complaints by intent per slice key (dicts); ``recent``: the slices of each
        recent complaint, per bucket (the last one is this bucket's); ``alarmed``:
        complaint-rate slices firing, pending or explained; ``firing``: the signal
        stage's episodes.
        """
        if self.first_bucket is None:
            self.first_bucket = bucket
        learning = bucket - self.first_bucket < self.warmup_buckets
        watched = self.watched(firing)
        self._note_pages(bucket, alarmed)
        # Open episodes and pending alarms are scored even in a bucket without
        # complaints (nothing changes then): a quiet bucket neither resolves nor resets.
        # Scored in any order (rows are independent; _score puts them in row order);
        # new rows are created in sorted order (a parent before its children) and
        # signals come out sorted, so the output does not depend on key order.
        # Sorting 100k keys per close would cost a third of the close.
        # Keys and their mixes side by side (a second lookup per key would hash every
        # key again).
        ordered, values = list(mixes), list(mixes.values())
        extra = ({k for k, _ in watched} | {k for k, _ in self.pending}) - mixes.keys()
        extra.discard(self.global_key)
        ordered.extend(extra)
        values.extend(itertools.repeat(_EMPTY, len(extra)))
        if self.global_key in mixes:
            at = ordered.index(self.global_key)
            del ordered[at], values[at]
        if self.global_key in mixes or self.global_key not in self.rows:
            self._score([self.global_key], bucket, [mixes.get(self.global_key, _EMPTY)],
                        learning, {}, market=False)
        if not ordered:
            return []
        recent = list(recent)
        covered = self._covered_now(recent[-1] if recent else [], alarmed)
        step, rows, level, ordered = self._score(ordered, bucket, values, learning, covered)
        return self._signals(ordered, rows, step, level, bucket, learning, watched,
                             recent, alarmed)

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state.pop("_levels", None)   # a cache (below), not state
        return state

    def _level_of_kind(self) -> np.ndarray:
        """Alarm level per slice kind: Bonferroni over intents and over the slices of
        the kind (as the rate stage). Kept until a kind gains slices (five numpy calls
        a close otherwise)."""
        cached = self.__dict__.get("_levels")
        if cached is not None and cached[0] == self.per_kind:
            return cached[1]
        per_kind = np.maximum(np.asarray(self.per_kind, dtype=np.float64), 1.0)
        level_of_kind = (self.bank.threshold + math.log(len(self.intents))
                         + np.maximum(0.0, np.log(per_kind / 30.0)))
        self._levels = (list(self.per_kind), level_of_kind)
        return level_of_kind

    # -- scoring ----------------------------------------------------------------------
    def _score(self, keys: list[Key], bucket: int, mixes: list[dict[str, int]], learning: bool,
               covered: dict[tuple, int], market: bool = True):
        """Step the bank for ``keys`` (``mixes``: their complaints by intent, aligned)."""
        bank = self.bank
        rows_of, index, k = self.rows, self._intent_index, len(self.intents)
        count = len(keys)
        rows = np.fromiter(map(rows_of.get, keys, itertools.repeat(-1)), dtype=np.int64,
                           count=count)
        unseen = np.flatnonzero(rows < 0)
        if len(unseen):
            self._add(_sorted([keys[i] for i in unseen.tolist()]), bucket)
            rows[unseen] = np.fromiter(map(rows_of.__getitem__, [keys[i] for i in unseen.tolist()]),
                                       dtype=np.int64, count=len(unseen))
        # Rows in memory order: the bank's gathers and scatters then walk its columns
        # forwards (about a third of a close's numpy time with 100k rows in set order).
        order = np.argsort(rows)
        rows = rows[order]
        order = order.tolist()
        keys = list(map(keys.__getitem__, order))
        # Every (slice, intent) count into y, each item handled in C (map, chain):
        # no Python bytecode runs per slice or per intent.
        mixlist = list(map(mixes.__getitem__, order))
        if count <= FEW_ROWS:
            return self._score_few(keys, rows, bucket, mixlist, learning, covered, market)
        sizes = np.fromiter(map(len, mixlist), dtype=np.int64, count=count)
        items = int(sizes.sum())
        # Integers first (fromiter converts ints to int64 faster than to float64).
        counts = np.fromiter(itertools.chain.from_iterable(map(dict.values, mixlist)),
                             dtype=np.int64, count=items)
        at_intent = np.fromiter(map(index.get, itertools.chain.from_iterable(mixlist),
                                    itertools.repeat(-1)), dtype=np.int64, count=items)
        cell = np.repeat(np.arange(count) * k, sizes) + at_intent
        known = at_intent >= 0   # an intent outside the taxonomy is not scored
        y = np.zeros((count, k))
        if known.all():
            y.ravel()[cell] = counts
        else:
            y.ravel()[cell[known]] = counts[known]
        cov = np.zeros_like(y) if covered else 0.0   # 0.0: none covered (the bank's shortcut)
        if covered:
            position = {k: p for p, k in enumerate(keys)}
            for (key, intent), n in covered.items():
                p, i = position.get(key), index.get(intent)
                if p is not None and i is not None:
                    cov[p, i] = min(n, y[p, i])
        parents = self.parent_row[rows]
        if count > SMALL_CLOSE_ROWS:
            # Parents are few (the market, the carriers): their shares once each.
            parents, which = np.unique(parents, return_inverse=True)
        else:
            # A few dozen rows (a week of a regional shop: most closes): np.unique's
            # calls cost more than the rows' own shares (the same floats per row).
            which = None
        prior = bank.shares(np.maximum(parents, 0))
        prior[parents < 0] = 1.0 / len(self.intents)
        if which is not None:
            prior = prior[which]
        level = self._level_of_kind()[np.fromiter(map(_kind, keys), dtype=np.int64, count=count)]
        gap = np.maximum(bucket - self.last_bucket[rows], 1).astype(np.float64)
        # Recent counts, faded by the buckets since the row was last seen.
        fade = 0.5 ** (gap / self.market_half_life)
        recent = self.recent[rows]
        recent *= fade[:, None]
        recent += y
        self.recent[rows] = recent
        grow = self.rows[self.global_key]
        if market:   # the global row is scored first in every close: its recent is current
            factor = self._market_factor(recent, grow)
        else:
            factor = None
        step = bank.step(rows, y, prior=prior, buckets=gap, protect_at=level,
                         learning=np.full(len(rows), learning), factor=factor, covered=cov)
        self.last_bucket[rows] = bucket
        return step, rows, level, keys

    def _score_few(self, keys: list[Key], rows: np.ndarray, bucket: int,
                   mixes: list[dict[str, int]], learning: bool, covered: dict[tuple, int],
                   market: bool):
        """:meth:`_score` of a few rows (``keys`` in row order, ``rows`` theirs) in plain
        Python around :meth:`IntentMixBank.step_few`: the same floats (+ - * / and
        conditionals for np.maximum; fades in numpy; sums over intents as numpy adds
        them, :func:`~detectors.intent_mix.row_sum`), a third of the numpy calls."""
        bank, k, index = self.bank, len(self.intents), self._intent_index
        y = []
        for mix in mixes:
            row = [0.0] * k
            for intent, n in mix.items():
                i = index.get(intent)
                if i is not None:   # an intent outside the taxonomy is not scored
                    row[i] = float(n)
            y.append(row)
        cov = {}
        if covered:
            position = {key: p for p, key in enumerate(keys)}
            for (key, intent), n in covered.items():
                p, i = position.get(key), index.get(intent)
                if p is not None and i is not None:
                    cov[(p, i)] = float(min(n, y[p][i]))
        row_list = rows.tolist()
        parents = self.parent_row[rows].tolist()
        uniform = [1.0 / k] * k
        distinct = sorted({p for p in parents if p >= 0})   # the market, a carrier or two
        of_parent = dict(zip(distinct, bank.shares_of(distinct))) if distinct else {}
        prior = [of_parent[p] if p >= 0 else uniform for p in parents]
        level = self._level_of_kind().tolist()
        level = [level[key[0]] for key in keys]
        gap = np.maximum(bucket - self.last_bucket[rows], 1).astype(np.float64)
        # Recent counts, faded by the buckets since the row was last seen.
        fade = (0.5 ** (gap / self.market_half_life)).tolist()
        recent = [[v * f + c for v, c in zip(old, mine)]
                  for old, f, mine in zip(self.recent[rows].tolist(), fade, y)]
        self.recent[rows] = recent
        factor = None
        if market:   # the global row is scored first in every close: its recent is current
            grow = self.rows[self.global_key]
            usual = bank.shares_of([grow])[0]
            floor = [u if u > 1e-9 else 1e-9 for u in usual]
            market_recent = self.recent[grow].tolist()
            a = self.market_strength
            factor = []
            for mine in recent:   # as _market_factor
                others = [d if d > 0.0 else 0.0 for d in map(operator.sub, market_recent, mine)]
                total = row_sum(others) + a
                shares = [(o + a * u) / total / f for o, u, f in zip(others, usual, floor)]
                factor.append([q if q > 1.0 else 1.0 for q in shares])
        mu, evidence = bank.step_few(row_list, y, prior=prior, buckets=gap, protect_at=level,
                                     learning=learning, factor=factor, covered=cov)
        self.last_bucket[rows] = bucket
        return MixStep(mu, evidence, y), rows, level, keys

    def _market_factor(self, recent: np.ndarray, grow: int) -> np.ndarray:
        """Per row and intent: the market's recent share (without the row's own
        complaints) over its usual share, shrunk towards 1, at least 1. A shift every slice shares
        (the classifier learning from agents' labels moves complaints between
        lost_parcel and delivery_delay everywhere; a news story) is not any one slice's
        incident; what is left is specific to the slice."""
        usual = self.bank.shares(np.asarray([grow]))[0]
        others = np.maximum(self.recent[grow] - recent, 0.0)   # recent: the rows' own
        a = self.market_strength
        share = (others + a * usual) / (others.sum(axis=1, keepdims=True) + a)
        # Only upwards: an intent the market sees more of is expected more everywhere.
        # Downwards would blame every other slice when one big slice shifts (its intent
        # up means the others' shares of the market look down).
        return np.maximum(share / np.maximum(usual, 1e-9), 1.0)

    def _covered_now(self, complaints: list[tuple], alarmed: set[Key]) -> dict[tuple, int]:
        """(slice, intent) -> complaints of this bucket a complaint-rate page explains.

        A complaint of intent I is explained when one of its slices is paged (firing,
        about to fire, or explained by a page) *for I*: the slice is an intent slice
        (x I), or a slice without intent whose own mix is running high on I (a region
        paged for its lost parcels explains its lost-parcel complaints, not its delays).
        """
        out: dict[tuple, int] = {}
        if not alarmed or self.intent_kind is None:
            return out
        kind = self.intent_kind
        index = self._intent_index
        for keys in complaints:
            paged = [k for k in keys if k in alarmed]
            if not paged:
                continue
            intent = next((k[1] for k in keys if k[0] == kind), None)
            i = index.get(intent)
            if i is None:
                continue
            if not any(k[0] == kind or "intent" in self.slices[k[0]] or self._runs_high(k, i)
                       for k in paged):
                continue
            for k in keys:
                if k[0] != kind and "intent" not in self.slices[k[0]]:
                    out[(k, intent)] = out.get((k, intent), 0) + 1
        return out

    def _recently_covered(self, key: Key, intent: str, recent: list[list[tuple]],
                          alarmed: set[Key]) -> bool:
        """Are most of the last half hour's complaints of ``key`` x ``intent`` in a slice
        paged for the intent *now*? A page can come minutes after the mix run began
        (the run counted them as uncovered when they arrived)."""
        if not alarmed or self.intent_kind is None:
            return False
        mark = (self.intent_kind, intent)
        i = self._intent_index[intent]
        mine = [keys for b in recent for keys in b if key in keys and mark in keys]
        inside = sum(1 for keys in mine
                     if any(k in alarmed and (k[0] == self.intent_kind
                                              or "intent" in self.slices[k[0]]
                                              or self._runs_high(k, i)) for k in keys))
        return bool(mine) and inside >= self.cover_share * len(mine)

    def _note_pages(self, bucket: int, alarmed: set[Key]) -> None:
        """Remember when each complaint-rate slice with an intent was last alarmed (a
        day's worth: a mix run older than that is not helped by it)."""
        last = self.intent_pages
        for paged in alarmed:
            if "intent" in self.slices[paged[0]]:
                last[paged] = bucket
        if len(last) > 64:
            for k in [k for k, b in last.items() if bucket - b > self._day_buckets]:
                del last[k]

    def _inside_page(self, key: Key, intent: str, since: int) -> bool:
        """Was ``key`` inside a slice the complaint rate paged *for this intent* since
        ``since`` (the start of the mix run)?

        A carrier paged for its damaged parcels shifts the mix of every region x
        carrier of that carrier towards "damaged"; those shifts are that page's
        incident, before the page, during it and after it resolved (complaints of a
        run's first minutes arrived before the page and were not covered when they
        came). "Inside": the paged slice has the intent dimension with this intent, and
        its other dimensions are a subset of ``key``'s, with the same values.
        """
        if not self.intent_pages:
            return False
        mine = set(zip(self.slices[key[0]], key[1:]))
        for paged, last in self.intent_pages.items():
            if last < since:
                continue
            values = dict(zip(self.slices[paged[0]], paged[1:]))
            if values.pop("intent") == intent and values.items() <= mine:
                return True
        return False

    def _runs_high(self, key: Key, intent: int) -> bool:
        """Is ``key``'s own mix running high on ``intent``? A slice too young to tell
        (under the bank's minimum volume, or not seen yet) is taken to be."""
        row = self.rows.get(key)
        if row is None:
            return True
        bank = self.bank
        if bank.state[COUNT, row].sum() < bank.min_volume:
            return True
        return bool(bank.state[SLOW:SPIKE + 1, row, intent].max() > 0.0)

    def _add(self, keys: list[Key], bucket: int) -> None:
        first = len(self.rows)
        need = first + len(keys)
        if need > len(self.last_bucket):
            size = max(need, 2 * len(self.last_bucket))
            self.last_bucket = np.resize(self.last_bucket, size)
            self.parent_row = np.resize(self.parent_row, size)
            recent = np.zeros((size, len(self.intents)))
            recent[:len(self.recent)] = self.recent
            self.recent = recent
        for row, key in enumerate(keys, first):
            self.rows[key] = row
            self.per_kind[key[0]] += 1
            parent_kind = self.parent_kind[key[0]]
            if parent_kind is None:
                parent = -1
            elif parent_kind == self.global_key[0]:
                parent = self.rows.get(self.global_key, -1)
            else:
                parent = self.rows.get((parent_kind, key[-1]), -1)
            self.parent_row[row] = parent
        self.bank.add(len(keys))
        self.last_bucket[first:need] = bucket - 1
        self.recent[first:need] = 0.0

    # -- signals ----------------------------------------------------------------------
    def _signals(self, keys, rows, step, level, bucket, learning, watched, recent,
                 alarmed) -> list[Signal]:
        bank = self.bank
        evidence = step.evidence   # an array, or lists from a few rows (_score_few)
        wanted: dict[tuple[int, int], bool] = {}   # (position, intent) -> may page
        if isinstance(evidence, np.ndarray):
            lead = evidence.argmax(axis=1)
            top = evidence[np.arange(len(keys)), lead]
            for pos in np.flatnonzero(top >= level).tolist():
                wanted[(pos, int(lead[pos]))] = True
        else:
            for pos, (row, at_level) in enumerate(zip(evidence, level)):
                top = max(row)
                if top >= at_level:
                    wanted[(pos, row.index(top))] = True   # the first largest, as argmax
        if watched:
            positions = {k: p for p, k in enumerate(keys)}
            for key, intent in watched:
                if key in positions:
                    wanted.setdefault((positions[key], self._intent_index[intent]), False)
        still = {(keys[p], self.intents[i]) for p, i in wanted}
        for held in [k for k in self.pending if k not in still]:
            del self.pending[held]
        if not wanted:
            return []
        # The wanted rows' columns only, as Python floats (a close scores every slice
        # with complaints, and few of them are wanted): at[pos] is pos's place in them.
        at = {pos: j for j, pos in enumerate(sorted({pos for pos, _ in wanted}))}
        picked = rows[list(at)].tolist()
        # All columns of the picked rows in one read (five reads of one column cost more).
        columns = bank.state[:, picked].tolist()
        run = columns[RUN_OBS], columns[RUN_EXP]
        run_covered, run_total = columns[RUN_COVERED], columns[RUN_TOTAL]
        run_buckets = columns[RUN_BUCKETS]
        shares = bank.shares(np.asarray(picked)).tolist()   # (numpy's: cheaper from two rows)
        out = []
        by_slice = sorted(wanted.items(), key=lambda w: (_sort_key(keys[w[0][0]]), w[0][1]))
        for (pos, i), alarm in by_slice:
            j = at[pos]
            key, intent = keys[pos], self.intents[i]
            run_obs, run_exp = run[0][j][i], run[1][j][i]
            ev = float(evidence[pos][i])
            pages = False
            if alarm and not learning and ev >= level[pos]:
                since = self.pending.setdefault((key, intent), bucket)
                # Only the run's complaints no complaint-rate alarm explains count.
                cov, total = run_covered[j][i], run_total[j][i]
                mine = run_obs - cov
                pages = (bucket - since >= self.pending_buckets
                         and mine - run_exp >= self.min_excess
                         and mine >= (1.0 - self.cover_share) * run_obs
                         and float(bank.run_tail(mine, total - cov,
                                                 run_exp / max(total, 1e-9))) <= self.alpha
                         and not self._recently_covered(key, intent, recent, alarmed)
                         and not self._inside_page(
                             key, intent, bucket - int(run_buckets[j][i])))
            dims = dict(zip(self.slices[key[0]], key[1:]))
            dims["intent"] = intent
            signal = Signal(self.metric, dims, float(step.observed[pos][i]),
                            float(step.mu[pos][i]), ev, float(level[pos]), pages, run_obs,
                            run_exp, int(run_buckets[j][i]),
                            self._contributors(shares[j], run, j),
                            _Resetter(bank, int(rows[pos])))
            if pages or alarm is False:
                self.episodes.setdefault(signal.key, (key, intent))
            out.append(signal)
        return out

    def _contributors(self, usual: list[float], run, j: int) -> list[dict]:
        obs, exp = run[0][j], run[1][j]
        # The three largest excesses, ties in intent order (a stable sort, as argsort's).
        excess = [-(o - e) for o, e in zip(obs, exp)]
        order = sorted(range(len(obs)), key=excess.__getitem__)[:3]
        return [{"dimension": "intent", "value": self.intents[i], "observed": obs[i],
                 "expected": round(exp[i], 2), "usual_share": round(usual[i], 3)}
                for i in order if obs[i] > 0]


_EMPTY: dict = {}
_kind = operator.itemgetter(0)


def _sort_key(key: Key) -> tuple:
    return (key[0], tuple(str(v) for v in key[1:]))


def _sorted(keys: list[Key]) -> list[Key]:
    try:
        return sorted(keys)
    except TypeError:   # a non-string value somewhere: compare as text
        return sorted(keys, key=_sort_key)


class _Resetter:
    """A picklable "start fresh CUSUM runs for this slice"."""

    __slots__ = ("bank", "row")

    def __init__(self, bank: IntentMixBank, row: int) -> None:
        self.bank, self.row = bank, row

    def __call__(self) -> None:
        self.bank.reset([self.row])
