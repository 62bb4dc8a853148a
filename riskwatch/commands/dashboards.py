"""``riskwatch dashboards build|push``: Grafana dashboards and datasources as code.

::

    riskwatch dashboards build --out dashboards/generated     # provisioning files
    riskwatch dashboards push --url http://127.0.0.1:3000 --token "$GRAFANA_TOKEN"
    riskwatch dashboards check --chdb riskwatch-data/demo/chdb    # every panel on chDB

See :mod:`dashboards` for what the four dashboards show.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from riskwatch.commands import check_http_url, check_port, nonempty, redact_url
from riskwatch.errors import ConfigError

__all__ = ["register"]


def _targets(args: argparse.Namespace):
    from dashboards.provisioning import GrafanaTargets

    # Checked here: whatever is given is written into the datasources as is, and Grafana
    # only complains when someone opens a dashboard.
    check_port("--clickhouse-port", args.clickhouse_port)
    check_http_url("--alertmanager-url", args.alertmanager_url)
    return GrafanaTargets(clickhouse_host=args.clickhouse_host,
                          clickhouse_port=args.clickhouse_port,
                          clickhouse_user=args.clickhouse_user, database=args.database,
                          alertmanager_url=args.alertmanager_url)


def cmd_build(args: argparse.Namespace) -> int:
    from dashboards.provisioning import write_provisioning

    targets = _targets(args)
    out = Path(args.out)
    if args.out == "-":   # made a directory named '-'
        raise ConfigError("--out -: the provisioning files go to a directory, not to stdout; "
                          "give a directory name")
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {args.out}: is a file; give the directory to write "
                          "the provisioning files under")
    try:
        files = write_provisioning(out, targets)
    except OSError as exc:  # unwritable, or a file where a subdirectory must go
        where = exc.filename or args.out
        raise ConfigError(f"--out {args.out}: cannot write {where}: {exc.strerror}") from None
    print(f"wrote {len(files)} files under {args.out}:")
    for path in files:
        print(f"  {path}")
    return 0


def cmd_push(args: argparse.Namespace) -> int:
    from dashboards.push import push

    check_http_url("--url", args.url)  # 'http://h:70000' was a ValueError traceback
    done = push(args.url, args.token, _targets(args))
    print(f"pushed to {redact_url(args.url)}: "
          + ", ".join(f"{len(v)} {k}" for k, v in done.items()))
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    from dashboards.check import check_chdb, panel_summary

    results = check_chdb(args.chdb, args.database)
    width = max(len(f"{r.dashboard} / {r.panel}") for r in results)
    for r in results:
        status = f"ERROR {r.error}" if r.error else f"{r.rows:>6} rows  {', '.join(r.columns)}"
        print(f"{r.dashboard + ' / ' + r.panel:<{width}}  {status}")
    summary, failed = panel_summary(results)
    print(summary)
    return 1 if failed else 0


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--clickhouse-host", type=nonempty, default="clickhouse",
                   help="ClickHouse host as Grafana sees it (default %(default)s)")
    p.add_argument("--clickhouse-port", type=int, default=9000, help="native port (default 9000)")
    p.add_argument("--clickhouse-user", type=nonempty, default="riskwatch_dashboard",
                   help="read-only user (default %(default)s)")
    p.add_argument("--database", type=nonempty, default="riskwatch",
                   help="database (default %(default)s)")
    p.add_argument("--alertmanager-url", default="http://alertmanager:9093",
                   help="Alertmanager as Grafana sees it (default %(default)s)")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("dashboards", help="Grafana dashboards as code: build files or push",
                       description="Build Grafana provisioning files (dashboards JSON, ClickHouse "
                                   "and Alertmanager datasources) or push them with grafana-client.")
    dsub = p.add_subparsers(dest="dashboards_command", metavar="ACTION")
    dsub.required = True
    b = dsub.add_parser("build", help="write provisioning files under --out")
    b.add_argument("--out", required=True, help="output directory")
    _common(b)
    b.set_defaults(func=cmd_build)
    u = dsub.add_parser("push", help="push datasources and dashboards to a running Grafana")
    u.add_argument("--url", required=True, help="Grafana base URL, http(s)://HOST:PORT")
    u.add_argument("--token", default=os.environ.get("GRAFANA_TOKEN"),
                   help="service-account token (default $GRAFANA_TOKEN)")
    _common(u)
    u.set_defaults(func=cmd_push)
    c = dsub.add_parser("check", help="run every panel's query on a chDB database (no Grafana)")
    c.add_argument("--chdb", required=True, help="chDB directory, e.g. riskwatch-data/demo/chdb")
    c.add_argument("--database", type=nonempty, default="riskwatch",
                   help="database (default %(default)s)")
    c.set_defaults(func=cmd_check)
