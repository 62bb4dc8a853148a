"""Anger, sentiment, escalation flags and a handling priority for complaint texts.

All three read the text through small weighted lexicons (:mod:`streams.text.lexicon`)
compiled into one regex each; there is no model to train. They work on masked text.

Examples
--------
>>> anger_level("快递到了，谢谢")
0.0
>>> anger_level("垃圾快递！！！气死我了😡") > 0.9
True
>>> sorted(sensitive_flags("再不处理我就打12315，还要发微博曝光"))
['media', 'regulator']
>>> priority(anger_level("箱子里的充电宝冒烟了"), sensitive_flags("箱子里的充电宝冒烟了"), None)
'P1'
"""

from __future__ import annotations

import math
import os
import re

from streams.text.lexicon import (
    ANGER_WORDS,
    POSITIVE_WORDS,
    SAD_WORDS,
    SENSITIVE_WORDS,
    phrase_pattern,
)

__all__ = ["HIGH_TIERS", "anger_and_sentiment", "anger_level", "priority", "sensitive_flags",
           "sentiment"]

# One pattern over every sentiment phrase, so that at each position the longest phrase
# wins: "不满意" is unhappy, not "满意" (satisfied) after a stray "不".
def _sentiment_weights() -> dict[str, tuple[float, float, float]]:
    """phrase -> (anger, sad, positive) weights."""
    weights: dict[str, list[float]] = {}
    for slot, table in enumerate((ANGER_WORDS, SAD_WORDS, POSITIVE_WORDS)):
        for phrase, w in table.items():
            weights.setdefault(phrase.lower(), [0.0, 0.0, 0.0])[slot] = float(w)
    return {p: (w[0], w[1], w[2]) for p, w in weights.items()}


_WEIGHTS = _sentiment_weights()
_SENTIMENT = phrase_pattern(_WEIGHTS)
_NOT_BEFORE = re.compile(r"(?:不|没|没有|并不|不太|不怎么|not )$")

_EMOJI = {  # (anger, sad, positive)
    "😡": (2.0, 0, 0), "🤬": (3.0, 0, 0), "😠": (1.5, 0, 0), "💢": (1.5, 0, 0),
    "👿": (1.5, 0, 0), "😤": (1.5, 0, 0), "🖕": (3.0, 0, 0), "😾": (1.0, 0, 0),
    "🤮": (1.0, 1.0, 0), "😭": (0, 1.0, 0), "😢": (0, 1.0, 0), "😞": (0, 1.0, 0),
    "🙄": (0.5, 0.5, 0), "😓": (0, 0.5, 0), "💔": (0, 1.0, 0),
    "😊": (0, 0, 1.0), "👍": (0, 0, 1.0), "❤": (0, 0, 1.0), "😄": (0, 0, 1.0),
    "🙏": (0, 0, 0.5), "🌹": (0, 0, 1.0),
}
# Every emoji above is one code point: a character class finds the same matches as an
# alternation and scans much faster (the regex engine skips ahead on a class).
_EMOJI_RE = re.compile("[" + "".join(map(re.escape, _EMOJI)) + "]")
_BANGS = re.compile(r"[!！]{2,}")
_QUESTIONS = re.compile(r"[?？]{2,}")
# A run of two or more contains one of these pairs: a substring test rules out most texts
# before the (slower) scans for runs.
_BANG_PAIRS = ("!!", "!！", "！!", "！！")
_QUESTION_PAIRS = ("??", "?？", "？?", "？？")
_ANGER_SCALE = 3.0      # raw anger 3 (one strong word) -> 0.63, 6 -> 0.86
_SENTIMENT_SCALE = 3.0


def _raw(text: str) -> tuple[float, float, float]:
    t = text.lower()
    anger = sad = pos = 0.0
    for m in _SENTIMENT.finditer(t):
        a, s, p = _WEIGHTS[m.group()]
        if p and _NOT_BEFORE.search(t, max(0, m.start() - 3), m.start()):
            s, p = s + p, 0.0          # "不太满意": a negated compliment is a complaint
        anger, sad, pos = anger + a, sad + s, pos + p
    # Repeated punctuation is shouting: each extra "！" adds 0.5, each extra "？" 0.3.
    if any(pair in text for pair in _BANG_PAIRS):
        for m in _BANGS.finditer(text):
            anger += 0.5 * (min(len(m.group()), 7) - 1)
    if any(pair in text for pair in _QUESTION_PAIRS):
        for m in _QUESTIONS.finditer(text):
            anger += 0.3 * (min(len(m.group()), 7) - 1)
    if _EMOJI_RE.search(text):
        for m in _EMOJI_RE.finditer(text):
            a, s, p = _EMOJI[m.group()]
            anger, sad, pos = anger + a, sad + s, pos + p
    return anger, sad, pos


def anger_level(text: str) -> float:
    """Anger intensity of ``text`` in [0, 1]: swearing, insults, shouting, angry emoji.

    Examples
    --------
    >>> anger_level("请问什么时候发货")
    0.0
    >>> 0.3 < anger_level("太过分了！！") < 0.8
    True
    """
    return anger_and_sentiment(text)[0]


def anger_and_sentiment(text: str) -> tuple[float, float]:
    """:func:`anger_level` and :func:`sentiment` of ``text`` from one scan of its lexicon
    (the complaint desk needs both; the two are this pair's halves).

    Examples
    --------
    >>> anger, polarity = anger_and_sentiment("太过分了！！")
    >>> 0.3 < anger < 0.8 and polarity < 0
    True
    """
    anger, sad, pos = _raw(text)
    return 1.0 - math.exp(-anger / _ANGER_SCALE), math.tanh((pos - anger - sad) / _SENTIMENT_SCALE)


def sentiment(text: str) -> float:
    """Polarity of ``text`` in [-1, 1]: negative for anger and disappointment, positive for
    thanks and praise, 0 for plain questions.

    Examples
    --------
    >>> sentiment("快递员很耐心，谢谢") > 0.5
    True
    >>> sentiment("不太满意，等了一周") < 0
    True
    >>> sentiment("请问几点关门")
    0.0
    """
    return anger_and_sentiment(text)[1]


# Escalation cues. Hotline numbers must stand alone: "12345" inside an order number is not
# the government hotline.
_FLAG_OF = {w.lower(): flag for flag, words in SENSITIVE_WORDS.items() for w in words
            if not w.isdigit()}
_FLAGS = phrase_pattern(_FLAG_OF)
_HOTLINES = re.compile(r"(?<![0-9])(?:" + "|".join(
    w for words in SENSITIVE_WORDS.values() for w in words if w.isdigit()) + r")(?![0-9])")
_HOTLINE_FLAG = {w: flag for flag, words in SENSITIVE_WORDS.items() for w in words
                 if w.isdigit()}
# what every hotline number starts with ("123"): a substring test before the slow scan
_HOTLINE_PREFIX = os.path.commonprefix(list(_HOTLINE_FLAG))
# Figures of speech and names that contain an escalation word.
_NOT_ESCALATION = re.compile(
    r"气(?:到|得)?(?:要)?爆炸|要爆炸了|爆炸性|信息爆炸|工商银行|工商局?注册")


def sensitive_flags(text: str) -> frozenset[str]:
    """Escalation signals in ``text``: ``regulator`` (12315, 消协, 市场监管, 工商, 邮政管理局,
    12305), ``media`` (曝光, 媒体, 微博, 抖音, 记者), ``legal`` (律师, 起诉, 法院, 报警) and
    ``safety`` (受伤, 爆炸, 起火, 过敏, 中毒, 漏电).

    Examples
    --------
    >>> sensitive_flags("充电宝起火了，孩子手被烫伤")
    frozenset({'safety'})
    >>> sorted(sensitive_flags("已经找律师了，准备起诉，顺便打了12315"))
    ['legal', 'regulator']
    >>> sensitive_flags("单号1234567890，退款到工商银行卡")
    frozenset()
    >>> sensitive_flags("气到爆炸，快递太慢了")
    frozenset()
    """
    t = text.lower()
    if _NOT_ESCALATION.search(t):
        t = _NOT_ESCALATION.sub("", t)
    flags = {_FLAG_OF[m.group()] for m in _FLAGS.finditer(t)}
    if _HOTLINE_PREFIX in t:
        flags.update(_HOTLINE_FLAG[m.group()] for m in _HOTLINES.finditer(t))
    return frozenset(flags)


#: Customer tiers that raise the priority (compared lower-cased).
HIGH_TIERS: frozenset[str] = frozenset({
    "vip", "svip", "88vip", "gold", "platinum", "diamond", "enterprise", "key_account",
})
_EXTERNAL = ("regulator", "media", "legal")


def priority(anger: float, flags: frozenset[str] | set[str], customer_tier: str | None,
             *, high_tiers: frozenset[str] = HIGH_TIERS) -> str:
    """Handling priority ``"P1"`` (act now) to ``"P4"`` (routine) of one complaint.

    ========  ==================================================================
    priority  when
    ========  ==================================================================
    P1        a ``safety`` flag; or two of regulator/media/legal; or one of them
              with ``anger >= 0.7``
    P2        one of regulator/media/legal; or ``anger >= 0.8``; or
              ``anger >= 0.5`` from a high-tier customer
    P3        ``anger >= 0.4``; or a high-tier customer
    P4        everything else
    ========  ==================================================================

    Parameters
    ----------
    anger
        :func:`anger_level` of the text, in [0, 1].
    flags
        :func:`sensitive_flags` of the text.
    customer_tier
        The event's ``customer_tier`` (free text, may be None).
    high_tiers
        Tiers, lower-cased, that count as high.

    Examples
    --------
    >>> priority(0.1, frozenset(), None)
    'P4'
    >>> priority(0.1, frozenset(), "VIP")
    'P3'
    >>> priority(0.2, frozenset({"media"}), None)
    'P2'
    >>> priority(0.9, frozenset({"legal"}), None)
    'P1'
    """
    external = sum(f in flags for f in _EXTERNAL)
    high = customer_tier is not None and customer_tier.strip().lower() in high_tiers
    if "safety" in flags or external >= 2 or (external and anger >= 0.7):
        return "P1"
    if external or anger >= 0.8 or (high and anger >= 0.5):
        return "P2"
    if anger >= 0.4 or high:
        return "P3"
    return "P4"
