"""Dashboard JSON against the foundation SDK's models, the provisioning files, and the push.

The push runs against a *recording HTTP stub* of Grafana's API, not a Grafana server:
Grafana cannot be installed on this machine (no Debian, PyPI or npm package).  The stub
answers like Grafana for the few endpoints used and records every request, so the test
checks what grafana-client really sends over HTTP.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml
from grafana_foundation_sdk.models.dashboard import Dashboard

from dashboards.definitions import panel_queries
from dashboards.provisioning import GrafanaTargets, dashboard_json, write_provisioning
from dashboards.query import CLICKHOUSE_TYPE, CLICKHOUSE_UID, ClickHouseQuery
from riskwatch.cli import main

ROOT = Path(__file__).resolve().parents[2]


def test_dashboard_json_round_trips_through_the_sdk_models() -> None:
    for uid, board in dashboard_json().items():
        model = Dashboard.from_json(board)
        assert json.loads(json.dumps(model.to_json(), default=lambda o: o.to_json())) == board
        queries = panel_queries(model)
        assert queries, uid
        for panel in model.panels:
            assert panel.datasource.uid == CLICKHOUSE_UID and panel.grid_pos is not None
            for target in panel.targets:
                assert isinstance(target, ClickHouseQuery), (uid, panel.title)
        assert board["uid"] == uid and board["schemaVersion"] >= 39
        assert board["time"] == {"from": "now-24h", "to": "now"}


def test_panels_do_not_overlap_on_the_grid() -> None:
    for uid, board in dashboard_json().items():
        cells: set[tuple[int, int]] = set()
        for panel in board["panels"]:
            g = panel["gridPos"]
            assert g["x"] + g["w"] <= 24, (uid, panel["title"])
            mine = {(x, y) for x in range(g["x"], g["x"] + g["w"])
                    for y in range(g["y"], g["y"] + g["h"])}
            assert not cells & mine, (uid, panel["title"])
            cells |= mine


def test_build_writes_provisioning_grafana_can_read(tmp_path: Path, capsys) -> None:
    assert main(["dashboards", "build", "--out", str(tmp_path)]) == 0
    ds = yaml.safe_load((tmp_path / "provisioning/datasources/riskwatch.yaml").read_text())
    assert ds["apiVersion"] == 1
    by_type = {d["type"]: d for d in ds["datasources"]}
    ch = by_type[CLICKHOUSE_TYPE]
    assert ch["uid"] == CLICKHOUSE_UID and ch["jsonData"]["protocol"] == "native"
    assert ch["jsonData"]["port"] == 9000 and ch["jsonData"]["defaultDatabase"] == "riskwatch"
    assert ch["secureJsonData"]["password"] == "${CLICKHOUSE_DASHBOARD_PASSWORD}"  # no secret
    assert by_type["alertmanager"]["jsonData"]["implementation"] == "prometheus"
    prov = yaml.safe_load((tmp_path / "provisioning/dashboards/riskwatch.yaml").read_text())
    [provider] = prov["providers"]
    assert provider["type"] == "file" and provider["options"]["path"].startswith("/var/lib/grafana")
    files = sorted(p.name for p in (tmp_path / "dashboards").glob("*.json"))
    assert files == sorted(f"{uid}.json" for uid in dashboard_json())
    rules = yaml.safe_load((tmp_path / "provisioning/alerting/riskwatch.yaml").read_text())
    [group] = rules["groups"]
    assert group["folder"] == "riskwatch" and len(group["rules"]) == 2
    for rule in group["rules"]:
        assert rule["condition"] == "B" and [q["refId"] for q in rule["data"]] == ["A", "B"]
    assert "wrote 7 files" in capsys.readouterr().out


@pytest.mark.parametrize("args, message", [
    (["--out", "FILE"], "--out FILE: is a file; give the directory"),
    (["--out", "DIR", "--clickhouse-port", "-5"], "--clickhouse-port: must be a TCP port 1-65535, got -5"),
    (["--out", "DIR", "--clickhouse-port", "70000"], "--clickhouse-port: must be a TCP port 1-65535"),
    (["--out", "DIR", "--alertmanager-url", "notaurl"],
     "--alertmanager-url: expected http(s)://HOST[:PORT], got 'notaurl'"),
    (["--out", "DIR", "--alertmanager-url", "http://am:99999"], "--alertmanager-url: port must be 1-65535"),
])
def test_build_refuses_a_bad_out_or_target_in_one_line(tmp_path: Path, capsys, args, message) -> None:
    """A file as --out used to be a NotADirectoryError traceback; a bad port or URL was
    written into the datasources with exit 0."""
    (tmp_path / "FILE").write_text("x")
    args = [a.replace("FILE", str(tmp_path / "FILE")).replace("DIR", str(tmp_path / "dash"))
            for a in args]
    assert main(["dashboards", "build", *args]) == 2
    err = capsys.readouterr().err
    assert err.replace(str(tmp_path / "FILE"), "FILE").startswith(f"riskwatch: error: {message}")
    assert err.count("\n") == 1, err
    assert not (tmp_path / "dash").exists()


def test_build_into_an_unwritable_directory_is_one_line(tmp_path: Path, capsys, monkeypatch) -> None:
    """PermissionError (a read-only --out; simulated: the tests may run as root) is one line."""
    def refuse(self, *args, **kwargs):
        raise PermissionError(13, "Permission denied", str(self))
    monkeypatch.setattr(Path, "write_text", refuse)
    assert main(["dashboards", "build", "--out", str(tmp_path / "ro")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"riskwatch: error: --out {tmp_path / 'ro'}: cannot write ")
    assert err.endswith(": Permission denied\n") and err.count("\n") == 1


def test_committed_generated_files_match_the_code(tmp_path: Path) -> None:
    """docker-compose mounts dashboards/generated: it must be what the code builds."""
    write_provisioning(tmp_path, GrafanaTargets())
    committed = ROOT / "dashboards" / "generated"
    fresh = {p.relative_to(tmp_path): p.read_text() for p in tmp_path.rglob("*") if p.is_file()}
    old = {p.relative_to(committed): p.read_text() for p in committed.rglob("*") if p.is_file()}
    assert fresh == old, "run: riskwatch dashboards build --out dashboards/generated"


class _Recorder(BaseHTTPRequestHandler):
    existing: set[str] = set()
    requests: list[tuple[str, str, dict | None, str | None]] = []

    def _reply(self, status: int, body: object) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _record(self) -> dict | None:
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length)) if length else None
        self.requests.append((self.command, self.path, body, self.headers.get("Authorization")))
        return body

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        self._record()
        if self.path in self.existing:
            self._reply(200, {"uid": self.path.rsplit("/", 1)[-1]})
        else:
            self._reply(404, {"message": "not found"})

    def do_POST(self) -> None:  # noqa: N802
        body = self._record()
        if self.path == "/api/folders":
            self.existing.add(f"/api/folders/{body['uid']}")
        if self.path == "/api/datasources":
            self.existing.add(f"/api/datasources/uid/{body['uid']}")
        self._reply(200, {"status": "success", "uid": (body or {}).get("uid", "x"), "id": 1})

    def do_PUT(self) -> None:  # noqa: N802
        self._record()
        self._reply(200, {"message": "updated"})

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def grafana_stub():
    _Recorder.existing, _Recorder.requests = set(), []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", _Recorder
    server.shutdown()
    server.server_close()


def test_push_creates_then_updates_everything(grafana_stub, capsys) -> None:
    url, rec = grafana_stub
    assert main(["dashboards", "push", "--url", url, "--token", "glsa_test"]) == 0
    calls = [(m, p) for m, p, _b, _a in rec.requests]
    assert ("POST", "/api/folders") in calls
    assert calls.count(("POST", "/api/datasources")) == 2
    dashboards = [b for m, p, b, _a in rec.requests if (m, p) == ("POST", "/api/dashboards/db")]
    assert sorted(d["dashboard"]["uid"] for d in dashboards) == sorted(dashboard_json())
    assert all(d["overwrite"] and d["folderUid"] == "riskwatch" for d in dashboards)
    assert {a for *_, a in rec.requests} == {"Bearer glsa_test"}
    [(_m, path, group, _a)] = [r for r in rec.requests if r[0] == "PUT"]
    assert path == "/api/v1/provisioning/folder/riskwatch/rule-groups/riskwatch"
    assert [r["uid"] for r in group["rules"]] == ["riskwatch-pipeline-stalled",
                                                  "riskwatch-red-alert-open"]
    assert "4 dashboards" in capsys.readouterr().out
    # Second push: folder and datasources exist now, so they are updated, not re-created.
    rec.requests.clear()
    assert main(["dashboards", "push", "--url", url, "--token", "glsa_test"]) == 0
    calls = [(m, p) for m, p, _b, _a in rec.requests]
    assert ("POST", "/api/folders") not in calls and ("POST", "/api/datasources") not in calls
    assert ("PUT", f"/api/datasources/uid/{CLICKHOUSE_UID}") in calls


def test_push_to_nothing_is_a_clear_error(capsys) -> None:
    assert main(["dashboards", "push", "--url", "http://127.0.0.1:9", "--token", "t"]) == 2
    # was urllib3's chain: "HTTPConnectionPool(...): Max retries exceeded ... NewConnectionError(<... at 0x...>"
    assert capsys.readouterr().err == ("riskwatch: error: cannot reach Grafana at http://127.0.0.1:9: "
                                       "connection refused\n")
    assert main(["dashboards", "push", "--url", "grafana:3000"]) == 2


def test_check_command_runs_every_panel_on_chdb(demo_db, capsys) -> None:
    """What `riskwatch dashboards check --chdb riskwatch-data/demo/chdb` prints after a demo."""
    assert main(["dashboards", "check", "--chdb", demo_db.path, "--database", "dash_demo"]) == 0
    out = capsys.readouterr().out
    assert "25 panels: 25 with data, 0 empty, 0 failed" in out, out


@pytest.mark.parametrize("url, message", [
    # a ValueError traceback from urllib.parse
    ("http://h:70000", "riskwatch: error: --url: port must be 1-65535 in 'http://h:70000'\n"),
    # the password was echoed in the error line
    ("http://admin:s3cretPW@127.0.0.1:9",
     "riskwatch: error: cannot reach Grafana at http://admin@127.0.0.1:9: connection refused\n"),
    ("http://admin:s3cretPW@", "riskwatch: error: --url: expected http(s)://HOST[:PORT], "
                               "got 'http://admin@'\n"),
])
def test_push_refuses_a_bad_url_in_one_line_without_its_password(capsys, url, message) -> None:
    assert main(["dashboards", "push", "--url", url, "--token", "t"]) == 2
    assert capsys.readouterr().err == message


def test_push_with_credentials_in_the_url_does_not_print_them(grafana_stub, capsys) -> None:
    url, rec = grafana_stub
    with_password = url.replace("http://", "http://admin:s3cretPW@")
    assert main(["dashboards", "push", "--url", with_password, "--token", ""]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"pushed to {url.replace('http://', 'http://admin@')}: ")
    assert "s3cretPW" not in out
    assert {a for *_, a in rec.requests} == {"Basic YWRtaW46czNjcmV0UFc="}  # admin:s3cretPW


def test_push_to_an_ipv6_literal(capsys) -> None:
    """``http://[::1]:PORT`` was "cannot reach Grafana ...: InvalidURL" (grafana-client
    drops the brackets)."""
    import socket

    class Server6(ThreadingHTTPServer):
        address_family = socket.AF_INET6

    _Recorder.existing, _Recorder.requests = set(), []
    try:
        server = Server6(("::1", 0), _Recorder)
    except OSError:
        pytest.skip("no IPv6 loopback here")
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://[::1]:{server.server_address[1]}"
        assert main(["dashboards", "push", "--url", url, "--token", "t"]) == 0, capsys.readouterr().err
        assert ("POST", "/api/folders") in [(m, p) for m, p, _b, _a in _Recorder.requests]
    finally:
        server.shutdown()
        server.server_close()
