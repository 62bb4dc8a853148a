"""docker-compose.yml for teams, checked as a file.

There is no Docker engine on the development machines or in CI, so the stack itself is
untested (the README says so); this test parses the YAML and checks what can be checked
without running it: the services, ports published on 127.0.0.1 only, every bind-mounted
path exists in the repository, Grafana gets the ClickHouse plugin and the provisioning,
the worker writes to ClickHouse as the INSERT-only user, and no password is hard-coded.
"""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from riskwatch.cli import build_parser
from sinks.clickhouse.server_sink import parse_clickhouse_url

ROOT = Path(__file__).resolve().parents[2]


def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_services_and_images() -> None:
    services = compose()["services"]
    assert {"redpanda", "clickhouse", "grafana", "alertmanager", "worker", "migrate"} <= set(
        services)
    assert services["clickhouse"]["image"].startswith("clickhouse/clickhouse-server:")
    major = int(services["clickhouse"]["image"].split(":")[1].split(".")[0])
    assert major >= 23  # modern profile, SQL users with CHANGEABLE_IN_READONLY
    grafana = services["grafana"]
    assert re.match(r"grafana/grafana:11\.(6|[7-9])", grafana["image"])  # plugin 4.15+ needs 11.6
    assert "grafana-clickhouse-datasource" in grafana["environment"]["GF_PLUGINS_PREINSTALL"]
    assert services["worker"]["build"] == "." and (ROOT / "Dockerfile").is_file()


def test_every_port_is_published_on_loopback_only() -> None:
    published = [(name, port) for name, svc in compose()["services"].items()
                 for port in svc.get("ports", [])]
    assert len(published) >= 5
    for name, port in published:
        assert str(port).startswith("127.0.0.1:"), (name, port)


def test_bind_mounts_exist_and_provisioning_is_mounted() -> None:
    mounts = {}
    for name, svc in compose()["services"].items():
        for volume in svc.get("volumes", []):
            source, target = volume.split(":")[:2]
            if source.startswith("."):
                assert (ROOT / source).exists(), (name, source)
                mounts[target] = source
    assert mounts["/etc/grafana/provisioning/datasources"].endswith(
        "generated/provisioning/datasources")
    provider = yaml.safe_load((ROOT / "dashboards/generated/provisioning/dashboards/"
                               "riskwatch.yaml").read_text())
    # The provider reads the folder where compose mounts the dashboards JSON.
    assert mounts[provider["providers"][0]["options"]["path"]] == "./dashboards/generated/dashboards"
    assert any(t.startswith("/docker-entrypoint-initdb.d/") for t in mounts)
    assert mounts["/etc/alertmanager"] == "./dashboards/alertmanager"


def test_worker_command_parses_and_writes_as_the_writer_user() -> None:
    services = compose()["services"]
    worker = services["worker"]
    args = build_parser().parse_args(worker["command"])
    assert args.command == "worker" and args.alertmanager_urls == ["http://alertmanager:9093"]
    url = worker["environment"]["RISKWATCH_CLICKHOUSE_URL"]
    address = parse_clickhouse_url(url.replace("${CLICKHOUSE_WRITER_PASSWORD}", "x"))
    assert (address.user, address.host, address.database) == (
        "riskwatch_writer", "clickhouse", "riskwatch")
    assert worker["environment"]["RISKWATCH_BROKER"] == "kafka://redpanda:9092"
    assert services["migrate"]["depends_on"]["clickhouse"]["condition"] == "service_healthy"


def test_the_worker_checkpoints_to_its_named_volume() -> None:
    """Without checkpoints a container restart would start the detectors cold (and the
    offset gate would be off): the checkpoint directory must lie on a named volume."""
    compose_file = compose()
    worker = compose_file["services"]["worker"]
    args = build_parser().parse_args(worker["command"])
    assert args.checkpoint_dir, "the team stack must checkpoint"
    named = {v.split(":", 1)[1]: v.split(":", 1)[0] for v in worker["volumes"]}
    holder = [target for target in named if args.checkpoint_dir.startswith(target.rstrip("/") + "/")]
    assert holder and named[holder[0]] in compose_file["volumes"], (args.checkpoint_dir, named)


def test_no_password_is_hard_coded() -> None:
    text = (ROOT / "docker-compose.yml").read_text()
    for match in re.finditer(r"PASSWORD:\s*(\S+)", text):
        assert match.group(1).startswith("${"), match.group(0)
