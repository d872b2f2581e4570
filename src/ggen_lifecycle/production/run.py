"""``ggen lifecycle validate --env ENV`` with a ``[validation.ENV]`` table: the project's inputs
copied into a fresh cleanroom workspace, the steps run there one after the other as one scenario
(production policy, the phases' services, one overall timeout), the readiness verdict with the
steps' results, and the report and signed statement kept under ``.ggen/validation``."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import LifecycleError, ProductionValidationError, StorageError
from ..model import Thresholds
from . import inputs as project_inputs
from .policy import PolicyFloorError, production_policy
from .report import TAIL_LINES, ProductionReport, StepOutcome
from .statement import build_statement, envelope_path, load_signing_key, report_path, signed
from .steps import PlannedStep, plan_steps, verified_requirements

if TYPE_CHECKING:
    from pytest_cleanroom.engine import Cleanroom
    from pytest_cleanroom.policy import Policy
    from pytest_cleanroom.result import RunResult

    from ..config import Project
    from ..model import ProductionValidationSpec
    from ..readiness import Verdict
    from ..services import ServiceSession

Progress = Callable[[StepOutcome], None]


def validate_project(
    project: Project,
    environment: str,
    *,
    signing_key: Path | None = None,
    backend: str = "auto",
    progress: Progress | None = None,
) -> ProductionReport:
    """Validate ``project`` for ``environment``; raises only when validation cannot run at all
    (:class:`ProductionValidationError`, :class:`LifecycleError`), never for a failing step."""
    spec = project.spec.validation[environment]
    key = load_signing_key(signing_key) if signing_key is not None else None
    try:
        policy = production_policy(spec.policy)
    except PolicyFloorError as exc:  # checked at load time too; kept for library callers
        raise ProductionValidationError(f"[validation.{environment}] policy: {exc}") from None
    planned = plan_steps(project, spec, environment)
    _check_verifies(project, spec)
    _check_services(planned, spec, policy, environment)
    started = time.time()
    with tempfile.TemporaryDirectory(prefix="ggen-validate-") as tmp:
        workspace = Path(tmp) / "workspace"
        workspace.mkdir()
        inputs = project_inputs.copy_into(project, spec, workspace)
        room = _cleanroom(workspace, policy, backend)
        with room:
            steps = _Scenario(project, spec, room, progress).run(planned)
    report = ProductionReport(
        project.name,
        environment,
        verdict=_verdict(project, spec, environment, steps),
        steps=steps,
        inputs_digest=inputs.digest,
        input_files=len(inputs.digests),
        policy_name=policy.name,
        policy_digest=policy.digest(),
        backend=room.backend_name,
        started_at=started,
        duration=time.time() - started,
    )
    _keep(project, report, build_statement(report, inputs), key)
    return report


def _check_verifies(project: Project, spec: ProductionValidationSpec) -> None:
    """Every requirement ``verifies`` names exists, before anything runs."""
    from ..readiness import apply_verification, load_requirements

    names = {req: ("", True) for req in verified_requirements(project, spec)}
    apply_verification(load_requirements(project.root), names, project.file)


def _check_services(
    planned: list[PlannedStep], spec: ProductionValidationSpec, policy: Policy, environment: str
) -> None:
    wanted = {s for step in planned for s in step.services} | set(spec.services)
    refused = sorted(n for n in wanted if not policy.allows_service(n))
    if refused:
        raise ProductionValidationError(
            f"[validation.{environment}] policy does not allow the services the steps need: "
            f"{', '.join(refused)}; add them to the policy's allowed_services"
        )


def _cleanroom(workspace: Path, policy: Policy, backend: str) -> Cleanroom:
    from pytest_cleanroom.engine import Cleanroom
    from pytest_cleanroom.errors import CleanroomError

    try:
        return Cleanroom(workspace, policy=policy, backend=backend)
    except CleanroomError as exc:
        raise ProductionValidationError(f"no cleanroom for the validation: {exc}") from None


class _Scenario:
    """The steps in one cleanroom, in order; the first failure skips the rest."""

    def __init__(
        self,
        project: Project,
        spec: ProductionValidationSpec,
        room: Cleanroom,
        progress: Progress | None,
    ) -> None:
        self.project, self.spec, self.room = project, spec, room
        self.progress = progress or (lambda _step: None)
        self.deadline = time.monotonic() + spec.timeout
        self.verifies: dict[str, list[str]] = {}
        for requirement, step in verified_requirements(project, spec).items():
            self.verifies.setdefault(step, []).append(requirement)

    def run(self, planned: list[PlannedStep]) -> list[StepOutcome]:
        outcomes: list[StepOutcome] = []
        failed = False
        with contextlib.ExitStack() as stack:
            self._services(stack, planned)
            for step in planned:
                if failed:
                    outcome = self._outcome(step, "skipped", "an earlier step failed")
                else:
                    outcome = self._step(step)
                    failed = outcome.outcome == "failed"
                outcomes.append(outcome)
                self.progress(outcome)
        return outcomes

    def _outcome(self, step: PlannedStep, outcome: str, detail: str) -> StepOutcome:
        return StepOutcome(
            step.name,
            step.workspace,
            outcome,
            detail,
            list(step.commands),
            verifies=self.verifies.get(step.name, []),
        )

    def _services(self, stack: contextlib.ExitStack, planned: list[PlannedStep]) -> None:
        """Start the services any step needs, once, and expose them in the room (their
        variables reach every command, as in a cleanroom phase)."""
        names = sorted({s for step in planned for s in step.services} | set(self.spec.services))
        if not names:
            return
        from ..services import ServiceSession, expose_in

        session: ServiceSession = ServiceSession(self.project.root)
        stack.callback(session.close)
        try:
            handed = stack.enter_context(session.for_task(names, phase="validate", workspace=None))
        except LifecycleError as exc:
            raise ProductionValidationError(str(exc)) from None
        expose_in(self.room, handed)

    def _step(self, step: PlannedStep) -> StepOutcome:
        outcome = self._outcome(step, "passed", "every command exited 0")
        env = {
            **step.env,
            "GGEN_PHASE": step.name,
            "GGEN_WORKSPACE": step.workspace or "",
        }
        for command in step.commands:
            left = self.deadline - time.monotonic()
            if left <= 0:
                outcome.outcome, outcome.timed_out = "failed", True
                outcome.detail = f"the validation's timeout of {self.spec.timeout:g} s ran out"
                return outcome
            limit = min(left, step.timeout or self.room.policy.timeout or left)
            result = self.room.run(command, cwd=step.cwd, env=env, timeout=limit)
            _add(outcome, result)
            if not result.succeeded:
                outcome.outcome, outcome.detail = "failed", _why(command, result, limit)
                return outcome
        return outcome


def _add(outcome: StepOutcome, result: RunResult) -> None:
    outcome.duration += result.duration
    outcome.exit_code = result.exit_code
    outcome.timed_out = result.timed_out
    outcome.limits_enforcement = result.limits_enforcement or outcome.limits_enforcement
    if result.peak_memory is not None:
        outcome.peak_memory = max(outcome.peak_memory or 0, result.peak_memory)
    if result.cpu_time is not None:
        outcome.cpu_time = (outcome.cpu_time or 0.0) + result.cpu_time
    lines = outcome.output_tail.splitlines() + (result.stdout + result.stderr).splitlines()
    outcome.output_tail = "\n".join(lines[-TAIL_LINES:])


def _why(command: str, result: RunResult, limit: float) -> str:
    if result.timed_out or result.limit_exceeded == "timeout":
        return f"`{command}` timed out (killed after {limit:.0f} s)"
    if result.limit_exceeded:
        return f"`{command}` exceeded the {result.limit_exceeded} limit"
    if result.exit_code == 127:
        return (f"`{command}`: a program it runs was not found in the cleanroom (exit 127); "
                "install it, or let the policy's readable_paths show where it is")  # fmt: skip
    return f"`{command}` exited {result.exit_code}"


def _verdict(
    project: Project, spec: ProductionValidationSpec, environment: str, steps: list[StepOutcome]
) -> Verdict:
    from ..readiness import validate

    ran: dict[str, bool] = {}
    for step in steps:
        ran[step.name] = ran.get(step.name, True) and step.outcome == "passed"
    verified = {
        req: (step, ran.get(step, False))
        for req, step in verified_requirements(project, spec).items()
    }
    readiness = project.spec.readiness
    return validate(
        project.root,
        environment,
        readiness.thresholds.get(environment, Thresholds()),
        readiness.patterns,
        readiness.include,
        readiness.exclude,
        verified=verified,
        config_file=project.file,
    )


def _keep(project: Project, report: ProductionReport, statement: dict[str, Any], key: Any) -> None:
    """The report, and the signed statement (or none: an unsigned validation removes the
    previous statement, which is no longer the last validation)."""
    from ..state import atomic_write

    envelope = envelope_path(project.root, report.environment)
    try:
        if key is not None:
            atomic_write(envelope, signed(statement, key))
            report.statement, report.keyid = str(envelope), key.keyid
        elif envelope.is_file() and not envelope.is_symlink():
            os.unlink(envelope)
        atomic_write(
            report_path(project.root, report.environment),
            json.dumps(report.to_json(), indent=2) + "\n",
        )
    except OSError as exc:
        raise StorageError.from_os_error(exc) from None
