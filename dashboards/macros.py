"""Expand the ClickHouse plugin's macros and Grafana's template variables, as Grafana would.

Grafana cannot run on this machine, so the dashboards are proven by expanding every panel's
SQL here and running it on chDB.  The expansions follow the plugin's ``pkg/macros``:

* ``$__timeFilter(col)`` -> ``col >= toDateTime(FROM) AND col <= toDateTime(TO)``
* ``$__fromTime`` / ``$__toTime`` -> ``toDateTime(FROM)`` / ``toDateTime(TO)``
* ``$__timeInterval(col)`` -> ``toStartOfInterval(toDateTime(col), INTERVAL N second)``
* ``$__interval_s`` -> ``N``

and Grafana's variable syntax: ``${v:singlequote}`` -> ``'a','b'`` (multi-value, quotes
escaped), ``${v}`` / ``$v`` -> ``a,b``.

>>> print(expand("SELECT $__timeInterval(ts) AS t FROM x WHERE $__timeFilter(ts) "
...              "AND region IN (${region:singlequote})", time_from=0, time_to=60,
...              interval_s=300, variables={"region": ["广东", "it's"]}))
SELECT toStartOfInterval(toDateTime(ts), INTERVAL 300 second) AS t FROM x WHERE ts >= toDateTime(0) AND ts <= toDateTime(60) AND region IN ('广东','it\\'s')
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

__all__ = ["expand", "interpolate", "interval_for"]

_VARIABLE = re.compile(r"\$\{(\w+)(?::(\w+))?\}|\$(\w+)")


def interval_for(seconds: float, max_points: int = 1000, minimum: int = 1) -> int:
    """Grafana's auto interval, roughly: the range over ``max_points``, at least ``minimum``."""
    return max(minimum, int(seconds // max_points))


def _quote(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def expand(sql: str, *, time_from: int, time_to: int, interval_s: int,
           variables: Mapping[str, Sequence[str]] | None = None) -> str:
    """``sql`` with every plugin macro and template variable replaced."""
    sql = re.sub(r"\$__timeFilter\(([^()]+)\)",
                 lambda m: f"{m.group(1).strip()} >= toDateTime({time_from}) AND "
                           f"{m.group(1).strip()} <= toDateTime({time_to})", sql)
    sql = re.sub(r"\$__timeInterval\(([^()]+)\)",
                 lambda m: f"toStartOfInterval(toDateTime({m.group(1).strip()}), "
                           f"INTERVAL {interval_s} second)", sql)
    sql = sql.replace("$__fromTime", f"toDateTime({time_from})")
    sql = sql.replace("$__toTime", f"toDateTime({time_to})")
    sql = sql.replace("$__interval_s", str(interval_s))
    if "$__" in sql:
        raise ValueError(f"unexpanded macro in: {sql}")
    values = dict(variables or {})

    def variable(m: re.Match[str]) -> str:
        name = m.group(1) or m.group(3)
        if name not in values:
            raise KeyError(f"template variable ${name} has no value")
        chosen = list(values[name])
        if m.group(2) == "singlequote":
            return ",".join(_quote(v) for v in chosen)
        if m.group(2) not in (None, "raw", "csv"):
            raise ValueError(f"unsupported variable format {m.group(2)!r}")
        return ",".join(chosen)

    return _VARIABLE.sub(variable, sql)


def interpolate(text: str, variables: Mapping[str, Sequence[str]], all_value: str = "__all__") -> str:
    """``text`` (a panel title) with its template variables shown as Grafana shows them:
    the chosen values joined, "All" for the "All" option; unknown names stay as written
    (a title is prose, not a query that must run).

    >>> interpolate("Score of ${merchant} · $region", {"merchant": ["m0042"], "region": ["__all__"]})
    'Score of m0042 · All'
    """
    def variable(m: re.Match[str]) -> str:
        name = m.group(1) or m.group(3)
        if name not in variables:
            return m.group(0)
        return " + ".join("All" if v == all_value else v for v in variables[name])

    return _VARIABLE.sub(variable, text)
