"""The Alertmanager configuration as code passes ``amtool check-config`` (real amtool)."""

from __future__ import annotations

import subprocess

import yaml

from tests.alerting.amkit import CONFIG, binary, render_test_config


def _check(path) -> subprocess.CompletedProcess:
    return subprocess.run([binary("amtool"), "check-config", str(path)], capture_output=True, text=True,
                          timeout=60)


def test_production_config_passes_amtool():
    result = _check(CONFIG)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "4 inhibit rules" in result.stdout and "SUCCESS" in result.stdout


def test_test_rendering_keeps_routes_and_inhibit_rules(tmp_path):
    rendered = tmp_path / "am.yml"
    rendered.write_text(render_test_config("http://127.0.0.1:1"), encoding="utf-8")
    result = _check(rendered)
    assert result.returncode == 0, result.stdout + result.stderr
    original, test = yaml.safe_load(CONFIG.read_text()), yaml.safe_load(rendered.read_text())
    assert test["inhibit_rules"] == original["inhibit_rules"]
    assert [r.get("matchers") for r in test["route"]["routes"]] == \
        [r.get("matchers") for r in original["route"]["routes"]]


def test_a_broken_config_is_rejected(tmp_path):
    broken = tmp_path / "broken.yml"
    broken.write_text(CONFIG.read_text().replace("receiver: oncall-pager", "receiver: nobody"))
    result = _check(broken)
    assert result.returncode != 0 and "nobody" in (result.stdout + result.stderr)
