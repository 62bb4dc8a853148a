"""What the README says that the code can contradict: checked against the code."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def _first_screen() -> str:
    return README.split("\n## ", 1)[0]


def test_the_first_screen_names_every_debian_package_make_test_installs():
    # It said "nothing to install by hand" and "make test installs what it needs", and
    # not that this is apt-get installing system packages.
    makefile = (ROOT / "Makefile").read_text()
    packages = {pair.rsplit(":", 1)[1] for line in makefile.splitlines()
                if line.startswith("TEST_DEBS") for pair in line.split("=", 1)[1].split()}
    assert packages >= {"chromium", "clickhouse-server", "prometheus-alertmanager", "fonts-noto-cjk"}
    first = _first_screen()
    assert "apt-get" in first
    for package in packages:
        assert package in first, package


def test_the_table_of_contents_links_every_section():
    first = _first_screen()
    for title in re.findall(r"^## (.+)$", README, flags=re.M):
        anchor = re.sub(r"[^\w\- ]", "", title.lower()).replace(" ", "-")
        assert f"(#{anchor})" in first, title


def test_the_readme_points_to_no_file_outside_the_repository_nor_unseen_issues():
    # "../shared/design.md", "the issue forbids", "target (issue 3)": a reader has neither
    assert not re.search(r"\.\./\w", README)
    assert not re.search(r"\b(the|first) issue\b|\(issue \d+\)", README, flags=re.I)


def test_the_demo_paragraph_gives_the_speed_and_the_incidents_the_demo_uses():
    from riskwatch.demo import MIN_DURATION_SECONDS
    from riskwatch.simulator import SimulationConfig, manifest

    demo = " ".join(README.split("## The demo", 1)[1].split("\n## ", 1)[0].split())
    # the demo's formula (riskwatch/demo.py): days x 86400 / (0.75 x duration) s per s
    for duration in (90, 60):
        minutes = 2.5 * 86400 / (0.75 * duration) / 60
        assert f"{minutes:.0f} at {'the default ' if duration == 90 else ''}{duration} s" in demo
    assert f"at least {MIN_DURATION_SECONDS} s" in demo
    config = SimulationConfig(days=2.5, orders_per_day=20_000, merchants=600, incidents=5)
    assert f"{len(manifest(config)['incidents'])} at the defaults" in demo


def test_every_alert_metric_has_its_runbook_heading():
    # Every alert links DEFAULT_RUNBOOK_URL#<metric> (sinks/alertmanager.py); the default
    # pointed at docs/runbook.md, which never existed, so every runbook link was a 404.
    from sinks.alertmanager import DEFAULT_RUNBOOK_URL
    from streams.feedback import ALERT_METRICS

    assert DEFAULT_RUNBOOK_URL.endswith("/README.md")
    runbook = README.split("\n## On-call runbook\n", 1)[1].split("\n## ", 1)[0]
    # GitHub's heading anchors: lower case, spaces to dashes, punctuation dropped
    anchors = {re.sub(r"[^\w\- ]", "", title.lower()).replace(" ", "-")
               for title in re.findall(r"^### (.+)$", runbook, flags=re.M)}
    for metric in (*ALERT_METRICS, "webhook_delivery"):
        assert metric.replace("_", "-") in anchors, metric
