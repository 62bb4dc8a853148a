"""Helpers for tests in every folder, imported as ``from tests.conftest import ...``."""

from __future__ import annotations

import os

import pytest


def unavailable(reason: str) -> None:
    """A missing prerequisite (a binary, a server): skip the calling test with ``reason``
    on a laptop; with ``CI=true`` fail instead, since there integration prerequisites
    must be present and a skip would hide that the test never ran."""
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{reason} (CI=true: integration prerequisites must be present)")
    pytest.skip(reason)


def need_broker() -> None:
    """The embedded broker's binary, or :func:`unavailable` with the reason it is missing."""
    from riskwatch.broker import find_broker_binary
    from riskwatch.errors import BrokerError

    try:
        find_broker_binary()
    except BrokerError as exc:
        unavailable(str(exc))
