"""The core sub-plugin: options, settings, the ``workspace`` and ``cleanroom`` fixtures, the
``cleanroom`` marker, the report header and the slowest-commands summary.

Module-level imports stay cheap (no pydantic, no engine): they load when a fixture needs them.
"""

from __future__ import annotations

from collections.abc import Generator, Iterator
from typing import TYPE_CHECKING, Any

import pytest

from . import options
from .records import (
    PENDING_RESULTS,
    REPORT_ATTRIBUTE,
    CommandRecord,
    policy_lines,
    records_of_report,
    slowest_lines,
)
from .settings import WORKERINPUT_SEED, CleanroomSettings, get_settings

if TYPE_CHECKING:
    from ..engine import Cleanroom
    from ..workspace import Workspace

_SUMMARY_PLUGIN = "cleanroom-summary"


def pytest_addoption(parser: pytest.Parser) -> None:
    options.add_options(parser)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", options.MARKER_HELP)
    if config.getoption("help", False):
        return  # --help must work even with a bad ini value: it is how one finds the fix
    settings = get_settings(config)  # a bad ini value is a usage error now, not at first use
    if not hasattr(config, "workerinput"):  # xdist workers ship their records to the controller
        config.pluginmanager.register(CommandSummary(settings), _SUMMARY_PLUGIN)


def pytest_unconfigure(config: pytest.Config) -> None:
    """The run's shared backends stop their waiting launchers (see run_backends.py)."""
    from .run_backends import close_run_backends

    close_run_backends(config)


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:
    """pytest-xdist, on the controller: every worker runs with the controller's seed."""
    node.workerinput[WORKERINPUT_SEED] = get_settings(node.config).seed


def pytest_report_header(config: pytest.Config) -> list[str]:
    from .probe import backend_status

    settings = get_settings(config)
    status = backend_status(config)
    if status.name is None:
        backend = f"{settings.backend} UNAVAILABLE"
    elif status.name != settings.backend:
        backend = f"{status.name} ({settings.backend})"
    else:
        backend = status.name
    timeout = settings.policy_timeout
    lines = [
        f"cleanroom: policy={settings.policy_label} backend={backend} seed={settings.seed} "
        f"timeout={'none' if timeout is None else f'{timeout:g}s'}"
    ]
    if status.name is not None and status.passed_over:
        lines.append(f"cleanroom: {settings.backend} chose {status.name}, not:")
        lines += [f"cleanroom:   {reason}" for reason in status.passed_over]
    if status.limits is not None:
        lines.append(f"cleanroom: limits held by {status.limits}")
    if status.error is not None:
        lines += [f"cleanroom: {line}" for line in status.error.splitlines()]
    return lines


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, Any, None]:
    """Attach the records of the commands run in this phase to its report (xdist ships them)."""
    outcome = yield
    pending = item.stash.get(PENDING_RESULTS, None)
    if not pending:
        return
    report = outcome.get_result()
    records = [CommandRecord.from_result(item.nodeid, call.when, r).to_dict() for r in pending]
    setattr(report, REPORT_ATTRIBUTE, records)
    pending.clear()


class CommandSummary:
    """Collects the command records of every report and prints the slowest commands, the
    policies they ran under and the seed."""

    def __init__(self, settings: CleanroomSettings) -> None:
        self.settings = settings
        self.records: list[CommandRecord] = []

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        self.records += records_of_report(report)

    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        if not self.records:
            return
        # --cleanroom-durations=0 hides the list only: the policies and the seed still matter.
        lines = slowest_lines(self.records, self.settings.durations)
        total = len(self.records)
        title = f"{total} sandboxed command{'s' if total != 1 else ''} (cleanroom)"
        if lines:
            title = f"slowest {len(lines)} of {total} sandboxed commands (cleanroom)"
        terminalreporter.write_sep("=", title)
        for line in [*lines, *policy_lines(self.records)]:
            terminalreporter.write_line(line)
        seed = self.settings.seed
        terminalreporter.write_line(f"cleanroom seed {seed}: replay with --cleanroom-seed={seed}")


@pytest.fixture(scope="session")
def cleanroom_settings(pytestconfig: pytest.Config) -> CleanroomSettings:
    """The run's settings: command-line policy, backend, seed, timeout."""
    return get_settings(pytestconfig)


@pytest.fixture(scope="session")
def conformance_backend(pytestconfig: pytest.Config) -> str:
    """The backend the shipped conformance checks attack (``pytest --pyargs
    pytest_cleanroom.testing.conformance --cleanroom-backend NAME``); a project's conftest may
    override it to parametrize over several."""
    return get_settings(pytestconfig).backend


@pytest.fixture
def workspace(tmp_path: Any) -> Workspace:
    """The test's private directory (``tmp_path / "workspace"``): the only tree a sandboxed
    command can write besides its private /tmp."""
    from ..workspace import Workspace

    return Workspace(tmp_path / "workspace")


@pytest.fixture
def cleanroom(request: pytest.FixtureRequest, workspace: Workspace) -> Iterator[Cleanroom]:
    """A Cleanroom on the test's ``workspace`` under the effective policy (the command line's,
    tightened by ``@pytest.mark.cleanroom``), the run's seed and backend. Closed at teardown."""
    from .run_backends import run_backends
    from .sandbox import open_cleanroom

    item = request.node
    assert isinstance(item, pytest.Item)
    settings = get_settings(request.config)
    room = open_cleanroom(item, workspace, settings)
    try:
        yield room
    finally:
        room.close()
        run_backends(request.config, settings).after_test()
