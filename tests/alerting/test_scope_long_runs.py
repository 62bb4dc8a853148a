"""A slice that crept up for hours is explained by the paged incident it holds now.

Backtest seed 7: the category 食品 had been a little above its baseline for five hours
(29 complaints against 8.8 over 58 buckets) when shop m0185's fake shipments, which
page as m0185 x fake_shipment, pushed it over its level. Against the shop's excess (8)
the category's whole run (20) looked like a larger incident of its own and paged too.
Against a sibling that already pages, a long run now counts only its recent excess.
"""

from __future__ import annotations

import collections

from riskwatch.settings import PipelineSettings
from streams.detection import Evaluation
from streams.scope import IncidentScope


def _setup():
    settings = PipelineSettings()
    kinds = {dims: i for i, dims in enumerate(settings.slices)}
    category = (kinds[("category",)], "食品")
    shop = (kinds[("merchant_id", "intent")], "m0185", "fake_shipment")
    recent = collections.deque(maxlen=6)
    for b in range(6):   # 8 of the shop's complaints (in 食品) and one other 食品 complaint
        recent.append([(category, shop)] * (2 if b < 2 else 1) + ([(category,)] if b == 5 else []))
    scope = IncidentScope(settings, recent, explain_share=0.6)
    cat = Evaluation(category, 3, 0.15, 100.0, 1.0, 12.5, 12.0, True, 29.0, 8.8, 58, 900)
    shop_eval = Evaluation(shop, 2, 0.001, 1.0, 1.0, 33.0, 15.0, True, 8.0, 0.004, 5, 900)
    return scope, cat, shop_eval


def test_a_long_run_is_explained_by_the_paged_incident_it_holds_now():
    scope, cat, shop = _setup()
    alarmed = {cat.key: cat, shop.key: shop}
    assert scope.explainer(cat, alarmed, firing={shop.key: object()}) == shop.key


def test_without_a_page_the_whole_run_still_counts():
    scope, cat, shop = _setup()
    alarmed = {cat.key: cat, shop.key: shop}
    assert scope.explainer(cat, alarmed) is None


def test_a_short_run_is_judged_on_its_run_as_before():
    scope, cat, shop = _setup()
    short = Evaluation(cat.key, 3, 0.15, 100.0, 1.0, 12.5, 12.0, True, 29.0, 8.8, 10, 900)
    alarmed = {short.key: short, shop.key: shop}
    assert scope.explainer(short, alarmed, firing={shop.key: object()}) is None
