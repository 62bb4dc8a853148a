"""A ClickHouse query type for grafana-foundation-sdk, which ships none.

:class:`ClickHouseQuery` is the target JSON of the official plugin
``grafana-clickhouse-datasource`` (SQL editor mode); :class:`ClickHouseQueryBuilder` lets it
be passed to any SDK panel's ``with_target``.  Importing this module registers the type with
the SDK's runtime, so ``Dashboard.from_json`` reads such targets back as ``ClickHouseQuery``
(the round trip the tests check).

>>> q = ClickHouseQueryBuilder("SELECT 1 AS x").ref_id("A").table().build()
>>> q.to_json()["datasource"], q.to_json()["format"], q.to_json()["queryType"]
({'type': 'grafana-clickhouse-datasource', 'uid': 'riskwatch-clickhouse'}, 1, 'table')
>>> ClickHouseQuery.from_json(q.to_json()).to_json() == q.to_json()
True
"""

from __future__ import annotations

import dataclasses
from typing import Any, Self

from grafana_foundation_sdk.cog import builder as cogbuilder
from grafana_foundation_sdk.cog import runtime as cogruntime
from grafana_foundation_sdk.cog import variants as cogvariants
from grafana_foundation_sdk.models import dashboard

__all__ = ["CLICKHOUSE_UID", "CLICKHOUSE_TYPE", "ClickHouseQuery", "ClickHouseQueryBuilder",
           "clickhouse_ref"]

CLICKHOUSE_TYPE = "grafana-clickhouse-datasource"
#: uid of the provisioned ClickHouse datasource every panel refers to.
CLICKHOUSE_UID = "riskwatch-clickhouse"
# The plugin's result formats (sqlutil.FormatQueryOption): 0 time series, 1 table.
_FORMATS = {"timeseries": 0, "table": 1, "logs": 2, "traces": 3}


def clickhouse_ref(uid: str = CLICKHOUSE_UID) -> dashboard.DataSourceRef:
    return dashboard.DataSourceRef(type_val=CLICKHOUSE_TYPE, uid=uid)


@dataclasses.dataclass
class ClickHouseQuery(cogvariants.Dataquery):
    """One SQL target of the ClickHouse plugin (raw SQL editor)."""

    raw_sql: str
    ref_id: str = "A"
    query_type: str = "table"
    datasource_uid: str = CLICKHOUSE_UID
    hide: bool | None = None

    def to_json(self) -> dict[str, Any]:
        payload: dict[str, Any] = {
            "refId": self.ref_id,
            "datasource": {"type": CLICKHOUSE_TYPE, "uid": self.datasource_uid},
            "editorType": "sql",
            "rawSql": self.raw_sql,
            "format": _FORMATS[self.query_type],
            "queryType": self.query_type,
        }
        if self.hide is not None:
            payload["hide"] = self.hide
        return payload

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Self:
        return cls(raw_sql=data["rawSql"], ref_id=data.get("refId", "A"),
                   query_type=data.get("queryType", "table"),
                   datasource_uid=(data.get("datasource") or {}).get("uid", CLICKHOUSE_UID),
                   hide=data.get("hide"))


class ClickHouseQueryBuilder(cogbuilder.Builder[ClickHouseQuery]):
    """Builder of :class:`ClickHouseQuery`, the SDK's way to hand a target to a panel."""

    def __init__(self, sql: str) -> None:
        self._internal = ClickHouseQuery(raw_sql=sql)

    def build(self) -> ClickHouseQuery:
        return self._internal

    def ref_id(self, ref_id: str) -> Self:
        self._internal.ref_id = ref_id
        return self

    def table(self) -> Self:
        self._internal.query_type = "table"
        return self

    def timeseries(self) -> Self:
        self._internal.query_type = "timeseries"
        return self

    def datasource_uid(self, uid: str) -> Self:
        self._internal.datasource_uid = uid
        return self


cogruntime.register_dataquery_variant(
    cogruntime.DataqueryConfig(identifier=CLICKHOUSE_TYPE, from_json_hook=ClickHouseQuery.from_json))
