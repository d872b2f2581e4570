"""Cleanroom.run end to end on real sandboxes: streams, workspace, cwd, stdin, exit codes."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from pytest_cleanroom import Cleanroom, RunResult, run, run_with_policy
from pytest_cleanroom.errors import CleanroomError, WorkspaceError

pytestmark = pytest.mark.integration


def test_argv_command_output_and_result_fields(room: Cleanroom) -> None:
    result = room.run(["sh", "-c", "echo out; echo err >&2; exit 3"])
    assert result.exit_code == 3
    assert result.stdout == "out\n"
    assert result.stderr == "err\n"
    assert result.backend == room.backend_name
    assert result.policy_name == "standard"
    assert result.policy_digest == room.policy.digest()
    assert result.seed == 1234
    assert result.duration > 0
    assert result.command == ("sh", "-c", "echo out; echo err >&2; exit 3")
    assert not result.timed_out
    assert result.limit_exceeded is None


def test_string_command_runs_through_sh(room: Cleanroom) -> None:
    result = room.run("echo $((6 * 7)) | tr 4 X")
    result.assert_success().assert_stdout_contains("X2")
    assert result.command == ("/bin/sh", "-c", "echo $((6 * 7)) | tr 4 X")


def test_workspace_is_mounted_at_fixed_path_and_writable(room: Cleanroom) -> None:
    room.workspace.write("in.txt", "from the host")
    result = room.run("pwd; cat in.txt; echo from-sandbox > out.txt")
    result.assert_success()
    assert result.stdout.splitlines() == ["/workspace", "from the host"]
    assert room.workspace.read("out.txt") == "from-sandbox\n"
    result.assert_file_exists("out.txt")


def test_python_script_in_workspace(room: Cleanroom) -> None:
    room.workspace.write("hello.py", "print('hi')")
    room.run(["python3", "hello.py"]).assert_success().assert_stdout_contains("hi")


def test_cwd_is_relative_to_the_workspace(room: Cleanroom) -> None:
    room.workspace.mkdir("sub/dir")
    result = room.run(["pwd"], cwd="sub/dir")
    assert result.stdout == "/workspace/sub/dir\n"
    assert result.cwd == "sub/dir"
    assert room.run(["pwd"], cwd="/tmp").stdout == "/tmp\n"


def test_cwd_outside_or_missing_is_refused(room: Cleanroom) -> None:
    with pytest.raises(WorkspaceError, match="escapes the workspace"):
        room.run(["pwd"], cwd="../..")
    with pytest.raises(WorkspaceError, match="not a directory"):
        room.run(["pwd"], cwd="missing")


def test_stdin_as_str_and_bytes(room: Cleanroom) -> None:
    assert room.run(["cat"], stdin="héllo").stdout == "héllo"
    assert room.run(["wc", "-c"], stdin=b"\x00\xff" * 500_000).stdout.strip() == "1000000"
    # Without stdin the command reads an empty stream, never the test's terminal.
    assert room.run(["cat"]).stdout == ""


def test_missing_program_exits_127_naming_it(room: Cleanroom) -> None:
    result = room.run(["no-such-program-xyz", "--flag"])
    assert result.exit_code == 127
    assert result.stderr == "cleanroom: command not found: no-such-program-xyz\n"
    with pytest.raises(AssertionError, match="no-such-program-xyz"):
        result.assert_success()
    # Through the shell the convention is the same.
    assert room.run("no-such-program-xyz").exit_code == 127


def test_program_that_is_not_executable_exits_126(room: Cleanroom) -> None:
    room.workspace.write("script.sh", "echo hi\n", mode=0o644)
    result = room.run(["./script.sh"])
    assert result.exit_code == 126
    assert "cannot execute ./script.sh" in result.stderr


def test_non_utf8_output_keeps_bytes_and_decodes_with_replacement(room: Cleanroom) -> None:
    result = room.run(["printf", "ok \\377\\376 end"])
    assert result.stdout_bytes == b"ok \xff\xfe end"
    assert result.stdout == "ok \ufffd\ufffd end"
    result.assert_stdout_contains("end")


def test_fifty_megabytes_of_output_on_both_streams(room: Cleanroom) -> None:
    size = 50 * 1024 * 1024
    result = room.run(f"head -c {size} /dev/zero; head -c {size} /dev/zero >&2")
    result.assert_success()
    assert len(result.stdout_bytes) == size
    assert len(result.stderr_bytes) == size


def test_killed_by_signal_reports_128_plus_signal(room: Cleanroom) -> None:
    result = room.run("kill -TERM $$")
    assert result.exit_code == 128 + signal.SIGTERM


def test_history_and_listeners_see_every_result(room: Cleanroom) -> None:
    seen: list[RunResult] = []
    room.add_listener(seen.append)
    first = room.run(["true"])
    second = room.run(["false"])
    assert seen == [first, second]
    assert room.history[-2:] == [first, second]


def test_closed_cleanroom_refuses_to_run(tmp_path: Path, backend: str) -> None:
    room = Cleanroom(tmp_path, backend=backend)
    room.close()
    room.close()  # idempotent
    with pytest.raises(CleanroomError, match="closed"):
        room.run(["true"])


def test_module_level_run_uses_a_temporary_workspace(backend: str) -> None:
    result = run(["sh", "-c", "pwd; touch f; ls"], backend=backend, seed=5)
    result.assert_success()
    assert result.stdout == "/workspace\nf\n"
    assert result.workspace is None
    assert result.seed == 5


def test_module_level_run_keeps_a_given_workspace(tmp_path: Path, backend: str) -> None:
    result = run_with_policy("locked", "echo kept > f", workspace=tmp_path, backend=backend)
    result.assert_success().assert_file_exists("f")
    assert result.policy_name == "locked"
    assert (tmp_path / "f").read_text() == "kept\n"


def test_outputs_do_not_depend_on_where_the_workspace_lives(tmp_path: Path, backend: str) -> None:
    script = "pwd; echo $HOME; ls -a; python3 -c 'print(hash(\"x\"))'"
    outputs = []
    for name in ("a", "deeper/b"):
        with Cleanroom(tmp_path / name, backend=backend, seed=99) as room:
            outputs.append(room.run(script).stdout)
    assert outputs[0] == outputs[1]
    assert outputs[0].startswith("/workspace\n/workspace/.home\n")


def test_per_run_policy_replaces_the_cleanroom_policy(room: Cleanroom) -> None:
    result = room.run(["true"], policy="locked")
    assert result.policy_name == "locked"
    assert room.run(["true"]).policy_name == "standard"


def test_host_pid_namespace_hidden(room: Cleanroom) -> None:
    result = room.run("ls /proc | grep -c '^[0-9]'")
    # Only the sandbox's own processes are visible (init, sh, ls, grep), never the host's.
    assert int(result.stdout) < 10
    assert str(os.getpid()) not in room.run("ls /proc").stdout.split()


def test_arguments_and_variables_arrive_byte_for_byte(room: Cleanroom) -> None:
    weird = "a'b\"c\nd $(touch pwned) `touch pwned2` \\ ; & | * ~ é"
    result = room.run(
        ["python3", "-c", "import os, sys; print(repr(sys.argv[1]), repr(os.environ['W']))", weird],
        env={"W": weird},
    )
    result.assert_success()
    assert result.stdout == f"{weird!r} {weird!r}\n"
    assert not room.workspace.exists("pwned")
    assert not room.workspace.exists("pwned2")


def test_concurrent_commands_in_one_cleanroom(room: Cleanroom) -> None:
    import threading

    results: dict[int, RunResult] = {}

    def work(i: int) -> None:
        results[i] = room.run(["sh", "-c", f"sleep 0.3; echo {i} > out{i}; echo {i}"])

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == [0, 1, 2, 3]
    for i, result in results.items():
        result.assert_success()
        assert result.stdout == f"{i}\n"
        assert room.workspace.read(f"out{i}") == f"{i}\n"
    assert len(room.history) == 4


def test_undecodable_argument_bytes_pass_through(room: Cleanroom) -> None:
    # A str argument holding surrogate escapes is sent as the original bytes, as Popen does.
    result = room.run(["printf", "%s", "a\udcffb"])
    assert result.stdout_bytes == b"a\xffb"
