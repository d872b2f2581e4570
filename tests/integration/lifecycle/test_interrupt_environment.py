"""The Ctrl-C tests hold however pytest itself was started.

A shell without job control starts ``pytest ... > log &`` with SIGINT ignored, which every
process it starts inherits; ``test_sigint_stops_a_running_cleanroom_phase`` failed so in every
run a helper started that way (the ``ggen`` it interrupted ran its 60 s command to the end and
reported success). ``tests/conftest.py`` gives the test processes Python's SIGINT handler back.
"""

from __future__ import annotations

import shlex
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[3]

SIGINT_DEFAULT = (
    "import signal, sys; sys.exit(0 if signal.getsignal(signal.SIGINT) is "
    "signal.default_int_handler else 3)"
)


def test_a_command_started_by_a_test_can_be_interrupted() -> None:
    """Its SIGINT is not ignored: Python installed its KeyboardInterrupt handler."""
    done = subprocess.run([sys.executable, "-c", SIGINT_DEFAULT], check=False)
    assert done.returncode == 0, "a command started by the tests ignores SIGINT"


def test_so_even_when_pytest_runs_as_a_background_job(tmp_path: Path) -> None:
    """``sh -c 'pytest ... & wait'``: the shell ignores SIGINT in its background job (as it
    does for ``pytest ... > log &``); the test above still passes in that pytest."""
    pytest_argv = [
        sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q",
        f"--rootdir={REPO}", f"--basetemp={tmp_path / 'inner'}",
        f"{Path(__file__)}::test_a_command_started_by_a_test_can_be_interrupted",
    ]  # fmt: skip
    inner = f"{shlex.join(pytest_argv)} & wait $!"
    done = subprocess.run(
        ["/bin/sh", "-c", inner], cwd=REPO, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 passed" in done.stdout
