"""The JavaScript side of the tests (tests/js): Node.js, its locked packages, Debian's Chromium."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import NoReturn

import pytest

JS = Path(__file__).resolve().parents[1] / "js"
CHROMIUM = Path("/usr/bin/chromium")


def _missing(reason: str) -> NoReturn:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{reason}; CI installs it (.ci/run)")
    pytest.skip(reason)


def node_with_packages() -> str:
    """The node executable, with tests/js's packages installed from its lock file."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        _missing("Node.js and npm are needed for this test")
    assert node is not None
    assert npm is not None
    if (
        not (JS / "node_modules" / "playwright-core").exists()
        or not (JS / "node_modules" / "@modelcontextprotocol" / "sdk").exists()
    ):
        subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund"], cwd=JS, check=True, timeout=300, capture_output=True
        )
    return node


def chromium() -> Path:
    if not CHROMIUM.exists():
        _missing(f"Debian's chromium is needed at {CHROMIUM} (apt-get install chromium)")
    return CHROMIUM
