"""The deploy gate: a gated phase (``[validation.ENV] gate``, default ``deploy``) runs under
``--env ENV`` only after a passing validation, signed by a trusted key, of exactly the project's
current inputs. ``--allow-unvalidated`` runs it anyway; the run records that it did."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ..errors import ValidationGateError
from . import inputs as project_inputs
from .statement import envelope_path, load_trusted_keys, read_statement

if TYPE_CHECKING:
    from ..config import Project

SHOWN_CHANGES = 5


def gated_phases(
    project: Project, phases: Sequence[str], environment: str | None, workspace: str | None
) -> list[str]:
    """The gated phases a run of ``phases`` would reach (as tasks or through hooks)."""
    spec = project.spec.validation.get(environment or "")
    if spec is None:
        return []
    from ..graph import build_graph

    hooks = project.hooks()
    todo = [
        *phases,
        *(
            e
            for k in ("before_all", "after_all", "on_success", "on_error")
            for e in hooks.get(k, [])
        ),
    ]
    seen: set[str] = set()
    while todo:
        name = project.hook_phase(todo.pop()) or ""
        if not name or name in seen:
            continue
        seen.add(name)
        graph = build_graph(project, [name], workspace=workspace, environment=environment)
        for node in graph:
            if node.kind == "task":
                todo.append(node.phase)
            else:
                todo.extend(node.entries)
    return [p for p in spec.gate if p in seen]


def check_gate(
    project: Project,
    phases: Sequence[str],
    environment: str | None,
    workspace: str | None = None,
    *,
    allow_unvalidated: bool = False,
) -> dict[str, Any] | None:
    """``None`` when the run reaches no gated phase; else the gate's record (``passed`` or
    ``overridden``). :class:`ValidationGateError` when the run must not start."""
    gated = gated_phases(project, phases, environment, workspace)
    if not gated:
        return None
    assert environment is not None
    record: dict[str, Any] = {"environment": environment, "phases": gated}
    try:
        record.update(_passing(project, environment))
    except ValidationGateError as exc:
        if not allow_unvalidated:
            raise ValidationGateError(
                f"refusing to run {', '.join(gated)} for {environment}: {exc.message}; or pass "
                "--allow-unvalidated (recorded in the run's state)",
                file=exc.file,
            ) from None
        return record | {"status": "overridden", "reason": exc.message}
    return record | {"status": "passed"}


def _passing(project: Project, environment: str) -> dict[str, Any]:
    spec = project.spec.validation[environment]
    if not spec.trusted_keys:
        raise ValidationGateError(
            f"[validation.{environment}] lists no trusted_keys, so no statement can be trusted:"
            ' add trusted_keys = ["path/to/key.pub"]',
            file=project.file,
        )
    keys = load_trusted_keys(project.root, spec.trusted_keys, project.file)
    path = envelope_path(project.root, environment)
    attested = read_statement(path, keys, project=project.name, environment=environment)
    current = project_inputs.collect(project, spec)
    if current.digest != attested.inputs_digest:
        changes = current.changes_from(attested.subjects)
        shown = ", ".join(changes[:SHOWN_CHANGES]) + (
            ", ..." if len(changes) > SHOWN_CHANGES else ""
        )
        raise ValidationGateError(
            f"{path}: the last validation is of other inputs ({shown or 'digest differs'}); "
            f"validate these: `ggen lifecycle validate --env {environment} --signing-key KEY`"
        )
    if attested.result != "PASSED":
        why = "; ".join(attested.blockers[:3]) or "it did not pass"
        raise ValidationGateError(
            f"{path}: the last validation of these inputs failed ({why}); fix it and validate again"
        )
    return {
        "statement": str(path),
        "keyid": attested.keyid,
        "validated_on": attested.validated_on,
        "inputs": attested.inputs_digest,
    }
