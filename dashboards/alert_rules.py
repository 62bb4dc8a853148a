"""Optional Grafana-managed alert rules on riskwatch's ClickHouse tables.

riskwatch pages through Alertmanager itself (``--alertmanager-url``); these rules watch
what the stream cannot see about itself, from Grafana:

* ``riskwatch-pipeline-stalled`` — no row stored in ``events`` for 15 minutes: the worker
  or its broker is down (a live stream always has orders);
* ``riskwatch-red-alert-open`` — a red alert has been firing for over 2 hours without a
  resolve: a reminder for the risk team's dashboard, paused by default so it does not
  duplicate the pager.

Each rule is a ClickHouse query returning one numeric row (the plugin's table format,
which Grafana alerting accepts) and a math expression as the condition.
"""

from __future__ import annotations

import json
from typing import Any

from grafana_foundation_sdk.builders import alerting, expr
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models.alerting import RelativeTimeRange

from dashboards.query import CLICKHOUSE_UID, ClickHouseQueryBuilder

__all__ = ["GROUP", "alert_rules", "rule_queries"]

GROUP = "riskwatch"


def _rule(uid: str, title: str, sql: str, condition: str, *, seconds: int, summary: str,
          severity: str, paused: bool = False, folder_uid: str = "riskwatch",
          database: str = "riskwatch") -> alerting.Rule:
    query = (alerting.Query("A").datasource_uid(CLICKHOUSE_UID)
             .relative_time_range(RelativeTimeRange(from_val=seconds, to=0))
             .model(ClickHouseQueryBuilder(sql.format(db=database).strip()).ref_id("A").table()))
    check = (alerting.Query("B").datasource_uid("__expr__")
             .model(expr.TypeMath().expression(condition).ref_id("B")))
    return (alerting.Rule(title).uid(uid).org_id(1).folder_uid(folder_uid).rule_group(GROUP)
            .queries([query, check]).condition("B").for_val("5m")
            .no_data_state("Alerting").exec_err_state("Error").is_paused(paused)
            .labels({"service": "riskwatch", "severity": severity})
            .annotations({"summary": summary}))


def alert_rules(database: str = "riskwatch") -> list[dict[str, Any]]:
    """The rules as Grafana's API JSON (``/api/v1/provisioning/alert-rules`` form)."""
    rules = [
        _rule("riskwatch-pipeline-stalled", "riskwatch pipeline stalled", """
SELECT count() AS stored_15m FROM {db}.events
WHERE ts >= $__fromTime - INTERVAL 1 DAY AND inserted_at >= now() - INTERVAL 15 MINUTE""",
              "$A < 1", seconds=900, severity="orange", database=database,
              summary="No event stored in ClickHouse for 15 minutes: check the worker and "
                      "the broker (riskwatch pipeline health dashboard)."),
        _rule("riskwatch-red-alert-open", "riskwatch red alert open over 2 hours", """
SELECT count() AS red_open FROM (
    SELECT alert_id, argMax(status, (ts, version)) AS state,
           argMax(severity, (ts, version)) AS level, min(ts) AS since
    FROM {db}.alerts FINAL WHERE $__timeFilter(ts) GROUP BY alert_id)
WHERE state = 'firing' AND level = 'red' AND since <= now() - INTERVAL 2 HOUR""",
              "$A > 0", seconds=86400, severity="red", paused=True, database=database,
              summary="A red riskwatch alert has been firing for over 2 hours "
                      "(risk overview dashboard)."),
    ]
    return [json.loads(json.dumps(rule.build(), cls=JSONEncoder)) for rule in rules]


def provisioning_file(database: str = "riskwatch") -> dict[str, Any]:
    """``provisioning/alerting/*.yaml`` content (file provisioning uses its own keys)."""
    keep = ("uid", "title", "condition", "data", "noDataState", "execErrState", "for",
            "labels", "annotations", "isPaused")
    return {"apiVersion": 1, "groups": [{
        "orgId": 1, "name": GROUP, "folder": "riskwatch", "interval": "1m",
        "rules": [{k: r[k] for k in keep if k in r} for r in alert_rules(database)]}]}


def rule_queries(database: str = "riskwatch") -> list[tuple[str, str]]:
    """``(rule uid, SQL)`` of every rule's ClickHouse query."""
    return [(r["uid"], q["model"]["rawSql"]) for r in alert_rules(database)
            for q in r["data"] if q["datasourceUid"] == CLICKHOUSE_UID]
