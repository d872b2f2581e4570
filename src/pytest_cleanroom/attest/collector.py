"""On the controller (or the only process): every test's outcome, envelope and commands.

At the end of the session it writes the run's test-result statement and the JSON report. Under
pytest-xdist everything arrives on the test reports the workers send, so nothing is missed.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from ..pytest_plugin.records import records_of_report

if TYPE_CHECKING:
    from ..pytest_plugin.records import CommandRecord
    from .session import AttestSession

# Report attribute carrying ``{"name": file name, "sha256": hex}`` of a test's envelope.
ENVELOPE_ATTRIBUTE = "cleanroom_attestation"


class RunCollector:
    """Registered on the controller only; see the module docstring."""

    def __init__(
        self, config: pytest.Config, session: AttestSession | None, report_path: Path | None
    ) -> None:
        self.config = config
        self.session = session
        self.report_path = report_path
        self.started_at = time.time()
        self.passed: set[str] = set()
        self.failed: set[str] = set()
        self.with_warnings: set[str] = set()
        self.envelopes: dict[str, str] = {}
        self.records: list[tuple[int, CommandRecord]] = []
        self.run_envelope: str | None = None
        self.errors: list[str] = []

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.failed:
            self.failed.add(report.nodeid)
        elif report.when == "call" and report.passed:
            self.passed.add(report.nodeid)
        envelope = getattr(report, ENVELOPE_ATTRIBUTE, None)
        if envelope:
            self.envelopes[envelope["name"]] = envelope["sha256"]
        if self.report_path is not None:
            for record in records_of_report(report):
                self.records.append((len(self.records), record))

    def pytest_warning_recorded(self, nodeid: str) -> None:
        if nodeid:
            self.with_warnings.add(nodeid)

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        if self.session is not None:
            try:
                self._write_run_statement(self.session)
            except OSError as exc:
                self.errors.append(
                    f"cannot write the run statement in {self.session.directory}: {exc}"
                )
        if self.report_path is not None:
            try:
                self._write_report(self.report_path)
            except OSError as exc:
                self.errors.append(f"cannot write the report {self.report_path}: {exc}")
        if self.errors and session.exitstatus == pytest.ExitCode.OK:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED  # what was asked for is missing

    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        for error in self.errors:
            terminalreporter.write_line(f"cleanroom: ERROR: {error}", red=True, bold=True)
        if self.session is not None and self.run_envelope is not None:
            directory = self.session.directory
            terminalreporter.write_sep("-", "cleanroom attestations")
            count = len(self.envelopes)
            terminalreporter.write_line(
                f"{count} test envelope{'s' if count != 1 else ''} and {self.run_envelope} "
                f"in {directory}, "
                f"signed by key {self.session.key.keyid[:16]} ({self.session.key_source})"
            )
            terminalreporter.write_line(
                f"verify: ggen attest verify {directory} --key {self._public_key_hint()}"
            )
        if self.report_path is not None:
            terminalreporter.write_line(
                f"cleanroom report: {self.report_path} ({len(self.records)} sandboxed "
                f"command{'s' if len(self.records) != 1 else ''})"
            )

    def _public_key_hint(self) -> str:
        from .store import PUBLIC_KEY_FILE

        assert self.session is not None
        if self.session.key_source == "generated for this run":
            return str(self.session.directory / PUBLIC_KEY_FILE)
        return f"{self.session.key_source}.pub"

    def outcomes(self) -> tuple[list[str], list[str], list[str]]:
        """(passed, warned, failed) node ids; skipped and xfailed tests are in none of them."""
        failed = self.failed
        warned = (self.passed - failed) & self.with_warnings
        passed = self.passed - failed - warned
        return sorted(passed), sorted(warned), sorted(failed)

    def _write_run_statement(self, session: AttestSession) -> None:
        from .statement import ci_run_url

        passed, warned, failed = self.outcomes()
        written = session.attester.attest_run(
            passed=passed,
            warned=warned,
            failed=failed,
            envelopes=self.envelopes,
            configuration=self._configuration(),
            url=ci_run_url(),
        )
        self.run_envelope = written.name

    def _configuration(self) -> list[dict[str, Any]]:
        from ..pytest_plugin.settings import get_settings
        from ..shard.plugin import shard_record
        from .digests import file_digest
        from .statement import described

        settings = get_settings(self.config)
        config: list[dict[str, Any]] = [
            described(
                "pytest-invocation",
                {
                    "args": list(self.config.invocation_params.args),
                    "rootdir": str(self.config.rootpath),
                    "policy": settings.policy_name,
                    "policyDigest": settings.policy.digest(),
                    "perProcessLimits": settings.per_process_limits,
                    "backend": settings.backend,
                    "seed": settings.seed,
                },
            )
        ]
        shard = shard_record(self.config)
        if shard is not None:
            config.append(described("cleanroom-shard", shard))
        inipath = self.config.inipath
        if inipath is not None and inipath.is_file():
            name = (
                inipath.relative_to(self.config.rootpath).as_posix()
                if inipath.is_relative_to(self.config.rootpath)
                else str(inipath)
            )
            config.append({"name": name, "digest": {"sha256": file_digest(inipath)}})
        return config

    def _write_report(self, path: Path) -> None:
        from ..pytest_plugin.settings import get_settings
        from ..shard.plugin import shard_record
        from .report import build_report, write_report

        settings = get_settings(self.config)
        document = build_report(
            self.records,
            run={
                "started": self.started_at,
                "finished": time.time(),
                "policy": settings.policy_name,
                "backend": settings.backend,
                "seed": settings.seed,
                "workers": _worker_count(self.config),
                **({"shard": shard} if (shard := shard_record(self.config)) else {}),
            },
            attestations=str(self.session.directory) if self.session is not None else None,
        )
        write_report(path, document)


def _worker_count(config: pytest.Config) -> int:
    numprocesses = getattr(config.option, "numprocesses", None)
    return int(numprocesses) if isinstance(numprocesses, int) and numprocesses > 0 else 0
