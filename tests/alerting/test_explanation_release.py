"""When a page resolves, every slice its incident kept quiet is free again.

Explanations chain: 广东 x 中通 is explained by the shop m1188, which is explained by
m1188 x fake_shipment, which paged. When that page resolves, the whole chain must be
forgotten, not only its first link: a stale link to m1188 used to keep 广东 x 中通
quiet through its next, unrelated delay wave (backtest seed 5: paged 30 minutes late).
"""

from __future__ import annotations

from detectors.rate_bank import SLOW, SPIKE
from riskwatch.settings import PipelineSettings
from streams.pipeline import Pipeline


def _pipeline() -> tuple[Pipeline, dict[str, tuple]]:
    p = Pipeline(settings=PipelineSettings())
    kinds = {dims: i for i, dims in enumerate(p.settings.slices)}
    keys = {
        "shop_intent": (kinds[("merchant_id", "intent")], "m1188", "fake_shipment"),
        "shop": (kinds[("merchant_id",)], "m1188"),
        "lane": (kinds[("region", "carrier")], "广东", "中通"),
        "region": (kinds[("region",)], "广东"),
        "other": (kinds[("carrier",)], "顺丰"),
        "other_page": (kinds[("carrier", "intent")], "顺丰", "damaged"),
    }
    p.explained.update({keys["shop"]: keys["shop_intent"], keys["lane"]: keys["shop"],
                        keys["region"]: keys["lane"], keys["other"]: keys["other_page"]})
    return p, keys


def test_resolving_a_page_releases_its_whole_explanation_chain():
    p, k = _pipeline()
    released = p._release_explained(k["shop_intent"])
    assert {key for key, _ in released} == {k["shop"], k["lane"], k["region"]}
    # Only the slice the page explained itself is marked direct (feedback mutes it).
    assert [key for key, direct in released if direct] == [k["shop"]]
    # Another incident's explanation is untouched.
    assert p.explained == {k["other"]: k["other_page"]}


def test_release_restarts_the_released_slices_cusum_runs():
    p, k = _pipeline()
    scorer = p.scorer
    for key in (k["lane"], k["other"]):
        row = scorer.rows[key] = len(scorer.row_keys)
        scorer.row_keys.append(key)
        scorer.bank.add(1)
        scorer.bank.state[row, [SLOW, SPIKE]] = 9.0   # evidence of an old run
    p._release_explained(k["shop_intent"])
    assert scorer.bank.evidence([scorer.rows[k["lane"]]]).tolist() == [0.0]
    assert scorer.bank.evidence([scorer.rows[k["other"]]]).tolist() == [9.0]


def test_a_cycle_in_the_graph_ends():
    p, k = _pipeline()
    p.explained[k["shop_intent"]] = k["region"]     # region -> lane -> shop -> shop_intent -> region
    released = p._release_explained(k["shop_intent"])
    assert {key for key, _ in released} == {k["shop"], k["lane"], k["region"], k["shop_intent"]}
