"""Coverage of Python run inside the sandbox is combined into pytest-cov's report."""

from __future__ import annotations

import importlib.util
import json
import os
import sys
from pathlib import Path

import pytest

from tests.conftest import require

from .conftest import envelopes_by_nodeid, statement_of

pytest_plugins = ("pytester",)

# The sandboxed process imports a module the test process never imports, so every line of it
# that the report shows as executed was measured inside the sandbox.
SANDBOXED = """
import sys

def test_sandboxed_python(cleanroom, workspace):
    assert "pytest_cleanroom.attest.verify" not in sys.modules
    code = "from pytest_cleanroom.attest import verify; print(verify.verify('/absent').errors)"
    result = cleanroom.run([sys.executable, "-c", code])
    result.assert_success().assert_stdout_contains("/absent: no such file or directory")
    assert "pytest_cleanroom.attest.verify" not in sys.modules
    # The data files were moved out of the workspace as soon as the command finished.
    assert [p.name for p in (workspace.root / ".home").iterdir()] == []
"""


def _interpreter_paths() -> list[str]:
    """Flags letting this interpreter, its virtualenv and the project's sources into the sandbox.

    They may live anywhere: under /root or /home (hidden by the policy) or under /tmp (covered by
    the sandbox's private /tmp), as in a fresh clone of the project there.
    """
    import pytest_cleanroom

    paths = {
        os.path.realpath(sys.prefix),
        os.path.realpath(sys.base_prefix),
        str(Path(pytest_cleanroom.__file__).resolve().parents[1]),
        sys.prefix,
    }
    return [f"--cleanroom-readable-path={p}" for p in sorted(paths)]


@pytest.fixture
def pytest_cov() -> None:
    require(
        importlib.util.find_spec("pytest_cov") is not None, "pytest-cov (pip install -e .[dev])"
    )


def _executed(report: Path, name: str) -> list[int]:
    files = json.loads(report.read_text())["files"]
    [path] = [f for f in files if f.endswith(name)]
    lines: list[int] = files[path]["executed_lines"]
    return lines


def _sandbox_only_line() -> int:
    """The line of ``verify.verify`` that only a missing target reaches."""
    spec = importlib.util.find_spec("pytest_cleanroom.attest.verify")
    assert spec is not None
    assert spec.origin is not None
    lines = Path(spec.origin).read_text().splitlines()
    return next(i for i, line in enumerate(lines, 1) if ': no such file or directory"' in line)


@pytest.mark.parametrize("workers", [[], ["-n", "2"]], ids=["serial", "xdist"])
def test_sandboxed_lines_reach_the_report(
    pytester: pytest.Pytester, sandbox: None, pytest_cov: None, workers: list[str]
) -> None:
    pytester.makepyfile(test_cov=SANDBOXED)
    result = pytester.runpytest_subprocess(
        *_interpreter_paths(),
        "--cov=pytest_cleanroom.attest",
        "--cov-report=json:cov.json",
        "--cleanroom-attest=att",
        *workers,
    )
    result.assert_outcomes(passed=1)
    assert _sandbox_only_line() in _executed(pytester.path / "cov.json", "attest/verify.py")
    # Coverage data is not an output of the test's commands.
    [envelope] = envelopes_by_nodeid(pytester.path / "att").values()
    [subject] = statement_of(envelope)["subject"]
    assert subject["name"] == "workspace-tree"
    assert not list(pytester.path.glob(".coverage.cleanroom-*"))  # combined, then removed


def test_without_the_hook_nothing_is_measured_in_the_sandbox(
    pytester: pytest.Pytester, sandbox: None, pytest_cov: None
) -> None:
    # Control: without pytest-cov the sandbox gets no coverage configuration at all.
    pytester.makepyfile(
        """
        import sys
        def test_env(cleanroom):
            r = cleanroom.run([sys.executable, "-c",
                "import os; print(os.environ.get('COVERAGE_PROCESS_CONFIG'))"])
            r.assert_success().assert_stdout_contains("None")
        """
    )
    pytester.runpytest_subprocess(*_interpreter_paths()).assert_outcomes(passed=1)


def test_repeat_checked_tests_run_without_sandbox_coverage(
    pytester: pytest.Pytester, sandbox: None, pytest_cov: None
) -> None:
    pytester.makepyfile(
        """
        import sys
        def test_env(cleanroom):
            r = cleanroom.run([sys.executable, "-c",
                "import os; print(os.environ.get('COVERAGE_PROCESS_CONFIG'))"])
            r.assert_success().assert_stdout_contains("None")
        """
    )
    result = pytester.runpytest_subprocess(
        *_interpreter_paths(), "--cov=pytest_cleanroom", "--cleanroom-repeat-check"
    )
    result.assert_outcomes(passed=1)
