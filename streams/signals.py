"""Slice signals beyond the complaint rate, scored at bucket close, and their alerts.

The complaint-rate stage (:mod:`streams.detection`, :mod:`streams.paging`) watches
complaints per order. This module watches what complaints do not show, or show late:

- ``order_surge`` (:class:`ShopSurgeScorer`): a new or small shop whose orders jump far
  above its share of the market (brushing, fake orders; :mod:`detectors.order_surge`);
- ``overdue_delivery`` (:mod:`streams.delivery`): parcels of a lane not delivered
  within the lane's learned transit time.

Each signal hands :class:`SignalStage` its evaluations; the stage runs the same alert
lifecycle as complaint-rate alerts (:mod:`streams.alerting`): fingerprint = metric +
dimensions, fire on evidence held by a slice old enough and with enough excess, no
pages in maintenance windows or during the pipeline's first (learning) day, severity
from ratio/excess/duration, resolve after quiet buckets. Records follow the output
contract with their own ``metric``.
"""

from __future__ import annotations

import datetime as dt
import math
import operator

import numpy as np

from detectors.order_surge import OrderSurgeBank
from riskwatch.calendar import Calendar
from riskwatch.settings import PipelineSettings
from streams.alerting import AlertEpisode, fingerprint, severity
from streams.delivery import DeliveryTracker, OverdueScorer
from streams.name_order import NameOrder, positions_of_none
from streams.signal_rows import Signal, build_signals

__all__ = ["Signal", "ShopSurgeScorer", "SignalStage"]

_SHOP, _CATEGORY = operator.itemgetter(1), operator.itemgetter(3)   # of an order combo


class ShopSurgeScorer:
    """Order surges per shop (metric ``order_surge``), all shops in one numpy bank.

    Each bucket the shops with orders (and those being watched) are scored against
    ``share x market orders``; a shop quiet for a while learns its quiet span in one
    step. A shop's peers are the shops of its category (the category of its first
    order): the prior share is the category's share of the market per shop. A surge
    *pages* only when it is large for the shop: the run is at least ``min_ratio`` times
    expected, and the shop is new (first seen after the learning day, younger than
    ``new_shop_days``) or small (fewer than ``small_orders_per_day`` expected orders a
    day). A big shop's own sale is visible in the evaluations, not paged.
    """

    metric = "order_surge"

    def __init__(self, bucket_seconds: int, *, new_shop_days: float = 30.0,
                 small_orders_per_day: float = 200.0, min_ratio: float = 5.0,
                 **detector_params: float) -> None:
        self.bank = OrderSurgeBank(**detector_params)
        self.buckets_per_day = 86400 / bucket_seconds
        self.new_shop_buckets = new_shop_days * self.buckets_per_day
        self.small_orders_per_day = small_orders_per_day
        self.min_ratio = min_ratio
        self.rows: dict[str, int] = {}
        self.shops: list[str] = []
        self._name_order = NameOrder()     # rows by shop name, kept across closes
        self.category: list[str] = []
        self.first_bucket: list[int] = []
        self.established: list[bool] = []  # first seen while the pipeline was learning
        self.last_bucket = np.zeros(256, dtype=np.int64)
        self.market_seen = np.zeros(256)        # market cumulative the row has learned
        self.row_category = np.zeros(256, dtype=np.int64)   # the row's category code
        self.market_cum = 0.0                    # all orders so far (no fading)
        self._fade = 0.5 ** (1.0 / self.bank.half_life)
        self.market_faded = 0.0
        # Per category code: its name, faded orders and shops (numpy: every shop's
        # prior is one gather per bucket).
        self.categories: dict[str, int] = {}
        self.category_orders = np.zeros(16)
        self.category_shops = np.zeros(16, dtype=np.int64)

    def __len__(self) -> int:
        return len(self.shops)

    def prior_share(self, category: str) -> float:
        """Mean share of the market per shop of ``category`` (the peers' prior)."""
        code = self.categories.get(category)
        shops = 0 if code is None else int(self.category_shops[code])
        if shops == 0 or self.market_faded <= 0:
            return self.bank.prior_share
        return max(float(self.category_orders[code]) / self.market_faded / shops, 1e-7)

    def _prior_shares(self, rows: np.ndarray) -> np.ndarray:
        """:meth:`prior_share` of each row's category, vectorised (same floats)."""
        code = self.row_category[rows]
        shops = self.category_shops[code]
        if self.market_faded <= 0:
            return np.full(len(rows), self.bank.prior_share)
        with np.errstate(divide="ignore", invalid="ignore"):
            share = np.maximum(self.category_orders[code] / self.market_faded / shops, 1e-7)
        return np.where(shops == 0, self.bank.prior_share, share)

    def close(self, bucket: int, order_combos: dict[tuple, int], watched: set[str],
              learning: bool) -> list[Signal]:
        """Score the bucket's shops (``order_combos`` keyed (region, shop, carrier,
        category)) plus ``watched`` shops; ``learning`` while the pipeline is young."""
        rows = self.rows
        # The bucket's combos as columns (C-level maps); only new shops take a Python
        # path. Orders per shop are one bincount (whole numbers: exact in any order).
        combos = list(order_combos)
        n = len(combos)
        counts = np.fromiter(order_combos.values(), dtype=np.float64, count=n)
        market = sum(order_combos.values())
        shop_column = list(map(_SHOP, combos))
        shop_rows = list(map(rows.get, shop_column))
        if None in shop_rows:
            self._add_new_shops(combos, shop_rows, bucket, learning)
        shop_rows = np.fromiter(shop_rows, dtype=np.int64, count=n)
        fade = self._fade
        self.market_faded = self.market_faded * fade + market
        self.category_orders *= fade
        categories = self.categories
        codes = list(map(categories.get, map(_CATEGORY, combos)))
        if None in codes:
            for j, combo in enumerate(combos):
                if codes[j] is None:
                    code = categories.get(combo[3])
                    codes[j] = self._category(combo[3]) if code is None else code
        # one add per combo, in combo order (np.add.at is unbuffered): the same floats
        # as adding them one by one
        np.add.at(self.category_orders, np.fromiter(codes, dtype=np.int64, count=n), counts)
        before = self.market_cum
        self.market_cum += market
        present = np.zeros(len(self.shops), dtype=bool)
        present[shop_rows] = True
        if watched:
            present[[rows[shop] for shop in watched if shop in rows]] = True
        # The present rows in shop-name order: a mask over the kept name order, not a
        # sort of the bucket's shop names (names are unique: the same order as sorted()).
        by_name = self._name_order.rows(self.shops)
        r = by_name[present[by_name]]
        if not len(r):
            return []
        shop_names = self.shops
        shops = list(map(shop_names.__getitem__, r.tolist()))
        orders_per_row = np.bincount(shop_rows, weights=counts, minlength=len(shop_names))
        bank = self.bank
        prior = self._prior_shares(r)
        gap = bucket - 1 - self.last_bucket[r]
        gap_market = before - self.market_seen[r]
        catch_up = (gap > 0) & (gap_market > 0)
        if catch_up.any():
            c = r[catch_up]
            bank.step(c, market=gap_market[catch_up], prior=prior[catch_up], y=np.zeros(len(c)),
                      buckets=gap[catch_up].astype(np.float64))
        y = orders_per_row[r]
        # Many shops, many chances of a fluke: the level rises with the log of their number.
        level = bank.threshold + max(0.0, math.log(len(self.shops) / 30.0))
        levels = np.full(len(r), level)
        step = bank.step(r, market=np.full(len(r), float(market)), prior=prior, y=y,
                         protect_at=levels, learning=np.full(len(r), learning))
        self.last_bucket[r] = bucket
        self.market_seen[r] = self.market_cum
        # Only alarmed shops (or ones with an open episode) matter to the alert stage:
        # building records for every other shop would cost more than scoring them.
        keep = np.flatnonzero(step.evidence >= level).tolist()
        if watched:
            keep = sorted(set(keep) | {i for i, shop in enumerate(shops) if shop in watched})
        if not keep:
            return []
        share = bank.share(r)
        market_per_day = self.market_faded * (1 - fade) * self.buckets_per_day

        def is_new(i: int) -> bool:
            row = int(r[i])
            return (not self.established[row]
                    and bucket - self.first_bucket[row] < self.new_shop_buckets)

        def pages(i: int, evidence: float, run_obs: float, run_exp: float) -> bool:
            small = share[i] * market_per_day <= self.small_orders_per_day
            return (evidence >= level and not learning and (is_new(i) or small)
                    and run_obs >= self.min_ratio * max(run_exp, 1e-9))

        def contributors(i: int) -> list[dict]:
            shop = shops[i]
            mix: dict[str, int] = {}
            for (region, s, _carrier, _category), n in order_combos.items():
                if s == shop:
                    mix[region] = mix.get(region, 0) + n
            total = sum(mix.values()) or 1
            out = [{"dimension": "region", "value": k, "orders": n, "share": round(n / total, 3)}
                   for k, n in sorted(mix.items(), key=lambda kv: (-kv[1], kv[0]))[:3]]
            new = is_new(i)
            small = share[i] * market_per_day <= self.small_orders_per_day
            out.append({"dimension": "shop", "value": "new" if new else
                        ("small" if small else "established"),
                        "first_seen_bucket": self.first_bucket[int(r[i])]})
            return out

        return build_signals(self.metric, keep, rows=r, bank=bank, step=step, observed=y,
                             level=levels, dims=lambda i: {"merchant_id": shops[i]},
                             pages=pages, contributors=contributors)

    def _category(self, category: str) -> int:
        code = self.categories[category] = len(self.categories)
        if code >= len(self.category_orders):
            self.category_orders = np.resize(self.category_orders, 2 * len(self.category_orders))
            self.category_shops = np.resize(self.category_shops, 2 * len(self.category_shops))
            self.category_orders[code:] = 0.0
            self.category_shops[code:] = 0
        return code

    def _add_new_shops(self, combos: list[tuple], shop_rows: list, bucket: int,
                       learning: bool) -> None:
        """Rows for the shops first seen in this bucket (in order of first sight, each
        in the category of its first combo); fills their rows into ``shop_rows``."""
        rows = self.rows
        start = len(self.shops)
        priors = []
        for j in positions_of_none(shop_rows):
            shop = combos[j][1]
            row = rows.get(shop)
            if row is None:
                category = combos[j][3]
                row = rows[shop] = len(self.shops)
                self.shops.append(shop)
                self.category.append(category)
                self.first_bucket.append(bucket)
                self.established.append(learning)
                code = self.categories.get(category)
                if code is None:
                    code = self._category(category)
                self.category_shops[code] += 1
                priors.append((self.prior_share(category), code))
            shop_rows[j] = row
        end = len(self.shops)
        self.bank.add(end - start, prior_share=np.array([p for p, _ in priors]))
        if end > len(self.last_bucket):
            size = len(self.last_bucket)
            while size < end:
                size *= 2
            self.last_bucket = np.resize(self.last_bucket, size)
            self.market_seen = np.resize(self.market_seen, size)
            self.row_category = np.resize(self.row_category, size)
        self.last_bucket[start:end] = bucket - 1
        self.market_seen[start:end] = self.market_cum
        self.row_category[start:end] = [c for _, c in priors]

    def watched(self, keys) -> set[str]:
        return {k[1][1] for k in keys if k[0] == self.metric}


class SignalStage:
    """Alert lifecycle of the signal detectors (see the module docstring)."""

    def __init__(self, settings: PipelineSettings, *, warmup_buckets: int, quiet_buckets: int,
                 min_excess: float = 5.0) -> None:
        self.bucket_seconds = settings.bucket_seconds
        self.tz = dt.timezone(dt.timedelta(hours=settings.utc_offset_hours))
        self.warmup_buckets = warmup_buckets
        self.quiet_buckets = quiet_buckets
        self.min_excess = min_excess
        self.surge = ShopSurgeScorer(settings.bucket_seconds)
        # Fed per event by the pipeline (order lanes, shipped/delivered statuses).
        self.delivery = DeliveryTracker(settings.bucket_seconds)
        self.overdue = OverdueScorer()
        self.first_bucket: int | None = None
        self.firing: dict[tuple, AlertEpisode] = {}
        #: operators' verdicts (the pipeline's :class:`~streams.feedback.FeedbackBook`)
        self.feedback = None
        self.counters = {"fired": 0, "resolved": 0, "escalated": 0}

    def close(self, bstart: int, order_combos: dict[tuple, int], calendar: Calendar,
              extra: list[Signal] = ()) -> list[dict]:
        """Score the closed bucket; return the alert records (firing / resolved).
        ``extra``: signals scored elsewhere (intent mix, :mod:`streams.mix`)."""
        bucket = bstart // self.bucket_seconds
        if self.first_bucket is None:
            self.first_bucket = bucket
        learning = bucket - self.first_bucket < self.warmup_buckets
        signals = self.surge.close(bucket, order_combos, self.surge.watched(self.firing), learning)
        signals += self.overdue.close(bucket, self.delivery.close(bstart),
                                      self.overdue.watched(self.firing), learning,
                                      self.warmup_buckets)
        signals += extra
        return self._alerting(bstart, signals, calendar.in_maintenance(bstart))

    def _alerting(self, bstart: int, signals: list[Signal], maintenance: bool) -> list[dict]:
        records = []
        bucket = bstart // self.bucket_seconds
        for s in signals:
            key = s.key
            episode = self.firing.get(key)
            if episode is None:
                if maintenance and s.evidence >= s.level:
                    s.reset()   # planned work: nothing pages, nothing saved for later
                    continue
                if not s.pages or s.run_observed - s.run_expected < self.min_excess:
                    continue
                if self.feedback is not None and self.feedback.blocks(
                        fingerprint(s.metric, s.dims), bucket=bucket, evidence=s.evidence, level=s.level):
                    continue   # an operator said false alarm / expected: muted for now
                episode = AlertEpisode(fingerprint(s.metric, s.dims),
                                       bucket - max(s.run_buckets - 1, 0))
                self.firing[key] = episode
                self._update(episode, s)
                self.counters["fired"] += 1
                records.append(self._record(episode, s, bstart, "firing"))
                continue
            # Quiet = back near expected for a while, and for lanes also below the alarm
            # level (due parcels come in lumps: a few empty buckets are not the end of a
            # jam). A shop's evidence is not asked: the capped CUSUM of a tiny shop
            # takes a day to drain.
            # An intent mix is judged over two hours (a slice sees a few complaints an
            # hour) and, as a shop's orders, without its slowly draining CUSUM.
            window = self.quiet_buckets * (4 if s.metric == "intent_mix" else 1)
            quiet = episode.note_bucket(s.observed, s.expected, window)
            if quiet and (s.evidence < s.level or s.metric in (ShopSurgeScorer.metric, "intent_mix")):
                del self.firing[key]
                s.reset()
                self.counters["resolved"] += 1
                records.append(self._record(episode, s, bstart, "resolved"))
            elif self._update(episode, s):
                self.counters["escalated"] += 1
                records.append(self._record(episode, s, bstart, "firing"))
        return records

    def _update(self, episode: AlertEpisode, s: Signal) -> bool:
        if s.run_buckets:
            episode.observed, episode.expected = s.run_observed, s.run_expected
        minutes = s.run_buckets * self.bucket_seconds / 60
        return episode.escalate(severity(observed=episode.observed, expected=episode.expected,
                                         run_minutes=minutes, wide=False))

    def _record(self, episode: AlertEpisode, s: Signal, bstart: int, status: str) -> dict:
        bend = bstart + self.bucket_seconds
        obs, exp = episode.observed, episode.expected
        where = " ".join(f"{k}={v}" for k, v in s.dims.items())
        zh_what, en_what = _WORDS[s.metric]
        if status == "firing":
            ratio = obs / max(exp, 1e-9)
            times = ("100 倍以上", "over 100x") if ratio >= 100 else (f"{ratio:.1f} 倍", f"{ratio:.1f}x")
            # A new shop expects a fraction of an order per bucket: "0.0" would read as none.
            exp_text = f"{exp:.2f}" if exp < 1 else f"{exp:.1f}"
            summary = (f"{where} {zh_what}: 实际 {obs:.0f}, 预期 {exp_text} ({times[0]}) | "
                       f"{en_what}: {obs:.0f} vs {exp_text} expected ({times[1]})")
        else:
            summary = f"{where} {zh_what}已恢复正常 | {en_what} back to normal"
        return {
            "alert_id": episode.alert_id, "fingerprint": episode.fingerprint, "status": status,
            "severity": episode.severity, "metric": s.metric, "dimensions": dict(s.dims),
            "ts": self._iso(bend), "bucket_start": self._iso(bstart), "bucket_end": self._iso(bend),
            "observed": round(obs, 3), "expected": round(exp, 3),
            "score": round(-math.expm1(-s.evidence), 6), "summary": summary,
            "contributors": s.contributors, "examples": [], "context": {},
        }

    def _iso(self, epoch: int) -> str:
        return dt.datetime.fromtimestamp(epoch, self.tz).isoformat()


_WORDS = {
    "order_surge": ("订单量异常激增 (疑似刷单)", "order surge (possible brushing)"),
    "overdue_delivery": ("超时未妥投率异常", "overdue deliveries"),
    "intent_mix": ("投诉类型占比异常", "complaints turned to this intent"),
}
