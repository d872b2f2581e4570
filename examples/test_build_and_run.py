"""Build a tiny program in the workspace with make, then run it: all inside the sandbox."""

from __future__ import annotations

MAKEFILE = """\
greet.pyz: src/greet.py
\tpython3 -m zipapp src -o greet.pyz -m greet:main
"""

GREET = """\
import sys


def main():
    name = sys.argv[1] if len(sys.argv) > 1 else "world"
    print(f"hello, {name}")
"""


def test_build_then_run(cleanroom, workspace):
    workspace.write("Makefile", MAKEFILE)
    workspace.write("src/greet.py", GREET)

    cleanroom.run(["make"]).assert_success().assert_file_exists("greet.pyz")

    result = cleanroom.run(["python3", "greet.pyz", "cleanroom"])
    result.assert_success().assert_stdout_contains("hello, cleanroom")


def test_a_failing_build_says_why(cleanroom, workspace):
    workspace.write("Makefile", MAKEFILE)  # but no src/greet.py
    result = cleanroom.run(["make"])
    result.assert_failure().assert_stderr_contains("No rule to make target 'src/greet.py'")


def test_a_shell_string_runs_with_sh(cleanroom, workspace):
    workspace.write("numbers.txt", "3\n1\n2\n")
    result = cleanroom.run("sort -n numbers.txt | tail -n 1")
    result.assert_success()
    assert result.stdout == "3\n"
