"""Which input partitions a worker owns, and whether its slices see all the traffic.

Slices cross partitions: a carrier's orders come from every region, the global slice
from everywhere. A worker's counts, baselines and alerts are the single-worker truth
only while it owns *every* partition of its input topics. Start a second worker in the
same consumer group on topics with more than one partition and Kafka splits the
partitions between the two: each then counts part of every global, region and carrier
slice, learns baselines from part of the traffic and pages on partial counts. Nothing
fails; the alerts just differ from one worker's. So the worker checks its assignment
after every rebalance and says so, in a warning and on ``/stats/`` (``coverage``),
instead of letting a scale-out attempt go unnoticed (README, *Scale-out*).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

__all__ = ["partition_coverage", "coverage_warning"]


def partition_coverage(assigned: Iterable[tuple[str, int]],
                       partitions_of: Callable[[str], int | None],
                       inputs: Iterable[str]) -> dict:
    """The worker's share of its input partitions.

    ``assigned``: the input ``(topic, partition)`` pairs this worker holds;
    ``partitions_of(topic)``: the topic's partition count from the cluster's metadata
    (``None`` when unknown, e.g. no such topic); ``inputs``: the input topics. ``status`` is ``whole``
    (every input partition here: exact), ``partial`` (some: slices see part of the
    traffic), ``standby`` (none: another worker of the group is active) or ``unknown``
    (a partition count is not known yet).

    >>> counts = {"orders": 2, "complaints": 2}.get
    >>> c = partition_coverage([("orders", 0), ("complaints", 0)], counts, ["orders", "complaints"])
    >>> c["status"], c["owned"], c["total"], c["missing"]
    ('partial', 2, 4, ['complaints/1', 'orders/1'])
    >>> partition_coverage([("orders", 0), ("orders", 1), ("complaints", 0), ("complaints", 1)],
    ...                    counts, ["orders", "complaints"])["status"]
    'whole'
    >>> partition_coverage([], counts, ["orders", "complaints"])["status"]
    'standby'
    >>> partition_coverage([("orders", 0)], {"orders": 1}.get, ["orders", "complaints"])["status"]
    'unknown'
    """
    owned = set(assigned)
    inputs = sorted(set(inputs))
    counts = {topic: partitions_of(topic) for topic in inputs}
    unknown = sorted(topic for topic, n in counts.items() if not n)
    every = {(topic, p) for topic, n in counts.items() if n for p in range(n)}
    missing = sorted(every - owned)
    if unknown:
        status = "unknown"
    elif not owned & every:
        status = "standby"
    elif missing:
        status = "partial"
    else:
        status = "whole"
    return {"status": status, "owned": len(owned & every), "total": len(every),
            "missing": [f"{topic}/{p}" for topic, p in missing],
            "unknown_topics": unknown}


def coverage_warning(coverage: dict, group: str) -> str | None:
    """The warning for a ``partial`` coverage (``None`` otherwise): what is wrong, the
    consequence, and what to do.

    >>> print(coverage_warning({"status": "partial", "owned": 1, "total": 2,
    ...                         "missing": ["orders/1"]}, "riskwatch"))  # doctest: +NORMALIZE_WHITESPACE
    this worker owns 1 of 2 input partitions (not orders/1): another active worker of
    group 'riskwatch' has the rest, so global, region and carrier slices count only part
    of the traffic and their baselines and alerts differ from one worker's. Run one
    active worker per group (more only as standbys, on topics with one partition each);
    see README 'Scale-out'. Active workers must not share a --checkpoint-dir: each
    overwrites the other's checkpoints.
    """
    if coverage.get("status") != "partial":
        return None
    missing = coverage["missing"]
    shown = ", ".join(missing[:6]) + (f" and {len(missing) - 6} more" if len(missing) > 6 else "")
    return (f"this worker owns {coverage['owned']} of {coverage['total']} input partitions "
            f"(not {shown}): another active worker of group {group!r} has the rest, so "
            "global, region and carrier slices count only part of the traffic and their "
            "baselines and alerts differ from one worker's. Run one active worker per group "
            "(more only as standbys, on topics with one partition each); see README "
            "'Scale-out'. Active workers must not share a --checkpoint-dir: each "
            "overwrites the other's checkpoints.")
