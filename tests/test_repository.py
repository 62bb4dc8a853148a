"""What the repository itself holds (not the code): no stray build artefacts."""

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
