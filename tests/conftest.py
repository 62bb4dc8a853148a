"""Helpers for tests in every folder, imported as ``from tests.conftest import ...``."""

from __future__ import annotations

import os
import socket
from collections.abc import Callable

import pytest


def unavailable(reason: str, *,
                ci_explanation: str = "integration prerequisites must be present") -> None:
    """A missing prerequisite (a binary, a server): skip the calling test with ``reason``
    on a laptop; with ``CI=true`` fail instead, since there integration prerequisites
    must be present and a skip would hide that the test never ran. The failure reads
    ``{reason} (CI=true: {ci_explanation})``: a caller can say what CI should have done."""
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{reason} (CI=true: {ci_explanation})")
    pytest.skip(reason)


def free_port() -> int:
    """A loopback TCP port that was free a moment ago: bound to 127.0.0.1:0, then released.
    Nothing listens on it, so it serves both as the port to start a server on and as the
    address of a server that is down (another process could take it meanwhile; rare
    enough for tests)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until_serving(base: str, proc, *, timeout: float, log: Callable[[], str] = lambda: "") -> None:
    """Poll ``base``/healthz until it answers 200 (a server the test started as ``proc``,
    a subprocess); fail, with ``log()``, if ``proc`` exits or ``timeout`` seconds pass."""
    import time

    import httpx

    deadline = time.monotonic() + timeout
    while True:
        try:
            if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            pytest.fail(f"{base} did not start (exit code {proc.poll()}): {log()}")
        time.sleep(0.2)


def need_broker() -> None:
    """The embedded broker's binary, or :func:`unavailable` with the reason it is missing."""
    from riskwatch.broker import find_broker_binary
    from riskwatch.errors import BrokerError

    try:
        find_broker_binary()
    except BrokerError as exc:
        unavailable(str(exc))
