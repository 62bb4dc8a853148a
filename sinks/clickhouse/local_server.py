"""A throwaway ClickHouse server on loopback, for integration tests and benchmarks.

:class:`LocalClickHouseServer` runs the machine's ``clickhouse-server`` binary (Debian's
package ``clickhouse-server``, 18.16 here) as a subprocess with a generated config in a
temporary directory: data, logs and config live there, it listens on 127.0.0.1 only, on
free ports, and :meth:`~LocalClickHouseServer.stop` kills it and the directory goes with
the caller's tmp dir.  Nothing here touches ``/etc/clickhouse-server`` or port 9000.

Users: ``default`` (no password, full rights, as in a fresh install) plus the two roles
of ``users.xml`` in this package — ``riskwatch_writer`` and ``riskwatch_dashboard`` —
with the passwords given to :meth:`~LocalClickHouseServer.start`, so tests can prove the
roles do what the docs say.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path
from xml.sax.saxutils import escape

from riskwatch.errors import SinkError

__all__ = ["LocalClickHouseServer", "find_server_binary"]

_USERS_XML = Path(__file__).with_name("users.xml")


def find_server_binary() -> str | None:
    """Path of ``clickhouse-server`` (or ``clickhouse`` with the server inside), if installed."""
    for name in ("clickhouse-server", "clickhouse"):
        found = shutil.which(name) or (f"/usr/sbin/{name}" if os.access(f"/usr/sbin/{name}",
                                                                         os.X_OK) else None)
        if found:
            return found
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


_CONFIG = """<?xml version="1.0"?>
<yandex>
    <logger><level>warning</level><log>{dir}/log/server.log</log>
        <errorlog>{dir}/log/error.log</errorlog><size>10M</size><count>1</count></logger>
    <listen_host>127.0.0.1</listen_host>
    <tcp_port>{tcp_port}</tcp_port>
    <http_port>{http_port}</http_port>
    <interserver_http_port>{interserver_port}</interserver_http_port>
    <path>{dir}/data/</path>
    <tmp_path>{dir}/tmp/</tmp_path>
    <user_files_path>{dir}/user_files/</user_files_path>
    <format_schema_path>{dir}/format_schemas/</format_schema_path>
    <users_config>{dir}/users.xml</users_config>
    <default_profile>default</default_profile>
    <default_database>default</default_database>
    <timezone>Asia/Shanghai</timezone>
    <mark_cache_size>268435456</mark_cache_size>
    <uncompressed_cache_size>268435456</uncompressed_cache_size>
    <max_concurrent_queries>50</max_concurrent_queries>
    <mlock_executable>false</mlock_executable>
</yandex>
"""


class LocalClickHouseServer:
    """One ``clickhouse-server`` subprocess in ``directory``; use as a context manager.

    Parameters
    ----------
    directory
        Where config, data and logs go (the caller owns and removes it).
    binary
        Server binary; default :func:`find_server_binary`.
    writer_password, dashboard_password
        Passwords of the ``riskwatch_writer`` and ``riskwatch_dashboard`` users.
    """

    def __init__(self, directory: str | os.PathLike[str], *, binary: str | None = None,
                 writer_password: str = "writer-secret",
                 dashboard_password: str = "dashboard-secret") -> None:
        self.directory = Path(directory)
        self.binary = binary or find_server_binary()
        self.writer_password = writer_password
        self.dashboard_password = dashboard_password
        self.tcp_port = self.http_port = 0
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """Native-protocol URL of the admin user ``default``."""
        return f"clickhouse://default@127.0.0.1:{self.tcp_port}/riskwatch"

    def user_url(self, user: str, password: str, database: str = "riskwatch") -> str:
        return f"clickhouse://{user}:{password}@127.0.0.1:{self.tcp_port}/{database}"

    def start(self, timeout: float = 30.0) -> LocalClickHouseServer:
        if self.binary is None:
            raise SinkError("clickhouse-server is not installed (Debian: apt-get install "
                            "clickhouse-server; `make test-deps` does it)")
        for sub in ("data", "tmp", "user_files", "format_schemas", "log"):
            (self.directory / sub).mkdir(parents=True, exist_ok=True)
        self.tcp_port, self.http_port = _free_port(), _free_port()
        (self.directory / "config.xml").write_text(_CONFIG.format(
            dir=self.directory, tcp_port=self.tcp_port, http_port=self.http_port,
            interserver_port=_free_port()))
        users = _USERS_XML.read_text()
        users = users.replace("WRITER_PASSWORD", escape(self.writer_password))
        users = users.replace("DASHBOARD_PASSWORD", escape(self.dashboard_password))
        (self.directory / "users.xml").write_text(users)
        args = [self.binary] if self.binary.endswith("-server") else [self.binary, "server"]
        self.proc = subprocess.Popen(
            [*args, f"--config-file={self.directory / 'config.xml'}"], cwd=self.directory,
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=open(self.directory / "log" / "stderr.log", "wb"))  # noqa: SIM115
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SinkError(f"clickhouse-server exited with {self.proc.returncode}: "
                                f"{self.log_tail()}")
            try:
                with socket.create_connection(("127.0.0.1", self.tcp_port), timeout=0.5):
                    return self
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise SinkError(f"clickhouse-server did not listen within {timeout:.0f}s: {self.log_tail()}")

    def log_tail(self, chars: int = 2000) -> str:
        texts = []
        for name in ("stderr.log", "error.log"):
            path = self.directory / "log" / name
            if path.exists():
                texts.append(path.read_text(errors="replace")[-chars:])
        return "\n".join(texts)

    def stop(self, timeout: float = 15.0) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def __enter__(self) -> LocalClickHouseServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
