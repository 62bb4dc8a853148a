"""streams.name_order.NameOrder: the rows it keeps are the order ``sorted()`` gives the
names, however the names arrive (merchant scores and shop-surge records depend on it)."""
import random

from streams.name_order import NameOrder


def test_rows_follow_sorted_names_as_names_are_appended():
    rng = random.Random(7)
    alphabet = "abcAB09_-~中文é店铺 "
    for _ in range(200):
        names: list[str] = []
        seen: set[str] = set()
        order = NameOrder()
        for _ in range(rng.randint(1, 10)):
            batch = {"".join(rng.choices(alphabet, k=rng.randint(1, 6)))
                     for _ in range(rng.randint(0, 60))} - seen
            batch_list = list(batch)
            rng.shuffle(batch_list)
            names += batch_list
            seen |= batch
            rows = order.rows(names).tolist()
            assert [names[r] for r in rows] == sorted(names)
            assert sorted(rows) == list(range(len(names)))


def test_a_call_without_new_names_returns_the_same_order():
    names = ["m2", "m10", "m1"]
    order = NameOrder()
    first = order.rows(names)
    assert order.rows(names) is first
    assert first.tolist() == [2, 1, 0]
