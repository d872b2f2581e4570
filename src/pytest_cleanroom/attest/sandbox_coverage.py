"""Coverage of Python code run inside the sandbox, combined into pytest-cov's report.

When pytest-cov measures the run, each test's cleanroom gets ``COVERAGE_PROCESS_CONFIG``: the
run's coverage configuration (sources made absolute) with ``parallel`` on and the data file in the
sandbox's ``HOME`` (inside the workspace, the one place it may write). coverage's own start-up
hook (the ``.pth`` file coverage >= 7.10 installs in site-packages, which the sandbox sees
read-only) starts measuring in every Python process that can import coverage. After each command
the data files are moved out of the workspace, next to pytest-cov's data file, where its final
``combine`` (serial, or on the xdist controller) merges them into the run's report.
"""

from __future__ import annotations

import copy
import hashlib
import os
import sysconfig
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

ENV_VAR = "COVERAGE_PROCESS_CONFIG"
_DATA_NAME = ".coverage-cleanroom"


@dataclass(frozen=True)
class SandboxCoverage:
    """How to measure sandboxed Python for this run, and where its data goes."""

    config_data: str
    data_dir: Path
    data_name: str

    def prepare(self, cleanroom: Any) -> bool:
        """Give ``cleanroom``'s commands the coverage configuration; ``False`` if it has no env."""
        env = getattr(cleanroom, "env", None)
        if not isinstance(env, dict):
            return False
        env[ENV_VAR] = self.config_data
        return True

    def collect(self, workspace: Path, nodeid: str) -> int:
        """Move the data files sandboxed processes wrote into pytest-cov's directory."""
        from ..environment import HOME_DIR

        home = workspace / HOME_DIR
        moved = 0
        try:
            entries = list(home.iterdir())
        except OSError:
            return 0
        tag = hashlib.sha256(nodeid.encode()).hexdigest()[:8]
        for entry in entries:
            if not entry.name.startswith(_DATA_NAME + ".") or not entry.is_file():
                continue
            suffix = entry.name[len(_DATA_NAME) + 1 :]
            target = self.data_dir / f"{self.data_name}.cleanroom-{tag}.{suffix}"
            try:
                os.replace(entry, target)
            except OSError:  # another filesystem: copy, then remove
                import shutil

                shutil.move(os.fspath(entry), target)
            moved += 1
        return moved


def from_pytest_cov(config: pytest.Config) -> SandboxCoverage | str | None:
    """The set-up for this run; ``None`` when pytest-cov is not measuring, or why it cannot be."""
    plugin = config.pluginmanager.get_plugin("_cov")
    controller = getattr(plugin, "cov_controller", None)
    cov = getattr(controller, "cov", None)
    if plugin is None or getattr(plugin, "_disabled", False) or cov is None:
        return None
    cov_config: Any = getattr(cov, "config", None)
    if not hasattr(cov_config, "serialize"):
        return "sandbox coverage needs coverage >= 7.10 (CoverageConfig.serialize)"
    hook = Path(sysconfig.get_paths()["purelib"]) / "a1_coverage.pth"
    if not hook.is_file():
        return f"sandbox coverage needs coverage's start-up hook {hook} (reinstall coverage)"
    from ..backends.base import WORKSPACE_PATH
    from ..environment import HOME_DIR

    topdir = Path(getattr(controller, "topdir", os.getcwd()))
    data_file = topdir / str(cov_config.data_file)
    sandboxed: Any = copy.deepcopy(cov_config)
    sandboxed.data_file = f"{WORKSPACE_PATH}/{HOME_DIR}/{_DATA_NAME}"
    sandboxed.parallel = True
    sandboxed.source = _absolute_dirs(topdir, sandboxed.source)
    sandboxed.run_include = _absolute_patterns(topdir, sandboxed.run_include)
    sandboxed.run_omit = _absolute_patterns(topdir, sandboxed.run_omit)
    return SandboxCoverage(
        config_data=sandboxed.serialize(),
        data_dir=data_file.parent.resolve(),
        data_name=data_file.name,
    )


def _absolute_dirs(topdir: Path, entries: list[str] | None) -> list[str] | None:
    """Directories relative to the run's top directory become absolute; module names stay."""
    if not entries:
        return entries
    return [
        str(topdir / e) if not os.path.isabs(e) and (topdir / e).is_dir() else e for e in entries
    ]


def _absolute_patterns(topdir: Path, patterns: list[str] | None) -> list[str] | None:
    if not patterns:
        return patterns
    return [p if p.startswith("*") or os.path.isabs(p) else str(topdir / p) for p in patterns]
