"""Where an alert's complaints come from: the region and carrier behind a slice.

A merchant slice has no region or carrier of its own, yet a merchant's complaints during
a carrier's outage mostly ship with that carrier. The alert record's ``context`` names
the region / carrier holding most of the slice's recent complaints, so Alertmanager
inhibit rules (``equal: [incident_carrier]``) can keep a merchant quiet while the
carrier-wide incident that explains it pages (``sinks/alertmanager.py``).

>>> slices = ((), ("region",), ("merchant_id",), ("carrier",))
>>> recent = [[((0,), (1, "广东"), (2, "m1"), (3, "中通")),
...            ((0,), (1, "广东"), (2, "m1"), (3, "中通")),
...            ((0,), (1, "浙江"), (2, "m1"), (3, "圆通")),
...            ((0,), (1, "浙江"), (2, "m2"), (3, "圆通"))]]
>>> incident_context(recent, (2, "m1"), slices)
{'region': '广东', 'carrier': '中通'}
>>> incident_context(recent, (1, "广东"), slices)   # its own region is a label already
{'carrier': '中通'}
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

__all__ = ["incident_context", "recent_intents"]

_CONTEXT_DIMS = ("region", "carrier")


def incident_context(recent: Iterable[list[tuple]], key: tuple,
                     slices: tuple[tuple[str, ...], ...], share: float = 0.5) -> dict[str, str]:
    """The region / carrier holding at least ``share`` of ``key``'s recent complaints.

    ``recent`` holds, per recent bucket, the slice keys of each complaint (the
    pipeline's ``_recent_complaints``). Dimensions the slice has itself are left out.
    """
    own = set(slices[key[0]])
    wanted = {i: dims[0] for i, dims in enumerate(slices)
              if len(dims) == 1 and dims[0] in _CONTEXT_DIMS and dims[0] not in own}
    if not wanted:
        return {}
    counts: dict[str, Counter] = {dim: Counter() for dim in wanted.values()}
    total = 0
    for bucket in recent:
        for keys in bucket:
            if key not in keys:
                continue
            total += 1
            for k in keys:
                dim = wanted.get(k[0])
                if dim is not None and k[1] is not None:
                    counts[dim][k[1]] += 1
    context: dict[str, str] = {}
    for dim in _CONTEXT_DIMS:
        if dim in counts and counts[dim]:
            value, n = min(counts[dim].items(), key=lambda kv: (-kv[1], str(kv[0])))
            if n >= share * total:
                context[dim] = str(value)
    return context


def recent_intents(recent: Iterable[list[tuple]], key: tuple,
                   slices: tuple[tuple[str, ...], ...], top: int = 3) -> list[dict]:
    """The intents behind ``key``'s recent complaints (the window ``recent`` spans), most
    frequent first: an alert's ``contributors``.

    Over the same recent buckets as the context, not the last bucket alone: a page
    that says 7 complaints should not list three intents of one complaint each.

    >>> slices = ((), ("region",), ("intent",))
    >>> recent = [[((0,), (1, "广东"), (2, "lost_parcel")), ((0,), (1, "浙江"), (2, "damaged"))],
    ...           [((0,), (1, "广东"), (2, "lost_parcel")), ((0,), (1, "广东"), (2, "damaged"))]]
    >>> [(c["value"], c["complaints"], c["share"]) for c in recent_intents(recent, (1, "广东"), slices)]
    [('lost_parcel', 2, 0.667), ('damaged', 1, 0.333)]
    >>> recent_intents(recent, (2, "damaged"), slices)   # its own intent is a label already
    []
    """
    if "intent" in slices[key[0]] or ("intent",) not in slices:
        return []
    intent_slice = slices.index(("intent",))
    counts: Counter = Counter()
    for bucket in recent:
        for keys in bucket:
            if key in keys:
                for k in keys:
                    if k[0] == intent_slice:
                        counts[k[1]] += 1
                        break
    total = sum(counts.values()) or 1
    return [{"dimension": "intent", "value": value, "complaints": n, "share": round(n / total, 3)}
            for value, n in sorted(counts.items(), key=lambda kv: (-kv[1], str(kv[0])))[:top]]
