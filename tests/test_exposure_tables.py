"""ExposureBook's per-slice tables: the dict fallback a slice of large dimensions
switches to (``_MAX_DENSE_CELLS``) gives the same rows and exposures as the dense array."""
import random

import streams.exposure as exposure
from streams.exposure import ExposureBook

SLICES = ((), ("region",), ("merchant_id",), ("region", "carrier"),
          ("region", "merchant_id", "carrier", "category"))


def _buckets(seed: int, n_buckets: int = 40):
    rng = random.Random(seed)
    regions = [f"r{i}" for i in range(12)]
    merchants = [f"m{i:03d}" for i in range(300)]
    carriers = ["中通", "圆通", "顺丰", "京东"]
    categories = ["服饰", "数码", "美妆"]
    for b in range(n_buckets):
        combos: dict[tuple, int] = {}
        for _ in range(rng.randint(0, 60)):   # some buckets without orders
            combo = (rng.choice(regions), rng.choice(merchants[:10 + 8 * b]),
                     rng.choice(carriers), rng.choice(categories))
            combos[combo] = combos.get(combo, 0) + rng.randint(1, 3)
        yield b, combos


def _replay(seed: int) -> ExposureBook:
    book = ExposureBook(slices=SLICES, decay=0.9)
    for bucket, combos in _buckets(seed):
        book.advance(bucket, combos, hour_factor=1.25)
    return book


def test_sparse_tables_give_the_dense_tables_rows(monkeypatch):
    for seed in range(3):
        dense = _replay(seed)
        monkeypatch.setattr(exposure, "_MAX_DENSE_CELLS", 64)   # every multi-value table
        sparse = _replay(seed)
        monkeypatch.undo()
        tables = [table for _, _, table in sparse._order_slices]
        assert any(t.dense is None for t in tables), "the fallback was not exercised"
        assert all(t.dense is not None for _, _, t in dense._order_slices)
        assert sparse.keys == dense.keys   # same slices, same row order
        n = len(dense.keys)
        for name in ("ex", "exh", "cum"):
            assert getattr(sparse, name)[:n].tobytes() == getattr(dense, name)[:n].tobytes()
        assert sparse.orders_in_last_bucket() == dense.orders_in_last_bucket()
