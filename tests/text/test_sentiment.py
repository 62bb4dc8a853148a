"""Anger, sentiment, escalation flags, priority; and the streams.text package surface."""

from __future__ import annotations

import importlib

import pytest

from streams.text import anger_level, priority, sensitive_flags, sentiment


def test_anger_orders_calm_annoyed_furious():
    calm = anger_level("请问我的快递什么时候到")
    annoyed = anger_level("太慢了，有点生气")
    furious = anger_level("垃圾快递！！！气死我了，骗子公司😡😡")
    assert calm == 0.0
    assert 0.0 < annoyed < furious <= 1.0
    assert furious > 0.9


@pytest.mark.parametrize("text", ["怎么还没到？？？？", "快点送！！！！", "😡", "WTF where is it"])
def test_shouting_and_emoji_count_as_anger(text):
    assert anger_level(text) > 0.2


def test_sentiment_signs():
    assert sentiment("快递员很耐心，非常满意，谢谢") > 0.5
    assert sentiment("太失望了，差评") < -0.3
    assert sentiment("不太满意") < 0 < sentiment("满意")           # negated compliment
    assert sentiment("请问几点关门") == 0.0
    assert -1.0 <= sentiment("垃圾！！！！！！气死😡🤬🤬" * 5) <= 1.0


# (text, expected flags): one cue family per row, plus look-alikes that must not flag.
FLAGS = [
    ("再不处理我就打12315", {"regulator"}),
    ("我要去消协和市场监管局投诉", {"regulator"}),
    ("已经向邮政管理局申诉，也打了12305", {"regulator"}),
    ("不解决就发微博曝光，还要找记者", {"media"}),
    ("发抖音让大家看看", {"media"}),
    ("我已经找了律师，准备起诉", {"legal"}),
    ("再这样我就报警了，法院见", {"legal"}),
    ("充电宝起火了，手被烫伤", {"safety"}),
    ("吃了过敏，可能中毒了", {"safety"}),
    ("电器漏电，差点出事", {"safety"}),
    ("打了12315还要曝光，律师函已发", {"regulator", "media", "legal"}),
    ("单号123456789，退款到工商银行卡", set()),     # 12345 inside a number, ICBC
    ("气到爆炸，快递太慢了", set()),                 # a figure of speech
    ("快递三天没到", set()),
]


@pytest.mark.parametrize(("text", "flags"), FLAGS)
def test_sensitive_flags(text, flags):
    assert sensitive_flags(text) == frozenset(flags)


# (anger, flags, tier, expected): the documented table, row by row.
PRIORITIES = [
    (0.0, set(), None, "P4"),
    (0.39, set(), "regular", "P4"),
    (0.4, set(), None, "P3"),
    (0.1, set(), " VIP ", "P3"),               # tiers are compared stripped, lower-cased
    (0.5, set(), "svip", "P2"),
    (0.8, set(), None, "P2"),
    (0.1, {"regulator"}, None, "P2"),
    (0.69, {"media"}, None, "P2"),
    (0.7, {"legal"}, None, "P1"),
    (0.0, {"regulator", "media"}, None, "P1"),
    (0.0, {"safety"}, None, "P1"),
]


@pytest.mark.parametrize(("anger", "flags", "tier", "expected"), PRIORITIES)
def test_priority_table(anger, flags, tier, expected):
    assert priority(anger, frozenset(flags), tier) == expected


def test_priority_tiers_are_configurable():
    assert priority(0.1, frozenset(), "gold") == "P3"
    assert priority(0.1, frozenset(), "gold", high_tiers=frozenset({"black"})) == "P4"


def test_end_to_end_on_masked_text():
    from streams.text import IntentClassifier, contains_unmasked_pii, mask_pii

    raw = "气死了！！！13812345678的快递一周不更新，再不送我就打12315投诉"
    masked = mask_pii(raw)
    assert not contains_unmasked_pii(masked)
    assert IntentClassifier().predict_one(masked)[0] == "delivery_delay"
    assert sensitive_flags(masked) == {"regulator"}
    assert priority(anger_level(masked), sensitive_flags(masked), None) == "P1"


@pytest.mark.parametrize("module", ["streams.text", "streams.text.pii", "streams.text.intent",
                                    "streams.text.sentiment", "streams.text.lexicon",
                                    "streams.text.seed"])
def test_all_is_sorted_and_complete(module):
    mod = importlib.import_module(module)
    assert list(mod.__all__) == sorted(mod.__all__)
    public = {n for n, v in vars(mod).items() if not n.startswith("_")
              and getattr(v, "__module__", module) == module and callable(v)}
    assert public <= set(mod.__all__)
    for name in mod.__all__:
        assert hasattr(mod, name)
