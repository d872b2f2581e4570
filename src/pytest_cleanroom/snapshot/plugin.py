"""Snapshot fixtures on top of syrupy's ``snapshot``: ``cleanroom_snapshot`` normalises what
varies between runs and machines; ``workspace_snapshot`` compares whole workspace trees.

Registered with the scenario sub-plugin; syrupy is imported only when a fixture is used.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from .normalise import Normaliser
    from .views import CleanroomSnapshot


#: syrupy's default extension while ``--snapshot-default-extension`` names none: amber files
#: written only as regular files, through ``safe_write`` (see ``snapshot/extension.py``).
SAFE_EXTENSION = "pytest_cleanroom.snapshot.extension.SafeAmberSnapshotExtension"


def pytest_configure(config: pytest.Config) -> None:
    # A string (syrupy imports it lazily, and xdist needs options it can send to workers).
    if getattr(config.option, "default_extension", "") is None:
        config.option.default_extension = SAFE_EXTENSION


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_sessionfinish(session: pytest.Session) -> Any:
    """A snapshot file refused at the end of the session (syrupy writes them then) is one error
    line and a failed run, not an INTERNALERROR traceback."""
    outcome = yield
    from ..errors import OutputPathError

    error = outcome.excinfo[1] if outcome.excinfo else None
    if not isinstance(error, OutputPathError):
        return
    outcome.force_result(None)
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    line = f"ERROR snapshots not written: {error}"
    if reporter is not None:
        reporter.ensure_newline()
        reporter.write_line(line, red=True, bold=True)
    else:
        print(line, file=sys.stderr)
    session.exitstatus = pytest.ExitCode.TESTS_FAILED


@pytest.fixture
def cleanroom_normaliser(request: pytest.FixtureRequest, tmp_path_factory: Any) -> Normaliser:
    """The test's :class:`~pytest_cleanroom.snapshot.normalise.Normaliser`: its workspace,
    ``tmp_path`` and base temp paths, durations, timestamps and the run's seed."""
    from ..pytest_plugin import get_settings
    from .normalise import Normaliser

    workspace = request.getfixturevalue("workspace")
    tmp_path = request.getfixturevalue("tmp_path")
    return Normaliser.for_run(
        workspace=workspace.root,
        tmp_path=tmp_path,
        basetemp=tmp_path_factory.getbasetemp(),
        seed=get_settings(request.config).seed,
    )


@pytest.fixture
def cleanroom_snapshot(
    request: pytest.FixtureRequest, cleanroom_normaliser: Normaliser
) -> CleanroomSnapshot:
    """syrupy's ``snapshot``, normalising what it is compared with: ``assert result.stdout ==
    cleanroom_snapshot``; a RunResult, ScenarioResult or Workspace is stored as a stable view."""
    from .views import CleanroomSnapshot

    return CleanroomSnapshot(_syrupy_snapshot(request), cleanroom_normaliser)


@pytest.fixture
def workspace_snapshot(
    request: pytest.FixtureRequest, cleanroom_normaliser: Normaliser
) -> CleanroomSnapshot:
    """Compare a whole workspace tree: ``assert workspace == workspace_snapshot``."""
    from .views import CleanroomSnapshot

    return CleanroomSnapshot(_syrupy_snapshot(request), cleanroom_normaliser, tree=True)


def _syrupy_snapshot(request: pytest.FixtureRequest) -> Any:
    try:
        return request.getfixturevalue("snapshot")
    except pytest.FixtureLookupError:
        from ..config_errors.extras import install_hint

        pytest.fail(f"snapshot fixtures need syrupy: {install_hint('syrupy')}", pytrace=False)


@pytest.hookimpl(tryfirst=True)
def pytest_assertrepr_compare(
    config: pytest.Config, op: str, left: Any, right: Any
) -> list[str] | None:
    """Show syrupy's own diff when a ``cleanroom_snapshot`` comparison fails."""
    from .views import CleanroomSnapshot

    if not isinstance(left, CleanroomSnapshot) and not isinstance(right, CleanroomSnapshot):
        return None
    import syrupy

    left = left.inner if isinstance(left, CleanroomSnapshot) else left
    right = right.inner if isinstance(right, CleanroomSnapshot) else right
    explanation: list[str] | None = syrupy.pytest_assertrepr_compare(config, op, left, right)
    return explanation
