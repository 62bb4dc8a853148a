"""The complaint-text fast paths give exactly what the plain code gives.

The complaints JSONL holds intents and confidences to 4 digits, and the replay must stay
byte-identical, so each shortcut is checked against the straightforward form it replaces.
"""

from __future__ import annotations

import math
import random
import sys

from streams.text import anger_and_sentiment, anger_level, sentiment
from streams.text.intent import _FAST_TOKEN, _NEEDS_CARE, _TOKEN, char_tokenizer
from streams.text.sentiment import _raw


def _plain_tokens(text: str) -> list[str]:
    return ["#" if tok[0].isdigit() else tok.lower() for tok in _TOKEN.findall(text)]


def test_every_character_the_fast_tokenizer_lets_through_is_its_own_token() -> None:
    """The fast path lower-cases the text and rewrites digit runs before the scan; that is
    only right for characters with no case and no digit value. Every code point it admits
    is checked, alone and between letters and digits."""
    admitted = [chr(cp) for cp in range(0x80, sys.maxunicode + 1)
                if not 0xD800 <= cp < 0xE000 and _NEEDS_CARE.search(chr(cp)) is None]
    assert len(admitted) > 20_000          # the CJK block, punctuation, emoji
    for ch in admitted:
        assert ch.lower() == ch, hex(ord(ch))
        assert _FAST_TOKEN.findall(ch) == _plain_tokens(ch), hex(ord(ch))
        text = f"Ab{ch}12{ch}x"
        assert char_tokenizer(text) == _plain_tokens(text), hex(ord(ch))
        text = f"{ch}12{ch}"     # no Latin letters: the list() path
        assert char_tokenizer(text) == _plain_tokens(text), hex(ord(ch))


def test_tokenizer_equals_the_plain_form_on_random_mixed_texts() -> None:
    rng = random.Random(3)
    alphabet = ("快递没到退款破损质量ＡＢａｂ１２３" "abcXYZ0123456789#-_ ，。！？!?…·¥²①Σσİ😡❤"
                "\u3000\u00a0\u212a")
    for _ in range(5_000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 30)))
        assert char_tokenizer(text) == _plain_tokens(text), text
    no_letters = "快递没到退款破损质量１２３０123456789#-_ ，。！？!?…·¥²①😡❤\u3000\u00a0"
    for _ in range(5_000):
        text = "".join(rng.choice(no_letters) for _ in range(rng.randint(0, 30)))
        assert char_tokenizer(text) == _plain_tokens(text), text


def test_anger_and_sentiment_are_the_two_formulas_of_one_lexicon_scan() -> None:
    # anger_level and sentiment are this pair's halves; each half must still be its own
    # formula over the scan's (anger, sad, positive) sums, as before the pair existed.
    rng = random.Random(5)
    words = ["垃圾", "气死了", "谢谢", "不太满意", "失望", "！！！", "？？", "😡", "👍", "快递", "很好",
             "不满意", "太过分了", "what???"]
    for _ in range(2_000):
        text = "".join(rng.choice(words) for _ in range(rng.randint(0, 8)))
        anger, sad, pos = _raw(text)
        plain = (1.0 - math.exp(-anger / 3.0), math.tanh((pos - anger - sad) / 3.0))
        assert anger_and_sentiment(text) == plain, text
        assert (anger_level(text), sentiment(text)) == plain, text
