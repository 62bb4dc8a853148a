"""GrafanaAnnotationsSink through the real grafana-client, against a recording HTTP stub.

The stub stands in for Grafana, which cannot be installed here (no Debian package, no
PyPI/npm build): a small real HTTP server that answers ``POST /api/annotations`` the way
Grafana does (``{"id": N, "message": "Annotation added"}``) and records each request.
"""

from __future__ import annotations

import http.server
import json
import threading

import pytest

from sinks.base import RetryPolicy
from sinks.grafana_annotations import GrafanaAnnotationsSink


class GrafanaStub:
    def __init__(self, script: list[int] | None = None) -> None:
        self.requests: list[dict] = []
        self.script = list(script or [])
        stub = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                code = stub.script.pop(0) if stub.script else 200
                stub.requests.append({"path": self.path, "auth": self.headers.get("Authorization"),
                                      "json": json.loads(body), "status": code})
                payload = json.dumps({"id": len(stub.requests), "message": "Annotation added"}
                                     if code == 200 else {"message": "error"}).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def grafana():
    stub = GrafanaStub()
    yield stub
    stub.close()


def rec(status: str, ts: str, severity: str = "yellow") -> dict:
    return {"alert_id": "167c0feb71275f03-5894", "fingerprint": "167c0feb71275f03", "status": status,
            "severity": severity, "metric": "complaint_rate",
            "dimensions": {"region": "广东", "carrier": "中通"}, "ts": ts,
            "summary": "region=广东 carrier=中通 投诉率异常, 客户 13812345678 | complaints 40 vs 8 expected"}


def test_state_changes_become_tagged_annotations(grafana):
    sink = GrafanaAnnotationsSink(grafana.url, token="glsa_test", retry=RetryPolicy(jitter=0.0))
    with sink:
        sink.add("alerts", rec("firing", "2026-11-22T10:05:00+08:00"))
        sink.add("alerts", rec("firing", "2026-11-22T10:35:00+08:00", severity="orange"))
        sink.add("alerts", rec("resolved", "2026-11-22T11:00:00+08:00", severity="orange"))
        sink.add("complaints", {"complaint_id": "c1"})   # not an alert: ignored
    paths = {r["path"] for r in grafana.requests}
    assert paths == {"/api/annotations"}
    assert {r["auth"] for r in grafana.requests} == {"Bearer glsa_test"}
    first, escalated, resolved = (r["json"] for r in grafana.requests)
    assert first["time"] == first["timeEnd"] == 1795313100000
    assert first["tags"] == ["riskwatch", "complaint_rate", "yellow", "firing", "fp:167c0feb71275f03",
                             "region:广东", "carrier:中通"]
    assert escalated["tags"][2] == "orange"
    # The resolve spans the whole episode, from its first firing.
    assert (resolved["time"], resolved["timeEnd"]) == (1795313100000, 1795316400000)
    assert "13812345678" not in json.dumps(grafana.requests, ensure_ascii=False)
    assert sink.written == 3 and sink.rejected == 0


def test_5xx_retried_4xx_logged_not_retried():
    stub = GrafanaStub(script=[502, 503, 200, 400])
    try:
        sleeps = []
        sink = GrafanaAnnotationsSink(stub.url, sleep=sleeps.append,
                                      retry=RetryPolicy(initial_delay=0.1, max_delay=1.0, jitter=0.0))
        with sink:
            sink.add("alerts", rec("firing", "2026-11-22T10:05:00+08:00"))
            sink.flush()
            assert sleeps == [0.1, 0.2] and sink.written == 1
            sink.add("alerts", rec("resolved", "2026-11-22T11:00:00+08:00"))
            sink.flush()
        assert sink.rejected == 1 and len(stub.requests) == 4 and sink.pending() == {}
    finally:
        stub.close()


def test_no_token_and_no_user_is_warned_at_start(caplog):
    """Without $RISKWATCH_GRAFANA_TOKEN (or a user in the URL) the sink started without a
    word, then every annotation was rejected with 401 and dropped, one log line each."""
    import logging

    with caplog.at_level(logging.WARNING, logger="sinks.grafana_annotations"):
        GrafanaAnnotationsSink("http://grafana:3000")
        GrafanaAnnotationsSink("http://grafana:3000", token="glsa_x")
        GrafanaAnnotationsSink("http://admin:pw@grafana:3000")
    [record] = caplog.records
    assert "GrafanaAnnotationsSink(http://grafana:3000): no $RISKWATCH_GRAFANA_TOKEN" in record.getMessage()
