"""The plain-Python small-close path of the intent mix is the numpy path, to the bit.

:meth:`IntentMixBank.step_few` and :meth:`IntentMixStage._score_few` (closes of a few
slices: the global slice alone, most of a quiet week) must leave the bank exactly where
:meth:`IntentMixBank.step` / the numpy :meth:`IntentMixStage._score` leave it and return
the same floats: fed the same random buckets — alarms, protected rows, young rows,
capped counts, market factors, covered complaints — two banks (two stages) stay
byte-identical.
"""

from __future__ import annotations

import random

import numpy as np
import pytest

import streams.mix as mix_module
from detectors.intent_mix import IntentMixBank, row_sum
from riskwatch.settings import PipelineSettings
from streams.mix import IntentMixStage

INTENTS = ("delivery_delay", "quality", "lost_parcel", "refund", "damaged", "other",
           "address", "payment", "fraud")


@pytest.mark.parametrize("width", [1, 3, 7, 8, 9, 13, 16, 17, 40, 129, 300])
def test_row_sum_adds_as_numpy(width):
    rows = np.random.default_rng(width).random((200, width)) * 10.0 ** np.arange(-3, 3).repeat(
        -(-width // 6))[:width]
    assert [row_sum(r) for r in rows.tolist()] == rows.sum(axis=1).tolist()
    if width >= 9:   # and the order matters: a plain sum differs somewhere
        assert [sum(r) for r in rows.tolist()] != rows.sum(axis=1).tolist()


def _banks():
    params = dict(intents=INTENTS, min_volume=15.0, threshold=3.0, max_evidence=120.0,
                  max_protect_buckets=4, capacity=8)
    return IntentMixBank(**params), IntentMixBank(**params)


def test_step_few_leaves_the_bank_as_step_does():
    rng = np.random.default_rng(11)
    a, b = _banks()
    a.add(30)
    b.add(30)
    k = len(INTENTS)
    usual = rng.dirichlet(np.ones(k), 30)
    for t in range(400):
        rows = rng.choice(30, int(rng.integers(1, 8)), replace=False)
        shares = usual[rows].copy()
        if t % 40 > 25:   # a shift: some rows turn to one intent
            shares[:, t % k] += 2.0
            shares /= shares.sum(axis=1, keepdims=True)
        n = rng.poisson(rng.uniform(0.0, 12.0, len(rows)))
        y = np.array([rng.multinomial(m, p) for m, p in zip(n, shares)], dtype=float)
        prior = rng.dirichlet(np.ones(k), len(rows))
        buckets = rng.integers(1, 4, len(rows)).astype(float)
        protect_at = rng.uniform(0.5, 6.0, len(rows))
        learning = bool(rng.random() < 0.05)
        factor = (np.maximum(rng.uniform(0.5, 2.5, (len(rows), k)), 1.0)
                  if rng.random() < 0.7 else None)
        cov = np.zeros_like(y)
        hit = rng.random(y.shape) < 0.2
        cov[hit] = np.minimum(y[hit], rng.integers(0, 4, hit.sum()))
        covered = {(p, i): float(cov[p, i]) for p, i in zip(*np.nonzero(hit))}
        step = a.step(rows, y, prior=prior, buckets=buckets, protect_at=protect_at,
                      learning=np.full(len(rows), learning), factor=factor, covered=cov)
        mu, evidence = b.step_few(rows.tolist(), y.tolist(), prior=prior.tolist(),
                                  buckets=buckets, protect_at=protect_at.tolist(),
                                  learning=learning,
                                  factor=None if factor is None else factor.tolist(),
                                  covered=covered)
        assert a.state.tobytes() == b.state.tobytes(), t
        assert step.evidence.tolist() == evidence and step.mu.tolist() == mu, t
    assert (a.state[1:3] > 0).any(), "no CUSUM ever ran: the test would prove little"
    assert b.shares_of(list(range(30))) == a.shares(np.arange(30)).tolist()


def _signals(out):
    return [(s.metric, s.dims, s.observed, s.expected, s.evidence, s.level, s.pages,
             s.run_observed, s.run_expected, s.run_buckets, s.contributors, s.reset.row)
            for s in out]


def test_few_slice_closes_score_as_the_numpy_path(monkeypatch):
    settings = PipelineSettings()
    kind = {dims: i for i, dims in enumerate(settings.slices)}
    intents = IntentMixStage(settings, warmup_buckets=0).intents
    few, plain = (IntentMixStage(settings, warmup_buckets=20) for _ in range(2))
    rng = random.Random(5)
    glob, intent_kind = (kind[()],), kind[("intent",)]
    shops = [(kind[("merchant_id",)], f"m{i}") for i in range(4)]
    regions = [(kind[("region",)], r) for r in ("north", "south")]
    # a carrier and its region x carrier (whose prior is the carrier's mix)
    regions += [(kind[("carrier",)], "c1"), (kind[("region", "carrier")], "north", "c1")]
    usual = [8.0, 3.0, 2.0] + [1.0] * (len(intents) - 3)
    fired = signals = 0
    for t in range(600):
        mixes, complaints = {}, []
        keys = rng.sample(shops + regions, rng.randint(0, 3))
        shifted = 250 < t < 330
        if shifted and shops[0] not in keys:
            keys.append(shops[0])
        for key in keys:
            weights = list(usual)
            if shifted and key == shops[0]:
                weights[2] = 40.0          # a shop turning to its third intent
            picked = rng.choices(intents, weights, k=rng.randint(0, 12) + 12 * shifted)
            mixes[key] = {i: picked.count(i) for i in set(picked)}
            complaints += [[key, glob, (intent_kind, i)] for i in picked]
        total: dict[str, int] = {}
        for mix in mixes.values():
            for i, n in mix.items():
                total[i] = total.get(i, 0) + n
        if total and rng.random() < 0.9:
            mixes[glob] = total
        alarmed = {(intent_kind, intents[2])} if 300 < t < 320 else set()
        outs = []
        for stage, rows in ((few, 10**6), (plain, 0)):
            monkeypatch.setattr(mix_module, "FEW_ROWS", rows)
            outs.append(_signals(stage.close(t, {k: dict(v) for k, v in mixes.items()},
                                             [complaints], alarmed, {})))
        assert outs[0] == outs[1], t
        fired += sum(s[6] for s in outs[0])
        signals += len(outs[0])
        for name in ("recent", "last_bucket", "parent_row"):
            assert getattr(few, name).tobytes() == getattr(plain, name).tobytes(), (t, name)
        assert few.bank.state.tobytes() == plain.bank.state.tobytes(), t
        assert few.pending == plain.pending and few.episodes == plain.episodes
    assert fired and signals > fired, "nothing paged: the test would prove little"
