"""The report header, an unavailable backend, and ``-p no:cleanroom``."""

from __future__ import annotations

import pytest

from pytest_cleanroom import cgroups
from pytest_cleanroom.policy import Policy


def test_header_names_policy_backend_and_seed_and_summary_the_digest(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(
        "def test_x(cleanroom):\n"
        "    cleanroom.run(['true'])\n"
        "    print('BACKEND', cleanroom.backend_name)\n"
    )
    result = pytester.runpytest("-s", "--cleanroom-policy=locked", "--cleanroom-seed=1234")
    result.assert_outcomes(passed=1)
    backend = next(line.split()[-1] for line in result.outlines if "BACKEND " in line)
    digest = Policy.level("locked").digest()
    found = cgroups.parents()
    kind = "cgroup2" if found and set(found) == {cgroups.UNIFIED} else "cgroup1"
    held = f"{kind}, for each command's whole process tree" if found else "docker*"
    result.stdout.fnmatch_lines(
        [
            f"cleanroom: policy=locked backend={backend} (auto) seed=1234 timeout=60s",
            f"cleanroom: limits held by {held}",
            "*slowest 1 of 1 sandboxed commands (cleanroom)*",
            f"cleanroom: 1 command on {backend} under policy locked ({digest})",
            "cleanroom seed 1234: replay with --cleanroom-seed=1234",
        ]
    )


def test_header_shows_an_explicit_backend_and_the_timeout_override(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile("def test_x(cleanroom):\n    cleanroom.run(['true'])\n")
    result = pytester.runpytest("--cleanroom-backend=local", "--cleanroom-timeout=2.5")
    digest = Policy.level("standard").replace(timeout=2.5).digest()
    result.stdout.fnmatch_lines(
        [
            "cleanroom: policy=standard+timeout backend=* (local) seed=* timeout=2.5s",
            f"cleanroom: 1 command on * under policy standard+timeout ({digest})",
        ]
    )
    assert "UNAVAILABLE" not in result.stdout.str()


def test_header_without_a_working_local_backend_names_each_reason(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A PATH without bubblewrap or util-linux: what a machine without them looks like.
    empty = pytester.mkdir("empty-bin")
    monkeypatch.setenv("PATH", str(empty))
    pytester.makepyfile("def test_x():\n    pass\n")
    result = pytester.runpytest_subprocess("--cleanroom-backend=local")
    result.stdout.fnmatch_lines(
        [
            "cleanroom: policy=standard backend=local UNAVAILABLE seed=* timeout=300s",
            "cleanroom: no local backend works here:",
            "cleanroom:   bwrap: the bwrap backend needs bubblewrap: install bubblewrap*",
            "cleanroom:   unshare: the unshare backend needs util-linux: install util-linux*",
        ]
    )


def test_header_hidden_with_quiet(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_x():\n    pass\n")
    result = pytester.runpytest("-q")
    assert "cleanroom:" not in result.stdout.str()


def test_unavailable_backend_is_reported_and_errors_only_cleanroom_tests(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A Docker engine that does not answer: the socket path does not exist.
    monkeypatch.setenv("DOCKER_HOST", f"unix://{pytester.path}/no-such-docker.sock")
    pytester.makepyfile(
        """
        def test_sandboxed(cleanroom):
            cleanroom.run(["true"])

        def test_plain(workspace):
            workspace.write("a", "b")
        """
    )
    result = pytester.runpytest("--cleanroom-backend=docker")
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(
        [
            "cleanroom: policy=standard backend=docker UNAVAILABLE seed=* timeout=300s",
            "cleanroom: *",
            "*ERROR at setup of test_sandboxed*",
            "*cleanroom backend 'docker' unavailable: *",
        ]
    )


def test_no_cleanroom_disables_everything(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        def test_uses_fixture(cleanroom):
            pass
        """
    )
    result = pytester.runpytest("-p", "no:cleanroom")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*fixture 'cleanroom' not found*"])
    out = result.stdout.str()
    assert "cleanroom: policy=" not in out
    available = out.split("available fixtures:", 1)[1].split("\n", 1)[0]
    names = {name.strip() for name in available.split(",")}
    assert "tmp_path" in names
    assert not names & {"cleanroom", "workspace", "cleanroom_settings", "postgres", "redis"}
    # The options are gone too: using one is a usage error.
    flagged = pytester.runpytest("-p", "no:cleanroom", "--cleanroom-policy=locked")
    assert flagged.ret == pytest.ExitCode.USAGE_ERROR
    assert "unrecognized arguments: --cleanroom-policy=locked" in flagged.stderr.str()
    # ...and so is the marker under --strict-markers (in a subprocess: pytest caches the names of
    # known markers process-wide, and this process has the plugin).
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.cleanroom(policy="strict")
        def test_marked():
            pass
        """
    )
    marked = pytester.runpytest_subprocess("-p", "no:cleanroom", "--strict-markers")
    marked.stdout.fnmatch_lines(["*'cleanroom' not found in `markers` configuration option*"])


def test_one_part_can_be_disabled_without_importing_it(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(
        """
        import sys

        def pytest_configure(config):
            print("SERVICES IMPORTED:", "pytest_cleanroom.services.plugin" in sys.modules)
        """
    )
    # In a subprocess: this process has imported every part already.
    result = pytester.runpytest_subprocess("-p", "no:cleanroom.services.plugin", "--fixtures")
    assert result.ret == pytest.ExitCode.OK
    out = result.stdout.str()
    assert "SERVICES IMPORTED: False" in out
    assert "\ncleanroom -- " in out
    assert "\npostgres -- " not in out
