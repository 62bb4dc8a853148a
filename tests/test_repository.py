"""What the repository itself holds: no stray build artefacts, no code pyflakes faults."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_no_wheel_or_archive_is_committed():
    # pyflakes and ruff wheels (10 MB) sat at the root from the first commit, used by nothing:
    # tools come from the package index (Makefile: pip install -e '.[test]').
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    tracked = subprocess.run(["git", "ls-files", "*.whl", "*.egg", "*.tar.gz", "*.zip"],
                             cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    assert tracked == []


def test_the_code_passes_pyflakes():
    # Unused imports and names, undefined names, f-strings without placeholders: what a
    # review misses and a refactor leaves behind. pyflakes reads no "noqa" comments.
    from pyflakes.api import checkRecursive
    from pyflakes.reporter import Reporter

    class Collect(Reporter):
        def __init__(self):
            self.found: list[str] = []

        def flake(self, message):
            self.found.append(str(message))

        def syntaxError(self, filename, msg, lineno, offset, text):
            self.found.append(f"{filename}:{lineno}: {msg}")

        def unexpectedError(self, filename, msg):
            self.found.append(f"{filename}: {msg}")

    folders = ["riskwatch", "streams", "sinks", "detectors", "dashboards", "tests", "benchmarks"]
    report = Collect()
    checkRecursive([str(ROOT / f) for f in folders], report)
    assert report.found == []
