"""Which sinks a run writes to, built from its options: one place for worker, demo and replay.

Every destination a user can switch on from the command line (``--chdb``,
``--clickhouse-url``, ``--alertmanager-url``, ``--webhook-url``, ``--grafana-url`` …) is a
field of :class:`OutputOptions`; :func:`build_sinks` turns the options into sink objects
that all follow :mod:`sinks.base`'s contract.  :func:`add_output_arguments` puts the same
flags on every command that runs the pipeline, and :func:`options_from_args` reads them
back, so ``riskwatch worker``, ``riskwatch demo`` and ``riskwatch replay`` stay in step.

>>> build_sinks(OutputOptions())
[]
"""

from __future__ import annotations

import argparse
import dataclasses
import os
from typing import Any

from riskwatch.errors import ConfigError

__all__ = ["CLICKHOUSE_ENV", "OutputOptions", "add_output_arguments", "build_sinks", "checked_clickhouse_url",
           "clickhouse_url", "options_from_args", "worker_flags"]

#: The variable ``--clickhouse-url`` defaults to.
CLICKHOUSE_ENV = "RISKWATCH_CLICKHOUSE_URL"


@dataclasses.dataclass(frozen=True)
class OutputOptions:
    """Where results go besides the run's own files/topics. Empty means nowhere."""

    chdb_path: str | None = None
    clickhouse_url: str | None = None           # clickhouse://user:pass@host:port/db (native)
    # Alerting (issue 5): Alertmanager peers, signed webhooks, Grafana links/annotations.
    alertmanager_urls: tuple[str, ...] = ()
    grafana_url: str | None = None              # browser base URL for drill-down links
    runbook_url: str | None = None
    webhook_urls: tuple[str, ...] = ()
    # default: $RISKWATCH_WEBHOOK_SECRET (options_from_args reads it); kept out of repr so
    # that printing or logging the options never shows the key
    webhook_secret: str | None = dataclasses.field(default=None, repr=False)
    grafana_annotations_url: str | None = None  # token: $RISKWATCH_GRAFANA_TOKEN

    def __post_init__(self) -> None:
        for name in ("alertmanager_urls", "webhook_urls"):  # argparse gives lists
            object.__setattr__(self, name, tuple(getattr(self, name) or ()))


def add_output_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the output flags shared by ``worker``, ``demo`` and ``replay``."""
    parser.add_argument("--chdb", dest="chdb_path",
                        help="also store everything in embedded ClickHouse (chDB) at this path")
    # No argparse default: options_from_args reads $RISKWATCH_CLICKHOUSE_URL, so an
    # error names where the URL came from.
    parser.add_argument("--clickhouse-url",
                        metavar="URL", help="also store everything in a ClickHouse server: "
                        "clickhouse://user:password@host:9000/riskwatch (native protocol; "
                        "add ?compression=lz4 for a slow link, ?chunk_rows=N to build "
                        "each batch's next N rows while the last are inserted; "
                        "default $RISKWATCH_CLICKHOUSE_URL)")
    parser.add_argument("--alertmanager-url", dest="alertmanager_urls", action="append", default=[],
                        metavar="URL", help="post alerts to this Prometheus Alertmanager (API v2); "
                        "repeat for every peer of an HA cluster")
    parser.add_argument("--grafana-url", help="Grafana base URL for the drill-down link in alerts "
                        "(Alertmanager annotations and webhook bodies)")
    parser.add_argument("--runbook-url", help="runbook page linked from every alert (Alertmanager "
                        "and webhooks), with #<metric> appended (default: the README's On-call runbook)")
    parser.add_argument("--webhook-url", dest="webhook_urls", action="append", default=[],
                        metavar="URL", help="POST signed alert records here (repeatable)")
    from riskwatch.commands import signing_key
    parser.add_argument("--webhook-secret", type=signing_key,
                        help="HMAC-SHA256 key for --webhook-url (default $RISKWATCH_WEBHOOK_SECRET)")
    parser.add_argument("--grafana-annotations-url", metavar="URL",
                        help="write alert state changes as Grafana annotations "
                        "(token: $RISKWATCH_GRAFANA_TOKEN)")


def clickhouse_url(flag_value: str | None) -> tuple[str | None, str]:
    """The ClickHouse server URL to use and where it came from, for error messages:
    ``--clickhouse-url`` when given, else ``$RISKWATCH_CLICKHOUSE_URL`` (``None`` when
    neither is set).

    >>> clickhouse_url("clickhouse://h/risk")
    ('clickhouse://h/risk', '--clickhouse-url')
    """
    if flag_value is not None:
        return flag_value, "--clickhouse-url"
    return os.environ.get(CLICKHOUSE_ENV) or None, f"${CLICKHOUSE_ENV}"


def checked_clickhouse_url(flag_value: str | None) -> tuple[str | None, str]:
    """:func:`clickhouse_url`, the URL checked now: a ConfigError naming where it came
    from (the flag or the variable) if it is not a ClickHouse URL."""
    url, source = clickhouse_url(flag_value)
    if url:
        from sinks.clickhouse.server_sink import parse_clickhouse_url
        try:
            parse_clickhouse_url(url)
        except ConfigError as exc:
            raise ConfigError(f"{source}: {exc}") from None
    return url, source


def options_from_args(args: argparse.Namespace) -> OutputOptions:
    """Read the flags added by :func:`add_output_arguments` (missing ones keep defaults),
    with ``--clickhouse-url`` falling back to ``$RISKWATCH_CLICKHOUSE_URL``.

    Every URL is checked here, before a run starts, with a ConfigError naming the flag
    (or the variable): an HTTP client takes ``http://h:70000`` or ``http://`` and fails
    at each post, which a sink retries forever as a receiver that is down, and the
    Grafana and runbook URLs go into every alert's links unchecked.
    """
    from riskwatch.commands import check_http_url, secret_from_env

    fields = {f.name for f in dataclasses.fields(OutputOptions)}
    values = {name: getattr(args, name) for name in fields if hasattr(args, name)}
    if "clickhouse_url" in values:
        values["clickhouse_url"] = checked_clickhouse_url(values["clickhouse_url"])[0]
    for name, flag in (("alertmanager_urls", "--alertmanager-url"), ("webhook_urls", "--webhook-url")):
        for url in values.get(name) or ():
            check_http_url(flag, url)
    for name in ("grafana_url", "runbook_url", "grafana_annotations_url"):
        if values.get(name):
            check_http_url(f"--{name.replace('_', '-')}", values[name])
    if values.get("webhook_secret") and not values.get("webhook_urls"):   # else ignored
        raise ConfigError("--webhook-secret applies to --webhook-url only; give the URL too")
    if values.get("webhook_urls") and not values.get("webhook_secret"):
        # read once, here: a blank one is refused, naming it
        values["webhook_secret"] = secret_from_env("RISKWATCH_WEBHOOK_SECRET")
    return OutputOptions(**values)


def worker_flags(options: OutputOptions) -> list[str]:
    """The same options as ``python -m streams.worker`` flags (the demo starts one)."""
    flags: list[str] = []
    if options.chdb_path:
        flags += ["--chdb", os.fspath(options.chdb_path)]
    if options.clickhouse_url:
        flags += ["--clickhouse-url", options.clickhouse_url]
    for url in options.alertmanager_urls:
        flags += ["--alertmanager-url", url]
    for url in options.webhook_urls:
        flags += ["--webhook-url", url]
    # The webhook secret is not a flag (a command line is visible to every local user):
    # the worker reads $RISKWATCH_WEBHOOK_SECRET, which the child process inherits.
    for flag, value in (("--grafana-url", options.grafana_url), ("--runbook-url", options.runbook_url),
                        ("--grafana-annotations-url", options.grafana_annotations_url)):
        if value:
            flags += [flag, value]
    return flags


#: How long a batch run (``riskwatch replay``) waits out a destination that went down
#: mid-run before it fails; the live worker waits for ever (back-pressure).
BATCH_RETRY_SECONDS = 60.0


def build_sinks(options: OutputOptions, *, batch: bool = False) -> list[Any]:
    """The sink objects for ``options``, not yet set up (the caller calls ``setup()``).

    ``batch``: for a run that must end. A transient failure is retried for about
    :data:`BATCH_RETRY_SECONDS`, then the run fails, instead of retrying until the
    write lands as the live worker does.
    """
    sinks = _build_sinks(options)
    if batch:
        for sink in sinks:
            sink.retry = dataclasses.replace(
                sink.retry, max_transient_attempts=_attempts_within(sink.retry, BATCH_RETRY_SECONDS))
    return sinks


def _attempts_within(policy: Any, seconds: float) -> int:
    """Attempts whose pauses (before jitter) add up to ``seconds`` or more.

    >>> from sinks.base import RetryPolicy
    >>> _attempts_within(RetryPolicy(initial_delay=0.5, max_delay=30.0), 60)  # 0.5+1+...+30 s
    8
    """
    attempts, waited = 1, 0.0
    while waited < seconds:
        waited += min(policy.max_delay, policy.initial_delay * policy.multiplier ** (attempts - 1))
        attempts += 1
    return attempts


def _build_sinks(options: OutputOptions) -> list[Any]:
    sinks: list[Any] = []
    if options.chdb_path:
        from sinks.clickhouse import ChdbSink  # late: chdb is a 500 MB import
        sinks.append(ChdbSink(str(options.chdb_path)))
    if options.clickhouse_url:
        from sinks.clickhouse.server_sink import ClickHouseServerSink  # bad URL: ConfigError
        sinks.append(ClickHouseServerSink(options.clickhouse_url))
    sinks += _alerting_sinks(options, stores=list(sinks))
    return sinks


def _alerting_sinks(options: OutputOptions, stores: list[Any]) -> list[Any]:
    """Alertmanager, webhook and Grafana sinks (``sinks/alertmanager.py`` ...)."""
    out: list[Any] = []
    alertmanager = None
    if options.alertmanager_urls:
        from sinks.alertmanager import DEFAULT_RUNBOOK_URL, AlertmanagerSink
        alertmanager = AlertmanagerSink(options.alertmanager_urls, grafana_url=options.grafana_url,
                                        runbook_url=options.runbook_url or DEFAULT_RUNBOOK_URL)
        out.append(alertmanager)
    if options.webhook_urls:
        from sinks.webhook import WebhookSink

        def dead_letter(record: dict) -> None:  # a rejected webhook is kept where letters go
            for store in stores:
                store.add("dead_letters", record)

        def meta_alert(record: dict) -> None:   # a second channel: straight to Alertmanager
            if alertmanager is not None:
                alertmanager.write("alerts", [record], None)

        from sinks.alertmanager import DEFAULT_RUNBOOK_URL
        out.append(WebhookSink(options.webhook_urls, grafana_url=options.grafana_url,
                               runbook_url=options.runbook_url or DEFAULT_RUNBOOK_URL,
                               # options built in code (not by options_from_args) may leave
                               # the secret to the environment
                               secret=options.webhook_secret or os.environ.get("RISKWATCH_WEBHOOK_SECRET", ""),
                               on_dead_letter=dead_letter, on_meta_alert=meta_alert))
    if options.grafana_annotations_url:
        from sinks.grafana_annotations import GrafanaAnnotationsSink
        out.append(GrafanaAnnotationsSink(options.grafana_annotations_url,
                                          token=os.environ.get("RISKWATCH_GRAFANA_TOKEN")))
    return out
