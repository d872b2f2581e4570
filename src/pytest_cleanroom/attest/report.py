"""``--cleanroom-report=FILE.json``: every sandboxed command of the run, in one JSON file.

The records come from the test reports (``TestReport.cleanroom_commands``, attached by the core
plugin), so under pytest-xdist the controller sees every worker's commands.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..safe_write import check_output, write_output

if TYPE_CHECKING:
    from ..pytest_plugin.records import CommandRecord

REPORT_VERSION = 1
_PHASES = {"setup": 0, "call": 1, "teardown": 2}


def check_writable(path: Path) -> None:
    """Create the report's directory and prove the report can be written (``OSError`` if not)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    check_output(path)


def build_report(
    records: Iterable[tuple[int, CommandRecord]],
    *,
    run: dict[str, Any],
    attestations: str | None,
) -> dict[str, Any]:
    """The report document. ``records`` are ``(arrival index, record)`` pairs."""
    ordered = sorted(records, key=lambda p: (p[1].nodeid, _PHASES.get(p[1].when, 3), p[0]))
    commands = [_command(record) for _, record in ordered]
    failed = [c for c in commands if c["exit_code"] != 0 or c["timed_out"] or c["limit_exceeded"]]
    return {
        "version": REPORT_VERSION,
        "run": run,
        "attestations": attestations,
        "summary": {
            "commands": len(commands),
            "failed_commands": len(failed),
            "tests": len({c["nodeid"] for c in commands}),
            "total_duration": round(sum(c["duration"] for c in commands), 6),
            "total_cpu_time": round(sum(c["cpu_time"] or 0.0 for c in commands), 6),
            "max_peak_memory": max((c["peak_memory"] or 0 for c in commands), default=0),
        },
        "commands": commands,
    }


def write_report(path: Path, document: dict[str, Any]) -> None:
    write_output(path, json.dumps(document, indent=2) + "\n")


def _command(record: CommandRecord) -> dict[str, Any]:
    return {
        "nodeid": record.nodeid,
        "when": record.when,
        "command": record.command,
        "policy": record.policy_name,
        "policy_digest": record.policy_digest,
        "backend": record.backend,
        "seed": record.seed,
        "exit_code": record.exit_code,
        "timed_out": record.timed_out,
        "limit_exceeded": record.limit_exceeded,
        "duration": record.duration,
        "peak_memory": record.peak_memory,
        "cpu_time": record.cpu_time,
        "limits_enforcement": record.limits_enforcement,
    }
