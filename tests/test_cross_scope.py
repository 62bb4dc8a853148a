"""One incident, one page across scopes that cut each other.

Two rules found by the five-seed backtest (README *Backtest*), tested here on the
decision itself:

- a region whose rise is a paged carrier's wave passing through it (申通 x damaged
  in 江苏) is explained by that page, unless the region's complaints *outside* the
  page are beyond Poisson noise (``IncidentScope.explainer``);
- a slice inside a slice the complaint rate paged for an intent (广东 x 圆通 inside
  圆通 x damaged) does not page an intent-mix shift to that intent, also after the
  page resolved, while the mix run that began before it lasts
  (``IntentMixStage._inside_page``).
"""

from __future__ import annotations

import collections

import pytest

from riskwatch.settings import PipelineSettings
from streams.detection import Evaluation
from streams.mix import IntentMixStage
from streams.scope import IncidentScope

SETTINGS = PipelineSettings()
KIND = {dims: i for i, dims in enumerate(SETTINGS.slices)}
REGION = (KIND[("region",)], "江苏")
OTHER_REGION = (KIND[("region",)], "浙江")
CARRIER_DAMAGED = (KIND[("carrier", "intent")], "申通", "damaged")
INTENT_ONLY = (KIND[("intent",)], "damaged")
REGION_X_CARRIER = (KIND[("region", "carrier")], "江苏", "中通")
REGION_DAMAGED = (KIND[("region", "intent")], "江苏", "damaged")


def _evaluation(key, run_observed, run_expected, expected_per_bucket):
    return Evaluation(key=key, observed=int(run_observed / 6), expected=expected_per_bucket,
                      exposure=100.0, score=0.99, evidence=12.0, level=11.0, alarmed=True,
                      run_observed=run_observed, run_expected=run_expected, run_buckets=30,
                      age_buckets=2000)


def _explainer(inside: int, outside: int, page=CARRIER_DAMAGED, mine=REGION):
    """Half an hour of ``mine``'s complaints, ``inside`` of them also in the paged
    slice ``page``, which has 20 more elsewhere (a wave across the country). The
    page holds fewer than half of ``mine``'s recent complaints, so the older sibling
    rules do not apply: what is tested is the rule for a page cutting across."""
    buckets: collections.deque = collections.deque(maxlen=6)
    complaints = ([(mine, page)] * inside + [(mine,)] * outside + [(OTHER_REGION, page)] * 20)
    for b in range(6):
        buckets.append(complaints[b::6])
    scope = IncidentScope(SETTINGS, buckets, explain_share=0.5)
    region = _evaluation(mine, run_observed=28.0, run_expected=9.0, expected_per_bucket=0.4)
    wave = _evaluation(page, run_observed=60.0, run_expected=1.5, expected_per_bucket=0.1)
    return scope.explainer(region, {mine: region, page: wave}, firing={page: object()})


def test_a_paged_wave_through_a_region_explains_the_region():
    # 5 of the region's 12 recent complaints are the carrier's damaged parcels; the
    # other 7 are within Poisson noise of its usual 2.4 (0.4 a bucket).
    assert _explainer(inside=5, outside=7) == CARRIER_DAMAGED


def test_a_region_with_a_rise_of_its_own_still_pages():
    # 12 complaints outside the page in half an hour, where 2.4 are usual: news.
    assert _explainer(inside=5, outside=12) is None


def test_only_a_page_that_names_a_scope_cuts_across():
    # The nationwide damaged slice is not a scope across the region: the rule is silent.
    assert _explainer(inside=5, outside=7, page=INTENT_ONLY) is None


def test_a_page_sharing_a_dimension_is_left_to_the_nesting_rules():
    # 江苏 x damaged shares the region with 江苏 x 中通: not across it.
    assert _explainer(inside=5, outside=7, page=REGION_DAMAGED, mine=REGION_X_CARRIER) is None


@pytest.fixture
def stage() -> IntentMixStage:
    return IntentMixStage(SETTINGS, warmup_buckets=0)


LANE = (KIND[("region", "carrier")], "广东", "圆通")
YT_DAMAGED = (KIND[("carrier", "intent")], "圆通", "damaged")


def test_a_slice_inside_a_page_for_the_intent_is_that_page(stage):
    stage._note_pages(100, {YT_DAMAGED, REGION})
    assert stage._inside_page(LANE, "damaged", since=90)
    assert not stage._inside_page(LANE, "delivery_delay", since=90)          # other intent
    assert not stage._inside_page((KIND[("region", "carrier")], "广东", "中通"), "damaged",
                                  since=90)                                    # other carrier
    assert not stage._inside_page((KIND[("category",)], "服饰"), "damaged", since=90)


def test_the_page_still_counts_after_it_resolved_for_a_run_that_began_before(stage):
    stage._note_pages(100, {YT_DAMAGED})
    stage._note_pages(113, set())          # resolved: no longer alarmed
    assert stage._inside_page(LANE, "damaged", since=95)    # the run began while paged
    assert not stage._inside_page(LANE, "damaged", since=101)  # a run of its own, later


def test_remembered_pages_are_bounded(stage):
    for b in range(200):
        stage._note_pages(b, {(KIND[("merchant_id", "intent")], f"m{b}", "damaged")})
    stage._note_pages(600, {YT_DAMAGED})
    assert set(stage.intent_pages) == {YT_DAMAGED}
