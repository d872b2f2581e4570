"""The shard sub-plugin: ``--cleanroom-shard``, ``-shard-run`` and ``-shard-durations``.

After collection (and after ``-k``/``-m``), the tests of the other shards are deselected. What
this shard is, which tests it selected out of which collection and with which durations, goes
into the run's attestation statement and JSON report (see :func:`shard_record`), which is what
``ggen attest merge`` checks across shards. At the end the shard's measured durations are
written back to the durations file. Under pytest-xdist the workers split the collection and
hand the record to the controller.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from .durations import DEFAULT_NAME

WORKEROUTPUT_KEY = "cleanroom_shard"


@dataclass
class ShardState:
    spec: Any  # ShardSpec (imported only when sharding); None when only recording durations
    durations_path: Path
    record: dict[str, Any] | None = None
    measured: dict[str, float] = field(default_factory=dict)


_STATE = pytest.StashKey[ShardState]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("cleanroom")
    group.addoption(
        "--cleanroom-shard",
        metavar="K/N",
        default=None,
        help="Run only the K-th of N parts of the suite, balanced by recorded durations; 'auto' "
        "takes K and N from JOB_COMPLETION_INDEX + CLEANROOM_SHARD_COUNT (Kubernetes Indexed "
        "Job) or CI_NODE_INDEX + CI_NODE_TOTAL (GitLab) (ini: cleanroom_shard).",
    )
    group.addoption(
        "--cleanroom-shard-run",
        metavar="ID",
        default=None,
        help="The id shared by all shards of one run (default: CLEANROOM_SHARD_RUN, else the "
        "CI's run id); `ggen attest merge` refuses shards of different runs.",
    )
    group.addoption(
        "--cleanroom-shard-durations",
        metavar="FILE.json",
        default=None,
        help=f"Recorded test durations that balance the shards, updated by each shard (default: "
        f"{DEFAULT_NAME} in the rootdir; ini: cleanroom_shard_durations). Given without "
        "--cleanroom-shard, an unsharded run records its durations there.",
    )
    parser.addini("cleanroom_shard", "Default of --cleanroom-shard.")
    parser.addini("cleanroom_shard_durations", "Default of --cleanroom-shard-durations.")


@pytest.hookimpl(tryfirst=True)  # before the core plugin settles the seed
def pytest_configure(config: pytest.Config) -> None:
    option = config.getoption("cleanroom_shard") or str(config.getini("cleanroom_shard") or "")
    recording = bool(config.getoption("cleanroom_shard_durations"))
    if not option.strip() and not recording:
        return
    spec = None
    if option.strip():
        from .spec import ShardSpecError, resolve

        try:
            spec = resolve(option, config.getoption("cleanroom_shard_run"), os.environ)
        except ShardSpecError as exc:
            raise pytest.UsageError(f"--cleanroom-shard: {exc}") from None
        _share_seed(config, spec.run)
    state = config.stash[_STATE] = ShardState(spec, _durations_path(config))
    if not hasattr(config, "workerinput"):
        config.pluginmanager.register(ShardRecorder(state), "cleanroom-shard-recorder")


def _share_seed(config: pytest.Config, run: str | None) -> None:
    """Without a seed given, the shards of one named run share one derived from its id."""
    given = config.getoption("cleanroom_seed", None) is not None
    if run is None or given or str(config.getini("cleanroom_seed") or "").strip():
        return
    import hashlib

    config.option.cleanroom_seed = int(hashlib.sha256(run.encode()).hexdigest()[:8], 16)


def _durations_path(config: pytest.Config) -> Path:
    given = config.getoption("cleanroom_shard_durations")
    if given:
        return Path(given).absolute()
    text = str(config.getini("cleanroom_shard_durations") or "").strip()
    base = config.inipath.parent if config.inipath is not None else config.rootpath
    return (base / text).absolute() if text else config.rootpath / DEFAULT_NAME


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    state = config.stash.get(_STATE, None)
    if state is None or state.spec is None:
        return  # only recording durations
    from . import partition
    from .durations import DurationsFileError, read

    try:
        durations = read(state.durations_path)
    except DurationsFileError as exc:
        raise pytest.UsageError(f"--cleanroom-shard-durations: {exc}") from None
    nodeids = [item.nodeid for item in items]
    owners = partition.shard_of_each(nodeids, durations, state.spec.total)
    mine = [owner == state.spec.index for owner in owners]
    keep = [item for item, ours in zip(items, mine, strict=True) if ours]
    dropped = [item for item, ours in zip(items, mine, strict=True) if not ours]
    if dropped:
        config.hook.pytest_deselected(items=dropped)
    items[:] = keep
    state.record = {
        "index": state.spec.index,
        "total": state.spec.total,
        "source": state.spec.source,
        "run": state.spec.run,
        "collectedTests": len(nodeids),
        "collectionDigest": partition.collection_digest(nodeids),
        "durationsDigest": partition.durations_digest(durations, nodeids),
        "selectedTests": sorted(item.nodeid for item in keep),
    }
    workeroutput = getattr(config, "workeroutput", None)
    if workeroutput is not None:
        workeroutput[WORKEROUTPUT_KEY] = state.record


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: Any) -> None:
    """pytest-xdist, on the controller: take the split a worker made."""
    state = node.config.stash.get(_STATE, None)
    record = getattr(node, "workeroutput", {}).get(WORKEROUTPUT_KEY)
    if state is not None and state.record is None and record is not None:
        state.record = record


def pytest_report_collectionfinish(config: pytest.Config) -> list[str]:
    record = shard_record(config)
    if record is None:
        return []
    return [
        f"cleanroom shard {record['index']}/{record['total']} ({record['source']}): "
        f"{len(record['selectedTests'])} of {record['collectedTests']} tests"
    ]


class ShardRecorder:
    """On the controller (or the only process): durations measured, the exit status, the file."""

    def __init__(self, state: ShardState) -> None:
        self.state = state
        self.problem: str | None = None

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        measured = self.state.measured
        measured[report.nodeid] = measured.get(report.nodeid, 0.0) + report.duration

    # Last: a plugin that recomputes the status from the hook's exitstatus argument (syrupy's
    # does) would otherwise put back the "no tests" status of an empty shard.
    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        record = self.state.record
        empty = record is not None and record["collectedTests"] > 0
        if session.exitstatus == pytest.ExitCode.NO_TESTS_COLLECTED and empty:
            session.exitstatus = pytest.ExitCode.OK  # this shard's part is empty: nothing failed
        if not self.state.measured:
            return
        from .durations import SHARD_FILE, update, write

        try:
            update(self.state.durations_path, self.state.measured)
        except OSError as exc:
            self.problem = f"cannot update {self.state.durations_path}: {exc}"
        directory = _attest_directory(session.config)
        if directory is not None and record is not None:
            try:  # beside the shard's attestations, for `ggen attest merge` to combine
                write(directory / SHARD_FILE, self.state.measured)
            except OSError as exc:
                self.problem = f"cannot write {directory / SHARD_FILE}: {exc}"

    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        if self.problem is not None:
            terminalreporter.write_line(f"cleanroom: WARNING: {self.problem}", yellow=True)


def _attest_directory(config: pytest.Config) -> Path | None:
    try:
        from ..attest.plugin import attest_directory
    except ImportError:  # pragma: no cover - the attest sub-plugin ships with this one
        return None
    return attest_directory(config)


def shard_record(config: pytest.Config) -> dict[str, Any] | None:
    """What this shard is and which tests it selected, for the run's statement and report."""
    state = config.stash.get(_STATE, None)
    return None if state is None else state.record
