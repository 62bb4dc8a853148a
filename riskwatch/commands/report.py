"""``riskwatch report``: a Grafana dashboard drawn from the embedded ClickHouse as one HTML page.

::

    make demo
    riskwatch report --chdb riskwatch-data/demo/chdb --out overview.html
    riskwatch report --chdb DIR --dashboard riskwatch-pipeline --out health.html

See :mod:`dashboards.render`. (``riskwatch evaluate --report`` is the *backtest* report.)
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from riskwatch.commands import check_outputs, existing_chdb, nonempty
from riskwatch.errors import ConfigError

__all__ = ["register"]


def cmd_report(args: argparse.Namespace) -> int:
    from dashboards.check import panel_summary
    from dashboards.render import render_dashboard, run_dashboard

    out = Path(args.out)
    if out.is_dir():  # checked before the queries run, not after (IsADirectoryError then)
        raise ConfigError(f"--out {args.out}: is a directory; give the HTML file to write, "
                          f"e.g. {out / 'overview.html'}")
    check_outputs({"--out": args.out})   # its directory exists and it is writable
    existing_chdb(args.chdb, args.database)   # read only: never make one
    title, description, span, panels = run_dashboard(
        args.chdb, args.database, args.dashboard,
        progress=None if args.quiet else (lambda line: print(line, file=sys.stderr)))
    try:
        out.write_text(render_dashboard(title, description, span, panels), encoding="utf-8")
    except OSError as exc:  # read-only directory, disk full ...
        raise ConfigError(f"--out {args.out}: cannot write it: {exc.strerror}") from None
    summary, failed = panel_summary(panels)
    print(f"wrote {out}: {summary}")
    return 1 if failed else 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("report", help="a dashboard from embedded ClickHouse as one HTML page",
                       description="Run a Grafana dashboard's own panel queries on the embedded "
                                   "ClickHouse (chDB) and write a self-contained HTML page with "
                                   "its charts and tables: the risk overview without a Grafana server.")
    p.add_argument("--chdb", required=True, help="embedded ClickHouse directory (e.g. riskwatch-data/demo/chdb)")
    p.add_argument("--out", required=True, help="HTML file to write")
    p.add_argument("--database", type=nonempty, default="riskwatch",
                   help="database (default %(default)s)")
    p.add_argument("--dashboard", default="riskwatch-overview",
                   help="dashboard uid: riskwatch-overview (default), riskwatch-slice, "
                        "riskwatch-merchants, riskwatch-pipeline")
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    p.set_defaults(func=cmd_report)
