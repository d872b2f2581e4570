"""``ggen lifecycle run`` / ``pipeline`` without click: the command's work, and a parser for its
plain command lines.

A cache hit must answer in a fraction of a second, and importing click costs a good part of
that. ``ggen`` (``ggen_cli.__main__``) therefore hands ``lifecycle [-C DIR] run|pipeline ...``
to :func:`main_without_click` first; it handles only command lines it fully understands and
returns ``None`` for anything else (``--help``, a bad value, an unknown option), which click
then parses and reports exactly as before. :mod:`ggen_lifecycle.cli` calls the same
:func:`execute`, so both paths behave alike.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any, BinaryIO, NoReturn

from .errors import ConfigError, LifecycleError, StateLockError, StorageError
from .reporter import echo as echo
from .reporter import emit as emit
from .reporter import print_summary

if TYPE_CHECKING:
    from .config import Project
    from .reporter import Reporter
    from .results import RunOptions, RunSummary
    from .runner import Runner


def exit_code(error: LifecycleError) -> int:
    if isinstance(error, ConfigError):
        return 2
    if isinstance(error, StateLockError):
        return 3
    return 1


def fail(error: LifecycleError, as_json: bool) -> NoReturn:
    """Report ``error`` (as JSON on stdout with ``--json``) and exit with its code."""
    if as_json:
        emit({"error": error.to_dict()})
    echo(f"ggen lifecycle: error: {error}", err=True)
    sys.exit(exit_code(error))


def load(project_dir: Path | None, as_json: bool = False) -> Project:
    """The project at or above ``project_dir`` (default: the cwd), or exit with the error."""
    from .config import load_project

    try:
        return load_project(project_dir)
    except LifecycleError as exc:
        fail(exc, as_json)


@dataclass
class RunArgs:
    """The options of ``run`` and ``pipeline``."""

    phases: list[str]
    project_dir: Path | None = None
    environment: str | None = None
    workspace: str | None = None
    jobs: int | None = None
    no_cache: bool = False
    keep_going: bool = False
    dry_run: bool = False
    as_json: bool = False
    wait: float = 0.0
    quiet: bool = False
    allow_unvalidated: bool = False
    argv: list[str] = field(default_factory=list)


def _reporter(as_json: bool, quiet: bool) -> Reporter:
    from .reporter import LiveReporter, Reporter

    stream: BinaryIO = sys.stderr.buffer if as_json else sys.stdout.buffer
    is_tty = stream.isatty() and os.environ.get("TERM") != "dumb"
    if is_tty and not as_json:
        return LiveReporter(stream, quiet=quiet)
    return Reporter(stream, quiet=quiet)


def print_plan(steps: list[dict[str, Any]]) -> None:
    """The ``--dry-run`` plan as numbered steps; a hook's phase entries name the steps they add."""
    numbers = {step["id"]: number for number, step in enumerate(steps, start=1)}
    for number, step in enumerate(steps, start=1):
        cache = f"  [cache {step['cache']}]" if step["cache"] else ""
        when = f"  (only {step['when']})" if step.get("when") else ""
        echo(f"{number:>3}. {step['label']}{cache}{when}")
        if "runs" not in step:
            for command in step["commands"]:
                echo(f"       $ {command}")
            continue
        for run in step["runs"]:
            if "command" in run:
                echo(f"       $ {run['command']}")
                continue
            added = [numbers[i] for i in run["steps"]]
            where = (
                f"step {added[0]}" if len(added) == 1
                else f"steps {added[0]}-{added[-1]}" if added
                else "already planned above"
            )  # fmt: skip
            echo(f"       > phase {run['phase']} ({where})")


def run_options(args: RunArgs) -> RunOptions:
    """The runner's options for ``args``."""
    from .results import RunOptions

    return RunOptions(
        jobs=args.jobs or os.cpu_count() or 1,
        keep_going=args.keep_going,
        no_cache=args.no_cache,
        environment=args.environment,
        workspace=args.workspace,
        wait=args.wait,
        quiet=args.quiet,
    )


def gated_options(project: Project, args: RunArgs) -> RunOptions:
    """:func:`run_options` with the deploy gate's record when ``[validation]`` is declared;
    the gate's refusal is a :class:`LifecycleError` (see production/gate.py)."""
    options = run_options(args)
    if project.spec.validation and not args.dry_run:
        from .production.gate import check_gate

        options.validation_gate = check_gate(
            project, args.phases, args.environment, args.workspace,
            allow_unvalidated=args.allow_unvalidated,
        )  # fmt: skip
    return options


def run_and_report(
    project: Project,
    args: RunArgs,
    options: RunOptions,
    started: Callable[[Runner], None] | None = None,
) -> RunSummary:
    """Run ``args.phases`` once (SIGTERM stops the run as Ctrl-C does) and print the outcome.

    ``started`` receives the :class:`~.runner.Runner` before it runs (``--watch`` stops it
    through :meth:`~.runner.Runner.request_interrupt`). A :class:`LifecycleError` propagates.
    """
    from .runner import Runner

    reporter = _reporter(args.as_json, args.quiet)
    runner = Runner(project, options, reporter)
    if started is not None:
        started(runner)

    def on_term(signum: int, frame: FrameType | None) -> None:
        runner.request_interrupt()

    in_main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, on_term) if in_main else None
    try:
        summary = runner.run(args.phases, argv=args.argv)
    except OSError as exc:  # what no step of the run turned into a typed error
        raise StorageError.from_os_error(exc) from None
    finally:
        if in_main:
            signal.signal(signal.SIGTERM, previous)
        reporter.close()
    if args.as_json:
        emit(summary.to_dict())
    else:
        print_summary(summary)
    return summary


def execute(args: RunArgs) -> NoReturn:
    """Run (or, with ``dry_run``, plan) ``args.phases``, print the outcome, exit with its code."""
    from .runner import Runner

    project = load(args.project_dir, args.as_json)
    try:
        options = gated_options(project, args)
    except LifecycleError as exc:
        fail(exc, args.as_json)
    if args.dry_run:
        try:
            steps = Runner(project, options).plan(args.phases)
        except LifecycleError as exc:
            fail(exc, args.as_json)
        if args.as_json:
            emit({"project": project.name, "phases": args.phases, "plan": steps})
            sys.exit(0)
        print_plan(steps)
        sys.exit(0)
    try:
        summary = run_and_report(project, args, options)
    except LifecycleError as exc:
        fail(exc, args.as_json)
    record_hit_manifest(project, args, options, summary)
    sys.exit(summary.exit_code)


def record_hit_manifest(
    project: Project, args: RunArgs, options: RunOptions, summary: RunSummary
) -> None:
    """Leave what lets the next identical ``run`` answer a cache hit fast (see
    :mod:`._hit_manifest`); the manifest only saves time, so no problem with it fails the run."""
    from ._hit_manifest import record

    if not args.argv:
        return
    try:
        record(project, args.argv[0], options, summary)
    except Exception:  # a manifest not written only means a slower next hit
        return


# -- the command line without click --------------------------------------------------------------

_VALUED = {
    "--env": "environment",
    "-w": "workspace",
    "--workspace": "workspace",
    "-j": "jobs",
    "--jobs": "jobs",
    "--wait": "wait",
}
_FLAGS = {
    "--no-cache": "no_cache",
    "--keep-going": "keep_going",
    "--dry-run": "dry_run",
    "--json": "as_json",
    "-q": "quiet",
    "--quiet": "quiet",
    "--allow-unvalidated": "allow_unvalidated",
}


def parse_run_argv(argv: Sequence[str]) -> RunArgs | None:
    """``[-C DIR] run PHASE [options]`` or ``[-C DIR] pipeline PHASE... [options]`` (the
    arguments after ``lifecycle``) as :class:`RunArgs`; ``None`` unless every argument is one
    this parser knows and every value is valid (click reports the rest)."""
    args = list(argv)
    project_dir: Path | None = None
    while args and (args[0] in ("-C", "--project") or args[0].startswith("--project=")):
        head = args.pop(0)
        if "=" in head:
            project_dir = Path(head.split("=", 1)[1])
        elif args:
            project_dir = Path(args.pop(0))
        else:
            return None
    if not args or args[0] not in ("run", "pipeline"):
        return None
    command, rest = args[0], args[1:]
    values: dict[str, Any] = {}
    phases: list[str] = []
    while rest:
        item = rest.pop(0)
        if item in _FLAGS:
            values[_FLAGS[item]] = True
            continue
        name, _, inline = item.partition("=")
        if name in _VALUED and name.startswith("--") and inline:
            value: str | None = inline
        elif item in _VALUED:
            value = rest.pop(0) if rest else None
            name = item
        elif item.startswith("-j") and item[2:].isdigit():
            name, value = "-j", item[2:]
        elif item.startswith("-"):
            return None  # --help, --, combined flags, unknown options: click's job
        else:
            phases.append(item)
            continue
        if value is None:
            return None
        values[_VALUED[name]] = value
    if not phases or (command == "run" and len(phases) != 1):
        return None
    try:
        if "jobs" in values:
            values["jobs"] = int(values["jobs"])
            if values["jobs"] < 1:
                return None
        if "wait" in values:
            values["wait"] = float(values["wait"])
            if not values["wait"] >= 0:
                return None
    except ValueError:
        return None
    return RunArgs(phases=phases, project_dir=project_dir, argv=[command, *phases], **values)


def main_without_click(argv: Sequence[str]) -> int | None:
    """Run ``ggen lifecycle ARGV`` if :func:`parse_run_argv` understands it; else ``None``."""
    args = parse_run_argv(argv)
    if args is None:
        return None
    try:
        execute(args)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
