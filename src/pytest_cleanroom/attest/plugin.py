"""The attest sub-plugin: ``--cleanroom-attest``, ``--cleanroom-signing-key``,
``--cleanroom-report`` and the JUnit XML properties of tests that used a cleanroom.

It listens through the cleanroom hooks: ``pytest_cleanroom_created`` snapshots the workspace's
file digests, ``pytest_cleanroom_result`` collects what ran, and at teardown (before the fixtures
are torn down) the workspace is compared and the test's envelope signed and written. Only cheap
modules are imported here; cryptography loads when attestations are asked for.
"""

from __future__ import annotations

import time
from collections.abc import Generator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from .collector import ENVELOPE_ATTRIBUTE, RunCollector
from .tracking import CleanroomWatch

if TYPE_CHECKING:
    from ..engine import Cleanroom
    from ..result import RunResult
    from .sandbox_coverage import SandboxCoverage
    from .session import AttestSession

_COLLECTOR = "cleanroom-attest-collector"
# Key under which the controller hands the attestation set-up to each pytest-xdist worker.
WORKERINPUT_KEY = "cleanroom_attest"


@dataclass
class AttestState:
    session: AttestSession | None = None
    coverage: SandboxCoverage | None = None
    coverage_checked: bool = False


_STATE = pytest.StashKey[AttestState]()
_WATCH = pytest.StashKey[CleanroomWatch]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("cleanroom")
    group.addoption(
        "--cleanroom-attest",
        metavar="DIR",
        default=None,
        help="Write a signed in-toto attestation (DSSE envelope, SLSA provenance) of every test "
        "that used a cleanroom, and a run statement (test results), into DIR; a previous run's "
        "envelopes there are removed. Verify with `ggen attest verify DIR` "
        "(ini: cleanroom_attest).",
    )
    group.addoption(
        "--cleanroom-signing-key",
        metavar="KEY.pem",
        default=None,
        help="ed25519 private key (PEM) signing the attestations. Default: a key made for the "
        "run, whose public half is written into DIR (ini: cleanroom_signing_key).",
    )
    group.addoption(
        "--cleanroom-report",
        metavar="FILE.json",
        default=None,
        help="Write every sandboxed command of the run (test, command, policy, backend, exit "
        "code, duration, peak memory, CPU time) to FILE.json (ini: cleanroom_report).",
    )
    parser.addini("cleanroom_attest", "Default of --cleanroom-attest (relative to the ini file).")
    parser.addini(
        "cleanroom_signing_key", "Default of --cleanroom-signing-key (relative to the ini file)."
    )
    parser.addini("cleanroom_report", "Default of --cleanroom-report (relative to the ini file).")


def pytest_configure(config: pytest.Config) -> None:
    state = config.stash[_STATE] = AttestState()
    workerinput: dict[str, Any] | None = getattr(config, "workerinput", None)
    if workerinput is not None:  # an xdist worker: the controller decided everything
        data = workerinput.get(WORKERINPUT_KEY)
        if data is not None:
            from .session import AttestSession

            state.session = AttestSession.from_workerinput(data)
        return
    directory = _path_option(config, "cleanroom_attest", "cleanroom_attest")
    key = _path_option(config, "cleanroom_signing_key", "cleanroom_signing_key")
    report = _path_option(config, "cleanroom_report", "cleanroom_report")
    if key is not None and directory is None:
        raise pytest.UsageError("--cleanroom-signing-key needs --cleanroom-attest=DIR")
    if config.option.collectonly:  # nothing runs: keep the previous run's files untouched
        return
    _check_kinds(directory, key, report)
    if report is not None:
        from .report import check_writable

        try:
            check_writable(report)
        except OSError as exc:
            raise pytest.UsageError(
                f"--cleanroom-report: cannot write {report}: {exc.strerror or exc}"
            ) from None
    if directory is not None:
        from .session import AttestSession

        state.session = AttestSession.start(directory, key)
    if state.session is not None or report is not None:
        config.pluginmanager.register(RunCollector(config, state.session, report), _COLLECTOR)


def _check_kinds(directory: Path | None, key: Path | None, report: Path | None) -> None:
    """A path of the wrong kind (a file for a directory, ...) is one usage error saying what to
    give instead, before anything is created or read."""
    if directory is not None and directory.exists() and not directory.is_dir():
        raise pytest.UsageError(
            f"--cleanroom-attest: {directory} is a file, not a directory: give a directory for "
            "the envelopes (it is created if needed), or move the file away"
        )
    if report is not None and report.is_dir():
        raise pytest.UsageError(
            f"--cleanroom-report: {report} is a directory, not a file: give the report's file "
            f"name, for instance --cleanroom-report={report / 'report.json'}"
        )
    if key is not None and key.is_dir():
        raise pytest.UsageError(
            f"--cleanroom-signing-key: {key} is a directory, not a key file: give the PEM "
            "private key file (`ggen attest keygen PATH` makes one)"
        )
    if key is not None and not key.exists():
        raise pytest.UsageError(
            f"--cleanroom-signing-key: {key} does not exist: make a key with "
            f"`ggen attest keygen {key}`, or leave the option out to sign with a key made for "
            "the run"
        )


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:
    """pytest-xdist, on the controller: hand the directory, key and run id to each worker."""
    session = node.config.stash[_STATE].session
    if session is not None:
        node.workerinput[WORKERINPUT_KEY] = session.to_workerinput()


def pytest_cleanroom_created(item: pytest.Item, cleanroom: Cleanroom) -> None:
    watch = CleanroomWatch.of_cleanroom(cleanroom)
    existing = item.stash.get(_WATCH, None)
    if existing is not None:
        if existing.workspace != watch.workspace:
            item.warn(
                pytest.PytestWarning(
                    f"{item.nodeid} made a second cleanroom on another workspace "
                    f"({watch.workspace}); only {existing.workspace} is attested"
                )
            )
        return
    state = item.config.stash[_STATE]
    if state.session is not None and watch.workspace is not None:
        watch.snapshot_inputs(cleanroom)
    coverage = _sandbox_coverage(item.config, state)
    if coverage is not None and not _repeat_checked(item) and coverage.prepare(cleanroom):
        watch.coverage = coverage
    item.stash[_WATCH] = watch


def pytest_cleanroom_result(item: pytest.Item, result: RunResult) -> None:
    watch = item.stash.get(_WATCH, None)
    if watch is None:  # a cleanroom the created hook did not announce: no snapshot, no subjects
        watch = item.stash[_WATCH] = CleanroomWatch(
            workspace=result.workspace, created_at=result.started_at or time.time()
        )
    watch.results.append(result)
    if watch.coverage is not None and result.workspace is not None:
        watch.coverage.collect(result.workspace, item.nodeid)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item: pytest.Item) -> Generator[None, None, None]:
    """Attest before the fixtures are torn down, while the workspace is as the test left it."""
    watch = item.stash.get(_WATCH, None)
    session = item.config.stash[_STATE].session
    failure: Exception | None = None
    if watch is not None:
        if session is not None:
            try:
                watch.attest(item.nodeid, session)
            except OSError as exc:  # an unreadable workspace file, a full disk...
                failure = exc
        item.user_properties.extend(watch.properties())
    yield
    if failure is not None and session is not None:
        raise AttestationError(
            f"cannot attest {item.nodeid} (attestations in {session.directory}): {failure}"
        ) from failure


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if call.when == "teardown":
        watch = item.stash.get(_WATCH, None)
        if watch is not None and watch.envelope is not None:
            envelope = {"name": watch.envelope.name, "sha256": watch.envelope.sha256}
            setattr(report, ENVELOPE_ATTRIBUTE, envelope)
    return report


def _sandbox_coverage(config: pytest.Config, state: AttestState) -> SandboxCoverage | None:
    """Decided at the first cleanroom (pytest-cov has started by then, on workers too)."""
    if not state.coverage_checked:
        state.coverage_checked = True
        if config.pluginmanager.has_plugin("_cov"):
            from .sandbox_coverage import from_pytest_cov

            found = from_pytest_cov(config)
            if isinstance(found, str):
                config.issue_config_time_warning(pytest.PytestWarning(found), stacklevel=2)
            else:
                state.coverage = found
    return state.coverage


def _repeat_checked(item: pytest.Item) -> bool:
    """The repeat check replays commands in copies of the workspace; coverage data written there
    would differ between the runs, so sandbox coverage stays off for those tests."""
    try:
        from ..scenarios.plugin import repeat_check_enabled
    except ImportError:
        return False
    return bool(repeat_check_enabled(item))


def attest_directory(config: pytest.Config) -> Path | None:
    """The run's attestation directory (``--cleanroom-attest``), if attestations are written."""
    state = config.stash.get(_STATE, None)
    return state.session.directory if state is not None and state.session is not None else None


class AttestationError(Exception):
    """A test's envelope could not be written (disk full, directory removed during the run)."""


def _path_option(config: pytest.Config, option: str, ini: str) -> Path | None:
    value = config.getoption(option)
    if value:
        return Path(value).absolute()
    text = str(config.getini(ini) or "").strip()
    if not text:
        return None
    base = config.inipath.parent if config.inipath is not None else config.rootpath
    return (base / text).absolute()
