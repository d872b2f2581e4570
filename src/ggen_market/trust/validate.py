"""``ggen market validate``: a gpack's archive installed, rendered and checked in a cleanroom.

One checklist, in order; a failure stops the checks that depend on it:

1. ``install``: the archive is installed into a fresh project exactly as ``ggen market add``
   does it (same staging, digests, extraction limits, manifest checks, dependencies);
2. ``render``: every template is rendered with its sample variables (``[validation] vars`` over
   the front matter's defaults) by ``ggen template generate`` *inside* the cleanroom, into an
   output directory holding only ``[validation] files``; no cleanroom nests in it, so templates'
   ``sh_before``/``sh_after`` commands run directly in it, under its policy (recorded);
3. ``confinement``: nothing but the output directory changed in the cleanroom's workspace;
4. ``step``: each ``[validation] steps`` command, in the output directory, in the cleanroom;
5. ``scenario`` / ``fixtures``: a test gpack's scenarios run, its fixture modules compile.

The cleanroom's policy is ``strict`` (no network, host data hidden, limits) or what
``[validation] policy`` tightens it to; its name and digest are recorded.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..archive import extract_archive, sha256_bytes
from ..builder import build_index, check_gpack
from ..config import MarketConfig, RegistrySpec
from ..errors import MarketError
from ..install import Project
from ..manifest import Manifest, matching_files
from .statement import KIND, PASSED, archive_name

if TYPE_CHECKING:
    from pytest_cleanroom.engine import Cleanroom
    from pytest_cleanroom.policy import Policy
    from pytest_cleanroom.result import RunResult

TAIL_LINES = 20
OUT = "out"
PROJECT = "project"


class ValidationSetupError(MarketError):
    """Validation could not run at all (no backend can honour the policy, unreadable archive)."""


@dataclass
class Check:
    """One item of the checklist: ``passed``, ``failed`` or ``skipped``, and why."""

    kind: str
    name: str
    outcome: str
    detail: str = ""
    duration: float = 0.0
    exit_code: int | None = None
    timed_out: bool = False
    peak_memory: int | None = None
    output_tail: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "name": self.name,
            "outcome": self.outcome,
            "detail": self.detail,
            "durationSeconds": round(self.duration, 3),
            "exitCode": self.exit_code,
            "timedOut": self.timed_out,
            "peakMemoryBytes": self.peak_memory,
            "outputTail": self.output_tail,
        }


@dataclass
class ValidationReport:
    """The outcome of validating one archive, and the statement that records it."""

    pack_id: str
    version: str
    archive_sha256: str
    archive_size: int
    source: str
    policy_name: str = ""
    policy_digest: str = ""
    backend: str = ""
    checks: list[Check] = field(default_factory=list)
    hooks_run: int = 0
    started_at: float = field(default_factory=time.time)

    @property
    def ok(self) -> bool:
        return bool(self.checks) and all(c.outcome != "failed" for c in self.checks)

    @property
    def result(self) -> str:
        return PASSED if self.ok else "FAILED"

    def statement(self) -> dict[str, Any]:
        """The in-toto Statement v1 (validation predicate) describing this report."""
        from pytest_cleanroom.attest.statement import (
            VALIDATION,
            rfc3339,
            statement,
            tool_versions,
        )

        name = archive_name(self.pack_id, self.version)
        predicate = {
            "kind": KIND,
            "result": self.result,
            "pack": {"id": self.pack_id, "version": self.version},
            "archive": {"sha256": self.archive_sha256, "size": self.archive_size},
            "policy": {"name": self.policy_name, "digest": self.policy_digest},
            "backend": self.backend,
            "steps": [c.to_json() for c in self.checks],
            "hooks": self.hooks_json(),
            "tool": tool_versions(),
            "validatedOn": rfc3339(self.started_at),
        }
        subject = [{"name": name, "digest": {"sha256": self.archive_sha256}}]
        return statement(subject, VALIDATION, predicate)

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "result": self.result,
            "id": self.pack_id,
            "version": self.version,
            "source": self.source,
            "archive_sha256": self.archive_sha256,
            "policy": {"name": self.policy_name, "digest": self.policy_digest},
            "backend": self.backend,
            "checks": [c.to_json() for c in self.checks],
            "hooks": self.hooks_json(),
        }

    def hooks_json(self) -> dict[str, Any]:
        """How templates' hooks were confined: in the validation's cleanroom, under its policy."""
        return {
            "ran": self.hooks_run,
            "confinement": "the validation's cleanroom (no cleanroom of their own)",
            "policy": {"name": self.policy_name, "digest": self.policy_digest},
        }


def validation_policy(manifest: Manifest) -> Policy:
    """``strict``, tightened by ``[validation] policy``, letting the tool's own files be read."""
    from pytest_cleanroom.backends.namespace import is_visible
    from pytest_cleanroom.policy import Policy

    policy = Policy.level("strict")
    section = manifest.validation
    if section is not None and section.policy != "strict":
        policy = policy.tightened_by(Policy.level(section.policy))
    hidden = [h for h in _tool_dirs() if not is_visible(policy, h)]
    if hidden:  # an interpreter outside what strict shows: readable, still not writable
        policy = policy.replace(readable_paths=(*policy.readable_paths, *hidden))
    return policy


def _tool_dirs() -> list[str]:
    import ggen_market

    package_root = Path(ggen_market.__file__).resolve().parents[1]
    # Real paths: a link never lets a hidden path through (the policy would be refused).
    prefixes = {str(Path(p).resolve()) for p in (sys.prefix, sys.base_prefix)}
    return sorted({*prefixes, str(package_root)})


Progress = Callable[[Check], None]


def validate_archive(
    data: bytes,
    *,
    source: str,
    config: MarketConfig,
    backend: str = "auto",
    progress: Progress | None = None,
) -> ValidationReport:
    """Validate the gpack archive ``data`` (see the module's checklist); never raises for a
    check that fails, only :class:`ValidationSetupError` when validation cannot run."""
    with tempfile.TemporaryDirectory(prefix="ggen-validate-") as tmp:
        root = Path(tmp)
        manifest = peek_manifest(data, root / "peek", source)
        report = ValidationReport(
            manifest.id, manifest.version, sha256_bytes(data), len(data), source
        )
        run = _Run(report, manifest, root, progress or (lambda _check: None))
        run.execute(data, config, backend)
        return report


def peek_manifest(data: bytes, where: Path, source: str) -> Manifest:
    """The checked manifest of the archive ``data``, extracted into ``where`` (then removed)."""
    try:
        extract_archive(data, where, label=source)
        return check_gpack(where, deep=False)
    except MarketError as exc:
        message = f"{source}: not a gpack archive that can be validated: {exc}"
        raise ValidationSetupError(message) from None
    finally:
        shutil.rmtree(where, ignore_errors=True)


class _Run:
    """The state of one validation while its checks run."""

    def __init__(self, report: ValidationReport, manifest: Manifest, root: Path,
                 progress: Progress) -> None:  # fmt: skip
        self.report, self.manifest, self.root, self.progress = report, manifest, root, progress
        self.workspace = root / "workspace"
        self.project = self.workspace / PROJECT
        self.section = manifest.validation

    def add(self, check: Check) -> bool:
        self.report.checks.append(check)
        self.progress(check)
        return check.outcome != "failed"

    def execute(self, data: bytes, config: MarketConfig, backend: str) -> None:
        from pytest_cleanroom.engine import Cleanroom
        from pytest_cleanroom.errors import CleanroomError

        policy = validation_policy(self.manifest)
        self.report.policy_name, self.report.policy_digest = policy.name, policy.digest()
        if not self.add(self._install(data, config)):
            return
        try:
            room = Cleanroom(self.workspace, policy=policy, backend=backend)
        except CleanroomError as exc:
            raise ValidationSetupError(f"no cleanroom for the validation: {exc}") from None
        self.report.backend = room.backend_name
        with room:
            if self._render(room):
                for step in self.section.steps if self.section else []:
                    if not self.add(self._step(room, step.name, step.run, step.timeout)):
                        break
            if self.manifest.is_test_pack:
                for check in self._test_pack(room, policy, backend):
                    self.add(check)

    # -- the checks -------------------------------------------------------------------------

    def _install(self, data: bytes, config: MarketConfig) -> Check:
        pid, version = self.manifest.id, self.manifest.version
        registry = self.root / "registry"
        (registry / "archives").mkdir(parents=True)
        (registry / "archives" / archive_name(pid, version)).write_bytes(data)
        started = time.monotonic()
        try:
            build_index(registry)
            spec = RegistrySpec(name="the archive under validation", url=str(registry))
            scoped = MarketConfig((spec, *config.registries), config.cache_dir, config.timeout)
            self.project.mkdir(parents=True)
            Project(self.project, scoped).add([f"{pid}@={version}"])
        except MarketError as exc:
            return Check("install", "install", "failed", str(exc), time.monotonic() - started)
        detail = f"installed {pid}@{version} as `ggen market add` does"
        return Check("install", "install", "passed", detail, time.monotonic() - started)

    def _render(self, room: Cleanroom) -> bool:
        """Render in the cleanroom, then check nothing outside the output changed."""
        from ..template.generate import gpack_templates

        if not gpack_templates(self._installed_root()):
            return self.add(Check("render", "render", "skipped", "the gpack has no templates"))
        variables = dict(self.section.vars) if self.section else {}
        confined_by = f"{self.report.policy_name} {self.report.policy_digest}"
        argv = [sys.executable, "-m", "ggen_cli", "template", "generate", self.manifest.id,
                "--project", PROJECT, "--out", OUT, "--json",
                "--hooks-in-validation-room", confined_by]  # fmt: skip
        for key, value in sorted(variables.items()):
            argv += ["--var", f"{key}={value}"]
        for rel, text in sorted(self.section.files.items() if self.section else []):
            seed = self.workspace / OUT / rel
            seed.parent.mkdir(parents=True, exist_ok=True)
            seed.write_text(text, encoding="utf-8")
        before = _outside_output(self.workspace)
        result = room.run(argv, env=self._env())
        check = _check_of("render", "render every template", result)
        self.report.hooks_run = _hooks_run(result.stdout)
        if self.report.hooks_run:
            check.detail += (
                f"; {self.report.hooks_run} sh_before/sh_after hook(s) ran in this cleanroom,"
                f" under its policy {self.report.policy_name}"
            )
        rendered = self.add(check)
        after = _outside_output(self.workspace)
        changed = sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))
        name = "writes only into its output"
        if changed:
            why = f"changed outside {OUT}/: {', '.join(changed[:10])}"
            return self.add(Check("confinement", name, "failed", why))
        if not rendered and "outside" in self.report.checks[-1].output_tail:
            why = "a template's output path leaves the output directory"
            return self.add(Check("confinement", name, "failed", why))
        return (
            self.add(Check("confinement", name, "passed", f"nothing outside {OUT}/ changed"))
            and rendered
        )

    def _step(self, room: Cleanroom, name: str, command: str, timeout: float | None) -> Check:
        limit = timeout or (self.section.timeout if self.section else None)
        (self.workspace / OUT).mkdir(exist_ok=True)
        result = room.run(command, cwd=OUT, timeout=limit, env=self._env())
        return _check_of("step", name, result)

    def _test_pack(self, room: Cleanroom, policy: Policy, backend: str) -> Iterator[Check]:
        from ..testpack import check_test_sections

        installed = self._installed_root()
        for number, path in enumerate(check_test_sections(installed, self.manifest)):
            yield from self._scenarios(path, number, policy, backend)
        fixtures = self.manifest.fixtures
        for path in matching_files(installed, fixtures.patterns) if fixtures else []:
            rel = path.relative_to(self.workspace).as_posix()
            result = room.run([sys.executable, "-m", "py_compile", rel], env=self._env())
            yield _check_of("fixtures", f"fixture module {path.name} compiles", result)

    def _scenarios(self, path: Path, number: int, policy: Policy, backend: str) -> Iterator[Check]:
        from pytest_cleanroom.engine import Cleanroom
        from pytest_cleanroom.policy import Policy as PolicyModel
        from pytest_cleanroom.scenarios.files import load_scenario_file

        for index, variant in enumerate(load_scenario_file(path)):
            scenario = variant.scenario
            name = f"{path.name}: {variant.id}"
            if scenario.services:
                why = f"needs {', '.join(scenario.services)}, which validation does not start"
                yield Check("scenario", name, "skipped", why)
                continue
            own = PolicyModel.coerce(scenario.policy) if scenario.policy else policy
            workspace = self.root / "scenarios" / f"{number}-{index}"
            with Cleanroom(workspace, policy=policy.tightened_by(own), backend=backend) as room:
                started = time.monotonic()
                outcome = room.run_scenario(scenario)
            failed = outcome.failed_step
            detail = "every step passed" if outcome.ok else (
                f"step {failed.name!r} failed: {'; '.join(failed.problems)}" if failed
                else "timed out or a rollback step failed"
            )  # fmt: skip
            yield Check("scenario", name, "passed" if outcome.ok else "failed", detail,
                        time.monotonic() - started, timed_out=outcome.timed_out)  # fmt: skip

    def _installed_root(self) -> Path:
        from ..lockfile import package_dir

        return package_dir(self.project, self.manifest.id, self.manifest.version)

    def _env(self) -> dict[str, str]:
        """The tool's interpreter first on PATH, so that steps' ``python`` is the one with ggen."""
        from pytest_cleanroom.environment import FIXED_PATH

        return {"PATH": f"{os.path.dirname(sys.executable)}:{FIXED_PATH}"}


def _hooks_run(stdout: str) -> int:
    """How many hooks ``ggen template generate --json`` says ran (0 when it failed)."""
    try:
        hooks = json.loads(stdout).get("hooks", [])
    except (ValueError, AttributeError):
        return 0
    return sum(1 for hook in hooks if isinstance(hook, dict) and hook.get("ran"))


def _outside_output(workspace: Path) -> dict[str, str]:
    """Digests of every file of ``workspace`` outside the output and home directories."""
    from pytest_cleanroom.attest.digests import take_snapshot
    from pytest_cleanroom.environment import HOME_DIR

    skip = (f"{OUT}/", f"{HOME_DIR}/")
    return {k: v for k, v in take_snapshot(workspace).digests().items() if not k.startswith(skip)}


def _check_of(kind: str, name: str, result: RunResult) -> Check:
    text = (result.stdout + result.stderr).splitlines()
    tail = "\n".join(text[-TAIL_LINES:])
    if result.timed_out:
        outcome, detail = "failed", f"timed out (killed after {result.duration:.0f} s)"
    elif result.limit_exceeded:
        outcome, detail = "failed", f"exceeded the {result.limit_exceeded} limit"
    elif result.exit_code != 0:
        outcome, detail = "failed", f"exit code {result.exit_code}"
    else:
        outcome, detail = "passed", "exit code 0"
    return Check(kind, name, outcome, detail, result.duration, result.exit_code,
                 result.timed_out, result.peak_memory, tail)  # fmt: skip


def archive_of_directory(path: Path) -> bytes:
    """The reproducible archive of the gpack directory ``path`` (as ``ggen market pack``)."""
    from ..builder import pack_gpack

    return pack_gpack(path)[1]


def archive_from_registry(spec: str, project: Project) -> tuple[bytes, str]:
    """Download ``ID[@VERSION]`` (default: the newest) as ``add`` would; (bytes, label)."""
    from ..errors import IntegrityError, RegistryError
    from ..install import parse_requirement
    from ..progress import Progress

    pack_id, wanted = parse_requirement(spec)
    entry, registry = project.catalog.require(pack_id)
    number = wanted or entry.latest
    if number not in entry.versions:
        have = ", ".join(str(v) for v in entry.sorted_versions())
        raise RegistryError(f"{pack_id}@{number}: no such version in {registry.url} (has {have})")
    version = entry.versions[number]
    with tempfile.TemporaryDirectory(prefix="ggen-validate-fetch-") as tmp:
        target = Path(tmp) / archive_name(pack_id, number)
        actual = registry.fetch(version.archive, target, size=version.size,
                                progress=Progress(enabled=False))  # fmt: skip
        if actual != version.sha256:
            raise IntegrityError(
                f"{pack_id}@{number}: sha256 mismatch: the index lists {version.sha256}, the"
                f" archive from {registry.url} is {actual}; refusing it"
            )
        return target.read_bytes(), f"{pack_id}@{number} from {registry.url}"
