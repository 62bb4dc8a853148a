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


def _plain_predict_one(clf, text: str, declared: str | None) -> tuple[str, float]:
    """IntentClassifier.predict_one as it was before the fused blend (round 5): the rules'
    confidence from its own exps, then the blend of ``_proba`` (softmax and the model's
    probability dict)."""
    from streams.text.intent import _OTHER, INTENTS

    scores = clf._rule_scores(text, declared)
    top = max(scores)
    total = scores.count(0.0) * math.exp(-clf.sharpness * top) + sum(
        math.exp(clf.sharpness * (s - top)) for s in scores if s)
    confidence = 1.0 / total
    w = clf.learned_weight
    if w == 0.0 or confidence >= clf.learned_below:
        if confidence < clf.min_confidence:
            return "other", math.exp(clf.sharpness * (scores[_OTHER] - top)) / total
        return INTENTS[scores.index(top)], confidence
    proba = clf._proba(text, declared)
    best = max(proba)
    if best < clf.min_confidence:
        return "other", proba[_OTHER]
    return INTENTS[proba.index(best)], best


def _random_complaints(rng: random.Random, n: int) -> list[str]:
    from streams.text.seed import SEED_INTENTS

    pieces = [t for texts in SEED_INTENTS.values() for t in texts]
    noise = "快递没到退款破损质量了的是我三天两次，。！？abc123 😡"
    out = []
    for _ in range(n):
        parts = [rng.choice(pieces)[rng.randint(0, 6):] for _ in range(rng.randint(0, 3))]
        parts.append("".join(rng.choice(noise) for _ in range(rng.randint(0, 12))))
        rng.shuffle(parts)
        out.append("".join(parts))
    return out


def test_predict_one_equals_the_plain_blend_bit_for_bit() -> None:
    from streams.text import INTENTS, IntentClassifier

    rng = random.Random(11)
    texts = _random_complaints(rng, 600)
    declared = [None, "refund", "damaged", "nonsense"]
    classifiers = [
        IntentClassifier(seeded=True),                            # the complaint desk's
        IntentClassifier(seeded=True, learned_below=0.6, sharpness=2.0),
        IntentClassifier(),                                       # rules only: weight 0
        IntentClassifier(min_labels=2, blend_half_life=5),        # a model of 3 classes
    ]
    for clf in classifiers[3:]:
        for text, intent in [("躺平了", "delivery_delay"), ("发票", "other"), ("扣两次", "refund")]:
            clf.learn_one(text, intent)
    for clf in classifiers:
        for i, text in enumerate(texts):
            d = declared[i % len(declared)]
            assert clf.predict_one(text, d) == _plain_predict_one(clf, text, d), text
            if i % 50 == 0:   # the model changes between predictions, as in the pipeline
                clf.learn_one(text, INTENTS[i % len(INTENTS)])


def test_complaint_local_time_is_the_datetime_isoformat() -> None:
    import datetime as dt

    from riskwatch.settings import PipelineSettings
    from streams.complaints import ComplaintDesk

    rng = random.Random(13)
    for hours in (8, 0, -5, 14, -12):
        desk = ComplaintDesk(PipelineSettings(utc_offset_hours=hours))
        tz = dt.timezone(dt.timedelta(hours=hours))
        epochs = [rng.randrange(0, 4_000_000_000) for _ in range(2_000)]
        # runs across local midnights, and back (the cached day must follow)
        start = 1_793_000_000 - 1_793_000_000 % 86400 - hours * 3600 - 3
        epochs += [start + k for k in range(7)] + [start - 86400 + 1, start + 86400]
        epochs += [1_793_000_123.5, 1_793_000_123.0]   # not int: the datetime path
        for epoch in epochs:
            assert desk.local_time(epoch) == dt.datetime.fromtimestamp(epoch, tz).isoformat()


def test_incremental_refresh_equals_a_full_rebuild() -> None:
    # CharNaiveBayes refreshes only the matrix cells learned since the last prediction
    # (kept per class with their count dicts); an unpickled copy rebuilds every cell
    # from the counts. Both must give the same probabilities, bit for bit.
    import pickle

    from streams.text import INTENTS
    from streams.text.intent import CharNaiveBayes

    rng = random.Random(17)
    texts = _random_complaints(rng, 400)
    model = CharNaiveBayes(alpha=0.5)
    for i, text in enumerate(texts):
        # a few labels between predictions, sometimes the same text twice or weighted
        for _ in range(rng.randint(0, 3)):
            model.learn_one(rng.choice(texts[:i + 1]), rng.choice(INTENTS[:5 + i // 40]),
                            rng.choice((1.0, 0.5, 2.0)))
        if not model.class_counts or i % 4:
            continue
        rebuilt = pickle.loads(pickle.dumps(model))
        assert model.predict_proba_one(text) == rebuilt.predict_proba_one(text), text


def _plain_proba(model, text: str) -> list[float]:
    """CharNaiveBayes's probabilities by the formula as first written (round 4): the
    array operators, a fancy-index gather and numpy's own divide."""
    import numpy as np

    from streams.text.intent import _ngrams

    model._proba_list(text)   # refreshes the matrix and constants
    grams = _ngrams(text)
    log_prior, per_gram = model._consts
    jll = log_prior + sum(grams.values()) * per_gram
    seen = [g for g in grams if g in model._rows]
    if seen:
        jll = jll + np.array([grams[g] for g in seen], dtype=float) @ model._matrix[
            [model._rows[g] for g in seen]]
    exps = np.exp(jll - jll.max())
    return (exps / exps.sum()).tolist()


def test_model_probabilities_equal_the_plain_formula_bit_for_bit() -> None:
    # _proba_list divides by the sum in Python (one numpy call less): IEEE division is
    # exact-rounded in both, so the floats must not move
    from streams.text import INTENTS, IntentClassifier

    rng = random.Random(19)
    clf = IntentClassifier(seeded=True)
    model = clf._model
    for i, text in enumerate(_random_complaints(rng, 1_500)):
        assert model._proba_list(text) == _plain_proba(model, text), text
        if i % 7 == 0:
            model.learn_one(text, INTENTS[i % len(INTENTS)])
