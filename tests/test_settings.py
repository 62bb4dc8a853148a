"""Pipeline settings from RISKWATCH_* variables and flags (riskwatch.settings.from_env)."""

from __future__ import annotations

import pytest

from riskwatch.errors import ConfigError
from riskwatch.settings import from_env


@pytest.mark.parametrize("env,override,expected", [
    ("RISKWATCH_BUCKET_SECONDS", {"bucket_seconds": 60}, ("bucket_seconds", 60)),
    ("RISKWATCH_ALLOWED_LATENESS_SECONDS", {"allowed_lateness_seconds": 30},
     ("allowed_lateness_seconds", 30)),
    ("RISKWATCH_MAX_TIME_JUMP_SECONDS", {"max_time_jump_seconds": 0}, ("max_time_jump_seconds", 0)),
    ("RISKWATCH_PROMOTION_LEARNING", {"promotion_learning": False}, ("promotion_learning", False)),
])
def test_a_flag_wins_over_a_bad_variable_it_replaces(monkeypatch, env, override, expected):
    monkeypatch.setenv(env, "maybe")
    with pytest.raises(ConfigError, match=env):   # the variable alone is refused...
        from_env()
    name, value = expected                        # ...and not read when the flag is given
    assert getattr(from_env(**override), name) == value


def test_variables_apply_when_no_flag_is_given(monkeypatch):
    monkeypatch.setenv("RISKWATCH_BUCKET_SECONDS", "120")
    monkeypatch.setenv("RISKWATCH_PROMOTION_LEARNING", "off")
    settings = from_env(allowed_lateness_seconds=60)
    assert (settings.bucket_seconds, settings.promotion_learning,
            settings.allowed_lateness_seconds) == (120, False, 60)
