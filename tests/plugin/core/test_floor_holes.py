"""Under --cleanroom-policy=locked, test code cannot make a command see more than ``locked`` lets
it see: not by setting ``cleanroom.policy`` or ``cleanroom.timeout``, not by exposing a host
directory as a service, not by binding or replicating onto a directory the test does not own,
not by a ``workspace`` fixture of its own. What the floor lets through is recorded."""

from __future__ import annotations

from pathlib import Path

import pytest

from pytest_cleanroom.policy import Policy
from tests.security.backends import SECURITY_BACKENDS, require_backend

pytestmark = pytest.mark.integration

LOCKED = Policy.level("locked")

WEAKEN_POLICY = """
import pytest
from pytest_cleanroom import Policy
from pytest_cleanroom.pytest_plugin.floor import CleanroomPolicyWarning

def test_weaken(cleanroom):
    with pytest.warns(CleanroomPolicyWarning, match="cleanroom.policy asked for a weaker"):
        cleanroom.policy = Policy.level("permissive")
    with pytest.warns(CleanroomPolicyWarning, match="cleanroom.timeout asked for a weaker"):
        cleanroom.timeout = 100000.0
    assert cleanroom.timeout == 60.0
    with pytest.raises(AttributeError):
        cleanroom.floor = Policy.level("permissive")
    # /run is hidden under locked (an empty directory), full of the host's sockets otherwise.
    result = cleanroom.run(["/bin/sh", "-c", 'test -z "$(ls -A /run)" && echo HIDDEN'])
    print("RAN", result.policy_name, result.policy_digest, result.exit_code, result.stdout.strip())
    result.assert_success().assert_stdout_contains("HIDDEN")
"""


@pytest.mark.parametrize("backend", SECURITY_BACKENDS)
def test_setting_a_weaker_policy_in_the_test_body_is_clamped_to_the_floor(
    pytester: pytest.Pytester, backend: str
) -> None:
    require_backend(backend)
    pytester.makepyfile(test_weaken=WEAKEN_POLICY)
    result = pytester.runpytest_subprocess(
        "-s", "--cleanroom-policy=locked", f"--cleanroom-backend={backend}"
    )
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines([f"*RAN locked {LOCKED.digest()} 0 HIDDEN"])


HOLES = """
from pathlib import Path

import pytest
from pytest_cleanroom.engine import ExposedService
from pytest_cleanroom.pytest_plugin.floor import FloorError

def test_expose_root(cleanroom):
    with pytest.raises(FloorError, match="not the socket directory of one of this run's servers"):
        cleanroom.expose_service("postgres", Path("/root"), {})

def test_expose_docker_socket_dir(cleanroom):
    with pytest.raises(FloorError):
        cleanroom.expose_service("redis", Path("/run"), {"DOCKER_HOST": "unix:///run/x.sock"})

def test_services_set_directly_are_checked_at_run(cleanroom):
    cleanroom.services["postgres"] = ExposedService("postgres", Path("/root"), {})
    with pytest.raises(FloorError):
        cleanroom.run(["true"])

def test_bind_root(cleanroom):
    with pytest.raises(FloorError, match="not a directory this test owns"):
        with cleanroom.bind_workspace(Path("/root")):
            cleanroom.run(["true"])

def test_replica_on_root(cleanroom):
    with pytest.raises(FloorError, match="not a directory this test owns"):
        cleanroom.replica("/root")

def test_own_directories_are_fine(cleanroom, tmp_path):
    (tmp_path / "other").mkdir()
    with cleanroom.bind_workspace(tmp_path / "other"):
        cleanroom.run(["touch", "made-in-other"]).assert_success()
    assert (tmp_path / "other" / "made-in-other").exists()
    cleanroom.replica(tmp_path / "replica").run(["true"]).assert_success()
"""


def test_exposing_binding_or_replicating_outside_the_test_is_refused(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(test_holes=HOLES)
    result = pytester.runpytest_subprocess("--cleanroom-policy=locked")
    result.assert_outcomes(passed=6)


def test_a_workspace_fixture_outside_the_test_is_an_error(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(
        "import pytest\nfrom pytest_cleanroom import Workspace\n\n"
        "@pytest.fixture\ndef workspace():\n    return Workspace('/root')\n"
    )
    pytester.makepyfile(test_ws="def test_ws(cleanroom):\n    cleanroom.run(['true'])\n")
    result = pytester.runpytest_subprocess("--cleanroom-policy=locked")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        ["*cleanroom's workspace: /root is not a directory this test owns*"]
    )


FOLDED = """
import os
from pathlib import Path

import pytest

@pytest.mark.cleanroom(readable_paths=[])
def test_fold(cleanroom):
    directory = Path(os.environ["SHARED_DIR"])
    cleanroom.expose_service("redis", directory, {})
    result = cleanroom.run(["cat", str(directory / "note")])
    print("RAN", result.policy_name, result.policy_digest, result.stdout.strip())
    result.assert_success()
"""


def test_a_directory_the_floor_lets_through_is_part_of_the_recorded_policy(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    shared = pytester.mkdir("shared")
    (shared / "note").write_text("shared note\n")
    monkeypatch.setenv("SHARED_DIR", str(shared))
    pytester.makepyfile(test_fold=FOLDED)
    result = pytester.runpytest_subprocess(
        "-s", "--cleanroom-policy=locked", f"--cleanroom-readable-path={shared}"
    )
    result.assert_outcomes(passed=1)
    seen = LOCKED.replace(readable_paths=(str(Path(shared).resolve()),))
    assert seen.digest() != LOCKED.digest()
    result.stdout.fnmatch_lines([f"*RAN *readable_paths {seen.digest()} shared note"])
