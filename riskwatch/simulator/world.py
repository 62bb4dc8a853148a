"""The simulated market: provinces, carriers, categories, merchants and complaint odds.

Everything here is a fixed table or is drawn once per seed, so the incident planner
(:mod:`riskwatch.simulator.incidents`) can compute *expected* complaint rates for any
slice without generating a single event, and the traffic engine draws orders from
exactly the same distributions.

The complaint model is factorised on purpose so expectations stay computable::

    P(complaint | order) = BASE_COMPLAINT_RATE * quality[merchant] * carrier * category factor
    P(intent | complaint) ∝ INTENT_BASE[intent] * category tilt * carrier tilt

and, given the merchant, the order's region, carrier and category are independent.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from riskwatch.events import INTENTS

__all__ = [
    "BASE_COMPLAINT_RATE",
    "CARRIERS",
    "CATEGORIES",
    "INTENT_BASE",
    "PROVINCES",
    "World",
    "build_world",
]

#: Mean share of orders that turn into a complaint (before merchant/carrier/category factors).
BASE_COMPLAINT_RATE = 0.015


@dataclasses.dataclass(frozen=True)
class Province:
    name: str
    demand: float   # share of buyers (where parcels go); drives the order's ``region``
    supply: float   # share of shops shipping from here (merchant home regions)
    remote: bool    # one more day in transit
    hubs: tuple[str, ...]  # sorting-centre cities named in complaint texts


# Demand roughly follows online retail sales by province; supply follows parcel pickup
# volume, which is far more concentrated (Guangdong, Zhejiang: Yiwu, Hangzhou, Shenzhen).
PROVINCES: tuple[Province, ...] = (
    Province("广东", 13.0, 24.0, False, ("广州", "深圳", "东莞")),
    Province("浙江", 9.5, 20.0, False, ("杭州", "义乌", "金华")),
    Province("江苏", 9.0, 9.0, False, ("南京", "苏州", "无锡")),
    Province("山东", 6.0, 4.5, False, ("济南", "青岛", "临沂")),
    Province("上海", 5.5, 6.0, False, ("上海",)),
    Province("北京", 5.0, 3.5, False, ("北京",)),
    Province("河南", 4.8, 3.0, False, ("郑州",)),
    Province("四川", 4.6, 2.0, False, ("成都",)),
    Province("福建", 4.2, 6.0, False, ("厦门", "泉州", "福州")),
    Province("湖北", 3.8, 2.0, False, ("武汉",)),
    Province("河北", 3.8, 3.5, False, ("石家庄", "保定")),
    Province("湖南", 3.3, 1.5, False, ("长沙",)),
    Province("安徽", 3.3, 2.0, False, ("合肥",)),
    Province("陕西", 2.5, 1.0, False, ("西安",)),
    Province("江西", 2.2, 1.2, False, ("南昌",)),
    Province("重庆", 2.2, 1.0, False, ("重庆",)),
    Province("辽宁", 2.2, 1.0, False, ("沈阳", "大连")),
    Province("广西", 2.0, 0.8, False, ("南宁",)),
    Province("云南", 1.9, 0.6, False, ("昆明",)),
    Province("天津", 1.5, 1.0, False, ("天津",)),
    Province("山西", 1.5, 0.5, False, ("太原",)),
    Province("黑龙江", 1.3, 0.4, False, ("哈尔滨",)),
    Province("贵州", 1.3, 0.3, False, ("贵阳",)),
    Province("吉林", 1.0, 0.3, False, ("长春",)),
    Province("内蒙古", 0.9, 0.2, True, ("呼和浩特",)),
    Province("新疆", 0.9, 0.2, True, ("乌鲁木齐",)),
    Province("甘肃", 0.8, 0.2, True, ("兰州",)),
    Province("海南", 0.7, 0.2, True, ("海口",)),
    Province("宁夏", 0.3, 0.05, True, ("银川",)),
    Province("青海", 0.2, 0.05, True, ("西宁",)),
    Province("西藏", 0.15, 0.02, True, ("拉萨",)),
)


@dataclasses.dataclass(frozen=True)
class Carrier:
    name: str
    share: float       # national parcel market share
    complaints: float  # complaint-rate factor (before normalisation)
    speed: float       # transit-time factor (<1 is faster)
    tilt: dict[str, float]  # intent mix multipliers


CARRIERS: tuple[Carrier, ...] = (
    Carrier("中通", 0.22, 1.00, 1.00, {}),
    Carrier("圆通", 0.16, 1.00, 1.00, {}),
    Carrier("韵达", 0.14, 1.10, 1.05, {"wrong_delivery": 1.2}),
    Carrier("申通", 0.12, 1.15, 1.05, {"service_attitude": 1.2, "lost_parcel": 1.1}),
    Carrier("极兔", 0.12, 1.30, 1.10, {"delivery_delay": 1.3, "lost_parcel": 1.4,
                                      "wrong_delivery": 1.3, "service_attitude": 1.3}),
    # SF charges by weight/volume more strictly; SF and JD are fast and rarely late.
    Carrier("顺丰", 0.11, 0.70, 0.70, {"delivery_delay": 0.6, "pickup_urge": 0.7,
                                      "weight_mismatch": 2.5, "service_attitude": 0.8}),
    Carrier("邮政EMS", 0.07, 0.95, 1.20, {"delivery_delay": 1.5, "pickup_urge": 1.2,
                                         "customs": 2.0}),
    Carrier("京东物流", 0.06, 0.65, 0.70, {"delivery_delay": 0.6, "pickup_urge": 0.6,
                                        "lost_parcel": 0.7}),
)


@dataclasses.dataclass(frozen=True)
class Category:
    name: str
    share: float
    complaints: float
    median_amount: float  # yuan
    tilt: dict[str, float]


CATEGORIES: tuple[Category, ...] = (
    Category("服饰", 0.22, 1.20, 129.0, {"quality": 2.0, "refund": 1.3}),
    Category("数码", 0.09, 1.00, 899.0, {"fake_shipment": 1.5, "quality": 1.3,
                                       "duplicate_charge": 1.2}),
    Category("美妆", 0.10, 1.10, 199.0, {"quality": 1.8, "customs": 2.5}),
    Category("食品", 0.12, 0.80, 59.0, {"quality": 1.2, "damaged": 1.3}),
    Category("家居", 0.11, 0.90, 149.0, {"damaged": 1.8, "weight_mismatch": 1.5}),
    Category("母婴", 0.07, 1.00, 169.0, {"customs": 3.0, "quality": 1.4}),
    Category("生鲜", 0.05, 1.60, 89.0, {"damaged": 3.0, "delivery_delay": 1.3, "quality": 1.5}),
    Category("图书", 0.04, 0.50, 49.0, {"damaged": 1.3, "quality": 0.5}),
    Category("家电", 0.06, 1.10, 1299.0, {"damaged": 2.2, "service_attitude": 1.2,
                                        "weight_mismatch": 1.5}),
    Category("运动", 0.06, 0.90, 259.0, {"quality": 1.2}),
    Category("宠物", 0.04, 0.90, 99.0, {"damaged": 1.2}),
)

#: Intent mix of an average complaint (sums to 1): delivery problems dominate.
INTENT_BASE: dict[str, float] = {
    "delivery_delay": 0.26, "pickup_urge": 0.15, "lost_parcel": 0.07, "damaged": 0.07,
    "wrong_delivery": 0.04, "fake_shipment": 0.03, "quality": 0.12, "weight_mismatch": 0.02,
    "duplicate_charge": 0.02, "refund": 0.10, "service_attitude": 0.06, "customs": 0.01,
    "other": 0.05,
}

REGION_NAMES: tuple[str, ...] = tuple(p.name for p in PROVINCES)
CARRIER_NAMES: tuple[str, ...] = tuple(c.name for c in CARRIERS)
CATEGORY_NAMES: tuple[str, ...] = tuple(c.name for c in CATEGORIES)
INTENT_INDEX: dict[str, int] = {name: i for i, name in enumerate(INTENTS)}

#: Share of a merchant's orders that stay in its own province (local buyers).
_LOCAL_SHARE = (0.10, 0.30)
#: Share of a merchant's orders in its main category.
_CATEGORY_FOCUS = 0.85
#: Share of merchants that open during the simulated period (cold-start slices).
_NEW_MERCHANT_SHARE = 0.03


def _normalised(values: list[float] | np.ndarray) -> np.ndarray:
    arr = np.asarray(values, dtype=float)
    return arr / arr.sum()


REGION_DEMAND = _normalised([p.demand for p in PROVINCES])
REGION_SUPPLY = _normalised([p.supply for p in PROVINCES])
REGION_REMOTE = np.array([p.remote for p in PROVINCES])
CARRIER_SHARE = _normalised([c.share for c in CARRIERS])
CARRIER_SPEED = np.array([c.speed for c in CARRIERS])
CATEGORY_SHARE = _normalised([c.share for c in CATEGORIES])
CATEGORY_MEDIAN_AMOUNT = np.array([c.median_amount for c in CATEGORIES])
# Factors are normalised to a volume-weighted mean of 1, so the overall complaint rate
# stays close to BASE_COMPLAINT_RATE whatever the tables say.
CARRIER_FACTOR = np.array([c.complaints for c in CARRIERS])
CARRIER_FACTOR /= CARRIER_SHARE @ CARRIER_FACTOR
CATEGORY_FACTOR = np.array([c.complaints for c in CATEGORIES])
CATEGORY_FACTOR /= CATEGORY_SHARE @ CATEGORY_FACTOR


def _intent_mix() -> np.ndarray:
    """P(intent | category, carrier) as an array [category, carrier, intent]."""
    base = np.array([INTENT_BASE[i] for i in INTENTS])
    mix = np.empty((len(CATEGORIES), len(CARRIERS), len(INTENTS)))
    for k, cat in enumerate(CATEGORIES):
        for c, car in enumerate(CARRIERS):
            tilt = np.array([cat.tilt.get(i, 1.0) * car.tilt.get(i, 1.0) for i in INTENTS])
            mix[k, c] = base * tilt / (base * tilt).sum()
    return mix


INTENT_MIX = _intent_mix()
INTENT_CUMULATIVE = np.cumsum(INTENT_MIX, axis=2)


@dataclasses.dataclass(frozen=True, eq=False)
class World:
    """Merchants of one seed, as parallel numpy arrays indexed by merchant number.

    ``weight`` is the share of orders each merchant gets while open; ``open_at`` is the
    epoch second from which it takes orders (the simulation start for established shops).
    """

    merchant_ids: tuple[str, ...]
    weight: np.ndarray
    rank: np.ndarray            # 1 = biggest shop
    home: np.ndarray            # region index it ships from
    local_share: np.ndarray
    primary_carrier: np.ndarray
    carrier_loyalty: np.ndarray  # share of its parcels going with the primary carrier
    main_category: np.ndarray
    quality: np.ndarray         # complaint multiplier, lognormal, volume-weighted mean 1
    open_at: np.ndarray

    @property
    def size(self) -> int:
        return len(self.merchant_ids)

    def open_weights(self, t: int) -> np.ndarray:
        """Order share per merchant at epoch ``t`` (closed merchants get 0), summing to 1."""
        w = np.where(self.open_at <= t, self.weight, 0.0)
        return w / w.sum()

    def region_column(self, region: int) -> np.ndarray:
        """P(order region = ``region`` | merchant), per merchant."""
        return ((1.0 - self.local_share) * REGION_DEMAND[region]
                + np.where(self.home == region, self.local_share, 0.0))

    def carrier_column(self, carrier: int) -> np.ndarray:
        """P(carrier = ``carrier`` | merchant), per merchant."""
        return ((1.0 - self.carrier_loyalty) * CARRIER_SHARE[carrier]
                + np.where(self.primary_carrier == carrier, self.carrier_loyalty, 0.0))

    def _carrier_category_mass(self, x: np.ndarray) -> np.ndarray:
        """sum_m x[m] P(carrier | m) P(category | m) as [carrier, category], in O(merchants).

        Both conditionals are "a point mass plus a national share", so the sum splits
        into four bincounts instead of a dense merchant x carrier x category tensor.
        """
        n_c, n_k = len(CARRIERS), len(CATEGORIES)
        loyal = x * self.carrier_loyalty
        spread = x - loyal
        both = np.bincount(self.primary_carrier * n_k + self.main_category,
                           weights=loyal * _CATEGORY_FOCUS, minlength=n_c * n_k)
        mass = both.reshape(n_c, n_k)
        mass += np.outer(np.bincount(self.primary_carrier, weights=loyal, minlength=n_c)
                         * (1.0 - _CATEGORY_FOCUS), CATEGORY_SHARE)
        mass += np.outer(CARRIER_SHARE, np.bincount(self.main_category, weights=spread,
                                                    minlength=n_k) * _CATEGORY_FOCUS)
        mass += spread.sum() * (1.0 - _CATEGORY_FOCUS) * np.outer(CARRIER_SHARE, CATEGORY_SHARE)
        return mass

    def slice_intent_rates(self, t: int, *, region: int | None = None,
                           carrier: int | None = None,
                           merchant: int | None = None) -> np.ndarray:
        """Expected complaints per order *of the whole market*, by intent, in one slice.

        Multiply by the market's order exposure to get expected complaints of the slice.
        ``None`` means "any" for that dimension.

        >>> w = build_world(50, seed=1, start=0, span=86400)
        >>> total = w.slice_intent_rates(0).sum()
        >>> parts = sum(w.slice_intent_rates(0, region=r).sum() for r in range(len(PROVINCES)))
        >>> bool(abs(total - parts) < 1e-12), bool(0.005 < total < 0.05)
        (True, True)
        """
        x = self.open_weights(t) * self.quality * BASE_COMPLAINT_RATE
        if merchant is not None:
            x = np.where(np.arange(self.size) == merchant, x, 0.0)
        if region is not None:
            x = x * self.region_column(region)
        mass = self._carrier_category_mass(x)             # [carrier, category]
        mass = mass * CARRIER_FACTOR[:, None] * CATEGORY_FACTOR[None, :]
        if carrier is not None:
            keep = np.zeros(len(CARRIERS))
            keep[carrier] = 1.0
            mass = mass * keep[:, None]
        # INTENT_MIX is [category, carrier, intent]
        return np.einsum("ck,kci->i", mass, INTENT_MIX)

    def slice_order_share(self, t: int, *, region: int | None = None,
                          carrier: int | None = None, merchant: int | None = None) -> float:
        """Expected share of the market's orders that fall in one slice."""
        w = self.open_weights(t)
        if merchant is not None:
            w = np.where(np.arange(self.size) == merchant, w, 0.0)
        if region is not None:
            w = w * self.region_column(region)
        if carrier is not None:
            w = w * self.carrier_column(carrier)
        return float(w.sum())


def build_world(merchants: int, seed: int, start: int, span: int) -> World:
    """Draw the merchants of one seed (``start``/``span`` in epoch seconds)."""
    rng = np.random.default_rng([seed, 0])
    n = merchants
    # Zipf-like sizes: rank 1 takes ~5% of orders, the bottom half ~10% together.
    rank = rng.permutation(n) + 1
    weight = (rank + 2.0) ** -1.0 * rng.lognormal(0.0, 0.25, n)
    weight /= weight.sum()
    home = rng.choice(len(PROVINCES), size=n, p=REGION_SUPPLY)
    local_share = rng.uniform(*_LOCAL_SHARE, n)
    primary_carrier = rng.choice(len(CARRIERS), size=n, p=CARRIER_SHARE)
    carrier_loyalty = rng.uniform(0.5, 0.9, n)
    main_category = rng.choice(len(CATEGORIES), size=n, p=CATEGORY_SHARE)
    # A lognormal spread, plus a few shops that are simply bad (3x complaints).
    quality = rng.lognormal(0.0, 0.45, n) * np.where(rng.random(n) < 0.03, 3.0, 1.0)
    quality /= weight @ quality
    open_at = np.full(n, start, dtype=np.int64)
    hours = span // 3600
    if hours >= 2:
        # New shops are small ones (rank beyond the top 5%) opening on an hour boundary.
        eligible = np.flatnonzero(rank > max(50, n // 20))
        n_new = min(len(eligible), int(round(_NEW_MERCHANT_SHARE * n)))
        if n_new:
            new = rng.choice(eligible, size=n_new, replace=False)
            open_at[new] = start + 3600 * rng.integers(1, hours, n_new)
    width = max(4, len(str(n)))
    ids = tuple(f"m{i + 1:0{width}d}" for i in range(n))
    return World(ids, weight, rank, home, local_share, primary_carrier, carrier_loyalty,
                 main_category, quality, open_at)
