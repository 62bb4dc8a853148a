"""Test kit for alerting: a recording HTTP receiver and a real Alertmanager process.

- :class:`RecordingReceiver`: a small threaded ``http.server`` on a free loopback port
  that records every request (path, headers, raw body, arrival time) and answers with
  the status a test chooses (to play a receiver that is down).
- :func:`render_test_config`: ``dashboards/alertmanager/alertmanager.yml`` with every receiver
  pointed at a recording receiver (``/r/<receiver name>``) and short timers; routes,
  time intervals and inhibit rules are the real ones.
- :class:`Alertmanager`: Debian's ``prometheus-alertmanager`` on a free port, clustering
  off, storage in a temp dir; stopped on exit.
"""

from __future__ import annotations

import http.server
import json
import shutil
import subprocess
import threading
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

import yaml

from tests.conftest import free_port, unavailable

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "dashboards" / "alertmanager" / "alertmanager.yml"


def binary(name: str) -> str:
    """The path of an Alertmanager binary; missing: a skip on a laptop, a failure under CI=true."""
    path = shutil.which(name) or (f"/usr/bin/{name}" if Path(f"/usr/bin/{name}").exists() else None)
    if path is None:
        unavailable(f"{name} not found (Debian package prometheus-alertmanager)",
                    ci_explanation="`make test-deps` installs it")
    return path  # type: ignore[return-value]


class RecordingReceiver:
    """Records requests; ``status`` (a callable of the request count) picks the answer.

    Subclasses pick the answer another way by overriding :meth:`answer` (the fault
    suite's ``FlakyReceiver`` fails for a while, then forwards to a real Alertmanager).
    """

    def __init__(self, status: Callable[[int], int] = lambda n: 200) -> None:
        self.requests: list[dict] = []
        self.status = status
        self.lock = threading.Lock()
        self._answered = 0
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                code = receiver.answer(self.path, body, self.headers)
                with receiver.lock:
                    receiver.requests.append({"path": self.path, "headers": dict(self.headers),
                                              "body": body, "at": time.monotonic(),
                                              "wall": time.time(), "status": code})
                self.send_response(code)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def answer(self, path: str, body: bytes, headers) -> int:
        """The HTTP status for one request (called outside the lock: it may block)."""
        with self.lock:
            n, self._answered = self._answered, self._answered + 1
        return self.status(n)

    def __enter__(self) -> RecordingReceiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def snapshot(self) -> list[dict]:
        """A copy of the requests so far (the handler threads keep appending)."""
        with self.lock:
            return list(self.requests)

    def notifications(self, receiver: str = "riskwatch-incident-log") -> list[dict]:
        """Alertmanager webhook payloads delivered to ``receiver`` (2xx answers only)."""
        with self.lock:
            return [dict(json.loads(r["body"]), at=r["at"]) for r in self.requests
                    if r["path"] == f"/r/{receiver}" and r["status"] < 300]

    def wait_for(self, predicate: Callable[[], bool], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return
            time.sleep(0.05)
        raise AssertionError(f"timed out after {timeout}s waiting for {what}; got "
                             f"{[(r['path'], r['status']) for r in self.requests]}")


def _shorten(route: dict, group_wait: str, group_interval: str) -> None:
    for key, value in (("group_wait", group_wait), ("group_interval", group_interval)):
        if key in route:
            route[key] = value
    for child in route.get("routes", []):
        _shorten(child, group_wait, group_interval)


def render_test_config(receiver_url: str, *, group_wait: str = "1s", group_interval: str = "2s") -> str:
    """The production config with receivers at ``receiver_url/r/<name>`` and short timers."""
    config = yaml.safe_load(CONFIG.read_text(encoding="utf-8"))
    config.pop("templates", None)
    for receiver in config["receivers"]:
        name = receiver["name"]
        for key in [k for k in receiver if k.endswith("_configs")]:
            del receiver[key]
        receiver["webhook_configs"] = [{"url": f"{receiver_url}/r/{name}", "send_resolved": True}]
    route = config["route"]
    route["group_wait"], route["group_interval"], route["repeat_interval"] = group_wait, group_interval, "1h"
    _shorten(route, group_wait, group_interval)
    return yaml.safe_dump(config, allow_unicode=True, sort_keys=False)


class Alertmanager:
    """A real ``prometheus-alertmanager`` on 127.0.0.1:<free port> (no clustering)."""

    def __init__(self, config_text: str, workdir: Path) -> None:
        self.binary = binary("prometheus-alertmanager")
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        workdir.mkdir(parents=True, exist_ok=True)
        self.config = workdir / "alertmanager.yml"
        self.config.write_text(config_text, encoding="utf-8")
        self.log = workdir / "alertmanager.log"
        self.workdir = workdir
        self.proc: subprocess.Popen | None = None

    def __enter__(self) -> Alertmanager:
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(
                [self.binary, f"--config.file={self.config}", f"--storage.path={self.workdir / 'data'}",
                 f"--web.listen-address=127.0.0.1:{self.port}", "--cluster.listen-address=",
                 "--log.level=info"], stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"alertmanager exited: {self.log.read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(f"{self.url}/-/ready", timeout=1) as r:
                    if r.status == 200:
                        return self
            except OSError:
                time.sleep(0.1)
        self.__exit__()
        raise AssertionError(f"alertmanager not ready in 20s: {self.log.read_text()[-2000:]}")

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def api(self, method: str, path: str, body: object = None) -> object:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(f"{self.url}/api/v2/{path}", data=data, method=method,
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=5) as r:
            text = r.read()
        return json.loads(text) if text else None
