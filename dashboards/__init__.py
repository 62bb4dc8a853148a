"""Grafana dashboards, datasources and provisioning for riskwatch, as code.

* :mod:`dashboards.query` — the ClickHouse query type for grafana-foundation-sdk;
* :mod:`dashboards.definitions` — the four dashboards (overview, slice drill-down,
  merchant quality, pipeline health);
* :mod:`dashboards.provisioning` — Grafana provisioning files (``riskwatch dashboards build``);
* :mod:`dashboards.push` — push to a running Grafana (``riskwatch dashboards push``);
* :mod:`dashboards.macros` — the plugin's macro expansion, to prove every panel query on chDB.
"""
