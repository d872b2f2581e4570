"""The ``workspace`` and ``cleanroom`` fixtures, and the two cleanroom hooks they drive."""

from __future__ import annotations

import pytest

from pytest_cleanroom.backends import get_backend
from pytest_cleanroom.errors import BackendUnavailableError
from pytest_cleanroom.policy import Policy
from tests.conftest import require


def test_workspace_is_a_private_directory_in_tmp_path(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        from pytest_cleanroom.workspace import Workspace

        seen = []

        def test_one(workspace, tmp_path):
            assert isinstance(workspace, Workspace)
            assert workspace.root == tmp_path / "workspace"
            assert workspace.files() == []
            workspace.write("a/b.txt", "one")
            seen.append(workspace.root)

        def test_two(workspace):
            assert workspace.files() == []   # nothing leaks from test_one
            assert workspace.root != seen[0]
        """
    )
    pytester.runpytest().assert_outcomes(passed=2)


def test_cleanroom_runs_in_the_workspace_with_the_run_settings(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        from pytest_cleanroom.engine import Cleanroom
        from pytest_cleanroom.policy import Policy

        def test_build(cleanroom, workspace, cleanroom_settings):
            assert isinstance(cleanroom, Cleanroom)
            assert cleanroom.workspace.root == workspace.root
            assert cleanroom.seed == cleanroom_settings.seed == 4242
            assert cleanroom.policy.digest() == Policy.level("strict").digest()
            workspace.write("hello.py", "print('hi')")
            result = cleanroom.run(["python3", "hello.py"])
            result.assert_success().assert_stdout_contains("hi")
            assert result.seed == 4242
            assert result.policy_digest == Policy.level("strict").digest()
            assert result.backend == cleanroom.backend_name
            cleanroom.run("echo made > out.txt").assert_success()
            assert workspace.read("out.txt") == "made\\n"
            assert [r.command for r in cleanroom.history][0] == ("python3", "hello.py")
        """
    )
    result = pytester.runpytest("--cleanroom-policy=strict", "--cleanroom-seed=4242")
    result.assert_outcomes(passed=1)


def test_options_reach_the_sandboxed_commands(pytester: pytest.Pytester) -> None:
    try:  # unshare is not the default backend here: choosing it shows the option takes effect
        get_backend("unshare", Policy.level("standard"))
    except BackendUnavailableError as exc:
        require(False, f"the unshare backend: {exc}")
    pytester.makepyfile(
        """
        def test_seed_timeout_backend(cleanroom):
            seen = cleanroom.run(["sh", "-c", "echo $CLEANROOM_SEED $PYTHONHASHSEED"])
            assert seen.stdout == "977 977\\n"
            assert cleanroom.backend_name == seen.backend == "unshare"
            hung = cleanroom.run(["sleep", "30"])
            assert hung.timed_out
            hung.assert_limit_exceeded("timeout")
        """
    )
    result = pytester.runpytest(
        "--cleanroom-seed=977", "--cleanroom-timeout=0.5", "--cleanroom-backend=unshare"
    )
    result.assert_outcomes(passed=1)


def test_fluent_assertion_failure_shows_command_exit_code_and_stream_tails(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(
        """
        def test_fails(cleanroom):
            script = "for i in $(seq 1 30); do echo out-$i; done; echo err-last >&2; exit 3"
            cleanroom.run(["sh", "-c", script]).assert_success()
        """
    )
    result = pytester.runpytest()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "*CleanroomAssertionError: expected the command to succeed",
            "*command: sh -c 'for i in*exit 3'",
            "*exit code 3 after *s [[]backend=* policy=standard seed=*]",
            "*--- stdout (last 20 lines) ---",
            "*... (10 earlier lines)",
            "*out-11",
            "*out-30",
            "*--- stderr (last 20 lines) ---",
            "*err-last",
        ]
    )
    assert "out-10\n" not in result.stdout.str()


def test_hooks_see_the_cleanroom_and_every_result(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(
        """
        events = []

        def pytest_cleanroom_created(item, cleanroom):
            events.append(("created", item.nodeid, cleanroom.policy.name))
            # A created hook may run commands; they are reported too.
            cleanroom.run(["true"])

        def pytest_cleanroom_result(item, result):
            events.append(("result", item.nodeid, result.command, result.exit_code))

        def pytest_sessionfinish(session):
            for event in events:
                print("EVENT", *event)
        """
    )
    pytester.makepyfile(
        """
        def test_a(cleanroom):
            cleanroom.run(["sh", "-c", "exit 4"])

        def test_b(workspace):
            pass
        """
    )
    result = pytester.runpytest("-s")
    result.assert_outcomes(passed=2)
    events = [line[line.index("EVENT ") :] for line in result.outlines if "EVENT " in line]
    assert events == [
        "EVENT created test_hooks_see_the_cleanroom_and_every_result.py::test_a standard",
        "EVENT result test_hooks_see_the_cleanroom_and_every_result.py::test_a ('true',) 0",
        "EVENT result test_hooks_see_the_cleanroom_and_every_result.py::test_a "
        "('sh', '-c', 'exit 4') 4",
    ]


def test_teardown_closes_the_cleanroom(pytester: pytest.Pytester) -> None:
    # A spy on the real instance's close(): closing leaves nothing else a test could observe.
    pytester.makeconftest(
        """
        import pytest

        closed = []

        def pytest_cleanroom_created(item, cleanroom):
            real_close = cleanroom.close

            def close():
                closed.append(item.nodeid)
                real_close()

            cleanroom.close = close

        @pytest.fixture
        def closed_list():
            return closed
        """
    )
    pytester.makepyfile(
        """
        def test_a(cleanroom, closed_list):
            assert closed_list == []

        def test_b(cleanroom, closed_list):
            assert closed_list == ["test_teardown_closes_the_cleanroom.py::test_a"]

        def test_c(cleanroom):
            raise RuntimeError("a failing test still closes its cleanroom")

        def test_d(closed_list):
            assert [n.rsplit("::", 1)[1] for n in closed_list] == ["test_a", "test_b", "test_c"]
        """
    )
    pytester.runpytest("-p", "no:randomly").assert_outcomes(passed=3, failed=1)


def test_created_hook_failure_still_closes_the_cleanroom(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(
        """
        import pytest

        rooms = []

        def pytest_cleanroom_created(item, cleanroom):
            rooms.append(cleanroom)
            raise RuntimeError("service could not start")

        @pytest.fixture
        def rooms_list():
            return rooms
        """
    )
    pytester.makepyfile(
        """
        import pytest
        from pytest_cleanroom.errors import CleanroomError

        def test_a(cleanroom):
            pass

        def test_closed(rooms_list):
            (room,) = rooms_list
            with pytest.raises(CleanroomError):
                room.run(["true"])
        """
    )
    result = pytester.runpytest("-p", "no:randomly")
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(["*RuntimeError: service could not start"])
