"""``@pytest.mark.cleanroom`` and ``cleanroom.run(policy=...)``: a test may tighten the
command-line policy, never weaken it."""

from __future__ import annotations

import pytest

from pytest_cleanroom.policy import Policy

WARNING = "pytest_cleanroom.pytest_plugin.floor.CleanroomPolicyWarning"


def test_marker_tightens_the_command_line_policy(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest
        from pytest_cleanroom.policy import Policy

        @pytest.mark.cleanroom(policy="strict")
        def test_strict(cleanroom):
            assert cleanroom.policy.digest() == Policy.level("strict").digest()
            assert cleanroom.policy.network == "isolated"

        @pytest.mark.cleanroom("locked")
        def test_locked_positional(cleanroom):
            assert cleanroom.policy.digest() == Policy.level("locked").digest()

        def test_unmarked(cleanroom):
            assert cleanroom.policy.digest() == Policy.level("standard").digest()
        """
    )
    result = pytester.runpytest("--cleanroom-policy=standard", "-W", f"error::{WARNING}")
    result.assert_outcomes(passed=3)


def test_marker_fields_tighten_one_by_one(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest
        from pytest_cleanroom.policy import Policy

        @pytest.mark.cleanroom(timeout=5, max_processes=32)
        def test_fields_on_the_command_line_policy(cleanroom):
            expected = Policy.level("strict").replace(timeout=5.0, max_processes=32)
            assert cleanroom.policy.digest() == expected.digest()

        @pytest.mark.cleanroom(policy="locked", memory_limit=64 * 1024 * 1024)
        def test_fields_on_a_named_level(cleanroom):
            expected = Policy.level("locked").replace(memory_limit=64 * 1024 * 1024)
            assert cleanroom.policy.digest() == expected.digest()
        """
    )
    result = pytester.runpytest("--cleanroom-policy=strict", "-W", f"error::{WARNING}")
    result.assert_outcomes(passed=2)


def test_module_class_and_function_markers_all_apply(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest

        pytestmark = pytest.mark.cleanroom(max_open_files=100)

        @pytest.mark.cleanroom(policy="strict")
        class TestNested:
            @pytest.mark.cleanroom(timeout=3)
            def test_all_three(self, cleanroom):
                p = cleanroom.policy
                assert p.network == "isolated"           # class: strict
                assert p.max_open_files == 100           # module
                assert p.timeout == 3                    # function
                assert p.memory_limit == 2 * 1024 ** 3   # strict's own
        """
    )
    pytester.runpytest("-W", f"error::{WARNING}").assert_outcomes(passed=1)


def test_marker_never_weakens_and_warns_naming_the_fields(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest
        from pytest_cleanroom.policy import Policy

        @pytest.mark.cleanroom(policy="permissive")
        def test_asks_for_permissive(cleanroom):
            assert cleanroom.policy.digest() == Policy.level("locked").digest()

        @pytest.mark.cleanroom(timeout=3600, network="host")
        def test_asks_for_longer_and_network(cleanroom):
            assert cleanroom.policy.timeout == 60
            assert cleanroom.policy.network == "isolated"
        """
    )
    result = pytester.runpytest("--cleanroom-policy=locked")
    result.assert_outcomes(passed=2, warnings=2)
    out = result.stdout.str()
    assert "CleanroomPolicyWarning" in out
    result.stdout.fnmatch_lines(
        [
            "*test_asks_for_permissive: @pytest.mark.cleanroom asks for a weaker policy than "
            "the command line's 'locked' in: *hidden_paths*isolate_pids*network*timeout*",
            "*test_asks_for_longer_and_network: @pytest.mark.cleanroom asks for a weaker policy "
            "than the command line's 'locked' in: network, timeout;*",
        ]
    )


def test_weakening_warning_can_be_made_an_error(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.cleanroom(policy="standard")
        def test_weaker(cleanroom):
            pass
        """
    )
    result = pytester.runpytest("--cleanroom-policy=strict", "-W", f"error::{WARNING}")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*CleanroomPolicyWarning*network*"])


@pytest.mark.parametrize(
    ("marker", "message"),
    [
        (
            'policy="loose"',
            "unknown cleanroom policy 'loose': choose one of permissive, standard, strict, locked",
        ),
        ("colour='blue'", "unknown policy field 'colour': the fields are read_only_root, *"),
        ("timeout=-1", "invalid policy field timeout=-1: Input should be greater than 0"),
        (
            'policy="strict", network="wifi"',
            "invalid policy field network='wifi': Input should be 'host' or 'isolated'",
        ),
        ('"strict", "locked"', "takes at most one policy: *"),
    ],
)
def test_invalid_marker_errors_the_test_naming_the_problem(
    pytester: pytest.Pytester, marker: str, message: str
) -> None:
    pytester.makepyfile(
        f"""
        import pytest

        @pytest.mark.cleanroom({marker})
        def test_bad(cleanroom):
            pass

        def test_other(cleanroom):
            pass
        """
    )
    result = pytester.runpytest()
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(
        [f"*invalid @pytest.mark.cleanroom on test_invalid_marker*::test_bad: {message}"]
    )


def test_run_policy_tightens_but_never_weakens(pytester: pytest.Pytester) -> None:
    strict = Policy.level("strict").digest()
    locked = Policy.level("locked").digest()
    pytester.makepyfile(
        f"""
        import pytest

        def test_tighter(cleanroom):
            result = cleanroom.run(["true"], policy="locked")
            assert result.policy_digest == "{locked}"

        def test_weaker_is_refused(cleanroom):
            with pytest.warns(Warning) as caught:
                result = cleanroom.run(["true"], policy="permissive")
            assert result.policy_digest == "{strict}"
            assert type(caught[0].message).__name__ == "CleanroomPolicyWarning"
            assert "cleanroom.run asked for a weaker policy" in str(caught[0].message)
            assert caught[0].filename == __file__  # points at the test, not the plugin

        def test_dict_of_fields(cleanroom):
            result = cleanroom.run(["true"], policy={{"level": "strict", "timeout": 5}})
            assert result.exit_code == 0

        def test_a_replica_keeps_the_floor(cleanroom, tmp_path):
            twin = cleanroom.replica(tmp_path / "replay")
            try:
                with pytest.warns(Warning, match="weaker policy"):
                    result = twin.run(["true"], policy="permissive")
                assert result.policy_digest == "{strict}"
            finally:
                twin.close()

        def test_longer_timeout_is_refused(cleanroom):
            with pytest.warns(Warning, match="in: timeout;"):
                result = cleanroom.run(["true"], timeout=10_000)
            assert result.exit_code == 0
        """
    )
    result = pytester.runpytest("--cleanroom-policy=strict")
    result.assert_outcomes(passed=5)


# The promise that matters: a weaker marker or run policy cannot reopen the network. A real
# listener on the host's 127.0.0.1; the sandboxed client exits 42 when it cannot connect.
NETWORK_PROBE = """
import socket
import pytest

PROBE = (
    "import socket, sys\\n"
    "s = socket.socket()\\n"
    "s.settimeout(5)\\n"
    "try:\\n"
    "    s.connect(('127.0.0.1', int(sys.argv[1])))\\n"
    "except OSError:\\n"
    "    sys.exit(42)\\n"
)

@pytest.fixture
def listener():
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(8)
        yield server.getsockname()[1]

def connect(cleanroom, port, **kwargs):
    return cleanroom.run(["python3", "-c", PROBE, str(port)], **kwargs).exit_code

@pytest.mark.cleanroom(policy="permissive")
def test_marker(cleanroom, listener):
    print("EXIT marker", connect(cleanroom, listener))

def test_run_policy(cleanroom, listener):
    print("EXIT run", connect(cleanroom, listener, policy="permissive"))
"""


def test_weaker_requests_cannot_reopen_the_network(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(NETWORK_PROBE)
    isolated = pytester.runpytest("-s", "--cleanroom-policy=strict")
    isolated.assert_outcomes(passed=2, warnings=2)
    isolated.stdout.fnmatch_lines(["*EXIT marker 42*", "*EXIT run 42*"])
    # Control: the same probes reach the listener when the command line allows the network.
    host = pytester.runpytest("-s", "--cleanroom-policy=permissive")
    host.assert_outcomes(passed=2)
    host.stdout.fnmatch_lines(["*EXIT marker 0*", "*EXIT run 0*"])
