"""The readiness commands of ``ggen lifecycle``: readiness, readiness-update, placeholders,
validate."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

import click

from .errors import LifecycleError
from .model import Thresholds
from .readiness_statuses import STATUSES

if TYPE_CHECKING:
    from .config import Project
    from .production.report import StepOutcome


def printable(text: str) -> str:
    """``text`` safe for a terminal: control characters (an escape sequence in a note or a
    scanned line) are shown escaped, not sent."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def register(group: click.Group) -> None:
    """Add the readiness commands to ``group``."""
    from .cli import _project
    from .run_command import emit as _emit
    from .run_command import fail

    @group.command("readiness", short_help="Score production readiness out of 100; list blockers.")
    @click.option("--detailed", is_flag=True, help="List every requirement.")
    @click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
    @click.pass_context
    def readiness_cmd(ctx: click.Context, detailed: bool, as_json: bool) -> None:
        """Score production readiness out of 100 and list what blocks production."""
        from . import readiness as rd

        project = _project(ctx, as_json)
        try:
            result = rd.score(rd.load_requirements(project.root))
        except LifecycleError as exc:
            fail(exc, as_json)
        if as_json:
            _emit(result.to_dict(detailed=detailed))
            return
        click.echo(f"production readiness: {result.score:g}/100")
        for category, counts in result.by_category().items():
            shown = ", ".join(f"{n} {s}" for s, n in counts.items() if n)
            click.echo(f"  {category}: {shown or 'none'}")
        if result.blockers:
            click.echo("blocks production:")
            for r in result.blockers:
                click.echo(f"  - {r.id} ({r.status}): {printable(r.name)}")
        else:
            click.echo("nothing blocks production")
        if detailed:
            click.echo("requirements:")
            for r in result.requirements:
                notes = f" - {printable(r.notes)}" if r.notes else ""
                click.echo(f"  [{r.status:<12}] {r.id} ({r.category}): {printable(r.name)}{notes}")

    @group.command(
        "readiness-update", short_help="Move requirement ID to STATUS (allowed steps only)."
    )
    @click.argument("requirement_id", metavar="ID")
    @click.argument("status", type=click.Choice(list(STATUSES)))
    @click.option("--notes", help="Replace the requirement's notes.")
    @click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
    @click.pass_context
    def readiness_update(
        ctx: click.Context, requirement_id: str, status: str, notes: str | None, as_json: bool
    ) -> None:
        """Change requirement ID to STATUS (only through the allowed transitions)."""
        from . import readiness as rd

        project = _project(ctx, as_json)
        try:
            old = rd.update_status(project.root, requirement_id, status, notes)
        except LifecycleError as exc:
            fail(exc, as_json)
        if as_json:
            _emit({"id": requirement_id, "from": old, "to": status})
        else:
            click.echo(f"{requirement_id}: {old} -> {status} ({rd.production_file(project.root)})")

    @group.command("placeholders", short_help="Find TODO, FIXME and other placeholder code.")
    @click.option("--pattern", "patterns", multiple=True, help="Regex (replaces the configured).")
    @click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
    @click.pass_context
    def placeholders(ctx: click.Context, patterns: tuple[str, ...], as_json: bool) -> None:
        """Find placeholder code (TODO, FIXME, unimplemented, ...) by [readiness] patterns."""
        from . import readiness as rd

        project = _project(ctx, as_json)
        spec = project.spec.readiness
        try:
            found = rd.find_placeholders(
                project.root, list(patterns) or spec.patterns, spec.include, spec.exclude
            )
        except LifecycleError as exc:
            fail(exc, as_json)
        if as_json:
            _emit({"count": len(found), "placeholders": [p.to_dict() for p in found]})
            return
        for p in found:
            click.echo(f"{printable(p.file)}:{p.line}: {printable(p.text)}")
        click.echo(f"{len(found)} placeholder{'s' if len(found) != 1 else ''} found")

    @group.command("validate", short_help="Validate for ENV (steps in a cleanroom); exit 1 if not.")
    @click.option("--env", "environment", default="production", show_default=True)
    @click.option(
        "--signing-key",
        type=click.Path(dir_okay=False, path_type=Path),
        envvar="GGEN_SIGNING_KEY",
        help="ed25519 private key (PEM) signing the validation statement (also $GGEN_SIGNING_KEY).",
    )
    @click.option("--backend", default="auto", show_default=True, help="Cleanroom backend.")
    @click.option(
        "--markdown",
        type=click.Path(dir_okay=False, allow_dash=True, path_type=Path),
        help="Also write the report as Markdown (for a pull request) to FILE; - for stdout.",
    )
    @click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
    @click.pass_context
    def validate_cmd(
        ctx: click.Context,
        environment: str,
        signing_key: Path | None,
        backend: str,
        markdown: Path | None,
        as_json: bool,
    ) -> None:
        """Check readiness against [readiness.thresholds.ENV]; with a [validation.ENV] table, first
        run its steps in a cleanroom and keep a (signed) statement of the outcome. Exit 1 when
        not ready."""
        from . import readiness as rd

        project = _project(ctx, as_json)
        spec = project.spec.readiness
        if environment in project.spec.validation:
            _validate_production(project, environment, signing_key, backend, markdown, as_json)
        try:
            project.require_environment(environment)
            if signing_key is not None or markdown is not None:
                raise LifecycleError(
                    f"--signing-key and --markdown need steps to validate: declare "
                    f"[validation.{environment}] in {project.file.name}",
                    file=project.file,
                )
            thresholds = spec.thresholds.get(environment, Thresholds())
            verdict = rd.validate(
                project.root, environment, thresholds, spec.patterns, spec.include, spec.exclude
            )
        except LifecycleError as exc:
            fail(exc, as_json)
        if as_json:
            _emit(verdict.to_dict())
        elif verdict.ready:
            click.echo(f"ready for {environment}: score {verdict.score.score:g}/100")
        else:
            click.echo(f"NOT ready for {environment} (score {verdict.score.score:g}/100):")
            for reason in verdict.reasons:
                click.echo(f"  - {reason}")
        sys.exit(0 if verdict.ready else 1)


def _validate_production(
    project: Project,
    environment: str,
    signing_key: Path | None,
    backend: str,
    markdown: Path | None,
    as_json: bool,
) -> NoReturn:
    from .production.run import validate_project
    from .run_command import emit, fail

    def show(step: StepOutcome) -> None:
        took = f" ({step.duration:.1f} s)" if step.duration >= 0.05 else ""
        click.echo(f"  {step.outcome:<8} {step.label}: {step.detail}{took}", err=True)
        if step.outcome == "failed":
            for line in step.output_tail.splitlines()[-8:]:
                click.echo(f"           | {printable(line)}", err=True)

    if markdown is not None and str(markdown) != "-" and not markdown.parent.is_dir():
        fail(LifecycleError(f"--markdown {markdown}: no directory {markdown.parent}; create it "
                            "or write the report elsewhere"), as_json)  # fmt: skip
    if not as_json:
        click.echo(f"validating {project.name} for {environment} in a cleanroom", err=True)
    try:
        report = validate_project(
            project,
            environment,
            signing_key=signing_key,
            backend=backend,
            progress=None if as_json else show,
        )
        if markdown is not None:
            _write_markdown(markdown, report.markdown())
    except LifecycleError as exc:
        fail(exc, as_json)
    if as_json:
        emit(report.to_json())
    else:
        for line in report.text():
            click.echo(printable(line))
    sys.exit(0 if report.ready else 1)


def _write_markdown(target: Path, text: str) -> None:
    from pytest_cleanroom.safe_write import write_output

    from .errors import StorageError

    if str(target) == "-":
        click.echo(text, nl=False)
        return
    try:
        write_output(target, text)
    except OSError as exc:
        raise StorageError.from_os_error(exc, file=target) from None
