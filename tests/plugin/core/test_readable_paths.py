"""--cleanroom-readable-path and cleanroom_readable_paths: hidden host paths let through."""

from __future__ import annotations

import pytest

# The tool lives in pytester's directory, under the host's /tmp, which every sandbox covers
# with a private /tmp: without the option the sandbox cannot see it.
TEST = """
import os

def test_tool(cleanroom):
    tool = os.environ["TOOL_DIR"] + "/tool.sh"
    result = cleanroom.run(["/bin/sh", tool])
    print("EXIT", result.exit_code, result.stdout.strip(), result.stderr.strip())
    result.assert_success().assert_stdout_contains("tool ran")
    written = cleanroom.run(["/bin/sh", "-c", f"echo x > {os.environ['TOOL_DIR']}/new"])
    written.assert_failure()
"""


@pytest.fixture
def tool(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> str:
    tools = pytester.mkdir("tools")
    (tools / "tool.sh").write_text("echo tool ran\n")
    monkeypatch.setenv("TOOL_DIR", str(tools))
    pytester.makepyfile(test_tool=TEST)
    return str(tools)


def test_a_hidden_path_is_invisible_without_the_option(
    pytester: pytest.Pytester, tool: str
) -> None:
    result = pytester.runpytest_subprocess("-s")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*EXIT 2  *tool.sh: No such file*"])


def test_the_option_lets_it_through_read_only(pytester: pytest.Pytester, tool: str) -> None:
    result = pytester.runpytest_subprocess("-s", f"--cleanroom-readable-path={tool}")
    result.assert_outcomes(passed=1)


def test_the_ini_key_takes_paths_relative_to_the_ini_file(
    pytester: pytest.Pytester, tool: str
) -> None:
    pytester.makeini("[pytest]\ncleanroom_readable_paths =\n    tools\n")
    result = pytester.runpytest_subprocess("-s", "--cleanroom-policy=locked")
    result.assert_outcomes(passed=1)


def test_a_relative_command_line_path_is_a_usage_error(
    pytester: pytest.Pytester, tool: str
) -> None:
    result = pytester.runpytest_subprocess("--cleanroom-readable-path=tools")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--cleanroom-readable-path 'tools': give an absolute path*"])
