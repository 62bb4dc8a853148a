"""Helpers for tests in every folder, imported as ``from tests.conftest import ...``."""

from __future__ import annotations

import os

import pytest


def need_broker() -> None:
    """Skip the calling test when the embedded broker's binary is missing; with
    ``CI=true`` fail instead: there, integration prerequisites must be present."""
    from riskwatch.broker import find_broker_binary
    from riskwatch.errors import BrokerError

    try:
        find_broker_binary()
    except BrokerError as exc:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{exc} (CI=true: integration prerequisites must be present)")
        pytest.skip(str(exc))
