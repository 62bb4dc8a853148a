"""Complaint intent: lexicon rules that work on day one, blended with a model learned online.

**Rules** (no training data). One left-to-right scan finds the longest known token at each
position; tokens are weighted *phrases* (:data:`~streams.text.lexicon.INTENT_PHRASES`,
"没揽收" -> pickup_urge 3) and broad *concept* words (:data:`~streams.text.lexicon.CONCEPTS`,
"耳机" = product, "连不上" = defect). Negated tokens are dropped ("不是质量问题", "没有破损";
"是不是…" and "这不是…是什么" are not negations). Then concept *combinations* add evidence
for wording no phrase covers (product + defect -> quality), regex *patterns* score
durations and counts ("走了五天", "扣了两次"), *conjunctions* settle known confusions
(发货 + 揽收 is a fake shipment, not a pickup request), the customer's menu pick gets a
small bump, and a softmax in which ``other`` has a head start turns scores into
probabilities.

**Learned model.** Agents' corrections (``complaint_update.intent``) train
:class:`CharNaiveBayes` (character uni+bigrams; the estimates of river's ``BagOfWords |
MultinomialNB``, several times faster). Its weight in the blend grows with the labels
seen: ``max_learned_weight * n / (n + blend_half_life)`` once ``min_labels`` have arrived.
``seeded=True`` starts it from 766 hand-written examples (:mod:`streams.text.seed`).

How good, on 156 held-out texts written after the lexicon was frozen
(``tests/text/data/intent_heldout.jsonl``): rules alone 0.90 accuracy, rules + seeded
model 0.97 (the previous held-out set, now part of the seed, scored 0.63 and 0.82: the
current one is probably easier). On simulated complaints no agent labelled, after one
day of agent labels in the pipeline: 0.93 (``benchmarks/intent_accuracy.py``).

Cost per text on this project's shared 2-core VM while it ran ``sum(range(1000))`` in
~30 us (about 3x a current laptop): rules 35 us (20-40 characters) to 55 us (40-80
characters); rules + the seeded model ~160 us (it was 200-320 us with a dict walk per
n-gram; ``pytest -s tests/text/test_intent.py -k speed``), ~50 us with
``learned_below=0.6``, which skips the model when the rules are confident (river's own
``BagOfWords | MultinomialNB`` took ~900 us for the same model).

Feed *masked* text (:func:`streams.text.pii.mask_pii`) to :meth:`IntentClassifier.learn_one`:
the model keeps every character bigram it sees, and a pickled checkpoint must not hold
names or addresses.

Examples
--------
>>> clf = IntentClassifier()
>>> clf.predict_one("寄个快递三天了都没人上门取件")[0]
'pickup_urge'
>>> clf.predict_one("商家说发货了，可是一直没有揽收记录")[0]
'fake_shipment'
>>> clf.predict_one("不是质量问题，是快递把箱子压坏了")[0]
'damaged'
>>> clf.predict_one("你好", declared_type="refund")   # the menu pick alone decides nothing
('other', 0.2...)
"""

from __future__ import annotations

import json
import math
import os
import re
from collections import _count_elements  # C helper behind Counter (CPython)
from collections.abc import Mapping
from itertools import compress

import numpy as np
from river import base

from streams.text.lexicon import (
    COMBINATIONS,
    CONCEPTS,
    CONJUNCTIONS,
    INTENT_PATTERNS,
    INTENT_PHRASES,
    NEGATABLE,
    NEGATIONS,
    NORMALISE,
    PATTERN_GATE,
    WEAK_NEGATIONS,
    phrase_pattern,
)
from streams.text.seed import SEED_INTENTS

__all__ = ["CharNaiveBayes", "INTENTS", "IntentClassifier", "char_tokenizer", "evaluate_intents"]

#: The contract's intent taxonomy (design.md), in a fixed order.
INTENTS: tuple[str, ...] = (
    "delivery_delay", "pickup_urge", "lost_parcel", "damaged", "wrong_delivery",
    "fake_shipment", "quality", "weight_mismatch", "duplicate_charge", "refund",
    "service_attitude", "customs", "other",
)
_INDEX = {intent: i for i, intent in enumerate(INTENTS)}
_OTHER = _INDEX["other"]

_TOKEN = re.compile(r"[A-Za-z]+|[0-9]+|[^\W\d_A-Za-z]")


def char_tokenizer(text: str) -> list[str]:
    """Split ``text`` into Chinese characters and whole Latin words; digits become ``#``.

    A module-level function (not a lambda) so that a classifier using it pickles.

    Examples
    --------
    >>> char_tokenizer("快递没到, still NOT here 3天!!")
    ['快', '递', '没', '到', 'still', 'not', 'here', '#', '天']
    """
    if _NEEDS_CARE.search(text) is None and "#" not in text:
        # Fast path, all in C (the per-token loop below was ~40 % of a model prediction):
        # when every non-ASCII character is one whose token is itself, lower-casing the
        # whole text and writing each digit run as "#" before the scan gives the same
        # tokens. The "#" test keeps a "#" of the text itself from becoming a token.
        if _ASCII_LETTER.search(text) is None:
            # no Latin words either (most texts): every character left once punctuation,
            # "_" and the digits the scan drops are gone is a token; list() beats findall
            return list(_NOT_A_TOKEN.sub("", _DIGIT_RUN.sub("#", text)))
        return _FAST_TOKEN.findall(_DIGIT_RUN.sub("#", text.lower()))
    return ["#" if tok[0].isdigit() else tok.lower() for tok in _TOKEN.findall(text)]


# Characters whose token is the character itself (no case, not digit-like: no "Ａ", "Σ",
# "²", "①"), plus ASCII (handled by the fast path's lower() and digit rewrite): CJK
# punctuation and ideographs, full-width punctuation and lower-case letters, general
# punctuation, emoji. tests/text/test_text_fast_paths.py checks every code point of
# these ranges.
_TOKEN_IS_CHAR = ("\x00-\x7f\u00a0\u00a5\u00b7\u2000-\u206f\u3000-\u303f\u4e00-\u9fff"
                  "\uff01-\uff20\uff3b-\uffef\U0001f300-\U0001faff")
_NEEDS_CARE = re.compile(f"[^{_TOKEN_IS_CHAR}]")
_FAST_TOKEN = re.compile(r"[a-z]+|#|[^\W\d_A-Za-z]")
_DIGIT_RUN = re.compile("[0-9]+")
_ASCII_LETTER = re.compile("[A-Za-z]")
_NOT_A_TOKEN = re.compile(r"[^\w#]|[\d_]")   # what _FAST_TOKEN skips, once letters are ruled out


def _ngrams(text: str) -> dict:
    """Character unigram and bigram counts, keyed exactly as river's ``BagOfWords(
    tokenizer=char_tokenizer, ngram_range=(1, 2))`` keys them (bigrams are tuples).

    Counted in C (``Counter``'s counting loop), in first-seen order, unigrams before
    bigrams: the order fixes the order of the terms the model sums, hence its exact
    floats. The texts of the last few predictions are remembered: the pipeline learns
    from the very texts it classified a bucket earlier.

    >>> _ngrams("快递3天")
    {'快': 1, '递': 1, '#': 1, '天': 1, ('快', '递'): 1, ('递', '#'): 1, ('#', '天'): 1}
    """
    counts = _NGRAM_CACHE.get(text)
    if counts is not None:
        return counts
    tokens = char_tokenizer(text)
    counts: dict = {}
    # Counter's own C counting loop, without Counter's Python-level wrappers and copy
    _count_elements(counts, tokens)
    _count_elements(counts, zip(tokens, tokens[1:]))
    if len(_NGRAM_CACHE) >= _NGRAM_CACHE_SIZE:
        _NGRAM_CACHE.clear()   # O(1) amortised; the texts worth keeping are the recent ones
    _NGRAM_CACHE[text] = counts
    return counts


# text -> n-gram counts (callers must not mutate them)
_NGRAM_CACHE: dict[str, dict] = {}
_NGRAM_CACHE_SIZE = 20_000


class CharNaiveBayes(base.Classifier):
    """Multinomial naive Bayes over character uni- and bigrams of a text.

    The same estimates as river's ``BagOfWords(lowercase=False, strip_accents=False,
    tokenizer=char_tokenizer, ngram_range=(1, 2)) | MultinomialNB(alpha)``
    (``tests/text/test_intent.py`` checks it), kept as per-feature class counts. For
    prediction, the log-counts of the n-grams sit in one numpy matrix (a row per n-gram,
    a column per class) refreshed lazily for the n-grams learned since the last
    prediction, so a text costs one gather-and-sum instead of a dict walk per n-gram and
    class (~25 us instead of ~250 us per text here; the river pipeline took ~900 us).

    Parameters
    ----------
    alpha
        Additive (Laplace/Lidstone) smoothing.

    Examples
    --------
    >>> nb = CharNaiveBayes()
    >>> nb.learn_one("快递太慢", "delivery_delay")
    >>> nb.learn_one("退款没到", "refund")
    >>> max(nb.predict_proba_one("太慢了").items(), key=lambda kv: kv[1])[0]
    'delivery_delay'
    """

    def __init__(self, alpha: float = 1.0) -> None:
        self.alpha = alpha
        self.class_counts: dict[str, float] = {}
        self.class_totals: dict[str, float] = {}
        self.feature_counts: dict = {}          # n-gram -> {class: count}
        self._reset_cache()

    def _reset_cache(self) -> None:
        # Derived from the counts, rebuilt on demand (and not pickled).
        self._rows: dict = {}                   # n-gram -> matrix row
        self._classes: list[str] = []
        self._matrix = np.zeros((0, 0))         # log(count + alpha) - log(alpha)
        self._dirty: dict | None = None         # class -> {n-gram: its class counts}; None: all
        self._consts: tuple | None = None        # (log prior, log(alpha) - log(total + alpha V))
        self._base_of_size: dict = {}           # text size -> log prior + size * per-gram term

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        for key in ("_rows", "_classes", "_matrix", "_dirty", "_consts", "_base_of_size"):
            state.pop(key, None)
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._reset_cache()

    def learn_one(self, x: str, y: str, w: float = 1.0) -> None:
        """Count ``x``'s n-grams for class ``y``, each ``w`` times (river's sample weight)."""
        if y not in self.class_counts:
            self._dirty = None          # a new class: a new column
        self.class_counts[y] = self.class_counts.get(y, 0) + w
        self._consts = None
        grams = _ngrams(x)
        if not grams:
            return
        features = self.feature_counts
        total = self.class_totals.get(y, 0)
        # the cells to refresh, with the count dict each is read from (a throwaway while a
        # full rebuild is due): no (n-gram, class) pairs to build and hash
        dirty = {} if self._dirty is None else self._dirty.setdefault(y, {})
        for gram, n in grams.items():
            per_class = features.get(gram)
            if per_class is None:
                features[gram] = per_class = {}
            per_class[y] = per_class.get(y, 0) + n * w
            total = total + n * w   # added in the same order as one dict update per n-gram
            dirty[gram] = per_class
        self.class_totals[y] = total

    def _refresh(self) -> None:
        log_alpha = math.log(self.alpha)
        if self._dirty is None:
            self._classes = list(self.class_counts)
            self._rows = {gram: i for i, gram in enumerate(self.feature_counts)}
            self._matrix = np.zeros((max(len(self._rows), 1), len(self._classes)))
            changed: dict = {}
            for gram, per_class in self.feature_counts.items():
                for c in per_class:
                    changed.setdefault(c, {})[gram] = per_class
        else:
            # Only the cells learned since the last refresh changed; the others would be
            # recomputed to the very same floats.
            changed = self._dirty
            rows = self._rows
            for gram in set().union(*changed.values()).difference(rows):   # new n-grams, in C
                rows[gram] = len(rows)
            if len(self._rows) > len(self._matrix):
                grown = np.zeros((2 * len(self._rows), len(self._classes)))
                grown[:len(self._matrix)] = self._matrix
                self._matrix = grown
        column = {c: j for j, c in enumerate(self._classes)}
        rows, matrix, alpha, log = self._rows, self._matrix, self.alpha, math.log
        for c, cells in changed.items():
            # one vectorised store per class, not one per cell (comprehension: no appends)
            if cells:
                matrix[list(map(rows.__getitem__, cells)), column[c]] = [
                    log(per_class[c] + alpha) - log_alpha for per_class in cells.values()]
        self._dirty = {}

    def predict_proba_one(self, x: str) -> dict[str, float]:
        if not self.class_counts:
            return {}
        proba = self._proba_list(x)   # first: it may rebuild self._classes
        return dict(zip(self._classes, proba))

    def _proba_list(self, x: str) -> list[float]:
        """The class probabilities of ``x`` in the order of ``self._classes`` (which
        ``predict_proba_one`` zips into a dict). Needs ``class_counts``."""
        if self._dirty is None or self._dirty:
            self._refresh()
        if self._consts is None:
            n = sum(self.class_counts.values())
            den = self.alpha * len(self.feature_counts)
            self._consts = (
                np.log(np.array([self.class_counts[c] for c in self._classes]) / n),
                math.log(self.alpha) - np.log(
                    np.array([self.class_totals.get(c, 0) for c in self._classes]) + den))
            self._base_of_size = {}
        grams = _ngrams(x)
        # log P(c) + sum_f x_f log((count_cf + alpha) / (total_c + alpha V)), where the
        # count_cf = 0 terms are folded into size * log(alpha). That first part depends
        # on the text only through its size: kept per size until the next learn.
        size = sum(grams.values())
        base_jll = self._base_of_size.get(size)
        if base_jll is None:
            log_prior, per_gram = self._consts
            base_jll = self._base_of_size[size] = log_prior + size * per_gram
        idx = list(map(self._rows.get, grams))   # in C; None for unseen n-grams
        counts = list(grams.values())
        if None in idx:
            # unseen n-grams are rare (~1 in 70 here): drop them one by one, in C
            while None in idx:
                at = idx.index(None)
                del idx[at], counts[at]
        if idx:
            jll = base_jll + np.array(counts, dtype=float) @ self._matrix.take(idx, axis=0)   # take = [idx], faster
        else:
            jll = base_jll.copy()
        # the ufuncs behind jll.max(), exps.sum() and the operators, called directly and
        # in place: the same floats without the Python-level wrappers and temporaries
        # (these 13-element arrays cost their per-call overhead, not their arithmetic).
        # The division runs on the list: IEEE division is exact-rounded in Python as in
        # numpy, and 13 of them cost less than one more ufunc call.
        np.subtract(jll, _max(jll), out=jll)
        exps = np.exp(jll, out=jll)
        total = float(_sum(exps))
        return [e / total for e in exps.tolist()]

    def _proba_in(self, x: str, order: list[str]) -> list[float]:
        """``predict_proba_one(x)`` as a list in the order of ``order`` (0.0 for a class
        not learned yet), without building the dict when ``order`` is the model's own."""
        if not self.class_counts:
            return [0.0] * len(order)
        proba = self._proba_list(x)   # first: it may rebuild self._classes
        if self._classes == order:
            return proba
        by_class = dict(zip(self._classes, proba))
        return [by_class.get(c, 0.0) for c in order]

    def predict_one(self, x: str) -> str | None:
        proba = self.predict_proba_one(x)
        return max(proba, key=proba.__getitem__) if proba else None


_INTENT_LIST = list(INTENTS)   # the order predict_one wants the learned probabilities in
_max, _sum = np.maximum.reduce, np.add.reduce   # what ndarray.max() / .sum() reduce with

_PATTERN_REACH = 10   # the longest pattern match before its unit: "等了将近一个多星期"
_RHETORICAL = ("是什么", "吗", "又是什么")
# words allowed between a negation cue and what it negates: "不是什么质量问题"
_STRONG_FILLERS = "什么|因为|由于|啥|任何"
_WEAK_FILLERS = "任何|什么|明显|一点"
_FILLERS = (*_STRONG_FILLERS.split("|"), *_WEAK_FILLERS.split("|"))


def _union(masks) -> int:
    out = 0
    for m in masks:
        out |= m
    return out


class _Rules:
    """A lexicon compiled for scoring; immutable once built."""

    def __init__(self, phrases: Mapping[str, Mapping[str, float]],
                 conjunctions: tuple[tuple[str, tuple[str, ...], float], ...]) -> None:
        unknown = set(phrases) - set(INTENTS)
        if unknown:
            raise ValueError(f"lexicon has unknown intents: {sorted(unknown)}")
        hits: dict[str, list[tuple[int, float]]] = {}
        for intent, table in phrases.items():
            for phrase, weight in table.items():
                hits.setdefault(phrase.lower(), []).append((_INDEX[intent], float(weight)))
        bit = {name: 1 << i for i, name in enumerate(CONCEPTS)}
        masks: dict[str, int] = {}
        for name, words in CONCEPTS.items():
            for w in words:
                masks[w.lower()] = masks.get(w.lower(), 0) | bit[name]
        # Phrases and concept words share one scan; at each position the longest token
        # wins. So a token carries (a) the weights of the longest phrase it starts with
        # and (b) the concepts of the concept words inside it ("快递员" is also "快递").
        # A phrase does not inherit single characters: "漏发" (items left out) is not "漏"
        # (leaking), "到账" is not "到" (arrived).
        self.tokens: dict[str, tuple[tuple[tuple[int, float], ...], int, bool]] = {}
        for token in set(hits) | set(masks):
            phrase = next((token[:k] for k in range(len(token), 0, -1) if token[:k] in hits), "")
            self.tokens[token] = (
                tuple(hits.get(phrase, ())),
                _union(m for w, m in masks.items() if w == token or (
                    w in token and (len(w) > 1 or token not in hits))),
                any(stem in phrase for stem in NEGATABLE),
            )
        # One small trie regex per first character, tried only where a token can start:
        # a single regex with ~700 first-level alternatives tries them all at every
        # position and is slower than this Python loop on short texts.
        by_first: dict[str, list[str]] = {}
        for token in self.tokens:
            by_first.setdefault(token[0], []).append(token)
        self.matchers = {ch: phrase_pattern(words).match for ch, words in by_first.items()}
        self.combinations = tuple(
            (_INDEX[intent], _union(bit[c] for c in a), _union(bit[c] for c in b), float(w))
            for intent, a, b, w in COMBINATIONS)
        # grouped by first part: one substring test rejects most groups
        by_part: dict[str, list[tuple[int, tuple[str, ...], float]]] = {}
        for intent, parts, bonus in conjunctions:
            by_part.setdefault(parts[0], []).append((_INDEX[intent], parts[1:], bonus))
        self.conjunctions = tuple((first, tuple(rules)) for first, rules in by_part.items())
        # all regex rules in one alternation of named groups: one scan, lastgroup says which
        self.patterns = re.compile("|".join(
            f"(?P<p{i}>{regex})" for i, (_, regex, _) in enumerate(INTENT_PATTERNS)))
        # every rule match contains a unit or a count character
        self.pattern_gate = re.compile(PATTERN_GATE)
        self.pattern_hits = {f"p{i}": (_INDEX[intent], float(weight))
                             for i, (intent, _, weight) in enumerate(INTENT_PATTERNS)}
        neg = "|".join(map(re.escape, NEGATIONS))
        weak = "|".join(map(re.escape, WEAK_NEGATIONS))
        # the cue must sit right before the phrase (so no punctuation in between), allowing
        # a filler: "不是什么质量问题". "是不是三无产品" asks, it does not deny.
        self.negation = re.compile(rf"(?<!是)(?:{neg})(?:{_STRONG_FILLERS})?$")
        self.weak_negation = re.compile(rf"(?:{weak})(?:{_WEAK_FILLERS})?$")
        self.negation_ends = frozenset(
            w[-1] for w in (*NEGATIONS, *WEAK_NEGATIONS, *_FILLERS) if w)

    def scores(self, text: str) -> list[float]:
        t = text.lower()
        for variant, standard in NORMALISE:
            if variant in t:
                t = t.replace(variant, standard)
        scores = [0.0] * len(INTENTS)
        present = 0
        matcher = self.matchers.get
        skip = 0
        for start, ch in enumerate(t):
            if start < skip or (match := matcher(ch)) is None or (m := match(t, start)) is None:
                continue
            skip = m.end()
            token_hits, mask, negatable = self.tokens[m.group()]
            # Negated words count for nothing, neither as phrase nor as concept. The regexes
            # run only when the character before could end a negation cue.
            if start and t[start - 1] in self.negation_ends:
                lo = max(0, start - 6)
                if (self.negation.search(t, lo, start) or (
                        negatable and self.weak_negation.search(t, lo, start))) and (
                        not t.startswith(_RHETORICAL, skip)):
                    continue   # negated, unless rhetorical: "这不是假发货是什么"
            present |= mask
            for idx, weight in token_hits:
                scores[idx] += weight
        # the pattern regex is slow to scan: run it only on a window before each unit/count
        done = 0
        for gate in self.pattern_gate.finditer(t):
            if gate.start() < done:
                continue
            m = self.patterns.search(t, max(done, gate.start() - _PATTERN_REACH), gate.end() + 3)
            if m is not None:
                idx, weight = self.pattern_hits[m.lastgroup]
                scores[idx] += weight
                done = m.end()
        for idx, a, b, weight in self.combinations:
            if present & a and present & b:
                scores[idx] += weight
        for first, rules in self.conjunctions:
            if first in t:
                for idx, rest, bonus in rules:
                    for part in rest:
                        if part not in t:
                            break
                    else:
                        scores[idx] += bonus
        return scores


_DEFAULT_RULES = _Rules(INTENT_PHRASES, CONJUNCTIONS)


class IntentClassifier(base.Base):
    """Classify a complaint text into the contract's intents; learn online from agents.

    Parameters
    ----------
    lexicon
        ``{intent: {phrase: weight}}`` replacing the built-in phrase table
        (:data:`~streams.text.lexicon.INTENT_PHRASES`), or None for it. Concepts, patterns
        and combination rules stay. Pass plain dicts (``clone`` deep-copies them).
    sharpness
        Softmax inverse temperature applied to the rule scores.
    other_bias
        Head start of ``other`` in the softmax, so a lone weak phrase does not decide.
    declared_bonus
        Score added to the customer's menu pick (wrong about half the time: a tie-breaker,
        never enough on its own to pass ``min_confidence``).
    min_confidence
        Below this probability the answer is ``other``.
    alpha
        Additive smoothing of the naive Bayes model.
    min_labels
        Labels to see before the learned model takes part.
    blend_half_life
        Labels after which the learned model has half of ``max_learned_weight``.
    max_learned_weight
        Upper bound of the learned model's weight in the blend.
    learned_below
        Consult the learned model only when the rules' confidence is below this; 1.0
        always consults it (once trained), 0.6 keeps confident rule answers fast.
    seeded
        Learn the hand-written examples of :data:`~streams.text.seed.SEED_INTENTS`
        (766 texts) at construction, so the learned model starts with a vocabulary. It
        costs about 0.02 s and counts towards ``min_labels`` and the blend weight.
    seed_weight
        Weight of each seed text in the learned model: below 1, agents' labels (the
        platform's own wording) soon outweigh the hand-written examples.

    Examples
    --------
    >>> clf = IntentClassifier(min_labels=2, blend_half_life=2)
    >>> clf.predict_one("件在仓库躺平了")[0]
    'other'
    >>> for text in ["件在仓库躺平了", "包裹在网点躺平三天", "东西躺平不动了"]:
    ...     clf.learn_one(text, "delivery_delay")
    >>> clf.learn_one("想开个发票", "other")
    >>> clf.predict_one("我的件又躺平了")[0]
    'delivery_delay'
    """

    def __init__(
        self,
        lexicon: Mapping[str, Mapping[str, float]] | None = None,
        sharpness: float = 1.2,
        other_bias: float = 1.0,
        declared_bonus: float = 0.75,
        min_confidence: float = 0.3,
        alpha: float = 0.5,
        min_labels: int = 30,
        blend_half_life: int = 300,
        max_learned_weight: float = 0.7,
        learned_below: float = 1.0,
        seeded: bool = False,
        seed_weight: float = 1.0,
    ) -> None:
        self.lexicon = lexicon
        self.sharpness = sharpness
        self.other_bias = other_bias
        self.declared_bonus = declared_bonus
        self.min_confidence = min_confidence
        self.alpha = alpha
        self.min_labels = min_labels
        self.blend_half_life = blend_half_life
        self.max_learned_weight = max_learned_weight
        self.learned_below = learned_below
        self.seeded = seeded
        self.seed_weight = seed_weight
        # Learned state. A custom lexicon is compiled per instance; the default one is
        # shared (and not pickled with every checkpoint).
        self._rules = None if lexicon is None else _Rules(lexicon, CONJUNCTIONS)
        self._model = CharNaiveBayes(alpha=alpha)
        self.n_labels = 0
        self.label_counts: dict[str, int] = {}
        if seeded:
            for intent, texts in SEED_INTENTS.items():
                for text in texts:
                    self.learn_one(text, intent, seed_weight)

    @property
    def learned_weight(self) -> float:
        """Current weight of the learned model in the blend (0 until ``min_labels``)."""
        if self.n_labels < self.min_labels:
            return 0.0
        return self.max_learned_weight * self.n_labels / (self.n_labels + self.blend_half_life)

    def rule_scores(self, text: str) -> dict[str, float]:
        """Raw lexicon score per intent (for explanations and tests).

        >>> {k: v for k, v in IntentClassifier().rule_scores("没有破损，就是太慢了").items() if v}
        {'delivery_delay': 3.0}
        """
        return dict(zip(INTENTS, (self._rules or _DEFAULT_RULES).scores(text)))

    def _rule_scores(self, text: str, declared_type: str | None) -> list[float]:
        scores = (self._rules or _DEFAULT_RULES).scores(text)
        scores[_OTHER] += self.other_bias
        if declared_type in _INDEX:
            scores[_INDEX[declared_type]] += self.declared_bonus
        return scores

    def _softmax(self, scores: list[float]) -> list[float]:
        top = max(scores)
        exps = [math.exp(self.sharpness * (s - top)) for s in scores]
        total = sum(exps)
        return [e / total for e in exps]

    def _proba(self, text: str, declared_type: str | None) -> list[float]:
        proba = self._softmax(self._rule_scores(text, declared_type))
        w = self.learned_weight
        if w > 0.0 and max(proba) < self.learned_below:
            learned = self._model.predict_proba_one(text)
            proba = [(1.0 - w) * p + w * learned.get(intent, 0.0)
                     for p, intent in zip(proba, INTENTS)]
        return proba

    def predict_proba_one(self, text: str, declared_type: str | None = None) -> dict[str, float]:
        """Probability of every intent for ``text``.

        ``declared_type`` is the customer's menu pick (or None); unknown values are ignored.
        """
        return dict(zip(INTENTS, self._proba(text, declared_type)))

    def predict_one(self, text: str, declared_type: str | None = None) -> tuple[str, float]:
        """Return ``(intent, confidence)``; ``other`` when nothing is confident enough."""
        scores = self._rule_scores(text, declared_type)
        top = max(scores)
        sharpness = self.sharpness
        w = self.learned_weight
        if w == 0.0:
            # Fast path: most intents score 0, and exp(0 - top) needs computing only once.
            total = scores.count(0.0) * math.exp(-sharpness * top) + sum(
                math.exp(sharpness * (s - top)) for s in scores if s)
            return self._rules_answer(scores, top, total)
        # The softmax terms serve both the rules' confidence (the fast path's total: the
        # exps of the non-zero scores, in order) and the blend of _proba, whose operations
        # on the same floats are inlined here.
        exps = [math.exp(sharpness * (s - top)) for s in scores]
        total = scores.count(0.0) * math.exp(-sharpness * top) + sum(compress(exps, scores))
        if 1.0 / total >= self.learned_below:
            return self._rules_answer(scores, top, total)
        learned = self._model._proba_in(text, _INTENT_LIST)
        softmax_total = sum(exps)
        keep = 1.0 - w
        proba = [keep * (e / softmax_total) + w * p_learned
                 for e, p_learned in zip(exps, learned)]
        best = max(proba)
        if best < self.min_confidence:
            return "other", proba[_OTHER]
        return INTENTS[proba.index(best)], best

    def _rules_answer(self, scores: list[float], top: float, total: float) -> tuple[str, float]:
        """predict_one's answer from the rules alone; ``total`` is the softmax denominator
        divided by ``exp(sharpness * top)``."""
        confidence = 1.0 / total
        if confidence < self.min_confidence:
            return "other", math.exp(self.sharpness * (scores[_OTHER] - top)) / total
        return INTENTS[scores.index(top)], confidence

    def learn_one(self, text: str, intent: str, w: float = 1.0) -> None:
        """Learn from one labelled text (an agent's correction). Pass masked text.

        ``w`` weighs the example (the seed texts use ``seed_weight``); every call counts
        as one label towards ``min_labels`` and the blend weight.
        """
        if intent not in _INDEX:
            raise ValueError(f"unknown intent {intent!r}; expected one of {INTENTS}")
        self._model.learn_one(text, intent, w)
        self.n_labels += 1
        self.label_counts[intent] = self.label_counts.get(intent, 0) + 1


def evaluate_intents(classifier: IntentClassifier, path: str | os.PathLike[str]) -> dict:
    """Accuracy and confusion of ``classifier`` on a JSONL file of ``{"text", "intent"}``
    lines (an optional ``"declared_type"`` is passed on).

    Returns
    -------
    dict
        ``n``, ``accuracy``, ``confusion`` (``{true: {predicted: count}}``), ``per_intent``
        (``{intent: {"support", "precision", "recall"}}``) and ``errors``
        (``(text, true, predicted, confidence)``).
    """
    confusion: dict[str, dict[str, int]] = {}
    errors: list[tuple[str, str, str, float]] = []
    n = correct = 0
    with open(path, encoding="utf-8") as f:
        for line in f:
            if not line.strip():
                continue
            rec = json.loads(line)
            pred, conf = classifier.predict_one(rec["text"], rec.get("declared_type"))
            row = confusion.setdefault(rec["intent"], {})
            row[pred] = row.get(pred, 0) + 1
            n += 1
            if pred == rec["intent"]:
                correct += 1
            else:
                errors.append((rec["text"], rec["intent"], pred, conf))
    per_intent = {}
    for intent in INTENTS:
        support = sum(confusion.get(intent, {}).values())
        predicted = sum(row.get(intent, 0) for row in confusion.values())
        hits = confusion.get(intent, {}).get(intent, 0)
        per_intent[intent] = {
            "support": support,
            "precision": hits / predicted if predicted else 0.0,
            "recall": hits / support if support else 0.0,
        }
    return {"n": n, "accuracy": correct / n if n else 0.0, "confusion": confusion,
            "per_intent": per_intent, "errors": errors}
