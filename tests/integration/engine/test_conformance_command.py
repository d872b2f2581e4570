"""The conformance suite's documented command, run as a backend author runs it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.engine.conftest import require_backend
from tests.integration.engine.test_backend_protocol import _install_third_party

pytestmark = pytest.mark.integration

#: A few quick checks of each kind: escape, limits and errors, environment.
SUBSET = (
    "secret_variable or writing_outside or missing_command or unknown_policy or host_command_line"
)

LEAKY = '''
"""A broken backend: bubblewrap that lets the host's environment through."""
import dataclasses, os
from pytest_cleanroom.backends.bwrap import BwrapBackend


class LeakyBackend(BwrapBackend):
    name = "leaky"

    def run(self, spec):
        return super().run(dataclasses.replace(spec, env={**os.environ, **spec.env}))
'''


def conformance(cwd: Path, backend: str, site: Path) -> subprocess.CompletedProcess[str]:
    """``pytest --pyargs pytest_cleanroom.testing.conformance --cleanroom-backend BACKEND``."""
    argv = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "-k", SUBSET]
    return subprocess.run(
        [*argv, "--pyargs", "pytest_cleanroom.testing.conformance", "--cleanroom-backend", backend],
        cwd=cwd, capture_output=True, text=True, timeout=600, check=False,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(site)},
    )  # fmt: skip


def test_the_documented_command_passes_on_a_third_party_backend(tmp_path: Path) -> None:
    require_backend("bwrap")
    site = tmp_path / "site"
    site.mkdir()
    _install_third_party(site)
    done = conformance(tmp_path, "acme", site)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "6 passed" in done.stdout, done.stdout


def test_a_backend_that_leaks_the_host_environment_fails_it(tmp_path: Path) -> None:
    require_backend("bwrap")
    site = tmp_path / "site"
    site.mkdir()
    _install_third_party(site)
    (site / "leaky_backend.py").write_text(LEAKY)
    (site / "acme_backend-1.0.dist-info" / "entry_points.txt").write_text(
        "[pytest_cleanroom.backends]\nleaky = leaky_backend:LeakyBackend\n"
    )
    done = conformance(tmp_path, "leaky", site)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "FAILED test_escape.py::test_host_secret_variable_is_absent" in done.stdout
    assert "sandbox escape: ESCAPED" in done.stdout
    assert "1 failed, 5 passed" in done.stdout
