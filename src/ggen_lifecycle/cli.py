"""``ggen lifecycle ...``: list, show, run, pipeline, graph, clean, state and readiness commands.

Exit codes: 0 success, 1 a task or check failed, 2 bad make.toml or usage, 3 the project is
locked by another run, 130 interrupted.
"""

from __future__ import annotations

import dataclasses
import shutil
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from .errors import LifecycleError
from .graph import build_graph, render
from .run_command import RunArgs, execute, fail, load
from .run_command import emit as _emit

if TYPE_CHECKING:
    from .config import Project

F = TypeVar("F", bound=Callable[..., Any])


def _project(ctx: click.Context, as_json: bool = False) -> Project:
    project = load(ctx.obj.get("project_dir") if ctx.obj else None, as_json)
    for message in project.warnings:  # make.toml keys that were ignored
        click.echo(f"warning: {message}", err=True)
    return project


@click.group()
@click.option(
    "-C",
    "--project",
    "project_dir",
    type=click.Path(file_okay=True, dir_okay=True, path_type=Path),
    help="Project directory or make.toml (default: nearest make.toml at or above the cwd).",
)
@click.pass_context
def lifecycle(ctx: click.Context, project_dir: Path | None) -> None:
    """Run make.toml phases across workspaces, with caching, state and readiness checks."""
    ctx.ensure_object(dict)
    ctx.obj["project_dir"] = project_dir


# -- inspection ----------------------------------------------------------------------------------


@lifecycle.command("list", short_help="List declared phases, then standard ones not declared.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_context
def list_phases(ctx: click.Context, as_json: bool) -> None:
    """List phases: declared ones, then the standard ones not declared."""
    project = _project(ctx, as_json)
    declared = project.declared_phases()
    rows: list[dict[str, Any]] = []
    for phase in project.phases():
        targets = project.targets(phase)
        found = project.phase_spec(phase, targets[0] if targets else None)
        spec = found[0] if found else None
        rows.append(
            {
                "phase": phase,
                "declared": phase in declared,
                "description": spec.description if spec else "",
                "workspaces": [t or "(root)" for t in targets],
                "commands": spec.command_list() if spec else [],
                "depends_on": spec.depends_on if spec else [],
                "watch": spec.watch if spec else False,
                "port": spec.port if spec else None,
            }
        )
    if as_json:
        _emit({"project": project.name, "file": str(project.file), "phases": rows})
        return
    click.echo(f"{project.name} ({project.file})")
    width = max(len(r["phase"]) for r in rows)
    for row in rows:
        if not row["declared"]:
            click.echo(f"  {row['phase']:<{width}}  (standard, not declared)")
            continue
        where = ", ".join(row["workspaces"])
        description = row["description"] or "; ".join(row["commands"]) or "(group)"
        served = " (watch" + (f", port {row['port']}" if row["port"] else "") + ")"
        served = served if row["watch"] or row["port"] else ""
        click.echo(f"  {row['phase']:<{width}}  {description}{served}  [{where}]")


@lifecycle.command(short_help="Show how a phase runs in each workspace.")
@click.argument("phase")
@click.option("--env", "environment", help="Environment whose [env.ENV] overrides apply.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_context
def show(ctx: click.Context, phase: str, environment: str | None, as_json: bool) -> None:
    """Show a phase as it will run in each workspace: commands, env, inputs, outputs, hooks."""
    project = _project(ctx, as_json)
    try:
        project.require_phase(phase)
        if environment:
            project.require_environment(environment)
    except LifecycleError as exc:
        fail(exc, as_json)
    hooks = project.hooks()
    targets: list[dict[str, Any]] = []
    for target in project.targets(phase):
        found = project.phase_spec(phase, target)
        assert found is not None
        spec, file = found
        targets.append(
            {
                "workspace": target,
                "file": str(file),
                "cwd": str(project.workspace_dir(target) / (spec.cwd or "")),
                "description": spec.description,
                "commands": spec.command_list(),
                "env": project.declared_env(target, spec, environment),
                "depends_on": spec.depends_on,
                "parallel": spec.parallel,
                "timeout": spec.timeout,
                "inputs": spec.inputs,
                "outputs": spec.outputs,
                "cache": spec.cache_enabled,
                "watch": spec.watch,
                "port": spec.port,
                "cleanroom": dataclasses.asdict(spec.cleanroom),
            }
        )
    data: dict[str, Any] = {
        "phase": phase,
        "hooks": {k: hooks[k] for k in (f"before_{phase}", f"after_{phase}") if k in hooks},
        "targets": targets,
    }
    if as_json:
        _emit(data)
        return
    click.echo(f"phase {phase}")
    for key, entries in data["hooks"].items():
        click.echo(f"  {key}: {', '.join(entries)}")
    for item in targets:
        click.echo(f"  [{item['workspace'] or '(root)'}] from {item['file']}")
        if item["description"]:
            click.echo(f"    description: {item['description']}")
        click.echo(f"    cwd: {item['cwd']}")
        for command in item["commands"]:
            click.echo(f"    $ {command}")
        for field in ("depends_on", "inputs", "outputs"):
            if item[field]:
                click.echo(f"    {field}: {', '.join(item[field])}")
        if item["env"]:
            shown = " ".join(f"{k}={v}" for k, v in item["env"].items())
            click.echo(f"    env: {shown}")
        extras = [f"cache={'on' if item['cache'] else 'off'}", f"parallel={item['parallel']}"]
        if item["timeout"]:
            extras.append(f"timeout={item['timeout']:g}s")
        if item["watch"]:
            extras.append("watch")
        if item["port"]:
            extras.append(f"port={item['port']}")
        if item["cleanroom"]["enabled"]:
            extras.append(f"cleanroom={item['cleanroom']['policy']}")
            if item["cleanroom"]["services"]:
                extras.append(f"services={','.join(item['cleanroom']['services'])}")
        click.echo(f"    {' '.join(extras)}")


@lifecycle.command(short_help="Print the task graph as Mermaid or DOT.")
@click.argument("phases", nargs=-1)
@click.option("--format", "fmt", type=click.Choice(["mermaid", "dot"]), default="mermaid")
@click.option("--env", "environment", help="Environment whose [env.ENV] overrides apply.")
@click.option("-w", "--workspace", help="Only this workspace (and what it needs).")
@click.pass_context
def graph(
    ctx: click.Context,
    phases: tuple[str, ...],
    fmt: str,
    environment: str | None,
    workspace: str | None,
) -> None:
    """Print the task graph of PHASES (default: every declared phase) as Mermaid or DOT."""

    project = _project(ctx)
    chosen = list(phases) or project.declared_phases()
    try:
        built = build_graph(project, chosen, workspace=workspace, environment=environment)
    except LifecycleError as exc:
        fail(exc, False)
    click.echo(render(built, "dot" if fmt == "dot" else "mermaid"), nl=False)


# -- running -------------------------------------------------------------------------------------


def run_options(func: F) -> F:
    """The options shared by ``run`` and ``pipeline``."""
    decorators = [
        click.option("--env", "environment", help="Select [env.ENV]; exported as GGEN_ENV."),
        click.option("-w", "--workspace", help="Only this workspace (and what it needs)."),
        click.option(
            "-j",
            "--jobs",
            type=click.IntRange(min=1),
            default=None,
            help="Tasks at once (default: CPU count).",
        ),
        click.option("--no-cache", is_flag=True, help="Do not read the cache (still write it)."),
        click.option("--keep-going", is_flag=True, help="Run what does not depend on a failure."),
        click.option("--dry-run", is_flag=True, help="Show what would run, in order; run nothing."),
        click.option("--json", "as_json", is_flag=True, help="JSON summary on stdout."),
        click.option(
            "--wait",
            type=click.FloatRange(min=0),
            default=0.0,
            show_default=True,
            help="Seconds to wait for another run of this project to finish.",
        ),
        click.option("-q", "--quiet", is_flag=True, help="Hide task output (failures still show)."),
        click.option(
            "--allow-unvalidated",
            is_flag=True,
            help="Run gated phases (deploy) without a passing validation; recorded.",
        ),
    ]
    for decorator in reversed(decorators):
        func = decorator(func)
    return func


def _run(ctx: click.Context, phases: Sequence[str], **kwargs: Any) -> None:
    project_dir = ctx.obj.get("project_dir") if ctx.obj else None
    execute(RunArgs(phases=list(phases), project_dir=project_dir, **kwargs))


@lifecycle.command(short_help="Run PHASE and its dependencies in every workspace.")
@click.argument("phase")
@run_options
@click.option(
    "--watch",
    is_flag=True,
    help="Run again whenever a watched file changes (the tasks' watch globs, else inputs);"
    " Ctrl-C stops.",
)
@click.option(
    "--debounce",
    type=click.FloatRange(min=0, max=60),
    default=0.3,
    show_default=True,
    help="With --watch: seconds without further changes before running again.",
)
@click.pass_context
def run(ctx: click.Context, /, phase: str, watch: bool, debounce: float, **kwargs: Any) -> None:
    """Run PHASE (and the phases it depends on) in every workspace it applies to."""
    if not watch:
        _run(ctx, [phase], argv=["run", phase], **kwargs)
        return
    if kwargs["dry_run"] or kwargs["as_json"]:
        raise click.UsageError("--watch runs until Ctrl-C: it does not go with --dry-run or --json")
    from .watch import watch_run

    project_dir = ctx.obj.get("project_dir") if ctx.obj else None
    args = RunArgs(phases=[phase], project_dir=project_dir, argv=["run", phase], **kwargs)
    project = load(project_dir)
    try:
        code = watch_run(project, args, debounce)
    except LifecycleError as exc:
        fail(exc, False)
    sys.exit(code)


@lifecycle.command(short_help="Run PHASES in order; a failed phase stops the rest.")
@click.argument("phases", nargs=-1, required=True)
@run_options
@click.pass_context
def pipeline(ctx: click.Context, /, phases: tuple[str, ...], **kwargs: Any) -> None:
    """Run PHASES one after the other; a failed phase stops the pipeline."""
    _run(ctx, list(phases), argv=["pipeline", *phases], **kwargs)


# -- housekeeping --------------------------------------------------------------------------------


@lifecycle.command(short_help="Remove the task cache; with options logs and state too.")
@click.option("--logs", is_flag=True, help="Also remove task logs.")
@click.option("--state", "clean_state", is_flag=True, help="Also forget the run history.")
@click.option(
    "--all", "clean_all", is_flag=True, help="Remove all of .ggen except production.toml."
)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_context
def clean(
    ctx: click.Context,
    logs: bool,
    clean_state: bool,
    clean_all: bool,
    as_json: bool,
) -> None:
    """Remove the task cache (and, if asked, logs and state) from .ggen/."""
    from .cache import LocalCache

    project = _project(ctx, as_json)
    state_dir = project.state_dir
    entries, size = LocalCache(state_dir / "cache", project.spec.cache.max_bytes).clean()
    removed: dict[str, Any] = {"cache": {"entries": entries, "bytes": size}}
    if (logs or clean_all) and (state_dir / "logs").exists():
        shutil.rmtree(state_dir / "logs")
        removed["logs"] = True
    if clean_state or clean_all:
        for name in ("state.json", "state.json.lock"):
            (state_dir / name).unlink(missing_ok=True)
        for corrupt in state_dir.glob("state.json.corrupt-*"):
            corrupt.unlink()
        removed["state"] = True
    if clean_all:
        shutil.rmtree(state_dir / "validated", ignore_errors=True)
        (state_dir / "hashes.json").unlink(missing_ok=True)
        removed["memos"] = True  # validated make.toml data and remembered input hashes
    if as_json:
        _emit({"removed": removed})
        return
    click.echo(f"removed {entries} cache entr{'y' if entries == 1 else 'ies'} ({size} bytes)")
    for what in ("logs", "state", "memos"):
        if what in removed:
            click.echo(f"removed {what}")


@lifecycle.command()
@click.option("-n", "--limit", type=click.IntRange(min=1), default=10, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_context
def state(ctx: click.Context, limit: int, as_json: bool) -> None:
    """Show the latest runs recorded in .ggen/state.json."""
    from .state import StateStore

    project = _project(ctx, as_json)
    warnings: list[str] = []
    data = StateStore(project.state_dir / "state.json", warn=warnings.append).read()
    runs = data["runs"][-limit:]
    if as_json:
        _emit({"runs": runs, "tasks": data["tasks"][-limit * 20 :], "warnings": warnings})
        return
    for warning in warnings:
        click.echo(f"ggen: {warning}", err=True)
    if not runs:
        click.echo("no runs recorded yet")
    for item in runs:
        tasks = [t for t in data["tasks"] if t.get("run_id") == item.get("run_id")]
        click.echo(
            f"{item.get('run_id')}  {' '.join(item.get('phases', []))}  {item.get('result')}  "
            f"{item.get('duration', 0):.2f}s  {len(tasks)} tasks"
        )


from . import readiness_cli  # noqa: E402  (registers the readiness commands on the group)

readiness_cli.register(lifecycle)
