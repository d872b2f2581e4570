"""The README's main job: the example suite passes under ``--cleanroom-policy=locked`` on the
embedded default, with the one warning it shows on purpose."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
MAIN_JOB = ["examples", "--cleanroom-policy=locked", "-p", "no:cacheprovider", "-p", "no:xdist"]


def test_the_example_suite_passes_under_locked() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "pytest", *MAIN_JOB, "-q"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert " failed" not in done.stdout
    assert "1 warning" in done.stdout  # the refused weaker marker of test_policy_marker.py
