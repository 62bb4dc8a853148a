"""Push the riskwatch datasources and dashboards to a running Grafana with grafana-client.

Idempotent: the folder and datasources are created, or updated when they exist (matched by
uid); dashboards are saved with ``overwrite``.  Resources are pushed with provenance
disabled, so people may still edit them in the UI (the next push overwrites their edits).

:func:`bracket_ipv6` and :func:`why_unreachable` are public: the Grafana annotations sink
(``sinks/grafana_annotations.py``) talks to the same Grafana through the same client.
"""

from __future__ import annotations

import logging
from typing import Any

from riskwatch.commands import redact_url
from riskwatch.errors import ConfigError, RiskwatchError
from dashboards.alert_rules import GROUP, alert_rules
from dashboards.provisioning import FOLDER_UID, GrafanaTargets, dashboard_json, datasources

__all__ = ["bracket_ipv6", "push", "why_unreachable"]

logger = logging.getLogger(__name__)


class GrafanaPushError(RiskwatchError):
    pass


def _client(url: str, token: str | None) -> Any:
    from grafana_client import GrafanaApi

    if not url.startswith(("http://", "https://")):
        raise ConfigError(f"--url must be http(s)://HOST:PORT, got {redact_url(url)!r}")
    return bracket_ipv6(GrafanaApi.from_url(url, credential=token or None, timeout=10))


def bracket_ipv6(api: Any) -> Any:
    """``api`` (a ``GrafanaApi``) with an IPv6 host in brackets again: ``from_url`` takes
    the host without them, and ``http://::1:3000/api`` is an InvalidURL to every request."""
    client = api.client
    host = client.url_host or ""
    if ":" in host and not host.startswith("["):
        client.url = client.url.replace(f"://{host}", f"://[{host}]", 1)
    return api


def why_unreachable(exc: BaseException) -> str:
    """The root cause of a connection failure in a few words ("connection refused").

    requests wraps urllib3's MaxRetryError, which wraps a NewConnectionError, which wraps
    the OSError: its text repeats them all, with object addresses. Walk down to the OSError.
    """
    import socket

    seen: set[int] = set()
    stack: list[BaseException] = [exc]
    while stack:
        e = stack.pop(0)
        if id(e) in seen:
            continue
        seen.add(id(e))
        if isinstance(e, socket.gaierror):
            return "cannot resolve the host name"
        if isinstance(e, TimeoutError) or type(e).__name__ in ("ConnectTimeoutError", "ReadTimeoutError"):
            return "timed out"
        if isinstance(e, ConnectionRefusedError):
            return "connection refused"
        if isinstance(e, OSError) and e.strerror:
            return e.strerror[:1].lower() + e.strerror[1:]
        stack += [c for c in (getattr(e, "reason", None), e.__cause__, e.__context__, *e.args)
                  if isinstance(c, BaseException)]
    return type(exc).__name__


def push(url: str, token: str | None = None, targets: GrafanaTargets | None = None
         ) -> dict[str, list[str]]:
    """Push everything; return what was created/updated per resource type."""
    from grafana_client.client import GrafanaClientError, GrafanaException

    targets = targets or GrafanaTargets()
    api = _client(url, token)
    done: dict[str, list[str]] = {"folders": [], "datasources": [], "dashboards": []}
    try:
        try:
            api.folder.get_folder(FOLDER_UID)
        except GrafanaClientError as exc:
            if exc.status_code != 404:
                raise
            api.folder.create_folder("riskwatch", uid=FOLDER_UID)
            done["folders"].append(FOLDER_UID)
        for ds in datasources(targets):
            try:
                api.datasource.get_datasource_by_uid(ds["uid"])
            except GrafanaClientError as exc:
                if exc.status_code != 404:
                    raise
                api.datasource.create_datasource(ds)
            else:
                api.datasource.update_datasource_by_uid(ds["uid"], ds)
            done["datasources"].append(ds["uid"])
        rules = alert_rules(targets.database)
        api.alertingprovisioning.update_rule_group(
            FOLDER_UID, GROUP, {"title": GROUP, "interval": 60, "rules": rules},
            disable_provenance=True)  # editable in the UI; the next push overwrites
        done["alert rules"] = [r["uid"] for r in rules]
        for uid, board in dashboard_json(targets).items():
            api.dashboard.update_dashboard({"dashboard": board, "folderUid": FOLDER_UID,
                                            "overwrite": True,
                                            "message": "riskwatch dashboards push"})
            done["dashboards"].append(uid)
    except GrafanaException as exc:
        raise GrafanaPushError(f"Grafana at {redact_url(url)} refused the push: {exc}") from exc
    except OSError as exc:  # requests' ConnectionError and Timeout are OSErrors
        raise GrafanaPushError(f"cannot reach Grafana at {redact_url(url)}: "
                               f"{why_unreachable(exc)}") from exc
    return done
