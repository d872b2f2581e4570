"""The README's main job in the VM (cgroup v2; as root, and as a user through systemd
delegation): the example suite passes under ``locked`` and every command's record says its
limits were held by cgroup v2 for the whole tree, under the policy as asked."""

from __future__ import annotations

import json
from pathlib import Path

from tests.integration.test_example_suite import run_main_job


def test_the_example_suite_passes_under_locked_with_cgroup2(tmp_path: Path) -> None:
    report = tmp_path / "report.json"
    run_main_job(f"--cleanroom-report={report}")
    commands = json.loads(report.read_text())["commands"]
    assert commands
    held = {(c["policy"], c["limits_enforcement"]) for c in commands}
    # Markers tighten single tests: no command ran under a policy weaker than locked.
    assert {enforcement for _, enforcement in held} == {"cgroup2"}, held
    assert not any("per_process_limits" in policy for policy, _ in held), held
