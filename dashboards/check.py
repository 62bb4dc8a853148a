"""Run every dashboard panel's query on a chDB database, as Grafana would run it.

``riskwatch dashboards check --chdb riskwatch-data/demo/chdb`` (after ``make demo``) expands
the plugin macros for the data's own time range and the variables' "All" values, runs each
query and prints its row count: the dashboards' view of the data without Grafana.
"""

from __future__ import annotations

from dataclasses import dataclass

from dashboards.definitions import ALL, build_dashboards, panel_queries
from dashboards.macros import expand, interval_for

__all__ = ["PanelResult", "check_chdb", "data_span", "existing_chdb", "panel_summary"]


@dataclass(frozen=True)
class PanelResult:
    dashboard: str
    panel: str
    rows: int
    columns: tuple[str, ...]
    error: str | None = None


def check_chdb(path: str, database: str = "riskwatch") -> list[PanelResult]:
    """Every panel of every dashboard run on chDB at ``path``; errors are reported, not raised."""
    from riskwatch.errors import SinkError
    from sinks.clickhouse import ChdbSink

    sink = ChdbSink(existing_chdb(path), database=database)
    try:
        sink.setup()
        lo, hi = data_span(sink, path, database)
        merchants = sink.query(f"SELECT merchant_id FROM `{database}`.scores "
                               "GROUP BY merchant_id ORDER BY count() DESC LIMIT 1")
        variables = {"region": [ALL], "carrier": [ALL], "intent": [ALL], "merchant": [ALL]}
        results = []
        for uid, board in build_dashboards(database).items():
            board_vars = ({"merchant": [merchants[0]["merchant_id"] if merchants else ""]}
                          if uid == "riskwatch-merchants" else variables)
            # Dead letters are stamped when recorded: pipeline health looks up to now.
            end = max(hi, _now()) if uid == "riskwatch-pipeline" else hi
            for title, _kind, sql in panel_queries(board):
                query = expand(sql, time_from=lo, time_to=end,
                               interval_s=interval_for(end - lo, 200, 300), variables=board_vars)
                try:
                    rows = sink.query(query)
                except SinkError as exc:
                    results.append(PanelResult(uid, title, 0, (), str(exc)))
                    continue
                results.append(PanelResult(uid, title, len(rows),
                                           tuple(rows[0]) if rows else ()))
        return results
    finally:
        sink.close()


def data_span(sink, path: str, database: str) -> tuple[int, int]:
    """Unix seconds from the first aggregate bucket's start to the last one's end: the
    time range the dashboards are run over. No aggregates is a clear error."""
    from riskwatch.errors import ConfigError

    [span] = sink.query(f"SELECT toUnixTimestamp(min(bucket_start)) AS lo, "
                        f"toUnixTimestamp(max(bucket_end)) AS hi, count() AS n "
                        f"FROM `{database}`.aggregates")
    if not span["n"]:
        raise ConfigError(f"no aggregates in {path} database {database}: run "
                          "`make demo` (or a worker with --chdb) first")
    return int(span["lo"]), int(span["hi"])


def existing_chdb(path: str) -> str:
    """``path`` if it is a directory; else a clear error (chDB would create an empty one)."""
    from pathlib import Path

    from riskwatch.errors import ConfigError

    if Path(path).exists() and not Path(path).is_dir():
        raise ConfigError(f"--chdb: {path} is a file, not a chDB data directory")
    if not Path(path).is_dir():
        raise ConfigError(f"--chdb {path}: no such directory (run `make demo` first, "
                          "or point it at a worker's --chdb directory)")
    return path


def panel_summary(results) -> tuple[str, bool]:
    """The "N panels: with data / empty / failed" line for panels that have ``rows`` and
    ``error``, and whether any failed (the command then exits 1).

    >>> panel_summary([PanelResult("b", "p", 3, ("x",)), PanelResult("b", "q", 0, ())])
    ('2 panels: 1 with data, 1 empty, 0 failed', False)
    """
    failed = sum(1 for r in results if r.error)
    empty = sum(1 for r in results if not r.error and not r.rows)
    return (f"{len(results)} panels: {len(results) - failed - empty} with data, "
            f"{empty} empty, {failed} failed"), failed > 0


def _now() -> int:
    import time
    return int(time.time())
