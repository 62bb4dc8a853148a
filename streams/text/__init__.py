"""Complaint text: personal-data masking, intent, sentiment and escalation signals.

Everything here is plain Python on one text at a time (no I/O, no faust), so the live
pipeline and ``riskwatch replay`` share it. Mask first, then analyse the masked text:

>>> from streams.text import IntentClassifier, anger_level, mask_pii, priority, sensitive_flags
>>> masked = mask_pii("快递三天不更新！！！电话13812345678，再不送我就打12315")
>>> masked
'快递三天不更新！！！电话138****5678，再不送我就打12315'
>>> IntentClassifier().predict_one(masked)[0]
'delivery_delay'
>>> priority(anger_level(masked), sensitive_flags(masked), customer_tier=None)
'P2'

- :mod:`streams.text.pii` — :func:`find_pii`, :func:`mask_pii` (mobile, resident ID, bank
  card, landline, email, address, name, passport), :func:`contains_unmasked_pii` (the scanner
  tests run over every output), :func:`pseudonymise` (keyed HMAC for joinable keys),
  :func:`evaluate_masker` (recall / false positives on a labelled file).
- :mod:`streams.text.intent` — :class:`IntentClassifier` (lexicon rules blended with an
  online char-n-gram naive Bayes, :class:`CharNaiveBayes`; ``seeded=True`` starts it
  from :mod:`streams.text.seed`), :data:`INTENTS`, :func:`char_tokenizer`,
  :func:`evaluate_intents`.
- :mod:`streams.text.sentiment` — :func:`anger_level`, :func:`sentiment`,
  :func:`sensitive_flags`, :func:`priority`.
- :mod:`streams.text.lexicon` — the word lists behind all of the above.
"""

from __future__ import annotations

from streams.text.intent import (
    INTENTS,
    CharNaiveBayes,
    IntentClassifier,
    char_tokenizer,
    evaluate_intents,
)
from streams.text.pii import (
    SCANNED_KINDS,
    PiiSpan,
    contains_unmasked_pii,
    evaluate_masker,
    find_pii,
    mask_pii,
    pseudonymise,
)
from streams.text.sentiment import (
    HIGH_TIERS,
    anger_and_sentiment,
    anger_level,
    priority,
    sensitive_flags,
    sentiment,
)

__all__ = [
    "CharNaiveBayes",
    "HIGH_TIERS",
    "INTENTS",
    "IntentClassifier",
    "PiiSpan",
    "SCANNED_KINDS",
    "anger_and_sentiment",
    "anger_level",
    "char_tokenizer",
    "contains_unmasked_pii",
    "evaluate_intents",
    "evaluate_masker",
    "find_pii",
    "mask_pii",
    "priority",
    "pseudonymise",
    "sensitive_flags",
    "sentiment",
]
