"""Simulator: ``intent_mix_shift`` incidents turn a category's complaints to one intent,
leave its total (and every other line of the seed) unchanged, and say so in the manifest."""

from __future__ import annotations

import datetime as dt

import orjson
import pytest

from riskwatch.errors import ConfigError
from riskwatch.simulator import SimulationConfig, generate, manifest

CFG = dict(seed=7, days=3, incidents=3, surge_incidents=0, malformed_share=0.0)


@pytest.fixture(scope="module")
def runs():
    with_mix = [line for _, line in generate(SimulationConfig(**CFG))]
    without = [line for _, line in generate(SimulationConfig(**CFG, mix_incidents=0))]
    return with_mix, without, manifest(SimulationConfig(**CFG))


def test_manifest_entries(runs):
    _, _, truth = runs
    mixes = [i for i in truth["incidents"] if i["kind"] == "intent_mix_shift"]
    assert len(mixes) == 2
    for inc in mixes:
        assert inc["metrics"] == ["intent_mix"]
        assert set(inc["dimensions"]) == {"category"}
        assert inc["intent"] == "delivery_delay"
        assert inc["total_multiplier"] == 1.0
        assert inc["share_during"] >= 2.5 * inc["share_before"]
        assert inc["expected_slice_complaints"] >= 35


def _complaints(lines, orders_category):
    out = {}
    for line in lines:
        event = orjson.loads(line)
        if event["type"] == "order":
            orders_category[event["order_id"]] = event["category"]
        elif event["type"] == "complaint":
            out[event["complaint_id"]] = event
    return out


def test_only_turned_complaints_change_and_the_total_stays(runs):
    with_mix, without, truth = runs
    assert len(with_mix) == len(without)
    changed = [(a, b) for a, b in zip(with_mix, without) if a != b]
    assert changed, "the shifts turned no complaint"
    categories: dict[str, str] = {}
    turned = _complaints([a for a, _ in changed], categories)
    _complaints(with_mix, categories)
    mixes = [i for i in truth["incidents"] if i["kind"] == "intent_mix_shift"]
    windows = [(dt.datetime.fromisoformat(i["start"]), dt.datetime.fromisoformat(i["end"]),
                i["dimensions"]["category"]) for i in mixes]
    for a, b in changed:
        old, new = orjson.loads(b), orjson.loads(a)
        assert old["event_id"] == new["event_id"] and old["ts"] == new["ts"]
        if new["type"] == "complaint":
            assert new["text"] != old["text"]
            t = dt.datetime.fromisoformat(new["ts"])
            # (a complaint that lost its order reference shows no category)
            assert any(s <= t < e and (new["order_id"] is None
                                       or categories.get(new["order_id"]) == cat)
                       for s, e, cat in windows)
        else:   # an agent's label: now the turned intent
            assert new["type"] == "complaint_update"
            assert new["intent"] == "delivery_delay"
    assert len(turned) >= 10


def test_mix_incidents_config_is_validated():
    with pytest.raises(ConfigError, match="mix_incidents"):
        SimulationConfig(mix_incidents=-1)
